//! The public vocabulary of the streams room: settings, records of what was sent, events and
//! errors. Plain data; the behaviour lives in the sibling modules.

use core::fmt;

use bytes::Bytes;

use crate::coding::VARINT_MAX;
use crate::frame::{Dir, StreamId, MAX_STREAM_COUNT};
use crate::time::Duration;

/// How a stream's data is delivered, chosen by its sender when it opens the stream.
///
/// The receiver needs no configuration: it learns of abandoned data from STREAM_SKIP frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Every byte is delivered, in order; lost data is retransmitted until acknowledged.
    #[default]
    Reliable,
    /// Messages are retransmitted while they can still arrive within `ttl` of being submitted
    /// (`send_message`); older ones are abandoned and the receiver skips them. Messages only.
    PartiallyReliable {
        /// How long a message stays worth delivering, counted from its submission.
        ttl: Duration,
    },
    /// Messages are sent once and never retransmitted: a lost one is abandoned and the receiver
    /// skips it. Messages only.
    BestEffort,
}

impl DeliveryMode {
    /// Whether lost data is always retransmitted (and bytes may be written with `write`).
    pub fn is_reliable(self) -> bool {
        self == Self::Reliable
    }
}

/// Messages the sender abandoned, as the receiver reports them: everything between the last
/// message delivered and the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Index of the first message skipped (messages of a stream are numbered from 0 in the
    /// order they were submitted).
    pub first: u64,
    /// How many messages were skipped, from `first` on (0 when only the rest of a message that
    /// was partly read with the byte API was dropped).
    pub count: u64,
    /// How many stream bytes were skipped (framing included).
    pub bytes: u64,
}

/// What [`super::Streams::recv_message`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The next message, whole.
    Message(Bytes),
    /// Messages the sender abandoned; later messages follow.
    Skipped(Skipped),
}

/// Per-stream figures of the send half.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Messages submitted with `send_message`.
    pub messages: u64,
    /// Messages abandoned (never to be delivered, counted once each).
    pub abandoned_messages: u64,
    /// Stream bytes of the abandoned messages (framing included).
    pub abandoned_bytes: u64,
    /// Stream bytes written again in STREAM frames after a loss.
    pub retransmitted_bytes: u64,
    /// STREAM_SKIP frames sent (first sendings and retransmissions).
    pub skips_sent: u64,
    /// Partially reliable messages sent again at their last chance, unacknowledged though
    /// not declared lost (§12.17 of PROTOCOL.md).
    pub last_chance_messages: u64,
}

/// Our receive-side settings (taken from the connection's transport configuration).
///
/// Values above the wire maxima (2^62 - 1 bytes, 2^60 streams) are clamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// Connection-level receive window in bytes; default 16 MiB. Auto-tuning may grow it up to
    /// `max(receive_window, 2 × max_stream_receive_window)`, so that one fully tuned stream is
    /// never throttled by the connection window alone.
    pub receive_window: u64,
    /// Initial per-stream receive window in bytes; default 1 MiB.
    pub stream_receive_window: u64,
    /// Ceiling of per-stream window auto-tuning in bytes; default 16 MiB.
    pub max_stream_receive_window: u64,
    /// How many bidirectional streams the peer may have open at once; default 100.
    pub max_concurrent_bidi: u64,
    /// How many unidirectional streams the peer may have open at once; default 100.
    pub max_concurrent_uni: u64,
    /// Bytes the application may queue, unsent or unacknowledged, per connection; default 16 MiB.
    pub send_buffer: u64,
    /// How many out-of-order ranges the peer may make us hold across all streams of the
    /// connection: runs of received data cut off from what the application can read by a hole.
    /// A frame that would exceed it closes the connection with PROTOCOL_VIOLATION ("stream data
    /// too fragmented"). `None` (the default) derives it from the largest connection window W
    /// = `max(receive_window, 2 × max_stream_receive_window)` as `max(1024, W / 1024)`: 32768 for
    /// the default windows. A peer sending frames of 1 KiB or more cannot reach it even when
    /// every other frame of a full window is lost (that is one range per 2 KiB); one sending
    /// 1-byte frames into holes reaches it after 32768 frames.
    pub max_fragments: Option<u64>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            receive_window: 16 << 20,
            stream_receive_window: 1 << 20,
            max_stream_receive_window: 16 << 20,
            max_concurrent_bidi: 100,
            max_concurrent_uni: 100,
            send_buffer: 16 << 20,
            max_fragments: None,
        }
    }
}

