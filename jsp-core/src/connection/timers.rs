//! The connection's timers: one enum indexing a fixed table of deadlines.
//!
//! `poll_timeout` is the minimum over the table; `handle_timeout(now)` fires every timer whose
//! deadline has passed. No allocation, no ordering structure: the table is tiny.

use crate::time::Instant;

/// Every timer a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Loss detection or probe timeout (RFC 9002 §6.2).
    LossDetection = 0,
    /// A delayed ACK is due.
    Ack = 1,
    /// No packet received for the idle timeout: close silently.
    Idle = 2,
    /// Time to send a keep-alive PING.
    KeepAlive = 3,
    /// End of the closing or draining period.
    Close = 4,
    /// Discard the previous generation of 1-RTT receive keys.
    KeyDiscard = 5,
    /// A new path's validation has taken too long: return to the previous one.
    PathValidation = 6,
    /// One last probe before the idle timeout while packets are in flight.
    IdleProbe = 7,
    /// The pacer releases the next data packet.
    Pacing = 8,
    /// The handshake has work left that waited for the datagrams before it to be sent
    /// ([`crate::session::Session::work_pending`]); due at once.
    HandshakeWork = 9,
}

const COUNT: usize = 10;

impl Timer {
    const ALL: [Self; COUNT] = [
        Self::LossDetection,
        Self::Ack,
        Self::Idle,
        Self::KeepAlive,
        Self::Close,
        Self::KeyDiscard,
        Self::PathValidation,
        Self::IdleProbe,
        Self::Pacing,
        Self::HandshakeWork,
    ];
}

/// Deadlines of all timers.
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub(crate) fn set_or_stop(&mut self, timer: Timer, at: Option<Instant>) {
        self.deadlines[timer as usize] = at;
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns the expired timers, in table order.
    pub(crate) fn expired(&mut self, now: Instant) -> impl Iterator<Item = Timer> {
        let mut fired = [None; COUNT];
        for (slot, timer) in fired.iter_mut().zip(Timer::ALL) {
            if self.deadlines[timer as usize].is_some_and(|d| d <= now) {
                self.deadlines[timer as usize] = None;
                *slot = Some(timer);
            }
        }
        fired.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_and_expiry_clears_it() {
        let mut t = TimerTable::default();
        t.set(Timer::Idle, Instant::from_millis(30));
        t.set(Timer::Ack, Instant::from_millis(10));
        assert_eq!(t.next(), Some(Instant::from_millis(10)));
        assert_eq!(
            t.expired(Instant::from_millis(10)).collect::<Vec<_>>(),
            vec![Timer::Ack]
        );
        assert_eq!(t.next(), Some(Instant::from_millis(30)));
    }
}
