//! The manifest: what a transfer contains, and the root hash that pins it.
//!
//! Invariant: a [`Manifest`] value is always valid — every constructor ([`ManifestBuilder::build`],
//! [`Manifest::decode`]) runs the same validation:
//! - 1 to [`MAX_ENTRIES`] entries, each path valid ([`super::validate_path`]);
//! - entries strictly increasing in component order (compare paths component by component, each
//!   component as bytes), hence no duplicates, and no entry below a path that is a file;
//! - a file has a chunk size in [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`] and exactly
//!   ⌈size / chunk size⌉ chunk hashes; a directory has size 0, chunk size 0 and no hashes;
//! - modes have no bits above 0o7777; the sizes add up to at most 2^64 − 1.
//!
//! and its root hash is computed from those entries once, at construction.
//!
//! ## CBOR encoding (the body of an `Offer`)
//!
//! ```text
//! { "v": 1,                         ; format version
//!   "e": [ { "p": text,             ; path, '/'-separated, relative
//!            "k": 0 | 1,            ; kind: 0 file, 1 directory
//!            "m": uint,             ; mode (permission bits, ≤ 0o7777)
//!            "s": uint,             ; size in bytes          (files only; absent = 0)
//!            "c": uint,             ; chunk size in bytes    (files only; absent = 0)
//!            "h": bytes,            ; chunk hashes, 32 bytes each, concatenated in order
//!                                   ;                        (files only; absent = empty)
//!            "w": bytes },          ; optional hint: each chunk's rolling checksum
//!                                   ; ([`crate::delta::weak_hash`]), u32 little-endian,
//!                                   ; concatenated; ignored unless exactly 4 × chunk count
//!          ... ] }
//! ```
//!
//! Unknown keys are ignored (room for later fields; they are not covered by the root hash, so they
//! can only carry hints). Duplicate keys, wrong types and trailing bytes are errors. The encoding
//! needs no canonical form: the root hash is computed over the decoded values, not the bytes.
//!
//! ## Root hash
//!
//! ```text
//! root = BLAKE3-derive_key(context = "JetStreamProto file-transfer manifest v1",
//!                          material = u32be(1)                      ; version
//!                                   ‖ u64be(entry count)
//!                                   ‖ for each entry, in manifest order:
//!                                       u8(kind)                    ; 0 file, 1 directory
//!                                     ‖ u32be(mode)
//!                                     ‖ u64be(size)
//!                                     ‖ u32be(chunk size)
//!                                     ‖ u32be(path length in bytes) ‖ path (UTF-8)
//!                                     ‖ u64be(chunk count) ‖ chunk hashes (32 bytes each))
//! transfer id = root[0..16]
//! ```
//!
//! Every variable-length field is length-prefixed, so two different manifests never hash the same
//! material. A chunk hash is BLAKE3 of the chunk's bytes ([`super::chunk_hash`]), so verifying
//! every chunk of a file against a manifest whose root matches the transfer id verifies the file.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use serde::{Deserialize, Serialize};

use super::cbor;
use super::error::ManifestError;
use super::hash::{ChunkHash, RootHash, TransferId, HASH_LEN};
use super::path::{cmp_paths, is_ancestor, validate_path};

/// The manifest format version this implementation speaks.
pub const MANIFEST_VERSION: u32 = 1;
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size: 1 KiB.
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Largest chunk size: 16 MiB. A receiver buffers at most one chunk per data stream.
pub const MAX_CHUNK_SIZE: u32 = 1 << 24;
/// Most entries in a manifest. A decoded entry costs about 100 bytes plus its path and hashes, so
/// a hostile manifest at this limit costs tens of MiB, not more.
pub const MAX_ENTRIES: usize = 1 << 18;
/// Longest encoded manifest: the largest body a 24-bit length can frame (16 MiB − 1), which holds
/// about 500,000 chunk hashes (500 GiB at the default chunk size).
pub const MAX_MANIFEST_LEN: usize = 0x00FF_FFFF;
/// Mode bits a manifest may carry.
pub const MAX_MODE: u32 = 0o7777;

/// The derive-key context of the root hash.
pub const ROOT_HASH_CONTEXT: &str = "JetStreamProto file-transfer manifest v1";

/// An entry's index in the manifest: how messages name a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

impl FileId {
    /// The index as a `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file (wire value 0).
    File,
    /// A directory, possibly empty (wire value 1).
    Directory,
}

impl EntryKind {
    fn wire(self) -> u8 {
        match self {
            Self::File => 0,
            Self::Directory => 1,
        }
    }
}

