//! Attack: hostile CBOR handshake messages sent to a live server endpoint in real, correctly
//! protected Initial packets (anyone can build those: Initial keys derive from the packet's own
//! destination ID). Deeply nested arrays and maps, an indefinite-length nesting bomb, a byte
//! string claiming 2^64 − 1 bytes, a message header declaring 16 MiB, and a stream of CRYPTO
//! data past the handshake buffer: each closes only its own connection with a typed transport
//! error, never panics, allocates no more than the configured bounds, and the endpoint keeps
//! serving a legitimate client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;

use bytes::BytesMut;
use jsp_sim::jsp_core::config::TransportConfig;
use jsp_sim::jsp_core::connection::{ConnectionError, Event};
use jsp_sim::jsp_core::crypto::schedule::{directional_keys, initial_secrets, INITIAL_SUITE};
use jsp_sim::jsp_core::crypto::Backend;
use jsp_sim::jsp_core::endpoint::DatagramEvent;
use jsp_sim::jsp_core::frame;
use jsp_sim::jsp_core::packet::PacketKind;
use jsp_sim::jsp_core::{ConnectionId, Instant, TransportErrorCode, VERSION_1};

use super::attack_harness::{events, forge_packet, Configs, Net};

/// Initial datagrams carrying `stream` as CRYPTO data from offset 0, about 1,100 bytes each.
/// With `gap`, the first chunk is never sent, so nothing is contiguous and all of it is held.
fn initial_datagrams(
    dcid: ConnectionId,
    scid: ConnectionId,
    stream: &[u8],
    gap: bool,
) -> Vec<Vec<u8>> {
    let (client, _) = initial_secrets(VERSION_1, &dcid);
    let keys = directional_keys(Backend::Auto, INITIAL_SUITE, &client);
    stream
        .chunks(1100)
        .enumerate()
        .skip(usize::from(gap))
        .map(|(i, chunk)| {
            let mut frames = vec![0u8; 1200];
            let mut w = jsp_sim::jsp_core::coding::Writer::new(&mut frames);
            frame::encode_crypto_header(&mut w, (i * 1100) as u64, chunk.len()).unwrap();
            w.bytes(chunk).unwrap();
            let n = w.position();
            frames.truncate(n);
            forge_packet(
                PacketKind::Initial,
                dcid,
                scid,
                i as u64,
                &frames,
                1200,
                &keys,
            )
        })
        .collect()
}

/// A handshake frame: type ClientHello (1), 24-bit length, body.
fn client_hello_frame(declared_len: usize, body: &[u8]) -> Vec<u8> {
    let mut m = vec![1u8];
    m.extend_from_slice(&(declared_len as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

#[test]
fn hostile_cbor_handshake_messages_close_only_their_connection_with_a_typed_error() {
    let transport = TransportConfig::default();
    let buffer_limit = transport.max_handshake_buffer;
    let configs = Configs::new(61, transport);
    // Inside the message's map, where a field value is expected.
    let mut nested_arrays = vec![0xa1u8, 0x61, b'p'];
    nested_arrays.extend_from_slice(&[0x81u8; 10_000]);
    nested_arrays.push(0x00);
    let nested_maps: Vec<u8> = std::iter::repeat_n([0xa1u8, 0x61, b'k'], 5_000)
        .flatten()
        .chain([0x00])
        .collect();
    let mut indefinite = vec![0xa1u8, 0x61, b'p'];
    indefinite.extend_from_slice(&[0x9fu8; 12_000]);
    let mut huge_bytes = vec![0xa1, 0x61, b'r', 0x5b];
    huge_bytes.extend_from_slice(&[0xff; 8]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "10,000 nested arrays",
            client_hello_frame(nested_arrays.len(), &nested_arrays),
        ),
        (
            "5,000 nested maps",
            client_hello_frame(nested_maps.len(), &nested_maps),
        ),
        (
            "indefinite-length nesting",
            client_hello_frame(indefinite.len(), &indefinite),
        ),
        (
            "byte string of 2^64-1 bytes",
            client_hello_frame(huge_bytes.len(), &huge_bytes),
        ),
        (
            "message declaring 16 MiB",
            client_hello_frame(0xff_ffff, &[0xa0; 3000]),
        ),
    ];
    let gapped = (
        "out-of-order CRYPTO past the buffer",
        vec![0xa0; buffer_limit + 20_000],
    );
    for (i, (name, stream)) in cases.iter().chain([&gapped]).enumerate() {
        let gap = *name == gapped.0;
        let mut n = Net::new(&configs, 62, None, Instant::from_millis(1));
        n.client_muted = true;
        let dcid = ConnectionId::new(&[0x40 + i as u8; 8]).unwrap();
        let scid = ConnectionId::new(&[0x70 + i as u8; 8]).unwrap();
        let datagrams = initial_datagrams(dcid, scid, stream, gap);
        let from: SocketAddr = "198.51.100.7:4444".parse().unwrap();
        let mut sent = 0u64;
        let mut conn = None;
        for d in &datagrams {
            sent += d.len() as u64;
            let now = n.now;
            match n
                .server_ep
                .handle_datagram(now, from, BytesMut::from(&d[..]))
            {
                Some(DatagramEvent::NewConnection(_, mut c, data)) => {
                    c.handle_datagram(now, from, data);
                    conn = Some(*c);
                }
                Some(DatagramEvent::Route(_, data)) => {
                    if let Some(c) = &mut conn {
                        c.handle_datagram(now, from, data);
                    }
                }
                None => {}
            }
            if conn.as_ref().is_some_and(|c| c.is_closed()) {
                break;
            }
        }
        let mut c = conn.expect("the first Initial opened a connection");
        let evs = events(&mut c);
        let error = evs.iter().find_map(|e| match e {
            Event::ConnectionLost(ConnectionError::TransportError(t)) => Some(t.clone()),
            _ => None,
        });
        let stats = c.stats();
        println!(
            "{name}: {} bytes of CRYPTO in {} datagrams ({sent} bytes); server closed: {}, \
             error {:?} {:?}; packets processed {}",
            stream.len(),
            datagrams.len(),
            c.is_closed(),
            error.as_ref().map(|e| e.code.name()),
            error.as_ref().map(|e| e.reason.clone()),
            stats.packets_received,
        );
        let error = error.unwrap_or_else(|| panic!("{name}: no typed error: {evs:?}"));
        assert!(c.is_closed());
        assert!(
            [
                TransportErrorCode::PROTOCOL_VIOLATION,
                TransportErrorCode::CRYPTO_BUFFER_EXCEEDED,
            ]
            .contains(&error.code)
                || error.code.0 >= 0x100,
            "{name}: {error:?}"
        );
        // The buffer bound: the server stopped taking data at the handshake buffer's size.
        assert!(
            stats.packets_received as usize * 1100 <= buffer_limit + 2 * 1100,
            "{name}: {} packets taken",
            stats.packets_received
        );
    }
    // The endpoint still serves a real client.
    let mut n = Net::new(&configs, 63, None, Instant::from_millis(1));
    n.handshake();
    println!("a legitimate client completes its handshake afterwards");
}
