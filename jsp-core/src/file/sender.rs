//! The sending side of a file transfer.
//!
//! Invariants:
//! - the offer goes out only in answer to a `Fetch` naming this manifest's transfer id;
//! - a request is queued only if it names a file of the manifest and chunks it has, and a data
//!   stream queues at most [`SenderConfig::max_queued_ranges`] ranges, so a hostile receiver
//!   costs bounded memory however much it asks for;
//! - each data stream has at most one [`SenderAction::ReadChunk`] outstanding, so the caller
//!   holds at most one chunk per stream; chunks go out in request order;
//! - a chunk is framed only after its length and BLAKE3 hash matched the manifest; a mismatch
//!   means the source changed, and fails the transfer with SOURCE_CHANGED.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::compress::{
    compress_chunk, compress_chunk_with_dict, Codec, Compression, CODEC_BIT_ZSTD,
};
use super::error::FileError;
use super::hash::chunk_hash;
use super::manifest::{FileId, Manifest};
use super::wire::{
    encode_offer, truncate_reason, ChunkHeader, Decoded, ErrorMessage, Message, StreamDecoder,
};

/// Sender settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// Most data streams served at once (the control stream comes on top). Default 64.
    pub max_streams: usize,
    /// Most chunk ranges queued per data stream. Default 256.
    pub max_queued_ranges: usize,
    /// Chunk compression, used only if the receiver's `Fetch` says it decodes zstd. Default
    /// zstd level 3, adaptive (off in builds without the `zstd` feature).
    pub compression: Compression,
    /// Trained zstd dictionaries this sender may compress with. The first dictionary of the
    /// receiver's `Fetch` list that is also here is used for every chunk (falling back to plain
    /// zstd for a chunk it does not shrink); a receiver that lists none of them (say, one
    /// whose decoder lacks it) gets plain zstd frames. Default none.
    pub dictionaries: Vec<super::compress::Dictionary>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            max_streams: 64,
            max_queued_ranges: 256,
            compression: Compression::default(),
            dictionaries: Vec::new(),
        }
    }
}

/// The driver's name for a stream (for example its stream id). Opaque to the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(pub u64);

/// What the sender asks its caller to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderAction {
    /// Write these bytes to `stream`.
    Send {
        /// Where.
        stream: StreamKey,
        /// A framed message (`Offer` or `Error`).
        bytes: Vec<u8>,
    },
    /// Read chunk `index` of `file` (`len` bytes at `offset`) and hand it to
    /// [`Sender::chunk_read`], or report [`Sender::read_failed`].
    ReadChunk {
        /// The stream that asked.
        stream: StreamKey,
        /// The file.
        file: FileId,
        /// The chunk index.
        index: u64,
        /// Byte offset in the file.
        offset: u64,
        /// Bytes to read.
        len: u32,
    },
    /// Write `header` then `payload` to `stream`.
    SendChunk {
        /// Where.
        stream: StreamKey,
        /// The framed `ChunkHeader`.
        header: Vec<u8>,
        /// The chunk's bytes, verified against the manifest.
        payload: Bytes,
    },
    /// The receiver reported every file verified: the transfer succeeded.
    Finished,
}

/// Figures of what was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Chunks framed for sending.
    pub chunks_sent: u64,
    /// Their bytes (uncompressed).
    pub bytes_sent: u64,
    /// Bytes put on the wire for them (after compression).
    pub wire_bytes: u64,
    /// Chunks sent compressed.
    pub chunks_compressed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitingFetch,
    Serving,
    Finished,
    Failed,
}

#[derive(Debug)]
struct SendStream {
    decoder: StreamDecoder,
    queue: VecDeque<(u32, Range<u64>)>,
    reading: Option<(u32, u64)>,
}

