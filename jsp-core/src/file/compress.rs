//! Per-chunk zstd compression of file-transfer data, and its strictly bounded decoding.
//!
//! Invariants:
//! - a compressed chunk is sent only when it is strictly shorter than the raw chunk, so the wire
//!   length of a compressed chunk is always below the chunk's declared (manifest) length;
//! - decoding never produces more than the chunk's declared length: the frame header is checked
//!   first (a window or content size above the chunk's length is refused before any allocation
//!   the frame asks for), and output is collected with a hard cap of `declared + 1` bytes, so a
//!   decompression bomb costs at most one chunk of memory and is reported as
//!   [`FileError::Decompression`], which ends the transfer;
//! - the C library is used to compress (cargo feature `zstd`, never on wasm32); decoding uses the
//!   C library when it is there and the pure-Rust `ruzstd` otherwise, so every build can receive
//!   compressed chunks.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::Read;

use super::error::FileError;
use super::manifest::MAX_CHUNK_SIZE;

/// zstd's frame magic number, little-endian on the wire.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Bytes of a chunk's prefix compressed (at level 1) to decide whether the chunk is worth
/// compressing.
pub const SAMPLE_LEN: usize = 16 << 10;

/// How a chunk's bytes are encoded on the wire (`ChunkHeader` key `z`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// 0: the raw bytes.
    #[default]
    Raw,
    /// 1: one zstd frame whose content is the raw bytes.
    Zstd,
    /// 2: one zstd frame made with a trained dictionary, named by the chunk header's
    /// dictionary id (one the receiver listed in its `Fetch`).
    ZstdDict,
}

impl Codec {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Zstd => 1,
            Self::ZstdDict => 2,
        }
    }

    /// The codec of a wire value, if known.
    pub fn from_wire(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            2 => Some(Self::ZstdDict),
            _ => None,
        }
    }
}

/// Bit of `Fetch`'s `c` (codecs) field: the receiver decodes zstd chunks.
pub const CODEC_BIT_ZSTD: u32 = 1;

/// Bytes of a [`DictId`].
pub const DICT_ID_LEN: usize = 8;

/// Most dictionaries a receiver lists in its `Fetch`.
pub const MAX_DICTS: usize = 16;

/// Largest dictionary accepted (zstd's trainer makes ~110 KB by default).
pub const MAX_DICT_LEN: usize = 1 << 20;

/// A dictionary's content id: the first 8 bytes of the BLAKE3 hash of its bytes. Both sides
/// compute it from the bytes they hold, so equal ids mean equal dictionaries (up to a 2^-64
/// collision, which at worst makes chunks fail verification and be refetched, then fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DictId(pub [u8; DICT_ID_LEN]);

impl core::fmt::Display for DictId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why bytes are not a usable dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DictError {
    /// Longer than [`MAX_DICT_LEN`].
    TooLong(usize),
    /// Not a zstd dictionary (magic 0xEC30A437, a non-zero zstd id and valid entropy tables).
    NotADictionary,
    /// The trainer failed (too few or too small samples, say).
    Training(String),
    /// This build cannot train dictionaries (no C zstd).
    Unavailable,
}

impl core::fmt::Display for DictError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "dictionary of {n} bytes exceeds {MAX_DICT_LEN}"),
            Self::NotADictionary => f.write_str("not a zstd dictionary"),
            Self::Training(e) => write!(f, "dictionary training failed: {e}"),
            Self::Unavailable => f.write_str("this build cannot train zstd dictionaries"),
        }
    }
}

impl std::error::Error for DictError {}

/// A trained zstd dictionary, shared by both ends out of band (shipped with an application,
/// or sent once as a file) and negotiated per transfer by its [`DictId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dictionary {
    id: DictId,
    zstd_id: u32,
    bytes: std::sync::Arc<[u8]>,
}

impl Dictionary {
    /// Checks `bytes` (a zstd dictionary in the standard format, as the trainer writes it) and
    /// computes its content id. The pure-Rust decoder parses it, so a receiver without the C
    /// library can use every dictionary this accepts.
    pub fn new(bytes: Vec<u8>) -> Result<Self, DictError> {
        if bytes.len() > MAX_DICT_LEN {
            return Err(DictError::TooLong(bytes.len()));
        }
        let parsed = ruzstd::decoding::Dictionary::decode_dict(&bytes)
            .map_err(|_| DictError::NotADictionary)?;
        if parsed.id == 0 {
            return Err(DictError::NotADictionary);
        }
        let h = blake3::hash(&bytes);
        let mut id = [0u8; DICT_ID_LEN];
        id.copy_from_slice(h.as_bytes().get(..DICT_ID_LEN).unwrap_or(&[0; DICT_ID_LEN]));
        Ok(Self {
            id: DictId(id),
            zstd_id: parsed.id,
            bytes: bytes.into(),
        })
    }

