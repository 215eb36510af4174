//! Packets as the scheduler builds them, over the pair harness: the per-packet overhead
//! documented in docs/PROTOCOL.md §3.5 measured on real sealed packets, small messages of many
//! streams coalesced into few packets, and ACKs riding in data packets. Figures are printed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::tests::{Pair, Setup};
use crate::config::EndpointConfig;
use crate::crypto::TAG_LEN;
use crate::endpoint::Endpoint;
use crate::frame::{datagram_header_len, stream_header_len};
use crate::packet::SpaceId;
use crate::rand::Rng;
use crate::time::Duration;

/// The documented figures (docs/PROTOCOL.md §3.5).
const FIRST_BYTE: usize = 1;
const PN_LEN: usize = 2;
const DEFAULT_CID_LEN: usize = 8;
const AEAD_TAG: usize = 16;

/// A pair after the handshake with nothing left to send or acknowledge on either side.
fn settled(seed: u8) -> Pair {
    let mut pair = Pair::new(&Setup::new(seed));
    pair.handshake();
    pair.run_for(Duration::from_millis(200));
    pair
}

/// Whether the client owes no acknowledgement, so that its next packet carries only what the
/// test queues. The server's last acknowledgement-only packet left `ack_new` set (an ACK would be
/// piggybacked at the end of the next packet if it has room); it is cleared here so that the
/// figures measure the other frames alone (ACK frames have their own size, §12.10).
fn quiet(pair: &mut Pair) -> bool {
    let s = &mut pair.client().spaces[SpaceId::Data.index()];
    s.ack_new = false;
    !s.ack_now && s.unacked_eliciting == 0
}

/// The sizes of the datagrams the client sends now.
fn transmit(pair: &mut Pair) -> Vec<usize> {
    let now = pair.now;
    let mut buf = vec![0u8; 1500];
    let mut sizes = Vec::new();
    while let Some(t) = pair.client().poll_transmit(now, &mut buf) {
        sizes.push(t.size);
        assert!(sizes.len() < 1000, "poll_transmit spins");
    }
    sizes
}

#[test]
fn per_packet_overhead_matches_the_documented_figures() {
    assert_eq!(TAG_LEN, AEAD_TAG);
    let mut pair = settled(71);
    let header = FIRST_BYTE + DEFAULT_CID_LEN + PN_LEN;

    // A DATAGRAM frame: type (1) + length varint, then the data.
    assert!(quiet(&mut pair));
    pair.client()
        .send_datagram(Bytes::from(vec![1u8; 100]))
        .unwrap();
    let sizes = transmit(&mut pair);
    let datagram_frame = datagram_header_len(100);
    assert_eq!(
        datagram_frame, 3,
        "1 type byte + 2-byte length for 100 bytes"
    );
    assert_eq!(sizes, [header + datagram_frame + 100 + AEAD_TAG]);
    println!(
        "overhead: short header {header} (1 + {DEFAULT_CID_LEN}-byte CID + {PN_LEN}-byte packet \
         number), AEAD tag {AEAD_TAG}; DATAGRAM of 100 bytes -> {} byte datagram \
         ({datagram_frame} bytes of frame header)",
        sizes[0]
    );

    // A STREAM frame at offset 0 of the client's first unidirectional stream: type, ID (1),
    // length (2); no offset.
    pair.run_for(Duration::from_millis(200));
    assert!(quiet(&mut pair));
    let id = pair.client().open_uni().unwrap();
    pair.client().write(id, &[2u8; 100]).unwrap();
    let sizes = transmit(&mut pair);
    let stream_frame = stream_header_len(id, 0, 100);
    assert_eq!(stream_frame, 4);
    assert_eq!(sizes, [header + stream_frame + 100 + AEAD_TAG]);
    // Further data of the stream carries its offset (2 bytes up to 16383).
    pair.run_for(Duration::from_millis(200));
    assert!(quiet(&mut pair));
    pair.client().write(id, &[3u8; 100]).unwrap();
    let later = transmit(&mut pair);
    assert_eq!(stream_header_len(id, 100, 100), 6);
    assert_eq!(later, [header + 6 + 100 + AEAD_TAG]);

    // A message: its length prefix (1 byte up to 63, 2 up to 16383) inside the stream data.
    pair.run_for(Duration::from_millis(200));
    assert!(quiet(&mut pair));
    let m = pair.client().open_uni().unwrap();
    pair.client()
        .send_message(m, Bytes::from(vec![4u8; 100]))
        .unwrap();
    let msg = transmit(&mut pair);
    assert_eq!(
        msg,
        [header + stream_header_len(m, 0, 102) + 102 + AEAD_TAG]
    );
    println!(
        "overhead: STREAM of 100 bytes at offset 0 -> {} bytes ({stream_frame} of frame header), \
         at offset 100 -> {} bytes (6); a 100-byte message on a fresh stream -> {} bytes (4 of \
         frame header + 2 of length prefix)",
        sizes[0], later[0], msg[0]
    );
}

