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
}

impl Codec {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Zstd => 1,
        }
    }

    /// The codec of a wire value, if known.
    pub fn from_wire(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Bit of `Fetch`'s `c` (codecs) field: the receiver decodes zstd chunks.
pub const CODEC_BIT_ZSTD: u32 = 1;

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
    if dict_flag != 0 {
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