impl StreamLimits {
    /// The same limits with every value inside its wire range.
    pub(super) fn clamped(self) -> Self {
        Self {
            receive_window: self.receive_window.min(VARINT_MAX),
            stream_receive_window: self.stream_receive_window.min(VARINT_MAX),
            max_stream_receive_window: self.max_stream_receive_window.min(VARINT_MAX),
            max_concurrent_bidi: self.max_concurrent_bidi.min(MAX_STREAM_COUNT),
            max_concurrent_uni: self.max_concurrent_uni.min(MAX_STREAM_COUNT),
            send_buffer: self.send_buffer,
            max_fragments: self.max_fragments,
        }
    }

    /// The largest connection-level window auto-tuning may grant.
    pub(super) fn max_connection_window(&self) -> u64 {
        self.receive_window
            .max(self.max_stream_receive_window.saturating_mul(2))
    }

    /// The limit on out-of-order ranges per connection (see [`Self::max_fragments`]).
    pub(super) fn fragment_limit(&self) -> u64 {
        self.max_fragments
            .unwrap_or_else(|| (self.max_connection_window() / 1024).max(1024))
    }

    /// The initial limits to announce to the peer in our transport parameters.
    pub fn advertised(&self) -> PeerLimits {
        let limits = self.clone().clamped();
        PeerLimits {
            max_data: limits.receive_window,
            max_stream_data_bidi_local: limits.stream_receive_window,
            max_stream_data_bidi_remote: limits.stream_receive_window,
            max_stream_data_uni: limits.stream_receive_window,
            max_streams_bidi: limits.max_concurrent_bidi,
            max_streams_uni: limits.max_concurrent_uni,
        }
    }
}

/// The peer's initial limits, from its transport parameters. Names are as the peer sees them:
/// `bidi_local` applies to streams the peer opened, `bidi_remote` to streams we opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerLimits {
    /// Connection-level limit on the bytes we may send.
    pub max_data: u64,
    /// Limit on what we send on bidirectional streams the peer opened.
    pub max_stream_data_bidi_local: u64,
    /// Limit on what we send on bidirectional streams we opened.
    pub max_stream_data_bidi_remote: u64,
    /// Limit on what we send on unidirectional streams we opened.
    pub max_stream_data_uni: u64,
    /// How many bidirectional streams we may open.
    pub max_streams_bidi: u64,
    /// How many unidirectional streams we may open.
    pub max_streams_uni: u64,
}

/// What a sent packet carried for the streams room; handed back through
/// [`super::Streams::on_acked`] or [`super::Streams::on_lost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRecord {
    /// A STREAM frame.
    Data {
        /// The stream.
        id: StreamId,
        /// Offset of the first byte.
        offset: u64,
        /// Number of bytes.
        len: u64,
        /// Whether the frame carried the FIN.
        fin: bool,
    },
    /// A MAX_DATA frame.
    MaxData(u64),
    /// A MAX_STREAM_DATA frame.
    MaxStreamData {
        /// The stream.
        id: StreamId,
        /// The limit sent.
        max: u64,
    },
    /// A MAX_STREAMS frame.
    MaxStreams {
        /// Direction.
        dir: Dir,
        /// The count sent.
        count: u64,
    },
    /// A RESET_STREAM frame.
    Reset {
        /// The stream.
        id: StreamId,
        /// The application's code.
        code: u64,
        /// The final size sent.
        final_size: u64,
    },
    /// A STOP_SENDING frame.
    StopSending {
        /// The stream.
        id: StreamId,
        /// The application's code.
        code: u64,
    },
    /// A DATA_BLOCKED frame.
    DataBlocked(u64),
    /// A STREAM_DATA_BLOCKED frame.
    StreamDataBlocked {
        /// The stream.
        id: StreamId,
        /// The limit sent.
        limit: u64,
    },
    /// A STREAM_SKIP frame.
    Skip {
        /// The stream.
        id: StreamId,
        /// The new lowest offset sent.
        offset: u64,
        /// The messages below it.
        messages: u64,
    },
    /// A STREAMS_BLOCKED frame.
    StreamsBlocked {
        /// Direction.
        dir: Dir,
        /// The limit sent.
        limit: u64,
    },
}

