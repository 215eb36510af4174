//! The receiving side of a file transfer.
//!
//! Every chunk that arrives becomes a [`ChunkCheck`] (decode, BLAKE3 against the manifest). The
//! receiver runs it itself inside [`Receiver::handle_data`] by default; with
//! [`ReceiverConfig::offload_checks`] it hands it to the caller ([`Action::CheckChunk`]), who
//! runs it off its event loop, writes what verified and reports each result with
//! [`Receiver::chunk_checked`], in any order.
//!
//! Invariants:
//! - a chunk's bytes are handed to the caller for writing ([`Action::WriteChunk`], or
//!   [`ChunkChecked::verified_bytes`]) only after its BLAKE3 hash matched the manifest, and the
//!   manifest only after its root matched the transfer id asked for;
//! - [`Action::FileComplete`] comes only after every chunk of the file was verified (on disk at
//!   resume, or on arrival) and after the `WriteChunk` of its last chunk (or, with offloaded
//!   checks, after the caller reported the last chunk's result, having written it first);
//! - with offloaded checks, a chunk stays requested (never requested twice at once) until its
//!   result is reported; a result the receiver did not hand out, or one reported twice, is
//!   refused ([`FileError::Misuse`]) without effect;
//! - each data stream carries at most `window` requested chunks, answered in request order, and
//!   a chunk arriving out of that order is a protocol error;
//! - memory is bounded: one chunk being collected per data stream, at most `lanes × window`
//!   chunks requested and not received, and no new requests while `lanes × window` verified
//!   chunks wait in the action queue for the caller (or, with offloaded checks, while that many
//!   checks are out with the caller and not reported) — so at most about
//!   `(2 × lanes × window + lanes) × chunk size` bytes are held however the peer behaves (with
//!   [`Receiver::handle_bytes`], those bytes are slices of the caller's buffers, and each
//!   buffer stays alive as long as a slice of it does: see there);
//! - a chunk that fails verification is requested again, at most `max_retries` times.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::check::{ChunkCheck, ChunkChecked, Outcome};
use super::compress::{Codec, CODEC_BIT_ZSTD};
use super::error::FileError;
use super::hash::{chunk_hash, ChunkHash, TransferId};
use super::manifest::{EntryKind, FileId, Manifest, MAX_CHUNK_SIZE, MAX_MANIFEST_LEN};
use super::wire::{
    truncate_reason, ChunkHeader, Decoded, ErrorMessage, Fetch, Message, Request, StreamDecoder,
    MAX_RANGES,
};

/// Most data streams ("lanes") a receiver uses.
pub const MAX_LANES: u16 = 64;
/// Most chunks requested and not yet received on one lane.
pub const MAX_WINDOW: u32 = 256;

/// Receiver settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Parallel data streams, 1 to [`MAX_LANES`]. Default 4.
    pub lanes: u16,
    /// Chunks requested ahead on each lane, 1 to [`MAX_WINDOW`]. Default 4: with 1 MiB chunks, 16
    /// MiB in flight over four lanes.
    pub window: u32,
    /// Deliveries of one chunk that may fail verification before the transfer fails. Default 3.
    pub max_retries: u32,
    /// Longest manifest accepted, in encoded bytes. Default (and most) [`MAX_MANIFEST_LEN`].
    pub max_manifest_len: usize,
    /// Largest chunk size accepted in an offer. Default (and most) [`MAX_CHUNK_SIZE`]; the receiver
    /// buffers at most `lanes` chunks while they arrive.
    pub max_chunk_size: u32,
    /// Offer to decode zstd-compressed chunks (announced in `Fetch`). Default true. Decoding is
    /// bounded by each chunk's declared length ([`super::compress`]).
    pub accept_zstd: bool,
    /// Trained zstd dictionaries this receiver holds, most preferred first (at most
    /// [`super::compress::MAX_DICTS`]; more is a [`FileError::Limit`]). Their content ids go out
    /// in `Fetch` (only when `accept_zstd`); the sender may then compress with one of them.
    /// Default none.
    pub dictionaries: Vec<super::compress::Dictionary>,
    /// Hand every arrived chunk to the caller as [`Action::CheckChunk`] instead of decoding and
    /// hashing it inside [`Receiver::handle_data`], so a driver can verify chunks on another
    /// thread while its event loop keeps reading the network. The caller then writes verified
    /// chunks itself and reports each result with [`Receiver::chunk_checked`];
    /// [`Action::WriteChunk`] does not occur. Default false (checks run inline).
    pub offload_checks: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            lanes: 4,
            window: 4,
            max_retries: 3,
            max_manifest_len: MAX_MANIFEST_LEN,
            max_chunk_size: MAX_CHUNK_SIZE,
            accept_zstd: true,
            dictionaries: Vec::new(),
            offload_checks: false,
        }
    }
}

