//! The packet layer: headers, packet numbers, and packet protection.
//!
//! A packet is sealed in three steps, and opened in the reverse order:
//! 1. the header is written with the packet number in clear ([`header::write`]);
//! 2. the payload is AEAD-sealed in place with the header as associated data and the nonce
//!    IV ⊕ packet number ([`crate::crypto::PacketKey`]);
//! 3. header protection masks the low bits of the first byte (reserved bits, key phase, packet
//!    number length) and the packet-number bytes with a mask computed from a 16-byte sample of the
//!    ciphertext taken 4 bytes after the start of the packet number ([`crate::crypto::HeaderKey`]).
//!
//! A datagram may hold several long-header packets followed by at most one short-header packet;
//! each long header states its length, so the receiver walks them with [`header::decode`].
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod header;
pub mod number;
pub mod replay_window;
pub mod retry;

use core::ops::Range;

pub use header::{
    decode, Header, HeaderError, HeaderSpec, PacketKind, PartialDecode, WrittenHeader,
};

use crate::coding::put_varint_at;
use crate::crypto::{CryptoError, HeaderKey, PacketKey, SAMPLE_LEN, TAG_LEN};

/// A packet-number space. Each has its own packet numbers, acknowledgements and loss recovery, so
/// that packets under keys that are later discarded never acknowledge or hide others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpaceId {
    /// Initial packets (ClientHello, ServerHello).
    Initial = 0,
    /// Handshake packets (the rest of the handshake).
    Handshake = 1,
    /// 0-RTT and 1-RTT packets (application data).
    Data = 2,
}

impl SpaceId {
    /// All three spaces, in handshake order.
    pub const ALL: [Self; 3] = [Self::Initial, Self::Handshake, Self::Data];

    /// The space a packet kind belongs to (`None` for Retry).
    pub const fn of(kind: PacketKind) -> Option<Self> {
        match kind {
            PacketKind::Initial => Some(Self::Initial),
            PacketKind::Handshake => Some(Self::Handshake),
            PacketKind::ZeroRtt | PacketKind::Short => Some(Self::Data),
            PacketKind::Retry => None,
        }
    }

    /// The index of the space, for arrays of per-space state.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Bytes from the start of the packet number to the header-protection sample.
pub const SAMPLE_OFFSET: usize = 4;

/// The smallest plaintext payload a packet with a `pn_len`-byte packet number may carry, so that
/// the header-protection sample lies inside the packet. Shorter payloads are padded.
pub const fn min_payload_len(pn_len: usize) -> usize {
    SAMPLE_OFFSET.saturating_sub(pn_len)
}

/// Why a packet could not be sealed or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectError {
    /// The packet is too short to take the header-protection sample.
    TooShortToSample,
    /// The AEAD failed (on open: tampered, forged, or under other keys).
    Crypto(CryptoError),
    /// A reserved header bit was set after header protection was removed (RFC 9000 §17.2).
    ReservedBitsSet,
}

impl From<CryptoError> for ProtectError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

impl core::fmt::Display for ProtectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShortToSample => {
                f.write_str("packet too short for the header-protection sample")
            }
            Self::Crypto(e) => write!(f, "{e}"),
            Self::ReservedBitsSet => f.write_str("reserved header bits set"),
        }
    }
}

impl std::error::Error for ProtectError {}

fn flag_mask(first: u8) -> u8 {
    if first & header::LONG_FORM_BIT != 0 {
        0x0f
    } else {
        0x1f
    }
}

fn sample(packet: &[u8], pn_offset: usize) -> Result<[u8; SAMPLE_LEN], ProtectError> {
    let start = pn_offset + SAMPLE_OFFSET;
    let bytes = packet
        .get(start..start + SAMPLE_LEN)
        .ok_or(ProtectError::TooShortToSample)?;
    let mut out = [0u8; SAMPLE_LEN];
    out.copy_from_slice(bytes);
    Ok(out)
}

