//! Anti-replay sliding window over packet numbers (RFC 6479 style).
//!
//! Each packet-number space keeps one [`ReplayWindow`]: the largest packet number accepted so far
//! and a bitmap of which of the [`REPLAY_WINDOW`] packet numbers below it were accepted. A packet
//! is processed only if its number is above the largest, or inside the window and not yet marked;
//! a number older than the window is refused even if it was never seen, because nothing is
//! remembered about it any more. So a replayed or duplicated datagram is never processed twice,
//! whatever the reordering and loss, in fixed memory (a `[u64; 128]` ring and one integer:
//! about 1 KiB per space, allocated once at the first packet and freed by [`ReplayWindow::release`]
//! when the space is discarded, so that an idle connection carries one ring, not three).
//!
//! The bitmap is a ring of 64-bit blocks indexed by `pn / 64`; moving the window forward clears
//! only the blocks it passes over (at most the ring's length, so the cost per packet is bounded
//! whatever the jump). One block more than `REPLAY_WINDOW / 64` is kept so that every number
//! within `REPLAY_WINDOW` of the largest has its own bit (RFC 6479 §2.3: the window of a ring of
//! `n` blocks is `(n - 1) * 64` bits when the block of the largest number is only partly used).
//!
//! Packet numbers are at most 2^62 − 1 on the wire; the window works on the whole `u64` range.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

/// Packet numbers below the largest accepted one that the window still tracks: a packet whose
/// number is `REPLAY_WINDOW` or more below the largest is dropped as too old. WireGuard's value
/// (a 8192-bit ring less one block): at 10 Gbit/s of 1200-byte packets it spans about 8 ms of
/// reordering, far more than a congestion-controlled path produces.
pub const REPLAY_WINDOW: u64 = 8128;

const BLOCK_BITS: u64 = 64;
/// Blocks in the ring: one more than the window needs, for the partly used newest block.
const BLOCKS: usize = (REPLAY_WINDOW / BLOCK_BITS) as usize + 1;

/// Why [`ReplayWindow::check`] refuses a packet number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Never seen and within (or above) the window: process it.
    Fresh,
    /// Already accepted: a duplicate or a replay.
    Duplicate,
    /// Older than the window: nothing is known about it, so it is refused.
    TooOld,
}

