//! Byte-level codec primitives shared by every wire format in the core.
//!
//! [`Reader`] is a bounds-checked cursor over received bytes: every read returns
//! [`Truncated`] instead of panicking, so parsers built on it cannot index out of bounds.
//! [`Writer`] is a cursor over a caller-owned output buffer (DESIGN rule 3: output goes into the
//! caller's buffer); a write that does not fit returns [`BufferTooSmall`] and leaves the buffer's
//! written prefix intact.
//!
//! Variable-length integers use the QUIC encoding (RFC 9000 §16): the two high bits of the first
//! byte give the length (1, 2, 4 or 8 bytes), leaving 6, 14, 30 or 62 bits for the value.

/// The input ended before a field was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// The output buffer cannot hold what was written; `needed` more bytes were required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// How many more bytes the write needed.
    pub needed: usize,
}

/// The largest value a variable-length integer can carry (2^62 - 1).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// How many bytes the variable-length encoding of `v` takes (1, 2, 4 or 8).
///
/// Values above [`VARINT_MAX`] are not encodable; they report 8 and [`Writer::varint`] rejects them.
pub const fn varint_len(v: u64) -> usize {
    if v < (1 << 6) {
        1
    } else if v < (1 << 14) {
        2
    } else if v < (1 << 30) {
        4
    } else {
        8
    }
}

/// A bounds-checked read cursor.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, positioned at its start.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The next `n` bytes, consumed.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).ok_or(Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        self.bytes(n).map(|_| ())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        let b = *self.buf.get(self.pos).ok_or(Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A variable-length integer.
    pub fn varint(&mut self) -> Result<u64, Truncated> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut v = u64::from(first & 0x3f);
        for _ in 1..len {
            v = (v << 8) | u64::from(self.u8()?);
        }
        Ok(v)
    }

    /// A variable-length integer that must fit in `usize` (lengths).
    pub fn varint_usize(&mut self) -> Result<usize, Truncated> {
        usize::try_from(self.varint()?).map_err(|_| Truncated)
    }
}

/// A write cursor over a caller-owned buffer.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Room left in the buffer.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// The whole underlying buffer, written or not (for in-place patching of lengths).
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Consumes the writer, returning the number of bytes written.
    pub fn finish(self) -> usize {
        self.pos
    }

    fn reserve(&mut self, n: usize) -> Result<&mut [u8], BufferTooSmall> {
        let room = self.remaining();
        if n > room {
            return Err(BufferTooSmall { needed: n - room });
        }
        let start = self.pos;
        self.pos += n;
        self.buf
            .get_mut(start..start + n)
            .ok_or(BufferTooSmall { needed: n })
    }

    /// Writes `bytes`.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Writes `n` zero bytes (padding).
    pub fn zeros(&mut self, n: usize) -> Result<(), BufferTooSmall> {
        self.reserve(n)?.fill(0);
        Ok(())
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) -> Result<(), BufferTooSmall> {
        self.bytes(&[v])
    }

    /// Writes a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    /// Writes a variable-length integer in its shortest form.
    ///
    /// Values above [`VARINT_MAX`] are a programming error in the caller; they are clamped to
    /// [`VARINT_MAX`] (and caught by `debug_assert!` in tests) rather than corrupting the stream.
    pub fn varint(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.varint_with_len(v, varint_len(v))
    }

    /// Writes a variable-length integer using exactly `len` bytes (1, 2, 4 or 8), for fields that
    /// are patched in place after the fact. `len` must be large enough for `v`.
    pub fn varint_with_len(&mut self, v: u64, len: usize) -> Result<(), BufferTooSmall> {
        debug_assert!(v <= VARINT_MAX, "varint out of range");
        debug_assert!(varint_len(v) <= len, "varint does not fit its length");
        let v = v.min(VARINT_MAX);
        let (tag, len) = match len {
            1 => (0u64, 1),
            2 => (1, 2),
            4 => (2, 4),
            _ => (3, 8),
        };
        let encoded = v | (tag << (len * 8 - 2));
        let be = encoded.to_be_bytes();
        self.bytes(be.get(8 - len..).unwrap_or(&be))
    }
}

/// Fills in the 24-bit length of a `type: u8 ‖ length: u24 ‖ body` frame that starts at the
/// beginning of `frame` (handshake and file-transfer messages). A body longer than 2^24 − 1 bytes
/// gets 0xFFFFFF, which every receiver refuses, so framing never desynchronizes.
pub fn patch_u24_frame_len(frame: &mut [u8]) {
    let body_len = frame.len().saturating_sub(4);
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).min(0x00FF_FFFF);
    let [_, l0, l1, l2] = len.to_be_bytes();
    if let Some(header) = frame.get_mut(1..4) {
        header.copy_from_slice(&[l0, l1, l2]);
    }
}

/// The value of a 24-bit big-endian length field.
pub const fn u24(bytes: [u8; 3]) -> usize {
    (bytes[0] as usize) << 16 | (bytes[1] as usize) << 8 | bytes[2] as usize
}

/// Writes a varint of exactly `len` bytes into `out` (for patching a length field in place).
pub fn put_varint_at(out: &mut [u8], v: u64, len: usize) -> Result<(), BufferTooSmall> {
    Writer::new(out).varint_with_len(v, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_varint_examples() {
        // RFC 9000 Appendix A.1 sample encodings.
        let cases: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            (&[0x40, 0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(Reader::new(bytes).varint(), Ok(*value));
        }
    }

    #[test]
    fn reads_past_the_end_are_truncated_errors() {
        let mut r = Reader::new(&[0x40]);
        assert_eq!(r.varint(), Err(Truncated));
        assert_eq!(Reader::new(&[]).u8(), Err(Truncated));
        assert_eq!(Reader::new(&[1, 2]).bytes(3), Err(Truncated));
        assert_eq!(Reader::new(&[1, 2]).bytes(usize::MAX), Err(Truncated));
    }

    #[test]
    fn writes_that_do_not_fit_say_how_much_was_missing() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u32(1), Err(BufferTooSmall { needed: 1 }));
        assert_eq!(w.position(), 0);
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in 0u64..=VARINT_MAX) {
            let mut buf = [0u8; 8];
            let mut w = Writer::new(&mut buf);
            w.varint(v).unwrap();
            let n = w.finish();
            prop_assert_eq!(n, varint_len(v));
            let mut r = Reader::new(&buf[..n]);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert!(r.is_empty());
        }
    }
}
