//! Forward error correction end to end over the pair harness's lossy link (virtual time, 10 ms
//! each way): a 200-byte message every 20 ms on a reliable stream, with and without FEC. What
//! each run observed is printed.

use std::sync::Arc;

use bytes::Bytes;

use super::tests::{Impairment, Pair, Setup};
use crate::config::TransportConfig;
use crate::error::TransportErrorCode;
use crate::fec::FecConfig;
use crate::frame::{Frame, StreamId};
use crate::packet::{PacketKind, SpaceId};
use crate::stream::{Delivery, DeliveryMode};
use crate::time::{Duration, Instant};

const MESSAGES: u64 = 1000;
const SIZE: usize = 200;
const INTERVAL: Duration = Duration::from_millis(20);

fn payload(index: u64) -> Bytes {
    let mut v = vec![0u8; SIZE];
    v[..8].copy_from_slice(&index.to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(8) {
        *b = (index as usize * 3 + i) as u8;
    }
    Bytes::from(v)
}

fn setup(seed: u8, client_fec: bool, server_fec: bool) -> Setup {
    let mut setup = Setup::new(seed);
    let with = |on: bool| {
        Arc::new(TransportConfig {
            fec: on.then(FecConfig::default),
            ..TransportConfig::default()
        })
    };
    setup.client_config.transport = with(client_fec);
    setup.server_config.transport = with(server_fec);
    setup
}

/// What one run observed.
#[derive(Debug)]
struct Outcome {
    delivered: u64,
    client: super::ConnectionStats,
    server: super::ConnectionStats,
    stream_retransmitted: u64,
}

/// `MESSAGES` messages on a reliable stream through a link losing `loss` of the datagrams
/// both ways; every message must arrive, in order and intact.
fn run(loss: f64, seed: u8, client_fec: bool, server_fec: bool) -> Outcome {
    let setup = setup(seed, client_fec, server_fec);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.impair = Impairment::new(loss, 0.0, 0.0, seed);
    let id = pair.client().open_uni_with(DeliveryMode::Reliable).unwrap();
    let mut server_stream: Option<StreamId> = None;
    let mut delivered = 0u64;
    let mut ended = false;
    let mut drain = |pair: &mut Pair, delivered: &mut u64, ended: &mut bool| {
        let server = pair.server();
        if server_stream.is_none() {
            server_stream = server.accept_uni();
        }
        let Some(sid) = server_stream else { return };
        loop {
            match server.recv_message(sid) {
                Ok(Some(Delivery::Message(m))) => {
                    assert_eq!(
                        m,
                        payload(*delivered),
                        "message {delivered} intact, in order"
                    );
                    *delivered += 1;
                }
                Ok(Some(Delivery::Skipped(_))) => panic!("a reliable stream skipped"),
                Ok(None) => {
                    *ended = true;
                    return;
                }
                Err(_) => return,
            }
        }
    };
    let start = pair.now;
    for i in 0..MESSAGES {
        let at = start + INTERVAL * i as u32;
        pair.run_for(at - pair.now);
        drain(&mut pair, &mut delivered, &mut ended);
        pair.now = pair.now.max(at);
        let now = pair.now;
        pair.client().handle_timeout(now);
        pair.client().send_message(id, payload(i)).unwrap();
    }
    pair.client().finish(id).unwrap();
    for _ in 0..200_000 {
        drain(&mut pair, &mut delivered, &mut ended);
        if ended || !pair.step() {
            break;
        }
    }
    assert!(ended, "the stream ended");
    let stream_retransmitted = pair
        .client()
        .stream_send_stats(id)
        .unwrap_or_default()
        .retransmitted_bytes;
    Outcome {
        delivered,
        client: pair.client().stats(),
        server: pair.server().stats(),
        stream_retransmitted,
    }
}

#[test]
fn reliable_with_fec_at_five_percent_loss_delivers_everything_with_fewer_retransmissions() {
    let (mut plain_total, mut fec_total) = (0u64, 0u64);
    for seed in [1u8, 2, 3, 4, 5, 6] {
        let plain = run(0.05, seed, false, false);
        let fec = run(0.05, seed, true, true);
        assert_eq!(plain.delivered, MESSAGES);
        assert_eq!(fec.delivered, MESSAGES);
        println!(
            "seed {seed}, 5% loss: reliable alone retransmitted {} B ({} packets lost); with FEC \
             {} B ({} packets lost, {} rebuilt by the server, {} reported to the client, {} \
             repair symbols = {} B for {} protected packets, loss estimate {:.2}%)",
            plain.stream_retransmitted,
            plain.client.packets_lost,
            fec.stream_retransmitted,
            fec.client.packets_lost,
            fec.server.fec_packets_recovered,
            fec.client.fec_packets_repaired_by_peer,
            fec.client.fec_repair_symbols_sent,
            fec.client.fec_repair_bytes_sent,
            fec.client.fec_packets_protected,
            fec.client.fec_loss_estimate_ppm as f64 / 1e4,
        );
        assert!(fec.server.fec_packets_recovered > 0, "FEC rebuilt packets");
        assert!(
            fec.client.fec_packets_repaired_by_peer > 0,
            "the sender learned of the repairs"
        );
        plain_total += plain.stream_retransmitted;
        fec_total += fec.stream_retransmitted;
    }
    println!("total retransmitted: reliable alone {plain_total} B, with FEC {fec_total} B");
    assert!(
        fec_total < plain_total,
        "FEC saves retransmissions: {fec_total} vs {plain_total}"
    );
}

/// A bulk upload of `len` bytes on one reliable stream through a link losing `loss` both
/// ways; returns the client's and server's stats once the server read everything, intact.
fn bulk(
    len: usize,
    loss: f64,
    seed: u8,
    fec: bool,
) -> (super::ConnectionStats, super::ConnectionStats) {
    let setup = setup(seed, fec, fec);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.impair = Impairment::new(loss, 0.0, 0.0, seed);
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let id = pair.client().open_uni().unwrap();
    let (mut written, mut finished) = (0usize, false);
    let mut got: Vec<u8> = Vec::with_capacity(len);
    let mut server_stream = None;
    let mut ended = false;
    for _ in 0..2_000_000 {
        if written < len {
            written += pair.client().write(id, &data[written..]).unwrap();
        } else if !finished {
            pair.client().finish(id).unwrap();
            finished = true;
        }
        let server = pair.server();
        if server_stream.is_none() {
            server_stream = server.accept_uni();
        }
        if let Some(sid) = server_stream {
            loop {
                match server.read(sid, usize::MAX) {
                    Ok(Some(b)) => got.extend_from_slice(&b),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if ended || !pair.step() {
            break;
        }
    }
    assert!(ended, "the upload ended");
    assert!(got == data, "the upload arrived intact");
    (pair.client().stats(), pair.server().stats())
}

#[test]
fn bulk_reliable_with_fec_at_five_percent_loss_retransmits_less() {
    let (mut plain_total, mut fec_total) = (0u64, 0u64);
    for seed in [11u8, 12, 13, 14] {
        let (plain, _) = bulk(512 * 1024, 0.05, seed, false);
        let (fec, server) = bulk(512 * 1024, 0.05, seed, true);
        println!(
            "bulk 512 KiB, seed {seed}, 5% loss: reliable alone retransmitted {} B ({} packets \
             lost); with FEC {} B ({} packets lost, {} rebuilt by the server, {} repair symbols \
             = {} B of packets, {} of {} packets protected)",
            plain.retransmitted_bytes,
            plain.packets_lost,
            fec.retransmitted_bytes,
            fec.packets_lost,
            server.fec_packets_recovered,
            fec.fec_repair_symbols_sent,
            fec.fec_repair_wire_bytes,
            fec.fec_packets_protected,
            fec.packets_sent,
        );
        assert!(server.fec_packets_recovered > 0);
        plain_total += plain.retransmitted_bytes;
        fec_total += fec.retransmitted_bytes;
    }
    println!("bulk total retransmitted: reliable alone {plain_total} B, with FEC {fec_total} B");
    assert!(
        fec_total < plain_total,
        "FEC saves retransmissions: {fec_total} vs {plain_total}"
    );
}

#[test]
fn fec_on_a_clean_link_sends_no_repair_bytes() {
    let out = run(0.0, 7, true, true);
    println!(
        "0% loss, FEC negotiated: client repair bytes {}, protected packets {}; server repair \
         bytes {}; loss estimate {} ppm",
        out.client.fec_repair_bytes_sent,
        out.client.fec_packets_protected,
        out.server.fec_repair_bytes_sent,
        out.client.fec_loss_estimate_ppm
    );
    assert_eq!(out.delivered, MESSAGES);
    assert_eq!(out.client.fec_repair_bytes_sent, 0);
    assert_eq!(out.client.fec_packets_protected, 0);
    assert_eq!(out.server.fec_repair_bytes_sent, 0);
}

#[test]
fn fec_is_off_when_the_peer_does_not_announce_it() {
    let out = run(0.05, 8, true, false);
    println!(
        "client with FEC, server without, 5% loss: client repair bytes {}, server rebuilt {}",
        out.client.fec_repair_bytes_sent, out.server.fec_packets_recovered
    );
    assert_eq!(out.delivered, MESSAGES);
    assert_eq!(out.client.fec_repair_bytes_sent, 0);
    assert_eq!(out.server.fec_packets_recovered, 0);
}

/// Feeds `frame` to the server as the payload of its 1-RTT packet `pn`.
fn feed(pair: &mut Pair, pn: u64, frame: Frame<'_>) -> Result<bool, crate::error::TransportError> {
    let mut buf = vec![0u8; 2048];
    let mut w = crate::coding::Writer::new(&mut buf);
    frame.encode(&mut w).unwrap();
    let n = w.position();
    buf.truncate(n);
    let now = pair.now;
    let server = pair.server();
    server.rx_pn = pn;
    server.process_frames(now, SpaceId::Data, PacketKind::Short, &Bytes::from(buf))
}

#[test]
fn hostile_repair_frames_are_typed_protocol_errors() {
    let s = setup(9, true, true);
    let mut pair = Pair::new(&s);
    pair.handshake();
    let sym = [7u8; 100];
    let cases: [(u64, Frame<'_>, &str); 5] = [
        (
            50,
            Frame::FecRepair {
                block: 10,
                sources: 65,
                symbol: 70,
                data: &sym,
            },
            "FEC block of 65 source packets",
        ),
        (
            50,
            Frame::FecRepair {
                block: (1 << 62) - 3,
                sources: 8,
                symbol: 8,
                data: &sym,
            },
            "FEC block reaches past its repair packet",
        ),
        (
            50,
            Frame::FecRepair {
                block: 45,
                sources: 8,
                symbol: 8,
                data: &sym,
            },
            "FEC block reaches past its repair packet",
        ),
        (
            50,
            Frame::FecRepair {
                block: 10,
                sources: 8,
                symbol: 8,
                data: &sym[..2],
            },
            "FEC repair symbol of 2 bytes",
        ),
        (
            50,
            Frame::FecRepair {
                block: 10,
                sources: 8,
                symbol: 1 << 40,
                data: &sym,
            },
            "is not a repair ID",
        ),
    ];
    for (pn, frame, want) in cases {
        let err = feed(&mut pair, pn, frame).unwrap_err();
        println!("hostile FEC_REPAIR -> {:?}: {}", err.code, err.reason);
        assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert!(err.reason.contains(want), "{}", err.reason);
    }
    // A block too old to decode is ignored, not an error.
    let ok = feed(
        &mut pair,
        100_000,
        Frame::FecRepair {
            block: 10,
            sources: 8,
            symbol: 8,
            data: &sym,
        },
    );
    assert!(ok.is_ok());
    // A peer that did not announce FEC must not get repair frames.
    let s = setup(10, true, false);
    let mut pair = Pair::new(&s);
    pair.handshake();
    let err = feed(
        &mut pair,
        50,
        Frame::FecRepair {
            block: 10,
            sources: 8,
            symbol: 8,
            data: &sym,
        },
    )
    .unwrap_err();
    println!(
        "FEC_REPAIR without negotiation -> {:?}: {}",
        err.code, err.reason
    );
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    let _ = Instant::ZERO;
}

/// The latency profile: a lone request-sized packet, lost, with nothing sent after it (no
/// later packet whose ACK could reveal the loss), is rebuilt from the repair symbol its block
/// gets when it closes `max_block_delay` later, acknowledged as received, and never
/// retransmitted.
#[test]
fn the_latency_profile_rebuilds_a_lost_lone_packet_without_a_retransmission() {
    let mut setup = Setup::new(31);
    let config = Arc::new(TransportConfig {
        fec: Some(FecConfig {
            always_on: true,
            ..FecConfig::latency()
        }),
        ..TransportConfig::default()
    });
    setup.client_config.transport = config.clone();
    setup.server_config.transport = config;
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let delay = FecConfig::latency().max_block_delay.unwrap();
    let id = pair.client().open_uni_with(DeliveryMode::Reliable).unwrap();
    // A first message, delivered with its repair symbol: from then on the server keeps copies
    // of the packets it receives.
    let now = pair.now;
    pair.client().handle_timeout(now);
    pair.client().write(id, &payload(0)).unwrap();
    pair.run_for(Duration::from_millis(200));
    // The lone packet, lost.
    pair.blackhole = Some(super::tests::server_addr());
    let sent_at = pair.now;
    pair.client().handle_timeout(sent_at);
    pair.client().write(id, &payload(1)).unwrap();
    pair.run_for(Duration::from_millis(1));
    pair.blackhole = None;
    let mut got = Vec::new();
    let mut arrived = None;
    for _ in 0..10_000 {
        while let Ok(Some(chunk)) = pair.server().read(id, usize::MAX) {
            got.extend_from_slice(&chunk);
        }
        if got.len() == 2 * SIZE {
            arrived = Some(pair.now);
            break;
        }
        if !pair.step() {
            break;
        }
    }
    let arrived = arrived.expect("both messages arrived");
    let (client, server) = (pair.client().stats(), pair.server().stats());
    println!(
        "latency profile (block delay {delay:?}), rtt {:?}: the lost packet arrived {:?} after \
         it was sent; server rebuilt {} packet(s); client: {} repair symbols, {} B \
         retransmitted, {} packets declared lost",
        client.rtt,
        arrived - sent_at,
        server.fec_packets_recovered,
        client.fec_repair_symbols_sent,
        client.retransmitted_bytes,
        client.packets_lost
    );
    assert_eq!(&got[SIZE..], &payload(1)[..]);
    assert_eq!(
        server.fec_packets_recovered, 1,
        "rebuilt from the repair symbol"
    );
    assert_eq!(client.retransmitted_bytes, 0, "never retransmitted");
    assert_eq!(
        client.packets_lost, 0,
        "the rebuilt packet was acknowledged in time"
    );
}
