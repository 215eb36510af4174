//! File transfer over a connection: the I/O around [`jsp_core::file`]'s state machines.
//!
//! - The sending side scans paths into a [`FileSource`] (a BLAKE3 manifest) and answers one
//!   receiver per connection with [`send_files`]: several data streams, each reading its chunks
//!   from disk on the blocking pool while the others send.
//! - The receiving side, [`receive_files`], asks for a transfer by id over `lanes` parallel
//!   streams, writes verified chunks into a temporary file beside the final name
//!   (`.NAME.jsp-part-ID`), and only when every chunk of a file verified does it set the length,
//!   fsync, apply the mode and rename it into place. Its event loop only moves bytes between
//!   the streams and the [`Receiver`]: each arrived chunk is checked (BLAKE3, and zstd decoding)
//!   and written by a dedicated writer thread ([`ReceiverConfig::offload_checks`]), which
//!   reports every result back to the receiver. Resume is on by default: a temporary file
//!   left by an earlier attempt is read back, its chunks that still verify are kept and only the
//!   others are fetched.
//! - Both report a [`TransferProgress`] through a `tokio::sync::watch` channel (bytes, rate, ETA,
//!   the files in progress) and stop when their [`Cancel`] handle is cancelled (or when their
//!   future is dropped: the streams are reset and the connection closes).
//!
//! File I/O runs on tokio's blocking pool, so these functions need a tokio runtime (not smol).

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jsp_core::file::{
    Action, Channel, ChunkHasher, Compression, EntryKind, ErrorMessage, FileError, FileId,
    Manifest, ManifestError, Receiver, ReceiverConfig, RootHash, Sender, SenderAction,
    SenderConfig, StreamKey, TransferId, DEFAULT_CHUNK_SIZE,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::{Connection, ConnectionError, RecvStream, SendStream};

#[path = "file_io.rs"]
mod file_io;
use file_io::{WriteCmd, WriterEvent};

/// Application close code after a successful transfer (the receiver closes with it once its
/// `Done` was acknowledged).
pub const CLOSE_DONE: u64 = 0;
/// Application close code after a failed or cancelled transfer. When the failure was this
/// side's own, the close reason repeats the `Error` it sent
/// ([`ErrorMessage::to_close_reason`], `file error CODE: REASON`), and a peer that finds no
/// `Error` message before the close reports that one (as [`FileError::Peer`]).
pub const CLOSE_FAILED: u64 = 1;

/// Why a file transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileTransferError {
    /// A local path could not be read while scanning.
    #[error("{path}: {source}")]
    Scan {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A path given to send has no usable name, or is not a file or directory.
    #[error("{path}: {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The scanned files make no valid manifest.
    #[error("cannot build the manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The protocol failed (the local or the remote side), with its typed reason.
    #[error("{0}")]
    Protocol(#[from] FileError),
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A received file could not be stored (a full disk, a read-only file system, a directory
    /// the receiver may not write to). The sender is told (code WRITE_FAILED). A temporary file
    /// with the chunks verified so far is kept beside the final name for a later resume: run
    /// the same receive again once the cause is fixed.
    #[error("cannot write {path}: {reason}{}", partial_hint(.partial.as_deref()))]
    Write {
        /// The path the operating system refused (the temporary file, the final name or a
        /// directory).
        path: PathBuf,
        /// What the operating system said, in words ("no space left on device", ...).
        reason: String,
        /// The kind of the I/O error (`StorageFull`, `PermissionDenied`, ...).
        kind: ErrorKind,
        /// The temporary file kept for resume, if one exists.
        partial: Option<PathBuf>,
    },
    /// A file to receive exists already with other contents.
    #[error(
        "{path} exists and differs from the file being received (remove it, or allow overwriting: `jsp recv --force`)"
    )]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// The peer ended a stream in the middle of the transfer.
    #[error("the peer ended a stream before the transfer finished")]
    StreamEnded,
    /// The transfer was cancelled locally.
    #[error("transfer cancelled")]
    Cancelled,
}

fn partial_hint(partial: Option<&Path>) -> String {
    match partial {
        Some(p) => format!(
            " (the verified part is kept in {}: fix the cause and receive again to resume)",
            p.display()
        ),
        None => String::new(),
    }
}

impl FileTransferError {
    /// A short, stable name for the kind of failure, for scripts: "no_space",
    /// "permission_denied", "read_only", "write_failed", "read_failed", "source_changed",
    /// "exists", "unknown_transfer", "corrupt", "protocol", "connection", "cancelled", "scan",
    /// "bad_path" or "peer_<code>".
    pub fn kind_name(&self) -> String {
        use jsp_core::file::ErrorCode;
        let io = |k: ErrorKind| match k {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some("no_space"),
            ErrorKind::PermissionDenied => Some("permission_denied"),
            ErrorKind::ReadOnlyFilesystem => Some("read_only"),
            _ => None,
        };
        match self {
            Self::Scan { source, .. } => io(source.kind()).unwrap_or("scan").into(),
            Self::BadPath { .. } => "bad_path".into(),
            Self::Manifest(_) => "protocol".into(),
            Self::Write { kind, .. } => io(*kind).unwrap_or("write_failed").into(),
            Self::Exists { .. } => "exists".into(),
            Self::StreamEnded | Self::Connection(_) => "connection".into(),
            Self::Cancelled => "cancelled".into(),
            Self::Protocol(e) => match e {
                FileError::Peer { code, .. } => match code.name() {
                    Some(n) => format!("peer_{}", n.to_ascii_lowercase()),
                    None => format!("peer_{}", code.0),
                },
                e => match e.code() {
                    ErrorCode::SOURCE_CHANGED => "source_changed".into(),
                    ErrorCode::READ_FAILED => "read_failed".into(),
                    ErrorCode::WRITE_FAILED => "write_failed".into(),
                    ErrorCode::UNKNOWN_TRANSFER => "unknown_transfer".into(),
                    ErrorCode::CORRUPT => "corrupt".into(),
                    ErrorCode::CANCELLED => "cancelled".into(),
                    _ => "protocol".into(),
                },
            },
        }
    }

    /// The local path the failure concerns, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Scan { path, .. }
            | Self::BadPath { path, .. }
            | Self::Write { path, .. }
            | Self::Exists { path } => Some(path),
            _ => None,
        }
    }
}

/// A cancellation handle: clone it, keep one, and call [`Cancel::cancel`] to stop the transfer
/// (the peer is told with a CANCELLED error).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// A fresh handle, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every transfer holding a clone of this handle.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// One file in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProgress {
    /// Its path in the manifest.
    pub path: String,
    /// Verified bytes.
    pub done: u64,
    /// Its size.
    pub size: u64,
}