/// The accepted packet numbers of one packet-number space, as a sliding window.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// The largest packet number accepted, if any.
    largest: Option<u64>,
    /// Bit `pn % 64` of block `(pn / 64) % BLOCKS`: `pn` was accepted. `None` before the first
    /// packet and after [`Self::release`].
    bitmap: Option<Box<[u64; BLOCKS]>>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every packet number is fresh.
    pub const fn new() -> Self {
        Self {
            largest: None,
            bitmap: None,
        }
    }

    /// Frees the ring: from now on every packet number is refused (the space is discarded).
    pub fn release(&mut self) {
        self.bitmap = None;
        self.largest = Some(u64::MAX);
    }

    /// The largest packet number accepted so far.
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    fn slot(pn: u64) -> (usize, u64) {
        let block = ((pn / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1u64 << (pn % BLOCK_BITS))
    }

    /// Whether `pn` would be accepted, without recording it (a cheap test before decryption).
    pub fn check(&self, pn: u64) -> ReplayVerdict {
        let Some(largest) = self.largest else {
            return ReplayVerdict::Fresh;
        };
        if pn > largest {
            return ReplayVerdict::Fresh;
        }
        if largest - pn >= REPLAY_WINDOW {
            return ReplayVerdict::TooOld;
        }
        let (block, bit) = Self::slot(pn);
        match self.bitmap.as_deref().and_then(|m| m.get(block)) {
            Some(b) if b & bit == 0 => ReplayVerdict::Fresh,
            _ => ReplayVerdict::Duplicate,
        }
    }

    /// Checks `pn` and, if fresh, records it (call once the packet has been authenticated).
    /// Returns the verdict before recording: only `Fresh` packets may be processed.
    pub fn check_and_insert(&mut self, pn: u64) -> ReplayVerdict {
        let verdict = self.check(pn);
        if verdict != ReplayVerdict::Fresh {
            return verdict;
        }
        let Some(bitmap) = self.bitmap.as_deref_mut() else {
            // The first packet (a released window refuses everything in `check`).
            let mut ring = Box::new([0; BLOCKS]);
            let (block, bit) = Self::slot(pn);
            if let Some(b) = ring.get_mut(block) {
                *b |= bit;
            }
            self.bitmap = Some(ring);
            self.largest = Some(pn);
            return ReplayVerdict::Fresh;
        };
        match self.largest {
            Some(largest) if pn <= largest => {}
            Some(largest) => {
                // Slide forward: clear the blocks between the old largest's block (exclusive)
                // and the new one's (inclusive); a jump of a whole ring or more clears them all.
                let old_block = largest / BLOCK_BITS;
                let new_block = pn / BLOCK_BITS;
                let passed = (new_block - old_block).min(BLOCKS as u64);
                for i in 1..=passed {
                    let (block, _) = Self::slot((old_block + i).wrapping_mul(BLOCK_BITS));
                    if let Some(b) = bitmap.get_mut(block) {
                        *b = 0;
                    }
                }
                self.largest = Some(pn);
            }
            None => {
                bitmap.fill(0);
                self.largest = Some(pn);
            }
        }
        let (block, bit) = Self::slot(pn);
        if let Some(b) = bitmap.get_mut(block) {
            *b |= bit;
        }
        ReplayVerdict::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn a_duplicate_is_refused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_insert(0), ReplayVerdict::Fresh);
        assert_eq!(w.check_and_insert(0), ReplayVerdict::Duplicate);
        assert_eq!(w.check_and_insert(1), ReplayVerdict::Fresh);
        assert_eq!(w.check(1), ReplayVerdict::Duplicate);
        assert_eq!(w.check(0), ReplayVerdict::Duplicate);
        assert_eq!(w.check(2), ReplayVerdict::Fresh);
    }

    #[test]
    fn reordering_within_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        let top = REPLAY_WINDOW + 1000;
        assert_eq!(w.check_and_insert(top), ReplayVerdict::Fresh);
        // Every number of the window below the largest, in descending order, then again.
        for pn in (top - REPLAY_WINDOW + 1..top).rev() {
            assert_eq!(w.check_and_insert(pn), ReplayVerdict::Fresh, "pn {pn}");
        }
        for pn in top - REPLAY_WINDOW + 1..=top {
            assert_eq!(w.check_and_insert(pn), ReplayVerdict::Duplicate, "pn {pn}");
        }
        assert_eq!(w.check(top - REPLAY_WINDOW), ReplayVerdict::TooOld);
        assert_eq!(w.largest(), Some(top));
    }

    #[test]
    fn numbers_older_than_the_window_are_refused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_insert(REPLAY_WINDOW + 10), ReplayVerdict::Fresh);
        assert_eq!(w.check(10), ReplayVerdict::TooOld);
        assert_eq!(w.check(11), ReplayVerdict::Fresh);
        assert_eq!(w.check_and_insert(0), ReplayVerdict::TooOld);
        // Accepting a number that moves the window leaves the old ones behind.
        assert_eq!(w.check_and_insert(11), ReplayVerdict::Fresh);
        assert_eq!(w.check_and_insert(REPLAY_WINDOW + 11), ReplayVerdict::Fresh);
        assert_eq!(w.check(11), ReplayVerdict::TooOld);
    }

    #[test]
    fn a_large_jump_clears_every_stale_bit() {
        let mut w = ReplayWindow::new();
        for pn in 0..REPLAY_WINDOW {
            w.check_and_insert(pn);
        }
        // Far ahead, so that the new window shares no number with the old one but every slot
        // of the ring is reused: stale bits must read as fresh.
        let ring = BLOCKS as u64 * BLOCK_BITS;
        let top = 3 * ring + 5;
        assert_eq!(w.check_and_insert(top), ReplayVerdict::Fresh);
        assert!(top - REPLAY_WINDOW >= REPLAY_WINDOW);
        for pn in top - REPLAY_WINDOW + 1..top {
            assert_eq!(w.check(pn), ReplayVerdict::Fresh, "pn {pn}");
        }
    }

    #[test]
    fn wraparound_at_large_numbers() {
        let mut w = ReplayWindow::new();
        let top = (1u64 << 62) - 1;
        for pn in top - 100..=top {
            assert_eq!(w.check_and_insert(pn), ReplayVerdict::Fresh);
        }
        for pn in top - 100..=top {
            assert_eq!(w.check(pn), ReplayVerdict::Duplicate);
        }
        assert_eq!(w.check(top - REPLAY_WINDOW), ReplayVerdict::TooOld);
        assert_eq!(w.check(top - REPLAY_WINDOW + 1), ReplayVerdict::Fresh);
        // The very top of u64 works too (the ring index wraps, nothing overflows).
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_insert(u64::MAX - 1), ReplayVerdict::Fresh);
        assert_eq!(w.check_and_insert(u64::MAX), ReplayVerdict::Fresh);
        assert_eq!(w.check_and_insert(u64::MAX), ReplayVerdict::Duplicate);
        assert_eq!(w.check_and_insert(u64::MAX - 1), ReplayVerdict::Duplicate);
        assert_eq!(w.check_and_insert(u64::MAX - 2), ReplayVerdict::Fresh);
    }

    #[test]
    fn a_released_window_refuses_everything() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_insert(3), ReplayVerdict::Fresh);
        w.release();
        for pn in [0, 4, 1 << 20] {
            assert_ne!(w.check(pn), ReplayVerdict::Fresh);
            assert_ne!(w.check_and_insert(pn), ReplayVerdict::Fresh);
        }
    }

    #[test]
    fn memory_is_fixed() {
        assert!(core::mem::size_of::<ReplayWindow>() <= 24);
        let mut w = ReplayWindow::new();
        w.check_and_insert(7);
        assert_eq!(w.bitmap.as_deref().map(|b| b.len()), Some(BLOCKS));
        assert!(BLOCKS as u64 * BLOCK_BITS >= REPLAY_WINDOW + BLOCK_BITS);
    }

    proptest! {
        /// Against a model that remembers every number: the window accepts exactly the numbers
        /// the model has not seen and that are within the window of the largest accepted.
        #[test]
        fn matches_a_hash_set_model(
            base in prop_oneof![Just(0u64), Just((1u64 << 62) - 10_000), any::<u64>().prop_map(|v| v >> 2)],
            steps in proptest::collection::vec(-(REPLAY_WINDOW as i64 + 600)..600, 1..600),
        ) {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut largest: Option<u64> = None;
            let mut cursor = base;
            for step in steps {
                cursor = cursor.saturating_add_signed(step);
                let pn = cursor;
                let expected = if seen.contains(&pn) {
                    ReplayVerdict::Duplicate
                } else if largest.is_some_and(|l| pn < l && l - pn >= REPLAY_WINDOW) {
                    ReplayVerdict::TooOld
                } else {
                    ReplayVerdict::Fresh
                };
                // A seen number older than the window is reported too old: both refuse it.
                let got = w.check_and_insert(pn);
                if expected == ReplayVerdict::Duplicate {
                    prop_assert_ne!(got, ReplayVerdict::Fresh);
                } else {
                    prop_assert_eq!(got, expected, "pn {}", pn);
                }
                if got == ReplayVerdict::Fresh {
                    seen.insert(pn);
                    largest = Some(largest.map_or(pn, |l| l.max(pn)));
                }
                prop_assert_eq!(w.largest(), largest);
            }
        }

        /// A permutation of a range with duplicates mixed in (the network's reordering and
        /// duplication): every number is accepted exactly once as long as it is within the
        /// window when it arrives, and every repeat is refused.
        #[test]
        fn permutations_with_duplicates_accept_each_number_once(
            base in 0u64..(1 << 40),
            order in Just((0u64..3000).collect::<Vec<_>>()).prop_shuffle(),
            repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..500),
        ) {
            let mut arrivals: Vec<u64> = order.iter().map(|o| base + o).collect();
            for (k, r) in repeats.iter().enumerate() {
                let at = r.index(arrivals.len());
                let dup = arrivals[r.index(arrivals.len())];
                arrivals.insert((at + k) % arrivals.len(), dup);
            }
            let mut w = ReplayWindow::new();
            let mut accepted = HashSet::new();
            for pn in arrivals {
                let fresh = w.check_and_insert(pn) == ReplayVerdict::Fresh;
                if fresh {
                    prop_assert!(accepted.insert(pn), "{} accepted twice", pn);
                } else {
                    prop_assert!(accepted.contains(&pn), "{} refused but never accepted", pn);
                }
            }
            // 3000 numbers all lie within one window: each was accepted exactly once.
            prop_assert_eq!(accepted.len(), 3000);
        }
    }
}
