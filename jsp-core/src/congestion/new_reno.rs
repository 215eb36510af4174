//! NewReno (RFC 9002 §7.3, Appendix B): slow start, a recovery period, and congestion avoidance.
//!
//! Owns the congestion window, the slow-start threshold and the start of the current recovery
//! period. Invariants: `minimum_window <= window`; at most one window reduction per round trip,
//! because losses of packets sent before the recovery period began are ignored; persistent
//! congestion collapses the window to the minimum and ends the recovery period.

use super::{Controller, ControllerFactory};
use crate::recovery::RttEstimator;
use crate::time::Instant;

/// NewReno parameters, in packets of the connection's maximum datagram size.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRenoConfig {
    /// Initial window in packets (default 10, RFC 9002 §7.2). Used as given, without RFC 9002's
    /// 14 720-byte cap, so a configuration states its window exactly.
    pub initial_window_packets: u64,
    /// Minimum window in packets (default 2, `kMinimumWindow`).
    pub minimum_window_packets: u64,
    /// Window multiplier on a congestion event (default 0.5, `kLossReductionFactor`); values
    /// outside `(0, 1]` are treated as 0.5.
    pub loss_reduction_factor: f32,
}

impl Default for NewRenoConfig {
    fn default() -> Self {
        Self {
            initial_window_packets: 10,
            minimum_window_packets: 2,
            loss_reduction_factor: 0.5,
        }
    }
}

/// The NewReno congestion controller (RFC 9002 §7.3).
#[derive(Clone, Debug)]
pub struct NewReno {
    max_datagram_size: u64,
    window: u64,
    minimum_window: u64,
    ssthresh: u64,
    reduction: f64,
    /// Packets sent at or before this instant belong to the current recovery period.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    avoidance_acked: u64,
}

impl NewReno {
    /// A controller in slow start with the initial window of `config`.
    pub fn new(config: &NewRenoConfig, max_datagram_size: u16) -> Self {
        let mss = u64::from(max_datagram_size.max(1));
        let minimum_window = config.minimum_window_packets.max(1).saturating_mul(mss);
        let reduction = f64::from(config.loss_reduction_factor);
        Self {
            max_datagram_size: mss,
            window: config
                .initial_window_packets
                .saturating_mul(mss)
                .max(minimum_window),
            minimum_window,
            ssthresh: u64::MAX,
            reduction: if reduction > 0.0 && reduction <= 1.0 {
                reduction
            } else {
                0.5
            },
            recovery_start: None,
            avoidance_acked: 0,
        }
    }

    /// The slow-start threshold (`u64::MAX` until the first congestion event).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    /// Whether the window is still in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }

    /// The minimum window in bytes.
    pub fn minimum_window(&self) -> u64 {
        self.minimum_window
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent <= start)
    }
}

impl Controller for NewReno {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, _bytes_in_flight: u64) {}

    fn on_ack(
        &mut self,
        _now: Instant,
        sent: Instant,
        bytes: u64,
        _rtt: &RttEstimator,
        app_limited: bool,
    ) {
        // RFC 9002 §7.8: do not grow a window the sender is not using; §7.3.2: nor during recovery.
        if app_limited || self.in_recovery(sent) {
            return;
        }
        if self.in_slow_start() {
            self.window = self.window.saturating_add(bytes);
            return;
        }
        // Congestion avoidance: one maximum datagram per window's worth of acknowledged bytes,
        // counted exactly rather than as `mss · bytes / window` rounded down per packet.
        self.avoidance_acked = self.avoidance_acked.saturating_add(bytes);
        if self.avoidance_acked >= self.window {
            self.avoidance_acked -= self.window;
            self.window = self.window.saturating_add(self.max_datagram_size);
        }
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        persistent: bool,
        _lost_bytes: u64,
    ) {
        if !self.in_recovery(sent) {
            self.recovery_start = Some(now);
            let reduced = (self.window as f64 * self.reduction) as u64;
            self.ssthresh = reduced.max(self.minimum_window);
            self.window = self.ssthresh;
            self.avoidance_acked = 0;
        }
        if persistent {
            self.window = self.minimum_window;
            self.recovery_start = None;
            self.avoidance_acked = 0;
        }
    }

    fn on_mtu_change(&mut self, max_datagram_size: u16) {
        let mss = u64::from(max_datagram_size.max(1));
        // The minimum keeps its packet count: scale it with the datagram size.
        let packets = (self.minimum_window / self.max_datagram_size.max(1)).max(1);
        self.max_datagram_size = mss;
        self.minimum_window = packets.saturating_mul(mss);
        self.window = self.window.max(self.minimum_window);
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn name(&self) -> &'static str {
        "newreno"
    }
}

