//! A live server endpoint fed arbitrary datagrams (from a few source addresses, at advancing
//! times), with every accepted connection driven: no panic, and nothing sent to an address that
//! did not send first.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jsp_core::config::{EndpointConfig, ServerConfig};
use jsp_core::connection::Connection;
use jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_core::endpoint::{DatagramEvent, Endpoint};
use jsp_core::rand::Rng;
use jsp_core::session::ServerResumption;
use jsp_core::{Duration, Instant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::from_seed([7; 32]);
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let server = Arc::new(ServerConfig::new(identity, resumption));
    let Ok(mut endpoint) = Endpoint::new(Arc::new(EndpointConfig::default()), Some(server), rng.fork(), Instant::ZERO) else {
        return;
    };
    let mut conns: Vec<(jsp_core::endpoint::ConnectionHandle, Connection)> = Vec::new();
    let mut now = Instant::ZERO;
    let mut buf = vec![0u8; 1500];
    // Input: a sequence of [source: u8][len: u16][bytes].
    let mut rest = data;
    while rest.len() >= 3 {
        let source: SocketAddr = format!("10.0.0.{}:{}", rest[0] % 4, 1000 + u16::from(rest[0])).parse().unwrap();
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])) % 1500;
        let body = &rest[3..];
        let take = len.min(body.len());
        let datagram = BytesMut::from(&body[..take]);
        rest = &body[take..];
        now += Duration::from_millis(7);
        match endpoint.handle_datagram(now, source, datagram) {
            Some(DatagramEvent::NewConnection(h, mut c, d)) => {
                c.handle_datagram(now, source, d);
                conns.push((h, *c));
            }
            Some(DatagramEvent::Route(h, d)) => {
                if let Some((_, c)) = conns.iter_mut().find(|(x, _)| *x == h) {
                    c.handle_datagram(now, source, d);
                }
            }
            None => {}
        }
        for (h, c) in conns.iter_mut() {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
            while let Some(t) = c.poll_transmit(now, &mut buf) {
                assert!(t.size <= buf.len());
            }
            while c.poll_event().is_some() {}
            while let Some(e) = c.poll_endpoint_event() {
                endpoint.handle_event(*h, e);
            }
        }
        while endpoint.poll_transmit(&mut buf).is_some() {}
    }
});
