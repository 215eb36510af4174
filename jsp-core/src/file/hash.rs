//! BLAKE3 hashes of chunks, the streaming chunk hasher, and the transfer id.
//!
//! Invariant: a chunk's hash is plain BLAKE3 (unkeyed, 32 bytes) of exactly the chunk's bytes, so
//! a caller can compute it with any BLAKE3 implementation while it reads the file; its position
//! is bound by the manifest (the ordered list of hashes under the root hash), not by the hash.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;

/// Length of every hash in this room, in bytes.
pub const HASH_LEN: usize = 32;

/// Length of a [`TransferId`], in bytes.
pub const TRANSFER_ID_LEN: usize = 16;

/// The BLAKE3 hash of one chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash(pub [u8; HASH_LEN]);

/// The BLAKE3 root hash of a manifest (see [`super::Manifest::root`] for the construction).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootHash(pub [u8; HASH_LEN]);

/// A transfer id: the first 16 bytes of the manifest's [`RootHash`]. A ticket carries it; the
/// receiver asks for it with `Fetch` and accepts only an offer whose manifest hashes to it, so the
/// id also authenticates the manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub [u8; TRANSFER_ID_LEN]);

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! hex_fmt {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                hex(f, &self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($t))?;
                hex(f, &self.0)?;
                f.write_str(")")
            }
        }
    };
}

hex_fmt!(ChunkHash);
hex_fmt!(RootHash);
hex_fmt!(TransferId);

impl TransferId {
    /// Parses 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 2 * TRANSFER_ID_LEN {
            return None;
        }
        let mut out = [0u8; TRANSFER_ID_LEN];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let text = core::str::from_utf8(pair).ok()?;
            *o = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl RootHash {
    /// The transfer id: the first 16 bytes.
    pub fn transfer_id(&self) -> TransferId {
        let mut id = [0u8; TRANSFER_ID_LEN];
        for (o, b) in id.iter_mut().zip(self.0.iter()) {
            *o = *b;
        }
        TransferId(id)
    }
}

/// The hash of one chunk: BLAKE3 of `bytes`.
pub fn chunk_hash(bytes: &[u8]) -> ChunkHash {
    ChunkHash(*blake3::hash(bytes).as_bytes())
}

/// The hashes of `data` cut into chunks of `chunk_size` bytes (the last one shorter). Empty data
/// has no chunks. `chunk_size` 0 is treated as 1.
pub fn chunk_hashes(data: &[u8], chunk_size: u32) -> Vec<ChunkHash> {
    let size = usize::try_from(chunk_size.max(1)).unwrap_or(usize::MAX);
    data.chunks(size).map(chunk_hash).collect()
}

/// Hashes a file's chunks while the caller reads it in pieces of any size.
///
/// ```
/// use jsp_core::file::{chunk_hashes, ChunkHasher};
/// let data = vec![7u8; 5000];
/// let mut h = ChunkHasher::new(1024);
/// for piece in data.chunks(700) {
///     h.update(piece);
/// }
/// let (size, hashes) = h.finish();
/// assert_eq!(size, 5000);
/// assert_eq!(hashes, chunk_hashes(&data, 1024));
/// ```
#[derive(Clone, Debug)]
pub struct ChunkHasher {
    chunk_size: u64,
    current: blake3::Hasher,
    filled: u64,
    size: u64,
    hashes: Vec<ChunkHash>,
}

impl ChunkHasher {
    /// A hasher for chunks of `chunk_size` bytes (0 is treated as 1).
    pub fn new(chunk_size: u32) -> Self {
        Self {
            chunk_size: u64::from(chunk_size.max(1)),
            current: blake3::Hasher::new(),
            filled: 0,
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.chunk_size - self.filled;
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            let (now, rest) = data.split_at(take);
            self.current.update(now);
            self.filled += take as u64;
            self.size += take as u64;
            data = rest;
            if self.filled == self.chunk_size {
                self.hashes
                    .push(ChunkHash(*self.current.finalize().as_bytes()));
                self.current.reset();
                self.filled = 0;
            }
        }
    }

    /// The file's size and its chunk hashes.
    pub fn finish(mut self) -> (u64, Vec<ChunkHash>) {
        if self.filled > 0 {
            self.hashes
                .push(ChunkHash(*self.current.finalize().as_bytes()));
        }
        (self.size, self.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_hash_is_plain_blake3() {
        // BLAKE3 of the empty input, from the BLAKE3 test vectors.
        assert_eq!(
            chunk_hash(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn transfer_id_parses_its_own_hex() {
        let id = RootHash([0xab; 32]).transfer_id();
        assert_eq!(TransferId::from_hex(&id.to_string()), Some(id));
        assert_eq!(TransferId::from_hex("zz"), None);
        assert_eq!(TransferId::from_hex(&"g".repeat(32)), None);
    }
}
