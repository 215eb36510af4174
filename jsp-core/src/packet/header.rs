//! Packet headers: parsing the unprotected part and writing headers for sealing.
//!
//! Two forms, distinguished by the top bit of the first byte:
//!
//! ```text
//! Long header (handshake):                     Short header (after the handshake):
//!   byte 0   1 1 T T R R P P                     byte 0   0 1 S R R K P P
//!   u32      version                             DCID     (length fixed per endpoint)
//!   u8+DCID  destination connection ID (≤ 20)    PN       1..4 bytes
//!   u8+SCID  source connection ID (≤ 20)         payload  AEAD-sealed frames ‖ 16-byte tag
//!   [Initial: varint token length ‖ token]
//!   varint   length of PN + payload
//!   PN       1..4 bytes
//!   payload  AEAD-sealed frames ‖ 16-byte tag
//! ```
//!
//! `T` is the long packet type, `S` the spin bit, `K` the key phase, `P` the packet-number length
//! minus one. `R`, `K` and `P` are hidden by header protection. A version-negotiation packet is a
//! long header with version 0 followed by the list of supported versions.
//!
//! Parsing here validates every length once (smoltcp's `new_checked` idea) and records offsets, so
//! later steps index nothing that was not checked.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::ops::Range;

use crate::cid::{ConnectionId, MAX_CID_LEN};
use crate::coding::{BufferTooSmall, Reader, Writer};

/// First-byte bit: long header.
pub const LONG_FORM_BIT: u8 = 0x80;
/// First-byte bit: always set in JSP packets (lets a receiver tell JSP from other protocols).
pub const FIXED_BIT: u8 = 0x40;
/// Short header: the spin bit.
pub const SPIN_BIT: u8 = 0x20;
/// Short header: the key phase bit (protected).
pub const KEY_PHASE_BIT: u8 = 0x04;
/// The length of the length field we write in long headers (2 bytes: payloads up to 16383 bytes).
pub const LENGTH_FIELD_LEN: usize = 2;
/// The version field value that marks a version-negotiation packet.
pub const VERSION_NEGOTIATION: u32 = 0;

/// The kind of a packet, as told by its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Long header, first flight: ClientHello / ServerHello under Initial keys.
    Initial,
    /// Long header: 0-RTT application data under early keys.
    ZeroRtt,
    /// Long header: the rest of the handshake under handshake keys.
    Handshake,
    /// Long header: a stateless retry carrying an address-validation token.
    Retry,
    /// Short header: application data under 1-RTT keys.
    Short,
}

impl PacketKind {
    /// The 2-bit long-header type code, or `None` for a short header.
    pub const fn long_type(self) -> Option<u8> {
        match self {
            Self::Initial => Some(0),
            Self::ZeroRtt => Some(1),
            Self::Handshake => Some(2),
            Self::Retry => Some(3),
            Self::Short => None,
        }
    }

    fn from_long_type(t: u8) -> Self {
        match t & 0x3 {
            0 => Self::Initial,
            1 => Self::ZeroRtt,
            2 => Self::Handshake,
            _ => Self::Retry,
        }
    }
}

/// Why a header could not be parsed. The datagram (or the rest of it) is dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The datagram ended inside the header or before the declared length.
    Truncated,
    /// The fixed bit was clear: not a JSP packet.
    FixedBitClear,
    /// A connection ID longer than 20 bytes.
    ConnectionIdTooLong(usize),
    /// The length field is smaller than the packet number or larger than the datagram.
    BadLength,
    /// A version-negotiation packet with a list that is not a whole number of versions.
    BadVersionList,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("packet truncated inside its header"),
            Self::FixedBitClear => f.write_str("fixed bit clear: not a JSP packet"),
            Self::ConnectionIdTooLong(n) => write!(f, "connection ID of {n} bytes exceeds 20"),
            Self::BadLength => f.write_str("length field inconsistent with the datagram"),
            Self::BadVersionList => f.write_str("version list is not a multiple of 4 bytes"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl From<crate::coding::Truncated> for HeaderError {
    fn from(_: crate::coding::Truncated) -> Self {
        Self::Truncated
    }
}

/// The unprotected part of a packet header, with offsets into the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// A long-header packet (Initial, 0-RTT, Handshake, Retry).
    Long {
        /// Which long-header packet.
        kind: PacketKind,
        /// The version field.
        version: u32,
        /// Destination connection ID.
        dcid: ConnectionId,
        /// Source connection ID.
        scid: ConnectionId,
        /// Initial: the token's byte range within the packet. Retry: the token/integrity range.
        token: Range<usize>,
    },
    /// A short-header packet.
    Short {
        /// Destination connection ID.
        dcid: ConnectionId,
        /// The spin bit (not protected).
        spin: bool,
    },
    /// A long header of a version this implementation does not speak. Only the version-independent
    /// fields (RFC 8999) are parsed, so that the endpoint can answer with version negotiation.
    UnknownVersion {
        /// The version field.
        version: u32,
        /// Destination connection ID.
        dcid: ConnectionId,
        /// Source connection ID.
        scid: ConnectionId,
    },
    /// A version-negotiation packet.
    VersionNegotiation {
        /// Destination connection ID (the client's source ID).
        dcid: ConnectionId,
        /// Source connection ID (the client's destination ID).
        scid: ConnectionId,
        /// The byte range of the list of versions (u32 each).
        versions: Range<usize>,
    },
}