/// A stream of the receiver's connection. The driver opens one stream per channel the first time
/// an action names it and feeds what arrives on it to [`Receiver::handle_data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// The control stream: `Fetch`, `Offer`, `Done`, `Error`.
    Control,
    /// Data stream `n` (0-based, below [`ReceiverConfig::lanes`]): requests out, chunks in.
    Data(u16),
}

/// What the receiver asks its caller to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the stream of `channel`.
    Send {
        /// Where.
        channel: Channel,
        /// A framed message.
        bytes: Vec<u8>,
    },
    /// The offer arrived and its manifest matches the transfer id: inspect
    /// [`Receiver::manifest`], report chunks already on disk (from an earlier attempt) with
    /// [`Receiver::have_chunk`], then call [`Receiver::start`].
    ManifestReady,
    /// Create this directory (and its parents).
    CreateDir {
        /// The directory's entry.
        file: FileId,
    },
    /// (Only with [`ReceiverConfig::offload_checks`].) A chunk arrived: run
    /// [`ChunkCheck::run`] (pure computation: decoding and BLAKE3, on any thread); if the result
    /// [`ChunkChecked::is_verified`], write [`ChunkChecked::verified_bytes`] into the file's
    /// temporary copy at [`ChunkChecked::offset`]; then report the result with
    /// [`Receiver::chunk_checked`]. Results may be reported in any order. A chunk that failed
    /// its check is requested again; nothing is written for it.
    CheckChunk(ChunkCheck),
    /// Write verified bytes into the file's temporary copy at `offset`.
    WriteChunk {
        /// The file.
        file: FileId,
        /// The chunk index.
        index: u64,
        /// Byte offset in the file.
        offset: u64,
        /// The chunk, verified against the manifest.
        bytes: Bytes,
    },
    /// Every chunk of the file is verified and written: set the temporary copy's length to the
    /// file's size, flush it, apply the mode and rename it to its final name. Only now may the
    /// file appear under that name.
    FileComplete {
        /// The file.
        file: FileId,
    },
    /// Every file is complete and `Done` is queued for the sender: the transfer succeeded.
    Finished,
}

/// Transfer figures, for progress displays and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in all files.
    pub bytes_total: u64,
    /// Verified bytes (found on disk or received).
    pub bytes_done: u64,
    /// Of those, bytes found already on disk at resume.
    pub bytes_resumed: u64,
    /// Chunk bytes received from the network, including deliveries that failed verification.
    pub bytes_received: u64,
    /// Chunks requested, including requests again.
    pub chunks_requested: u64,
    /// Chunks requested again after failing verification.
    pub chunks_refetched: u64,
    /// Files (not directories) in the manifest.
    pub files_total: u64,
    /// Files complete.
    pub files_done: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitingOffer,
    Resuming,
    Transferring,
    Finished,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Missing,
    Requested,
    Have,
}

#[derive(Debug)]
struct FileState {
    chunks: Vec<ChunkState>,
    have: u64,
    bytes_done: u64,
    complete: bool,
}

#[derive(Debug)]
struct Lane {
    decoder: StreamDecoder,
    /// Requested chunks in the order the sender answers them.
    in_flight: VecDeque<(u32, u64)>,
    /// The header of the chunk whose bytes are arriving.
    current: Option<ChunkHeader>,
}