/// The sender's state machine. See the module documentation for its invariants and [`super`]
/// for the protocol.
#[derive(Debug)]
pub struct Sender {
    manifest: Arc<Manifest>,
    offer: Vec<u8>,
    config: SenderConfig,
    state: State,
    streams: BTreeMap<StreamKey, SendStream>,
    control: Option<StreamKey>,
    actions: VecDeque<SenderAction>,
    stats: SenderStats,
    error: Option<FileError>,
    /// Whether the receiver decodes zstd (from its `Fetch`).
    peer_zstd: bool,
    dict: Option<super::compress::Dictionary>,
}

impl Sender {
    /// A sender offering `manifest` (shared, so one manifest can serve many connections). Fails
    /// if the encoded manifest does not fit in one `Offer`.
    pub fn new(manifest: Arc<Manifest>, config: SenderConfig) -> Result<Self, FileError> {
        let offer = encode_offer(&manifest)?;
        Ok(Self {
            manifest,
            offer,
            config,
            state: State::AwaitingFetch,
            streams: BTreeMap::new(),
            control: None,
            actions: VecDeque::new(),
            stats: SenderStats::default(),
            error: None,
            peer_zstd: false,
            dict: None,
        })
    }

    /// The manifest offered.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The transfer id of the manifest offered (for the ticket).
    pub fn transfer_id(&self) -> super::TransferId {
        self.manifest.transfer_id()
    }

    /// Figures of what was sent.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Whether the receiver reported success.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The error the transfer failed with, if it failed.
    pub fn error(&self) -> Option<&FileError> {
        self.error.as_ref()
    }

    /// The next thing for the caller to do.
    pub fn poll_action(&mut self) -> Option<SenderAction> {
        self.actions.pop_front()
    }

    /// Feeds bytes that arrived on `stream`, in stream order, in pieces of any size. The stream
    /// that carries `Fetch` becomes the control stream; streams carrying `Request`s are data
    /// streams. An error fails the transfer: an `Error` message for the receiver is queued
    /// (unless the receiver sent one) and every later call returns [`FileError::Failed`].
    /// Once the transfer finished, further bytes are ignored.
    pub fn handle_data(&mut self, stream: StreamKey, bytes: &[u8]) -> Result<(), FileError> {
        self.live()?;
        if self.state == State::Finished {
            return Ok(());
        }
        let r = self.handle_data_inner(stream, bytes);
        if let Err(e) = &r {
            self.fail(e.clone(), Some(stream));
        }
        r
    }

    /// Hands over the bytes of a chunk asked for with [`SenderAction::ReadChunk`]. They are
    /// checked against the manifest: a different length or hash means the source file changed
    /// since the manifest was built, which fails the transfer with
    /// [`FileError::SourceChanged`] (the receiver is told).
    pub fn chunk_read(
        &mut self,
        stream: StreamKey,
        file: FileId,
        index: u64,
        bytes: Bytes,
    ) -> Result<(), FileError> {
        self.live()?;
        let hash = chunk_hash(&bytes);
        let r = self.chunk_read_inner(stream, file, index, bytes, hash);
        if let Err(e) = &r {
            self.fail(e.clone(), Some(stream));
        }
        r
    }

    /// [`Sender::chunk_read`] for a caller that already hashed the bytes with
    /// [`super::chunk_hash`] (on another thread, say, while the state machine serves other
    /// streams). `hash` must be the hash of exactly `bytes`: it decides whether the source
    /// changed. (A wrong hash cannot fool the receiver, which verifies every chunk itself.)
    pub fn chunk_read_hashed(
        &mut self,
        stream: StreamKey,
        file: FileId,
        index: u64,
        bytes: Bytes,
        hash: super::ChunkHash,
    ) -> Result<(), FileError> {
        self.live()?;
        let r = self.chunk_read_inner(stream, file, index, bytes, hash);
        if let Err(e) = &r {
            self.fail(e.clone(), Some(stream));
        }
        r
    }

    /// Reports that a source file could not be read: fails the transfer and tells the receiver.
    pub fn read_failed(&mut self, file: FileId, reason: &str) {
        if matches!(self.state, State::Finished | State::Failed) {
            return;
        }
        self.fail(
            FileError::ReadFailed {
                file: file.0,
                reason: truncate_reason(reason),
            },
            None,
        );
    }

