//! Links: one direction of a path between two hosts, and what happens to a datagram on it.
//!
//! A datagram entering a [`LinkDirection`] goes, in order, through:
//! 1. the link state: dropped while the link is down (outage, partition);
//! 2. the MTU check: dropped when its IP size (UDP payload + [`HEADER_OVERHEAD`]) exceeds `mtu`;
//! 3. the bottleneck: serialized at `bandwidth` after the datagrams queued ahead of it, or
//!    dropped when the bounded drop-tail queue is full (so a large queue shows bufferbloat);
//! 4. the wire: random loss, then Gilbert–Elliott burst loss;
//! 5. propagation: `delay` plus a jitter sample. Jitter keeps the link FIFO (a datagram never
//!    overtakes the one before it); reordering is its own knob, which holds a datagram back by
//!    `reorder_delay` so later ones overtake it;
//! 6. corruption (one random bit flipped) and duplication (a second copy arrives shortly after).
//!
//! Invariant: the queue never holds more than `queue_bytes` bytes, whatever the input.

use std::collections::VecDeque;

use jsp_core::{Duration, Instant};

use crate::rng::SimRng;
use crate::trace::DropReason;

/// Bytes of IPv4 + UDP header counted on top of each UDP payload, for the MTU and for
/// serialization time.
pub const HEADER_OVERHEAD: usize = 28;

/// How jitter (extra one-way delay per datagram) is distributed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    /// No jitter.
    None,
    /// Uniform in `0..=max`.
    Uniform {
        /// The largest extra delay.
        max: Duration,
    },
    /// `|N(0, std_dev)|`, the magnitude of a normal sample.
    Normal {
        /// Standard deviation.
        std_dev: Duration,
    },
    /// Exponential with the given mean (a long tail, like radio scheduling).
    Exponential {
        /// The mean extra delay.
        mean: Duration,
    },
}

impl Jitter {
    fn sample(&self, rng: &mut SimRng) -> Duration {
        let secs = match *self {
            Self::None => return Duration::ZERO,
            Self::Uniform { max } => return rng.duration(Duration::ZERO, max),
            Self::Normal { std_dev } => rng.normal().abs() * std_dev.as_secs_f64(),
            Self::Exponential { mean } => rng.exponential(mean.as_secs_f64()),
        };
        // Cap a pathological tail at 10 s so one sample cannot stall a run.
        Duration::from_secs_f64(secs.clamp(0.0, 10.0))
    }
}

/// Gilbert–Elliott two-state burst loss.
///
/// The chain steps once per datagram, so back-to-back datagrams share a burst, and also once per
/// `step` of idle time, so that a burst ends in time even when the link carries little: without
/// that, a sparse flow (probe timeouts backing off, one ACK each) would stay in a burst for as
/// many seconds as it takes to send the few datagrams that end it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state (1 / mean burst length).
    pub p_bad_to_good: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
    /// Idle time that counts as one more step of the chain.
    pub step: Duration,
}

impl GilbertElliott {
    /// The long-run average loss rate.
    pub fn mean_loss(&self) -> f64 {
        let total = self.p_good_to_bad + self.p_bad_to_good;
        if total <= 0.0 {
            return self.loss_good;
        }
        let bad = self.p_good_to_bad / total;
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    /// The probability of being in the bad state after `k` steps, from `bad` now:
    /// `π + (s − π)·(1 − p − r)^k`, with `π` the stationary bad probability.
    fn bad_after(&self, bad: bool, k: u64) -> f64 {
        let (p, r) = (self.p_good_to_bad, self.p_bad_to_good);
        if p + r <= 0.0 {
            return if bad { 1.0 } else { 0.0 };
        }
        let pi = p / (p + r);
        let start = if bad { 1.0 } else { 0.0 };
        pi + (start - pi) * powu(1.0 - p - r, k)
    }
}

/// `x^k` by repeated squaring (basic operations only, so it is the same on every platform).
fn powu(mut x: f64, mut k: u64) -> f64 {
    let mut acc = 1.0;
    while k > 0 {
        if k & 1 == 1 {
            acc *= x;
        }
        x *= x;
        k >>= 1;
    }
    acc
}

/// One direction's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay. Default 10 ms.
    pub delay: Duration,
    /// Extra delay per datagram. Default none.
    pub jitter: Jitter,
    /// Bottleneck rate in bits per second; `None` is infinite (no serialization, no queue).
    /// Default `None`.
    pub bandwidth_bps: Option<u64>,
    /// Drop-tail queue bound in bytes (datagrams waiting for or in serialization). Default 256 KiB.
    pub queue_bytes: usize,
    /// Random loss probability per datagram. Default 0.
    pub loss: f64,
    /// Burst loss. Default none.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a datagram arrives twice. Default 0.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay`. Default 0.
    pub reorder: f64,
    /// How long a reordered datagram is held back. Default 5 ms.
    pub reorder_delay: Duration,
    /// Probability that one random bit of a datagram is flipped. Default 0.
    pub corrupt: f64,
    /// Largest IP packet carried (UDP payload + 28). Default 1500.
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Jitter::None,
            bandwidth_bps: None,
            queue_bytes: 256 << 10,
            loss: 0.0,
            burst_loss: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.0,
            mtu: 1500,
        }
    }
}

