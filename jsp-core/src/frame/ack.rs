//! The ACK frame: which packet numbers arrived, as ranges from the largest downward.
//!
//! Wire layout (RFC 9000 §19.3): largest acknowledged, ACK delay, range count, first range
//! length, then `count` pairs of (gap, range length), then three ECN counts for type 0x03.
//! Each range covers `[largest - len, largest]`; the next range's largest is
//! `previous smallest - gap - 2`. A decoded [`Ack`] keeps the pairs as the validated encoded
//! bytes, so decoding allocates nothing however many ranges arrive; [`Ack::iter`] expands them.

use core::iter::FusedIterator;
use core::ops::RangeInclusive;

use super::codec::{measure, wire_len, write_all_or_nothing, Sink};
use super::error::FrameErrorKind;
use super::ty;
use crate::coding::{BufferTooSmall, Reader, Writer};
use crate::range_set::RangeSet;

/// ECN counters carried by an ACK of type 0x03 (RFC 9000 §19.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EcnCounts {
    /// Packets received with the ECT(0) codepoint.
    pub ect0: u64,
    /// Packets received with the ECT(1) codepoint.
    pub ect1: u64,
    /// Packets received with the CE (congestion experienced) codepoint.
    pub ce: u64,
}

/// A decoded ACK frame.
///
/// Equality compares the encoded ranges byte for byte, so two ACKs of the same ranges written
/// with different varint lengths compare unequal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The largest packet number acknowledged.
    pub largest: u64,
    /// The ACK delay in encoded units (the sender's microseconds shifted right by its
    /// `ack_delay_exponent`).
    pub delay: u64,
    /// ECN counts, present for type 0x03.
    pub ecn: Option<EcnCounts>,
    /// Length of the first range below `largest`.
    first_range: u64,
    /// How many (gap, length) pairs `ranges` holds.
    additional: u64,
    /// The validated (gap, length) pairs as received.
    ranges: &'a [u8],
}

impl<'a> Ack<'a> {
    /// The acknowledged ranges, largest first, as inclusive packet-number ranges.
    pub fn iter(&self) -> AckIter<'a> {
        AckIter {
            next: self
                .largest
                .checked_sub(self.first_range)
                .map(|smallest| smallest..=self.largest),
            pairs: Reader::new(self.ranges),
        }
    }

    /// The number of ranges, the first one included.
    pub fn range_count(&self) -> u64 {
        self.additional.saturating_add(1)
    }

    pub(super) fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        s.varint(if self.ecn.is_some() {
            ty::ACK_ECN
        } else {
            ty::ACK
        })?;
        s.varint(self.largest)?;
        s.varint(self.delay)?;
        s.varint(self.additional)?;
        s.varint(self.first_range)?;
        s.bytes(self.ranges)?;
        emit_ecn(s, self.ecn.as_ref())
    }
}

/// The ranges of an [`Ack`], largest first.
#[derive(Clone, Debug)]
pub struct AckIter<'a> {
    next: Option<RangeInclusive<u64>>,
    pairs: Reader<'a>,
}

impl Iterator for AckIter<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<RangeInclusive<u64>> {
        let current = self.next.take()?;
        if !self.pairs.is_empty() {
            // Decoding validated every pair; a failure here can only follow a caller changing
            // `largest`, and ends the iteration.
            self.next = (|| {
                let gap = self.pairs.varint().ok()?;
                let len = self.pairs.varint().ok()?;
                let largest = current.start().checked_sub(gap)?.checked_sub(2)?;
                Some(largest.checked_sub(len)?..=largest)
            })();
        }
        Some(current)
    }
}

impl FusedIterator for AckIter<'_> {}

