//! Retry packets: layout and integrity tag (RFC 9000 §17.2.5, RFC 9001 §5.8).
//!
//! ```text
//! Retry:
//!   byte 0   1 1 1 1 U U U U     long header, type 3, four unused (random) bits
//!   u32      version
//!   u8+DCID  the client's source connection ID
//!   u8+SCID  a connection ID the server chose (the client's next destination ID)
//!   token    the address-validation token, to the tag
//!   tag[16]  integrity tag
//! ```
//!
//! The integrity tag is the AES-128-GCM tag, under a fixed key and nonce, of an empty plaintext
//! with the *Retry pseudo-packet* as associated data:
//! `odcid_len u8 ‖ odcid ‖ Retry packet without its tag`, where `odcid` is the destination ID of
//! the client's first Initial. The key is public, so the tag is no authentication against an
//! on-path attacker (the handshake's transport parameters do that, §2 of docs/PROTOCOL.md); it
//! stops an **off-path** attacker, who does not know the client's random original ID, from
//! forging a Retry, and it detects corruption.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use subtle::ConstantTimeEq;

use super::header::{FIXED_BIT, LONG_FORM_BIT};
use crate::cid::ConnectionId;
use crate::coding::{BufferTooSmall, Writer};

/// Length of the integrity tag that ends a Retry packet.
pub const RETRY_TAG_LEN: usize = 16;

/// The fixed AES-128-GCM key of the integrity tag: the first 16 bytes of
/// SHA-256("JSP v1 retry integrity key").
pub const RETRY_INTEGRITY_KEY: [u8; 16] = [
    0x28, 0xf9, 0xe7, 0xe0, 0x98, 0x85, 0xf1, 0x1b, 0x59, 0xd1, 0xae, 0xb3, 0xef, 0xd2, 0x50, 0xcd,
];

/// The fixed nonce of the integrity tag: the first 12 bytes of
/// SHA-256("JSP v1 retry integrity nonce").
pub const RETRY_INTEGRITY_NONCE: [u8; 12] = [
    0xd3, 0x07, 0x59, 0x52, 0x7a, 0x43, 0x07, 0x84, 0xf9, 0xeb, 0x74, 0x14,
];

/// The long-header type code of a Retry.
const RETRY_TYPE: u8 = 3;

/// The integrity tag of `retry` (a Retry packet without its tag) for a client whose first
/// Initial went to `original_dcid`.
pub fn integrity_tag(original_dcid: &ConnectionId, retry: &[u8]) -> [u8; RETRY_TAG_LEN] {
    let mut aad = Vec::with_capacity(1 + original_dcid.len() + retry.len());
    aad.push(original_dcid.len() as u8);
    aad.extend_from_slice(original_dcid);
    aad.extend_from_slice(retry);
    let aead = Aes128Gcm::new(aes_gcm::Key::<Aes128Gcm>::from_slice(&RETRY_INTEGRITY_KEY));
    let mut empty = [0u8; 0];
    let mut tag = [0u8; RETRY_TAG_LEN];
    // Encrypting an empty plaintext cannot fail.
    if let Ok(t) =
        aead.encrypt_in_place_detached(Nonce::from_slice(&RETRY_INTEGRITY_NONCE), &aad, &mut empty)
    {
        tag.copy_from_slice(&t);
    }
    tag
}

/// Writes a Retry packet answering a client's Initial: to `client_scid`, from `retry_scid`,
/// carrying `token`, tagged for `original_dcid` (the DCID of that Initial). `unused` fills the
/// first byte's four unused bits. Returns the length written.
pub fn write_retry(
    out: &mut [u8],
    version: u32,
    client_scid: &ConnectionId,
    retry_scid: &ConnectionId,
    original_dcid: &ConnectionId,
    token: &[u8],
    unused: u8,
) -> Result<usize, BufferTooSmall> {
    let len = {
        let mut w = Writer::new(&mut *out);
        w.u8(LONG_FORM_BIT | FIXED_BIT | (RETRY_TYPE << 4) | (unused & 0x0f))?;
        w.u32(version)?;
        w.u8(client_scid.len() as u8)?;
        w.bytes(client_scid)?;
        w.u8(retry_scid.len() as u8)?;
        w.bytes(retry_scid)?;
        w.bytes(token)?;
        w.finish()
    };
    let short = BufferTooSmall {
        needed: (len + RETRY_TAG_LEN).saturating_sub(out.len()),
    };
    let tag = integrity_tag(original_dcid, out.get(..len).ok_or(short)?);
    out.get_mut(len..len + RETRY_TAG_LEN)
        .ok_or(short)?
        .copy_from_slice(&tag);
    Ok(len + RETRY_TAG_LEN)
}