    /// Trains a dictionary of at most `max_len` bytes on `samples` with zstd's dictionary
    /// builder (C zstd only). Samples should be typical payloads: many small, similar files.
    pub fn train<S: AsRef<[u8]>>(samples: &[S], max_len: usize) -> Result<Self, DictError> {
        Self::new(train_dictionary(samples, max_len.min(MAX_DICT_LEN))?)
    }

    /// The content id.
    pub fn id(&self) -> DictId {
        self.id
    }

    /// The id zstd writes into frame headers made with this dictionary.
    pub fn zstd_id(&self) -> u32 {
        self.zstd_id
    }

    /// The dictionary's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
fn train_dictionary<S: AsRef<[u8]>>(samples: &[S], max_len: usize) -> Result<Vec<u8>, DictError> {
    zstd::dict::from_samples(samples, max_len).map_err(|e| DictError::Training(e.to_string()))
}

#[cfg(not(all(feature = "zstd", not(target_arch = "wasm32"))))]
fn train_dictionary<S: AsRef<[u8]>>(_: &[S], _: usize) -> Result<Vec<u8>, DictError> {
    Err(DictError::Unavailable)
}

/// Like [`compress_chunk`], with `dict` (C zstd only; `None` without it or when the chunk does
/// not shrink). Adaptive sampling is skipped: a dictionary is for small, similar payloads.
pub fn compress_chunk_with_dict(
    settings: &Compression,
    dict: &Dictionary,
    raw: &[u8],
) -> Option<Vec<u8>> {
    if !settings.enabled() || raw.is_empty() {
        return None;
    }
    let out = zstd_compress_dict(raw, settings.level, dict)?;
    (out.len() < raw.len()).then_some(out)
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
fn zstd_compress_dict(raw: &[u8], level: i32, dict: &Dictionary) -> Option<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::with_dictionary(level, dict.bytes()).ok()?;
    c.include_contentsize(true).ok()?;
    c.compress(raw).ok()
}

#[cfg(not(all(feature = "zstd", not(target_arch = "wasm32"))))]
fn zstd_compress_dict(_: &[u8], _: i32, _: &Dictionary) -> Option<Vec<u8>> {
    None
}

/// Decodes a [`Codec::ZstdDict`] chunk of declared length `declared` with `dict`, with the
/// same bounds as [`decompress_chunk`]; the frame must name `dict`'s zstd id.
pub fn decompress_chunk_with_dict(
    wire: &[u8],
    dict: &Dictionary,
    declared: u32,
    file: u32,
    index: u64,
) -> Result<Vec<u8>, FileError> {
    let fail = |reason: &'static str| FileError::Decompression {
        file,
        index,
        reason,
    };
    check_frame_header_inner(wire, declared, Some(dict.zstd_id)).map_err(fail)?;
    let out = zstd_decompress_dict(wire, declared as usize, dict).map_err(fail)?;
    if out.len() != declared as usize {
        return Err(fail("decompressed to fewer bytes than the chunk's length"));
    }
    Ok(out)
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
fn zstd_decompress_dict(
    frame: &[u8],
    declared: usize,
    dict: &Dictionary,
) -> Result<Vec<u8>, &'static str> {
    let mut d = zstd::bulk::Decompressor::with_dictionary(dict.bytes())
        .map_err(|_| "the dictionary does not load")?;
    d.decompress(frame, declared)
        .map_err(|_| "corrupt zstd frame, or it decompresses beyond the chunk's length")
}

#[cfg(not(all(feature = "zstd", not(target_arch = "wasm32"))))]
fn zstd_decompress_dict(
    frame: &[u8],
    declared: usize,
    dict: &Dictionary,
) -> Result<Vec<u8>, &'static str> {
    ruzstd_decompress_dict(frame, declared, dict)
}