/// Decodes an ACK body (after the type), validating every range.
pub(super) fn decode<'a>(with_ecn: bool, r: &mut Reader<'a>) -> Result<Ack<'a>, FrameErrorKind> {
    let largest = r.varint()?;
    let delay = r.varint()?;
    let additional = r.varint()?;
    let first_range = r.varint()?;
    let mut smallest = largest
        .checked_sub(first_range)
        .ok_or(FrameErrorKind::InvalidValue(
            "ACK first range exceeds the largest acknowledged",
        ))?;
    // Each further range takes at least two bytes; a count beyond that is a lie, rejected before
    // looping over it.
    if additional > wire_len(r.remaining() / 2) {
        return Err(FrameErrorKind::InvalidValue(
            "ACK range count exceeds what the frame can hold",
        ));
    }
    let pairs_start = r.rest();
    for _ in 0..additional {
        let gap = r.varint()?;
        let len = r.varint()?;
        let largest = smallest
            .checked_sub(gap)
            .and_then(|v| v.checked_sub(2))
            .ok_or(FrameErrorKind::InvalidValue(
                "ACK gap goes below packet number 0",
            ))?;
        smallest = largest
            .checked_sub(len)
            .ok_or(FrameErrorKind::InvalidValue(
                "ACK range goes below packet number 0",
            ))?;
    }
    let consumed = pairs_start.len() - r.remaining();
    let ranges = pairs_start.get(..consumed).unwrap_or_default();
    let ecn = if with_ecn {
        Some(EcnCounts {
            ect0: r.varint()?,
            ect1: r.varint()?,
            ce: r.varint()?,
        })
    } else {
        None
    };
    Ok(Ack {
        largest,
        delay,
        ecn,
        first_range,
        additional,
        ranges,
    })
}

fn emit_ecn<S: Sink>(s: &mut S, ecn: Option<&EcnCounts>) -> Result<(), S::Error> {
    if let Some(ecn) = ecn {
        s.varint(ecn.ect0)?;
        s.varint(ecn.ect1)?;
        s.varint(ecn.ce)?;
    }
    Ok(())
}

fn emit_ack<S: Sink>(
    s: &mut S,
    ranges: &RangeSet,
    delay: u64,
    ecn: Option<&EcnCounts>,
    max_ranges: usize,
) -> Result<(), S::Error> {
    let mut newest = ranges.iter().rev().take(max_ranges);
    let Some(top) = newest.next() else {
        return Ok(());
    };
    let additional = ranges.len().min(max_ranges).saturating_sub(1);
    // RangeSet ranges are non-empty and non-adjacent, so none of the subtractions below wrap.
    let largest = top.end.saturating_sub(1);
    s.varint(if ecn.is_some() { ty::ACK_ECN } else { ty::ACK })?;
    s.varint(largest)?;
    s.varint(delay)?;
    s.varint(wire_len(additional))?;
    s.varint(largest.saturating_sub(top.start))?;
    let mut smallest = top.start;
    for range in newest {
        let largest = range.end.saturating_sub(1);
        s.varint(smallest.saturating_sub(largest).saturating_sub(2))?;
        s.varint(largest.saturating_sub(range.start))?;
        smallest = range.start;
    }
    emit_ecn(s, ecn)
}

/// Encodes an ACK for `ranges` (largest range first), keeping at most `max_ranges` newest
/// ranges; `delay` already in encoded units.
///
/// Writes nothing when `ranges` is empty or `max_ranges` is 0 (an ACK acknowledges at least one
/// packet), and nothing when the frame does not fit. Every value in `ranges` and `delay` must be
/// at most 2^62 - 1.
pub fn encode_ack(
    w: &mut Writer<'_>,
    ranges: &RangeSet,
    delay: u64,
    ecn: Option<&EcnCounts>,
    max_ranges: usize,
) -> Result<(), BufferTooSmall> {
    let len = ack_encoded_len(ranges, delay, ecn, max_ranges);
    write_all_or_nothing(w, len, |w| emit_ack(w, ranges, delay, ecn, max_ranges))
}

