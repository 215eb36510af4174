//! Named network profiles, with their numbers, and the faults a run can schedule.
//!
//! "Up" is client → server, "down" is server → client. Delays are one-way (the round trip is
//! twice the delay plus jitter and queueing). Queue sizes are in bytes of IP packets.
//!
//! | profile | down / up | one-way delay | jitter | loss | queue | other |
//! |---|---|---|---|---|---|---|
//! | `lan` | 1 Gbit/s both | 0.1 ms | uniform ≤ 20 µs | 0 | 1 MiB | |
//! | `wifi` | 100 / 40 Mbit/s | 4 ms | normal σ 2 ms | 0.2 % | 512 KiB | reorder 0.5 %, duplicate 0.1 % |
//! | `lte` | 30 / 10 Mbit/s | 25 ms | exponential mean 4 ms | 0.1 % | 375 KiB (100 ms at 30 Mbit/s) | |
//! | `3g` | 2 / 0.5 Mbit/s | 75 ms | uniform ≤ 20 ms | 1 % | 64 KiB | corrupt 0.1 % |
//! | `satellite` | 20 / 5 Mbit/s | 300 ms (GEO) | uniform ≤ 5 ms | 0.5 % | 1 MiB | |
//! | `lossy` | 20 Mbit/s both | 20 ms | none | 5 % random | 256 KiB | |
//! | `bursty` | 20 Mbit/s both | 20 ms | none | Gilbert–Elliott: p 1 %, r 30 % per datagram or per 10 ms idle, 100 % in bad (≈ 3.2 %, bursts of ≈ 3.3) | 256 KiB | |
//! | `bufferbloat` | 10 Mbit/s both | 10 ms | none | 0 | 2 MiB (≈ 1.7 s of queue) | |
//! | `flaky` | 20 / 10 Mbit/s | 30 ms | uniform ≤ 5 ms | 0.5 % | 256 KiB | 1.5 s outage every 8 s from 2 s on |

use jsp_core::Duration;

use crate::link::{GilbertElliott, Jitter, LinkConfig};

/// A scheduled fault, applied to both directions of every client's link.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The link is down from `at` for `duration` (a partition when it hits every client).
    Outage {
        /// Start, from the beginning of the run.
        at: Duration,
        /// Length.
        duration: Duration,
    },
    /// The bottleneck rate changes at `at` (`None`: unlimited).
    Bandwidth {
        /// When.
        at: Duration,
        /// The new rate in bits per second.
        bps: Option<u64>,
    },
    /// The one-way delay changes at `at`.
    Delay {
        /// When.
        at: Duration,
        /// The new one-way delay.
        delay: Duration,
    },
    /// The client's NAT rebinds at `at`: the server sees it from a new port, and datagrams to
    /// the old one are lost.
    Rebind {
        /// When.
        at: Duration,
    },
}

impl Fault {
    /// When the fault starts.
    pub fn at(&self) -> Duration {
        match self {
            Self::Outage { at, .. }
            | Self::Bandwidth { at, .. }
            | Self::Delay { at, .. }
            | Self::Rebind { at } => *at,
        }
    }
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Outage { at, duration } => write!(
                f,
                "outage at {:.3}s for {:.3}s",
                at.as_secs_f64(),
                duration.as_secs_f64()
            ),
            Self::Bandwidth { at, bps: Some(b) } => {
                write!(
                    f,
                    "bandwidth {} kbit/s at {:.3}s",
                    b / 1000,
                    at.as_secs_f64()
                )
            }
            Self::Bandwidth { at, bps: None } => {
                write!(f, "bandwidth unlimited at {:.3}s", at.as_secs_f64())
            }
            Self::Delay { at, delay } => write!(
                f,
                "delay {:.1}ms at {:.3}s",
                delay.as_secs_f64() * 1e3,
                at.as_secs_f64()
            ),
            Self::Rebind { at } => write!(f, "NAT rebinding at {:.3}s", at.as_secs_f64()),
        }
    }
}

/// A named network: both link directions and the faults that come with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Client → server.
    pub up: LinkConfig,
    /// Server → client.
    pub down: LinkConfig,
    /// Faults built into the profile (the outages of `flaky`).
    pub faults: Vec<Fault>,
}

/// The names of the built-in profiles.
pub const PROFILE_NAMES: &[&str] = &[
    "lan",
    "wifi",
    "lte",
    "3g",
    "satellite",
    "lossy",
    "bursty",
    "bufferbloat",
    "flaky",
];

