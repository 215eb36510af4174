//! Pacing, and the connection's side of the congestion controller's feedback loop.
//!
//! Owns the [`Pacer`]: a token bucket, refilled at the controller's pacing rate, that releases
//! ack-eliciting 1-RTT/0-RTT data packets. The bucket holds a burst of about 2 ms at the pacing
//! rate, at least 10 and at most 256 datagrams — enough for a GSO batch, small enough not to
//! flood a shallow queue. When it is empty and data is waiting, [`Timer::Pacing`] is armed at the
//! instant a full datagram's worth of tokens is back, so `poll_timeout` carries the release time
//! and every driver paces without logic of its own. ACK-only packets, CLOSE, probes and handshake
//! (CRYPTO) packets are never held back: they bypass the window and the pacer alike.
//!
//! Also here: the glue that feeds the delivery-rate sampler ([`crate::congestion::delivery`]) and
//! hands the controller one [`crate::congestion::RateSample`] per ACK.
//!
//! Invariants: `0 <= tokens <= capacity`; a release time is always strictly in the future of the
//! refill it was computed from, so a pacing wake-up can never spin at one instant; nothing here
//! allocates.

use super::timers::Timer;
use super::{Connection, SentFrames};
use crate::packet::SpaceId;
use crate::recovery::AckOutcome;
use crate::time::{Duration, Instant};

/// The bucket holds this long at the pacing rate...
const BURST_INTERVAL_NANOS: f64 = 2_000_000.0;
/// ...but at least this many datagrams...
const MIN_BURST_PACKETS: f64 = 10.0;
/// ...and at most this many.
const MAX_BURST_PACKETS: f64 = 256.0;
/// Without a controller rate: `cwnd / smoothed RTT` times this.
const FALLBACK_GAIN: f64 = 1.25;

/// A token bucket in bytes (see the module documentation).
#[derive(Clone, Debug, Default)]
pub(crate) struct Pacer {
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    fn capacity(rate: u64, mtu: u64) -> f64 {
        let mtu = mtu.max(1) as f64;
        (rate as f64 * BURST_INTERVAL_NANOS / 1e9)
            .clamp(MIN_BURST_PACKETS * mtu, MAX_BURST_PACKETS * mtu)
    }

    fn refill(&mut self, now: Instant, rate: u64, mtu: u64) {
        let capacity = Self::capacity(rate, mtu);
        self.tokens = match self.last {
            None => capacity,
            Some(last) => {
                let elapsed = now.saturating_duration_since(last).as_nanos() as f64;
                (self.tokens + elapsed * rate as f64 / 1e9).min(capacity)
            }
        };
        self.last = Some(now);
    }

    /// Whether a datagram of up to `mtu` bytes may leave at `now`.
    pub(crate) fn allows(&mut self, now: Instant, rate: u64, mtu: u64) -> bool {
        self.refill(now, rate, mtu);
        // Half a byte of slack absorbs floating-point rounding at the release instant.
        self.tokens + 0.5 >= mtu as f64
    }

    /// An in-flight packet of `bytes` left.
    pub(crate) fn on_sent(&mut self, bytes: u64) {
        self.tokens = (self.tokens - bytes as f64).max(0.0);
    }

    /// When a datagram of `mtu` bytes may leave, after a refill showed it may not yet.
    pub(crate) fn next_release(&self, rate: u64, mtu: u64) -> Option<Instant> {
        let last = self.last?;
        let missing = (mtu as f64 - self.tokens).max(1.0);
        let nanos = (missing * 1e9 / rate.max(1) as f64).ceil().max(1.0);
        let nanos = if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            nanos as u64
        };
        last.checked_add(Duration::from_nanos(nanos))
    }
}

impl Connection {
    /// The rate to pace at, in bytes per second: the controller's, or `cwnd / srtt × 1.25`.
    pub(super) fn pacing_rate(&self) -> u64 {
        if let Some(rate) = self.cc.pacing_rate() {
            return rate.max(1);
        }
        let srtt = self.recovery.rtt().smoothed().as_nanos().max(1) as f64;
        let rate = self.cc.window() as f64 * 1e9 / srtt * FALLBACK_GAIN;
        if rate >= u64::MAX as f64 {
            u64::MAX
        } else {
            (rate as u64).max(1)
        }
    }

    /// Whether the pacer lets a data packet go at `now`; arms or stops [`Timer::Pacing`]
    /// accordingly (armed only while application data is waiting for it).
    pub(super) fn pacer_allows(&mut self, now: Instant) -> bool {
        let rate = self.pacing_rate();
        let mtu = u64::from(self.mtu);
        if self.pacer.allows(now, rate, mtu) {
            self.timers.stop(Timer::Pacing);
            return true;
        }
        if self.wants_data_send() {
            let at = self.pacer.next_release(rate, mtu);
            self.timers.set_or_stop(Timer::Pacing, at);
        } else {
            self.timers.stop(Timer::Pacing);
        }
        false
    }