/// A parsed header and where the packet lies in the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialDecode {
    /// The header.
    pub header: Header,
    /// Offset of the (protected) packet number, relative to the packet's start.
    pub pn_offset: usize,
    /// Total length of this packet; the next coalesced packet (if any) starts right after.
    pub len: usize,
}

impl PartialDecode {
    /// The packet kind, or `None` for a version-negotiation packet.
    pub fn kind(&self) -> Option<PacketKind> {
        match &self.header {
            Header::Long { kind, .. } => Some(*kind),
            Header::Short { .. } => Some(PacketKind::Short),
            Header::VersionNegotiation { .. } | Header::UnknownVersion { .. } => None,
        }
    }

    /// The version field of a long header (`None` for short headers).
    pub fn version(&self) -> Option<u32> {
        match &self.header {
            Header::Long { version, .. } | Header::UnknownVersion { version, .. } => Some(*version),
            Header::VersionNegotiation { .. } => Some(VERSION_NEGOTIATION),
            Header::Short { .. } => None,
        }
    }

    /// The destination connection ID.
    pub fn dcid(&self) -> &ConnectionId {
        match &self.header {
            Header::Long { dcid, .. }
            | Header::Short { dcid, .. }
            | Header::UnknownVersion { dcid, .. }
            | Header::VersionNegotiation { dcid, .. } => dcid,
        }
    }
}

fn read_cid(r: &mut Reader<'_>) -> Result<ConnectionId, HeaderError> {
    let len = usize::from(r.u8()?);
    if len > MAX_CID_LEN {
        return Err(HeaderError::ConnectionIdTooLong(len));
    }
    ConnectionId::new(r.bytes(len)?).ok_or(HeaderError::ConnectionIdTooLong(len))
}

/// Parses the unprotected part of the packet at the start of `packet` (a datagram or its tail).
///
/// `local_cid_len` is the length of the connection IDs this endpoint issues, which short headers
/// do not spell out.
pub fn decode(packet: &[u8], local_cid_len: usize) -> Result<PartialDecode, HeaderError> {
    let mut r = Reader::new(packet);
    let first = r.u8()?;
    if first & LONG_FORM_BIT == 0 {
        if first & FIXED_BIT == 0 {
            return Err(HeaderError::FixedBitClear);
        }
        let dcid = ConnectionId::new(r.bytes(local_cid_len)?)
            .ok_or(HeaderError::ConnectionIdTooLong(local_cid_len))?;
        return Ok(PartialDecode {
            header: Header::Short {
                dcid,
                spin: first & SPIN_BIT != 0,
            },
            pn_offset: r.position(),
            len: packet.len(),
        });
    }
    let version = r.u32()?;
    let dcid = read_cid(&mut r)?;
    let scid = read_cid(&mut r)?;
    if version == VERSION_NEGOTIATION {
        let start = r.position();
        if !r.remaining().is_multiple_of(4) || r.remaining() == 0 {
            return Err(HeaderError::BadVersionList);
        }
        return Ok(PartialDecode {
            header: Header::VersionNegotiation {
                dcid,
                scid,
                versions: start..packet.len(),
            },
            pn_offset: packet.len(),
            len: packet.len(),
        });
    }
    if !crate::SUPPORTED_VERSIONS.contains(&version) {
        return Ok(PartialDecode {
            header: Header::UnknownVersion {
                version,
                dcid,
                scid,
            },
            pn_offset: packet.len(),
            len: packet.len(),
        });
    }
    if first & FIXED_BIT == 0 {
        return Err(HeaderError::FixedBitClear);
    }
    let kind = PacketKind::from_long_type(first >> 4);
    let token = match kind {
        PacketKind::Initial => {
            let len = r.varint_usize()?;
            let start = r.position();
            r.skip(len)?;
            start..start + len
        }
        PacketKind::Retry => {
            // A Retry has no packet number or length: the rest is token.
            let start = r.position();
            return Ok(PartialDecode {
                header: Header::Long {
                    kind,
                    version,
                    dcid,
                    scid,
                    token: start..packet.len(),
                },
                pn_offset: packet.len(),
                len: packet.len(),
            });
        }
        _ => 0..0,
    };
    let length = r.varint_usize()?;
    let pn_offset = r.position();
    if length < 1 || length > r.remaining() {
        return Err(HeaderError::BadLength);
    }
    Ok(PartialDecode {
        header: Header::Long {
            kind,
            version,
            dcid,
            scid,
            token,
        },
        pn_offset,
        len: pn_offset + length,
    })
}

