//! Receive side of the CRYPTO stream: reassembles CRYPTO frame data by offset, one assembler per
//! packet-number space.
//!
//! Representation: a window buffer starting at the read offset, as long as the highest byte
//! received, with a parallel "received" mark per byte; the first `contiguous` bytes have no gap.
//! Both are bounded by `max_buffered` (callers use 64 KiB), whatever the peer sends: data ending
//! beyond `read_offset + max_buffered` is refused with CRYPTO_BUFFER_EXCEEDED. Duplicate and
//! overlapping data is accepted; bytes already received keep their first value.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use crate::error::{TransportError, TransportErrorCode};

/// Default bound on buffered CRYPTO data per packet-number space: 64 KiB.
pub const DEFAULT_MAX_CRYPTO_BUFFER: usize = 64 * 1024;

/// Reassembles the CRYPTO stream of one packet-number space.
#[derive(Debug, Clone)]
pub struct CryptoAssembler {
    /// Stream offset of `buf[0]`.
    read_offset: u64,
    /// Bytes from `read_offset` to the highest received end; unreceived bytes are zero.
    buf: Vec<u8>,
    /// Whether each byte of `buf` has been received.
    received: Vec<bool>,
    /// `buf[..contiguous]` is received without gaps.
    contiguous: usize,
    max_buffered: usize,
}

impl CryptoAssembler {
    /// An empty assembler at offset 0 that buffers at most `max_buffered` bytes past the read
    /// offset (see [`DEFAULT_MAX_CRYPTO_BUFFER`]).
    pub fn new(max_buffered: usize) -> Self {
        Self {
            read_offset: 0,
            buf: Vec::new(),
            received: Vec::new(),
            contiguous: 0,
            max_buffered,
        }
    }

