//! Flow-control windows: the credit we extend to the peer (receive side, with auto-tuning) and
//! the credit the peer extends to us (send side), for one stream or the whole connection.
//!
//! Invariants:
//! - an advertised receive limit never decreases, and `limit - consumed` (the bytes the peer may
//!   still send that the application has not released) never exceeds the current window, which
//!   never exceeds its ceiling — so the receiver never buffers more than its window;
//! - a send limit never decreases, and `used <= max` always holds (writes are capped by it).
//!
//! Auto-tuning (RFC 9000 leaves it to implementations; the rule is quiche's idea, our code): a
//! window update is due once half the window has been consumed since the last one; if that half
//! was consumed in less than two round trips, the reader keeps up with a sender that the window
//! throttles, so the window doubles (up to its ceiling) before the update is computed.

use crate::coding::VARINT_MAX;
use crate::time::{Duration, Instant};

/// RFC 9002's initial RTT, used for auto-tuning until [`super::Streams::set_rtt`] gives a sample.
pub(super) const INITIAL_RTT: Duration = Duration::from_millis(333);

/// Credit we extend to the peer: how far it may send.
#[derive(Debug, Clone)]
pub(super) struct RecvWindow {
    /// The current window size.
    window: u64,
    /// The auto-tuning ceiling.
    max_window: u64,
    /// The limit last computed (the highest offset or total the peer may reach).
    limit: u64,
    /// Bytes the application released (read or discarded).
    consumed: u64,
    /// When the current limit was computed.
    epoch: Instant,
}

impl RecvWindow {
    /// A window of `window` bytes that may grow to `max_window`, opened at `now`.
    pub(super) fn new(window: u64, max_window: u64, now: Instant) -> Self {
        let window = window.min(VARINT_MAX);
        Self {
            window,
            max_window: max_window.clamp(window, VARINT_MAX),
            limit: window,
            consumed: 0,
            epoch: now,
        }
    }

    /// The limit the peer may send up to.
    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// The current window size.
    pub(super) fn window(&self) -> u64 {
        self.window
    }

    /// Records `n` more bytes released by the application at `now`; returns whether the limit
    /// was raised and the peer should be told.
    pub(super) fn release(&mut self, n: u64, now: Instant, rtt: Duration) -> bool {
        self.consumed = self.consumed.saturating_add(n).min(self.limit);
        let left = self.limit - self.consumed;
        if left > self.window / 2 {
            return false;
        }
        if now.saturating_duration_since(self.epoch) < rtt.saturating_mul(2) {
            let grown = self.window.saturating_mul(2).min(self.max_window);
            if grown > self.window {
                tracing::trace!(from = self.window, to = grown, "receive window auto-tuned");
                self.window = grown;
            }
        }
        self.epoch = now;
        let limit = self.consumed.saturating_add(self.window).min(VARINT_MAX);
        let raised = limit > self.limit;
        self.limit = self.limit.max(limit);
        raised
    }
}

/// Credit the peer extends to us.
#[derive(Debug, Clone, Default)]
pub(super) struct SendCredit {
    /// The peer's limit.
    max: u64,
    /// Credit taken so far (bytes accepted from the application).
    used: u64,
    /// The limit a BLOCKED signal was last queued for (one signal per limit value).
    signalled: Option<u64>,
}

impl SendCredit {
    /// Credit of `max` bytes.
    pub(super) fn new(max: u64) -> Self {
        Self {
            max,
            used: 0,
            signalled: None,
        }
    }

    /// The peer's limit.
    pub(super) fn max(&self) -> u64 {
        self.max
    }

    /// Credit left.
    pub(super) fn available(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }

    /// Takes `n` bytes of credit (callers never take more than [`Self::available`]).
    pub(super) fn take(&mut self, n: u64) {
        self.used = self.used.saturating_add(n);
    }

    /// Gives back `n` bytes taken but never sent (a reset stream's unsent data).
    pub(super) fn give_back(&mut self, n: u64) {
        self.used = self.used.saturating_sub(n);
    }

    /// Raises the limit to `max`; returns whether it grew (limits never shrink).
    pub(super) fn raise(&mut self, max: u64) -> bool {
        let grew = max > self.max;
        self.max = self.max.max(max);
        grew
    }

    /// Whether a BLOCKED signal for the current limit is still owed; marks it as signalled.
    pub(super) fn take_signal(&mut self) -> bool {
        if self.signalled == Some(self.max) {
            return false;
        }
        self.signalled = Some(self.max);
        true
    }

    /// Whether we are blocked at exactly `limit` (a lost BLOCKED frame is still worth resending).
    pub(super) fn blocked_at(&self, limit: u64) -> bool {
        self.max == limit && self.available() == 0
    }
}