/// The version list of a version-negotiation packet.
pub fn versions(packet: &[u8], range: Range<usize>) -> impl Iterator<Item = u32> + '_ {
    packet.get(range).unwrap_or(&[]).chunks_exact(4).map(|c| {
        u32::from_be_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
            c.get(3).copied().unwrap_or(0),
        ])
    })
}

/// What to put in a header being written.
#[derive(Clone, Debug)]
pub struct HeaderSpec<'a> {
    /// The packet kind (not Retry: retries are written by the endpoint's address validation).
    pub kind: PacketKind,
    /// The version (long headers).
    pub version: u32,
    /// Destination connection ID.
    pub dcid: ConnectionId,
    /// Source connection ID (long headers).
    pub scid: ConnectionId,
    /// Token (Initial only).
    pub token: &'a [u8],
    /// The full packet number.
    pub pn: u64,
    /// How many bytes of it to send (1..=4).
    pub pn_len: usize,
    /// Key phase (short headers).
    pub key_phase: bool,
    /// Spin bit (short headers).
    pub spin: bool,
}

/// Where the parts of a written header lie, relative to the packet's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenHeader {
    /// Offset of the packet number.
    pub pn_offset: usize,
    /// Length of the packet number.
    pub pn_len: usize,
    /// Offset of the 2-byte length field (long headers).
    pub length_offset: Option<usize>,
}

impl WrittenHeader {
    /// The header length, packet number included (the payload starts here).
    pub const fn len(&self) -> usize {
        self.pn_offset + self.pn_len
    }

    /// Always false: a header has at least a first byte and a packet number.
    pub const fn is_empty(&self) -> bool {
        false
    }
}

/// Writes a header with an unprotected packet number. The length field of a long header is
/// reserved and filled in by [`super::seal`].
pub fn write(w: &mut Writer<'_>, spec: &HeaderSpec<'_>) -> Result<WrittenHeader, BufferTooSmall> {
    let start = w.position();
    let pn_len = spec.pn_len.clamp(1, 4);
    let pn_bits = (pn_len - 1) as u8;
    let mut length_offset = None;
    match spec.kind.long_type() {
        Some(t) => {
            w.u8(LONG_FORM_BIT | FIXED_BIT | (t << 4) | pn_bits)?;
            w.u32(spec.version)?;
            w.u8(spec.dcid.len() as u8)?;
            w.bytes(&spec.dcid)?;
            w.u8(spec.scid.len() as u8)?;
            w.bytes(&spec.scid)?;
            if spec.kind == PacketKind::Initial {
                w.varint(spec.token.len() as u64)?;
                w.bytes(spec.token)?;
            }
            length_offset = Some(w.position() - start);
            w.varint_with_len(0, LENGTH_FIELD_LEN)?;
        }
        None => {
            let mut first = FIXED_BIT | pn_bits;
            if spec.spin {
                first |= SPIN_BIT;
            }
            if spec.key_phase {
                first |= KEY_PHASE_BIT;
            }
            w.u8(first)?;
            w.bytes(&spec.dcid)?;
        }
    }
    let pn_offset = w.position() - start;
    let pn = super::number::truncate(spec.pn, pn_len);
    w.bytes(pn.get(..pn_len).unwrap_or(&pn))?;
    Ok(WrittenHeader {
        pn_offset,
        pn_len,
        length_offset,
    })
}

/// Writes a version-negotiation packet answering a packet from `client_scid` to `client_dcid`.
/// `unused` randomizes the first byte's low bits (greasing). Returns the length written.
pub fn write_version_negotiation(
    out: &mut [u8],
    client_dcid: &ConnectionId,
    client_scid: &ConnectionId,
    versions: &[u32],
    unused: u8,
) -> Result<usize, BufferTooSmall> {
    let mut w = Writer::new(out);
    w.u8(LONG_FORM_BIT | (unused & 0x7f))?;
    w.u32(VERSION_NEGOTIATION)?;
    w.u8(client_scid.len() as u8)?;
    w.bytes(client_scid)?;
    w.u8(client_dcid.len() as u8)?;
    w.bytes(client_dcid)?;
    for v in versions {
        w.u32(*v)?;
    }
    Ok(w.finish())
}