/// The receiver's state machine. See the module documentation for its invariants and
/// [`super`] for the protocol.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    id: TransferId,
    state: State,
    manifest: Option<Manifest>,
    files: Vec<FileState>,
    control: StreamDecoder,
    lanes: Vec<Lane>,
    cursor_file: usize,
    cursor_chunk: u64,
    retry: VecDeque<(u32, u64)>,
    attempts: BTreeMap<(u32, u64), u32>,
    actions: VecDeque<Action>,
    /// Verified chunks in the action queue (inline checks), or checks out with the caller and
    /// not reported (offloaded checks): no new requests while `lanes × window` are.
    pending_writes: usize,
    /// Offloaded checks not yet reported: number → (file, chunk).
    checks: BTreeMap<u64, (u32, u64)>,
    /// The number of the next check.
    next_check: u64,
    progress: Progress,
    error: Option<FileError>,
}

impl Receiver {
    /// A receiver for transfer `id` (from the ticket). Its first action sends `Fetch` on the
    /// control stream. Fails if `config` is out of range.
    pub fn new(id: TransferId, config: ReceiverConfig) -> Result<Self, FileError> {
        if config.lanes == 0 || config.lanes > MAX_LANES {
            return Err(FileError::Misuse {
                what: "lanes must be 1 to 64",
            });
        }
        if config.window == 0 || config.window > MAX_WINDOW {
            return Err(FileError::Misuse {
                what: "window must be 1 to 256",
            });
        }
        if config.dictionaries.len() > super::compress::MAX_DICTS {
            return Err(FileError::Limit {
                what: "more than 16 dictionaries",
            });
        }
        let mut dicts: Vec<super::compress::DictId> = Vec::new();
        if config.accept_zstd {
            for d in &config.dictionaries {
                if !dicts.contains(&d.id()) {
                    dicts.push(d.id());
                }
            }
        }
        let max_manifest = config.max_manifest_len.min(MAX_MANIFEST_LEN);
        let lanes = (0..config.lanes)
            .map(|_| Lane {
                // Data streams never carry an Offer.
                decoder: StreamDecoder::new(0),
                in_flight: VecDeque::new(),
                current: None,
            })
            .collect();
        let codecs = if config.accept_zstd {
            CODEC_BIT_ZSTD
        } else {
            0
        };
        let mut r = Self {
            id,
            state: State::AwaitingOffer,
            manifest: None,
            files: Vec::new(),
            control: StreamDecoder::new(max_manifest),
            lanes,
            cursor_file: 0,
            cursor_chunk: 0,
            retry: VecDeque::new(),
            attempts: BTreeMap::new(),
            actions: VecDeque::new(),
            pending_writes: 0,
            checks: BTreeMap::new(),
            next_check: 0,
            progress: Progress::default(),
            error: None,
            config,
        };
        r.actions.push_back(Action::Send {
            channel: Channel::Control,
            bytes: Message::Fetch(Fetch { id, codecs, dicts }).encode(),
        });
        Ok(r)
    }

    /// The transfer id asked for.
    pub fn transfer_id(&self) -> TransferId {
        self.id
    }

    /// The verified manifest, once the offer arrived.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Transfer figures.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Verified and total bytes of one file.
    pub fn file_progress(&self, file: FileId) -> Option<(u64, u64)> {
        let entry = self.manifest.as_ref()?.entry(file)?;
        let state = self.files.get(file.index())?;
        Some((state.bytes_done, entry.size()))
    }

    /// Whether the transfer succeeded.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The error the transfer failed with, if it failed.
    pub fn error(&self) -> Option<&FileError> {
        self.error.as_ref()
    }