/// A snapshot of a transfer's progress.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransferProgress {
    /// Bytes in all files.
    pub bytes_total: u64,
    /// Bytes verified (receiver) or sent (sender).
    pub bytes_done: u64,
    /// Of those, bytes found already on disk at resume (receiver).
    pub bytes_resumed: u64,
    /// Chunk bytes on the wire (after compression).
    pub wire_bytes: u64,
    /// Files in the manifest.
    pub files_total: u64,
    /// Files complete.
    pub files_done: u64,
    /// Time since the transfer started.
    pub elapsed: Duration,
    /// Bytes per second over the transfer so far, not counting resumed bytes.
    pub rate: f64,
    /// Estimated time left at that rate.
    pub eta: Option<Duration>,
    /// Files partly transferred.
    pub active: Vec<FileProgress>,
    /// Whether the transfer is over (successfully or not).
    pub finished: bool,
}

impl TransferProgress {
    fn timing(&mut self, start: Instant) {
        self.elapsed = start.elapsed();
        let moved = self.bytes_done.saturating_sub(self.bytes_resumed);
        let secs = self.elapsed.as_secs_f64();
        self.rate = if secs > 0.0 { moved as f64 / secs } else { 0.0 };
        let left = self.bytes_total.saturating_sub(self.bytes_done);
        self.eta = (self.rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / self.rate));
    }
}

/// The files offered by a sender: the manifest and where each entry comes from.
#[derive(Clone, Debug)]
pub struct FileSource {
    manifest: Arc<Manifest>,
    sources: Arc<Vec<PathBuf>>,
}

impl FileSource {
    /// Scans `paths` (files, and directories recursively) on the blocking pool, hashing every
    /// chunk. A file is named by its file name, a directory's contents by paths under the
    /// directory's name. Symbolic links inside directories are skipped.
    pub async fn scan(paths: Vec<PathBuf>, chunk_size: u32) -> Result<Self, FileTransferError> {
        tokio::task::spawn_blocking(move || scan_blocking(&paths, chunk_size))
            .await
            .map_err(|e| FileTransferError::BadPath {
                path: PathBuf::new(),
                reason: if e.is_panic() {
                    "the scan panicked"
                } else {
                    "the scan was cancelled"
                },
            })?
    }

    /// The manifest.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The transfer id (for the ticket).
    pub fn transfer_id(&self) -> TransferId {
        self.manifest.transfer_id()
    }

    /// The root hash of the manifest.
    pub fn root(&self) -> RootHash {
        self.manifest.root()
    }
}

fn scan_blocking(paths: &[PathBuf], chunk_size: u32) -> Result<FileSource, FileTransferError> {
    let chunk_size = if chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        chunk_size
    };
    let mut found: Vec<(String, PathBuf, bool)> = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| FileTransferError::Scan {
            path: p.clone(),
            source,
        })?;
        let name = p
            .canonicalize()
            .ok()
            .and_then(|c| c.file_name().map(|n| n.to_owned()))
            .and_then(|n| n.to_str().map(str::to_owned))
            .ok_or(FileTransferError::BadPath {
                path: p.clone(),
                reason: "has no file name in UTF-8",
            })?;
        if meta.is_dir() {
            walk(p, &name, &mut found)?;
        } else if meta.is_file() {
            found.push((name, p.clone(), false));
        } else {
            return Err(FileTransferError::BadPath {
                path: p.clone(),
                reason: "is neither a file nor a directory",
            });
        }
    }
    let mut builder = Manifest::builder().chunk_size(chunk_size);
    let mut sources = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for (name, path, is_dir) in found {
        let scan_err = |source| FileTransferError::Scan {
            path: path.clone(),
            source,
        };
        let meta = std::fs::metadata(&path).map_err(scan_err)?;
        let mode = meta.permissions().mode() & 0o7777;
        if is_dir {
            builder = builder.dir(name, mode);
            continue;
        }
        let mut f = std::fs::File::open(&path).map_err(scan_err)?;
        let mut hasher = ChunkHasher::new(chunk_size);
        // Each chunk's rolling checksum too, so a receiver with an older version of the file
        // can find moved chunks in it (`jsp_core::delta`).
        let mut weak = Vec::new();
        let (mut wh, mut in_chunk) = (jsp_core::delta::WeakHasher::new(), 0usize);
        loop {
            let n = f.read(&mut buf).map_err(scan_err)?;
            if n == 0 {
                break;
            }
            let mut piece = buf.get(..n).unwrap_or_default();
            hasher.update(piece);
            while !piece.is_empty() {
                let take = (chunk_size as usize - in_chunk).min(piece.len());
                wh.update(piece.get(..take).unwrap_or_default());
                in_chunk += take;
                piece = piece.get(take..).unwrap_or_default();
                if in_chunk == chunk_size as usize {
                    weak.push(wh.finish());
                    (wh, in_chunk) = (jsp_core::delta::WeakHasher::new(), 0);
                }
            }
        }
        if in_chunk > 0 {
            weak.push(wh.finish());
        }
        let (size, hashes) = hasher.finish();
        builder = builder.file_with_weak(name.clone(), size, mode, hashes, weak);
        sources.insert(name, path);
    }
    let manifest = builder.build()?;
    let sources = manifest
        .entries()
        .iter()
        .map(|e| sources.get(e.path()).cloned().unwrap_or_default())
        .collect();
    Ok(FileSource {
        manifest: Arc::new(manifest),
        sources: Arc::new(sources),
    })
}

fn walk(
    dir: &Path,
    name: &str,
    found: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), FileTransferError> {
    let err = |source| FileTransferError::Scan {
        path: dir.to_owned(),
        source,
    };
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    children.sort_by_key(|e| e.file_name());
    let mut any = false;
    for child in children {
        let ty = child.file_type().map_err(err)?;
        let Some(child_name) = child.file_name().to_str().map(str::to_owned) else {
            return Err(FileTransferError::BadPath {
                path: child.path(),
                reason: "has a name that is not UTF-8",
            });
        };
        let rel = format!("{name}/{child_name}");
        if ty.is_dir() {
            any = true;
            walk(&child.path(), &rel, found)?;
        } else if ty.is_file() {
            any = true;
            found.push((rel, child.path(), false));
        }
    }
    if !any {
        found.push((name.to_owned(), dir.to_owned(), true));
    }
    Ok(())
}

/// Sender settings.
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// Chunk compression (negotiated: used only if the receiver offers zstd).
    pub compression: Compression,
    /// Trained zstd dictionaries to compress with, if the receiver holds one of them
    /// (negotiated by content id in `Fetch`).
    pub dictionaries: Vec<jsp_core::file::Dictionary>,
}

