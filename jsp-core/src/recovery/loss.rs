//! Acknowledgement processing and loss detection over the three packet-number spaces
//! (RFC 9002 §5.1, §6.1, §7.6, Appendix A.5–A.7).
//!
//! Owns [`Recovery`]: the per-space sent-packet records, the RTT estimator, the PTO backoff and
//! the counters. Invariant: a packet leaves its record exactly once (acknowledged, lost, discarded
//! or taken), so [`Recovery::bytes_in_flight`] is always the sum of the outstanding in-flight
//! sizes; a peer's ACK only ever moves packets out, never fabricates or duplicates them.

use core::ops::RangeInclusive;

use super::rtt::RttEstimator;
use super::sent::{AckResult, SentPacket, Slot};
use super::space::Space;
use super::{AckError, AckOutcome, RecoveryConfig, RecoveryStats, MAX_ACK_RANGES};
use crate::packet::SpaceId;
use crate::time::{Duration, Instant};

/// Per-connection loss recovery over the Initial, Handshake and Data spaces.
///
/// `T` is the connection's record of the frames a packet carried, handed back on loss.
#[derive(Debug)]
pub struct Recovery<T> {
    pub(super) config: RecoveryConfig,
    pub(super) rtt: RttEstimator,
    pub(super) spaces: [Space<T>; 3],
    pub(super) pto_count: u32,
    /// When the first RTT sample was taken: only losses of packets sent since count toward
    /// persistent congestion (RFC 9002 §7.6.2).
    pub(super) first_rtt_sample: Option<Instant>,
    /// The space a client probes in while the server may not have validated its address
    /// (RFC 9002 §6.2.2.1); `None` once validated, and always `None` on a server.
    pub(super) anti_deadlock: Option<SpaceId>,
    /// When the loss-detection timer was last re-armed by an event (send, ACK, expiry): the base
    /// of the anti-deadlock PTO, which must not slide forward each time the driver asks.
    pub(super) timer_base: Instant,
    /// Scratch for the ranges of the ACK being processed (reused: no per-ACK allocation).
    ranges: Vec<RangeInclusive<u64>>,
    pub(super) stats: RecoveryStats,
}

impl<T> Recovery<T> {
    /// Recovery with nothing sent, the initial RTT of `config`, and no backoff.
    pub fn new(config: RecoveryConfig) -> Self {
        Self {
            rtt: RttEstimator::new(config.initial_rtt),
            config,
            spaces: [Space::new(), Space::new(), Space::new()],
            pto_count: 0,
            first_rtt_sample: None,
            anti_deadlock: None,
            timer_base: Instant::ZERO,
            ranges: Vec::new(),
            stats: RecoveryStats::default(),
        }
    }

    fn space(&self, space: SpaceId) -> &Space<T> {
        match space {
            SpaceId::Initial => &self.spaces[0],
            SpaceId::Handshake => &self.spaces[1],
            SpaceId::Data => &self.spaces[2],
        }
    }

    pub(super) fn space_mut(&mut self, space: SpaceId) -> &mut Space<T> {
        match space {
            SpaceId::Initial => &mut self.spaces[0],
            SpaceId::Handshake => &mut self.spaces[1],
            SpaceId::Data => &mut self.spaces[2],
        }
    }

    /// Records packet `pn` of `space`, sent at `now` (RFC 9002 A.5).
    ///
    /// Packet numbers must strictly increase per space (a skipped number becomes one the peer must
    /// never acknowledge); a non-increasing number is a caller bug: it trips a debug assertion and
    /// is otherwise ignored.
    pub fn on_packet_sent(&mut self, space: SpaceId, pn: u64, packet: SentPacket<T>, now: Instant) {
        let ack_eliciting = packet.ack_eliciting && packet.in_flight;
        let in_flight = packet.in_flight;
        let time_sent = packet.time_sent;
        let sp = self.space_mut(space);
        let recorded = sp.sent.push(pn, packet);
        debug_assert!(recorded, "packet numbers must increase in {space:?}: {pn}");
        if !recorded {
            return;
        }
        if ack_eliciting {
            sp.time_of_last_ack_eliciting = Some(time_sent);
        }
        if in_flight {
            self.timer_base = now;
        }
        self.stats.packets_sent += 1;
    }

