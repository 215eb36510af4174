//! The frame codec: the units a packet's payload is made of.
//!
//! A packet payload is a sequence of frames, each a variable-length integer type followed by
//! type-specific fields (RFC 9000 §12.4 and §19 are the model; the numbering is QUIC's where QUIC
//! has the frame, ours from 0x20 up). This module owns the wire format of every frame and the
//! rules of which frames may appear where; it knows nothing about connection state.
//!
//! Invariants:
//! - decoding never panics, never allocates, and borrows byte fields from the input;
//! - every decoded frame satisfies the wire-level rules checked in [`Frame::decode`] (ACK ranges
//!   stay at or above packet number 0, stream and crypto offsets end at or below 2^62 - 1,
//!   connection IDs are 1 to 20 bytes, stream counts are at most 2^60, …);
//! - encoding writes either the whole frame or nothing: a frame that does not fit returns
//!   [`BufferTooSmall`](crate::coding::BufferTooSmall) and leaves the writer untouched, and [`Frame::encoded_len`] is exactly
//!   what [`Frame::encode`] writes (both are computed by one emitter).
//!
//! Non-shortest varint encodings (of the type or any field) are accepted, as QUIC permits.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod ack;
mod codec;
mod error;
#[cfg(test)]
mod tests;

pub use ack::{ack_encoded_len, encode_ack, Ack, AckIter, EcnCounts};
pub use codec::{
    crypto_header_len, datagram_header_len, encode_crypto_header, encode_stream_header,
    stream_header_len,
};
pub use error::{FrameError, FrameErrorKind};

use crate::cid::ConnectionId;
use crate::coding::Reader;
use crate::side::Side;