const MBIT: u64 = 1_000_000;

/// The bottleneck rates [`Profile::lte_steps`] cycles through, 10 s each (bits per second).
pub const LTE_STEPS: [u64; 4] = [10 * MBIT, 3 * MBIT, 10 * MBIT, 5 * MBIT];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn both(name: &str, link: LinkConfig) -> Profile {
    Profile {
        name: name.to_owned(),
        up: link.clone(),
        down: link,
        faults: Vec::new(),
    }
}

fn asym(name: &str, link: LinkConfig, down_bps: u64, up_bps: u64) -> Profile {
    Profile {
        name: name.to_owned(),
        up: LinkConfig {
            bandwidth_bps: Some(up_bps),
            ..link.clone()
        },
        down: LinkConfig {
            bandwidth_bps: Some(down_bps),
            ..link
        },
        faults: Vec::new(),
    }
}

impl Profile {
    /// A symmetric 100 Mbit/s path with 25 ms each way (50 ms RTT), a queue of one
    /// bandwidth-delay product (625,000 bytes) and `loss` random loss in both directions: the
    /// benchmarks' lossy link.
    pub fn random_loss(name: &str, loss: f64) -> Self {
        let link = LinkConfig {
            delay: ms(25),
            bandwidth_bps: Some(100 * MBIT),
            queue_bytes: 625_000,
            loss,
            ..LinkConfig::default()
        };
        Self {
            name: name.to_owned(),
            up: link.clone(),
            down: link,
            faults: Vec::new(),
        }
    }

    /// The benchmarks' mobile link with bandwidth steps: `lte` without its random loss
    /// ([`Self::clean`]), its bottleneck stepping every 10 s through the rates of
    /// [`LTE_STEPS`] (10, 3, 10 and 5 Mbit/s, both directions; a mean of 7 Mbit/s up), for
    /// 20 minutes. [`Self::named`] knows it, but it is not in [`PROFILE_NAMES`]: a scenario of
    /// the benchmarks, not a network the soak tests draw.
    pub fn lte_steps() -> Self {
        let mut p = Self::named("lte")
            .unwrap_or_else(|| unreachable!("lte is a built-in profile"))
            .clean()
            .with_bandwidth_steps(&LTE_STEPS, Duration::from_secs(10), 119);
        p.name = "lte-steps".into();
        p
    }

    /// The built-in profile called `name` (one of [`PROFILE_NAMES`], or `lte-steps`:
    /// [`Self::lte_steps`]), or `None`.
    pub fn named(name: &str) -> Option<Self> {
        let p = match name {
            "lte-steps" => return Some(Self::lte_steps()),
            "lan" => both(
                name,
                LinkConfig {
                    delay: Duration::from_micros(100),
                    jitter: Jitter::Uniform {
                        max: Duration::from_micros(20),
                    },
                    bandwidth_bps: Some(1000 * MBIT),
                    queue_bytes: 1 << 20,
                    ..LinkConfig::default()
                },
            ),
            "wifi" => asym(
                name,
                LinkConfig {
                    delay: ms(4),
                    jitter: Jitter::Normal { std_dev: ms(2) },
                    queue_bytes: 512 << 10,
                    loss: 0.002,
                    reorder: 0.005,
                    reorder_delay: ms(3),
                    duplicate: 0.001,
                    ..LinkConfig::default()
                },
                100 * MBIT,
                40 * MBIT,
            ),
            "lte" => asym(
                name,
                LinkConfig {
                    delay: ms(25),
                    jitter: Jitter::Exponential { mean: ms(4) },
                    queue_bytes: 375_000,
                    loss: 0.001,
                    ..LinkConfig::default()
                },
                30 * MBIT,
                10 * MBIT,
            ),
            "3g" => asym(
                name,
                LinkConfig {
                    delay: ms(75),
                    jitter: Jitter::Uniform { max: ms(20) },
                    queue_bytes: 64 << 10,
                    loss: 0.01,
                    corrupt: 0.001,
                    ..LinkConfig::default()
                },
                2 * MBIT,
                MBIT / 2,
            ),
            "satellite" => asym(
                name,
                LinkConfig {
                    delay: ms(300),
                    jitter: Jitter::Uniform { max: ms(5) },
                    queue_bytes: 1 << 20,
                    loss: 0.005,
                    ..LinkConfig::default()
                },
                20 * MBIT,
                5 * MBIT,
            ),
            "lossy" => both(
                name,
                LinkConfig {
                    delay: ms(20),
                    bandwidth_bps: Some(20 * MBIT),
                    loss: 0.05,
                    ..LinkConfig::default()
                },
            ),
            "bursty" => both(
                name,
                LinkConfig {
                    delay: ms(20),
                    bandwidth_bps: Some(20 * MBIT),
                    burst_loss: Some(GilbertElliott {
                        p_good_to_bad: 0.01,
                        p_bad_to_good: 0.3,
                        loss_good: 0.0,
                        loss_bad: 1.0,
                        step: ms(10),
                    }),
                    ..LinkConfig::default()
                },
            ),
            "bufferbloat" => both(
                name,
                LinkConfig {
                    delay: ms(10),
                    bandwidth_bps: Some(10 * MBIT),
                    queue_bytes: 2 << 20,
                    ..LinkConfig::default()
                },
            ),
            "flaky" => {
                let mut p = asym(
                    name,
                    LinkConfig {
                        delay: ms(30),
                        jitter: Jitter::Uniform { max: ms(5) },
                        loss: 0.005,
                        ..LinkConfig::default()
                    },
                    20 * MBIT,
                    10 * MBIT,
                );
                p.faults = (0..40)
                    .map(|i| Fault::Outage {
                        at: ms(2000 + 8000 * i),
                        duration: ms(1500),
                    })
                    .collect();
                p
            }
            _ => return None,
        };
        Some(p)
    }