/// One file or directory of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    path: String,
    kind: EntryKind,
    mode: u32,
    size: u64,
    chunk_size: u32,
    hashes: Vec<ChunkHash>,
    weak: Vec<u32>,
}

impl Entry {
    /// The chunks' rolling checksums ([`crate::delta::weak_hash`]), one per chunk, if the
    /// sender included them (a hint for finding moved chunks in an older copy; not covered by
    /// the root hash, so every match must still be verified against [`Entry::chunk_hash`]).
    /// Empty otherwise.
    pub fn weak_hashes(&self) -> &[u32] {
        &self.weak
    }

    /// The relative path, `/`-separated.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// File or directory.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
    /// Whether this is a file.
    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }
    /// Permission bits (≤ 0o7777). Receivers should apply at most `mode & 0o777`.
    pub fn mode(&self) -> u32 {
        self.mode
    }
    /// Size in bytes (0 for a directory).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Chunk size in bytes (0 for a directory).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Number of chunks: ⌈size / chunk size⌉.
    pub fn chunk_count(&self) -> u64 {
        self.hashes.len() as u64
    }
    /// The chunk hashes, in order.
    pub fn chunk_hashes(&self) -> &[ChunkHash] {
        &self.hashes
    }
    /// The expected hash of chunk `index`.
    pub fn chunk_hash(&self, index: u64) -> Option<&ChunkHash> {
        self.hashes.get(usize::try_from(index).ok()?)
    }
    /// Byte offset and length of chunk `index`, if the file has it.
    pub fn chunk_span(&self, index: u64) -> Option<(u64, u32)> {
        if index >= self.chunk_count() {
            return None;
        }
        let cs = u64::from(self.chunk_size);
        let offset = index.checked_mul(cs)?;
        let len = self.size.checked_sub(offset)?.min(cs);
        Some((offset, u32::try_from(len).ok()?))
    }
}

/// A validated manifest and its root hash. See the module documentation for the rules, the
/// encoding and the root-hash construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
    root: RootHash,
    total_bytes: u64,
    total_chunks: u64,
}

impl Manifest {
    /// A builder for the sending side.
    pub fn builder() -> ManifestBuilder {
        ManifestBuilder::default()
    }

    /// The entries, in canonical order; [`FileId`] `i` is entry `i`.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entry `file`, if it exists.
    pub fn entry(&self, file: FileId) -> Option<&Entry> {
        self.entries.get(file.index())
    }

    /// The root hash.
    pub fn root(&self) -> RootHash {
        self.root
    }

    /// The transfer id (first 16 bytes of the root hash).
    pub fn transfer_id(&self) -> TransferId {
        self.root.transfer_id()
    }

    /// Sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Sum of the files' chunk counts.
    pub fn total_chunks(&self) -> u64 {
        self.total_chunks
    }

    /// Number of files (not directories).
    pub fn file_count(&self) -> usize {
        self.entries.iter().filter(|e| e.is_file()).count()
    }

