//! File-transfer messages and their framing on streams.
//!
//! Every message is `type: u8 ‖ length: u24 (big-endian) ‖ body`, the body one CBOR map (like the
//! handshake messages). A `ChunkHeader` is followed by exactly `len` raw chunk bytes, which the
//! length field does not count.
//!
//! | type | message | direction, stream | body keys |
//! |---|---|---|---|
//! | 1 | `Fetch` | receiver → sender, control (first message) | `id`: 16-byte transfer id; `c` (optional): codecs the receiver decodes, bit 0 = zstd |
//! | 2 | `Offer` | sender → receiver, control | the manifest ([`super::manifest`]) |
//! | 3 | `Request` | receiver → sender, data | `f`: file index; `r`: [[start, end], …] chunk ranges |
//! | 4 | `ChunkHeader` | sender → receiver, data | `f`: file index; `i`: chunk index; `n`: wire byte length; `z` (optional): codec, 0 raw, 1 zstd |
//! | 5 | `Done` | receiver → sender, control | (empty map) |
//! | 6 | `Error` | either, control (or any stream) | `c`: [`ErrorCode`]; `r`: reason text |
//!
//! Invariants of decoding: a body longer than its type's limit ([`MAX_BODY_LEN`], or the
//! manifest limit for `Offer`) is refused as soon as the 4-byte header shows it; a decoded message
//! obeys its field limits (`Request`: 1 to [`MAX_RANGES`] non-empty ranges, ascending and
//! disjoint; `ChunkHeader`: 1 ≤ `n` ≤ [`MAX_CHUNK_SIZE`]; `Error`: a reason of at most
//! [`MAX_REASON_LEN`] bytes); and the incremental stream decoder holds at most one body plus one chunk.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::ops::Range;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::cbor;
use super::compress::{Codec, DictId, DICT_ID_LEN, MAX_DICTS};
use super::error::{ErrorCode, FileError, MessageError};
use super::hash::{TransferId, TRANSFER_ID_LEN};
use super::manifest::{FileId, Manifest, MAX_CHUNK_SIZE, MAX_MANIFEST_LEN};

/// Length of the frame header: type (1) and body length (3).
pub const HEADER_LEN: usize = 4;
/// Longest body of every message but `Offer`.
pub const MAX_BODY_LEN: usize = 2048;
/// Most ranges in one `Request`.
pub const MAX_RANGES: usize = 64;
/// Longest reason in an `Error` message, in bytes; longer reasons are cut when encoding.
pub const MAX_REASON_LEN: usize = 256;

mod code {
    pub(super) const FETCH: u8 = 1;
    pub(super) const OFFER: u8 = 2;
    pub(super) const REQUEST: u8 = 3;
    pub(super) const CHUNK_HEADER: u8 = 4;
    pub(super) const DONE: u8 = 5;
    pub(super) const ERROR: u8 = 6;
}

/// A request for chunks of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The file (manifest entry index).
    pub file: FileId,
    /// Half-open chunk-index ranges, ascending and disjoint.
    pub chunks: Vec<Range<u64>>,
}

/// The header in front of one chunk's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The file (manifest entry index).
    pub file: FileId,
    /// The chunk index within the file.
    pub index: u64,
    /// The number of bytes that follow on the wire (compressed, if `codec` says so).
    pub len: u32,
    /// How those bytes encode the chunk.
    pub codec: Codec,
    /// The dictionary of a [`Codec::ZstdDict`] chunk (key `d`, present exactly then).
    pub dict: Option<DictId>,
}

/// The opening message: which transfer, and what the receiver can decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The transfer asked for.
    pub id: TransferId,
    /// Codecs the receiver decodes, a bit set ([`super::compress::CODEC_BIT_ZSTD`]); unknown
    /// bits are ignored. 0: raw chunks only.
    pub codecs: u32,
    /// Content ids of the zstd dictionaries the receiver holds (key `d`, at most
    /// [`MAX_DICTS`], distinct), most preferred first; empty when absent.
    pub dicts: Vec<DictId>,
}

/// An error that ends the transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// What kind of error.
    pub code: ErrorCode,
    /// A human-readable reason (at most [`MAX_REASON_LEN`] bytes).
    pub reason: String,
}

