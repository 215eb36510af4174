//! The deadlines of an endpoint's connections, ordered, for drivers.

use std::collections::{BTreeSet, HashMap};

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

#[cfg(test)]
mod tests {
    use super::*;

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