    /// Processes an ACK frame's ranges (inclusive, largest first, as the frame decoder yields
    /// them) for `space` (RFC 9002 A.7): acknowledges packets, takes an RTT sample when the
    /// largest acknowledged is newly acknowledged and something ack-eliciting was, resets the PTO
    /// backoff, and runs loss detection. Results are appended to `out`.
    ///
    /// Acknowledgements of packets older than the window (already resolved) are ignored, except
    /// that recently lost ones count as spurious losses. The Initial space ignores the peer's ACK
    /// delay (it acknowledges Initial packets immediately, RFC 9002 §5.3).
    #[allow(clippy::too_many_arguments)]
    pub fn on_ack_received(
        &mut self,
        space: SpaceId,
        largest: u64,
        ack_delay: Duration,
        ranges: impl IntoIterator<Item = RangeInclusive<u64>>,
        handshake_confirmed: bool,
        now: Instant,
        out: &mut AckOutcome<T>,
    ) -> Result<(), AckError> {
        let mut scratch = core::mem::take(&mut self.ranges);
        scratch.clear();
        let result = collect_ranges(largest, ranges, &mut scratch).and_then(|()| {
            self.apply_ack(
                space,
                largest,
                ack_delay,
                &scratch,
                handshake_confirmed,
                now,
                out,
            )
        });
        self.ranges = scratch;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_ack(
        &mut self,
        space: SpaceId,
        largest: u64,
        ack_delay: Duration,
        ranges: &[RangeInclusive<u64>],
        handshake_confirmed: bool,
        now: Instant,
        out: &mut AckOutcome<T>,
    ) -> Result<(), AckError> {
        let sp = self.space_mut(space);
        if sp.sent.largest_sent().is_none_or(|sent| largest > sent) {
            return Err(AckError::UnsentPacketAcked { space, pn: largest });
        }
        sp.largest_acked = Some(sp.largest_acked.map_or(largest, |l| l.max(largest)));

        let mut newly_acked = 0u64;
        let mut ack_eliciting_acked = false;
        let mut largest_sent_time = None;
        let mut spurious = 0u64;
        let mut failure = None;
        // Ascending order, so `out.acked` is in packet-number order.
        'ranges: for range in ranges.iter().rev() {
            let (lo, hi) = (*range.start(), *range.end());
            spurious += sp.lost_history.take_range(lo, hi);
            let Some(last) = sp.sent.end().checked_sub(1) else {
                continue;
            };
            let (from, to) = (lo.max(sp.sent.base()), hi.min(last));
            if from > to {
                continue;
            }
            for pn in from..=to {
                match sp.sent.ack(pn) {
                    AckResult::Newly(packet) => {
                        newly_acked += 1;
                        ack_eliciting_acked |= packet.ack_eliciting;
                        if pn == largest {
                            largest_sent_time = Some(packet.time_sent);
                        }
                        out.acked.push((space, pn, packet));
                    }
                    AckResult::Nothing => {}
                    AckResult::Unsent => {
                        failure = Some(AckError::UnsentPacketAcked { space, pn });
                        break 'ranges;
                    }
                }
            }
        }
        sp.sent.compact();
        self.stats.packets_acked += newly_acked;
        self.stats.spurious_losses += spurious;
        out.spurious_losses += spurious;
        if let Some(error) = failure {
            return Err(error);
        }
        if newly_acked == 0 {
            return Ok(());
        }

        if let (Some(sent), true) = (largest_sent_time, ack_eliciting_acked) {
            let latest = now.saturating_duration_since(sent);
            let ack_delay = if space == SpaceId::Initial {
                Duration::ZERO
            } else {
                ack_delay
            };
            self.rtt.update(
                latest,
                ack_delay,
                self.config.max_ack_delay,
                handshake_confirmed,
            );
            self.first_rtt_sample.get_or_insert(now);
            out.rtt_sample = Some(latest);
        }
        // A client unsure whether the server validated its address keeps its backoff.
        if self.anti_deadlock.is_none() {
            self.pto_count = 0;
        }
        self.timer_base = now;
        self.detect_lost(space, now, out);
        Ok(())
    }