/// One file-transfer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Type 1: the receiver asks for the transfer with this id.
    Fetch(Fetch),
    /// Type 2: the sender offers the manifest.
    Offer(Box<Manifest>),
    /// Type 3: the receiver asks for chunks; the sender answers on the same stream, in order.
    Request(Request),
    /// Type 4: one chunk's header; its raw bytes follow.
    ChunkHeader(ChunkHeader),
    /// Type 5: the receiver has every file verified; the transfer is over.
    Done,
    /// Type 6: the transfer failed.
    Error(ErrorMessage),
}

fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        code::FETCH => "Fetch",
        code::OFFER => "Offer",
        code::REQUEST => "Request",
        code::CHUNK_HEADER => "ChunkHeader",
        code::DONE => "Done",
        code::ERROR => "Error",
        _ => return None,
    })
}

/// Body limit of a message type.
fn body_limit(ty: u8, max_offer_len: usize) -> usize {
    if ty == code::OFFER {
        max_offer_len.min(MAX_MANIFEST_LEN)
    } else {
        MAX_BODY_LEN
    }
}

#[derive(Serialize, Deserialize)]
struct FetchWire {
    #[serde(rename = "id", with = "serde_bytes")]
    id: Vec<u8>,
    #[serde(rename = "c", default, skip_serializing_if = "is_zero")]
    codecs: u32,
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    dicts: Vec<serde_bytes::ByteBuf>,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Serialize)]
struct RequestOut {
    #[serde(rename = "f")]
    file: u32,
    #[serde(rename = "r")]
    ranges: Vec<(u64, u64)>,
}