/// Frame type codes.
pub mod ty {
    /// PADDING: one zero byte; a run of them decodes as one frame.
    pub const PADDING: u64 = 0x00;
    /// PING: elicits an acknowledgement.
    pub const PING: u64 = 0x01;
    /// ACK without ECN counts.
    pub const ACK: u64 = 0x02;
    /// ACK with ECN counts.
    pub const ACK_ECN: u64 = 0x03;
    /// RESET_STREAM: the sender abandons a stream.
    pub const RESET_STREAM: u64 = 0x04;
    /// STOP_SENDING: the receiver asks the peer to stop sending on a stream.
    pub const STOP_SENDING: u64 = 0x05;
    /// CRYPTO: handshake bytes.
    pub const CRYPTO: u64 = 0x06;
    /// NEW_TOKEN: an address-validation token for a future connection.
    pub const NEW_TOKEN: u64 = 0x07;
    /// STREAM: the lowest of the eight STREAM types (0x08..=0x0f); the low bits are flags.
    pub const STREAM: u64 = 0x08;
    /// The highest STREAM type.
    pub const STREAM_MAX: u64 = 0x0f;
    /// STREAM flag: an offset field is present.
    pub const STREAM_OFF: u64 = 0x04;
    /// STREAM flag: a length field is present (otherwise the data runs to the end of the packet).
    pub const STREAM_LEN: u64 = 0x02;
    /// STREAM flag: this frame ends the stream.
    pub const STREAM_FIN: u64 = 0x01;
    /// MAX_DATA: connection-level flow-control limit.
    pub const MAX_DATA: u64 = 0x10;
    /// MAX_STREAM_DATA: stream-level flow-control limit.
    pub const MAX_STREAM_DATA: u64 = 0x11;
    /// MAX_STREAMS for bidirectional streams.
    pub const MAX_STREAMS_BIDI: u64 = 0x12;
    /// MAX_STREAMS for unidirectional streams.
    pub const MAX_STREAMS_UNI: u64 = 0x13;
    /// DATA_BLOCKED: the sender is blocked by the connection limit.
    pub const DATA_BLOCKED: u64 = 0x14;
    /// STREAM_DATA_BLOCKED: the sender is blocked by a stream limit.
    pub const STREAM_DATA_BLOCKED: u64 = 0x15;
    /// STREAMS_BLOCKED for bidirectional streams.
    pub const STREAMS_BLOCKED_BIDI: u64 = 0x16;
    /// STREAMS_BLOCKED for unidirectional streams.
    pub const STREAMS_BLOCKED_UNI: u64 = 0x17;
    /// NEW_CONNECTION_ID: offers the peer another connection ID.
    pub const NEW_CONNECTION_ID: u64 = 0x18;
    /// RETIRE_CONNECTION_ID: gives up a connection ID the peer issued.
    pub const RETIRE_CONNECTION_ID: u64 = 0x19;
    /// PATH_CHALLENGE: path validation probe.
    pub const PATH_CHALLENGE: u64 = 0x1a;
    /// PATH_RESPONSE: echo of a PATH_CHALLENGE.
    pub const PATH_RESPONSE: u64 = 0x1b;
    /// CLOSE raised by the transport (carries the offending frame type).
    pub const CLOSE_TRANSPORT: u64 = 0x1c;
    /// CLOSE raised by the application.
    pub const CLOSE_APPLICATION: u64 = 0x1d;
    /// HANDSHAKE_DONE: the server confirms the handshake.
    pub const HANDSHAKE_DONE: u64 = 0x1e;
    /// SESSION_TICKET: an opaque encoded ticket message for resumption.
    pub const SESSION_TICKET: u64 = 0x20;
    /// KEY_UPDATE: announces the key generation now in use.
    pub const KEY_UPDATE: u64 = 0x21;
    /// FEC_REPAIR: one repair symbol of a forward-error-correction block.
    pub const FEC_REPAIR: u64 = 0x22;
    /// STREAM_SKIP: the sender abandoned a partially reliable or best-effort stream's data
    /// below an offset; the receiver skips to it.
    pub const STREAM_SKIP: u64 = 0x23;
    /// FEC_RECOVERED: how many of the peer's packets FEC has repaired so far (a loss signal
    /// for its congestion control and loss estimate).
    pub const FEC_RECOVERED: u64 = 0x24;
    /// DATAGRAM without a length: the data runs to the end of the packet.
    pub const DATAGRAM: u64 = 0x30;
    /// DATAGRAM with a length field.
    pub const DATAGRAM_LEN: u64 = 0x31;

    /// Whether `t` is one of the STREAM types.
    pub const fn is_stream(t: u64) -> bool {
        t >= STREAM && t <= STREAM_MAX
    }

    /// The frame's name for diagnostics, when `t` is a known type.
    pub const fn name(t: u64) -> Option<&'static str> {
        Some(match t {
            PADDING => "PADDING",
            PING => "PING",
            ACK | ACK_ECN => "ACK",
            RESET_STREAM => "RESET_STREAM",
            STOP_SENDING => "STOP_SENDING",
            CRYPTO => "CRYPTO",
            NEW_TOKEN => "NEW_TOKEN",
            STREAM..=STREAM_MAX => "STREAM",
            MAX_DATA => "MAX_DATA",
            MAX_STREAM_DATA => "MAX_STREAM_DATA",
            MAX_STREAMS_BIDI | MAX_STREAMS_UNI => "MAX_STREAMS",
            DATA_BLOCKED => "DATA_BLOCKED",
            STREAM_DATA_BLOCKED => "STREAM_DATA_BLOCKED",
            STREAMS_BLOCKED_BIDI | STREAMS_BLOCKED_UNI => "STREAMS_BLOCKED",
            NEW_CONNECTION_ID => "NEW_CONNECTION_ID",
            RETIRE_CONNECTION_ID => "RETIRE_CONNECTION_ID",
            PATH_CHALLENGE => "PATH_CHALLENGE",
            PATH_RESPONSE => "PATH_RESPONSE",
            CLOSE_TRANSPORT | CLOSE_APPLICATION => "CLOSE",
            HANDSHAKE_DONE => "HANDSHAKE_DONE",
            SESSION_TICKET => "SESSION_TICKET",
            KEY_UPDATE => "KEY_UPDATE",
            FEC_REPAIR => "FEC_REPAIR",
            STREAM_SKIP => "STREAM_SKIP",
            FEC_RECOVERED => "FEC_RECOVERED",
            DATAGRAM | DATAGRAM_LEN => "DATAGRAM",
            _ => return None,
        })
    }
}