    /// Every built-in profile.
    pub fn all() -> Vec<Self> {
        PROFILE_NAMES
            .iter()
            .filter_map(|n| Self::named(n))
            .collect()
    }

    /// This profile with its random and burst loss, duplication, reordering and corruption
    /// taken out of both directions: its rates, delays, jitter and queues alone.
    pub fn clean(mut self) -> Self {
        for l in [&mut self.up, &mut self.down] {
            l.loss = 0.0;
            l.burst_loss = None;
            l.duplicate = 0.0;
            l.reorder = 0.0;
            l.corrupt = 0.0;
        }
        self
    }

    /// This profile with its bottleneck (both directions) stepping every `every` through
    /// `steps` (bits per second), cycling: at `k × every`, for `k` from 1 to `changes`, the rate
    /// becomes `steps[k % steps.len()]` (so `steps[0]` should be the profile's own rate, which
    /// holds until the first change). No steps or no changes: the profile as it is.
    pub fn with_bandwidth_steps(mut self, steps: &[u64], every: Duration, changes: u32) -> Self {
        if steps.is_empty() {
            return self;
        }
        self.faults.extend((1..=changes).map(|k| Fault::Bandwidth {
            at: every.saturating_mul(k),
            bps: Some(steps[k as usize % steps.len()]),
        }));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lte_steps_is_clean_lte_stepping_every_ten_seconds() {
        let p = Profile::lte_steps();
        let lte = Profile::named("lte").unwrap();
        assert_eq!(p.name, "lte-steps");
        assert_eq!(Profile::named("lte-steps"), Some(p.clone()));
        assert!(
            !PROFILE_NAMES.contains(&"lte-steps"),
            "not drawn by the soak tests"
        );
        assert_eq!((p.up.loss, p.down.loss), (0.0, 0.0));
        assert_eq!(p.up.delay, lte.up.delay);
        assert_eq!(p.up.bandwidth_bps, Some(LTE_STEPS[0]));
        let steps: Vec<_> = p
            .faults
            .iter()
            .map(|f| match f {
                Fault::Bandwidth { at, bps } => (at.as_secs(), *bps),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(steps.len(), 119);
        assert_eq!(
            &steps[..4],
            &[
                (10, Some(3_000_000)),
                (20, Some(10_000_000)),
                (30, Some(5_000_000)),
                (40, Some(10_000_000))
            ]
        );
        assert_eq!(steps[118], (1190, Some(5_000_000)));
        assert_eq!(
            Profile::named("wifi")
                .unwrap()
                .with_bandwidth_steps(&[], Duration::from_secs(1), 5)
                .faults,
            vec![]
        );
    }

    #[test]
    fn every_named_profile_exists_and_unknown_names_do_not() {
        assert_eq!(Profile::all().len(), PROFILE_NAMES.len());
        assert!(Profile::named("dialup").is_none());
        let bursty = Profile::named("bursty").unwrap();
        let mean = bursty.up.burst_loss.unwrap().mean_loss();
        assert!((mean - 0.032).abs() < 0.001, "{mean}");
    }
}