#[test]
fn small_messages_written_at_once_go_out_in_few_full_packets() {
    let mut pair = settled(72);
    assert!(quiet(&mut pair));
    let mut frames = 0;
    for _ in 0..20 {
        let id = pair.client().open_uni().unwrap();
        for _ in 0..5 {
            pair.client()
                .send_message(id, Bytes::from(vec![5u8; 30]))
                .unwrap();
        }
        // One frame per stream: 5 × (1 + 30) bytes of stream data.
        frames += stream_header_len(id, 0, 155) + 155;
    }
    let sizes = transmit(&mut pair);
    let header = FIRST_BYTE + DEFAULT_CID_LEN + PN_LEN;
    let max = pair.client().stats().path_mtu as usize;
    let room = max - header - AEAD_TAG;
    let expected = frames.div_ceil(room);
    println!(
        "coalescing: 100 messages of 30 bytes on 20 streams ({frames} bytes of frames, {room} \
         bytes of room per packet) -> {} datagrams {sizes:?} (ceil(bytes/room) = {expected})",
        sizes.len()
    );
    // A frame cut at a packet's end repeats its header in the next packet: at most one more
    // packet than the bound.
    assert!(sizes.len() <= expected + 1, "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&s| s == max),
        "full packets"
    );
}

#[test]
fn acknowledgements_ride_in_data_packets_both_ways() {
    let mut pair = settled(73);
    let id = pair.client().open_bi().unwrap();
    pair.client().write(id, b"hello").unwrap();
    pair.run_for(Duration::from_millis(50));
    assert_eq!(pair.server().accept_bi(), Some(id));
    while let Ok(Some(_)) = pair.server().read(id, usize::MAX) {}
    let (c0, s0) = (pair.client().stats(), pair.server().stats());
    const ROUNDS: u32 = 200;
    for _ in 0..ROUNDS {
        // Both sides send 500 bytes every 5 ms (one packet each) and read what came.
        pair.client().write(id, &[6u8; 500]).unwrap();
        pair.server().write(id, &[7u8; 500]).unwrap();
        pair.run_for(Duration::from_millis(5));
        while let Ok(Some(_)) = pair.server().read(id, usize::MAX) {}
        while let Ok(Some(_)) = pair.client().read(id, usize::MAX) {}
    }
    let (c1, s1) = (pair.client().stats(), pair.server().stats());
    let client = c1.packets_sent - c0.packets_sent;
    let server = s1.packets_sent - s0.packets_sent;
    println!(
        "piggybacking: {ROUNDS} data packets' worth each way every 5 ms over a 20 ms RTT: client \
         sent {client} packets, server {server} (acknowledgement-only packets would add about \
         one per two received: {})",
        ROUNDS + ROUNDS / 2
    );
    // Every packet received is acknowledged (the data flows), yet almost no packet carries an
    // ACK alone.
    assert!(
        client <= u64::from(ROUNDS) * 11 / 10,
        "client sent {client}"
    );
    assert!(
        server <= u64::from(ROUNDS) * 11 / 10,
        "server sent {server}"
    );
    assert_eq!(c1.packets_lost, 0);
}