    /// Adds `data` at stream `offset`. Duplicate and overlapping data is fine; data ending beyond
    /// `read_offset + max_buffered` fails with CRYPTO_BUFFER_EXCEEDED (and changes nothing).
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), TransportError> {
        let exceeded = || {
            TransportError::new(
                TransportErrorCode::CRYPTO_BUFFER_EXCEEDED,
                "CRYPTO data beyond the buffer limit",
            )
        };
        let len = u64::try_from(data.len()).map_err(|_| exceeded())?;
        let end = offset.checked_add(len).ok_or_else(exceeded)?;
        let limit = u64::try_from(self.max_buffered)
            .map_or(u64::MAX, |m| self.read_offset.saturating_add(m));
        if end > limit {
            return Err(exceeded());
        }
        let contiguous_end = self.read_offset + self.contiguous as u64;
        if data.is_empty() || end <= contiguous_end {
            return Ok(()); // nothing new
        }
        // Skip the part already delivered or ready; indices below are relative to `buf`.
        let start = offset.max(contiguous_end);
        let skip = usize::try_from(start - offset).map_err(|_| exceeded())?;
        let data = data.get(skip..).unwrap_or_default();
        let rel_start = usize::try_from(start - self.read_offset).map_err(|_| exceeded())?;
        let rel_end = usize::try_from(end - self.read_offset).map_err(|_| exceeded())?;
        if self.buf.len() < rel_end {
            self.buf.resize(rel_end, 0);
            self.received.resize(rel_end, false);
        }
        let (Some(dst), Some(marks)) = (
            self.buf.get_mut(rel_start..rel_end),
            self.received.get_mut(rel_start..rel_end),
        ) else {
            return Err(exceeded()); // unreachable: both were just sized to rel_end
        };
        for ((d, m), s) in dst.iter_mut().zip(marks.iter_mut()).zip(data) {
            if !*m {
                *d = *s;
                *m = true;
            }
        }
        let rest = self.received.get(self.contiguous..).unwrap_or_default();
        self.contiguous += rest.iter().take_while(|&&m| m).count();
        Ok(())
    }

    /// The contiguous bytes available from the read offset (not yet consumed).
    pub fn contiguous(&self) -> &[u8] {
        self.buf.get(..self.contiguous).unwrap_or_default()
    }

    /// Consumes `n` bytes from the front of [`CryptoAssembler::contiguous`] (at most all of
    /// them), advancing the read offset.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.contiguous);
        self.buf.drain(..n);
        self.received.drain(..n);
        self.contiguous -= n;
        self.read_offset += n as u64;
        if self.buf.is_empty() {
            // Between messages (the usual case once a message is read): release the buffers,
            // so that an idle connection keeps nothing here.
            self.buf = Vec::new();
            self.received = Vec::new();
        }
    }

    /// Stream offset of the first unconsumed byte.
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// Bytes held past the read offset, including gaps (at most `max_buffered`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether bytes past the contiguous prefix are waiting for a gap to fill.
    pub fn has_gaps(&self) -> bool {
        self.buf.len() > self.contiguous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_and_overlap() {
        let mut a = CryptoAssembler::new(100);
        a.insert(5, b"fghij").unwrap();
        assert_eq!(a.contiguous(), b"");
        assert!(a.has_gaps());
        a.insert(3, b"de").unwrap();
        a.insert(0, b"abcd").unwrap();
        assert_eq!(a.contiguous(), b"abcdefghij");
        a.consume(4);
        assert_eq!(a.read_offset(), 4);
        assert_eq!(a.contiguous(), b"efghij");
        a.insert(0, b"abcdefghijk").unwrap();
        assert_eq!(a.contiguous(), b"efghijk");
        a.consume(100);
        assert_eq!(a.read_offset(), 11);
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn overflow_is_crypto_buffer_exceeded() {
        let mut a = CryptoAssembler::new(16);
        a.insert(0, &[0; 16]).unwrap();
        let err = a.insert(10, &[0; 7]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        let err = a.insert(u64::MAX, &[1]).unwrap_err();
        assert_eq!(err.code, TransportErrorCode::CRYPTO_BUFFER_EXCEEDED);
        // Consuming frees room.
        a.consume(8);
        a.insert(16, &[0; 8]).unwrap();
        assert_eq!(a.contiguous().len(), 16);
        assert!(a.insert(24, &[0; 1]).is_err());
        assert!(a.buffered() <= 16);
    }

    #[test]
    fn empty_data_buffers_nothing() {
        let mut a = CryptoAssembler::new(16);
        a.insert(10, &[]).unwrap();
        assert_eq!(a.buffered(), 0);
        assert!(!a.has_gaps());
        assert!(a.insert(17, &[]).is_err());
    }

    proptest! {
        /// Random segments of a message, inserted in any order with duplicates and overlaps and
        /// interleaved reads, reassemble to the original bytes; memory stays within the bound.
        #[test]
        fn reassembles_against_model(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            cuts in proptest::collection::vec((any::<prop::sample::Index>(), 1usize..60), 1..60),
            reads in proptest::collection::vec(0usize..50, 1..60),
        ) {
            let max = 512;
            let mut a = CryptoAssembler::new(max);
            let mut out = Vec::new();
            let mut segments: Vec<(usize, usize)> = cuts
                .iter()
                .map(|(i, len)| {
                    let s = i.index(data.len());
                    (s, (s + len).min(data.len()))
                })
                .collect();
            // Then every byte once, so the whole message is covered.
            segments.extend((0..data.len()).step_by(37).map(|s| (s, (s + 37).min(data.len()))));
            for (k, (s, e)) in segments.iter().enumerate() {
                a.insert(*s as u64, &data[*s..*e]).unwrap();
                prop_assert!(a.buffered() <= max);
                // Model: everything contiguous so far matches the original.
                let ready = a.contiguous().to_vec();
                let from = a.read_offset() as usize;
                prop_assert_eq!(&ready[..], &data[from..from + ready.len()]);
                let n = reads[k % reads.len()];
                out.extend_from_slice(&ready[..n.min(ready.len())]);
                a.consume(n);
            }
            out.extend_from_slice(a.contiguous());
            prop_assert_eq!(out, data);
        }
    }
}