#[derive(Deserialize)]
struct RequestIn {
    #[serde(rename = "f")]
    file: u32,
    #[serde(rename = "r", deserialize_with = "cbor::list::<_, _, MAX_RANGES>")]
    ranges: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct ChunkHeaderWire {
    #[serde(rename = "f")]
    file: u32,
    #[serde(rename = "i")]
    index: u64,
    #[serde(rename = "n")]
    len: u32,
    #[serde(rename = "z", default, skip_serializing_if = "is_zero")]
    codec: u8,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    dict: Option<serde_bytes::ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct DoneWire {}

#[derive(Serialize, Deserialize)]
struct ErrorWire {
    #[serde(rename = "c")]
    code: u32,
    #[serde(rename = "r")]
    reason: String,
}

impl From<&FileError> for ErrorMessage {
    /// The message that reports `e` to the peer.
    fn from(e: &FileError) -> Self {
        ErrorMessage {
            code: e.code(),
            reason: truncate_reason(&e.to_string()),
        }
    }
}

/// The prefix of a connection close reason that carries an [`ErrorMessage`].
const CLOSE_REASON_PREFIX: &str = "file error ";

impl ErrorMessage {
    /// The application close reason that carries this error to the peer, in case the close
    /// overtakes the `Error` message sent on the control stream (or no stream was open yet):
    /// `file error CODE: REASON`, the code in decimal and the reason cut to at most
    /// [`MAX_REASON_LEN`] bytes. [`ErrorMessage::from_close_reason`] reads it back.
    pub fn to_close_reason(&self) -> Vec<u8> {
        format!(
            "{CLOSE_REASON_PREFIX}{}: {}",
            self.code.0,
            truncate_reason(&self.reason)
        )
        .into_bytes()
    }

    /// Reads a close reason written by [`ErrorMessage::to_close_reason`]; `None` for any other
    /// text (an older peer's reason, a reason cut short before the code, a code that is not a
    /// decimal `u32`). A reason longer than [`MAX_REASON_LEN`] bytes is cut to it.
    pub fn from_close_reason(close_reason: &str) -> Option<Self> {
        let rest = close_reason.strip_prefix(CLOSE_REASON_PREFIX)?;
        let (code, reason) = rest.split_once(": ")?;
        if code.is_empty() || code.len() > 10 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ErrorMessage {
            code: ErrorCode(code.parse().ok()?),
            reason: truncate_reason(reason),
        })
    }
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default().to_owned()
}

fn invalid(message: &'static str, field: &'static str, reason: &'static str) -> MessageError {
    MessageError::InvalidField {
        message,
        field,
        reason,
    }
}

fn body<T: serde::de::DeserializeOwned>(
    message: &'static str,
    bytes: &[u8],
) -> Result<T, MessageError> {
    cbor::from_slice(bytes).map_err(|detail| MessageError::BadCbor { message, detail })
}

fn decode_body(ty: u8, bytes: &[u8], max_offer_len: usize) -> Result<Message, MessageError> {
    let name = type_name(ty).ok_or(MessageError::UnknownType(ty))?;
    Ok(match ty {
        code::FETCH => {
            let w: FetchWire = body(name, bytes)?;
            let id = <[u8; TRANSFER_ID_LEN]>::try_from(w.id)
                .map_err(|_| invalid(name, "id", "must be exactly 16 bytes"))?;
            if w.dicts.len() > MAX_DICTS {
                return Err(invalid(name, "dicts", "more than 16 dictionaries"));
            }
            let mut dicts = Vec::with_capacity(w.dicts.len());
            for d in w.dicts {
                let d = <[u8; DICT_ID_LEN]>::try_from(d.into_vec())
                    .map_err(|_| invalid(name, "dicts", "an id is not 8 bytes"))?;
                if dicts.contains(&DictId(d)) {
                    return Err(invalid(name, "dicts", "a dictionary is listed twice"));
                }
                dicts.push(DictId(d));
            }
            Message::Fetch(Fetch {
                id: TransferId(id),
                codecs: w.codecs,
                dicts,
            })
        }
        code::OFFER => Message::Offer(Box::new(Manifest::decode(bytes, max_offer_len)?)),
        code::REQUEST => {
            let w: RequestIn = body(name, bytes)?;
            if w.ranges.is_empty() {
                return Err(invalid(name, "chunks", "must not be empty"));
            }
            if w.ranges.len() > MAX_RANGES {
                return Err(invalid(name, "chunks", "more than 64 ranges"));
            }
            let mut prev_end = 0u64;
            let mut chunks = Vec::with_capacity(w.ranges.len());
            for (i, (start, end)) in w.ranges.into_iter().enumerate() {
                if start >= end {
                    return Err(invalid(name, "chunks", "empty or reversed range"));
                }
                if i > 0 && start < prev_end {
                    return Err(invalid(name, "chunks", "ranges not ascending and disjoint"));
                }
                prev_end = end;
                chunks.push(start..end);
            }
            Message::Request(Request {
                file: FileId(w.file),
                chunks,
            })
        }
        code::CHUNK_HEADER => {
            let w: ChunkHeaderWire = body(name, bytes)?;
            if w.len == 0 || w.len > MAX_CHUNK_SIZE {
                return Err(invalid(name, "len", "must be 1 to 16 MiB"));
            }
            let codec =
                Codec::from_wire(w.codec).ok_or(invalid(name, "codec", "unknown chunk codec"))?;
            let dict = match (codec, w.dict) {
                (Codec::ZstdDict, Some(d)) => Some(DictId(
                    <[u8; DICT_ID_LEN]>::try_from(d.into_vec())
                        .map_err(|_| invalid(name, "dict", "must be exactly 8 bytes"))?,
                )),
                (Codec::ZstdDict, None) => {
                    return Err(invalid(name, "dict", "missing for a dictionary chunk"))
                }
                (_, Some(_)) => {
                    return Err(invalid(name, "dict", "present for a chunk without one"))
                }
                (_, None) => None,
            };
            Message::ChunkHeader(ChunkHeader {
                file: FileId(w.file),
                index: w.index,
                len: w.len,
                codec,
                dict,
            })
        }
        code::DONE => {
            let _: DoneWire = body(name, bytes)?;
            Message::Done
        }
        code::ERROR => {
            let w: ErrorWire = body(name, bytes)?;
            if w.reason.len() > MAX_REASON_LEN {
                return Err(invalid(name, "reason", "longer than 256 bytes"));
            }
            Message::Error(ErrorMessage {
                code: ErrorCode(w.code),
                reason: w.reason,
            })
        }
        other => return Err(MessageError::UnknownType(other)),
    })
}

impl Message {
    /// The wire type code (1–6).
    pub fn type_code(&self) -> u8 {
        match self {
            Self::Fetch(_) => code::FETCH,
            Self::Offer(_) => code::OFFER,
            Self::Request(_) => code::REQUEST,
            Self::ChunkHeader(_) => code::CHUNK_HEADER,
            Self::Done => code::DONE,
            Self::Error(_) => code::ERROR,
        }
    }

