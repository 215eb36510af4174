//! Attacks on address-validation tokens, directly on a server endpoint: a Retry token replayed
//! from another address, an expired one, and every single-bit change of one are all refused —
//! no connection, an INVALID_TOKEN close instead — while the genuine one is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jsp_sim::jsp_core::config::{AddressValidation, ClientConfig, EndpointConfig, ServerConfig};
use jsp_sim::jsp_core::connection::Connection;
use jsp_sim::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_sim::jsp_core::endpoint::{DatagramEvent, Endpoint};
use jsp_sim::jsp_core::packet::{self, Header, PacketKind};
use jsp_sim::jsp_core::rand::Rng;
use jsp_sim::jsp_core::session::ServerResumption;
use jsp_sim::jsp_core::{Duration, Instant};

const SERVER: &str = "10.0.0.1:443";
const CLIENT: &str = "10.1.0.1:50000";

struct World {
    server: Endpoint,
    client: Connection,
}

fn world() -> World {
    let mut rng = Rng::from_seed([1; 32]);
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    server_config.address_validation = AddressValidation::Always;
    let server = Endpoint::new(
        Arc::new(EndpointConfig::default()),
        Some(Arc::new(server_config)),
        Rng::from_seed([2; 32]),
        Instant::ZERO,
    )
    .unwrap();
    let mut client_ep = Endpoint::new(
        Arc::new(EndpointConfig::default()),
        None,
        Rng::from_seed([3; 32]),
        Instant::ZERO,
    )
    .unwrap();
    let (_, client) = client_ep
        .connect(
            Instant::ZERO,
            Arc::new(ClientConfig::pinned(identity.public())),
            SERVER.parse().unwrap(),
            None,
        )
        .unwrap();
    World { server, client }
}

fn transmits(f: impl FnMut(&mut [u8]) -> Option<usize>) -> Vec<Vec<u8>> {
    let mut f = f;
    let mut buf = vec![0u8; 1500];
    std::iter::from_fn(|| f(&mut buf).map(|n| buf[..n].to_vec())).collect()
}

/// The client's Initial after it followed the server's Retry: (datagram, token range in it).
fn initial_with_token(w: &mut World, now: Instant) -> (Vec<u8>, core::ops::Range<usize>) {
    let client: SocketAddr = CLIENT.parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    let flight = transmits(|b| w.client.poll_transmit(now, b).map(|t| t.size));
    let first = flight.first().expect("first flight").clone();
    assert!(w
        .server
        .handle_datagram(now, client, BytesMut::from(&first[..]))
        .is_none());
    let retry = transmits(|b| w.server.poll_transmit(b).map(|t| t.size));
    assert_eq!(retry.len(), 1, "one Retry, nothing allocated");
    assert!(
        retry[0].len() < first.len() / 3,
        "Retry smaller than its trigger"
    );
    w.client
        .handle_datagram(now, server, BytesMut::from(&retry[0][..]));
    let again = transmits(|b| w.client.poll_transmit(now, b).map(|t| t.size));
    let d = again.first().expect("Initial with the token").clone();
    let p = packet::decode(&d, 8).unwrap();
    let Header::Long {
        kind: PacketKind::Initial,
        token,
        ..
    } = p.header
    else {
        panic!("not an Initial")
    };
    assert!(!token.is_empty());
    (d, token)
}

/// Feeds `d` from `from`; returns whether a connection was created, and the answers.
fn feed(w: &mut World, now: Instant, from: &str, d: &[u8]) -> (bool, Vec<Vec<u8>>) {
    let created = matches!(
        w.server
            .handle_datagram(now, from.parse().unwrap(), BytesMut::from(d)),
        Some(DatagramEvent::NewConnection(..))
    );
    let answers = transmits(|b| w.server.poll_transmit(b).map(|t| t.size));
    (created, answers)
}

#[test]
fn replayed_expired_and_altered_retry_tokens_are_refused() {
    let mut w = world();
    let t0 = Instant::from_millis(1_000);
    let (d, token) = initial_with_token(&mut w, t0);

    // Replayed from another address (another host, and the same host on another port).
    for from in ["10.9.9.9:50000", "10.1.0.1:50001"] {
        let (created, answers) = feed(&mut w, t0, from, &d);
        assert!(!created, "token replayed from {from} accepted");
        assert_eq!(answers.len(), 1, "an INVALID_TOKEN close");
        assert!(answers[0].len() < d.len());
    }
    // Expired: the lifetime is 10 s.
    let late = t0 + Duration::from_millis(10_001);
    assert!(!feed(&mut w, late, CLIENT, &d).0, "expired token accepted");
    // Every single-bit change of the token.
    let mut flipped = 0;
    for i in token.clone() {
        for bit in 0..8 {
            let mut bad = d.clone();
            bad[i] ^= 1 << bit;
            assert!(!feed(&mut w, t0, CLIENT, &bad).0, "byte {i} bit {bit}");
            flipped += 1;
        }
    }
    let st = w.server.stats();
    println!(
        "token {} bytes; {flipped} bit flips, 2 replays, 1 expired: {} rejected, {} accepted",
        token.len(),
        st.tokens_rejected,
        st.accepted
    );
    assert_eq!(st.accepted, 0);
    assert_eq!(st.tokens_rejected, flipped + 3);
    // The genuine token, from the right address in time: accepted, address validated.
    let (created, _) = feed(&mut w, t0 + Duration::from_secs(9), CLIENT, &d);
    assert!(created);
    assert_eq!(w.server.stats().retry_tokens_accepted, 1);
}
