//! Checking an arrived chunk: decoding it (zstd, bounded) and comparing its BLAKE3 hash with the
//! manifest's, as a self-contained piece of pure computation.
//!
//! The [`super::Receiver`] builds a [`ChunkCheck`] for every chunk that arrives. By default it
//! runs it at once, inside [`super::Receiver::handle_data`]. With
//! [`super::ReceiverConfig::offload_checks`] it hands it to its caller instead
//! ([`super::Action::CheckChunk`]), so that hashing (about a millisecond per MiB) does not hold up
//! the caller's event loop: the caller runs [`ChunkCheck::run`] wherever it likes (a worker
//! thread, the thread that writes the file), writes the verified bytes, and reports the
//! [`ChunkChecked`] back with [`super::Receiver::chunk_checked`], in any order.
//!
//! Invariants:
//! - a [`ChunkChecked`] is made only by [`ChunkCheck::run`] (its fields are private), so a
//!   caller cannot report a chunk as verified without the core's own hash comparison having
//!   said so;
//! - [`ChunkChecked::verified_bytes`] is `Some` only when the decoded bytes have the chunk's
//!   length and hash to the manifest's hash of that chunk;
//! - decoding is bounded by the chunk's declared length ([`super::compress`]): running a check
//!   never allocates more than the chunk's length plus its wire bytes.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;

use bytes::Bytes;

use super::compress::{decompress_chunk, decompress_chunk_with_dict, Codec, Dictionary};
use super::error::FileError;
use super::hash::{chunk_hash, ChunkHash};
use super::manifest::FileId;

/// A chunk that arrived and waits for its check: its wire bytes (in the pieces the stream
/// delivered them, not copied), how they are encoded, and the hash the manifest promises.
///
/// Pure computation with no I/O, `Send`: run it on any thread with [`ChunkCheck::run`].
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkCheck {
    /// The receiver's number for this check (matches the report to the chunk).
    pub(super) seq: u64,
    file: FileId,
    index: u64,
    offset: u64,
    len: u32,
    codec: Codec,
    dict: Option<Dictionary>,
    wire: Vec<Bytes>,
    expected: ChunkHash,
}

/// The result of a [`ChunkCheck`]: report it with [`super::Receiver::chunk_checked`].
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkChecked {
    pub(super) seq: u64,
    file: FileId,
    index: u64,
    offset: u64,
    pub(super) outcome: Outcome,
}

/// What a check found.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The decoded bytes hash to the manifest's hash.
    Verified(Bytes),
    /// They decoded, but to other bytes: the chunk is fetched again.
    Mismatch,
    /// They do not decode within the chunk's length: the transfer fails with this error.
    Undecodable(FileError),
}

impl ChunkCheck {
    #[allow(clippy::too_many_arguments)] // one constructor, called from the receiver only
    pub(super) fn new(
        seq: u64,
        file: FileId,
        index: u64,
        offset: u64,
        len: u32,
        codec: Codec,
        dict: Option<Dictionary>,
        wire: Vec<Bytes>,
        expected: ChunkHash,
    ) -> Self {
        Self {
            seq,
            file,
            index,
            offset,
            len,
            codec,
            dict,
            wire,
            expected,
        }
    }

    /// The file the chunk belongs to.
    pub fn file(&self) -> FileId {
        self.file
    }

    /// The chunk's index in its file.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The chunk's byte offset in its file (where its verified bytes are written).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The chunk's length once decoded.
    pub fn chunk_len(&self) -> u32 {
        self.len
    }

    /// The bytes that arrived for it (compressed, if they were).
    pub fn wire_len(&self) -> usize {
        self.wire.iter().map(Bytes::len).sum()
    }

    /// Decodes the chunk (if it came compressed, bounded by its length) and compares its BLAKE3
    /// hash with the manifest's. Costs about one hash of the chunk, plus one copy when it
    /// arrived in several pieces, plus the decoding.
    pub fn run(self) -> ChunkChecked {
        let fail = |reason| {
            Outcome::Undecodable(FileError::Decompression {
                file: self.file.0,
                index: self.index,
                reason,
            })
        };
        let outcome = match (self.codec, &self.dict) {
            (Codec::Raw, _) => {
                let bytes = contiguous(self.wire);
                if bytes.len() as u64 != u64::from(self.len) {
                    fail("raw chunk of the wrong length")
                } else {
                    verdict(bytes, &self.expected)
                }
            }
            (Codec::ZstdDict, Some(dict)) => {
                let wire = contiguous(self.wire);
                match decompress_chunk_with_dict(&wire, dict, self.len, self.file.0, self.index) {
                    Ok(out) => verdict(Bytes::from(out), &self.expected),
                    Err(e) => Outcome::Undecodable(e),
                }
            }
            (codec, _) => {
                let wire = Vec::from(contiguous(self.wire));
                match decompress_chunk(codec, wire, self.len, self.file.0, self.index) {
                    Ok(out) => verdict(Bytes::from(out), &self.expected),
                    Err(e) => Outcome::Undecodable(e),
                }
            }
        };
        ChunkChecked {
            seq: self.seq,
            file: self.file,
            index: self.index,
            offset: self.offset,
            outcome,
        }
    }
}

/// The pieces as one buffer: the piece itself when there is one, else a copy.
fn contiguous(mut pieces: Vec<Bytes>) -> Bytes {
    if pieces.len() == 1 {
        return pieces.pop().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
    for p in &pieces {
        out.extend_from_slice(p);
    }
    Bytes::from(out)
}

fn verdict(bytes: Bytes, expected: &ChunkHash) -> Outcome {
    if chunk_hash(&bytes) == *expected {
        Outcome::Verified(bytes)
    } else {
        Outcome::Mismatch
    }
}

impl ChunkChecked {
    /// The file the chunk belongs to.
    pub fn file(&self) -> FileId {
        self.file
    }

    /// The chunk's index in its file.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The chunk's byte offset in its file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the chunk verified.
    pub fn is_verified(&self) -> bool {
        matches!(self.outcome, Outcome::Verified(_))
    }

    /// The chunk's bytes, if they verified: write them at [`ChunkChecked::offset`] of the
    /// file's temporary copy before reporting this result.
    pub fn verified_bytes(&self) -> Option<&Bytes> {
        match &self.outcome {
            Outcome::Verified(b) => Some(b),
            _ => None,
        }
    }

    /// Drops the chunk's bytes (once written), keeping the verdict to report.
    pub fn release_bytes(&mut self) {
        if let Outcome::Verified(b) = &mut self.outcome {
            *b = Bytes::new();
        }
    }
}

impl fmt::Debug for ChunkCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkCheck")
            .field("seq", &self.seq)
            .field("file", &self.file)
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("codec", &self.codec)
            .field("wire_len", &self.wire_len())
            .field("pieces", &self.wire.len())
            .finish()
    }
}

impl fmt::Debug for ChunkChecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            Outcome::Verified(b) => format!("Verified({} bytes)", b.len()),
            Outcome::Mismatch => "Mismatch".to_owned(),
            Outcome::Undecodable(e) => format!("Undecodable({e})"),
        };
        f.debug_struct("ChunkChecked")
            .field("seq", &self.seq)
            .field("file", &self.file)
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("outcome", &outcome)
            .finish()
    }
}