    /// Runs loss detection in `space` (RFC 9002 §6.1, A.10): every outstanding packet at or below
    /// the largest acknowledged that is `packet_threshold` numbers behind it, or was sent more than
    /// the loss delay before `now`, is declared lost and appended to `out.lost`; the earliest time
    /// a remaining one would cross the time threshold becomes the space's loss time. Also flags
    /// persistent congestion (§7.6.2, evaluated per space over the packets lost in this call).
    pub fn detect_lost(&mut self, space: SpaceId, now: Instant, out: &mut AckOutcome<T>) {
        let loss_delay = self.rtt.loss_delay(self.config.time_threshold);
        let lost_send_time = now - loss_delay;
        let threshold = self.config.packet_threshold;
        let congestion_period = self.persistent_congestion_duration();
        let first_sample = self.first_rtt_sample;
        let Self { spaces, stats, .. } = self;
        let sp = match space {
            SpaceId::Initial => &mut spaces[0],
            SpaceId::Handshake => &mut spaces[1],
            SpaceId::Data => &mut spaces[2],
        };
        sp.loss_time = None;
        let Some(largest_acked) = sp.largest_acked else {
            return;
        };
        let to = largest_acked.min(sp.sent.end().saturating_sub(1));
        // Send time of the first ack-eliciting packet lost since the last acknowledged one.
        let mut run_start: Option<Instant> = None;
        let mut persistent = false;
        for pn in sp.sent.base()..=to {
            let time_sent = match sp.sent.get(pn) {
                Some(Slot::Outstanding(packet)) => packet.time_sent,
                Some(Slot::Acked) => {
                    run_start = None;
                    continue;
                }
                Some(Slot::Lost | Slot::Unsent) | None => continue,
            };
            let lost = time_sent <= lost_send_time || largest_acked >= pn.saturating_add(threshold);
            if !lost {
                let when = time_sent + loss_delay;
                sp.loss_time = Some(sp.loss_time.map_or(when, |t| t.min(when)));
                continue;
            }
            let Some(packet) = sp.sent.mark_lost(pn) else {
                continue;
            };
            sp.lost_history.push(pn);
            stats.packets_lost += 1;
            if packet.in_flight {
                let size = u64::from(packet.size);
                stats.bytes_lost += size;
                out.lost_bytes += size;
                out.largest_lost_sent = Some(
                    out.largest_lost_sent
                        .map_or(time_sent, |t| t.max(time_sent)),
                );
            }
            if packet.ack_eliciting && first_sample.is_some_and(|first| time_sent >= first) {
                match run_start {
                    None => run_start = Some(time_sent),
                    Some(start) if time_sent - start > congestion_period => persistent = true,
                    Some(_) => {}
                }
            }
            out.lost.push((space, pn, packet));
        }
        sp.sent.compact();
        if persistent {
            stats.persistent_congestion += 1;
            out.persistent_congestion = true;
        }
    }

    /// `(smoothed + max(4·rttvar, 1 ms) + max_ack_delay) · kPersistentCongestionThreshold`
    /// (RFC 9002 §7.6.1).
    pub fn persistent_congestion_duration(&self) -> Duration {
        self.rtt
            .pto_base()
            .saturating_add(self.config.max_ack_delay)
            .saturating_mul(self.config.persistent_congestion_threshold)
    }

    /// The RTT estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Consecutive probe timeouts without an acknowledgement (the PTO backoff exponent, before
    /// the `max_pto_backoff` cap).
    pub fn pto_count(&self) -> u32 {
        self.pto_count
    }

    /// Bytes of outstanding in-flight packets over all spaces.
    pub fn bytes_in_flight(&self) -> u64 {
        self.spaces.iter().map(|s| s.sent.in_flight_bytes()).sum()
    }

    /// The largest packet number the peer acknowledged in `space`.
    pub fn largest_acked(&self, space: SpaceId) -> Option<u64> {
        self.space(space).largest_acked
    }

    /// The largest packet number recorded as sent in `space`.
    pub fn largest_sent(&self, space: SpaceId) -> Option<u64> {
        self.space(space).sent.largest_sent()
    }

    /// Outstanding packets of `space` that are ack-eliciting and in flight.
    pub fn ack_eliciting_in_flight(&self, space: SpaceId) -> usize {
        self.space(space).sent.ack_eliciting_in_flight()
    }

    /// Lifetime counters.
    pub fn stats(&self) -> &RecoveryStats {
        &self.stats
    }

    /// The configuration in force.
    /// Sets the peer's `max_ack_delay` once its transport parameters are known.
    pub fn set_max_ack_delay(&mut self, max_ack_delay: Duration) {
        self.config.max_ack_delay = max_ack_delay;
    }

    /// The parameters in use.
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }
}

/// Validates the ranges of an ACK frame into `scratch` (at most [`MAX_ACK_RANGES`] kept).
fn collect_ranges(
    largest: u64,
    ranges: impl IntoIterator<Item = RangeInclusive<u64>>,
    scratch: &mut Vec<RangeInclusive<u64>>,
) -> Result<(), AckError> {
    let mut previous_start: Option<u64> = None;
    for range in ranges {
        let (lo, hi) = (*range.start(), *range.end());
        let ordered = match previous_start {
            None => hi == largest,
            Some(start) => hi < start,
        };
        if lo > hi || !ordered {
            return Err(AckError::InvalidRanges);
        }
        previous_start = Some(lo);
        if scratch.len() < MAX_ACK_RANGES {
            scratch.push(range);
        }
    }
    if scratch.is_empty() {
        return Err(AckError::InvalidRanges);
    }
    Ok(())
}
