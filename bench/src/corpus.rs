//! Chunk compression of a text corpus through the file transfer's compressor
//! (`jsp_core::file::compress`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use jsp_tokio::jsp_core::file::compress::{compress_chunk, decompress_chunk};
use jsp_tokio::jsp_core::file::{Codec, Compression, DEFAULT_CHUNK_SIZE};

use crate::BenchResult;

/// Where the default corpus comes from: the licence texts and the uncompressed documentation
/// that Debian-like systems install.
pub const DEFAULT_CORPUS_DIRS: [&str; 2] = ["/usr/share/common-licenses", "/usr/share/doc"];

/// A text corpus: the contents of text files, concatenated in path order.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Files taken.
    pub files: usize,
    /// A description for the report.
    pub source: String,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            collect(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// Whether `b` looks like text: UTF-8 without NUL bytes.
fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

impl Corpus {
    /// Reads the text files (UTF-8, no NUL; `.gz` and other compressed files are skipped as
    /// binary) under `dirs`, in sorted path order, up to `limit` bytes (the last file is cut).
    pub fn from_dirs(dirs: &[PathBuf], limit: usize) -> Self {
        let mut paths = Vec::new();
        for d in dirs {
            collect(d, &mut paths);
        }
        let mut bytes = Vec::new();
        let mut files = 0;
        for p in paths {
            if bytes.len() >= limit {
                break;
            }
            let Ok(b) = std::fs::read(&p) else { continue };
            if b.is_empty() || !is_text(&b) {
                continue;
            }
            let take = b.len().min(limit - bytes.len());
            bytes.extend_from_slice(&b[..take]);
            files += 1;
        }
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Self {
            source: format!("{files} text files under {}", names.join(", ")),
            bytes,
            files,
        }
    }
}

/// What one level did to the corpus.
#[derive(Clone, Copy, Debug)]
pub struct LevelResult {
    /// The zstd level.
    pub level: i32,
    /// Raw bytes ÷ bytes on the wire (raw chunks count at their size).
    pub ratio: f64,
    /// Raw megabytes (10⁶) compressed per second, one thread.
    pub compress_mb_s: f64,
    /// Raw megabytes (10⁶) decoded per second, one thread (the receiver's bounded decoder).
    pub decompress_mb_s: f64,
    /// Chunks sent compressed, of all chunks.
    pub compressed_chunks: usize,
    /// All chunks.
    pub chunks: usize,
}

/// Cuts `corpus` into the transfer's chunks (1 MiB) and passes each through `compress_chunk` at
/// `level` (adaptive, as `jsp send --level`), then decodes each compressed chunk with
/// `decompress_chunk` and checks it.
pub fn measure(corpus: &[u8], level: i32) -> BenchResult<LevelResult> {
    let settings = Compression::zstd(level);
    let chunks: Vec<&[u8]> = corpus.chunks(DEFAULT_CHUNK_SIZE as usize).collect();
    let start = Instant::now();
    let wire: Vec<Option<Vec<u8>>> = chunks
        .iter()
        .map(|c| compress_chunk(&settings, c))
        .collect();
    let compress = start.elapsed().as_secs_f64();
    let wire_bytes: usize = wire
        .iter()
        .zip(&chunks)
        .map(|(w, c)| w.as_ref().map_or(c.len(), Vec::len))
        .sum();
    let start = Instant::now();
    for (i, (w, c)) in wire.iter().zip(&chunks).enumerate() {
        if let Some(w) = w {
            let out = decompress_chunk(Codec::Zstd, w.clone(), c.len() as u32, 0, i as u64)?;
            if out != *c {
                return Err(format!("chunk {i} came back different at level {level}").into());
            }
        }
    }
    let decompress = start.elapsed().as_secs_f64();
    let raw = corpus.len() as f64;
    Ok(LevelResult {
        level,
        ratio: raw / wire_bytes.max(1) as f64,
        compress_mb_s: raw / compress.max(1e-9) / 1e6,
        decompress_mb_s: raw / decompress.max(1e-9) / 1e6,
        compressed_chunks: wire.iter().filter(|w| w.is_some()).count(),
        chunks: chunks.len(),
    })
}