/// Checks the integrity tag of the Retry `packet` (the whole packet, tag included), whose token
/// and tag lie at `token_and_tag` (the range [`super::Header::Long`] records for a Retry), for a
/// client whose first Initial went to `original_dcid`. Returns the token when the tag verifies
/// and the token is not empty (a Retry without a token is invalid).
pub fn verify_retry<'a>(
    original_dcid: &ConnectionId,
    packet: &'a [u8],
    token_and_tag: core::ops::Range<usize>,
) -> Option<&'a [u8]> {
    let tag_start = token_and_tag.end.checked_sub(RETRY_TAG_LEN)?;
    if tag_start <= token_and_tag.start || token_and_tag.end != packet.len() {
        return None;
    }
    let expected = integrity_tag(original_dcid, packet.get(..tag_start)?);
    let tag = packet.get(tag_start..)?;
    if bool::from(expected.ct_eq(tag)) {
        packet.get(token_and_tag.start..tag_start)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{header, Header, PacketKind};
    use sha2::{Digest, Sha256};

    #[test]
    fn the_fixed_key_and_nonce_are_the_documented_derivations() {
        let k = Sha256::digest(b"JSP v1 retry integrity key");
        let n = Sha256::digest(b"JSP v1 retry integrity nonce");
        assert_eq!(&k[..16], &RETRY_INTEGRITY_KEY);
        assert_eq!(&n[..12], &RETRY_INTEGRITY_NONCE);
    }

    fn cid(b: &[u8]) -> ConnectionId {
        ConnectionId::new(b).unwrap()
    }

    #[test]
    fn a_written_retry_parses_and_verifies_only_for_its_original_dcid() {
        let odcid = cid(&[7; 16]);
        let mut buf = [0u8; 256];
        let n = write_retry(
            &mut buf,
            crate::VERSION_1,
            &cid(&[1; 8]),
            &cid(&[2; 8]),
            &odcid,
            b"token!",
            0xff,
        )
        .unwrap();
        let packet = &buf[..n];
        let p = header::decode(packet, 8).unwrap();
        let Header::Long {
            kind: PacketKind::Retry,
            dcid,
            scid,
            token,
            ..
        } = p.header
        else {
            panic!("not a retry: {:?}", p.header)
        };
        assert_eq!(dcid, cid(&[1; 8]));
        assert_eq!(scid, cid(&[2; 8]));
        assert_eq!(
            verify_retry(&odcid, packet, token.clone()),
            Some(&b"token!"[..])
        );
        assert_eq!(verify_retry(&cid(&[8; 16]), packet, token.clone()), None);
        // Any flipped bit anywhere breaks the tag.
        for i in 0..n {
            for bit in 0..8 {
                let mut bad = packet.to_vec();
                bad[i] ^= 1 << bit;
                let ok = header::decode(&bad, 8).ok().and_then(|p| match p.header {
                    Header::Long {
                        kind: PacketKind::Retry,
                        token,
                        ..
                    } => verify_retry(&odcid, &bad, token),
                    _ => None,
                });
                assert_eq!(ok, None, "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn a_retry_without_a_token_is_invalid() {
        let odcid = cid(&[7; 16]);
        let mut buf = [0u8; 64];
        let n = write_retry(
            &mut buf,
            crate::VERSION_1,
            &cid(&[1; 8]),
            &cid(&[2; 8]),
            &odcid,
            b"",
            0,
        )
        .unwrap();
        let p = header::decode(&buf[..n], 8).unwrap();
        let Header::Long { token, .. } = p.header else {
            panic!()
        };
        assert_eq!(verify_retry(&odcid, &buf[..n], token), None);
    }
}