    /// The message's name ("Fetch", ...).
    pub fn name(&self) -> &'static str {
        type_name(self.type_code()).unwrap_or("unknown")
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Self::Fetch(f) => cbor::to_vec_into(
                &FetchWire {
                    id: f.id.0.to_vec(),
                    codecs: f.codecs,
                    dicts: f
                        .dicts
                        .iter()
                        .map(|d| serde_bytes::ByteBuf::from(d.0.to_vec()))
                        .collect(),
                },
                out,
            ),
            Self::Offer(m) => {
                out.extend_from_slice(&m.encode());
                Ok(())
            }
            Self::Request(r) => cbor::to_vec_into(
                &RequestOut {
                    file: r.file.0,
                    ranges: r.chunks.iter().map(|c| (c.start, c.end)).collect(),
                },
                out,
            ),
            Self::ChunkHeader(h) => cbor::to_vec_into(
                &ChunkHeaderWire {
                    file: h.file.0,
                    index: h.index,
                    len: h.len,
                    codec: h.codec.to_wire(),
                    dict: h.dict.map(|d| serde_bytes::ByteBuf::from(d.0.to_vec())),
                },
                out,
            ),
            Self::Done => cbor::to_vec_into(&DoneWire {}, out),
            Self::Error(e) => cbor::to_vec_into(
                &ErrorWire {
                    code: e.code.0,
                    reason: truncate_reason(&e.reason),
                },
                out,
            ),
        }
    }

    /// The framed message. The length is not checked: a body longer than 2^24 − 1 bytes gets the
    /// length 0xFFFFFF, which every receiver refuses, so framing never desynchronizes. Use
    /// [`Message::try_encode`] to check first.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[self.type_code(), 0, 0, 0]);
        if self.write_body(&mut out).is_err() {
            // Unreachable with a Vec writer; an empty body is refused by every receiver.
            out.truncate(HEADER_LEN);
        }
        crate::coding::patch_u24_frame_len(&mut out);
        out
    }

    /// Like [`Message::encode`], but fails if the body exceeds its type's limit (for `Offer`,
    /// [`MAX_MANIFEST_LEN`]) or a `Request` breaks its field limits.
    pub fn try_encode(&self) -> Result<Vec<u8>, MessageError> {
        if let Self::Request(r) = self {
            if r.chunks.is_empty() || r.chunks.len() > MAX_RANGES {
                return Err(invalid("Request", "chunks", "must have 1 to 64 ranges"));
            }
        }
        let out = self.encode();
        let len = out.len().saturating_sub(HEADER_LEN);
        let max = body_limit(self.type_code(), MAX_MANIFEST_LEN);
        if len > max {
            return Err(MessageError::TooLong {
                message: self.name(),
                len,
                max,
            });
        }
        Ok(out)
    }

    /// Parses one framed message from the front of `buf`: `Ok(None)` if more bytes are needed,
    /// else the message and the bytes it used. For a `ChunkHeader`, the raw bytes that follow are
    /// not consumed. An unknown type or an over-long length is reported as soon as the header
    /// shows it. `max_offer_len` caps an `Offer` body below [`MAX_MANIFEST_LEN`].
    pub fn decode(
        buf: &[u8],
        max_offer_len: usize,
    ) -> Result<Option<(Message, usize)>, MessageError> {
        let Some(&ty) = buf.first() else {
            return Ok(None);
        };
        let Some(&[a, b, c]) = buf.get(1..HEADER_LEN) else {
            // Report an unknown type before waiting for the length.
            type_name(ty).ok_or(MessageError::UnknownType(ty))?;
            return Ok(None);
        };
        let len = check_header(ty, [a, b, c], max_offer_len)?;
        let Some(bytes) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        Ok(Some((
            decode_body(ty, bytes, max_offer_len)?,
            HEADER_LEN + len,
        )))
    }
}

