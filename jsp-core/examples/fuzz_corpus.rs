//! Generates the fuzz targets' seed corpora from real traffic, deterministically from a seed:
//!
//! ```text
//! cargo run -p jsp-core --features fuzzing --example fuzz_corpus -- [--seed N] [--out fuzz/corpus]
//! ```
//!
//! Two sessions are captured:
//! - a client with real cryptography handshaking with the `server_endpoint` target's own server
//!   ([`ServerHarness`], fixed identity and clock), then exchanging streams and datagrams. The
//!   server is deterministic, so the recorded client datagrams replay through the target
//!   exactly and reach past the handshake. These datagrams also seed `packet_header`.
//! - an [`EstablishedPair`] session (null cipher, so payloads are readable): handshake, streams
//!   both ways, datagrams, a key update and a close. Every packet's decrypted payload seeds
//!   `frame_decode`; the 1-RTT payloads, as injection records, seed `established_connection`;
//!   the handshake messages reassembled from the CRYPTO frames seed `handshake_message`.
//!
//! Files are named by the BLAKE3 hash of their content; existing files are left alone.
#![allow(clippy::expect_used)] // a generator that cannot write its output should stop loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use jsp_core::config::{ClientConfig, EndpointConfig};
use jsp_core::crypto::{Backend, CipherSuite};
use jsp_core::endpoint::{DatagramEvent, Endpoint};
use jsp_core::frame::{self, Frame};
use jsp_core::fuzzing::{self, EstablishedPair, ServerHarness};
use jsp_core::handshake::HandshakeMessage;
use jsp_core::packet::{self, Header, PacketKind};
use jsp_core::rand::Rng;
use jsp_core::time::Duration;

/// The connection-ID length of every endpoint here (the default).
const CID_LEN: usize = 8;
/// Largest `server_endpoint` and `established_connection` corpus file (fuzz/run.sh runs with
/// `-max_len=8192`, which would cut longer ones).
const MAX_SEQUENCE: usize = 8 << 10;

struct Corpus {
    root: PathBuf,
    written: BTreeMap<&'static str, (usize, usize)>,
}

impl Corpus {
    fn add(&mut self, target: &'static str, data: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        let name = blake3::hash(data).to_hex();
        let path = dir.join(&name.as_str()[..16]);
        if !path.exists() {
            std::fs::write(&path, data).expect("write a corpus file");
            let e = self.written.entry(target).or_default();
            e.0 += 1;
            e.1 += data.len();
        }
    }
}

fn main() {
    let mut seed = 1u8;
    let mut out = PathBuf::from("fuzz/corpus");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--seed", Some(v)) => seed = v.parse().expect("--seed takes 0..=255"),
            ("--out", Some(v)) => out = PathBuf::from(v),
            _ => {
                eprintln!("usage: fuzz_corpus [--seed N] [--out DIR]");
                std::process::exit(2);
            }
        }
    }
    let mut corpus = Corpus {
        root: out,
        written: BTreeMap::new(),
    };
    server_session(seed, &mut corpus);
    pair_session(seed, &mut corpus);
    for (target, (files, bytes)) in &corpus.written {
        println!("{target}: {files} new files, {bytes} bytes");
    }
    print_totals(&corpus.root);
}

fn print_totals(root: &Path) {
    let mut total = 0u64;
    for dir in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            total += f.metadata().map_or(0, |m| m.len());
        }
    }
    println!("corpus total: {total} bytes in {}", root.display());
}