    /// Cancels the transfer: queues an `Error` (CANCELLED) for the receiver.
    pub fn cancel(&mut self) {
        if matches!(self.state, State::Finished | State::Failed) {
            return;
        }
        self.fail(FileError::Cancelled, None);
    }

    fn live(&self) -> Result<(), FileError> {
        if self.state == State::Failed {
            return Err(FileError::Failed);
        }
        Ok(())
    }

    fn fail(&mut self, e: FileError, stream: Option<StreamKey>) {
        if self.state == State::Failed {
            return;
        }
        self.state = State::Failed;
        if !matches!(e, FileError::Peer { .. }) {
            if let Some(stream) = self.control.or(stream) {
                self.actions.push_back(SenderAction::Send {
                    stream,
                    bytes: Message::Error(ErrorMessage::from(&e)).encode(),
                });
            }
        }
        self.error = Some(e);
    }

    fn handle_data_inner(&mut self, key: StreamKey, mut input: &[u8]) -> Result<(), FileError> {
        if !self.streams.contains_key(&key) {
            if self.streams.len() > self.config.max_streams {
                return Err(FileError::Limit {
                    what: "too many streams",
                });
            }
            self.streams.insert(
                key,
                SendStream {
                    // The sender never accepts an Offer.
                    decoder: StreamDecoder::new(0),
                    queue: VecDeque::new(),
                    reading: None,
                },
            );
        }
        while !input.is_empty() {
            let Some(stream) = self.streams.get_mut(&key) else {
                return Ok(());
            };
            let (used, item) = stream.decoder.advance(input, None)?;
            input = input.get(used..).unwrap_or_default();
            match item {
                None => {}
                Some(Decoded::Message(m)) => self.on_message(key, m)?,
                Some(Decoded::Payload(_)) => {
                    // Unreachable: a ChunkHeader fails before its payload.
                    return Err(FileError::UnexpectedMessage {
                        message: "ChunkHeader",
                        context: "sent to the sender",
                    });
                }
            }
        }
        Ok(())
    }

    fn on_message(&mut self, key: StreamKey, msg: Message) -> Result<(), FileError> {
        match msg {
            Message::Fetch(fetch) => {
                let id = fetch.id;
                let fresh = self
                    .streams
                    .get(&key)
                    .is_some_and(|s| s.queue.is_empty() && s.reading.is_none());
                if self.control.is_some() || !fresh {
                    return Err(FileError::UnexpectedMessage {
                        message: "Fetch",
                        context: "after the first one",
                    });
                }
                self.control = Some(key);
                if id != self.manifest.transfer_id() {
                    return Err(FileError::UnknownTransfer);
                }
                self.peer_zstd = fetch.codecs & CODEC_BIT_ZSTD != 0;
                self.dict = fetch
                    .dicts
                    .iter()
                    .find_map(|id| self.config.dictionaries.iter().find(|d| d.id() == *id))
                    .filter(|_| self.peer_zstd)
                    .cloned();
                self.state = State::Serving;
                self.actions.push_back(SenderAction::Send {
                    stream: key,
                    bytes: self.offer.clone(),
                });
                Ok(())
            }
            Message::Request(r) => {
                if self.state != State::Serving || self.control == Some(key) {
                    return Err(FileError::UnexpectedMessage {
                        message: "Request",
                        context: "before the offer or on the control stream",
                    });
                }
                let entry = self
                    .manifest
                    .entry(r.file)
                    .filter(|e| e.is_file())
                    .ok_or(FileError::UnknownFile { file: r.file.0 })?;
                for range in &r.chunks {
                    if range.end > entry.chunk_count() {
                        return Err(FileError::UnknownChunk {
                            file: r.file.0,
                            index: range.end - 1,
                        });
                    }
                }
                let max = self.config.max_queued_ranges;
                let Some(stream) = self.streams.get_mut(&key) else {
                    return Ok(());
                };
                if stream.queue.len() + r.chunks.len() > max {
                    return Err(FileError::Limit {
                        what: "too many queued requests on one stream",
                    });
                }
                stream
                    .queue
                    .extend(r.chunks.into_iter().map(|c| (r.file.0, c)));
                self.pump(key);
                Ok(())
            }
            Message::Done if self.control == Some(key) && self.state == State::Serving => {
                self.state = State::Finished;
                self.actions.push_back(SenderAction::Finished);
                Ok(())
            }
            Message::Error(e) => Err(FileError::Peer {
                code: e.code,
                reason: e.reason,
            }),
            other => Err(FileError::UnexpectedMessage {
                message: other.name(),
                context: "sent to the sender",
            }),
        }
    }

