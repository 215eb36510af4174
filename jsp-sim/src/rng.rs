//! The run's only source of randomness.
//!
//! A [`SimRng`] is seeded from the run's `u64` seed (expanded with SHA-256 into a ChaCha20 key,
//! the same generator the core uses), and everything random in a run — link losses, jitter,
//! scenario choices and each node's own [`jsp_core::rand::Rng`] — is forked from it. Nothing else
//! is random, so a seed replays a run exactly on every machine.

use jsp_core::rand::Rng;
use jsp_core::Duration;
use sha2::{Digest, Sha256};

/// A seeded deterministic generator with the distributions the simulator needs.
#[derive(Debug)]
pub struct SimRng(Rng);

impl SimRng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"jsp-sim seed v1");
        h.update(seed.to_le_bytes());
        Self(Rng::from_seed(h.finalize().into()))
    }

    /// An independent generator forked from this one (one per link, node or purpose), so that
    /// draws in one part of a run do not shift the draws of another.
    pub fn fork(&mut self) -> Self {
        Self(self.0.fork())
    }

    /// A seeded CSPRNG for a hosted node.
    pub fn fork_core(&mut self) -> Rng {
        self.0.fork()
    }

    /// A uniformly random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.u64()
    }

    /// A uniform value in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0.below(bound)
    }

    /// A uniform value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// A uniform `f64` in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`. Draws nothing when `p <= 0`, so a knob that is off costs
    /// nothing and does not shift other draws.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.f64() < p
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
    }

    /// An exponential sample with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// A uniform duration in `lo..=hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        Duration::from_nanos(self.range(lo.as_nanos() as u64, hi.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_and_distributions_stay_in_range() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        assert_eq!(a.u64(), b.u64());
        assert_ne!(SimRng::new(8).u64(), SimRng::new(7).u64());
        for _ in 0..1000 {
            let x = a.f64();
            assert!((0.0..1.0).contains(&x));
            assert!(a.range(3, 5) >= 3 && a.range(3, 5) <= 5);
            assert!(a.exponential(2.0) >= 0.0);
        }
        assert!(!a.chance(0.0) && a.chance(1.0));
    }
}
