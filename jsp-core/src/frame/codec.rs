//! Decoding and encoding of every frame but ACK's ranges (see `ack.rs`).
//!
//! Encoding goes through one emitter generic over a [`Sink`]: a [`Writer`] writes the bytes, a
//! [`Counter`] only counts them, so `encoded_len` and `encode` cannot disagree.

use core::convert::Infallible;

use super::error::{FrameError, FrameErrorKind};
use super::{ack, ty, Close, CloseKind, Dir, Frame, StreamId, MAX_STREAM_COUNT};
use crate::cid::{ConnectionId, MAX_CID_LEN};
use crate::coding::{varint_len, BufferTooSmall, Reader, Truncated, Writer, VARINT_MAX};

/// Where an emitter puts a frame's bytes.
pub(super) trait Sink {
    /// Why a write can fail.
    type Error;
    /// A varint in its shortest form.
    fn varint(&mut self, v: u64) -> Result<(), Self::Error>;
    /// Raw bytes.
    fn bytes(&mut self, b: &[u8]) -> Result<(), Self::Error>;
    /// `n` zero bytes.
    fn zeros(&mut self, n: usize) -> Result<(), Self::Error>;
}

impl Sink for Writer<'_> {
    type Error = BufferTooSmall;
    fn varint(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        Writer::varint(self, v)
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), BufferTooSmall> {
        Writer::bytes(self, b)
    }
    fn zeros(&mut self, n: usize) -> Result<(), BufferTooSmall> {
        Writer::zeros(self, n)
    }
}

/// A sink that counts bytes.
#[derive(Default)]
pub(super) struct Counter(usize);

impl Sink for Counter {
    type Error = Infallible;
    fn varint(&mut self, v: u64) -> Result<(), Infallible> {
        self.0 = self.0.saturating_add(varint_len(v));
        Ok(())
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), Infallible> {
        self.zeros(b.len())
    }
    fn zeros(&mut self, n: usize) -> Result<(), Infallible> {
        self.0 = self.0.saturating_add(n);
        Ok(())
    }
}

/// The number of bytes `emit` produces.
pub(super) fn measure(emit: impl FnOnce(&mut Counter) -> Result<(), Infallible>) -> usize {
    let mut counter = Counter::default();
    match emit(&mut counter) {
        Ok(()) => counter.0,
        Err(never) => match never {},
    }
}

/// Runs `emit` into `w` if `len` bytes fit, else writes nothing and reports the shortfall.
pub(super) fn write_all_or_nothing(
    w: &mut Writer<'_>,
    len: usize,
    emit: impl FnOnce(&mut Writer<'_>) -> Result<(), BufferTooSmall>,
) -> Result<(), BufferTooSmall> {
    let room = w.remaining();
    if len > room {
        return Err(BufferTooSmall { needed: len - room });
    }
    let start = w.position();
    emit(w)?;
    debug_assert_eq!(w.position() - start, len, "emitter and length disagree");
    Ok(())
}

/// A length as it goes on the wire (lossless: `usize` is at most 64 bits).
pub(super) fn wire_len(n: usize) -> u64 {
    n as u64
}

/// The STREAM type for a frame with an explicit length, the OFF bit when `offset` is nonzero.
pub(super) fn stream_type(offset: u64, fin: bool) -> u64 {
    let mut t = ty::STREAM | ty::STREAM_LEN;
    if offset != 0 {
        t |= ty::STREAM_OFF;
    }
    if fin {
        t |= ty::STREAM_FIN;
    }
    t
}

fn emit_stream_header<S: Sink>(
    s: &mut S,
    id: StreamId,
    offset: u64,
    len: usize,
    fin: bool,
) -> Result<(), S::Error> {
    s.varint(stream_type(offset, fin))?;
    s.varint(id.0)?;
    if offset != 0 {
        s.varint(offset)?;
    }
    s.varint(wire_len(len))
}

fn emit_crypto_header<S: Sink>(s: &mut S, offset: u64, len: usize) -> Result<(), S::Error> {
    s.varint(ty::CRYPTO)?;
    s.varint(offset)?;
    s.varint(wire_len(len))
}

fn emit_bytes<S: Sink>(s: &mut S, b: &[u8]) -> Result<(), S::Error> {
    s.varint(wire_len(b.len()))?;
    s.bytes(b)
}

/// The length of a STREAM header (type with LEN bit, ID, offset when nonzero, length) for `len`
/// bytes of data at `offset`.
pub fn stream_header_len(id: StreamId, offset: u64, len: usize) -> usize {
    measure(|c| emit_stream_header(c, id, offset, len, false))
}

/// Writes a STREAM header for `len` bytes at `offset`; the caller writes the data right after.
/// Writes nothing if the header does not fit.
pub fn encode_stream_header(
    w: &mut Writer<'_>,
    id: StreamId,
    offset: u64,
    len: usize,
    fin: bool,
) -> Result<(), BufferTooSmall> {
    write_all_or_nothing(w, stream_header_len(id, offset, len), |w| {
        emit_stream_header(w, id, offset, len, fin)
    })
}

/// The length of a CRYPTO header (type, offset, length) for `len` bytes at `offset`.
pub fn crypto_header_len(offset: u64, len: usize) -> usize {
    measure(|c| emit_crypto_header(c, offset, len))
}

/// Writes a CRYPTO header for `len` bytes at `offset`; the caller writes the data right after.
/// Writes nothing if the header does not fit.
pub fn encode_crypto_header(
    w: &mut Writer<'_>,
    offset: u64,
    len: usize,
) -> Result<(), BufferTooSmall> {
    write_all_or_nothing(w, crypto_header_len(offset, len), |w| {
        emit_crypto_header(w, offset, len)
    })
}

/// The length of a DATAGRAM header (type 0x31 and length) for `len` bytes of data.
pub fn datagram_header_len(len: usize) -> usize {
    measure(|c| {
        c.varint(ty::DATAGRAM_LEN)?;
        c.varint(wire_len(len))
    })
}

/// Reads a varint length and that many bytes.
fn length_prefixed<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], FrameErrorKind> {
    let len = usize::try_from(r.varint()?).map_err(|_| Truncated)?;
    Ok(r.bytes(len)?)
}