/// The pure-Rust decoder with a dictionary, capped at `declared + 1` bytes of output.
#[cfg_attr(all(feature = "zstd", not(target_arch = "wasm32")), allow(dead_code))]
pub(crate) fn ruzstd_decompress_dict(
    frame: &[u8],
    declared: usize,
    dict: &Dictionary,
) -> Result<Vec<u8>, &'static str> {
    let parsed = ruzstd::decoding::Dictionary::decode_dict(dict.bytes())
        .map_err(|_| "the dictionary does not load")?;
    let mut frames = ruzstd::decoding::FrameDecoder::new();
    frames
        .add_dict(parsed)
        .map_err(|_| "the dictionary does not load")?;
    let mut source = frame;
    let decoder = ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut source, frames)
        .map_err(|_| "corrupt zstd frame header")?;
    read_bounded(decoder, declared)
}

/// Reads a decoder's output, refusing more than `declared` bytes (it never reads more than
/// `declared + 1`, so a decompression bomb costs at most the chunk's size).
#[cfg_attr(all(feature = "zstd", not(target_arch = "wasm32")), allow(dead_code))]
fn read_bounded(decoder: impl Read, declared: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(declared);
    decoder
        .take(declared as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| "corrupt zstd frame")?;
    if out.len() > declared {
        return Err("zstd frame decompresses beyond the chunk's length");
    }
    Ok(out)
}

/// Sender-side compression settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level, 1 (fastest) to 22 (smallest); 0 turns compression off.
    pub level: i32,
    /// Skip chunks whose first [`SAMPLE_LEN`] bytes do not compress below 90 % at level 1.
    pub adaptive: bool,
}

impl Compression {
    /// No compression.
    pub const OFF: Self = Self {
        level: 0,
        adaptive: true,
    };

    /// zstd at `level` (clamped to 1–22), adaptive.
    pub fn zstd(level: i32) -> Self {
        Self {
            level: level.clamp(1, 22),
            adaptive: true,
        }
    }

    /// Whether this build can compress at all (the `zstd` feature, not on wasm32).
    pub fn available() -> bool {
        cfg!(all(feature = "zstd", not(target_arch = "wasm32")))
    }

    /// Whether chunks should be compressed.
    pub fn enabled(&self) -> bool {
        self.level > 0 && Self::available()
    }
}

impl Default for Compression {
    /// zstd level 3, adaptive, when the build can compress; off otherwise.
    fn default() -> Self {
        if Self::available() {
            Self::zstd(3)
        } else {
            Self::OFF
        }
    }
}

/// The wire form of `raw` under `settings`: `Some(compressed)` when compression is on, the
/// sample (if adaptive) compresses, and the whole chunk came out strictly shorter; `None` to
/// send the raw bytes.
pub fn compress_chunk(settings: &Compression, raw: &[u8]) -> Option<Vec<u8>> {
    if !settings.enabled() || raw.len() < 64 {
        return None;
    }
    if settings.adaptive && raw.len() > SAMPLE_LEN {
        let sample = raw.get(..SAMPLE_LEN)?;
        let small = zstd_compress(sample, 1)?;
        // Under 10 % saved on the sample: not worth the CPU for the whole chunk.
        if small.len() * 10 > sample.len() * 9 {
            return None;
        }
    }
    let out = zstd_compress(raw, settings.level)?;
    (out.len() < raw.len()).then_some(out)
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
fn zstd_compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    zstd::bulk::compress(raw, level).ok()
}

#[cfg(not(all(feature = "zstd", not(target_arch = "wasm32"))))]
fn zstd_compress(_raw: &[u8], _level: i32) -> Option<Vec<u8>> {
    None
}

/// Decodes a chunk sent with `codec`, whose declared (manifest) length is `declared`. Returns
/// exactly `declared` bytes or an error; never allocates more than about `declared` bytes
/// however the input is crafted.
pub fn decompress_chunk(
    codec: Codec,
    wire: Vec<u8>,
    declared: u32,
    file: u32,
    index: u64,
) -> Result<Vec<u8>, FileError> {
    let fail = |reason: &'static str| FileError::Decompression {
        file,
        index,
        reason,
    };
    match codec {
        Codec::Raw => {
            if wire.len() as u64 != u64::from(declared) {
                return Err(fail("raw chunk of the wrong length"));
            }
            Ok(wire)
        }
        Codec::ZstdDict => Err(fail("dictionary chunk without its dictionary")),
        Codec::Zstd => {
            check_frame_header(&wire, declared).map_err(fail)?;
            let out = zstd_decompress(&wire, declared as usize).map_err(fail)?;
            if out.len() != declared as usize {
                return Err(fail("decompressed to fewer bytes than the chunk's length"));
            }
            Ok(out)
        }
    }
}

