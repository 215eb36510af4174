//! Delta encoding: send a *snapshot* once, then only a *delta* against it for each similar
//! payload after (application state updates, a new version of a file).
//!
//! [`encode`]`(base, target)` gives a delta; [`apply`]`(base, delta, limit)` rebuilds the target,
//! refusing with a typed [`DeltaError`] — never a panic, never more than `limit` bytes of
//! output — whatever the delta holds. A delta names the base it was made against (its length and
//! a BLAKE3 prefix) and the target it rebuilds (a BLAKE3 prefix), so applying it to the wrong
//! base, or a corrupted delta, is refused rather than producing wrong bytes.
//!
//! ## Algorithm: rolling-hash block matching
//!
//! The base is cut into blocks of `B` bytes (`B` grows with the base: 16 bytes for small
//! payloads, up to 4 KiB), each indexed by a weak rolling checksum ([`Rolling`], the rsync
//! checksum). The encoder slides a `B`-byte window over the target one byte at a time, updating
//! the checksum in O(1); on an index hit it compares the bytes, then extends the match forwards
//! and backwards as far as the bytes agree, and emits `COPY(offset, len)`; bytes between
//! matches go out as `INSERT(bytes)`. Encoding is O(target + base) time and O(base / B) memory;
//! inserted or deleted bytes anywhere cost only the changed region plus at most a block.
//!
//! Why not zstd's patch-from mode (the base as a raw-content dictionary, `--patch-from`)? It
//! compresses the literals too and so gives smaller deltas, but (1) the encoder must hold the
//! whole base in zstd's window (memory = base size on both sides, and window limits on the
//! decoder), (2) it needs C zstd to encode, and the pure-Rust decoder's support for raw-content
//! prefixes is not something a receiver can count on, and (3) — decisive for file resume — in
//! a resume the *receiver* holds the old version and the *sender* the new one: nobody holds both,
//! so an encoder that needs the base cannot run. Block matching splits cleanly: the side with
//! the new data publishes per-block checksums (the manifest's rolling checksums per chunk, see
//! [`crate::file`]), and the side with the old data finds those blocks in it by rolling the
//! same checksum ([`Rolling`], [`find_blocks`]) — the zsync arrangement. A delta from
//! [`encode`] may be zstd-compressed afterwards by the caller when literals dominate.
//!
//! ## Format (version 1)
//!
//! ```text
//! "JD" 0x01 ‖ varint base_len ‖ base_hash[8] ‖ varint target_len ‖ target_hash[8] ‖ op*
//! op = 0x00 ‖ varint n ‖ n bytes            INSERT (n ≥ 1)
//!    | 0x01 ‖ varint offset ‖ varint n       COPY base[offset .. offset + n] (n ≥ 1)
//! ```
//!
//! Varints are LEB128, at most 10 bytes, minimal; the hashes are the first 8 bytes of BLAKE3.
//! The ops must produce exactly `target_len` bytes and the delta must end there.

use core::fmt;
use std::collections::HashMap;

/// The first bytes of every delta: "JD" and the format version.
pub const MAGIC: [u8; 3] = *b"JD\x01";

const OP_INSERT: u8 = 0;
const OP_COPY: u8 = 1;
const HASH_PREFIX: usize = 8;

/// Why a delta cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaError {
    /// The delta does not start with [`MAGIC`] (not a delta, or another version).
    BadMagic,
    /// The delta ends in the middle of a field.
    Truncated,
    /// A varint is longer than 10 bytes, overflows 64 bits or is not minimal.
    BadVarint,
    /// The delta was made against another base (length or hash differ).
    BaseMismatch,
    /// The declared target is longer than the caller's limit.
    TooLarge {
        /// The declared length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// An op has an unknown tag.
    UnknownOp(u8),
    /// An op has length 0.
    EmptyOp,
    /// A COPY reaches beyond the base.
    CopyOutOfRange {
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// The ops produce more bytes than the declared target length.
    Overrun,
    /// Bytes follow the op that completed the target.
    TrailingBytes,
    /// The rebuilt target does not hash to the declared target hash.
    TargetMismatch,
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("not a version-1 delta"),
            Self::Truncated => f.write_str("delta truncated"),
            Self::BadVarint => f.write_str("malformed varint in delta"),
            Self::BaseMismatch => f.write_str("delta was made against another base"),
            Self::TooLarge { len, limit } => {
                write!(
                    f,
                    "delta target of {len} bytes exceeds the limit of {limit}"
                )
            }
            Self::UnknownOp(t) => write!(f, "unknown delta op {t}"),
            Self::EmptyOp => f.write_str("delta op of length 0"),
            Self::CopyOutOfRange { offset, len } => {
                write!(f, "delta copies {len} bytes at {offset}, beyond the base")
            }
            Self::Overrun => f.write_str("delta ops overrun the target length"),
            Self::TrailingBytes => f.write_str("bytes after the end of the delta"),
            Self::TargetMismatch => f.write_str("rebuilt target does not match its hash"),
        }
    }
}

impl std::error::Error for DeltaError {}

