//! The receiver's disk writer: one dedicated thread per transfer that checks arrived chunks
//! (decoding and BLAKE3, [`ChunkCheck::run`]), writes the verified ones into temporary files
//! and finishes files (length, fsync, mode, rename), so the event loop keeps reading the network
//! while hashing and the disk work.
//!
//! Commands arrive through a bounded channel (back-pressure: the event loop waits when the disk
//! falls `WRITE_QUEUE` chunks behind) and are carried out in order, so a `Finish` runs after
//! every write of its file. Results go back to the event loop as [`WriterEvent`]s on an
//! unbounded channel (bounded in practice by the receiver's limit on checks out, and never
//! waited on by the writer, so the two threads cannot block each other). The first failure is
//! reported once as a [`WriterEvent::Failed`]; every command after it is dropped, and `Finish`
//! replies are errors.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jsp_core::file::{ChunkCheck, ChunkChecked, FileId};
use tokio::sync::{mpsc, oneshot};

/// Chunks queued for the writer thread at most.
pub(crate) const WRITE_QUEUE: usize = 16;

/// Bytes per `pwrite`. A chunk (1 MiB by default) goes to the page cache in pieces of this size.
/// On Linux 6.x, ext4 allocates page-cache folios as large as each write allows, and large
/// folios are costly to fill on the project's VMs (free memory is handed back to the host, so a
/// fresh large folio faults in on the host as the kernel copies into it). `perf record` of the
/// file benchmark showed 36 % of all samples in that copy with whole 1 MiB writes. System time
/// to write 1 GiB from a 1 MiB buffer (`pwrite` per piece), with memory freed 8 s before / just
/// before: 1 MiB pieces 2.26 / 0.38–0.79 s, 256 KiB 1.80 / 0.22–0.36 s, 64 KiB 1.01 / 0.23–0.27 s,
/// 32 KiB 1.26 / 0.30 s, 16 KiB 0.41–0.48 / 0.37–0.41 s, 4 KiB 0.84–0.89 s (system-call
/// overhead). 16 KiB is the size that stays cheap either way.
pub(crate) const WRITE_PIECE: usize = 16 << 10;

/// What the writer thread reports to the event loop.
pub(crate) enum WriterEvent {
    /// A check ran and, if the chunk verified, its bytes were written: report it to the core.
    Checked(ChunkChecked),
    /// The first failed disk operation.
    Failed(WriteFailure),
}

/// What the writer thread is told to do.
pub(crate) enum WriteCmd {
    /// Run `check`; if the chunk verified, write it into the temporary file `temp` (created if
    /// needed); report the result ([`WriterEvent::Checked`]).
    Check { temp: PathBuf, check: ChunkCheck },
    /// Write verified bytes at `offset` of the temporary file `temp` (created if needed).
    Chunk {
        file: FileId,
        temp: PathBuf,
        offset: u64,
        bytes: Bytes,
    },
    /// All chunks of `file` are written: set its length, fsync, apply the mode, rename `temp`
    /// to `fin` and fsync the directory; reply when done, or, without `reply`, report only a
    /// failure ([`WriterEvent::Failed`]).
    Finish {
        file: FileId,
        temp: PathBuf,
        fin: PathBuf,
        size: u64,
        mode: u32,
        reply: Option<oneshot::Sender<Result<(), WriteFailure>>>,
    },
    /// Reply once every command before this one is carried out.
    Barrier(oneshot::Sender<Result<(), WriteFailure>>),
}

/// A failed disk operation: which file, which path and what the OS said.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub(crate) file: FileId,
    pub(crate) path: PathBuf,
    pub(crate) error: std::io::Error,
}

impl Clone for WriteFailure {
    fn clone(&self) -> Self {
        Self {
            file: self.file,
            path: self.path.clone(),
            error: match self.error.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(self.error.kind(), self.error.to_string()),
            },
        }
    }
}

/// Starts the writer thread. Check results and the first failure go to `events`; the bytes of
/// every chunk written are added to `written`.
pub(crate) fn spawn_writer(
    events: mpsc::UnboundedSender<WriterEvent>,
    written: Arc<AtomicU64>,
) -> std::io::Result<mpsc::Sender<WriteCmd>> {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("jsp-file-writer".into())
        .spawn(move || writer(rx, &events, &written))?;
    Ok(tx)
}

