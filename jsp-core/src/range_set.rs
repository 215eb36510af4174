//! A set of `u64` values stored as sorted, disjoint, half-open ranges.
//!
//! Used for ACK ranges, the packet numbers an endpoint has received, and reassembly bookkeeping.
//!
//! Invariant, kept by every method: the ranges are non-empty, sorted ascending, and neither
//! overlap nor touch (`a.end < b.start` for consecutive `a`, `b`), so each maximal run of values
//! is exactly one range and the representation of a set is unique.
//!
//! Storage is a `VecDeque` of ranges. Lookups (`contains`) are a binary search, O(log n) in the
//! number of ranges. `insert` and `remove` are O(log n) to find their place plus the number of
//! ranges they merge or split, plus shifting the elements between the change and the nearer end
//! of the deque; changes at either end — the common case: new packet numbers arrive above, old
//! ones are pruned below with [`RangeSet::pop_min`] — cost O(1) amortised. `min`, `max` and
//! `pop_min` are O(1).
//!
//! `u64::MAX` itself cannot be a member (ranges are half-open); wire values are at most 2^62 - 1.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::VecDeque;
use std::ops::Range;

/// A set of `u64` values kept as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: VecDeque<Range<u64>>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every value of `range`, merging it with the ranges it overlaps or touches.
    ///
    /// Returns whether any value was not already in the set.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return false;
        }
        // The first range that overlaps or touches `range` from below, and one past the last.
        let i = self.ranges.partition_point(|r| r.end < range.start);
        let j = self.ranges.partition_point(|r| r.start <= range.end);
        if i >= j {
            // Nothing to merge with.
            self.ranges.insert(i, range);
            return true;
        }
        // `i < j`, so both exist.
        let (Some(first), Some(last)) = (self.ranges.get(i), self.ranges.get(j - 1)) else {
            return false;
        };
        if j - i == 1 && first.start <= range.start && range.end <= first.end {
            return false;
        }
        let merged = range.start.min(first.start)..range.end.max(last.end);
        self.ranges.drain(i + 1..j);
        if let Some(slot) = self.ranges.get_mut(i) {
            *slot = merged;
        }
        true
    }

    /// Adds `v`; returns whether it was new. `u64::MAX` cannot be stored and returns `false`.
    pub fn insert_one(&mut self, v: u64) -> bool {
        match v.checked_add(1) {
            Some(end) => self.insert(v..end),
            None => false,
        }
    }

    /// Removes every value of `range`, splitting a range that straddles either end.
    pub fn remove(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        // The ranges that share at least one value with `range`.
        let i = self.ranges.partition_point(|r| r.end <= range.start);
        let j = self.ranges.partition_point(|r| r.start < range.end);
        if i >= j {
            return;
        }
        let left = self
            .ranges
            .get(i)
            .filter(|r| r.start < range.start)
            .map(|r| r.start..range.start);
        let right = j
            .checked_sub(1)
            .and_then(|k| self.ranges.get(k))
            .filter(|r| r.end > range.end)
            .map(|r| range.end..r.end);
        self.ranges.drain(i..j);
        if let Some(right) = right {
            self.ranges.insert(i, right);
        }
        if let Some(left) = left {
            self.ranges.insert(i, left);
        }
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= v);
        self.ranges.get(i).is_some_and(|r| r.start <= v)
    }

    /// The smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.ranges.front().map(|r| r.start)
    }

    /// The largest value in the set.
    pub fn max(&self) -> Option<u64> {
        // A stored range is never empty, so `end >= 1`.
        self.ranges.back().map(|r| r.end.saturating_sub(1))
    }

    /// The number of ranges (maximal runs of consecutive values), not of values.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges in ascending order; `.rev()` gives them largest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + ExactSizeIterator + '_ {
        self.ranges.iter().cloned()
    }

    /// Removes and returns the lowest range.
    pub fn pop_min(&mut self) -> Option<Range<u64>> {
        self.ranges.pop_front()
    }

    /// Removes every value that is in `other`.
    ///
    /// O(m · (log n + shift)) for `m` ranges in `other`.
    pub fn subtract(&mut self, other: &RangeSet) {
        for range in other.iter() {
            if self.max().is_none_or(|max| range.start > max) {
                break;
            }
            self.remove(range);
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of ranges, not ranges of values
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(ranges: &[Range<u64>]) -> RangeSet {
        let mut s = RangeSet::new();
        for r in ranges {
            s.insert(r.clone());
        }
        s
    }

    fn ranges(s: &RangeSet) -> Vec<Range<u64>> {
        s.iter().collect()
    }

    #[test]
    fn touching_and_overlapping_ranges_coalesce() {
        let mut s = set(&[0..2, 5..7]);
        assert!(s.insert(2..5));
        assert_eq!(ranges(&s), [0..7]);
        assert!(!s.insert(1..6));
        assert!(s.insert(9..10));
        assert!(s.insert(8..12));
        assert_eq!(ranges(&s), [0..7, 8..12]);
        assert_eq!((s.min(), s.max(), s.len()), (Some(0), Some(11), 2));
    }

    #[test]
    fn removing_the_middle_of_a_range_splits_it() {
        let mut s = set(&[0..10]);
        s.remove(3..5);
        assert_eq!(ranges(&s), [0..3, 5..10]);
        s.remove(0..1);
        s.remove(9..20);
        assert_eq!(ranges(&s), [1..3, 5..9]);
        assert!(!s.contains(3) && s.contains(2) && s.contains(5) && !s.contains(9));
    }

    #[test]
    fn subtracting_a_set_removes_its_values_only() {
        let mut s = set(&[0..10, 20..30]);
        s.subtract(&set(&[2..4, 8..22, 29..40]));
        assert_eq!(ranges(&s), [0..2, 4..8, 22..29]);
        assert_eq!(s.pop_min(), Some(0..2));
        assert_eq!(s.min(), Some(4));
    }

    #[test]
    fn the_largest_u64_cannot_be_stored() {
        let mut s = RangeSet::new();
        assert!(!s.insert_one(u64::MAX));
        assert!(s.insert_one(u64::MAX - 1));
        assert_eq!(s.max(), Some(u64::MAX - 1));
        assert!(!s.is_empty() && s.contains(u64::MAX - 1) && !s.contains(u64::MAX));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Range<u64>),
        InsertOne(u64),
        Remove(Range<u64>),
        Contains(u64),
        PopMin,
        Subtract(Vec<Range<u64>>),
    }

    const DOMAIN: u64 = 48;

    fn range() -> impl Strategy<Value = Range<u64>> {
        (0..DOMAIN, 0..8u64).prop_map(|(start, len)| start..start + len)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => range().prop_map(Op::Insert),
            3 => (0..DOMAIN).prop_map(Op::InsertOne),
            2 => range().prop_map(Op::Remove),
            2 => (0..DOMAIN + 4).prop_map(Op::Contains),
            1 => Just(Op::PopMin),
            1 => proptest::collection::vec(range(), 0..4).prop_map(Op::Subtract),
        ]
    }

    /// The maximal runs of `model`, as half-open ranges.
    fn runs(model: &BTreeSet<u64>) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &v in model {
            match out.last_mut() {
                Some(last) if last.end == v => last.end = v + 1,
                _ => out.push(v..v + 1),
            }
        }
        out
    }

    fn check_invariants(s: &RangeSet) {
        let rs = ranges(s);
        for r in &rs {
            assert!(r.start < r.end, "empty range {r:?} in {rs:?}");
        }
        for pair in rs.windows(2) {
            assert!(
                pair[0].end < pair[1].start,
                "unsorted, overlapping or adjacent: {rs:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn range_set_behaves_like_a_set_of_integers(ops in proptest::collection::vec(op(), 1..64)) {
            let mut s = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(r) => {
                        let mut added = false;
                        for v in r.clone() { added |= model.insert(v); }
                        prop_assert_eq!(s.insert(r), added);
                    }
                    Op::InsertOne(v) => prop_assert_eq!(s.insert_one(v), model.insert(v)),
                    Op::Remove(r) => {
                        for v in r.clone() { model.remove(&v); }
                        s.remove(r);
                    }
                    Op::Contains(v) => prop_assert_eq!(s.contains(v), model.contains(&v)),
                    Op::PopMin => {
                        let expected = runs(&model).first().cloned();
                        if let Some(r) = &expected { for v in r.clone() { model.remove(&v); } }
                        prop_assert_eq!(s.pop_min(), expected);
                    }
                    Op::Subtract(others) => {
                        let mut other = RangeSet::new();
                        for r in others {
                            for v in r.clone() { model.remove(&v); }
                            other.insert(r);
                        }
                        s.subtract(&other);
                    }
                }
                check_invariants(&s);
                prop_assert_eq!(ranges(&s), runs(&model));
                prop_assert_eq!(s.len(), runs(&model).len());
                prop_assert_eq!(s.is_empty(), model.is_empty());
                prop_assert_eq!(s.min(), model.first().copied());
                prop_assert_eq!(s.max(), model.last().copied());
                let descending: Vec<_> = s.iter().rev().collect();
                let mut expected = runs(&model);
                expected.reverse();
                prop_assert_eq!(descending, expected);
            }
        }
    }
}
