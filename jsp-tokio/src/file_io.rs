//! The receiver's disk writer: one dedicated thread per transfer that writes verified chunks
//! into temporary files and finishes files (length, fsync, mode, rename), so the event loop
//! keeps reading the network while the disk works.
//!
//! Commands arrive through a bounded channel (back-pressure: the event loop waits when the disk
//! falls `WRITE_QUEUE` chunks behind) and are carried out in order, so a `Finish` runs after
//! every write of its file. The first failure is reported once as a [`WriteFailure`]; every
//! command after it is dropped, and `Finish` replies are errors.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jsp_core::file::FileId;
use tokio::sync::{mpsc, oneshot};

/// Chunks queued for the writer thread at most.
pub(crate) const WRITE_QUEUE: usize = 16;

/// What the writer thread is told to do.
pub(crate) enum WriteCmd {
    /// Write verified bytes at `offset` of the temporary file `temp` (created if needed).
    Chunk {
        file: FileId,
        temp: PathBuf,
        offset: u64,
        bytes: Bytes,
    },
    /// All chunks of `file` are written: set its length, fsync, apply the mode, rename `temp`
    /// to `fin` and fsync the directory; reply when done.
    Finish {
        file: FileId,
        temp: PathBuf,
        fin: PathBuf,
        size: u64,
        mode: u32,
        reply: oneshot::Sender<Result<(), WriteFailure>>,
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

/// Starts the writer thread. Failures go to `on_fail` (called once, from the thread); the
/// bytes of every chunk written are added to `written`.
pub(crate) fn spawn_writer(
    on_fail: impl Fn(WriteFailure) + Send + 'static,
    written: Arc<AtomicU64>,
) -> std::io::Result<mpsc::Sender<WriteCmd>> {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("jsp-file-writer".into())
        .spawn(move || writer(rx, on_fail, &written))?;
    Ok(tx)
}

fn writer(mut rx: mpsc::Receiver<WriteCmd>, on_fail: impl Fn(WriteFailure), written: &AtomicU64) {
    let mut open: HashMap<FileId, Arc<std::fs::File>> = HashMap::new();
    let mut failed: Option<WriteFailure> = None;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            WriteCmd::Chunk {
                file,
                temp,
                offset,
                bytes,
            } => {
                if failed.is_some() {
                    continue;
                }
                let res = match open.get(&file) {
                    Some(f) => Ok(f.clone()),
                    None => open_temp(&temp).inspect(|f| {
                        open.insert(file, f.clone());
                    }),
                }
                .and_then(|f| f.write_all_at(&bytes, offset));
                if res.is_ok() {
                    written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                if let Err(error) = res {
                    let fail = WriteFailure {
                        file,
                        path: temp,
                        error,
                    };
                    on_fail(fail.clone());
                    failed = Some(fail);
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
                if let Err(f) = &res {
                    if failed.is_none() {
                        failed = Some(f.clone());
                    }
                }
                let _ = reply.send(res);
            }
            WriteCmd::Barrier(reply) => {
                let _ = reply.send(failed.clone().map_or(Ok(()), Err));
            }
        }
    }
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