impl LinkConfig {
    /// Whether this direction can lose, corrupt or refuse a datagram by itself (ignoring outages).
    pub fn is_lossless(&self) -> bool {
        self.loss <= 0.0 && self.burst_loss.is_none() && self.corrupt <= 0.0
    }
}

/// A change to a link direction that takes effect at a scheduled time.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkChange {
    /// The link goes down: everything sent is dropped until the matching `Up`. Outages nest:
    /// the link is up again only when every `Down` has had its `Up`, so overlapping outages
    /// keep it down until the last one ends.
    Down,
    /// One outage ends.
    Up,
    /// A new bottleneck rate (`None`: infinite). Datagrams already queued keep their timing.
    Bandwidth(Option<u64>),
    /// A new one-way delay.
    Delay(Duration),
    /// A new random-loss probability.
    Loss(f64),
    /// Replace all settings.
    Config(LinkConfig),
}

impl core::fmt::Display for LinkChange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Down => f.write_str("down"),
            Self::Up => f.write_str("up"),
            Self::Bandwidth(Some(b)) => write!(f, "bandwidth {b} bit/s"),
            Self::Bandwidth(None) => f.write_str("bandwidth unlimited"),
            Self::Delay(d) => write!(f, "delay {d:?}"),
            Self::Loss(p) => write!(f, "loss {p}"),
            Self::Config(c) => write!(f, "config {c:?}"),
        }
    }
}

/// Counters of one link direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams offered to the link.
    pub offered: u64,
    /// Datagrams scheduled for delivery (duplicates included).
    pub delivered: u64,
    /// UDP payload bytes scheduled for delivery.
    pub bytes_delivered: u64,
    /// Random losses.
    pub lost: u64,
    /// Burst losses.
    pub burst_lost: u64,
    /// Drop-tail queue overflows.
    pub queue_drops: u64,
    /// Datagrams larger than the MTU.
    pub too_big: u64,
    /// Datagrams sent while the link was down.
    pub down_drops: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub reordered: u64,
    /// Datagrams with a flipped bit.
    pub corrupted: u64,
    /// The largest queue occupancy seen, in bytes.
    pub max_queue_bytes: u64,
}

impl LinkStats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.lost + self.burst_lost + self.queue_drops + self.too_big + self.down_drops
    }

    /// Adds another direction's counters (max for the high-water mark).
    pub fn add(&mut self, o: &Self) {
        self.offered += o.offered;
        self.delivered += o.delivered;
        self.bytes_delivered += o.bytes_delivered;
        self.lost += o.lost;
        self.burst_lost += o.burst_lost;
        self.queue_drops += o.queue_drops;
        self.too_big += o.too_big;
        self.down_drops += o.down_drops;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.corrupted += o.corrupted;
        self.max_queue_bytes = self.max_queue_bytes.max(o.max_queue_bytes);
    }
}

/// What the link decided for one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped.
    Dropped(DropReason),
    /// Arrives at the first instant; a duplicate also arrives at the second when present. The
    /// payload may have been corrupted in place.
    Arrives(Instant, Option<Instant>),
}

/// One direction of a link, with its state.
#[derive(Debug)]
pub struct LinkDirection {
    config: LinkConfig,
    /// Outages in progress; the link is up when zero.
    downs: u32,
    rng: SimRng,
    /// When the bottleneck finishes serializing what it holds.
    busy_until: Instant,
    /// (serialization end, size) of each datagram in the queue.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    last_arrival: Instant,
    ge_bad: bool,
    ge_at: Instant,
    stats: LinkStats,
    /// When recording: how long each datagram the bottleneck accepted waited in its queue.
    queue_delays: Option<Vec<Duration>>,
}

impl LinkDirection {
    /// A link direction with its own generator.
    pub fn new(config: LinkConfig, rng: SimRng) -> Self {
        Self {
            config,
            downs: 0,
            rng,
            busy_until: Instant::ZERO,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_arrival: Instant::ZERO,
            ge_bad: false,
            ge_at: Instant::ZERO,
            stats: LinkStats::default(),
            queue_delays: None,
        }
    }