    /// Asks the caller for the next queued chunk of `key`, if none is being read.
    fn pump(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        if stream.reading.is_some() {
            return;
        }
        let Some((file, range)) = stream.queue.front_mut() else {
            return;
        };
        let (file, index) = (*file, range.start);
        range.start += 1;
        if range.is_empty() {
            stream.queue.pop_front();
        }
        stream.reading = Some((file, index));
        let span = self
            .manifest
            .entry(FileId(file))
            .and_then(|e| e.chunk_span(index));
        if let Some((offset, len)) = span {
            self.actions.push_back(SenderAction::ReadChunk {
                stream: key,
                file: FileId(file),
                index,
                offset,
                len,
            });
        }
    }

    fn chunk_read_inner(
        &mut self,
        key: StreamKey,
        file: FileId,
        index: u64,
        bytes: Bytes,
        hash: super::ChunkHash,
    ) -> Result<(), FileError> {
        if self.state != State::Serving {
            return Err(FileError::Misuse {
                what: "chunk_read while not serving",
            });
        }
        let Some(stream) = self.streams.get_mut(&key) else {
            return Err(FileError::Misuse {
                what: "chunk_read for an unknown stream",
            });
        };
        if stream.reading != Some((file.0, index)) {
            return Err(FileError::Misuse {
                what: "chunk_read for a chunk that was not asked for",
            });
        }
        stream.reading = None;
        let entry = self.manifest.entry(file);
        let len_ok = entry
            .and_then(|e| e.chunk_span(index))
            .is_some_and(|(_, len)| u64::from(len) == bytes.len() as u64);
        let hash_ok = len_ok && entry.and_then(|e| e.chunk_hash(index)) == Some(&hash);
        if !hash_ok {
            return Err(FileError::SourceChanged {
                file: file.0,
                index,
                path: entry.map(|e| e.path().to_owned()).unwrap_or_default(),
            });
        }
        let raw_len = bytes.len() as u64;
        let with_dict = match (&self.dict, self.peer_zstd) {
            (Some(d), true) => compress_chunk_with_dict(&self.config.compression, d, &bytes)
                .map(|z| (Codec::ZstdDict, Some(d.id()), z)),
            _ => None,
        };
        let compressed = match with_dict {
            Some(c) => Some(c),
            None if self.peer_zstd => {
                compress_chunk(&self.config.compression, &bytes).map(|z| (Codec::Zstd, None, z))
            }
            None => None,
        };
        let (codec, dict, payload) = match compressed {
            Some((codec, dict, z)) => (codec, dict, Bytes::from(z)),
            None => (Codec::Raw, None, bytes),
        };
        let header = Message::ChunkHeader(ChunkHeader {
            file,
            index,
            len: payload.len() as u32,
            codec,
            dict,
        })
        .encode();
        self.stats.chunks_sent += 1;
        self.stats.bytes_sent += raw_len;
        self.stats.wire_bytes += payload.len() as u64;
        self.stats.chunks_compressed += u64::from(codec != Codec::Raw);
        self.actions.push_back(SenderAction::SendChunk {
            stream: key,
            header,
            payload,
        });
        self.pump(key);
        Ok(())
    }
}