/// What a finished send moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// Chunk bytes sent (uncompressed).
    pub bytes_sent: u64,
    /// Chunk bytes on the wire.
    pub wire_bytes: u64,
    /// Chunks sent.
    pub chunks_sent: u64,
    /// Of those, compressed.
    pub chunks_compressed: u64,
    /// How long it took.
    pub elapsed: Duration,
}

enum SendEvent {
    Stream(StreamKey, mpsc::UnboundedSender<StreamCmd>),
    Data(StreamKey, Bytes),
    End,
    Read(
        StreamKey,
        FileId,
        u64,
        Result<(Bytes, jsp_core::file::ChunkHash), String>,
    ),
    AcceptFailed(ConnectionError),
}

enum StreamCmd {
    Write(Vec<u8>),
    Chunk(Vec<u8>, Bytes),
    Read {
        file: FileId,
        index: u64,
        offset: u64,
        len: u32,
    },
}

/// Serves `source` to the receiver on `conn` until it reports every file verified (`Ok`), the
/// transfer fails, or `cancel` fires. Progress goes to `progress` if given.
pub async fn send_files(
    conn: &Connection,
    source: &FileSource,
    options: SendOptions,
    cancel: Cancel,
    progress: Option<watch::Sender<TransferProgress>>,
) -> Result<SendSummary, FileTransferError> {
    let start = Instant::now();
    let config = SenderConfig {
        compression: options.compression,
        dictionaries: options.dictionaries,
        ..SenderConfig::default()
    };
    let mut sender = Sender::new(source.manifest.clone(), config)?;
    let (ev_tx, mut ev_rx) = mpsc::channel::<SendEvent>(256);
    let accept = tokio::spawn(accept_streams(
        conn.clone(),
        ev_tx.clone(),
        source.sources.clone(),
    ));
    let _abort = AbortOnDrop(accept);
    let mut streams: HashMap<StreamKey, mpsc::UnboundedSender<StreamCmd>> = HashMap::new();
    // Stream readers that have not reported their end yet, and why the connection ended once
    // it has: see `SendEvent::AcceptFailed` below.
    let mut readers = 0usize;
    let mut ended: Option<(ConnectionError, tokio::time::Instant)> = None;
    let mut last_report = Instant::now();
    let total = source.manifest.total_bytes();
    let report = |sender: &Sender, finished: bool| {
        if let Some(p) = &progress {
            let stats = sender.stats();
            let mut t = TransferProgress {
                bytes_total: total,
                bytes_done: stats.bytes_sent.min(total),
                wire_bytes: stats.wire_bytes,
                files_total: source.manifest.file_count() as u64,
                finished,
                ..TransferProgress::default()
            };
            t.timing(start);
            p.send_replace(t);
        }
    };
    let outcome: Result<(), FileTransferError> = loop {
        if let Some((e, deadline)) = &ended {
            if readers == 0 || tokio::time::Instant::now() >= *deadline {
                break Err(connection_ended(e.clone()));
            }
        }
        let drain_deadline = ended.as_ref().map(|(_, d)| *d);
        let ev = tokio::select! {
            ev = ev_rx.recv() => ev,
            () = sleep_until_some(drain_deadline) => continue,
            () = cancel.cancelled() => {
                sender.cancel();
                flush_sender(&mut sender, &streams);
                break Err(FileTransferError::Cancelled);
            }
        };
        let Some(ev) = ev else {
            break Err(FileTransferError::StreamEnded);
        };
        let r = match ev {
            SendEvent::Stream(key, tx) => {
                streams.insert(key, tx);
                readers += 1;
                Ok(())
            }
            SendEvent::Data(key, bytes) => sender.handle_data(key, &bytes),
            SendEvent::End => {
                readers = readers.saturating_sub(1);
                Ok(())
            }
            SendEvent::Read(key, file, index, Ok((bytes, hash))) => {
                sender.chunk_read_hashed(key, file, index, bytes, hash)
            }
            SendEvent::Read(_, file, _, Err(reason)) => {
                sender.read_failed(file, &reason);
                Err(sender.error().cloned().unwrap_or(FileError::Failed))
            }
            SendEvent::AcceptFailed(e) => {
                if sender.is_finished() {
                    break Ok(());
                }
                // The connection ended, but what the receiver sent before closing it (its
                // `Done`, or an `Error` with the reason) may still sit in a stream, not yet
                // forwarded by that stream's reader task: the close wakes every task at once, and
                // the reader can lose the race to this event. Keep taking events until every
                // reader has delivered what it holds and reported its end (on a closed
                // connection a read returns the buffered data, then fails), and only then
                // decide. The deadline only guards against a reader that never ends.
                ended = Some((e, tokio::time::Instant::now() + CLOSE_DRAIN_MAX));
                Ok(())
            }
        };
        let finished = flush_sender(&mut sender, &streams);
        if let Err(e) = r {
            break Err(e.into());
        }
        if finished {
            break Ok(());
        }
        if last_report.elapsed() >= Duration::from_millis(100) {
            last_report = Instant::now();
            report(&sender, false);
        }
    };
    report(&sender, true);
    drop(streams);
    if outcome.is_err() {
        // At once: the close's reason carries the same report as the Error message the writers
        // may still be sending (`close_after`), so the peer learns why either way.
        close_after(conn, false, sent_report(sender.error()).as_ref());
    }
    outcome?;
    let stats = sender.stats();
    Ok(SendSummary {
        bytes_sent: stats.bytes_sent,
        wire_bytes: stats.wire_bytes,
        chunks_sent: stats.chunks_sent,
        chunks_compressed: stats.chunks_compressed,
        elapsed: start.elapsed(),
    })
}

/// Longest a side whose connection ended waits for its stream readers to deliver what they hold
/// (a guard: the readers end as soon as their buffered data is taken).
const CLOSE_DRAIN_MAX: Duration = Duration::from_secs(2);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Hands the sender's actions to the stream tasks; returns whether the transfer finished.
fn flush_sender(
    sender: &mut Sender,
    streams: &HashMap<StreamKey, mpsc::UnboundedSender<StreamCmd>>,
) -> bool {
    let mut finished = false;
    while let Some(a) = sender.poll_action() {
        let (stream, cmd) = match a {
            SenderAction::Send { stream, bytes } => (stream, StreamCmd::Write(bytes)),
            SenderAction::ReadChunk {
                stream,
                file,
                index,
                offset,
                len,
            } => (
                stream,
                StreamCmd::Read {
                    file,
                    index,
                    offset,
                    len,
                },
            ),
            SenderAction::SendChunk {
                stream,
                header,
                payload,
            } => (stream, StreamCmd::Chunk(header, payload)),
            SenderAction::Finished => {
                finished = true;
                continue;
            }
        };
        if let Some(tx) = streams.get(&stream) {
            let _ = tx.send(cmd);
        }
    }
    finished
}