    /// From now on, keeps how long each datagram accepted by the bottleneck waits in the queue
    /// before its serialization starts (see [`Self::queue_delays`]).
    pub fn record_queue_delays(&mut self) {
        self.queue_delays.get_or_insert_with(Vec::new);
    }

    /// The queueing delays recorded, in order (empty unless [`Self::record_queue_delays`] was
    /// called; a link without a bottleneck never queues). For a datagram whose round trip sees
    /// an empty queue the other way, this is its RTT minus the path's base RTT.
    pub fn queue_delays(&self) -> &[Duration] {
        self.queue_delays.as_deref().unwrap_or(&[])
    }

    /// The current settings.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.downs == 0
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Applies a scheduled change.
    pub fn apply(&mut self, change: &LinkChange) {
        match change {
            LinkChange::Down => self.downs += 1,
            LinkChange::Up => self.downs = self.downs.saturating_sub(1),
            LinkChange::Bandwidth(b) => self.config.bandwidth_bps = *b,
            LinkChange::Delay(d) => self.config.delay = *d,
            LinkChange::Loss(p) => self.config.loss = *p,
            LinkChange::Config(c) => self.config = c.clone(),
        }
    }

    fn serialization(&self, ip_len: usize, bps: u64) -> Duration {
        let bits = ip_len as u128 * 8;
        Duration::from_nanos(((bits * 1_000_000_000) / u128::from(bps.max(1))) as u64)
    }