/// The number of bytes [`encode_ack`] writes for the same arguments.
pub fn ack_encoded_len(
    ranges: &RangeSet,
    delay: u64,
    ecn: Option<&EcnCounts>,
    max_ranges: usize,
) -> usize {
    measure(|c| emit_ack(c, ranges, delay, ecn, max_ranges))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use proptest::prelude::*;

    fn set(ranges: &[core::ops::Range<u64>]) -> RangeSet {
        let mut s = RangeSet::new();
        for r in ranges {
            s.insert(r.clone());
        }
        s
    }

    fn decode_ack(bytes: &[u8]) -> Ack<'_> {
        match Frame::decode(&mut Reader::new(bytes)).unwrap() {
            Frame::Ack(ack) => ack,
            other => panic!("expected an ACK, got {other:?}"),
        }
    }

    fn encode(ranges: &RangeSet, ecn: Option<&EcnCounts>, max: usize) -> Vec<u8> {
        let mut buf = vec![0u8; ack_encoded_len(ranges, 7, ecn, max)];
        let mut w = Writer::new(&mut buf);
        encode_ack(&mut w, ranges, 7, ecn, max).unwrap();
        assert_eq!(w.remaining(), 0);
        buf
    }

    #[test]
    fn rfc_layout_of_a_two_range_ack() {
        // Packets 2..=3 and 6..=10: largest 10, first range 4, gap 6-3-2=1, length 1.
        let bytes = encode(&set(&[2..4, 6..11]), None, 8);
        assert_eq!(bytes, [0x02, 10, 7, 1, 4, 1, 1]);
        let ack = decode_ack(&bytes);
        assert_eq!((ack.largest, ack.delay, ack.range_count()), (10, 7, 2));
        assert_eq!(ack.iter().collect::<Vec<_>>(), [6..=10, 2..=3]);
    }

    #[test]
    fn an_ack_over_too_many_ranges_keeps_the_newest() {
        let ranges = set(&[0..1, 2..3, 4..5, 6..7, 8..9]);
        let ecn = EcnCounts {
            ect0: 1,
            ect1: 2,
            ce: 3,
        };
        let bytes = encode(&ranges, Some(&ecn), 3);
        let ack = decode_ack(&bytes);
        assert_eq!(ack.iter().collect::<Vec<_>>(), [8..=8, 6..=6, 4..=4]);
        assert_eq!(ack.ecn, Some(ecn));
    }

    #[test]
    fn an_empty_set_or_zero_ranges_writes_nothing() {
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        encode_ack(&mut w, &RangeSet::new(), 0, None, 4).unwrap();
        let one = set(&[1..2, 4..5]);
        encode_ack(&mut w, &one, 0, None, 0).unwrap();
        assert_eq!(w.position(), 0);
        assert_eq!(ack_encoded_len(&RangeSet::new(), 0, None, 4), 0);
    }

    #[test]
    fn an_ack_that_does_not_fit_writes_nothing() {
        let ranges = set(&[0..1, 5..6, 9..10]);
        let len = ack_encoded_len(&ranges, 0, None, 8);
        let mut buf = vec![0xaa; len - 1];
        let mut w = Writer::new(&mut buf);
        assert_eq!(
            encode_ack(&mut w, &ranges, 0, None, 8),
            Err(BufferTooSmall { needed: 1 })
        );
        assert_eq!(w.position(), 0);
    }

    #[test]
    fn an_ack_whose_largest_was_lowered_stops_iterating_instead_of_wrapping() {
        let bytes = encode(&set(&[0..2, 5..6]), None, 8);
        let mut ack = decode_ack(&bytes);
        ack.largest = 0;
        assert_eq!(ack.iter().collect::<Vec<_>>(), [0..=0]);
    }

    proptest! {
        #[test]
        fn a_decoded_ack_lists_the_range_sets_ranges_descending(
            values in proptest::collection::vec(0u64..500, 1..200),
            max in 1usize..40,
            big in 0u64..(1 << 40),
        ) {
            let mut ranges = RangeSet::new();
            for v in values { ranges.insert_one(v + big); }
            let bytes = encode(&ranges, None, max);
            let ack = decode_ack(&bytes);
            let expected: Vec<_> = ranges.iter().rev().take(max).map(|r| r.start..=r.end - 1).collect();
            prop_assert_eq!(ack.iter().collect::<Vec<_>>(), expected);
            prop_assert_eq!(ack.range_count(), ranges.len().min(max) as u64);
            prop_assert_eq!(Some(ack.largest), ranges.max());
        }
    }
}