async fn accept_streams(
    conn: Connection,
    ev_tx: mpsc::Sender<SendEvent>,
    sources: Arc<Vec<PathBuf>>,
) {
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                let _ = ev_tx.send(SendEvent::AcceptFailed(e)).await;
                return;
            }
        };
        let key = StreamKey(recv.id().0);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        if ev_tx.send(SendEvent::Stream(key, cmd_tx)).await.is_err() {
            return;
        }
        tokio::spawn(stream_writer(
            key,
            send,
            cmd_rx,
            ev_tx.clone(),
            sources.clone(),
        ));
        tokio::spawn(read_stream(recv, ev_tx.clone(), move |r| match r {
            Some(bytes) => SendEvent::Data(key, bytes),
            None => SendEvent::End,
        }));
    }
}

/// Most stream pieces in one [`RecvEvent::Data`].
const BATCH_PIECES: usize = 64;
/// Most bytes in one [`RecvEvent::Data`] (about: the piece that crosses it is included).
const BATCH_BYTES: usize = 64 << 10;
/// [`RecvEvent`]s queued for the receiver's event loop at most: with [`BATCH_BYTES`], about
/// 4 MiB of stream data read and not yet taken by the receiver.
const RECV_EVENTS: usize = 64;

/// Forwards a receiver stream's bytes as events, batching the pieces that are ready together
/// (a piece is one STREAM frame's payload, about 1.2 kB on loopback) so the event loop takes
/// one event per batch rather than one per packet; [`RecvEvent::End`] at its end or on an
/// error.
async fn read_batches(mut recv: RecvStream, channel: Channel, tx: mpsc::Sender<RecvEvent>) {
    loop {
        let first = match recv.read_chunk(usize::MAX).await {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => {
                let _ = tx.send(RecvEvent::End).await;
                return;
            }
        };
        let mut size = first.len();
        let mut batch = vec![first];
        let mut ended = false;
        while batch.len() < BATCH_PIECES && size < BATCH_BYTES {
            match ready_now(recv.read_chunk(usize::MAX)) {
                Some(Ok(Some(b))) => {
                    size += b.len();
                    batch.push(b);
                }
                Some(Ok(None) | Err(_)) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        if tx.send(RecvEvent::Data(channel, batch)).await.is_err() {
            return;
        }
        if ended {
            let _ = tx.send(RecvEvent::End).await;
            return;
        }
    }
}

/// Polls `f` once: its output if it is ready now. A pending read leaves a no-op waker behind,
/// which the next awaited read replaces.
fn ready_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Forwards a stream's bytes as events; `None` at its end or on an error.
async fn read_stream<E: Send + 'static>(
    mut recv: RecvStream,
    tx: mpsc::Sender<E>,
    wrap: impl Fn(Option<Bytes>) -> E + Send + 'static,
) {
    loop {
        match recv.read_chunk(1 << 20).await {
            Ok(Some(bytes)) => {
                if tx.send(wrap(Some(bytes))).await.is_err() {
                    return;
                }
            }
            Ok(None) | Err(_) => {
                let _ = tx.send(wrap(None)).await;
                return;
            }
        }
    }
}

async fn stream_writer(
    key: StreamKey,
    mut send: SendStream,
    mut cmds: mpsc::UnboundedReceiver<StreamCmd>,
    ev_tx: mpsc::Sender<SendEvent>,
    sources: Arc<Vec<PathBuf>>,
) {
    let mut open: Option<(FileId, Arc<std::fs::File>)> = None;
    while let Some(cmd) = cmds.recv().await {
        let written = match cmd {
            StreamCmd::Write(bytes) => send.write_all(&bytes).await,
            StreamCmd::Chunk(header, payload) => match send.write_all(&header).await {
                Ok(()) => send.write_all(&payload).await,
                Err(e) => Err(e),
            },
            StreamCmd::Read {
                file,
                index,
                offset,
                len,
            } => {
                let f = match &open {
                    Some((id, f)) if *id == file => Ok(f.clone()),
                    _ => {
                        let path = sources.get(file.index()).cloned().unwrap_or_default();
                        std::fs::File::open(&path)
                            .map(Arc::new)
                            .map_err(|e| format!("{}: {}", path.display(), describe_io(&e)))
                    }
                };
                let read = match f {
                    Ok(f) => {
                        open = Some((file, f.clone()));
                        // Read and hash on the blocking pool, off the event loop.
                        tokio::task::spawn_blocking(move || {
                            read_chunk_at(&f, offset, len).map(|b| {
                                let h = jsp_core::file::chunk_hash(&b);
                                (b, h)
                            })
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                    }
                    Err(e) => Err(e),
                };
                if ev_tx
                    .send(SendEvent::Read(key, file, index, read))
                    .await
                    .is_err()
                {
                    return;
                }
                Ok(())
            }
        };
        if written.is_err() {
            return;
        }
    }
    // The transfer is over: end the stream cleanly so a queued Error still arrives.
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), send.finished()).await;
}

/// Reads up to `len` bytes at `offset` into a fresh buffer that is not zeroed first (the
/// sender's read of each chunk: zeroing 1 MiB per chunk measured 6 % of the benchmark's
/// samples); fewer at the end of a file (which the sender reports as a changed source). Moves
/// the file's position: each sending stream opens the file for itself and reads one chunk at
/// a time.
fn read_chunk_at(f: &std::fs::File, offset: u64, len: u32) -> Result<Bytes, String> {
    use std::io::Seek;
    let mut f = f;
    f.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| describe_io(&e))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(u64::from(len))
        .read_to_end(&mut buf)
        .map_err(|e| describe_io(&e))?;
    Ok(Bytes::from(buf))
}

/// Reads up to `len` bytes at `offset`; fewer at the end of a file (which the sender reports as
/// a changed source).
fn read_at(f: &std::fs::File, offset: u64, len: u32) -> Result<Bytes, String> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let Some(rest) = buf.get_mut(got..) else {
            break;
        };
        match f.read_at(rest, offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(describe_io(&e)),
        }
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}

/// An I/O error in words a user acts on.
pub fn describe_io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(28) => "no space left on device".into(),
        Some(122) => "disk quota exceeded".into(),
        Some(30) => "read-only file system".into(),
        _ => match e.kind() {
            ErrorKind::PermissionDenied => "permission denied".into(),
            ErrorKind::NotFound => "no such file or directory".into(),
            _ => e.to_string(),
        },
    }
}