    /// Whether the application space has paced data (not only ACKs or probes) to send.
    fn wants_data_send(&self) -> bool {
        let s = &self.spaces[SpaceId::Data.index()];
        !s.discarded
            && (self.one_rtt.is_some() || (self.side.is_client() && self.zero_rtt.is_some()))
            && (self.has_pending_data()
                || self.handshake_done_pending
                || !self.tickets_pending.is_empty())
    }

    /// Takes the delivery snapshot for an in-flight packet about to be recorded, and charges
    /// the pacer. `in_flight_before` excludes the packet.
    pub(super) fn on_in_flight_sent(
        &mut self,
        now: Instant,
        sent: &mut SentFrames,
        in_flight_before: u64,
        size: u64,
    ) {
        sent.delivery = self.delivery.on_sent(now, in_flight_before, size);
        self.pacer.on_sent(size);
    }

    /// `poll_transmit` found nothing to send: if the window had room, the application is what
    /// limits the rate, and the samples of what is in flight must say so.
    pub(super) fn check_app_limited(&mut self, cwnd_ok: bool) {
        if cwnd_ok && !self.has_pending_data() {
            self.delivery
                .on_app_limited(self.recovery.bytes_in_flight());
        }
    }

    /// The peer's `max_ack_delay` (ours until its transport parameters arrive).
    fn peer_max_ack_delay(&self) -> Duration {
        self.peer_params
            .as_ref()
            .map_or(self.transport.max_ack_delay, |p| {
                Duration::from_millis(p.max_ack_delay_ms)
            })
    }

    /// Completes the rate sample of an ACK frame whose packets were fed to the sampler and
    /// whose losses went through `process_lost`, and hands it to the controller. `ack_delay`
    /// is the frame's ACK Delay: when the frame newly acknowledges its largest packet (it gave
    /// an RTT sample), the data counts as delivered that much before `now` (see
    /// `DeliveryRate::take_sample`), bounded like the RTT's adjustment (RFC 9002 §5.3): at most
    /// the peer's `max_ack_delay`, and never below the minimum RTT.
    pub(super) fn finish_rate_sample(
        &mut self,
        now: Instant,
        out: &AckOutcome<SentFrames>,
        ack_delay: Duration,
    ) {
        let min_rtt = self.recovery.rtt().min();
        let ack_delay = out.rtt_sample.map_or(Duration::ZERO, |rtt| {
            ack_delay
                .min(self.peer_max_ack_delay())
                .min(rtt.saturating_sub(min_rtt))
        });
        let sample = self.delivery.take_sample(
            now,
            ack_delay,
            min_rtt,
            self.recovery.bytes_in_flight(),
            out.rtt_sample,
            out.ecn_ce_increase,
        );
        if sample.newly_acked > 0 || sample.newly_lost > 0 {
            self.cc.on_rate_sample(&sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u64 = 1200;

    #[test]
    fn a_full_bucket_releases_a_burst_then_paces_at_the_rate() {
        let mut p = Pacer::default();
        let rate = 1_200_000; // one datagram per millisecond
        let now = Instant::from_millis(100);
        let mut burst = 0;
        while p.allows(now, rate, MTU) {
            p.on_sent(MTU);
            burst += 1;
        }
        assert_eq!(burst, 10, "the minimum burst");
        let next = p.next_release(rate, MTU).unwrap();
        assert!(next > now);
        assert_eq!(next, now + Duration::from_millis(1));
        assert!(!p.allows(next - Duration::from_micros(10), rate, MTU));
        assert!(p.allows(next, rate, MTU));
    }

    #[test]
    fn high_rates_get_bursts_of_two_milliseconds_up_to_the_cap() {
        assert_eq!(Pacer::capacity(120_000_000, MTU), 240_000.0);
        assert_eq!(Pacer::capacity(u64::MAX, MTU), 256.0 * MTU as f64);
        assert_eq!(Pacer::capacity(0, MTU), 10.0 * MTU as f64);
    }

    #[test]
    fn a_release_is_always_in_the_future() {
        let mut p = Pacer::default();
        let now = Instant::from_millis(1);
        p.allows(now, u64::MAX, MTU);
        p.on_sent(u64::MAX);
        for rate in [1, 1000, u64::MAX] {
            let next = p.next_release(rate, MTU);
            assert!(next.is_none_or(|t| t > now), "rate {rate}");
        }
    }
}