/// Reads `len` bytes of data at `offset` after checking that the data ends at or below 2^62 - 1.
fn data_at<'a>(
    r: &mut Reader<'a>,
    offset: u64,
    len: u64,
    too_far: &'static str,
) -> Result<&'a [u8], FrameErrorKind> {
    if offset.checked_add(len).is_none_or(|end| end > VARINT_MAX) {
        return Err(FrameErrorKind::InvalidValue(too_far));
    }
    let len = usize::try_from(len).map_err(|_| Truncated)?;
    Ok(r.bytes(len)?)
}

fn stream_count(r: &mut Reader<'_>, too_many: &'static str) -> Result<u64, FrameErrorKind> {
    let count = r.varint()?;
    if count > MAX_STREAM_COUNT {
        return Err(FrameErrorKind::InvalidValue(too_many));
    }
    Ok(count)
}

fn decode_body<'a>(t: u64, start: usize, r: &mut Reader<'a>) -> Result<Frame<'a>, FrameErrorKind> {
    Ok(match t {
        ty::PADDING => {
            let run = r.rest().iter().take_while(|&&b| b == 0).count();
            r.skip(run)?;
            Frame::Padding {
                len: r.position() - start,
            }
        }
        ty::PING => Frame::Ping,
        ty::ACK | ty::ACK_ECN => Frame::Ack(ack::decode(t == ty::ACK_ECN, r)?),
        ty::RESET_STREAM => Frame::ResetStream {
            id: StreamId(r.varint()?),
            error_code: r.varint()?,
            final_size: r.varint()?,
        },
        ty::STOP_SENDING => Frame::StopSending {
            id: StreamId(r.varint()?),
            error_code: r.varint()?,
        },
        ty::CRYPTO => {
            let offset = r.varint()?;
            let len = r.varint()?;
            let data = data_at(r, offset, len, "CRYPTO data would end beyond 2^62-1")?;
            Frame::Crypto { offset, data }
        }
        ty::NEW_TOKEN => {
            let token = length_prefixed(r)?;
            if token.is_empty() {
                return Err(FrameErrorKind::InvalidValue("NEW_TOKEN token is empty"));
            }
            Frame::NewToken { token }
        }
        ty::STREAM..=ty::STREAM_MAX => {
            let id = StreamId(r.varint()?);
            let offset = if t & ty::STREAM_OFF != 0 {
                r.varint()?
            } else {
                0
            };
            let len = if t & ty::STREAM_LEN != 0 {
                r.varint()?
            } else {
                wire_len(r.remaining())
            };
            let data = data_at(r, offset, len, "STREAM data would end beyond 2^62-1")?;
            Frame::Stream {
                id,
                offset,
                fin: t & ty::STREAM_FIN != 0,
                data,
            }
        }
        ty::MAX_DATA => Frame::MaxData(r.varint()?),
        ty::MAX_STREAM_DATA => Frame::MaxStreamData {
            id: StreamId(r.varint()?),
            max: r.varint()?,
        },
        ty::MAX_STREAMS_BIDI | ty::MAX_STREAMS_UNI => Frame::MaxStreams {
            dir: if t == ty::MAX_STREAMS_BIDI {
                Dir::Bi
            } else {
                Dir::Uni
            },
            count: stream_count(r, "MAX_STREAMS count exceeds 2^60")?,
        },
        ty::DATA_BLOCKED => Frame::DataBlocked { limit: r.varint()? },
        ty::STREAM_DATA_BLOCKED => Frame::StreamDataBlocked {
            id: StreamId(r.varint()?),
            limit: r.varint()?,
        },
        ty::STREAMS_BLOCKED_BIDI | ty::STREAMS_BLOCKED_UNI => Frame::StreamsBlocked {
            dir: if t == ty::STREAMS_BLOCKED_BIDI {
                Dir::Bi
            } else {
                Dir::Uni
            },
            limit: stream_count(r, "STREAMS_BLOCKED limit exceeds 2^60")?,
        },
        ty::NEW_CONNECTION_ID => {
            let sequence = r.varint()?;
            let retire_prior_to = r.varint()?;
            if retire_prior_to > sequence {
                return Err(FrameErrorKind::InvalidValue(
                    "NEW_CONNECTION_ID retire_prior_to exceeds the sequence number",
                ));
            }
            let len = usize::from(r.u8()?);
            if !(1..=MAX_CID_LEN).contains(&len) {
                return Err(FrameErrorKind::InvalidValue(
                    "NEW_CONNECTION_ID length is not 1 to 20",
                ));
            }
            let id = ConnectionId::new(r.bytes(len)?).ok_or(FrameErrorKind::InvalidValue(
                "NEW_CONNECTION_ID length is not 1 to 20",
            ))?;
            Frame::NewConnectionId {
                sequence,
                retire_prior_to,
                id,
                reset_token: r.array()?,
            }
        }
        ty::RETIRE_CONNECTION_ID => Frame::RetireConnectionId {
            sequence: r.varint()?,
        },
        ty::PATH_CHALLENGE => Frame::PathChallenge(r.array()?),
        ty::PATH_RESPONSE => Frame::PathResponse(r.array()?),
        ty::CLOSE_TRANSPORT | ty::CLOSE_APPLICATION => {
            let code = r.varint()?;
            let kind = if t == ty::CLOSE_TRANSPORT {
                CloseKind::Transport {
                    frame_type: r.varint()?,
                }
            } else {
                CloseKind::Application
            };
            let len = r.varint()?;
            let reason = usize::try_from(len)
                .ok()
                .and_then(|len| r.bytes(len).ok())
                .ok_or(FrameErrorKind::InvalidValue(
                    "CLOSE reason length exceeds the payload",
                ))?;
            Frame::Close(Close { kind, code, reason })
        }
        ty::HANDSHAKE_DONE => Frame::HandshakeDone,
        ty::SESSION_TICKET => Frame::SessionTicket {
            data: length_prefixed(r)?,
        },
        ty::KEY_UPDATE => Frame::KeyUpdate {
            generation: r.varint()?,
        },
        ty::FEC_REPAIR => {
            let block = r.varint()?;
            let sources = r.varint()?;
            let symbol = r.varint()?;
            if sources == 0 {
                return Err(FrameErrorKind::InvalidValue(
                    "FEC_REPAIR block has no sources",
                ));
            }
            if symbol < sources {
                return Err(FrameErrorKind::InvalidValue(
                    "FEC_REPAIR symbol ID is a source symbol's",
                ));
            }
            Frame::FecRepair {
                block,
                sources,
                symbol,
                data: length_prefixed(r)?,
            }
        }
        ty::FEC_RECOVERED => Frame::FecRecovered {
            count: r.varint()?,
            largest: r.varint()?,
        },
        ty::STREAM_SKIP => {
            let id = StreamId(r.varint()?);
            let offset = r.varint()?;
            let messages = r.varint()?;
            if messages > offset {
                return Err(FrameErrorKind::InvalidValue(
                    "STREAM_SKIP counts more messages than bytes",
                ));
            }
            Frame::StreamSkip {
                id,
                offset,
                messages,
            }
        }
        ty::DATAGRAM => {
            let data = r.rest();
            r.skip(data.len())?;
            Frame::Datagram { data }
        }
        ty::DATAGRAM_LEN => Frame::Datagram {
            data: length_prefixed(r)?,
        },
        _ => return Err(FrameErrorKind::UnknownType),
    })
}