/// The framed `Offer` of `manifest`, without cloning it; fails if the manifest does not fit.
pub(crate) fn encode_offer(manifest: &Manifest) -> Result<Vec<u8>, MessageError> {
    let body = manifest.encode();
    if body.len() > MAX_MANIFEST_LEN {
        return Err(MessageError::TooLong {
            message: "Offer",
            len: body.len(),
            max: MAX_MANIFEST_LEN,
        });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&[code::OFFER, 0, 0, 0]);
    out.extend_from_slice(&body);
    crate::coding::patch_u24_frame_len(&mut out);
    Ok(out)
}

/// Checks the type and length of a frame header; returns the body length.
fn check_header(ty: u8, len: [u8; 3], max_offer_len: usize) -> Result<usize, MessageError> {
    let message = type_name(ty).ok_or(MessageError::UnknownType(ty))?;
    let len = crate::coding::u24(len);
    let max = body_limit(ty, max_offer_len);
    if len > max {
        return Err(MessageError::TooLong { message, len, max });
    }
    Ok(len)
}

/// What a [`StreamDecoder`] produced.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A complete message. After a `ChunkHeader`, the decoder collects its raw bytes next.
    Message(Message),
    /// The complete raw bytes of the chunk announced by the last `ChunkHeader`, in pieces: the
    /// stream's own buffers where they came shared ([`StreamDecoder::advance`] with `shared`),
    /// one collected copy of what came as plain slices.
    Payload(Vec<Bytes>),
}

/// A chunk's bytes being collected.
#[derive(Debug)]
struct PayloadBuf {
    /// Pieces complete so far, in order.
    pieces: Vec<Bytes>,
    /// Bytes that came as plain slices since the last shared piece.
    tail: Vec<u8>,
    /// Bytes collected (pieces and tail).
    have: usize,
    /// Bytes announced.
    want: usize,
}

impl PayloadBuf {
    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            self.pieces
                .push(Bytes::from(core::mem::take(&mut self.tail)));
        }
    }
}

/// Incremental decoder for one stream: takes the stream's bytes in pieces of any size.
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    /// The frame being assembled: header, then body.
    frame: Vec<u8>,
    /// The body length, once the header is complete.
    body_len: Option<usize>,
    /// Raw chunk bytes being collected.
    payload: Option<PayloadBuf>,
    max_offer_len: usize,
}

impl StreamDecoder {
    /// A decoder accepting `Offer` bodies of at most `max_offer_len` bytes.
    pub(crate) fn new(max_offer_len: usize) -> Self {
        Self {
            frame: Vec::new(),
            body_len: None,
            payload: None,
            max_offer_len,
        }
    }