/// A real client against the `server_endpoint` target's server, recorded as that target's input.
fn server_session(seed: u8, corpus: &mut Corpus) {
    let mut server = ServerHarness::new();
    let source_byte = 1u8;
    let source = fuzzing::source_address(source_byte);
    let mut rng = Rng::from_seed([seed; 32]);
    let mut client_ep = Endpoint::new(
        Arc::new(EndpointConfig::default()),
        None,
        rng.fork(),
        server.now,
    )
    .expect("default endpoint config");
    let config = Arc::new(ClientConfig::pinned(ServerHarness::identity().public()));
    // The target's server listens on whatever address the client names: one is as good as any.
    let server_addr = "192.0.2.2:443".parse().expect("address");
    let (handle, mut client) = client_ep
        .connect(server.now, config, server_addr, None)
        .expect("client config");
    let mut records = Vec::new();
    let mut buf = vec![0u8; fuzzing::MAX_DATAGRAM];
    let mut sent_data = false;
    let mut steps = 0;
    while records.len() + 3 + fuzzing::MAX_DATAGRAM <= MAX_SEQUENCE && steps < 400 {
        steps += 1;
        if client.is_handshake_complete() && !sent_data {
            sent_data = true;
            let msg = vec![seed; 300 + usize::from(seed) * 7];
            if let Some(id) = client.open_bi() {
                let _ = client.write(id, &msg);
                let _ = client.finish(id);
            }
            let _ = client.send_datagram(bytes::Bytes::from(msg[..100].to_vec()));
        }
        let now = server.now;
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        // One client datagram per record, or an empty record to let the clock run.
        let datagram = match client.poll_transmit(now, &mut buf) {
            Some(t) => buf[..t.size].to_vec(),
            None => Vec::new(),
        };
        if !datagram.is_empty() {
            let mut framed = vec![CID_LEN as u8];
            framed.extend_from_slice(&datagram);
            corpus.add("packet_header", &framed);
            if records.is_empty() {
                // The first Initial alone: the most common start of any input.
                let mut first = Vec::new();
                fuzzing::server_endpoint_record(source_byte, &datagram, &mut first);
                corpus.add("server_endpoint", &first);
            }
        }
        fuzzing::server_endpoint_record(source_byte, &datagram, &mut records);
        for (to, answer) in server.feed(source, &datagram) {
            assert_eq!(to, source, "the server answers the client only");
            let mut framed = vec![CID_LEN as u8];
            framed.extend_from_slice(&answer);
            corpus.add("packet_header", &framed);
            let now = server.now;
            if let Some(DatagramEvent::Route(h, d)) =
                client_ep.handle_datagram(now, server_addr, BytesMut::from(&answer[..]))
            {
                if h == handle {
                    client.handle_datagram(now, server_addr, d);
                }
            }
        }
        while client.poll_event().is_some() {}
        while let Some(e) = client.poll_endpoint_event() {
            client_ep.handle_event(handle, e);
        }
        if sent_data
            && client.stats().packets_received > 8
            && client.poll_transmit(server.now, &mut buf).is_none()
        {
            break;
        }
    }
    assert!(
        client.is_handshake_complete(),
        "the recorded client did not complete its handshake with the target's server"
    );
    // The recording must replay through the target itself, to the same established connection.
    fuzzing::server_endpoint(&records);
    let mut replay = ServerHarness::new();
    let mut rest = &records[..];
    while let [source, hi, lo, body @ ..] = rest {
        let (datagram, next) = body.split_at(usize::from(u16::from_be_bytes([*hi, *lo])));
        replay.feed(fuzzing::source_address(*source), datagram);
        rest = next;
    }
    assert_eq!(
        replay.established(),
        1,
        "the recording does not replay to an established connection"
    );
    corpus.add("server_endpoint", &records);
    println!(
        "server_endpoint session: {} bytes of records, {} server connection(s), replayed to {} established",
        records.len(),
        server.connections(),
        replay.established()
    );
}

/// The decrypted payloads of every packet in a null-cipher datagram, with their packet kinds.
fn payloads(datagram: &[u8]) -> Vec<(PacketKind, Vec<u8>)> {
    let key = Backend::Null.packet_key(CipherSuite::ChaCha20Poly1305, &[0; 32], &[0; 12]);
    let hp = Backend::Null.header_key(CipherSuite::ChaCha20Poly1305, &[0; 32]);
    let mut data = datagram.to_vec();
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let Ok(partial) = packet::decode(&data[offset..], CID_LEN) else {
            break;
        };
        let kind = match &partial.header {
            Header::Long { kind, .. } => *kind,
            Header::Short { .. } => PacketKind::Short,
            _ => break,
        };
        let end = (offset + partial.len.max(1)).min(data.len());
        let pkt = &mut data[offset..end];
        if let Ok(un) = packet::unprotect_header(pkt, &partial, &*hp, None) {
            if let Ok(range) = packet::open(pkt, &un, &*key) {
                out.push((kind, pkt[range].to_vec()));
            }
        }
        offset = end;
    }
    out
}

/// A whole session between an established pair, captured and cut into the three corpora.
fn pair_session(seed: u8, corpus: &mut Corpus) {
    let mut pair = EstablishedPair::new(seed, true);
    for round in 0..4usize {
        pair.application_sends(200 + round * 500 + usize::from(seed));
        pair.flush();
        pair.advance(Duration::from_millis(40));
        if round == 1 {
            pair.client().initiate_key_update();
        }
    }
    let now = pair.now;
    pair.client().close(now, 7, b"done");
    pair.settle(16);
    let captured = pair.capture.take().unwrap_or_default();
    // CRYPTO streams per (direction, packet kind), reassembled by offset.
    let mut crypto: BTreeMap<(bool, u8), BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
    let mut sequence = Vec::new();
    for c in &captured {
        for (kind, payload) in payloads(&c.data) {
            corpus.add("frame_decode", &payload);
            if kind == PacketKind::Short {
                let mut one = Vec::new();
                fuzzing::established_connection_record(u8::from(c.from_client), &payload, &mut one);
                corpus.add("established_connection", &one);
                if sequence.len() + one.len() <= MAX_SEQUENCE {
                    sequence.extend_from_slice(&one);
                }
            }
            for f in frame::iter(&payload).flatten() {
                if let Frame::Crypto { offset, data } = f {
                    crypto
                        .entry((c.from_client, kind as u8))
                        .or_default()
                        .insert(offset, data.to_vec());
                }
            }
        }
    }
    corpus.add("established_connection", &sequence);
    let mut messages = 0;
    for chunks in crypto.values() {
        let mut stream = Vec::new();
        for (offset, data) in chunks {
            let at = usize::try_from(*offset).unwrap_or(usize::MAX);
            if at <= stream.len() {
                let skip = stream.len() - at;
                stream.extend_from_slice(data.get(skip..).unwrap_or_default());
            }
        }
        let mut rest = &stream[..];
        while let Ok(Some((_, n))) = HandshakeMessage::decode(rest) {
            corpus.add("handshake_message", &rest[..n]);
            messages += 1;
            rest = &rest[n..];
        }
    }
    println!(
        "pair session: {} datagrams, {} handshake messages",
        captured.len(),
        messages
    );
}