impl<'a> Frame<'a> {
    /// Decodes one frame from `r`, consuming exactly its bytes (for STREAM without a length and
    /// DATAGRAM 0x30, the rest of the payload; for PADDING, the whole run of zero bytes).
    ///
    /// On error the reader's position is unspecified; the rest of the payload is unusable.
    pub fn decode(r: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
        let start = r.position();
        let t = r
            .varint()
            .map_err(|_| FrameError::new(None, FrameErrorKind::Truncated))?;
        decode_body(t, start, r).map_err(|kind| FrameError::new(Some(t), kind))
    }

    /// Writes the frame, entirely or (when it does not fit) not at all.
    ///
    /// STREAM frames always carry a length, and an offset only when it is nonzero; DATAGRAM
    /// frames always carry a length (type 0x31); an ACK re-emits its decoded ranges as received
    /// (to build a fresh ACK from a [`crate::range_set::RangeSet`], use [`super::encode_ack`]).
    /// Every field must be at most 2^62 - 1, as decoded frames are.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        write_all_or_nothing(w, self.encoded_len(), |w| self.emit(w))
    }

    /// The number of bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        measure(|c| self.emit(c))
    }

    fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        match self {
            Self::Padding { len } => return s.zeros(*len),
            Self::Ack(ack) => return ack.emit(s),
            Self::Stream {
                id,
                offset,
                fin,
                data,
            } => {
                emit_stream_header(s, *id, *offset, data.len(), *fin)?;
                return s.bytes(data);
            }
            Self::Crypto { offset, data } => {
                emit_crypto_header(s, *offset, data.len())?;
                return s.bytes(data);
            }
            _ => {}
        }
        s.varint(self.ty())?;
        match self {
            Self::Padding { .. }
            | Self::Ack(_)
            | Self::Stream { .. }
            | Self::Crypto { .. }
            | Self::Ping
            | Self::HandshakeDone => Ok(()),
            Self::ResetStream {
                id,
                error_code,
                final_size,
            } => {
                s.varint(id.0)?;
                s.varint(*error_code)?;
                s.varint(*final_size)
            }
            Self::StopSending { id, error_code } => {
                s.varint(id.0)?;
                s.varint(*error_code)
            }
            Self::NewToken { token } => emit_bytes(s, token),
            Self::MaxData(max) => s.varint(*max),
            Self::MaxStreamData { id, max } => {
                s.varint(id.0)?;
                s.varint(*max)
            }
            Self::MaxStreams { count, .. } => s.varint(*count),
            Self::DataBlocked { limit } | Self::StreamsBlocked { limit, .. } => s.varint(*limit),
            Self::StreamDataBlocked { id, limit } => {
                s.varint(id.0)?;
                s.varint(*limit)
            }
            Self::NewConnectionId {
                sequence,
                retire_prior_to,
                id,
                reset_token,
            } => {
                s.varint(*sequence)?;
                s.varint(*retire_prior_to)?;
                // A ConnectionId is at most 20 bytes, so its length fits the one-byte field.
                s.bytes(&[id.len() as u8])?;
                s.bytes(id)?;
                s.bytes(reset_token)
            }
            Self::RetireConnectionId { sequence } => s.varint(*sequence),
            Self::PathChallenge(data) | Self::PathResponse(data) => s.bytes(data),
            Self::Close(Close { kind, code, reason }) => {
                s.varint(*code)?;
                if let CloseKind::Transport { frame_type } = kind {
                    s.varint(*frame_type)?;
                }
                emit_bytes(s, reason)
            }
            Self::SessionTicket { data } | Self::Datagram { data } => emit_bytes(s, data),
            Self::KeyUpdate { generation } => s.varint(*generation),
            Self::FecRecovered { count, largest } => {
                s.varint(*count)?;
                s.varint(*largest)
            }
            Self::FecRepair {
                block,
                sources,
                symbol,
                data,
            } => {
                s.varint(*block)?;
                s.varint(*sources)?;
                s.varint(*symbol)?;
                emit_bytes(s, data)
            }
            Self::StreamSkip {
                id,
                offset,
                messages,
            } => {
                s.varint(id.0)?;
                s.varint(*offset)?;
                s.varint(*messages)
            }
        }
    }
}