/// The most streams of one direction a peer may allow or ask for (2^60: the stream ID index
/// limit, RFC 9000 §4.6).
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// A stream's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Both ends send.
    Bi,
    /// Only the initiator sends.
    Uni,
}

/// A stream ID in the QUIC layout: bit 0 is the initiator (0 client, 1 server), bit 1 the
/// direction (0 bidirectional, 1 unidirectional), and the rest the stream's index among the
/// streams of that initiator and direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The `index`th stream opened by `initiator` in direction `dir`.
    ///
    /// `index` must be below 2^60 for the ID to be encodable; higher bits are dropped.
    pub fn new(initiator: Side, dir: Dir, index: u64) -> Self {
        let side_bit = match initiator {
            Side::Client => 0,
            Side::Server => 1,
        };
        let dir_bit = match dir {
            Dir::Bi => 0,
            Dir::Uni => 2,
        };
        Self((index << 2) | dir_bit | side_bit)
    }

    /// Which side opened the stream.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// The stream's direction.
    pub fn dir(self) -> Dir {
        if self.0 & 2 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }

    /// The stream's index among those of its initiator and direction.
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

impl core::fmt::Display for StreamId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who closed the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The transport closed it; `frame_type` is the frame that triggered the error (0 if none).
    Transport {
        /// The type of the frame that caused the error, or 0.
        frame_type: u64,
    },
    /// The application closed it; the code is the application's.
    Application,
}

/// A CLOSE frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close<'a> {
    /// Transport or application close.
    pub kind: CloseKind,
    /// The error code: a [`crate::TransportErrorCode`] for transport closes, else the
    /// application's.
    pub code: u64,
    /// A human-readable reason (UTF-8 by convention, not checked).
    pub reason: &'a [u8],
}