    /// The next thing for the caller to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front()?;
        if matches!(action, Action::WriteChunk { .. }) {
            self.pending_writes = self.pending_writes.saturating_sub(1);
            self.fill_lanes();
        }
        Some(action)
    }

    /// Feeds bytes that arrived on `channel`'s stream, in stream order, in pieces of any size.
    /// An error fails the transfer: an `Error` message for the sender is queued (unless the
    /// sender sent one) and every later call returns [`FileError::Failed`].
    /// Once the transfer finished, further bytes are ignored.
    pub fn handle_data(&mut self, channel: Channel, bytes: &[u8]) -> Result<(), FileError> {
        self.live()?;
        if self.state == State::Finished {
            return Ok(());
        }
        let r = self.handle_data_inner(channel, bytes, None);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    /// Like [`Receiver::handle_data`], for bytes the caller holds as [`Bytes`]: chunk bytes are
    /// kept as slices of them, not copied, until their check assembles them (off the caller's
    /// event loop, with [`ReceiverConfig::offload_checks`]).
    ///
    /// Memory: a slice keeps its whole allocation alive until the chunk's check ran. Use this
    /// only for buffers that hold this stream's bytes and little else (for instance ones the
    /// caller copied the stream into); a transport's receive buffers, shared with the other
    /// datagrams of a batch, would let a sender that spreads chunks thinly over packets pin
    /// many times the chunk bound — feed those to [`Receiver::handle_data`], which copies.
    pub fn handle_bytes(&mut self, channel: Channel, bytes: &Bytes) -> Result<(), FileError> {
        self.live()?;
        if self.state == State::Finished {
            return Ok(());
        }
        let r = self.handle_data_inner(channel, bytes, Some(bytes));
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    /// Reports the result of a check handed out as [`Action::CheckChunk`] (after writing its
    /// verified bytes). Results may come in any order. A verified chunk counts as done (and may
    /// complete its file); one that failed verification is requested again, at most
    /// [`ReceiverConfig::max_retries`] times, then the transfer fails with
    /// [`FileError::ChunkCorrupt`]; one that did not decode fails the transfer
    /// ([`FileError::Decompression`]). A failure queues an `Error` for the sender.
    ///
    /// A result this receiver did not hand out, or already had, is refused with
    /// [`FileError::Misuse`] and changes nothing. After the transfer failed, results are
    /// refused with [`FileError::Failed`].
    pub fn chunk_checked(&mut self, checked: ChunkChecked) -> Result<(), FileError> {
        self.live()?;
        match self.checks.get(&checked.seq) {
            Some(&(f, i)) if f == checked.file().0 && i == checked.index() => {}
            _ => {
                return Err(FileError::Misuse {
                    what: "a check result this receiver did not hand out, or reported twice",
                })
            }
        }
        self.checks.remove(&checked.seq);
        self.pending_writes = self.pending_writes.saturating_sub(1);
        let r = self.on_checked(checked, false);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    /// Checks handed out as [`Action::CheckChunk`] and not yet reported.
    pub fn checks_outstanding(&self) -> usize {
        self.checks.len()
    }

    /// Reports a chunk found on disk from an earlier attempt (between
    /// [`Action::ManifestReady`] and [`Receiver::start`]): `bytes` are the chunk's bytes as read
    /// at its offset, up to its length. Returns whether they verify; only verified chunks are
    /// skipped. Chunks not reported are fetched.
    pub fn have_chunk(
        &mut self,
        file: FileId,
        index: u64,
        bytes: &[u8],
    ) -> Result<bool, FileError> {
        let len = self.resume_chunk_len(file, index)?;
        if bytes.len() as u64 != u64::from(len) {
            return Ok(false);
        }
        self.have_chunk_hash(file, index, &chunk_hash(bytes))
    }

    /// Like [`Receiver::have_chunk`], with the BLAKE3 hash of the chunk's bytes computed by the
    /// caller ([`super::chunk_hash`]).
    pub fn have_chunk_hash(
        &mut self,
        file: FileId,
        index: u64,
        hash: &ChunkHash,
    ) -> Result<bool, FileError> {
        let len = self.resume_chunk_len(file, index)?;
        let expected = self
            .manifest
            .as_ref()
            .and_then(|m| m.entry(file))
            .and_then(|e| e.chunk_hash(index));
        if expected != Some(hash) {
            return Ok(false);
        }
        let Some(state) = self.files.get_mut(file.index()) else {
            return Ok(false);
        };
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| state.chunks.get_mut(i))
        else {
            return Ok(false);
        };
        if *slot != ChunkState::Have {
            *slot = ChunkState::Have;
            state.have += 1;
            state.bytes_done += u64::from(len);
            self.progress.bytes_done += u64::from(len);
            self.progress.bytes_resumed += u64::from(len);
        }
        Ok(true)
    }

    fn resume_chunk_len(&self, file: FileId, index: u64) -> Result<u32, FileError> {
        self.live()?;
        if self.state != State::Resuming {
            return Err(FileError::Misuse {
                what: "have_chunk is allowed only between ManifestReady and start",
            });
        }
        self.manifest
            .as_ref()
            .and_then(|m| m.entry(file))
            .and_then(|e| e.chunk_span(index))
            .map(|(_, len)| len)
            .ok_or(FileError::Misuse {
                what: "have_chunk for a chunk the manifest does not have",
            })
    }

    /// Starts fetching what is missing (after [`Action::ManifestReady`] and the resume reports).
    /// Queues `CreateDir` for every directory and `FileComplete` for every file that is already
    /// complete (including empty files), then the first requests.
    pub fn start(&mut self) -> Result<(), FileError> {
        self.live()?;
        if self.state != State::Resuming {
            return Err(FileError::Misuse {
                what: "start is allowed once, after ManifestReady",
            });
        }
        self.state = State::Transferring;
        let Some(manifest) = &self.manifest else {
            return Err(FileError::Misuse {
                what: "start without a manifest",
            });
        };
        for (i, (entry, state)) in manifest.entries().iter().zip(&mut self.files).enumerate() {
            let file = FileId(i as u32);
            match entry.kind() {
                EntryKind::Directory => self.actions.push_back(Action::CreateDir { file }),
                EntryKind::File => {
                    if state.have == entry.chunk_count() {
                        state.complete = true;
                        self.progress.files_done += 1;
                        self.actions.push_back(Action::FileComplete { file });
                    }
                }
            }
        }
        if self.progress.files_done == self.progress.files_total {
            self.finish();
        } else {
            self.fill_lanes();
        }
        Ok(())
    }

    /// Cancels the transfer: queues an `Error` (CANCELLED) for the sender.
    pub fn cancel(&mut self) {
        if matches!(self.state, State::Finished | State::Failed) {
            return;
        }
        self.fail(FileError::Cancelled);
    }

    /// Reports that the caller could not store data for `file` (full disk, permissions): fails
    /// the transfer and tells the sender.
    ///
    /// This holds even after the last chunk verified, as long as the caller has not yet taken
    /// the `Done` message from [`Receiver::poll_action`]: a failed write or rename of the last
    /// file withdraws the queued `Done` (and [`Action::Finished`]), so the sender never hears
    /// "done" for a file that is not in place.
    pub fn write_failed(&mut self, file: FileId, reason: &str) {
        if self.state == State::Finished {
            let done = Message::Done.encode();
            let queued = self.actions.iter().any(|a| matches!(a, Action::Finished));
            let done_queued = self.actions.iter().any(
                |a| matches!(a, Action::Send { channel: Channel::Control, bytes } if *bytes == done),
            );
            if !(queued && done_queued) {
                return;
            }
            self.actions.retain(|a| match a {
                Action::Finished => false,
                Action::Send {
                    channel: Channel::Control,
                    bytes,
                } => *bytes != done,
                _ => true,
            });
            self.state = State::Transferring;
        }
        if self.state == State::Failed {
            return;
        }
        self.fail(FileError::WriteFailed {
            file: file.0,
            reason: truncate_reason(reason),
        });
    }

    fn live(&self) -> Result<(), FileError> {
        if self.state == State::Failed {
            return Err(FileError::Failed);
        }
        Ok(())
    }

    fn fail(&mut self, e: FileError) {
        if self.state == State::Failed {
            return;
        }
        self.state = State::Failed;
        if !matches!(e, FileError::Peer { .. }) {
            let msg = Message::Error(ErrorMessage::from(&e));
            self.actions.push_back(Action::Send {
                channel: Channel::Control,
                bytes: msg.encode(),
            });
        }
        self.error = Some(e);
    }

    fn finish(&mut self) {
        self.state = State::Finished;
        self.actions.push_back(Action::Send {
            channel: Channel::Control,
            bytes: Message::Done.encode(),
        });
        self.actions.push_back(Action::Finished);
    }

    fn handle_data_inner(
        &mut self,
        channel: Channel,
        mut input: &[u8],
        shared: Option<&Bytes>,
    ) -> Result<(), FileError> {
        while !input.is_empty() {
            let (used, item) = match channel {
                Channel::Control => self.control.advance(input, None)?,
                Channel::Data(k) => self
                    .lanes
                    .get_mut(usize::from(k))
                    .ok_or(FileError::Misuse {
                        what: "data for a channel the receiver does not use",
                    })?
                    .decoder
                    .advance(input, shared)?,
            };
            input = input.get(used..).unwrap_or_default();
            match (channel, item) {
                (_, None) => {}
                (_, Some(Decoded::Message(Message::Error(e)))) => {
                    return Err(FileError::Peer {
                        code: e.code,
                        reason: e.reason,
                    })
                }
                (Channel::Control, Some(Decoded::Message(m))) => self.on_control(m)?,
                (Channel::Data(k), Some(Decoded::Message(Message::ChunkHeader(h)))) => {
                    self.on_header(usize::from(k), h)?
                }
                (Channel::Data(k), Some(Decoded::Payload(p))) => {
                    self.on_payload(usize::from(k), p)?
                }
                (Channel::Data(_), Some(Decoded::Message(m))) => {
                    return Err(FileError::UnexpectedMessage {
                        message: m.name(),
                        context: "on a data stream of the receiver",
                    })
                }
                (Channel::Control, Some(Decoded::Payload(_))) => {
                    // Unreachable: a ChunkHeader on the control stream fails before its payload.
                    return Err(FileError::UnexpectedMessage {
                        message: "ChunkHeader",
                        context: "on the control stream",
                    });
                }
            }
        }
        Ok(())
    }

    fn on_control(&mut self, msg: Message) -> Result<(), FileError> {
        match msg {
            Message::Offer(manifest) if self.state == State::AwaitingOffer => {
                if manifest.transfer_id() != self.id {
                    return Err(FileError::UnknownTransfer);
                }
                if manifest
                    .entries()
                    .iter()
                    .any(|e| e.chunk_size() > self.config.max_chunk_size)
                {
                    return Err(FileError::Limit {
                        what: "a chunk size above the receiver's limit",
                    });
                }
                self.files = manifest
                    .entries()
                    .iter()
                    .map(|e| FileState {
                        chunks: vec![ChunkState::Missing; e.chunk_hashes().len()],
                        have: 0,
                        bytes_done: 0,
                        complete: false,
                    })
                    .collect();
                self.progress.bytes_total = manifest.total_bytes();
                self.progress.files_total = manifest.file_count() as u64;
                self.manifest = Some(*manifest);
                self.state = State::Resuming;
                self.actions.push_back(Action::ManifestReady);
                Ok(())
            }
            Message::Offer(_) => Err(FileError::UnexpectedMessage {
                message: "Offer",
                context: "after the first one",
            }),
            other => Err(FileError::UnexpectedMessage {
                message: other.name(),
                context: "on the receiver's control stream",
            }),
        }
    }

    fn on_header(&mut self, k: usize, h: ChunkHeader) -> Result<(), FileError> {
        let unexpected = FileError::UnexpectedChunk {
            file: h.file.0,
            index: h.index,
        };
        if self.state != State::Transferring {
            return Err(unexpected);
        }
        let span = self
            .manifest
            .as_ref()
            .and_then(|m| m.entry(h.file))
            .and_then(|e| e.chunk_span(h.index));
        let Some(lane) = self.lanes.get_mut(k) else {
            return Err(unexpected);
        };
        let expected = lane.in_flight.front() == Some(&(h.file.0, h.index));
        match span {
            Some((_, len)) if expected && len == h.len && h.codec == Codec::Raw => {
                lane.current = Some(h);
                Ok(())
            }
            Some((_, len)) if expected && h.len < len && h.codec == Codec::ZstdDict => {
                let offered = self.config.accept_zstd
                    && self
                        .config
                        .dictionaries
                        .iter()
                        .any(|d| Some(d.id()) == h.dict);
                if !offered {
                    return Err(FileError::Decompression {
                        file: h.file.0,
                        index: h.index,
                        reason: "dictionary chunk with a dictionary that was not offered",
                    });
                }
                lane.current = Some(h);
                Ok(())
            }
            Some((_, len)) if expected && h.len < len && h.codec == Codec::Zstd => {
                if !self.config.accept_zstd {
                    return Err(FileError::Decompression {
                        file: h.file.0,
                        index: h.index,
                        reason: "zstd chunk, but zstd was not offered",
                    });
                }
                lane.current = Some(h);
                Ok(())
            }
            _ => Err(unexpected),
        }
    }

    fn on_payload(&mut self, k: usize, wire: Vec<Bytes>) -> Result<(), FileError> {
        let Some(lane) = self.lanes.get_mut(k) else {
            return Err(FileError::Misuse {
                what: "unknown lane",
            });
        };
        let (Some(h), Some(_)) = (lane.current.take(), lane.in_flight.pop_front()) else {
            return Err(FileError::UnexpectedMessage {
                message: "ChunkHeader",
                context: "payload without a header",
            });
        };
        self.progress.bytes_received += wire.iter().map(|b| b.len() as u64).sum::<u64>();
        let unexpected = FileError::UnexpectedChunk {
            file: h.file.0,
            index: h.index,
        };
        let Some(entry) = self.manifest.as_ref().and_then(|m| m.entry(h.file)) else {
            return Err(unexpected);
        };
        let (Some((offset, len)), Some(expected)) =
            (entry.chunk_span(h.index), entry.chunk_hash(h.index))
        else {
            return Err(unexpected);
        };
        let dict = match (h.codec, h.dict) {
            (Codec::ZstdDict, Some(id)) => Some(
                self.config
                    .dictionaries
                    .iter()
                    .find(|d| d.id() == id)
                    .cloned()
                    .ok_or(FileError::Decompression {
                        file: h.file.0,
                        index: h.index,
                        reason: "dictionary chunk with a dictionary that was not offered",
                    })?,
            ),
            _ => None,
        };
        let seq = self.next_check;
        self.next_check += 1;
        let check = ChunkCheck::new(
            seq, h.file, h.index, offset, len, h.codec, dict, wire, *expected,
        );
        if self.config.offload_checks {
            self.checks.insert(seq, (h.file.0, h.index));
            self.pending_writes += 1;
            self.actions.push_back(Action::CheckChunk(check));
            Ok(())
        } else {
            self.on_checked(check.run(), true)
        }
    }

    /// Takes a check's result: a verified chunk is done (queued for writing when `inline`, else
    /// written by the caller already), a mismatch is requested again, bytes that do not decode
    /// fail the transfer.
    fn on_checked(&mut self, checked: ChunkChecked, inline: bool) -> Result<(), FileError> {
        let (file, index, offset) = (checked.file(), checked.index(), checked.offset());
        let unexpected = FileError::UnexpectedChunk {
            file: file.0,
            index,
        };
        let Some(entry) = self.manifest.as_ref().and_then(|m| m.entry(file)) else {
            return Err(unexpected);
        };
        let len = entry.chunk_span(index).map_or(0, |(_, len)| len);
        let chunk_count = entry.chunk_count();
        let Some(state) = self.files.get_mut(file.index()) else {
            return Err(unexpected);
        };
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| state.chunks.get_mut(i))
        else {
            return Err(unexpected);
        };
        match checked.outcome {
            Outcome::Undecodable(e) => return Err(e),
            Outcome::Verified(bytes) => {
                *slot = ChunkState::Have;
                state.have += 1;
                state.bytes_done += u64::from(len);
                self.progress.bytes_done += u64::from(len);
                if inline {
                    self.actions.push_back(Action::WriteChunk {
                        file,
                        index,
                        offset,
                        bytes,
                    });
                    self.pending_writes += 1;
                }
                if state.have == chunk_count && !state.complete {
                    state.complete = true;
                    self.progress.files_done += 1;
                    self.actions.push_back(Action::FileComplete { file });
                    if self.progress.files_done == self.progress.files_total {
                        self.finish();
                        return Ok(());
                    }
                }
            }
            Outcome::Mismatch => {
                let attempts = self.attempts.entry((file.0, index)).or_insert(0);
                *attempts = attempts.saturating_add(1);
                if *attempts > self.config.max_retries {
                    return Err(FileError::ChunkCorrupt {
                        file: file.0,
                        index,
                        attempts: *attempts,
                    });
                }
                *slot = ChunkState::Missing;
                self.retry.push_back((file.0, index));
                self.progress.chunks_refetched += 1;
            }
        }
        self.fill_lanes();
        Ok(())
    }

    /// Sends requests on every lane with room, round robin, while work remains and the caller
    /// keeps up with the writes.
    fn fill_lanes(&mut self) {
        if self.state != State::Transferring {
            return;
        }
        let window = self.config.window as usize;
        let write_cap = self.lanes.len().saturating_mul(window);
        loop {
            let mut sent = false;
            for k in 0..self.lanes.len() {
                if self.pending_writes >= write_cap {
                    return;
                }
                let in_flight = self.lanes.get(k).map_or(window, |l| l.in_flight.len());
                let room = window.saturating_sub(in_flight);
                if room == 0 {
                    continue;
                }
                let Some((request, chunks)) = self.next_request(room) else {
                    return;
                };
                self.progress.chunks_requested += chunks.len() as u64;
                if let Some(lane) = self.lanes.get_mut(k) {
                    lane.in_flight.extend(chunks);
                }
                self.actions.push_back(Action::Send {
                    channel: Channel::Data(k as u16),
                    bytes: Message::Request(request).encode(),
                });
                sent = true;
            }
            if !sent {
                return;
            }
        }
    }

    fn chunk_state_mut(&mut self, file: u32, index: u64) -> Option<&mut ChunkState> {
        self.files
            .get_mut(file as usize)?
            .chunks
            .get_mut(usize::try_from(index).ok()?)
    }

    /// Moves the cursor of file `f` to its next missing chunk, if any.
    fn scan_missing(&mut self, f: usize) -> Option<u64> {
        let chunks = &self.files.get(f)?.chunks;
        while let Some(state) = usize::try_from(self.cursor_chunk)
            .ok()
            .and_then(|i| chunks.get(i))
        {
            if *state == ChunkState::Missing {
                return Some(self.cursor_chunk);
            }
            self.cursor_chunk += 1;
        }
        None
    }

    /// The next request of at most `room` chunks: one refetch, or a run of missing chunks of one
    /// file in up to [`MAX_RANGES`] ranges.
    #[allow(clippy::single_range_in_vec_init)] // lists of chunk ranges, not ranges of values
    fn next_request(&mut self, room: usize) -> Option<(Request, Vec<(u32, u64)>)> {
        if let Some((f, i)) = self.retry.pop_front() {
            if let Some(s) = self.chunk_state_mut(f, i) {
                *s = ChunkState::Requested;
            }
            let request = Request {
                file: FileId(f),
                chunks: vec![i..i + 1],
            };
            return Some((request, vec![(f, i)]));
        }
        let (f, first) = loop {
            if self.cursor_file >= self.files.len() {
                return None;
            }
            if let Some(i) = self.scan_missing(self.cursor_file) {
                break (self.cursor_file, i);
            }
            self.cursor_file += 1;
            self.cursor_chunk = 0;
        };
        let file = f as u32;
        let mut ranges = vec![first..first + 1];
        let mut chunks = vec![(file, first)];
        if let Some(s) = self.chunk_state_mut(file, first) {
            *s = ChunkState::Requested;
        }
        self.cursor_chunk = first + 1;
        while chunks.len() < room {
            let Some(i) = self.scan_missing(f) else {
                break;
            };
            let n = ranges.len();
            match ranges.last_mut() {
                Some(last) if last.end == i => last.end += 1,
                _ if n < MAX_RANGES => ranges.push(i..i + 1),
                _ => break,
            }
            if let Some(s) = self.chunk_state_mut(file, i) {
                *s = ChunkState::Requested;
            }
            chunks.push((file, i));
            self.cursor_chunk = i + 1;
        }
        Some((
            Request {
                file: FileId(file),
                chunks: ranges,
            },
            chunks,
        ))
    }
}