fn apply_mask(packet: &mut [u8], pn_offset: usize, pn_len: usize, mask: &[u8; 5]) {
    if let Some(first) = packet.first_mut() {
        *first ^= mask[0] & flag_mask(*first);
    }
    if let Some(pn) = packet.get_mut(pn_offset..pn_offset + pn_len) {
        for (b, m) in pn.iter_mut().zip(mask.iter().skip(1)) {
            *b ^= m;
        }
    }
}

/// Seals a packet in place. `packet` is exactly: the header written by [`header::write`], the
/// plaintext payload (at least [`min_payload_len`] bytes), and [`TAG_LEN`] spare bytes.
pub fn seal(
    packet: &mut [u8],
    hdr: &WrittenHeader,
    pn: u64,
    key: &dyn PacketKey,
    hp: &dyn HeaderKey,
) -> Result<(), ProtectError> {
    if packet.len() < hdr.pn_offset + SAMPLE_OFFSET + SAMPLE_LEN
        || packet.len() < hdr.len() + TAG_LEN
    {
        return Err(ProtectError::TooShortToSample);
    }
    if let Some(off) = hdr.length_offset {
        let length = (packet.len() - hdr.pn_offset) as u64;
        let field = packet
            .get_mut(off..off + header::LENGTH_FIELD_LEN)
            .ok_or(ProtectError::TooShortToSample)?;
        put_varint_at(field, length, header::LENGTH_FIELD_LEN)
            .map_err(|_| ProtectError::TooShortToSample)?;
    }
    let (head, payload) = packet.split_at_mut(hdr.len());
    key.seal(pn, head, payload)?;
    let mask = hp.mask(&sample(packet, hdr.pn_offset)?);
    apply_mask(packet, hdr.pn_offset, hdr.pn_len, &mask);
    Ok(())
}

/// A packet whose header protection has been removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprotected {
    /// The full (expanded) packet number.
    pub pn: u64,
    /// The header length including the packet number; the ciphertext starts here.
    pub header_len: usize,
    /// The key phase bit (short headers).
    pub key_phase: bool,
    /// Whether reserved bits were set (checked only once the AEAD verified the packet).
    reserved_set: bool,
}

/// Removes header protection from `packet` (exactly one packet, `partial.len` bytes) and recovers
/// the packet number relative to `largest`, the largest packet number processed in its space.
pub fn unprotect_header(
    packet: &mut [u8],
    partial: &PartialDecode,
    hp: &dyn HeaderKey,
    largest: Option<u64>,
) -> Result<Unprotected, ProtectError> {
    let mask = hp.mask(&sample(packet, partial.pn_offset)?);
    let first = packet.first_mut().ok_or(ProtectError::TooShortToSample)?;
    *first ^= mask[0] & flag_mask(*first);
    let first = *first;
    let pn_len = usize::from(first & 0x03) + 1;
    let long = first & header::LONG_FORM_BIT != 0;
    let pn_bytes = packet
        .get_mut(partial.pn_offset..partial.pn_offset + pn_len)
        .ok_or(ProtectError::TooShortToSample)?;
    let mut truncated = 0u64;
    for (b, m) in pn_bytes.iter_mut().zip(mask.iter().skip(1)) {
        *b ^= m;
        truncated = (truncated << 8) | u64::from(*b);
    }
    let reserved = if long { 0x0c } else { 0x18 };
    Ok(Unprotected {
        pn: number::expand(truncated, pn_len, largest),
        header_len: partial.pn_offset + pn_len,
        key_phase: !long && first & header::KEY_PHASE_BIT != 0,
        reserved_set: first & reserved != 0,
    })
}

/// Opens the payload of a packet whose header protection was removed; returns the plaintext's
/// byte range within `packet`.
pub fn open(
    packet: &mut [u8],
    unprotected: &Unprotected,
    key: &dyn PacketKey,
) -> Result<Range<usize>, ProtectError> {
    if unprotected.header_len > packet.len() {
        return Err(ProtectError::TooShortToSample);
    }
    let (head, payload) = packet.split_at_mut(unprotected.header_len);
    let plain_len = key.open(unprotected.pn, head, payload)?.len();
    if unprotected.reserved_set {
        return Err(ProtectError::ReservedBitsSet);
    }
    Ok(unprotected.header_len..unprotected.header_len + plain_len)
}

#[cfg(test)]
mod tests;