/// Builds a [`NewReno`] controller per connection.
#[derive(Clone, Debug, Default)]
pub struct NewRenoFactory(pub NewRenoConfig);

impl ControllerFactory for NewRenoFactory {
    fn build(&self, _now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(NewReno::new(&self.0, max_datagram_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const MSS: u64 = 1200;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn reno() -> NewReno {
        NewReno::new(&NewRenoConfig::default(), MSS as u16)
    }

    fn rtt() -> RttEstimator {
        RttEstimator::new(Duration::from_millis(100))
    }

    #[test]
    fn slow_start_grows_the_window_by_every_acknowledged_byte() {
        let mut cc = reno();
        assert_eq!(cc.window(), 10 * MSS);
        for i in 0..10 {
            cc.on_ack(at(100 + i), at(i), MSS, &rtt(), false);
        }
        assert_eq!(
            cc.window(),
            20 * MSS,
            "one round of ACKs doubles the window"
        );
        assert!(cc.in_slow_start());
    }

    #[test]
    fn application_limited_acknowledgements_do_not_grow_the_window() {
        let mut cc = reno();
        cc.on_ack(at(100), at(0), MSS, &rtt(), true);
        assert_eq!(cc.window(), 10 * MSS);
    }

    #[test]
    fn a_loss_halves_the_window_once_per_recovery_period() {
        let mut cc = reno();
        cc.on_congestion_event(at(100), at(10), false, MSS);
        assert_eq!(cc.window(), 5 * MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        // More losses of packets sent before the recovery period began: no further reduction.
        cc.on_congestion_event(at(110), at(20), false, MSS);
        cc.on_congestion_event(at(120), at(100), false, MSS);
        assert_eq!(cc.window(), 5 * MSS);
        // Nor does the window grow from acknowledgements of those packets.
        cc.on_ack(at(130), at(50), MSS, &rtt(), false);
        assert_eq!(cc.window(), 5 * MSS);
        // A packet sent after the recovery start ends it: the next loss reduces again.
        cc.on_congestion_event(at(300), at(200), false, MSS);
        assert_eq!(cc.window(), 2 * MSS + MSS / 2);
    }

    #[test]
    fn the_window_never_falls_below_the_minimum() {
        let mut cc = reno();
        for round in 0..10u64 {
            cc.on_congestion_event(at(round * 1000 + 500), at(round * 1000 + 1), false, MSS);
        }
        assert_eq!(cc.window(), 2 * MSS);
        assert_eq!(cc.minimum_window(), 2 * MSS);
    }

    #[test]
    fn persistent_congestion_collapses_the_window_to_the_minimum() {
        let mut cc = reno();
        for i in 0..30 {
            cc.on_ack(at(100 + i), at(i), MSS, &rtt(), false);
        }
        cc.on_congestion_event(at(1000), at(900), true, 10 * MSS);
        assert_eq!(cc.window(), 2 * MSS);
        assert_eq!(
            cc.ssthresh(),
            20 * MSS,
            "ssthresh keeps half the pre-loss window"
        );
        // Persistent congestion ends the recovery period: slow start resumes at once.
        cc.on_ack(at(1100), at(950), MSS, &rtt(), false);
        assert_eq!(cc.window(), 3 * MSS);
    }

    #[test]
    fn congestion_avoidance_grows_about_one_datagram_per_window() {
        let mut cc = reno();
        cc.on_congestion_event(at(100), at(50), false, MSS); // window = ssthresh = 6000
        assert!(!cc.in_slow_start());
        let start = cc.window();
        // One window's worth of ACKs of packets sent after the recovery start.
        let packets = start / MSS;
        for i in 0..packets {
            cc.on_ack(at(300 + i), at(200 + i), MSS, &rtt(), false);
        }
        assert_eq!(cc.window(), start + MSS);
        // The next window's worth (now one packet larger) adds exactly one more.
        for i in 0..packets + 1 {
            cc.on_ack(at(500 + i), at(400 + i), MSS, &rtt(), false);
        }
        assert_eq!(cc.window(), start + 2 * MSS);
    }

    #[test]
    fn the_factory_builds_a_newreno_in_slow_start() {
        let factory = NewRenoFactory::default();
        let cc = factory.build(Instant::ZERO, 1500);
        assert_eq!(cc.name(), "newreno");
        assert_eq!(cc.window(), 15_000);
        assert_eq!(cc.pacing_rate(), None);
    }
}