/// The rsync rolling checksum over a fixed-size window: two 16-bit sums, updated in O(1) when
/// the window slides by one byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    /// The checksum of `window` (its length is the window size from now on).
    pub fn new(window: &[u8]) -> Self {
        let mut r = Self {
            a: 0,
            b: 0,
            len: window.len() as u32,
        };
        let n = window.len() as u32;
        for (i, &x) in window.iter().enumerate() {
            r.a = r.a.wrapping_add(u32::from(x));
            r.b = r.b.wrapping_add((n - i as u32).wrapping_mul(u32::from(x)));
        }
        r
    }

    /// Slides the window by one byte: `out` leaves at the front, `inn` enters at the back.
    pub fn roll(&mut self, out: u8, inn: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(inn));
        self.b = self
            .b
            .wrapping_sub(self.len.wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }

    /// The 32-bit checksum.
    pub fn digest(&self) -> u32 {
        (self.a & 0xffff) | (self.b << 16)
    }
}

/// The rolling checksum of one block, as published for block matching.
pub fn weak_hash(block: &[u8]) -> u32 {
    Rolling::new(block).digest()
}

/// [`weak_hash`] of a block fed in pieces of any size (the block's length is known only at
/// the end): `b = n·a − Σ i·xᵢ`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WeakHasher {
    a: u32,
    s: u32,
    n: u32,
}

impl WeakHasher {
    /// A hasher for an empty block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes to the block.
    pub fn update(&mut self, bytes: &[u8]) {
        // Per piece: local sums Σx and Σ i·x (i from 0, a loop the compiler vectorises), then
        // shifted by the bytes before: Σ (n₀ + i)·x = n₀·Σx + Σ i·x (all mod 2^32).
        for piece in bytes.chunks(1 << 16) {
            let (mut a, mut s) = (0u32, 0u32);
            for (i, &x) in piece.iter().enumerate() {
                let x = u32::from(x);
                a = a.wrapping_add(x);
                s = s.wrapping_add((i as u32).wrapping_mul(x));
            }
            self.s = self.s.wrapping_add(self.n.wrapping_mul(a)).wrapping_add(s);
            self.a = self.a.wrapping_add(a);
            self.n = self.n.wrapping_add(piece.len() as u32);
        }
    }

    /// The block's [`weak_hash`].
    pub fn finish(&self) -> u32 {
        let b = self.n.wrapping_mul(self.a).wrapping_sub(self.s);
        (self.a & 0xffff) | (b << 16)
    }
}

/// Finds blocks of `block_size` bytes in `old` whose rolling checksum is a key of `wanted` and
/// for which `verify(block index, bytes)` agrees (a strong hash): the zsync side of block
/// matching. Returns `(old offset, block index)` pairs, at most one per block index, in the order
/// found. `wanted` maps a weak checksum to the block indices that have it. Work is O(old)
/// checksum updates plus one `verify` per checksum hit, and at most
/// `2 × (old.len() / block_size) + 64` calls to `verify` in all: weak checksums that come from
/// a peer cannot turn the search into a strong hash at every byte offset.
pub fn find_blocks(
    old: &[u8],
    block_size: usize,
    wanted: &HashMap<u32, Vec<u64>>,
    mut verify: impl FnMut(u64, &[u8]) -> bool,
) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if block_size == 0 || old.len() < block_size || wanted.is_empty() {
        return found;
    }
    let mut pos = 0usize;
    let mut budget = 2 * (old.len() / block_size) + 64;
    let mut r = Rolling::new(old.get(..block_size).unwrap_or_default());
    loop {
        let mut matched = false;
        if let Some(candidates) = wanted.get(&r.digest()) {
            let window = old.get(pos..pos + block_size).unwrap_or_default();
            for &idx in candidates {
                if seen.contains(&idx) {
                    continue;
                }
                if budget == 0 {
                    return found;
                }
                budget -= 1;
                if verify(idx, window) {
                    seen.insert(idx);
                    found.push((pos as u64, idx));
                    matched = true;
                    break;
                }
            }
        }
        // After a match, jump a whole block (the next block of a shifted region starts there).
        let next = if matched { pos + block_size } else { pos + 1 };
        if next + block_size > old.len() {
            return found;
        }
        if matched {
            r = Rolling::new(old.get(next..next + block_size).unwrap_or_default());
        } else {
            let out = old.get(pos).copied().unwrap_or(0);
            let inn = old.get(pos + block_size).copied().unwrap_or(0);
            r.roll(out, inn);
        }
        pos = next;
    }
}