/// Checks a zstd frame header before decoding: the magic, no dictionary, and a window and
/// content size that fit the declared chunk length (so the decoder never reserves more).
fn check_frame_header(frame: &[u8], declared: u32) -> Result<(), &'static str> {
    check_frame_header_inner(frame, declared, None)
}

/// [`check_frame_header`], allowing (and then requiring) the dictionary id `dict` if given.
fn check_frame_header_inner(
    frame: &[u8],
    declared: u32,
    dict: Option<u32>,
) -> Result<(), &'static str> {
    let Some((magic, rest)) = frame.split_first_chunk::<4>() else {
        return Err("compressed chunk shorter than a zstd frame header");
    };
    if *magic != ZSTD_MAGIC {
        return Err("compressed chunk is not a zstd frame");
    }
    let Some((&fhd, mut rest)) = rest.split_first() else {
        return Err("truncated zstd frame header");
    };
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let dict_flag = fhd & 0x03;
    if fhd & 0x08 != 0 {
        return Err("zstd frame header has a reserved bit set");
    }
    let dict_len = match dict_flag {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    if dict.is_none() && dict_flag != 0 {
        return Err("zstd frame needs a dictionary, and none was negotiated");
    }
    let mut window: Option<u64> = None;
    if !single_segment {
        let Some((&wd, r)) = rest.split_first() else {
            return Err("truncated zstd frame header");
        };
        rest = r;
        let exponent = u32::from(wd >> 3);
        let base = 1u64 << (10 + exponent);
        window = Some(base + (base / 8) * u64::from(wd & 7));
    }
    if let Some(want) = dict {
        let Some(b) = rest.get(..dict_len) else {
            return Err("truncated zstd frame header");
        };
        let mut got = 0u32;
        for (i, byte) in b.iter().enumerate() {
            got |= u32::from(*byte) << (8 * i);
        }
        if got != want {
            return Err("zstd frame names another dictionary than the chunk header");
        }
        rest = rest.get(dict_len..).unwrap_or_default();
    }
    let fcs_len = match (fcs_flag, single_segment) {
        (0, true) => 1,
        (0, false) => 0,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let content = match rest.get(..fcs_len) {
        None => return Err("truncated zstd frame header"),
        Some([]) => None,
        Some(b) => {
            let mut v = 0u64;
            for (i, byte) in b.iter().enumerate() {
                v |= u64::from(*byte) << (8 * i);
            }
            Some(if fcs_len == 2 { v + 256 } else { v })
        }
    };
    if let Some(c) = content {
        if c != u64::from(declared) {
            return Err("zstd frame declares a size other than the chunk's length");
        }
    }
    let limit = u64::from(declared.max(1024)).min(u64::from(MAX_CHUNK_SIZE));
    if window.is_some_and(|w| w > limit.next_power_of_two()) {
        return Err("zstd frame window larger than the chunk");
    }
    Ok(())
}

#[cfg(all(feature = "zstd", not(target_arch = "wasm32")))]
fn zstd_decompress(frame: &[u8], declared: usize) -> Result<Vec<u8>, &'static str> {
    // The output buffer is `declared` bytes; more output is an error, not a reallocation.
    zstd::bulk::decompress(frame, declared)
        .map_err(|_| "corrupt zstd frame, or it decompresses beyond the chunk's length")
}

#[cfg(not(all(feature = "zstd", not(target_arch = "wasm32"))))]
fn zstd_decompress(frame: &[u8], declared: usize) -> Result<Vec<u8>, &'static str> {
    ruzstd_decompress(frame, declared)
}

/// The pure-Rust decoder, capped at `declared + 1` bytes of output.
#[cfg_attr(all(feature = "zstd", not(target_arch = "wasm32")), allow(dead_code))]
pub(crate) fn ruzstd_decompress(frame: &[u8], declared: usize) -> Result<Vec<u8>, &'static str> {
    let mut source = frame;
    let decoder = ruzstd::decoding::StreamingDecoder::new(&mut source)
        .map_err(|_| "corrupt zstd frame header")?;
    read_bounded(decoder, declared)
}
