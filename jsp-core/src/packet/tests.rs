//! Packet-layer tests: header round trips, protection, coalescing, malformed input.

use proptest::prelude::*;

use super::*;
use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::crypto::{Backend, CipherSuite};

fn keys(suite: CipherSuite, backend: Backend) -> (Box<dyn PacketKey>, Box<dyn HeaderKey>) {
    (
        backend.packet_key(suite, &[7; 32], &[9; 12]),
        backend.header_key(suite, &[3; 32]),
    )
}

/// Builds one sealed packet carrying `payload` and returns its bytes.
fn build(
    spec: &HeaderSpec<'_>,
    payload: &[u8],
    key: &dyn PacketKey,
    hp: &dyn HeaderKey,
) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut w = Writer::new(&mut buf);
    let hdr = header::write(&mut w, spec).unwrap();
    w.bytes(payload).unwrap();
    let pad = min_payload_len(hdr.pn_len).saturating_sub(payload.len());
    w.zeros(pad + TAG_LEN).unwrap();
    let len = w.finish();
    buf.truncate(len);
    seal(&mut buf, &hdr, spec.pn, key, hp).unwrap();
    buf
}

fn spec(kind: PacketKind, pn: u64, pn_len: usize) -> HeaderSpec<'static> {
    HeaderSpec {
        kind,
        version: crate::VERSION_1,
        dcid: ConnectionId::new(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
        scid: ConnectionId::new(&[9, 9, 9]).unwrap(),
        token: b"tok",
        pn,
        pn_len,
        key_phase: true,
        spin: false,
    }
}

fn open_one(
    packet: &mut [u8],
    key: &dyn PacketKey,
    hp: &dyn HeaderKey,
    largest: Option<u64>,
) -> Result<(PartialDecode, Unprotected, Vec<u8>), ProtectError> {
    let partial = decode(packet, 8).expect("header parses");
    let packet = &mut packet[..partial.len];
    let un = unprotect_header(packet, &partial, hp, largest)?;
    let range = open(packet, &un, key)?;
    Ok((partial, un, packet[range].to_vec()))
}