fn hash_prefix(bytes: &[u8]) -> [u8; HASH_PREFIX] {
    let h = blake3::hash(bytes);
    let mut out = [0u8; HASH_PREFIX];
    out.copy_from_slice(h.as_bytes().get(..HASH_PREFIX).unwrap_or(&[0; HASH_PREFIX]));
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The block size [`encode`] uses for a base of `len` bytes.
pub fn block_size_for(len: usize) -> usize {
    let target = (len / 4096).max(16);
    target.next_power_of_two().min(4096)
}

/// Encodes `target` as a delta against `base`.
pub fn encode(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + target.len() / 8);
    out.extend_from_slice(&MAGIC);
    put_varint(&mut out, base.len() as u64);
    out.extend_from_slice(&hash_prefix(base));
    put_varint(&mut out, target.len() as u64);
    out.extend_from_slice(&hash_prefix(target));

    let b = block_size_for(base.len());
    let mut index: HashMap<u32, usize> = HashMap::new();
    if base.len() >= b {
        for (k, block) in base.chunks_exact(b).enumerate() {
            index.entry(weak_hash(block)).or_insert(k * b);
        }
    }
    let mut lit_start = 0usize; // start of the pending literal run in target
    let mut pos = 0usize;
    let mut roll = (target.len() >= b && !index.is_empty())
        .then(|| Rolling::new(target.get(..b).unwrap_or_default()));
    while let Some(r) = roll.as_mut() {
        let hit = index
            .get(&r.digest())
            .copied()
            .filter(|&off| base.get(off..off + b) == target.get(pos..pos + b));
        if let Some(off) = hit {
            // Extend backwards into the pending literal, then forwards.
            let mut back = 0usize;
            while pos - back > lit_start
                && off > back
                && base.get(off - back - 1) == target.get(pos - back - 1)
            {
                back += 1;
            }
            let mut fwd = b;
            while base.get(off + fwd).is_some() && base.get(off + fwd) == target.get(pos + fwd) {
                fwd += 1;
            }
            let (start, base_off, len) = (pos - back, off - back, back + fwd);
            if start > lit_start {
                insert(&mut out, target.get(lit_start..start).unwrap_or_default());
            }
            out.push(OP_COPY);
            put_varint(&mut out, base_off as u64);
            put_varint(&mut out, len as u64);
            pos = start + len;
            lit_start = pos;
            roll = (pos + b <= target.len())
                .then(|| Rolling::new(target.get(pos..pos + b).unwrap_or_default()));
        } else {
            if pos + b >= target.len() {
                break;
            }
            let (o, i) = (
                target.get(pos).copied().unwrap_or(0),
                target.get(pos + b).copied().unwrap_or(0),
            );
            r.roll(o, i);
            pos += 1;
        }
    }
    if lit_start < target.len() {
        insert(&mut out, target.get(lit_start..).unwrap_or_default());
    }
    out
}

fn insert(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(OP_INSERT);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DeltaError> {
        if self.buf.len() < n {
            return Err(DeltaError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DeltaError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn varint(&mut self) -> Result<u64, DeltaError> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DeltaError::BadVarint);
            }
            v |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DeltaError::BadVarint);
                }
                return Ok(v);
            }
        }
        Err(DeltaError::BadVarint)
    }
}

/// Rebuilds the target from `base` and `delta`, producing at most `limit` bytes. Every malformed
/// or hostile delta is a [`DeltaError`]; memory use is bounded by `limit` plus the delta.
pub fn apply(base: &[u8], delta: &[u8], limit: usize) -> Result<Vec<u8>, DeltaError> {
    let mut rd = Reader { buf: delta };
    if rd.take(MAGIC.len())? != MAGIC {
        return Err(DeltaError::BadMagic);
    }
    let base_len = rd.varint()?;
    let base_hash = rd.take(HASH_PREFIX)?;
    if base_len != base.len() as u64 || base_hash != hash_prefix(base) {
        return Err(DeltaError::BaseMismatch);
    }
    let target_len = rd.varint()?;
    let target_hash: [u8; HASH_PREFIX] = rd
        .take(HASH_PREFIX)?
        .try_into()
        .map_err(|_| DeltaError::Truncated)?;
    let target_len = usize::try_from(target_len)
        .ok()
        .filter(|&n| n <= limit)
        .ok_or(DeltaError::TooLarge {
            len: target_len,
            limit,
        })?;
    // Grow with what the ops produce, never from the header alone beyond what the delta can
    // plausibly describe.
    let mut out: Vec<u8> = Vec::with_capacity(target_len.min(delta.len().saturating_mul(4)));
    while out.len() < target_len {
        let tag = rd.byte()?;
        let remaining = (target_len - out.len()) as u64;
        match tag {
            OP_INSERT => {
                let n = rd.varint()?;
                if n == 0 {
                    return Err(DeltaError::EmptyOp);
                }
                if n > remaining {
                    return Err(DeltaError::Overrun);
                }
                out.extend_from_slice(rd.take(n as usize)?);
            }
            OP_COPY => {
                let offset = rd.varint()?;
                let n = rd.varint()?;
                if n == 0 {
                    return Err(DeltaError::EmptyOp);
                }
                if n > remaining {
                    return Err(DeltaError::Overrun);
                }
                let src = offset
                    .checked_add(n)
                    .filter(|&end| end <= base.len() as u64)
                    .and_then(|end| base.get(offset as usize..end as usize))
                    .ok_or(DeltaError::CopyOutOfRange { offset, len: n })?;
                out.extend_from_slice(src);
            }
            t => return Err(DeltaError::UnknownOp(t)),
        }
    }
    if !rd.buf.is_empty() {
        return Err(DeltaError::TrailingBytes);
    }
    if hash_prefix(&out) != target_hash {
        return Err(DeltaError::TargetMismatch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