/// Receiver settings.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    /// Parallel data streams (1–64). Default 4.
    pub lanes: u16,
    /// Chunks requested ahead per stream (1–256). Default 4.
    pub window: u32,
    /// Keep verified chunks of an earlier attempt's temporary files. Default true.
    pub resume: bool,
    /// Offer to decode zstd-compressed chunks. Default true.
    pub accept_zstd: bool,
    /// Replace existing files that differ. Default false: such a file fails the transfer.
    pub overwrite: bool,
    /// Stop, as if cancelled, once at least this many bytes are verified (kept ones included):
    /// a byte budget for one session, after which a later receive resumes. Default `None`.
    pub stop_after_bytes: Option<u64>,
    /// Trained zstd dictionaries this receiver holds, most preferred first (at most 16); their
    /// ids go out in `Fetch`. Default none.
    pub dictionaries: Vec<jsp_core::file::Dictionary>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            lanes: 4,
            window: 4,
            resume: true,
            accept_zstd: true,
            overwrite: false,
            stop_after_bytes: None,
            dictionaries: Vec::new(),
        }
    }
}

/// What a finished receive moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveSummary {
    /// Bytes in all files.
    pub bytes_total: u64,
    /// Bytes kept from an earlier attempt.
    pub bytes_resumed: u64,
    /// Chunk bytes received on the wire (after compression, including refetches).
    pub wire_bytes: u64,
    /// Chunks fetched again after failing verification.
    pub chunks_refetched: u64,
    /// Files received.
    pub files: u64,
    /// The manifest's root hash (what the ticket's transfer id vouches for).
    pub root: RootHash,
    /// How long it took.
    pub elapsed: Duration,
}

enum RecvEvent {
    /// What a stream delivered since the last event, in order.
    Data(Channel, Vec<Bytes>),
    End,
}

struct Out {
    dir: PathBuf,
    id_tag: String,
}

impl Out {
    fn final_path(&self, entry_path: &str) -> PathBuf {
        self.dir.join(entry_path)
    }