#[test]
fn every_kind_and_suite_round_trips_through_both_backends() {
    for suite in CipherSuite::ALL {
        for kind in [
            PacketKind::Initial,
            PacketKind::ZeroRtt,
            PacketKind::Handshake,
            PacketKind::Short,
        ] {
            for (seal_with, open_with) in [
                (Backend::RustCrypto, Backend::Auto),
                (Backend::Auto, Backend::RustCrypto),
            ] {
                let (k1, h1) = keys(suite, seal_with);
                let (k2, h2) = keys(suite, open_with);
                let mut pkt = build(&spec(kind, 1000, 2), b"hello frames", &*k1, &*h1);
                let (partial, un, plain) = open_one(&mut pkt, &*k2, &*h2, Some(999)).unwrap();
                assert_eq!(partial.kind(), Some(kind));
                assert_eq!(un.pn, 1000);
                assert_eq!(plain, b"hello frames");
                assert_eq!(un.key_phase, kind == PacketKind::Short);
                if let Header::Long { token, .. } = &partial.header {
                    if kind == PacketKind::Initial {
                        assert_eq!(&pkt[token.clone()], b"tok");
                    }
                }
            }
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_authentication() {
    let (k, h) = keys(CipherSuite::Aes256Gcm, Backend::Auto);
    let pkt = build(
        &spec(PacketKind::Short, 5, 1),
        b"some payload bytes",
        &*k,
        &*h,
    );
    for i in 0..pkt.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = pkt.clone();
            bad[i] ^= bit;
            let Ok(partial) = decode(&bad, 8) else {
                continue;
            };
            let bad = &mut bad[..partial.len];
            let result = unprotect_header(bad, &partial, &*h, Some(4))
                .and_then(|un| open(bad, &un, &*k).map(|_| ()));
            assert!(result.is_err(), "bit {bit:#x} of byte {i} went unnoticed");
        }
    }
}

#[test]
fn coalesced_packets_are_walked_by_their_lengths() {
    let (k, h) = keys(CipherSuite::ChaCha20Poly1305, Backend::Auto);
    let mut datagram = build(&spec(PacketKind::Initial, 0, 1), b"first", &*k, &*h);
    datagram.extend(build(
        &spec(PacketKind::Handshake, 1, 1),
        b"second",
        &*k,
        &*h,
    ));
    datagram.extend(build(&spec(PacketKind::Short, 2, 1), b"third", &*k, &*h));
    let mut rest = &mut datagram[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let partial = decode(rest, 8).unwrap();
        let (packet, tail) = rest.split_at_mut(partial.len);
        let un = unprotect_header(packet, &partial, &*h, None).unwrap();
        let range = open(packet, &un, &*k).unwrap();
        seen.push(packet[range].to_vec());
        rest = tail;
    }
    assert_eq!(
        seen,
        vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
}

#[test]
fn version_negotiation_lists_versions() {
    let mut buf = [0u8; 64];
    let dcid = ConnectionId::new(&[1; 8]).unwrap();
    let scid = ConnectionId::new(&[2; 4]).unwrap();
    let n = header::write_version_negotiation(
        &mut buf,
        &dcid,
        &scid,
        &[crate::VERSION_1, 0x0a0a_0a0a],
        0x55,
    )
    .unwrap();
    let partial = decode(&buf[..n], 8).unwrap();
    match partial.header {
        Header::VersionNegotiation {
            dcid: d,
            scid: s,
            versions,
        } => {
            assert_eq!(d, scid);
            assert_eq!(s, dcid);
            assert_eq!(
                header::versions(&buf[..n], versions).collect::<Vec<_>>(),
                vec![crate::VERSION_1, 0x0a0a_0a0a]
            );
        }
        other => panic!("expected version negotiation, got {other:?}"),
    }
}

#[test]
fn malformed_headers_get_typed_errors() {
    let (k, h) = keys(CipherSuite::Aes256Gcm, Backend::Auto);
    let good = build(&spec(PacketKind::Initial, 0, 1), b"payload", &*k, &*h);
    // Every truncation inside the header is a Truncated or BadLength error, never a panic.
    for cut in 0..good.len() {
        match decode(&good[..cut], 8) {
            Err(HeaderError::Truncated | HeaderError::BadLength) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let mut no_fixed = good.clone();
    no_fixed[0] &= !header::FIXED_BIT;
    assert_eq!(decode(&no_fixed, 8), Err(HeaderError::FixedBitClear));
    let mut long_cid = good.clone();
    long_cid[5] = 21;
    assert_eq!(
        decode(&long_cid, 8),
        Err(HeaderError::ConnectionIdTooLong(21))
    );
    let mut bad_vn = vec![0x80, 0, 0, 0, 0, 0, 0, 1, 2];
    assert_eq!(decode(&bad_vn, 8), Err(HeaderError::BadVersionList));
    bad_vn.truncate(7);
    assert_eq!(decode(&bad_vn, 8), Err(HeaderError::BadVersionList));
    assert_eq!(decode(&[0x40, 1, 2], 8), Err(HeaderError::Truncated));
    // A wrong version parses (the endpoint answers with version negotiation).
    let mut other_version = good.clone();
    other_version[1..5].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    assert!(matches!(
        decode(&other_version, 8).unwrap().header,
        Header::UnknownVersion {
            version: 0x1234_5678,
            ..
        }
    ));
    // Even with a first byte the version-1 layout would reject.
    other_version[0] &= !header::FIXED_BIT;
    assert!(matches!(
        decode(&other_version, 8).unwrap().header,
        Header::UnknownVersion { .. }
    ));
}

#[test]
fn packets_too_short_to_sample_are_refused() {
    let (_, h) = keys(CipherSuite::Aes256Gcm, Backend::Auto);
    let mut tiny = vec![0x40u8; 8 + 1 + 10];
    let partial = decode(&tiny, 8).unwrap();
    assert_eq!(
        unprotect_header(&mut tiny, &partial, &*h, None),
        Err(ProtectError::TooShortToSample)
    );
}

proptest! {
    #[test]
    fn headers_round_trip(
        kind in prop_oneof![Just(PacketKind::Initial), Just(PacketKind::ZeroRtt), Just(PacketKind::Handshake), Just(PacketKind::Short)],
        pn in 0u64..(1 << 40), pn_len in 1usize..=4, dcid_len in 0usize..=20, scid_len in 0usize..=20,
        token in proptest::collection::vec(any::<u8>(), 0..64), payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let (k, h) = keys(CipherSuite::ChaCha20Poly1305, Backend::Auto);
        let s = HeaderSpec { kind, version: crate::VERSION_1, dcid: ConnectionId::new(&vec![0xab; dcid_len]).unwrap(), scid: ConnectionId::new(&vec![0xcd; scid_len]).unwrap(), token: &token, pn, pn_len, key_phase: false, spin: true };
        let mut pkt = build(&s, &payload, &*k, &*h);
        let partial = decode(&pkt, dcid_len).unwrap();
        prop_assert_eq!(partial.len, pkt.len());
        prop_assert_eq!(partial.dcid(), &s.dcid);
        let un = unprotect_header(&mut pkt, &partial, &*h, pn.checked_sub(1)).unwrap();
        prop_assert_eq!(un.pn, pn);
        let range = open(&mut pkt, &un, &*k).unwrap();
        prop_assert_eq!(&pkt[range.clone()][..payload.len()], &payload[..]);
        if let Header::Long { scid, token: t, .. } = &partial.header {
            prop_assert_eq!(scid, &s.scid);
            if kind == PacketKind::Initial { prop_assert_eq!(&pkt[t.clone()], &token[..]); }
        }
    }

    #[test]
    fn arbitrary_datagrams_never_panic_the_parser(data in proptest::collection::vec(any::<u8>(), 0..200), cid_len in 0usize..=20) {
        let (k, h) = keys(CipherSuite::Aes256Gcm, Backend::Auto);
        let mut data = data;
        if let Ok(partial) = decode(&data, cid_len) {
            prop_assert!(partial.len <= data.len());
            let packet = &mut data[..partial.len];
            if let Ok(un) = unprotect_header(packet, &partial, &*h, None) {
                prop_assert!(open(packet, &un, &*k).is_err());
            }
        }
    }
}