    /// The CBOR encoding (the body of an `Offer`). Its length is not checked here; see
    /// [`super::Message::try_encode`].
    pub fn encode(&self) -> Vec<u8> {
        let entries: Vec<EntryOut<'_>> = self
            .entries
            .iter()
            .map(|e| EntryOut {
                path: &e.path,
                kind: e.kind.wire(),
                mode: e.mode,
                size: e.size,
                chunk_size: e.chunk_size,
                hashes: serde_bytes::ByteBuf::from(
                    e.hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>(),
                ),
                weak: serde_bytes::ByteBuf::from(
                    e.weak
                        .iter()
                        .flat_map(|w| w.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ),
            })
            .collect();
        let out_manifest = ManifestOut {
            version: MANIFEST_VERSION,
            entries,
        };
        let mut out = Vec::new();
        if cbor::to_vec_into(&out_manifest, &mut out).is_err() {
            // Unreachable with a Vec writer; an empty body is rejected by every receiver.
            out.clear();
        }
        out
    }

    /// Decodes and validates an encoded manifest of at most `max_len` bytes (and never more
    /// than [`MAX_MANIFEST_LEN`]).
    pub fn decode(body: &[u8], max_len: usize) -> Result<Manifest, ManifestError> {
        let max = max_len.min(MAX_MANIFEST_LEN);
        if body.len() > max {
            return Err(ManifestError::TooLong {
                len: body.len(),
                max,
            });
        }
        let m: ManifestIn =
            cbor::from_slice(body).map_err(|detail| ManifestError::BadCbor { detail })?;
        if m.version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(m.version));
        }
        if m.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries);
        }
        let mut entries = Vec::with_capacity(m.entries.len());
        for (i, e) in m.entries.into_iter().enumerate() {
            let kind = match e.kind {
                0 => EntryKind::File,
                1 => EntryKind::Directory,
                kind => return Err(ManifestError::BadKind { entry: i, kind }),
            };
            if e.hashes.len() % HASH_LEN != 0 {
                return Err(ManifestError::BadHashes {
                    entry: i,
                    expected: expected_hash_bytes(e.size, e.chunk_size),
                    got: e.hashes.len() as u64,
                });
            }
            let hashes = e
                .hashes
                .chunks_exact(HASH_LEN)
                .map(|c| {
                    let mut h = [0u8; HASH_LEN];
                    h.copy_from_slice(c);
                    ChunkHash(h)
                })
                .collect::<Vec<ChunkHash>>();
            // A hint: kept only when it has one checksum per chunk.
            let weak = if e.weak.len() == hashes.len().saturating_mul(4) {
                e.weak
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                    .collect()
            } else {
                Vec::new()
            };
            entries.push(Entry {
                path: e.path,
                kind,
                mode: e.mode,
                size: e.size,
                chunk_size: e.chunk_size,
                hashes,
                weak,
            });
        }
        Self::from_entries(entries)
    }

    /// Validates entries already in canonical order and computes the root.
    fn from_entries(entries: Vec<Entry>) -> Result<Manifest, ManifestError> {
        if entries.is_empty() {
            return Err(ManifestError::Empty);
        }
        if entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries);
        }
        let mut total_bytes = 0u64;
        let mut total_chunks = 0u64;
        let mut prev: Option<&Entry> = None;
        for (i, e) in entries.iter().enumerate() {
            validate_path(&e.path).map_err(|reason| ManifestError::BadPath { entry: i, reason })?;
            if e.mode > MAX_MODE {
                return Err(ManifestError::BadMode { entry: i });
            }
            match e.kind {
                EntryKind::File => {
                    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&e.chunk_size) {
                        return Err(ManifestError::BadChunkSize {
                            entry: i,
                            chunk_size: e.chunk_size,
                        });
                    }
                    let expected = expected_hash_bytes(e.size, e.chunk_size);
                    let got = (e.hashes.len() as u64).saturating_mul(HASH_LEN as u64);
                    if expected != got {
                        return Err(ManifestError::BadHashes {
                            entry: i,
                            expected,
                            got,
                        });
                    }
                }
                EntryKind::Directory => {
                    if e.size != 0 || e.chunk_size != 0 || !e.hashes.is_empty() {
                        return Err(ManifestError::DirectoryWithData { entry: i });
                    }
                }
            }
            if let Some(p) = prev {
                match cmp_paths(&p.path, &e.path) {
                    core::cmp::Ordering::Less => {}
                    core::cmp::Ordering::Equal => {
                        return Err(ManifestError::Duplicate { entry: i })
                    }
                    core::cmp::Ordering::Greater => {
                        return Err(ManifestError::NotSorted { entry: i })
                    }
                }
                // In component order everything below a path follows it directly, so a file
                // with anything below it has that thing as its successor.
                if p.kind == EntryKind::File && is_ancestor(&p.path, &e.path) {
                    return Err(ManifestError::PathConflict { entry: i });
                }
            }
            total_bytes = total_bytes
                .checked_add(e.size)
                .ok_or(ManifestError::TotalTooLarge)?;
            total_chunks += e.chunk_count();
            prev = Some(e);
        }
        let root = root_hash(&entries);
        Ok(Manifest {
            entries,
            root,
            total_bytes,
            total_chunks,
        })
    }
}

/// 32 × ⌈size / chunk size⌉, saturating; 0 for chunk size 0.
fn expected_hash_bytes(size: u64, chunk_size: u32) -> u64 {
    if chunk_size == 0 {
        return 0;
    }
    size.div_ceil(u64::from(chunk_size))
        .saturating_mul(HASH_LEN as u64)
}

/// The root hash construction of the module documentation.
fn root_hash(entries: &[Entry]) -> RootHash {
    let mut h = blake3::Hasher::new_derive_key(ROOT_HASH_CONTEXT);
    h.update(&MANIFEST_VERSION.to_be_bytes());
    h.update(&(entries.len() as u64).to_be_bytes());
    for e in entries {
        h.update(&[e.kind.wire()]);
        h.update(&e.mode.to_be_bytes());
        h.update(&e.size.to_be_bytes());
        h.update(&e.chunk_size.to_be_bytes());
        // Paths are at most 4096 bytes, so the length fits.
        h.update(&(e.path.len() as u32).to_be_bytes());
        h.update(e.path.as_bytes());
        h.update(&e.chunk_count().to_be_bytes());
        for c in &e.hashes {
            h.update(&c.0);
        }
    }
    RootHash(*h.finalize().as_bytes())
}