/// A pair whose client endpoint issues zero-length connection IDs.
fn zero_cid_pair(seed: u8) -> Pair {
    let setup = Setup::new(seed);
    let mut pair = Pair::new(&setup);
    let config = EndpointConfig {
        cid_len: 0,
        ..EndpointConfig::default()
    };
    let now = pair.now;
    pair.client_ep = Endpoint::new(Arc::new(config), None, Rng::from_seed([2; 32]), now).unwrap();
    let server: SocketAddr = "10.0.0.2:443".parse().unwrap();
    let client_config = Arc::new(setup.client_config.clone());
    pair.client = Some(
        pair.client_ep
            .connect(now, client_config.clone(), server, None)
            .unwrap(),
    );
    // One connection per endpoint: a second is refused with a clear error.
    let second = pair.client_ep.connect(now, client_config, server, None);
    assert_eq!(second.map(|_| ()).unwrap_err().field, "cid_len");
    pair
}

#[test]
fn a_client_with_zero_length_connection_ids_gets_three_byte_short_headers() {
    let mut pair = zero_cid_pair(74);
    pair.handshake();
    // Data both ways, byte-exact.
    let id = pair.client().open_bi().unwrap();
    let up: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(pair.client().write(id, &up).unwrap(), up.len());
    pair.client().finish(id).unwrap();
    let mut got = Vec::new();
    pair.drive_until(20_000, |p| {
        let _ = p.server().accept_bi();
        while let Ok(Some(c)) = p.server().read(id, usize::MAX) {
            got.extend_from_slice(&c);
        }
        got.len() == up.len()
    });
    assert_eq!(got, up);
    pair.server().write(id, b"reply").unwrap();
    pair.server().finish(id).unwrap();
    pair.drive_until(
        1_000,
        |p| matches!(p.client().read(id, 100), Ok(Some(b)) if &b[..] == b"reply"),
    );
    pair.run_for(Duration::from_millis(200));

    // Server to client: first byte + packet number, no connection ID.
    let now = pair.now;
    pair.server()
        .send_datagram(Bytes::from(vec![1u8; 100]))
        .unwrap();
    pair.server().spaces[SpaceId::Data.index()].ack_new = false;
    let mut buf = vec![0u8; 1500];
    let down = pair.server().poll_transmit(now, &mut buf).unwrap().size;
    assert_eq!(down, FIRST_BYTE + PN_LEN + 3 + 100 + AEAD_TAG);
    // Client to server: the server's 8-byte ID.
    assert!(quiet(&mut pair));
    pair.client()
        .send_datagram(Bytes::from(vec![1u8; 100]))
        .unwrap();
    let up_size = transmit(&mut pair);
    assert_eq!(
        up_size,
        [FIRST_BYTE + DEFAULT_CID_LEN + PN_LEN + 3 + 100 + AEAD_TAG]
    );
    println!(
        "zero-length client IDs: a 100-byte DATAGRAM is {down} bytes server to client (3-byte \
         short header) and {} bytes client to server (11-byte header: the server's 8-byte ID)",
        up_size[0]
    );
}

#[test]
fn zero_length_connection_ids_are_refused_for_a_server_endpoint() {
    let setup = Setup::new(75);
    let config = EndpointConfig {
        cid_len: 0,
        ..EndpointConfig::default()
    };
    let server = Endpoint::new(
        Arc::new(config),
        Some(Arc::new(setup.server_config.clone())),
        Rng::from_seed([1; 32]),
        crate::time::Instant::ZERO,
    );
    assert_eq!(server.map(|_| ()).unwrap_err().field, "cid_len");
}
