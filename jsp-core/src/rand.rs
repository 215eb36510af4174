//! The core's only source of randomness: a CSPRNG the driver seeds.
//!
//! Real drivers seed it from the operating system; the simulator seeds it from the run's seed, so
//! that a whole simulated run (keys, connection IDs, nonces) replays exactly. The generator is
//! ChaCha20 (`rand_chacha`), the same construction the operating systems use for their own CSPRNGs.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

/// A seeded cryptographically secure generator.
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// A generator seeded with 32 bytes of entropy supplied by the driver.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }

    /// `N` random bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.0.fill_bytes(&mut out);
        out
    }

    /// A random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A random value in `0..bound` (`bound` > 0), without modulo bias worth speaking of for the
    /// small bounds the core uses.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.0.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// An independent generator seeded from this one (one per connection).
    pub fn fork(&mut self) -> Self {
        Self::from_seed(self.array())
    }
}

impl core::fmt::Debug for Rng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rng(..)")
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl CryptoRng for Rng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream_and_forks_differ() {
        let mut a = Rng::from_seed([7; 32]);
        let mut b = Rng::from_seed([7; 32]);
        assert_eq!(a.array::<32>(), b.array::<32>());
        let mut fa = a.fork();
        assert_ne!(fa.array::<32>(), a.array::<32>());
        assert!(Rng::from_seed([1; 32]).below(10) < 10);
    }
}