/// Builds a [`Manifest`] from entries the caller prepared (it hashes each file's chunks while
/// reading it, for example with [`super::ChunkHasher`]). Entries may be added in any order;
/// [`ManifestBuilder::build`] sorts them and validates everything.
///
/// ```
/// use jsp_core::file::{chunk_hashes, Manifest};
/// let data = b"hello";
/// let manifest = Manifest::builder()
///     .dir("docs", 0o755)
///     .file("docs/hello.txt", data.len() as u64, 0o644, chunk_hashes(data, 1 << 20))
///     .build()
///     .unwrap();
/// assert_eq!(manifest.total_bytes(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct ManifestBuilder {
    chunk_size: u32,
    entries: Vec<Entry>,
}

impl Default for ManifestBuilder {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            entries: Vec::new(),
        }
    }
}

impl ManifestBuilder {
    /// The chunk size of files added after this call (default [`DEFAULT_CHUNK_SIZE`]).
    pub fn chunk_size(mut self, chunk_size: u32) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Adds a file with its size, mode and chunk hashes (cut at the current chunk size).
    pub fn file(
        self,
        path: impl Into<String>,
        size: u64,
        mode: u32,
        hashes: Vec<ChunkHash>,
    ) -> Self {
        self.file_with_weak(path, size, mode, hashes, Vec::new())
    }

    /// [`ManifestBuilder::file`] with each chunk's rolling checksum
    /// ([`crate::delta::weak_hash`]), so a receiver holding an older version can find moved
    /// chunks in it. `weak` must have one value per chunk (otherwise it is dropped).
    pub fn file_with_weak(
        mut self,
        path: impl Into<String>,
        size: u64,
        mode: u32,
        hashes: Vec<ChunkHash>,
        weak: Vec<u32>,
    ) -> Self {
        let weak = if weak.len() == hashes.len() {
            weak
        } else {
            Vec::new()
        };
        self.entries.push(Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode,
            size,
            chunk_size: self.chunk_size,
            hashes,
            weak,
        });
        self
    }

    /// Adds a directory (needed only for empty directories; files' parents are implied).
    pub fn dir(mut self, path: impl Into<String>, mode: u32) -> Self {
        self.entries.push(Entry {
            path: path.into(),
            kind: EntryKind::Directory,
            mode,
            size: 0,
            chunk_size: 0,
            hashes: Vec::new(),
            weak: Vec::new(),
        });
        self
    }

    /// Sorts the entries into component order, validates them and computes the root hash.
    pub fn build(mut self) -> Result<Manifest, ManifestError> {
        self.entries.sort_by(|a, b| cmp_paths(&a.path, &b.path));
        Manifest::from_entries(self.entries)
    }
}

#[derive(Serialize)]
struct ManifestOut<'a> {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "e")]
    entries: Vec<EntryOut<'a>>,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn no_bytes(v: &serde_bytes::ByteBuf) -> bool {
    v.is_empty()
}

#[derive(Serialize)]
struct EntryOut<'a> {
    #[serde(rename = "p")]
    path: &'a str,
    #[serde(rename = "k")]
    kind: u8,
    #[serde(rename = "m")]
    mode: u32,
    #[serde(rename = "s", skip_serializing_if = "is_zero_u64")]
    size: u64,
    #[serde(rename = "c", skip_serializing_if = "is_zero_u32")]
    chunk_size: u32,
    #[serde(rename = "h", skip_serializing_if = "no_bytes")]
    hashes: serde_bytes::ByteBuf,
    #[serde(rename = "w", skip_serializing_if = "no_bytes")]
    weak: serde_bytes::ByteBuf,
}

#[derive(Deserialize)]
struct ManifestIn {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "e", deserialize_with = "cbor::list::<_, _, MAX_ENTRIES>")]
    entries: Vec<EntryIn>,
}

#[derive(Deserialize)]
struct EntryIn {
    #[serde(rename = "p")]
    path: String,
    #[serde(rename = "k")]
    kind: u8,
    #[serde(rename = "m")]
    mode: u32,
    #[serde(rename = "s", default)]
    size: u64,
    #[serde(rename = "c", default)]
    chunk_size: u32,
    #[serde(rename = "h", default, deserialize_with = "cbor::bytes")]
    hashes: Vec<u8>,
    #[serde(rename = "w", default, deserialize_with = "cbor::bytes")]
    weak: Vec<u8>,
}
