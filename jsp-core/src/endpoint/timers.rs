//! What a driver keeps to visit only the connections that need it: their deadlines, ordered,
//! and the queues of connections to settle and to ask for datagrams.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::ConnectionHandle;
use crate::time::Instant;

/// Each connection's next deadline ([`crate::connection::Connection::poll_timeout`]), ordered:
/// the earliest is what a driver sleeps until, and the due ones are taken in deadline order.
/// A change costs O(log n), so a driver that re-arms only the connections that changed does
/// work proportional to them, not to every connection it holds.
#[derive(Debug, Default)]
pub struct ConnectionTimers {
    order: BTreeSet<(Instant, ConnectionHandle)>,
    armed: HashMap<ConnectionHandle, Instant>,
}

impl ConnectionTimers {
    /// No deadlines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `handle`'s deadline, replacing the one it had (`None`: it has none).
    pub fn set(&mut self, handle: ConnectionHandle, deadline: Option<Instant>) {
        let old = match deadline {
            Some(t) => self.armed.insert(handle, t),
            None => self.armed.remove(&handle),
        };
        if old == deadline {
            return;
        }
        if let Some(t) = old {
            self.order.remove(&(t, handle));
        }
        if let Some(t) = deadline {
            self.order.insert((t, handle));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|&(t, _)| t)
    }

    /// Takes the connection with the earliest deadline if it is at or before `now` (its
    /// deadline is cleared; set it again after handling the timeout).
    pub fn pop_due(&mut self, now: Instant) -> Option<ConnectionHandle> {
        let &(t, h) = self.order.first()?;
        if t > now {
            return None;
        }
        self.order.pop_first();
        self.armed.remove(&h);
        Some(h)
    }

    /// Connections with a deadline.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    /// Whether no connection has a deadline.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}

/// Whether a connection is in a driver's [`ConnectionQueues`]; the driver keeps one with each
/// connection, so that queueing it again costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueMarks {
    settle: bool,
    send: bool,
}

impl QueueMarks {
    /// The connection left the settle queue ([`ConnectionQueues::pop_settle`]).
    pub fn settled(&mut self) {
        self.settle = false;
    }

    /// The connection had nothing more to send and leaves the send queue.
    pub fn exhausted(&mut self) {
        self.send = false;
    }
}

/// The connections a driver has to look at: those changed since it last settled them (handed
/// out their events, re-armed their deadline), and those that may have datagrams to send, in
/// round-robin order. Each is queued at most once, as its [`QueueMarks`] say. Handles of
/// connections the driver has since forgotten may come out; it skips them.
#[derive(Debug, Default)]
pub struct ConnectionQueues {
    settle: Vec<ConnectionHandle>,
    send: VecDeque<ConnectionHandle>,
}

impl ConnectionQueues {
    /// Empty queues.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `handle` for settling and sending: call it whenever the connection may have
    /// changed (a datagram, a timeout, an application call).
    pub fn touch(&mut self, handle: ConnectionHandle, marks: &mut QueueMarks) {
        self.to_settle(handle, marks);
        if !marks.send {
            marks.send = true;
            self.send.push_back(handle);
        }
    }

    /// Queues `handle` for settling only (sending moved its timers or raised events).
    pub fn to_settle(&mut self, handle: ConnectionHandle, marks: &mut QueueMarks) {
        if !marks.settle {
            marks.settle = true;
            self.settle.push(handle);
        }
    }

    /// The next connection to settle; clear its mark with [`QueueMarks::settled`].
    pub fn pop_settle(&mut self) -> Option<ConnectionHandle> {
        self.settle.pop()
    }

    /// The connections waiting to be settled.
    pub fn unsettled(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.settle.iter().copied()
    }

    /// Connections in the send queue.
    pub fn senders(&self) -> usize {
        self.send.len()
    }

    /// The next connection that may have datagrams. Put it back with [`Self::requeue_send`]
    /// if it may have more, or clear its mark with [`QueueMarks::exhausted`].
    pub fn pop_send(&mut self) -> Option<ConnectionHandle> {
        self.send.pop_front()
    }

    /// Puts a connection taken with [`Self::pop_send`] at the back of the send queue.
    pub fn requeue_send(&mut self, handle: ConnectionHandle) {
        self.send.push_back(handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_queued_once_until_it_leaves_each_queue() {
        let mut q = ConnectionQueues::new();
        let (a, b) = (ConnectionHandle(1), ConnectionHandle(2));
        let (mut ma, mut mb) = (QueueMarks::default(), QueueMarks::default());
        q.touch(a, &mut ma);
        q.touch(a, &mut ma);
        q.to_settle(b, &mut mb);
        assert_eq!(q.unsettled().count(), 2);
        assert_eq!(q.senders(), 1, "b was only settled");
        assert_eq!(q.pop_send(), Some(a));
        q.requeue_send(a);
        q.touch(a, &mut ma);
        assert_eq!(q.senders(), 1, "still queued once");
        assert_eq!(q.pop_send(), Some(a));
        ma.exhausted();
        q.touch(a, &mut ma);
        assert_eq!(q.senders(), 1, "queued again after leaving");
        while let Some(h) = q.pop_settle() {
            if h == a {
                ma.settled();
            } else {
                mb.settled();
            }
        }
        q.to_settle(b, &mut mb);
        assert_eq!(q.unsettled().collect::<Vec<_>>(), [b]);
    }

    #[test]
    fn deadlines_come_out_in_order_and_a_reset_replaces_the_old_one() {
        let mut t = ConnectionTimers::new();
        let (a, b, c) = (
            ConnectionHandle(1),
            ConnectionHandle(2),
            ConnectionHandle(3),
        );
        t.set(a, Some(Instant::from_millis(30)));
        t.set(b, Some(Instant::from_millis(10)));
        t.set(c, Some(Instant::from_millis(20)));
        t.set(c, Some(Instant::from_millis(40))); // moved later
        t.set(b, Some(Instant::from_millis(10))); // unchanged
        assert_eq!((t.len(), t.next()), (3, Some(Instant::from_millis(10))));
        assert_eq!(t.pop_due(Instant::from_millis(5)), None);
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(b));
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(a));
        assert_eq!(t.pop_due(Instant::from_millis(35)), None, "c moved to 40");
        t.set(c, None);
        assert!(t.is_empty() && t.next().is_none());
        assert_eq!(t.pop_due(Instant::from_millis(1_000)), None);
    }
}