fn writer(
    mut rx: mpsc::Receiver<WriteCmd>,
    events: &mpsc::UnboundedSender<WriterEvent>,
    written: &AtomicU64,
) {
    let mut open: HashMap<FileId, Arc<std::fs::File>> = HashMap::new();
    let mut failed: Option<WriteFailure> = None;
    let fail = |f: WriteFailure, failed: &mut Option<WriteFailure>| {
        if failed.is_none() {
            let _ = events.send(WriterEvent::Failed(f.clone()));
            *failed = Some(f);
        }
    };
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            WriteCmd::Check { temp, check } => {
                if failed.is_some() {
                    continue;
                }
                let file = check.file();
                let mut done = check.run();
                if let Some(bytes) = done.verified_bytes() {
                    let res = write_chunk(&mut open, file, &temp, bytes, done.offset());
                    if let Err(error) = res {
                        let f = WriteFailure {
                            file,
                            path: temp,
                            error,
                        };
                        fail(f, &mut failed);
                        continue;
                    }
                    written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    done.release_bytes();
                }
                let _ = events.send(WriterEvent::Checked(done));
            }
            WriteCmd::Chunk {
                file,
                temp,
                offset,
                bytes,
            } => {
                if failed.is_some() {
                    continue;
                }
                match write_chunk(&mut open, file, &temp, &bytes, offset) {
                    Ok(()) => {
                        written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    Err(error) => fail(
                        WriteFailure {
                            file,
                            path: temp,
                            error,
                        },
                        &mut failed,
                    ),
                }
            }
            WriteCmd::Finish {
                file,
                temp,
                fin,
                size,
                mode,
                reply,
            } => {
                let res = match &failed {
                    Some(f) => Err(f.clone()),
                    None => finish_file(open.remove(&file), &temp, &fin, size, mode)
                        .map_err(|(path, error)| WriteFailure { file, path, error }),
                };
                match reply {
                    Some(reply) => {
                        if let Err(f) = &res {
                            if failed.is_none() {
                                failed = Some(f.clone());
                            }
                        }
                        let _ = reply.send(res);
                    }
                    None => {
                        if let Err(f) = res {
                            fail(f, &mut failed);
                        }
                    }
                }
            }
            WriteCmd::Barrier(reply) => {
                let _ = reply.send(failed.clone().map_or(Ok(()), Err));
            }
        }
    }
}

/// Writes a chunk's verified bytes at `offset` of `file`'s temporary file `temp` (opened once
/// and kept), in pieces of [`WRITE_PIECE`] bytes.
fn write_chunk(
    open: &mut HashMap<FileId, Arc<std::fs::File>>,
    file: FileId,
    temp: &Path,
    bytes: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    let f = match open.get(&file) {
        Some(f) => f.clone(),
        None => {
            let f = open_temp(temp)?;
            open.insert(file, f.clone());
            f
        }
    };
    let mut at = offset;
    for piece in bytes.chunks(WRITE_PIECE) {
        f.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// Opens (creating it and its directory if needed) a temporary file for writing, keeping what
/// an earlier attempt left in it.
pub(crate) fn open_temp(path: &Path) -> std::io::Result<Arc<std::fs::File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    Ok(Arc::new(f))
}

/// Sets the length, fsyncs, applies the mode, renames into place and fsyncs the directory.
/// A failure names the path it happened on.
fn finish_file(
    handle: Option<Arc<std::fs::File>>,
    temp: &Path,
    fin: &Path,
    size: u64,
    mode: u32,
) -> Result<(), (PathBuf, std::io::Error)> {
    fn at(p: &Path) -> impl FnOnce(std::io::Error) -> (PathBuf, std::io::Error) + '_ {
        move |e| (p.to_owned(), e)
    }
    let f = match handle {
        Some(f) => f,
        None => open_temp(temp).map_err(at(temp))?,
    };
    f.set_len(size).map_err(at(temp))?;
    f.sync_all().map_err(at(temp))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(at(temp))?;
    drop(f);
    std::fs::rename(temp, fin).map_err(at(fin))?;
    if let Some(parent) = fin.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