    /// Whether the decoder is between frames (nothing partial buffered).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.frame.is_empty() && self.payload.is_none()
    }

    /// Consumes bytes from the front of `input` until one item completes or the input runs out.
    /// Returns the bytes consumed and the item, if any. Every call with non-empty input consumes
    /// at least one byte or returns an item, so a loop over it terminates.
    ///
    /// Chunk bytes that come as plain slices are copied into a buffer reserved for the rest of
    /// the announced length; when `shared` is given, `input` must lie inside it, and chunk bytes
    /// are kept as slices of it ([`Bytes::slice_ref`]) without copying. The caller validates the
    /// `ChunkHeader` (returned before any payload byte is consumed) and stops feeding the
    /// decoder if it refuses it.
    pub(crate) fn advance(
        &mut self,
        input: &[u8],
        shared: Option<&Bytes>,
    ) -> Result<(usize, Option<Decoded>), MessageError> {
        if input.is_empty() {
            return Ok((0, None));
        }
        if let Some(p) = &mut self.payload {
            let take = (p.want - p.have).min(input.len());
            let piece = input.get(..take).unwrap_or_default();
            match shared {
                Some(b) => {
                    p.flush_tail();
                    p.pieces.push(b.slice_ref(piece));
                }
                None => {
                    if p.tail.is_empty() {
                        p.tail.reserve_exact(p.want - p.have);
                    }
                    p.tail.extend_from_slice(piece);
                }
            }
            p.have += take;
            if p.have == p.want {
                let done = self.payload.take().map_or_else(Vec::new, |mut p| {
                    p.flush_tail();
                    p.pieces
                });
                return Ok((take, Some(Decoded::Payload(done))));
            }
            return Ok((take, None));
        }
        let mut used = 0;
        if self.body_len.is_none() {
            let take = (HEADER_LEN - self.frame.len()).min(input.len());
            self.frame
                .extend_from_slice(input.get(..take).unwrap_or_default());
            used += take;
            let Some(&[ty, a, b, c]) = self.frame.get(..HEADER_LEN) else {
                if let Some(&ty) = self.frame.first() {
                    type_name(ty).ok_or(MessageError::UnknownType(ty))?;
                }
                return Ok((used, None));
            };
            self.body_len = Some(check_header(ty, [a, b, c], self.max_offer_len)?);
        }
        let body_len = self.body_len.unwrap_or(0);
        let total = HEADER_LEN + body_len;
        let rest = input.get(used..).unwrap_or_default();
        let take = (total - self.frame.len()).min(rest.len());
        self.frame
            .extend_from_slice(rest.get(..take).unwrap_or_default());
        used += take;
        if self.frame.len() < total {
            return Ok((used, None));
        }
        let ty = self.frame.first().copied().unwrap_or(0);
        let msg = decode_body(
            ty,
            self.frame.get(HEADER_LEN..).unwrap_or_default(),
            self.max_offer_len,
        );
        self.frame = Vec::new();
        self.body_len = None;
        let msg = msg?;
        if let Message::ChunkHeader(h) = &msg {
            self.payload = Some(PayloadBuf {
                pieces: Vec::new(),
                tail: Vec::new(),
                have: 0,
                want: h.len as usize,
            });
        }
        Ok((used, Some(Decoded::Message(msg))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_bytes_fed_shared_are_kept_as_slices_and_plain_ones_are_collected_once() {
        let header = Message::ChunkHeader(ChunkHeader {
            file: FileId(0),
            index: 0,
            len: 10,
            codec: Codec::Raw,
            dict: None,
        })
        .encode();
        let payload: Vec<u8> = (0u8..10).collect();
        // Shared: header and the first 4 chunk bytes in one buffer, then 6 bytes in another,
        // with one plain slice in between.
        let mut first = header.clone();
        first.extend_from_slice(&payload[..4]);
        let first = Bytes::from(first);
        let second = Bytes::copy_from_slice(&payload[5..]);
        let mut d = StreamDecoder::new(0);
        let (used, item) = d.advance(&first, Some(&first)).unwrap();
        assert_eq!(used, header.len());
        assert!(matches!(
            item,
            Some(Decoded::Message(Message::ChunkHeader(_)))
        ));
        let rest = &first[used..];
        assert!(matches!(d.advance(rest, Some(&first)), Ok((4, None))));
        assert!(matches!(d.advance(&payload[4..5], None), Ok((1, None))));
        let (used, item) = d.advance(&second, Some(&second)).unwrap();
        assert_eq!(used, 5);
        let Some(Decoded::Payload(pieces)) = item else {
            panic!("{item:?}")
        };
        assert_eq!(pieces.concat(), payload);
        assert_eq!(pieces.len(), 3);
        // Not copied: the shared pieces point into the buffers they came in.
        assert_eq!(pieces[0].as_ptr(), first[header.len()..].as_ptr());
        assert_eq!(pieces[2].as_ptr(), second.as_ptr());
        assert!(d.is_idle());
        // Plain slices, byte by byte: one piece, collected into one buffer.
        let mut d = StreamDecoder::new(0);
        let mut got = Vec::new();
        for b in header.iter().chain(&payload) {
            let (used, item) = d.advance(std::slice::from_ref(b), None).unwrap();
            assert_eq!(used, 1);
            got.extend(item);
        }
        let [Decoded::Message(_), Decoded::Payload(pieces)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0][..], payload[..]);
    }

    #[test]
    fn small_messages_round_trip_through_the_stream_decoder_byte_by_byte() {
        let msgs = vec![
            Message::Fetch(Fetch {
                id: TransferId([9; 16]),
                codecs: 0,
                dicts: Vec::new(),
            }),
            Message::Fetch(Fetch {
                id: TransferId([8; 16]),
                codecs: 1,
                dicts: Vec::new(),
            }),
            Message::Request(Request {
                file: FileId(3),
                chunks: vec![0..2, 5..9],
            }),
            Message::ChunkHeader(ChunkHeader {
                file: FileId(1),
                index: 7,
                len: 3,
                codec: Codec::Raw,
                dict: None,
            }),
            Message::ChunkHeader(ChunkHeader {
                file: FileId(1),
                index: 8,
                len: 3,
                codec: Codec::Zstd,
                dict: None,
            }),
            Message::Done,
            Message::Error(ErrorMessage {
                code: ErrorCode::SOURCE_CHANGED,
                reason: "x".repeat(300),
            }),
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(m.try_encode().unwrap());
            if let Message::ChunkHeader(_) = m {
                wire.extend_from_slice(b"abc");
            }
            let Some((back, _)) = Message::decode(&m.encode(), MAX_MANIFEST_LEN).unwrap() else {
                panic!("incomplete")
            };
            if !matches!(m, Message::Error(_)) {
                assert_eq!(&back, m);
            }
        }
        let mut d = StreamDecoder::new(MAX_MANIFEST_LEN);
        let mut got = Vec::new();
        for b in &wire {
            let (used, item) = d.advance(std::slice::from_ref(b), None).unwrap();
            assert_eq!(used, 1);
            got.extend(item);
        }
        assert!(d.is_idle());
        assert_eq!(got.len(), msgs.len() + 2);
        assert!(matches!(&got[4], Decoded::Payload(p) if p.concat() == b"abc"));
        assert!(matches!(&got[6], Decoded::Payload(p) if p.concat() == b"abc"));
        let Decoded::Message(Message::Error(e)) = &got[8] else {
            panic!("{got:?}")
        };
        assert_eq!(e.reason.len(), MAX_REASON_LEN);
    }

    #[test]
    fn an_error_round_trips_through_a_close_reason_and_other_text_is_not_one() {
        let e = ErrorMessage {
            code: ErrorCode::WRITE_FAILED,
            reason: "cannot write file 0: big.bin: no space left on device".into(),
        };
        let text = String::from_utf8(e.to_close_reason()).unwrap();
        assert_eq!(
            text,
            "file error 9: cannot write file 0: big.bin: no space left on device"
        );
        assert_eq!(ErrorMessage::from_close_reason(&text), Some(e));
        // Unknown codes are kept; over-long reasons are cut to the limit, at a char boundary.
        let long =
            ErrorMessage::from_close_reason(&format!("file error 4000000000: {}", "é".repeat(300)))
                .unwrap();
        assert_eq!(long.code, ErrorCode(4_000_000_000));
        assert!(long.reason.len() <= MAX_REASON_LEN && long.reason.len() >= MAX_REASON_LEN - 1);
        assert_eq!(
            ErrorMessage::from_close_reason("file error 8: "),
            Some(ErrorMessage {
                code: ErrorCode::CANCELLED,
                reason: String::new()
            })
        );
        for other in [
            "",
            "file transfer over",
            "file transfer failed",
            "file error ",
            "file error 9",
            "file error : x",
            "file error -9: x",
            "file error +9: x",
            "file error 9x: x",
            "file error 4294967296: x",
            "file error 99999999999: x",
            "FILE ERROR 9: x",
        ] {
            assert_eq!(ErrorMessage::from_close_reason(other), None, "{other:?}");
        }
    }

    #[test]
    fn an_absurd_length_is_refused_from_the_header_alone() {
        for ty in 1..=6u8 {
            let r = Message::decode(&[ty, 0xff, 0xff, 0xff], 1 << 20);
            assert!(
                matches!(r, Err(MessageError::TooLong { .. })),
                "{ty}: {r:?}"
            );
        }
        assert_eq!(
            Message::decode(&[0], 100),
            Err(MessageError::UnknownType(0))
        );
        assert_eq!(
            Message::decode(&[7, 0], 100),
            Err(MessageError::UnknownType(7))
        );
    }
}