/// Something the application should know about. `Readable` and `Writable` are hints: each is
/// raised once and stays true until acted on (read until `Blocked`, write until short).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer opened streams of `dir`: call [`super::Streams::accept`] until `None`.
    Opened {
        /// Direction.
        dir: Dir,
    },
    /// Data, the end of the stream, or a reset is ready to read.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A write that came up short may now make progress.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// All our data on the stream, and the FIN, were acknowledged.
    Finished {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent STOP_SENDING; the stream was reset with its code.
    Stopped {
        /// The stream.
        id: StreamId,
        /// The peer's code.
        error_code: u64,
    },
    /// The peer reset the stream; reads return [`ReadError::Reset`].
    Reset {
        /// The stream.
        id: StreamId,
        /// The peer's code.
        error_code: u64,
    },
    /// A byte-API read (`read`, `read_into`) skipped data the peer abandoned (a
    /// partially reliable or best-effort stream). `recv_message` reports skips as its value
    /// instead.
    Skipped {
        /// The stream.
        id: StreamId,
        /// What was skipped.
        skipped: Skipped,
    },
    /// The peer raised MAX_STREAMS after `open` returned `None`.
    Available {
        /// Direction.
        dir: Dir,
    },
}

/// Why a write, finish or reset failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The peer sent STOP_SENDING with this code; the stream was reset.
    Stopped(u64),
    /// No such stream (never opened, or closed and forgotten).
    UnknownStream,
    /// The stream was finished or reset.
    ClosedStream,
    /// The stream is a unidirectional stream the peer opened: we only receive on it.
    NotSendable,
    /// `send_message` found no room for the whole message now; a `Writable` event follows.
    Blocked,
    /// The message (with its framing) is larger than the peer's initial stream window or our
    /// send buffer, so it could never be delivered whole.
    MessageTooLarge,
    /// The stream is partially reliable or best-effort: data goes in messages only
    /// (`send_message`), so that the receiver can skip whole messages.
    MessagesOnly,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped(code) => write!(f, "the peer stopped the stream (code {code})"),
            Self::UnknownStream => f.write_str("unknown stream"),
            Self::ClosedStream => f.write_str("the stream was finished or reset"),
            Self::NotSendable => f.write_str("the stream is receive-only"),
            Self::Blocked => f.write_str("no room for the message now"),
            Self::MessageTooLarge => f.write_str("the message exceeds the peer's stream window"),
            Self::MessagesOnly => {
                f.write_str("the stream is not reliable: send whole messages with send_message")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// Why a read or stop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing is ready; a `Readable` event follows when something is.
    Blocked,
    /// The peer reset the stream with this code.
    Reset(u64),
    /// No such stream (never opened, or closed and forgotten).
    UnknownStream,
    /// The stream is a unidirectional stream we opened: we only send on it.
    NotReadable,
    /// We stopped reading the stream with [`super::Streams::stop`].
    ClosedStream,
    /// The next message announces more bytes than our stream window can ever hold, so it
    /// can never be read whole (the peer broke the message framing); stop the stream.
    MessageTooLarge(u64),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked => f.write_str("no data ready"),
            Self::Reset(code) => write!(f, "the peer reset the stream (code {code})"),
            Self::UnknownStream => f.write_str("unknown stream"),
            Self::NotReadable => f.write_str("the stream is send-only"),
            Self::ClosedStream => f.write_str("reading was stopped"),
            Self::MessageTooLarge(len) => {
                write!(
                    f,
                    "the next message announces {len} bytes, beyond the stream window"
                )
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// The stream does not exist (never opened, or closed and forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownStream;

impl fmt::Display for UnknownStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown stream")
    }
}

impl std::error::Error for UnknownStream {}