    /// Decides the fate of `data` sent at `now`; may corrupt it in place.
    pub fn transmit(&mut self, now: Instant, data: &mut [u8]) -> Fate {
        self.stats.offered += 1;
        if !self.is_up() {
            self.stats.down_drops += 1;
            return Fate::Dropped(DropReason::LinkDown);
        }
        let ip_len = data.len() + HEADER_OVERHEAD;
        if ip_len > self.config.mtu {
            self.stats.too_big += 1;
            return Fate::Dropped(DropReason::TooBig);
        }
        let departs = match self.config.bandwidth_bps {
            Some(bps) => {
                while self.queue.front().is_some_and(|(end, _)| *end <= now) {
                    if let Some((_, size)) = self.queue.pop_front() {
                        self.queued_bytes -= size;
                    }
                }
                if self.queued_bytes + ip_len > self.config.queue_bytes {
                    self.stats.queue_drops += 1;
                    return Fate::Dropped(DropReason::QueueFull);
                }
                let start = self.busy_until.max(now);
                if let Some(d) = &mut self.queue_delays {
                    d.push(start.saturating_duration_since(now));
                }
                let end = start + self.serialization(ip_len, bps);
                self.busy_until = end;
                self.queue.push_back((end, ip_len));
                self.queued_bytes += ip_len;
                self.stats.max_queue_bytes =
                    self.stats.max_queue_bytes.max(self.queued_bytes as u64);
                end
            }
            None => now,
        };
        if self.rng.chance(self.config.loss) {
            self.stats.lost += 1;
            return Fate::Dropped(DropReason::Loss);
        }
        if let Some(ge) = self.config.burst_loss {
            let idle_steps = if ge.step.is_zero() {
                0
            } else {
                (now.saturating_duration_since(self.ge_at).as_nanos() / ge.step.as_nanos()) as u64
            };
            if idle_steps > 0 {
                self.ge_bad = self.rng.chance(ge.bad_after(self.ge_bad, idle_steps));
            }
            self.ge_at = now;
            let flip = if self.ge_bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.rng.chance(flip) {
                self.ge_bad = !self.ge_bad;
            }
            let p = if self.ge_bad {
                ge.loss_bad
            } else {
                ge.loss_good
            };
            if self.rng.chance(p) {
                self.stats.burst_lost += 1;
                return Fate::Dropped(DropReason::BurstLoss);
            }
        }
        let jitter = self.config.jitter.sample(&mut self.rng);
        let mut arrival = (departs + self.config.delay + jitter).max(self.last_arrival);
        self.last_arrival = arrival;
        if self.rng.chance(self.config.reorder) {
            self.stats.reordered += 1;
            arrival += self.config.reorder_delay;
        }
        if !data.is_empty() && self.rng.chance(self.config.corrupt) {
            self.stats.corrupted += 1;
            let bit = self.rng.below(data.len() as u64 * 8);
            data[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        self.stats.delivered += 1;
        self.stats.bytes_delivered += data.len() as u64;
        let dup = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            self.stats.delivered += 1;
            self.stats.bytes_delivered += data.len() as u64;
            Some(arrival + self.rng.duration(Duration::ZERO, Duration::from_millis(1)))
        } else {
            None
        };
        Fate::Arrives(arrival, dup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(config: LinkConfig) -> LinkDirection {
        LinkDirection::new(config, SimRng::new(1))
    }

    #[test]
    fn a_bottleneck_serializes_and_its_queue_drops_at_the_bound() {
        let mut l = dir(LinkConfig {
            delay: Duration::from_millis(10),
            bandwidth_bps: Some(8_000_000), // 1 byte per µs
            queue_bytes: 3 * 1028,
            ..LinkConfig::default()
        });
        let t0 = Instant::from_millis(1);
        let mut d = vec![0u8; 1000];
        let arrivals: Vec<Fate> = (0..4).map(|_| l.transmit(t0, &mut d)).collect();
        assert_eq!(
            arrivals[0],
            Fate::Arrives(t0 + Duration::from_micros(1028 + 10_000), None)
        );
        assert_eq!(
            arrivals[2],
            Fate::Arrives(t0 + Duration::from_micros(3 * 1028 + 10_000), None)
        );
        assert_eq!(arrivals[3], Fate::Dropped(DropReason::QueueFull));
        assert_eq!(l.stats().max_queue_bytes, 3 * 1028);
        // Once the first one is serialized there is room again.
        let later = t0 + Duration::from_micros(1028);
        assert!(matches!(l.transmit(later, &mut d), Fate::Arrives(..)));
    }

    #[test]
    fn mtu_outage_and_loss_drop_with_their_reason() {
        let mut l = dir(LinkConfig {
            mtu: 1028,
            loss: 1.0,
            ..LinkConfig::default()
        });
        assert_eq!(
            l.transmit(Instant::ZERO, &mut [0u8; 1001]),
            Fate::Dropped(DropReason::TooBig)
        );
        assert_eq!(
            l.transmit(Instant::ZERO, &mut [0u8; 1000]),
            Fate::Dropped(DropReason::Loss)
        );
        l.apply(&LinkChange::Down);
        l.apply(&LinkChange::Down);
        l.apply(&LinkChange::Up);
        assert_eq!(
            l.transmit(Instant::ZERO, &mut [0u8; 10]),
            Fate::Dropped(DropReason::LinkDown),
            "overlapping outages keep the link down until the last ends"
        );
        l.apply(&LinkChange::Up);
        assert!(l.is_up());
    }

    #[test]
    fn jitter_keeps_order_and_reordering_breaks_it() {
        let mut l = dir(LinkConfig {
            jitter: Jitter::Uniform {
                max: Duration::from_millis(20),
            },
            ..LinkConfig::default()
        });
        let mut last = Instant::ZERO;
        for i in 0..200 {
            match l.transmit(Instant::from_micros(i * 100), &mut [0u8; 100]) {
                Fate::Arrives(at, None) => {
                    assert!(at >= last);
                    last = at;
                }
                other => panic!("{other:?}"),
            }
        }
        let mut l = dir(LinkConfig {
            reorder: 0.5,
            corrupt: 1.0,
            duplicate: 1.0,
            ..LinkConfig::default()
        });
        let mut d = [0u8; 100];
        let Fate::Arrives(_, Some(_)) = l.transmit(Instant::ZERO, &mut d) else {
            panic!("expected a duplicate");
        };
        assert_eq!(d.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_near_its_mean() {
        let ge = GilbertElliott {
            p_good_to_bad: 0.02,
            p_bad_to_good: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
            step: Duration::from_millis(10),
        };
        let mut l = dir(LinkConfig {
            burst_loss: Some(ge),
            ..LinkConfig::default()
        });
        let n = 100_000;
        let mut lost = 0;
        let mut runs = 0;
        let mut prev = false;
        for _ in 0..n {
            let now_lost = matches!(l.transmit(Instant::ZERO, &mut [0u8; 10]), Fate::Dropped(_));
            lost += u32::from(now_lost);
            runs += u32::from(now_lost && !prev);
            prev = now_lost;
        }
        let rate = f64::from(lost) / f64::from(n);
        assert!((rate - ge.mean_loss()).abs() < 0.02, "{rate}");
        assert!(f64::from(lost) / f64::from(runs) > 3.0, "bursts average ~4");

        // Sparse datagrams, one per second: the burst has long ended between them, so each is
        // lost at about the mean rate, not in long runs.
        let mut l = dir(LinkConfig {
            burst_loss: Some(ge),
            ..LinkConfig::default()
        });
        let mut longest = 0;
        let mut run = 0;
        for i in 0..5000 {
            let lost = matches!(
                l.transmit(Instant::from_millis(1000 * i), &mut [0u8; 10]),
                Fate::Dropped(_)
            );
            run = if lost { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        assert!(longest <= 4, "a sparse flow saw {longest} losses in a row");
    }
}