    fn temp_path(&self, entry_path: &str) -> PathBuf {
        let p = self.final_path(entry_path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.with_file_name(format!(".{name}.jsp-part-{}", self.id_tag))
    }
}

/// Receives transfer `id` from the sender on `conn` into `out_dir`, which is created if needed.
/// Returns when every file is verified and in place (`Ok`), the transfer fails, or `cancel`
/// fires. The connection is closed at the end. Progress goes to `progress` if given.
pub async fn receive_files(
    conn: &Connection,
    id: TransferId,
    out_dir: &Path,
    options: ReceiveOptions,
    cancel: Cancel,
    progress: Option<watch::Sender<TransferProgress>>,
) -> Result<ReceiveSummary, FileTransferError> {
    let mut report = None;
    let result = receive_inner(conn, id, out_dir, &options, &cancel, progress, &mut report).await;
    close_after(conn, result.is_ok(), report.as_ref());
    result
}

/// Closes `conn` at the end of a transfer: [`CLOSE_DONE`] after a success, else
/// [`CLOSE_FAILED`] with the `Error` this side sent, if it sent one, as the reason
/// ([`ErrorMessage::to_close_reason`]): the close can overtake that message (or come before any
/// stream was open), and the peer still learns why ([`connection_ended`]).
fn close_after(conn: &Connection, ok: bool, report: Option<&ErrorMessage>) {
    if ok {
        conn.close(CLOSE_DONE, b"file transfer done");
    } else {
        match report {
            Some(m) => conn.close(CLOSE_FAILED, &m.to_close_reason()),
            None => conn.close(CLOSE_FAILED, b"file transfer failed"),
        }
    }
}

/// The `Error` a failed state machine sent its peer (`None` if it failed because of the peer).
fn sent_report(e: Option<&FileError>) -> Option<ErrorMessage> {
    e.filter(|e| !matches!(e, FileError::Peer { .. } | FileError::Failed))
        .map(ErrorMessage::from)
}

/// The error for a transfer whose connection ended with `e`: the peer's reason when it closed
/// with [`CLOSE_FAILED`] and an error in the reason ([`close_after`]), else the connection error.
fn connection_ended(e: ConnectionError) -> FileTransferError {
    if let ConnectionError::ApplicationClosed { code, reason } = &e {
        if *code == CLOSE_FAILED {
            if let Some(m) = ErrorMessage::from_close_reason(reason) {
                return FileError::Peer {
                    code: m.code,
                    reason: m.reason,
                }
                .into();
            }
        }
    }
    e.into()
}

async fn receive_inner(
    conn: &Connection,
    id: TransferId,
    out_dir: &Path,
    options: &ReceiveOptions,
    cancel: &Cancel,
    progress: Option<watch::Sender<TransferProgress>>,
    report: &mut Option<ErrorMessage>,
) -> Result<ReceiveSummary, FileTransferError> {
    let start = Instant::now();
    let config = ReceiverConfig {
        lanes: options.lanes,
        window: options.window,
        accept_zstd: options.accept_zstd,
        dictionaries: options.dictionaries.clone(),
        // Chunks are checked (and written) on the writer thread, not on this event loop.
        offload_checks: true,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(id, config)?;
    let out = Out {
        dir: out_dir.to_owned(),
        id_tag: id.to_string().chars().take(8).collect(),
    };
    let write_err = |path: &Path, e: &std::io::Error| FileTransferError::Write {
        path: path.to_owned(),
        reason: describe_io(e),
        kind: e.kind(),
        partial: None,
    };
    let (ev_tx, ev_rx) = mpsc::channel::<RecvEvent>(RECV_EVENTS);
    let written = Arc::new(AtomicU64::new(0));
    std::fs::create_dir_all(out_dir).map_err(|e| write_err(out_dir, &e))?;
    let (wr_tx, wr_rx) = mpsc::unbounded_channel();
    let writer =
        file_io::spawn_writer(wr_tx, written.clone()).map_err(|e| write_err(out_dir, &e))?;
    // However this receive ends, let the writer finish what it was given first, so that a
    // resume right after finds every chunk that was written.
    struct Drain(mpsc::Sender<WriteCmd>);
    impl Drain {
        async fn wait(&self) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.0.send(WriteCmd::Barrier(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
    let drain = Drain(writer.clone());
    let result = receive_loop(
        conn, &mut r, &out, options, cancel, progress, start, ev_tx, ev_rx, wr_rx, writer, written,
    )
    .await;
    *report = sent_report(r.error());
    drain.wait().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn receive_loop(
    conn: &Connection,
    r: &mut Receiver,
    out: &Out,
    options: &ReceiveOptions,
    cancel: &Cancel,
    progress: Option<watch::Sender<TransferProgress>>,
    start: Instant,
    ev_tx: mpsc::Sender<RecvEvent>,
    mut ev_rx: mpsc::Receiver<RecvEvent>,
    mut wr_rx: mpsc::UnboundedReceiver<WriterEvent>,
    writer: mpsc::Sender<WriteCmd>,
    written: Arc<AtomicU64>,
) -> Result<ReceiveSummary, FileTransferError> {
    // Verified bytes handed to the writer; progress counts only those it wrote (so a receiver
    // killed right after a progress report has at least that much on disk).
    let mut queued: u64 = 0;
    let mut sends: HashMap<Channel, SendStream> = HashMap::new();
    // Stream readers (`read_batches`) that have not reported their end yet.
    let mut readers = 0usize;
    // Fails the transfer for a disk error: tells the sender (WRITE_FAILED, with the path and
    // the OS's words) and returns the local error, naming the temporary file kept for resume.
    macro_rules! disk_failed {
        ($file:expr, $path:expr, $err:expr) => {{
            let (path, err): (&Path, &std::io::Error) = ($path, $err);
            let rel = r
                .manifest()
                .and_then(|m| m.entry($file))
                .map(|e| e.path().to_owned())
                .unwrap_or_default();
            r.write_failed($file, &format!("{rel}: {}", describe_io(err)));
            flush_sends(r, &mut sends).await;
            let partial = (!rel.is_empty())
                .then(|| out.temp_path(&rel))
                .filter(|t| options.resume && t.exists());
            return Err(FileTransferError::Write {
                path: path.to_owned(),
                reason: describe_io(err),
                kind: err.kind(),
                partial,
            });
        }};
    }
    let mut already_final: Vec<bool> = Vec::new();
    let mut last_report = Instant::now();
    let report = |r: &Receiver, unwritten: u64, finished: bool| {
        let Some(p) = &progress else { return };
        let pr = r.progress();
        let mut t = TransferProgress {
            bytes_total: pr.bytes_total,
            bytes_done: pr.bytes_done.saturating_sub(unwritten),
            bytes_resumed: pr.bytes_resumed,
            wire_bytes: pr.bytes_received,
            files_total: pr.files_total,
            files_done: pr.files_done,
            finished,
            ..TransferProgress::default()
        };
        if let Some(m) = r.manifest() {
            for (i, e) in m.entries().iter().enumerate() {
                let Some((done, size)) = r.file_progress(FileId(i as u32)) else {
                    continue;
                };
                if e.is_file() && done > 0 && done < size {
                    t.active.push(FileProgress {
                        path: e.path().to_owned(),
                        done,
                        size,
                    });
                }
            }
        }
        t.timing(start);
        p.send_replace(t);
    };
    loop {
        // Carry out every action the receiver has.
        while let Some(action) = r.poll_action() {
            match action {
                Action::Send { channel, bytes } => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = sends.entry(channel) {
                        let (send, recv) = conn.open_bi().await?;
                        tokio::spawn(read_batches(recv, channel, ev_tx.clone()));
                        readers += 1;
                        slot.insert(send);
                    }
                    if let Some(s) = sends.get_mut(&channel) {
                        // A failed write shows up as the connection's error below.
                        let _ = s.write_all(&bytes).await;
                    }
                }
                Action::ManifestReady => {
                    let Some(m) = r.manifest().cloned() else {
                        continue;
                    };
                    already_final = vec![false; m.entries().len()];
                    let checks = resume_scan(&m, out, options).await?;
                    for (i, chunk, hash) in checks.hashes {
                        r.have_chunk_hash(FileId(i), chunk, &hash)?;
                    }
                    for i in checks.final_ok {
                        if let Some(f) = already_final.get_mut(i as usize) {
                            *f = true;
                        }
                    }
                    r.start()?;
                }
                Action::CreateDir { file } => {
                    if let Some(e) = r.manifest().and_then(|m| m.entry(file)) {
                        let p = out.final_path(e.path());
                        if let Err(err) = std::fs::create_dir_all(&p) {
                            disk_failed!(file, &p, &err);
                        }
                        let _ = std::fs::set_permissions(
                            &p,
                            std::fs::Permissions::from_mode(e.mode() | 0o700),
                        );
                    }
                }
                Action::CheckChunk(check) => {
                    let Some(path) = r
                        .manifest()
                        .and_then(|m| m.entry(check.file()))
                        .map(|e| e.path().to_owned())
                    else {
                        continue;
                    };
                    let file = check.file();
                    let cmd = WriteCmd::Check {
                        temp: out.temp_path(&path),
                        check,
                    };
                    if writer.send(cmd).await.is_err() {
                        let err = std::io::Error::other("the disk writer stopped");
                        disk_failed!(file, &out.temp_path(&path), &err);
                    }
                }
                // Not with `offload_checks` (above); kept for completeness.
                Action::WriteChunk {
                    file,
                    offset,
                    bytes,
                    ..
                } => {
                    let Some(path) = r
                        .manifest()
                        .and_then(|m| m.entry(file))
                        .map(|e| e.path().to_owned())
                    else {
                        continue;
                    };
                    queued += bytes.len() as u64;
                    let cmd = WriteCmd::Chunk {
                        file,
                        temp: out.temp_path(&path),
                        offset,
                        bytes,
                    };
                    if writer.send(cmd).await.is_err() {
                        let err = std::io::Error::other("the disk writer stopped");
                        disk_failed!(file, &out.temp_path(&path), &err);
                    }
                }
                Action::FileComplete { file } => {
                    let Some(e) = r.manifest().and_then(|m| m.entry(file)).cloned() else {
                        continue;
                    };
                    let is_final = already_final.get(file.index()).copied().unwrap_or(false);
                    // Files finish on the writer thread while this loop goes on; a failure comes
                    // back as a writer event. Only once the transfer is complete (`Done` is
                    // queued behind this action) does the loop wait: every file must be in place
                    // before `Done` leaves, and a failure must still be able to withdraw it.
                    if !r.is_finished() {
                        if !is_final {
                            let cmd = WriteCmd::Finish {
                                file,
                                temp: out.temp_path(e.path()),
                                fin: out.final_path(e.path()),
                                size: e.size(),
                                mode: e.mode(),
                                reply: None,
                            };
                            if writer.send(cmd).await.is_err() {
                                let err = std::io::Error::other("the disk writer stopped");
                                disk_failed!(file, &out.temp_path(e.path()), &err);
                            }
                        }
                        continue;
                    }
                    let (reply, done) = tokio::sync::oneshot::channel();
                    let cmd = if is_final {
                        WriteCmd::Barrier(reply)
                    } else {
                        WriteCmd::Finish {
                            file,
                            temp: out.temp_path(e.path()),
                            fin: out.final_path(e.path()),
                            size: e.size(),
                            mode: e.mode(),
                            reply: Some(reply),
                        }
                    };
                    let res = match writer.send(cmd).await {
                        Ok(()) => done.await.ok(),
                        Err(_) => None,
                    };
                    match res {
                        Some(Ok(())) => {}
                        Some(Err(f)) => disk_failed!(f.file, &f.path, &f.error),
                        None => {
                            let err = std::io::Error::other("the disk writer stopped");
                            disk_failed!(file, &out.temp_path(e.path()), &err);
                        }
                    }
                }
                Action::Finished => {
                    // `Done` was queued before this: make sure it left, then wait for the ack.
                    flush_sends(r, &mut sends).await;
                    if let Some(s) = sends.get_mut(&Channel::Control) {
                        let _ = s.finish();
                        let _ = tokio::time::timeout(Duration::from_secs(5), s.finished()).await;
                    }
                    report(
                        r,
                        queued.saturating_sub(written.load(Ordering::Relaxed)),
                        true,
                    );
                    let pr = r.progress();
                    let root = r.manifest().map(|m| m.root()).unwrap_or(RootHash([0; 32]));
                    return Ok(ReceiveSummary {
                        bytes_total: pr.bytes_total,
                        bytes_resumed: pr.bytes_resumed,
                        wire_bytes: pr.bytes_received,
                        chunks_refetched: pr.chunks_refetched,
                        files: pr.files_total,
                        root,
                        elapsed: start.elapsed(),
                    });
                }
            }
        }
        if let Some(e) = r.error() {
            let e = e.clone();
            flush_sends(r, &mut sends).await;
            return Err(e.into());
        }
        if last_report.elapsed() >= Duration::from_millis(100) {
            last_report = Instant::now();
            report(
                r,
                queued.saturating_sub(written.load(Ordering::Relaxed)),
                false,
            );
        }
        if options.stop_after_bytes.is_some_and(|limit| {
            let unwritten = queued.saturating_sub(written.load(Ordering::Relaxed));
            r.progress().bytes_done.saturating_sub(unwritten) >= limit
        }) {
            report(
                r,
                queued.saturating_sub(written.load(Ordering::Relaxed)),
                false,
            );
            r.cancel();
            flush_sends(r, &mut sends).await;
            return Err(FileTransferError::Cancelled);
        }
        let ev = tokio::select! {
            // The writer's results first: they free room for more requests.
            biased;
            Some(w) = wr_rx.recv() => {
                match w {
                    WriterEvent::Checked(done) => {
                        if let Err(e) = r.chunk_checked(done) {
                            flush_sends(r, &mut sends).await;
                            return Err(e.into());
                        }
                    }
                    WriterEvent::Failed(f) => disk_failed!(f.file, &f.path, &f.error),
                }
                continue;
            }
            ev = ev_rx.recv() => ev,
            () = cancel.cancelled() => {
                r.cancel();
                flush_sends(r, &mut sends).await;
                return Err(FileTransferError::Cancelled);
            }
            e = conn.closed() => return Err(after_close(r, &mut ev_rx, readers, e).await),
        };
        match ev {
            Some(RecvEvent::Data(channel, pieces)) => {
                // Copied into the chunk being collected (`handle_data`), not kept as slices
                // (`handle_bytes`): a piece shares its allocation with the other datagrams of
                // its receive batch, and keeping it would let a sender that spreads chunks thinly
                // over packets pin far more memory than the chunks themselves.
                for bytes in &pieces {
                    if let Err(e) = r.handle_data(channel, bytes) {
                        flush_sends(r, &mut sends).await;
                        return Err(e.into());
                    }
                }
            }
            Some(RecvEvent::End) | None => {
                readers = readers.saturating_sub(1);
                // A stream ended early. The sender's reason (an `Error` message on the control
                // stream, or its connection close) may still be on its way on another stream, so
                // wait for it a little before falling back to the bare fact.
                let deadline = tokio::time::sleep(STREAM_END_GRACE);
                tokio::pin!(deadline);
                loop {
                    if let Some(e) = r.error() {
                        return Err(e.clone().into());
                    }
                    let ev = tokio::select! {
                        Some(w) = wr_rx.recv() => {
                            if let WriterEvent::Failed(f) = w {
                                disk_failed!(f.file, &f.path, &f.error);
                            }
                            continue;
                        }
                        ev = ev_rx.recv() => ev,
                        e = conn.closed() => {
                            return Err(after_close(r, &mut ev_rx, readers, e).await);
                        }
                        () = &mut deadline => break,
                    };
                    match ev {
                        Some(RecvEvent::Data(channel, pieces)) => {
                            for bytes in &pieces {
                                if let Err(e) = r.handle_data(channel, bytes) {
                                    return Err(e.into());
                                }
                            }
                        }
                        Some(RecvEvent::End) => readers = readers.saturating_sub(1),
                        None => break,
                    }
                }
                if let Some(reason) = conn.close_reason() {
                    return Err(connection_ended(reason));
                }
                return Err(FileTransferError::StreamEnded);
            }
        }
    }
}

/// The error for a receive whose connection ended with `e`: the reason the sender gave, if its
/// `Error` message arrived before the close. The close wakes every task at once, so that
/// message may still sit in a stream whose reader has not forwarded it: this takes events until
/// each of the `readers` still running delivered what it holds and reported its end (on a
/// closed connection a read returns the buffered data, then fails), bounded by
/// [`CLOSE_DRAIN_MAX`] as a guard.
async fn after_close(
    r: &mut Receiver,
    ev_rx: &mut mpsc::Receiver<RecvEvent>,
    mut readers: usize,
    e: ConnectionError,
) -> FileTransferError {
    let deadline = tokio::time::sleep(CLOSE_DRAIN_MAX);
    tokio::pin!(deadline);
    while readers > 0 && r.error().is_none() {
        let ev = tokio::select! {
            ev = ev_rx.recv() => ev,
            () = &mut deadline => break,
        };
        match ev {
            Some(RecvEvent::Data(channel, pieces)) => {
                for bytes in &pieces {
                    if let Err(err) = r.handle_data(channel, bytes) {
                        return err.into();
                    }
                }
            }
            Some(RecvEvent::End) => readers -= 1,
            None => break,
        }
    }
    match r.error() {
        Some(err) => err.clone().into(),
        None => connection_ended(e),
    }
}

/// How long a receiver whose peer ended a stream early waits for the peer's reason.
const STREAM_END_GRACE: Duration = Duration::from_secs(2);

/// Sends what the receiver queued (an `Error` or `Done`) and lets it reach the peer.
async fn flush_sends(r: &mut Receiver, sends: &mut HashMap<Channel, SendStream>) {
    while let Some(a) = r.poll_action() {
        if let Action::Send { channel, bytes } = a {
            if let Some(s) = sends.get_mut(&channel) {
                let _ = s.write_all(&bytes).await;
            }
        }
    }
    if let Some(s) = sends.get_mut(&Channel::Control) {
        let _ = s.finish();
        // Bounded: a peer that is gone must not hold the failure up. A close that overtakes an
        // unacknowledged report abandons it, but the close carries the same report in its
        // reason (`close_after`), so the peer learns why either way.
        let _ = tokio::time::timeout(Duration::from_secs(3), s.finished()).await;
    }
}

struct ResumeChecks {
    /// (file, chunk, hash) of chunks found in temporary files.
    hashes: Vec<(u32, u64, jsp_core::file::ChunkHash)>,
    /// Files already complete under their final name.
    final_ok: Vec<u32>,
}

/// Hashes what is on disk for `m`: the final file if one exists (it must match in full, or
/// `overwrite` must be set), else the temporary file of an earlier attempt (with `resume`).
async fn resume_scan(
    m: &Manifest,
    out: &Out,
    options: &ReceiveOptions,
) -> Result<ResumeChecks, FileTransferError> {
    let m = m.clone();
    let jobs: Vec<(u32, PathBuf, PathBuf)> = m
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind() == EntryKind::File)
        .map(|(i, e)| (i as u32, out.final_path(e.path()), out.temp_path(e.path())))
        .collect();
    let (resume, overwrite) = (options.resume, options.overwrite);
    let work = move || -> Result<ResumeChecks, FileTransferError> {
        let mut checks = ResumeChecks {
            hashes: Vec::new(),
            final_ok: Vec::new(),
        };
        for (i, fin, temp) in jobs {
            let Some(e) = m.entry(FileId(i)) else {
                continue;
            };
            if let Ok(meta) = std::fs::symlink_metadata(&fin) {
                let hashes = if meta.is_file() && meta.len() == e.size() {
                    hash_file(&fin, e.chunk_size(), e.chunk_count())
                } else {
                    Vec::new()
                };
                let all = hashes.len() as u64 == e.chunk_count()
                    && hashes
                        .iter()
                        .enumerate()
                        .all(|(c, h)| e.chunk_hash(c as u64) == Some(h));
                if all {
                    checks.hashes.extend(
                        hashes
                            .into_iter()
                            .enumerate()
                            .map(|(c, h)| (i, c as u64, h)),
                    );
                    checks.final_ok.push(i);
                    continue;
                }
                if !overwrite {
                    return Err(FileTransferError::Exists { path: fin });
                }
                // An older version under the final name: find the new file's chunks in it
                // (also where bytes were inserted or removed before them) and seed the
                // temporary file with them, so only the changed regions travel.
                if meta.is_file() && meta.len() <= DELTA_BASE_MAX {
                    if let Ok(found) = seed_from_old(&fin, &temp, e) {
                        checks
                            .hashes
                            .extend(found.into_iter().map(|(c, h)| (i, c, h)));
                        continue;
                    }
                }
            }
            if resume {
                let hashes = hash_file(&temp, e.chunk_size(), e.chunk_count());
                checks.hashes.extend(
                    hashes
                        .into_iter()
                        .enumerate()
                        .map(|(c, h)| (i, c as u64, h)),
                );
            } else {
                let _ = std::fs::remove_file(&temp);
            }
        }
        Ok(checks)
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| FileTransferError::Cancelled)?
}

/// Largest older file used as a delta base at resume (it is read into memory).
const DELTA_BASE_MAX: u64 = 1 << 30;

/// Looks for the chunks of entry `e` in the older file `old` by their rolling checksums
/// ([`jsp_core::delta::find_blocks`], each hit verified by BLAKE3 against the manifest), writes
/// every chunk found into the temporary file `temp` at its new offset, and returns the chunks
/// now there with their hashes. The temporary file is recreated from scratch.
fn seed_from_old(
    old: &Path,
    temp: &Path,
    e: &jsp_core::file::Entry,
) -> std::io::Result<Vec<(u64, jsp_core::file::ChunkHash)>> {
    let weak = e.weak_hashes();
    if weak.is_empty() || e.chunk_count() == 0 {
        return Ok(Vec::new());
    }
    let base = std::fs::read(old)?;
    let cs = e.chunk_size() as usize;
    let mut wanted: HashMap<u32, Vec<u64>> = HashMap::new();
    let mut short_last = None;
    for (c, w) in weak.iter().enumerate() {
        match e.chunk_span(c as u64) {
            Some((_, len)) if len as usize == cs => wanted.entry(*w).or_default().push(c as u64),
            Some((off, len)) => short_last = Some((c as u64, off, len)),
            None => {}
        }
    }
    let mut found = jsp_core::delta::find_blocks(&base, cs, &wanted, |c, bytes| {
        e.chunk_hash(c) == Some(&jsp_core::file::chunk_hash(bytes))
    });
    // The short last chunk, at the end of the old file.
    if let Some((c, _, len)) = short_last {
        let start = base.len().saturating_sub(len as usize);
        if let Some(tail) = base.get(start..) {
            if tail.len() == len as usize
                && e.chunk_hash(c) == Some(&jsp_core::file::chunk_hash(tail))
            {
                found.push((start as u64, c));
            }
        }
    }
    let _ = std::fs::remove_file(temp);
    let f = file_io::open_temp(temp)?;
    let mut out = Vec::with_capacity(found.len());
    for (off, c) in found {
        let Some((new_off, len)) = e.chunk_span(c) else {
            continue;
        };
        let Some(bytes) = base.get(off as usize..off as usize + len as usize) else {
            continue;
        };
        f.write_all_at(bytes, new_off)?;
        out.push((c, jsp_core::file::chunk_hash(bytes)));
    }
    Ok(out)
}

/// BLAKE3 hashes of the first `count` whole chunks of `path` (shorter at the end of the file;
/// fewer if the file is shorter). Unreadable files give none.
fn hash_file(path: &Path, chunk_size: u32, count: u64) -> Vec<jsp_core::file::ChunkHash> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in 0..count {
        match read_at(&f, c * u64::from(chunk_size), chunk_size) {
            Ok(b) if !b.is_empty() => out.push(jsp_core::file::chunk_hash(&b)),
            _ => break,
        }
    }
    out
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