/// One decoded frame, borrowing its byte fields from the packet payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of `len` zero bytes.
    Padding {
        /// Number of bytes in the run.
        len: usize,
    },
    /// Asks the peer to acknowledge.
    Ping,
    /// Acknowledges packets.
    Ack(Ack<'a>),
    /// The sender abandons a stream.
    ResetStream {
        /// The stream.
        id: StreamId,
        /// The application's reason.
        error_code: u64,
        /// The stream's final size in bytes.
        final_size: u64,
    },
    /// The receiver asks the sender to stop sending on a stream.
    StopSending {
        /// The stream.
        id: StreamId,
        /// The application's reason.
        error_code: u64,
    },
    /// Handshake bytes at `offset` in the handshake byte stream.
    Crypto {
        /// Position of `data` in the handshake stream.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// An address-validation token for a future connection (never empty).
    NewToken {
        /// The opaque token.
        token: &'a [u8],
    },
    /// Stream data.
    Stream {
        /// The stream.
        id: StreamId,
        /// Position of `data` in the stream.
        offset: u64,
        /// Whether the stream ends after `data`.
        fin: bool,
        /// The bytes.
        data: &'a [u8],
    },
    /// The connection-level flow-control limit, in bytes.
    MaxData(u64),
    /// A stream's flow-control limit.
    MaxStreamData {
        /// The stream.
        id: StreamId,
        /// The largest offset the peer may send up to.
        max: u64,
    },
    /// How many streams of `dir` the peer may open in total.
    MaxStreams {
        /// Direction.
        dir: Dir,
        /// Cumulative stream count (at most [`MAX_STREAM_COUNT`]).
        count: u64,
    },
    /// The sender is blocked by the connection limit `limit`.
    DataBlocked {
        /// The limit it hit.
        limit: u64,
    },
    /// The sender is blocked by a stream's limit.
    StreamDataBlocked {
        /// The stream.
        id: StreamId,
        /// The limit it hit.
        limit: u64,
    },
    /// The sender wants to open more streams of `dir` than allowed.
    StreamsBlocked {
        /// Direction.
        dir: Dir,
        /// The stream count limit it hit (at most [`MAX_STREAM_COUNT`]).
        limit: u64,
    },
    /// A new connection ID for the peer to use.
    NewConnectionId {
        /// Sequence number of this ID.
        sequence: u64,
        /// IDs with lower sequence numbers must be retired (never above `sequence`).
        retire_prior_to: u64,
        /// The ID, 1 to 20 bytes.
        id: ConnectionId,
        /// The stateless-reset token bound to the ID.
        reset_token: [u8; 16],
    },
    /// Retires the connection ID with this sequence number.
    RetireConnectionId {
        /// The sequence number.
        sequence: u64,
    },
    /// Path validation probe data.
    PathChallenge([u8; 8]),
    /// Echo of a PATH_CHALLENGE's data.
    PathResponse([u8; 8]),
    /// Closes the connection.
    Close(Close<'a>),
    /// The server confirms the handshake.
    HandshakeDone,
    /// An opaque encoded session-ticket message.
    SessionTicket {
        /// The encoded ticket.
        data: &'a [u8],
    },
    /// The sender now seals with key generation `generation`.
    KeyUpdate {
        /// The key generation.
        generation: u64,
    },
    /// A forward-error-correction repair symbol.
    FecRepair {
        /// The source block it repairs: the block's first packet number.
        block: u64,
        /// Packets in the block (at least 1): packet numbers `block..block + sources`.
        sources: u64,
        /// The symbol's RaptorQ encoding symbol ID (at least `sources`: a repair symbol).
        symbol: u64,
        /// The symbol's bytes.
        data: &'a [u8],
    },
    /// The sender abandoned a stream's data below `offset` (a message boundary): the receiver
    /// skips to it (partial reliability, like PR-SCTP's FORWARD-TSN).
    StreamSkip {
        /// The stream.
        id: StreamId,
        /// The new lowest offset: every byte below is delivered, acknowledged or abandoned.
        offset: u64,
        /// How many messages begin below `offset` (cumulative, at most `offset`: each message
        /// takes at least one byte).
        messages: u64,
    },
    /// How many of the receiver's packets FEC repaired so far (cumulative), and the largest
    /// packet number among them; not ack-eliciting.
    FecRecovered {
        /// Packets repaired since the connection began.
        count: u64,
        /// The largest packet number repaired.
        largest: u64,
    },
    /// An unreliable datagram.
    Datagram {
        /// The datagram's bytes.
        data: &'a [u8],
    },
}

impl Frame<'_> {
    /// The type code this frame encodes as (for STREAM, with the LEN bit and the OFF and FIN bits
    /// this frame needs; for DATAGRAM, the form with a length).
    pub fn ty(&self) -> u64 {
        match self {
            Self::Padding { .. } => ty::PADDING,
            Self::Ping => ty::PING,
            Self::Ack(ack) => {
                if ack.ecn.is_some() {
                    ty::ACK_ECN
                } else {
                    ty::ACK
                }
            }
            Self::ResetStream { .. } => ty::RESET_STREAM,
            Self::StopSending { .. } => ty::STOP_SENDING,
            Self::Crypto { .. } => ty::CRYPTO,
            Self::NewToken { .. } => ty::NEW_TOKEN,
            Self::Stream { offset, fin, .. } => codec::stream_type(*offset, *fin),
            Self::MaxData(_) => ty::MAX_DATA,
            Self::MaxStreamData { .. } => ty::MAX_STREAM_DATA,
            Self::MaxStreams { dir: Dir::Bi, .. } => ty::MAX_STREAMS_BIDI,
            Self::MaxStreams { dir: Dir::Uni, .. } => ty::MAX_STREAMS_UNI,
            Self::DataBlocked { .. } => ty::DATA_BLOCKED,
            Self::StreamDataBlocked { .. } => ty::STREAM_DATA_BLOCKED,
            Self::StreamsBlocked { dir: Dir::Bi, .. } => ty::STREAMS_BLOCKED_BIDI,
            Self::StreamsBlocked { dir: Dir::Uni, .. } => ty::STREAMS_BLOCKED_UNI,
            Self::NewConnectionId { .. } => ty::NEW_CONNECTION_ID,
            Self::RetireConnectionId { .. } => ty::RETIRE_CONNECTION_ID,
            Self::PathChallenge(_) => ty::PATH_CHALLENGE,
            Self::PathResponse(_) => ty::PATH_RESPONSE,
            Self::Close(Close {
                kind: CloseKind::Transport { .. },
                ..
            }) => ty::CLOSE_TRANSPORT,
            Self::Close(_) => ty::CLOSE_APPLICATION,
            Self::HandshakeDone => ty::HANDSHAKE_DONE,
            Self::SessionTicket { .. } => ty::SESSION_TICKET,
            Self::KeyUpdate { .. } => ty::KEY_UPDATE,
            Self::FecRepair { .. } => ty::FEC_REPAIR,
            Self::StreamSkip { .. } => ty::STREAM_SKIP,
            Self::FecRecovered { .. } => ty::FEC_RECOVERED,
            Self::Datagram { .. } => ty::DATAGRAM_LEN,
        }
    }

    /// Whether receiving this frame obliges the peer to send an ACK: every frame but PADDING,
    /// ACK, FEC_RECOVERED and CLOSE.
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(
            self,
            Self::Padding { .. } | Self::Ack(_) | Self::Close(_) | Self::FecRecovered { .. }
        )
    }

    /// Whether the frame may appear in Initial and Handshake packets: PADDING, PING, ACK, CRYPTO
    /// and a transport CLOSE only (an application close there would leak application state
    /// before the peer is authenticated).
    pub fn allowed_in_handshake(&self) -> bool {
        matches!(
            self,
            Self::Padding { .. }
                | Self::Ping
                | Self::Ack(_)
                | Self::Crypto { .. }
                | Self::Close(Close {
                    kind: CloseKind::Transport { .. },
                    ..
                })
        )
    }

    /// Whether the frame may appear in 0-RTT packets: not ACK, CRYPTO, HANDSHAKE_DONE,
    /// NEW_TOKEN, PATH_RESPONSE, RETIRE_CONNECTION_ID, SESSION_TICKET or KEY_UPDATE (each either
    /// answers something the client cannot have received yet, or belongs to the server, or to
    /// 1-RTT keys).
    pub fn allowed_in_0rtt(&self) -> bool {
        !matches!(
            self,
            Self::Ack(_)
                | Self::FecRecovered { .. }
                | Self::FecRepair { .. }
                | Self::Crypto { .. }
                | Self::HandshakeDone
                | Self::NewToken { .. }
                | Self::PathResponse(_)
                | Self::RetireConnectionId { .. }
                | Self::SessionTicket { .. }
                | Self::KeyUpdate { .. }
        )
    }
}

/// Iterates over the frames of a packet payload.
pub fn iter(payload: &[u8]) -> Iter<'_> {
    Iter {
        reader: Reader::new(payload),
        failed: false,
    }
}

/// An iterator over the frames of a payload; after the first error it yields nothing more.
///
/// Every decoded frame consumes at least one byte, so iteration ends after at most
/// `payload.len()` items.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Iter<'a> {
    /// The bytes not decoded yet.
    pub fn rest(&self) -> &'a [u8] {
        self.reader.rest()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let frame = Frame::decode(&mut self.reader);
        self.failed = frame.is_err();
        Some(frame)
    }
}

impl core::iter::FusedIterator for Iter<'_> {}
