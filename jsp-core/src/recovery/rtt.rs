//! Round-trip time estimation (RFC 9002 §5).
//!
//! Owns the four RTT figures of a connection: the latest sample, the exponentially weighted
//! smoothed RTT, its mean deviation (`rttvar`) and the minimum RTT seen. Invariant: before the first
//! sample `smoothed = initial_rtt`, `rttvar = initial_rtt / 2`, `latest = min = 0`; after it, `min`
//! never exceeds any raw sample and the acknowledgement delay is only ever subtracted when the
//! result stays at or above `min` (so a peer's absurd ack delay cannot shrink the estimate).

use crate::time::Duration;

/// Timer granularity (RFC 9002 `kGranularity`): the smallest interval a timer is trusted to honour.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// The initial RTT used before any sample exists (RFC 9002 §6.2.2: 333 ms).
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(333);

/// RTT estimator (RFC 9002 §5): latest, smoothed, variance and minimum RTT of one path.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    rttvar: Duration,
    min: Duration,
    has_sample: bool,
}

impl RttEstimator {
    /// An estimator with no samples that reports `initial_rtt` as its smoothed RTT and half of it
    /// as its variance (RFC 9002 §5.3 / §6.2.2).
    pub fn new(initial_rtt: Duration) -> Self {
        Self {
            latest: Duration::ZERO,
            smoothed: initial_rtt,
            rttvar: initial_rtt / 2,
            min: Duration::ZERO,
            has_sample: false,
        }
    }

    /// Folds in one RTT sample (RFC 9002 §5.3).
    ///
    /// `latest` is `now` minus the send time of the newly acknowledged largest packet; `ack_delay`
    /// is the peer's reported delay (already scaled by its exponent). After the handshake is
    /// confirmed the delay is clamped to the peer's `max_ack_delay`; it is subtracted only when
    /// `latest >= min + ack_delay`, and `min` itself ignores the delay. The first sample sets
    /// `smoothed = min = latest` and `rttvar = latest / 2`; later ones update `rttvar` from the
    /// previous `smoothed` (3/4 · rttvar + 1/4 · |smoothed − adjusted|), then
    /// `smoothed = 7/8 · smoothed + 1/8 · adjusted`.
    pub fn update(
        &mut self,
        latest: Duration,
        ack_delay: Duration,
        max_ack_delay: Duration,
        handshake_confirmed: bool,
    ) {
        self.latest = latest;
        if !self.has_sample {
            self.has_sample = true;
            self.min = latest;
            self.smoothed = latest;
            self.rttvar = latest / 2;
            return;
        }
        self.min = self.min.min(latest);
        let ack_delay = if handshake_confirmed {
            ack_delay.min(max_ack_delay)
        } else {
            ack_delay
        };
        let adjusted = match self.min.checked_add(ack_delay) {
            Some(floor) if latest >= floor => latest - ack_delay,
            _ => latest,
        };
        let deviation = self.smoothed.abs_diff(adjusted);
        self.rttvar = self.rttvar.saturating_mul(3).saturating_add(deviation) / 4;
        self.smoothed = self.smoothed.saturating_mul(7).saturating_add(adjusted) / 8;
    }

    /// The most recent raw sample (zero before the first).
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The smoothed RTT (the initial RTT before the first sample).
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// The RTT variation (half the initial RTT before the first sample).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The minimum RTT seen, ignoring ack delay (zero before the first sample).
    pub fn min(&self) -> Duration {
        self.min
    }

    /// Whether at least one sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The probe timeout without `max_ack_delay` or backoff: `smoothed + max(4·rttvar, 1 ms)`.
    pub fn pto_base(&self) -> Duration {
        self.smoothed
            .saturating_add(self.rttvar.saturating_mul(4).max(GRANULARITY))
    }

    /// The loss-detection delay for a time threshold `factor` (RFC 9002 §6.1.2):
    /// `max(factor · max(smoothed, latest), GRANULARITY)`.
    pub fn loss_delay(&self, factor: f32) -> Duration {
        mul_f32_saturating(self.smoothed.max(self.latest), factor).max(GRANULARITY)
    }
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(DEFAULT_INITIAL_RTT)
    }
}

