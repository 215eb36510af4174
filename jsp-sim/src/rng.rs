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

    /// A standard normal sample (Marsaglia's polar method, with [`ln`] so that it is the same
    /// on every platform).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }

    /// An exponential sample with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * ln(1.0 - self.f64())
    }

    /// A uniform duration in `lo..=hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        Duration::from_nanos(self.range(lo.as_nanos() as u64, hi.as_nanos() as u64))
    }
}

/// The natural logarithm from IEEE-754 basic operations only (`+ - * /`, which every platform
/// rounds identically), unlike `f64::ln`, which calls the platform's math library and may differ
/// in the last bit between machines — enough to change a trace hash. For `x <= 0` returns
/// negative infinity.
pub fn ln(x: f64) -> f64 {
    if x <= 0.0 || x.is_nan() {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m * 2^e with m in [1, 2) (subnormals scaled up first).
    let (mut x, mut e) = (x, 0i64);
    if x < f64::MIN_POSITIVE {
        x *= (1u64 << 54) as f64;
        e -= 54;
    }
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln(m) = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 40.0 {
        sum += term / k;
        term *= z2;
        k += 2.0;
    }
    2.0 * sum + e as f64 * core::f64::consts::LN_2
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

    #[test]
    fn the_portable_logarithm_matches_the_platform_one() {
        for x in [
            1e-300, 1e-10, 0.001, 0.5, 0.999_999, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300,
        ] {
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 1e-14 * std.abs().max(1.0),
                "{x}: {ours} vs {std}"
            );
        }
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        let mut r = SimRng::new(3);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| r.normal()).sum::<f64>() / n as f64;
        let var: f64 = (0..n).map(|_| r.normal().powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
