//! The loss-detection timer and the probe timeout (RFC 9002 §6.2, Appendix A.8–A.9).
//!
//! One timer per connection: the earliest time-threshold loss time over the spaces if any, else
//! the PTO deadline. Invariant: the deadline is a pure function of recorded events (sends, ACKs,
//! expiries) and never of the `now` at which the driver asks, so asking twice gives the same
//! answer and the deadline cannot slide forward forever.

use super::loss::Recovery;
use super::AckOutcome;
use crate::packet::SpaceId;
use crate::time::{Duration, Instant};

impl<T> Recovery<T> {
    /// Declares whether the peer may not yet have validated this endpoint's address: a client
    /// passes `Some(space)` (Handshake once it has Handshake keys, else Initial) until it has
    /// received a Handshake ACK or the handshake is confirmed, then `None`; a server always leaves
    /// `None` (RFC 9002 §6.2.2.1, `PeerCompletedAddressValidation`).
    ///
    /// While set, the PTO stays armed with nothing in flight (the anti-deadlock probe, sent in
    /// `space`) and acknowledgements do not reset the backoff.
    pub fn set_anti_deadlock(&mut self, space: Option<SpaceId>) {
        self.anti_deadlock = space;
    }

    /// The earliest time-threshold loss time over the spaces, with its space.
    pub fn earliest_loss_time(&self) -> Option<(Instant, SpaceId)> {
        SpaceId::ALL
            .into_iter()
            .zip(self.spaces.iter())
            .filter_map(|(id, sp)| Some((sp.loss_time?, id)))
            .min_by_key(|&(time, _)| time)
    }

    /// `2^min(pto_count, max_pto_backoff)`, the PTO multiplier.
    fn backoff(&self) -> u32 {
        let exponent = self.pto_count.min(self.config.max_pto_backoff).min(31);
        1u32 << exponent
    }

    /// The probe timeout of one period for `space` without backoff:
    /// `smoothed + max(4·rttvar, 1 ms)`, plus the peer's `max_ack_delay` in the Data space.
    pub fn pto_period(&self, space: SpaceId) -> Duration {
        let base = self.rtt.pto_base();
        match space {
            SpaceId::Data => base.saturating_add(self.config.max_ack_delay),
            _ => base,
        }
    }

    /// The PTO deadline and the space to probe (RFC 9002 A.8 `GetPtoTimeAndSpace`): for each
    /// space with ack-eliciting packets in flight, the send time of its last ack-eliciting packet
    /// plus `pto_period · 2^pto_count`; the Data space only once the handshake is confirmed. With
    /// nothing eligible in flight, the anti-deadlock probe if [`Recovery::set_anti_deadlock`] set
    /// one (based on the last event, not on `now`), else `None`.
    ///
    /// `now` is accepted for API symmetry; the deadline is absolute and does not depend on it.
    pub fn pto_deadline(
        &self,
        handshake_confirmed: bool,
        _now: Instant,
    ) -> Option<(Instant, SpaceId)> {
        let backoff = self.backoff();
        let mut best: Option<(Instant, SpaceId)> = None;
        for (id, sp) in SpaceId::ALL.into_iter().zip(self.spaces.iter()) {
            if sp.sent.ack_eliciting_in_flight() == 0 {
                continue;
            }
            if id == SpaceId::Data && !handshake_confirmed {
                continue;
            }
            let Some(last) = sp.time_of_last_ack_eliciting else {
                continue;
            };
            let deadline = last + self.pto_period(id).saturating_mul(backoff);
            if best.is_none_or(|(t, _)| deadline < t) {
                best = Some((deadline, id));
            }
        }
        best.or_else(|| {
            let space = self.anti_deadlock?;
            let period = self.pto_period(SpaceId::Initial).saturating_mul(backoff);
            Some((self.timer_base + period, space))
        })
    }

    /// The loss-detection timer (RFC 9002 A.8 `SetLossDetectionTimer`): the earliest loss time,
    /// else the PTO deadline; `None` when nothing needs a timer.
    pub fn loss_timer(&self, handshake_confirmed: bool, now: Instant) -> Option<Instant> {
        self.earliest_loss_time()
            .or_else(|| self.pto_deadline(handshake_confirmed, now))
            .map(|(time, _)| time)
    }

    /// Handles expiry of the loss-detection timer (RFC 9002 A.9): when a loss time is due,
    /// declares time-threshold losses into `out` and returns `None`; when the PTO is due, counts
    /// it, doubles the backoff and returns the space in which the caller must send one or two
    /// ack-eliciting probe packets. Returns `None` and changes nothing if called before either
    /// deadline (a driver may wake early).
    pub fn on_loss_timeout(
        &mut self,
        handshake_confirmed: bool,
        now: Instant,
        out: &mut AckOutcome<T>,
    ) -> Option<SpaceId> {
        if let Some((time, space)) = self.earliest_loss_time() {
            if time <= now {
                self.detect_lost(space, now, out);
                self.timer_base = now;
            }
            return None;
        }
        let (deadline, space) = self.pto_deadline(handshake_confirmed, now)?;
        if deadline > now {
            return None;
        }
        self.pto_count = self.pto_count.saturating_add(1);
        self.stats.ptos += 1;
        self.timer_base = now;
        Some(space)
    }
}