/// `d · factor` without the panics of `Duration::mul_f32`: a non-finite or non-positive factor
/// leaves `d` unchanged and the product saturates at `u64::MAX` nanoseconds.
pub(crate) fn mul_f32_saturating(d: Duration, factor: f32) -> Duration {
    if !factor.is_finite() || factor <= 0.0 {
        return d;
    }
    let nanos = d.as_nanos() as f64 * f64::from(factor);
    if nanos >= u64::MAX as f64 {
        Duration::from_nanos(u64::MAX)
    } else {
        Duration::from_nanos(nanos as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn estimator_reports_the_initial_rtt_before_any_sample() {
        let rtt = RttEstimator::new(ms(333));
        assert!(!rtt.has_sample());
        assert_eq!(rtt.smoothed(), ms(333));
        assert_eq!(rtt.rttvar(), Duration::from_micros(166_500));
        assert_eq!(rtt.latest(), Duration::ZERO);
        assert_eq!(rtt.pto_base(), ms(333) + ms(666));
    }

    #[test]
    fn estimator_follows_rfc9002_arithmetic_for_a_known_sample_series() {
        let mut rtt = RttEstimator::new(ms(333));
        let max_ack_delay = ms(25);

        // First sample: smoothed = min = latest, rttvar = latest / 2; the ack delay is ignored.
        rtt.update(ms(100), ms(10), max_ack_delay, false);
        assert!(rtt.has_sample());
        assert_eq!((rtt.latest(), rtt.min()), (ms(100), ms(100)));
        assert_eq!((rtt.smoothed(), rtt.rttvar()), (ms(100), ms(50)));

        // 120 ms with 10 ms delay: 120 >= 100 + 10, adjusted = 110.
        // rttvar = (3·50 + |100 − 110|) / 4 = 40; smoothed = (7·100 + 110) / 8 = 101.25.
        rtt.update(ms(120), ms(10), max_ack_delay, true);
        assert_eq!(rtt.rttvar(), ms(40));
        assert_eq!(rtt.smoothed(), Duration::from_micros(101_250));
        assert_eq!(rtt.min(), ms(100));

        // 80 ms: a new minimum; a 50 ms delay would take the sample below min, so it is ignored.
        // rttvar = (3·40 + 21.25) / 4 = 35.3125; smoothed = (7·101.25 + 80) / 8 = 98.59375.
        rtt.update(ms(80), ms(50), max_ack_delay, true);
        assert_eq!(rtt.min(), ms(80));
        assert_eq!(rtt.rttvar(), Duration::from_nanos(35_312_500));
        assert_eq!(rtt.smoothed(), Duration::from_nanos(98_593_750));

        // 200 ms with an absurd 10 s delay after confirmation: clamped to max_ack_delay (25 ms),
        // adjusted = 175. rttvar = (3·35.3125 + 76.40625) / 4 = 45.5859375;
        // smoothed = (7·98.59375 + 175) / 8 = 108.144531 (truncated to the nanosecond).
        rtt.update(ms(200), Duration::from_secs(10), max_ack_delay, true);
        assert_eq!(rtt.rttvar(), Duration::from_nanos(45_585_937));
        assert_eq!(rtt.smoothed(), Duration::from_nanos(108_144_531));
        assert_eq!(rtt.latest(), ms(200));

        // Before confirmation the delay is not clamped: 200 ms with 150 ms delay -> 200 >= 80 + 150
        // is false, so the raw 200 ms is used.
        let mut early = rtt.clone();
        early.update(ms(200), ms(150), max_ack_delay, false);
        assert_eq!(
            early.smoothed(),
            (rtt.smoothed() * 7 + ms(200)) / 8,
            "an implausible unclamped delay is ignored"
        );
        assert_eq!(rtt.pto_base(), rtt.smoothed() + rtt.rttvar() * 4);
    }

    #[test]
    fn absurd_inputs_saturate_instead_of_panicking() {
        let mut rtt = RttEstimator::new(ms(1));
        rtt.update(Duration::MAX, Duration::MAX, Duration::MAX, true);
        rtt.update(Duration::MAX, Duration::MAX, Duration::MAX, false);
        rtt.update(Duration::ZERO, Duration::MAX, Duration::ZERO, true);
        let _ = rtt.pto_base();
        let _ = rtt.loss_delay(f32::NAN);
        assert_eq!(rtt.min(), Duration::ZERO);
        assert_eq!(mul_f32_saturating(ms(8), 1.125), ms(9));
        assert_eq!(
            mul_f32_saturating(Duration::MAX, 2.0),
            Duration::from_nanos(u64::MAX)
        );
    }
}
