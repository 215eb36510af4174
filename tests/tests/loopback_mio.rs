//! The core's pair scenarios over real loopback UDP, through jsp-mio: one mio `Poll` drives a
//! server and a client endpoint. Handshake, streams, datagrams, close codes and idle timeout.
//! No timings are asserted; every scenario has a bounded number of loop turns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jsp_mio::jsp_core::config::{ClientConfig, TransportConfig};
use jsp_mio::jsp_core::connection::{Connection, ConnectionError, Event};
use jsp_mio::jsp_core::crypto::kex::KeyExchange;
use jsp_mio::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_mio::jsp_core::endpoint::ConnectionHandle;
use jsp_mio::jsp_core::stream::ReadError;
use jsp_mio::mio::{Events, Poll, Token};
use jsp_mio::Endpoint;

struct Loop {
    poll: Poll,
    events: Events,
    server: Endpoint,
    client: Endpoint,
    identity: Arc<IdentityKey>,
    /// Events seen so far, per side.
    server_events: Vec<(ConnectionHandle, Event)>,
    client_events: Vec<(ConnectionHandle, Event)>,
}

impl Loop {
    fn new(transport: Option<TransportConfig>) -> Self {
        let identity = Arc::new(IdentityKey::generate(
            SignatureScheme::Ed25519,
            &mut jsp_mio::os_rng().unwrap(),
        ));
        let mut config = jsp_mio::server_config(identity.clone()).unwrap();
        if let Some(t) = transport {
            config.transport = Arc::new(t);
        }
        let poll = Poll::new().unwrap();
        let mut server = Endpoint::bind("127.0.0.1:0".parse().unwrap(), Some(config)).unwrap();
        let mut client = Endpoint::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        server.register(poll.registry(), Token(0)).unwrap();
        client.register(poll.registry(), Token(1)).unwrap();
        Self {
            poll,
            events: Events::with_capacity(64),
            server,
            client,
            identity,
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    fn connect(&mut self, transport: Option<TransportConfig>) -> ConnectionHandle {
        let mut config = ClientConfig::pinned(self.identity.public());
        if let Some(t) = transport {
            config.transport = Arc::new(t);
        }
        let addr = self.server.local_addr().unwrap();
        self.client
            .connect_with(Arc::new(config), addr, None)
            .unwrap()
    }

    /// One turn of the event loop.
    fn turn(&mut self) {
        let timeout = [self.server.timeout(), self.client.timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        self.server.drive().unwrap();
        self.client.drive().unwrap();
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
        self.client_events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
    }

    /// Turns until `done`, failing after a bounded number of turns (a hang is a failure).
    fn until(&mut self, mut done: impl FnMut(&mut Self) -> bool) {
        for _ in 0..2000 {
            if done(self) {
                return;
            }
            self.turn();
        }
        panic!("the scenario did not finish");
    }

    fn server_conn(&mut self) -> &mut Connection {
        let h = self
            .server
            .connections()
            .next()
            .expect("a server connection");
        self.server.connection(h).unwrap()
    }

    fn connected(&mut self, h: ConnectionHandle) {
        self.until(|l| {
            l.client
                .connection(h)
                .is_some_and(|c| c.is_handshake_complete())
                && l.server.connections().next().is_some()
                && l.server_conn().is_handshake_complete()
        });
    }
}

fn lost(events: &[(ConnectionHandle, Event)]) -> Option<&ConnectionError> {
    events.iter().find_map(|(_, e)| match e {
        Event::ConnectionLost(err) => Some(err),
        _ => None,
    })
}

/// Reads whatever is readable on `id` into `out`; returns true at the end of the stream.
fn drain(c: &mut Connection, id: jsp_mio::jsp_core::frame::StreamId, out: &mut Vec<u8>) -> bool {
    loop {
        match c.read(id, usize::MAX) {
            Ok(Some(d)) => out.extend_from_slice(&d),
            Ok(None) => return true,
            Err(ReadError::Blocked) | Err(ReadError::UnknownStream) => return false,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn mio_hybrid_handshake_completes_and_reports_what_was_negotiated() {
    let mut l = Loop::new(None);
    let h = l.connect(None);
    l.connected(h);
    let info = l
        .client
        .connection(h)
        .unwrap()
        .handshake_info()
        .unwrap()
        .clone();
    assert_eq!(info.key_exchange, KeyExchange::X25519MlKem768);
    assert_eq!(info.peer_identity, Some(l.identity.public()));
    assert!(l
        .client_events
        .iter()
        .any(|(_, e)| matches!(e, Event::Connected(_))));
}

#[test]
fn mio_many_streams_deliver_their_bytes_in_order() {
    let mut l = Loop::new(None);
    let h = l.connect(None);
    l.connected(h);
    let msgs: Vec<Vec<u8>> = (0..20u8)
        .map(|i| (0..30_000u32).map(|j| (j as u8) ^ i).collect())
        .collect();
    let mut pending: Vec<(jsp_mio::jsp_core::frame::StreamId, usize)> = Vec::new();
    for _ in &msgs {
        let id = l.client.connection(h).unwrap().open_uni().unwrap();
        pending.push((id, 0));
    }
    let mut received: std::collections::HashMap<u64, Vec<u8>> = Default::default();
    let mut ended = std::collections::HashSet::new();
    l.until(|l| {
        let c = l.client.connection(h).unwrap();
        for ((id, sent), msg) in pending.iter_mut().zip(&msgs) {
            if *sent < msg.len() {
                *sent += c.write(*id, &msg[*sent..]).unwrap();
                if *sent == msg.len() {
                    c.finish(*id).unwrap();
                }
            }
        }
        let s = l.server_conn();
        while let Some(id) = s.accept_uni() {
            received.entry(id.0).or_default();
        }
        for (id, buf) in received.iter_mut() {
            if !ended.contains(id) && drain(s, jsp_mio::jsp_core::frame::StreamId(*id), buf) {
                ended.insert(*id);
            }
        }
        ended.len() == msgs.len()
    });
    for ((id, _), msg) in pending.iter().zip(&msgs) {
        assert!(received[&id.0] == *msg, "stream {} intact", id.0);
    }
}

#[test]
fn mio_datagrams_travel_both_ways() {
    let mut l = Loop::new(None);
    let h = l.connect(None);
    l.connected(h);
    let mut got = None;
    l.until(|l| {
        // Datagrams are unreliable: keep sending until one arrives.
        l.client
            .connection(h)
            .unwrap()
            .send_datagram(Bytes::from_static(b"ping"))
            .unwrap();
        got = l.server_conn().recv_datagram();
        got.is_some()
    });
    assert_eq!(&got.unwrap()[..], b"ping");
}

#[test]
fn mio_close_code_and_reason_reach_the_peer() {
    let mut l = Loop::new(None);
    let h = l.connect(None);
    l.connected(h);
    let now = l.client.now();
    l.client
        .connection(h)
        .unwrap()
        .close(now, 7, b"closing time");
    l.until(|l| lost(&l.server_events).is_some());
    assert_eq!(
        lost(&l.server_events),
        Some(&ConnectionError::ApplicationClosed {
            code: 7,
            reason: "closing time".into()
        })
    );
    // The client's connection drains and is forgotten.
    l.until(|l| l.client.connection(h).is_none());
}

#[test]
fn mio_idle_connections_time_out_on_both_sides() {
    let t = TransportConfig {
        idle_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    };
    let mut l = Loop::new(Some(t.clone()));
    let h = l.connect(Some(t));
    l.connected(h);
    l.until(|l| lost(&l.server_events).is_some() && lost(&l.client_events).is_some());
    assert_eq!(lost(&l.client_events), Some(&ConnectionError::TimedOut));
    assert_eq!(lost(&l.server_events), Some(&ConnectionError::TimedOut));
}
