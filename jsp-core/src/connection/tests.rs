//! Pair tests: a client and a server endpoint wired through an in-memory link with virtual time.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::config::{ClientConfig, EndpointConfig, ServerConfig, ServerTrust};
use crate::crypto::kex::KeyExchange;
use crate::crypto::sign::{IdentityKey, SignatureScheme};
use crate::crypto::CipherSuite;
use crate::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use crate::session::ServerResumption;

mod ecn;
mod mtud;
mod security;

const ONE_WAY: Duration = Duration::from_millis(10);

pub(super) fn client_addr() -> SocketAddr {
    "10.0.0.1:4000".parse().unwrap()
}

pub(crate) fn server_addr() -> SocketAddr {
    "10.0.0.2:443".parse().unwrap()
}

/// Loss, duplication and reordering on the link, by a seeded pattern.
pub(crate) struct Impairment {
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) reorder: f64,
    rng: Rng,
    pub(crate) dropped: u64,
}

impl Impairment {
    pub(crate) fn clean() -> Self {
        Self::new(0.0, 0.0, 0.0, 0)
    }

    pub(crate) fn new(loss: f64, duplicate: f64, reorder: f64, seed: u8) -> Self {
        Self {
            loss,
            duplicate,
            reorder,
            rng: Rng::from_seed([seed; 32]),
            dropped: 0,
        }
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.u64() as f64 / u64::MAX as f64) < p
    }
}

/// The server endpoint's config: a fixed stateless-reset key, as a restartable server would have.
fn server_endpoint_config() -> EndpointConfig {
    EndpointConfig {
        stateless_reset_key: Some([9; 32]),
        ..EndpointConfig::default()
    }
}

/// A datagram on the wire.
#[derive(Clone)]
struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
    ecn: Option<EcnCodepoint>,
}

/// What the link does with the ECN bits of the datagrams it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EcnPath {
    /// Clears them (a path or driver without ECN): the default.
    Bleach,
    /// Delivers them as sent.
    Carry,
    /// Delivers them, turning every `every`th marked datagram into CE (a congested AQM).
    MarkCe { every: u32, seen: u32 },
}

/// Two endpoints, their connections, and a link with a fixed delay.
pub(crate) struct Pair {
    pub(crate) now: Instant,
    pub(crate) client_ep: Endpoint,
    pub(crate) server_ep: Endpoint,
    pub(crate) client: Option<(ConnectionHandle, Connection)>,
    pub(crate) server: Option<(ConnectionHandle, Connection)>,
    /// Extra server connections (replays, second clients), kept so they run too.
    pub(crate) extra_servers: Vec<(ConnectionHandle, Connection)>,
    link: Vec<InFlight>,
    /// Seeded impairments applied to every datagram sent (not to injected ones).
    pub(crate) impair: Impairment,
    /// The address the client's datagrams appear to come from (NAT rebinding).
    pub(crate) client_from: SocketAddr,
    /// Datagrams sent to this address vanish (a spoofed address nobody answers from).
    pub(crate) blackhole: Option<SocketAddr>,
    /// Every datagram the client sent, for replay attacks.
    pub(crate) client_sent: Vec<Vec<u8>>,
    /// Drop datagrams in this direction while set.
    pub(crate) cut: bool,
    /// The path's largest UDP payload: larger datagrams vanish (none: no limit).
    pub(crate) max_size: Option<usize>,
    pub(crate) server_config: Arc<ServerConfig>,
    /// What the link does with ECN bits, both ways.
    pub(crate) ecn: EcnPath,
}

pub(crate) struct Setup {
    pub(crate) server_identity: Arc<IdentityKey>,
    pub(crate) server_config: ServerConfig,
    pub(crate) client_config: ClientConfig,
}

impl Setup {
    pub(crate) fn new(seed: u8) -> Self {
        let mut rng = Rng::from_seed([seed; 32]);
        let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
        let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
        let server_config = ServerConfig::new(identity.clone(), resumption);
        let client_config = ClientConfig::pinned(identity.public());
        Self {
            server_identity: identity,
            server_config,
            client_config,
        }
    }
}

impl Pair {
    pub(crate) fn new(setup: &Setup) -> Self {
        Self::with_ticket(setup, None)
    }

    pub(crate) fn with_ticket(setup: &Setup, ticket: Option<ClientTicket>) -> Self {
        Self::with_ticket_at(setup, ticket, Instant::from_millis(1))
    }

    /// Like [`Self::with_ticket`], with the virtual clock starting at `now`.
    pub(crate) fn with_ticket_at(
        setup: &Setup,
        ticket: Option<ClientTicket>,
        now: Instant,
    ) -> Self {
        let server_config = Arc::new(setup.server_config.clone());
        let server_ep = Endpoint::new(
            Arc::new(server_endpoint_config()),
            Some(server_config.clone()),
            Rng::from_seed([1; 32]),
            now,
        )
        .unwrap();
        let mut client_ep = Endpoint::new(
            Arc::new(EndpointConfig::default()),
            None,
            Rng::from_seed([2; 32]),
            now,
        )
        .unwrap();
        let client = client_ep
            .connect(
                now,
                Arc::new(setup.client_config.clone()),
                server_addr(),
                ticket,
            )
            .unwrap();
        Self {
            now,
            client_ep,
            server_ep,
            client: Some(client),
            server: None,
            extra_servers: Vec::new(),
            link: Vec::new(),
            impair: Impairment::clean(),
            client_from: client_addr(),
            blackhole: None,
            client_sent: Vec::new(),
            cut: false,
            max_size: None,
            server_config,
            ecn: EcnPath::Bleach,
        }
    }

    pub(crate) fn client(&mut self) -> &mut Connection {
        &mut self.client.as_mut().unwrap().1
    }

    pub(crate) fn server(&mut self) -> &mut Connection {
        &mut self.server.as_mut().unwrap().1
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>, ecn: Option<EcnCodepoint>) {
        let ecn = match &mut self.ecn {
            EcnPath::Bleach => None,
            EcnPath::Carry => ecn,
            EcnPath::MarkCe { every, seen } => ecn.map(|e| {
                *seen += 1;
                if *seen % (*every).max(1) == 0 {
                    EcnCodepoint::Ce
                } else {
                    e
                }
            }),
        };
        let from = if from == client_addr() {
            self.client_sent.push(data.clone());
            self.client_from
        } else {
            from
        };
        let too_big = self.max_size.is_some_and(|m| data.len() > m);
        if self.cut || too_big || self.blackhole == Some(to) || self.impair.roll(self.impair.loss) {
            self.impair.dropped += 1;
            return;
        }
        let copies = if self.impair.roll(self.impair.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let extra = if self.impair.roll(self.impair.reorder) {
                Duration::from_millis(self.impair.rng.below(15) + 1)
            } else {
                Duration::ZERO
            };
            self.link.push(InFlight {
                at: self.now + ONE_WAY + extra,
                from,
                to,
                data: data.clone(),
                ecn,
            });
        }
    }

    /// Injects a datagram from `from` to the server, as an attacker on the path would.
    pub(crate) fn inject(&mut self, from: SocketAddr, data: Vec<u8>) {
        let to = server_addr();
        self.link.push(InFlight {
            at: self.now + ONE_WAY,
            from,
            to,
            data,
            ecn: None,
        });
    }

    /// Collects everything both sides want to send now.
    fn flush(&mut self) {
        let mut buf = vec![0u8; 1500];
        loop {
            let mut sent = false;
            if let Some((_, c)) = &mut self.client {
                if let Some(t) = c.poll_transmit(self.now, &mut buf) {
                    let d = buf[..t.size].to_vec();
                    self.send(client_addr(), t.destination, d, t.ecn);
                    sent = true;
                }
            }
            let mut server_out = Vec::new();
            for (_, s) in self.server.iter_mut().chain(self.extra_servers.iter_mut()) {
                if let Some(t) = s.poll_transmit(self.now, &mut buf) {
                    server_out.push((t.destination, buf[..t.size].to_vec(), t.ecn));
                }
            }
            while let Some(t) = self.server_ep.poll_transmit(&mut buf) {
                server_out.push((t.destination, buf[..t.size].to_vec(), t.ecn));
            }
            for (to, d, ecn) in server_out {
                self.send(server_addr(), to, d, ecn);
                sent = true;
            }
            if !sent {
                break;
            }
        }
    }

    fn deliver(&mut self, d: InFlight) {
        let data = BytesMut::from(&d.data[..]);
        if d.to == server_addr() {
            match self.server_ep.handle_datagram(self.now, d.from, data) {
                Some(DatagramEvent::NewConnection(h, mut conn, data)) => {
                    conn.handle_datagram_ecn(self.now, d.from, d.ecn, data);
                    if self.server.is_none() {
                        self.server = Some((h, *conn));
                    } else {
                        self.extra_servers.push((h, *conn));
                    }
                }
                Some(DatagramEvent::Route(h, data)) => {
                    for (handle, conn) in
                        self.server.iter_mut().chain(self.extra_servers.iter_mut())
                    {
                        if *handle == h {
                            conn.handle_datagram_ecn(self.now, d.from, d.ecn, data);
                            break;
                        }
                    }
                }
                None => {}
            }
        } else if let Some(Some(DatagramEvent::Route(_, data))) = self
            .client
            .as_ref()
            .map(|_| self.client_ep.handle_datagram(self.now, d.from, data))
        {
            if let Some((_, c)) = &mut self.client {
                c.handle_datagram_ecn(self.now, d.from, d.ecn, data);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conns = self
            .client
            .iter()
            .chain(self.server.iter())
            .chain(self.extra_servers.iter())
            .filter_map(|(_, c)| c.poll_timeout());
        conns.chain(self.link.iter().map(|d| d.at)).min()
    }

    fn endpoint_events(&mut self) {
        if let Some((h, c)) = &mut self.client {
            while let Some(e) = c.poll_endpoint_event() {
                self.client_ep.handle_event(*h, e);
            }
        }
        for (h, s) in self.server.iter_mut().chain(self.extra_servers.iter_mut()) {
            while let Some(e) = s.poll_endpoint_event() {
                self.server_ep.handle_event(*h, e);
            }
        }
    }

    /// Advances one step: send, then deliver or fire timers at the next event. Returns false
    /// when nothing is left to happen.
    pub(crate) fn step(&mut self) -> bool {
        self.endpoint_events();
        self.flush();
        let Some(next) = self.next_deadline() else {
            return false;
        };
        self.now = self.now.max(next);
        // Deliver everything due, in arrival order (stable for equal times).
        self.link.sort_by_key(|d| d.at);
        let due = self.link.iter().take_while(|d| d.at <= self.now).count();
        for d in self.link.drain(..due).collect::<Vec<_>>() {
            self.deliver(d);
        }
        let now = self.now;
        for (_, c) in self
            .client
            .iter_mut()
            .chain(self.server.iter_mut())
            .chain(self.extra_servers.iter_mut())
        {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
        true
    }

    /// Runs everything that happens within `d` of virtual time from now.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.endpoint_events();
            self.flush();
            match self.next_deadline() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
    }

    /// Steps until `done` holds, failing after `max` steps (a hang is a failure).
    pub(crate) fn drive_until(&mut self, max: usize, mut done: impl FnMut(&mut Self) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            if !self.step() {
                break;
            }
        }
        assert!(
            done(self),
            "condition not reached after {max} steps at {:?}",
            self.now
        );
    }

    /// Drives until the handshake completes on both sides.
    pub(crate) fn handshake(&mut self) {
        self.drive_until(200, |p| {
            p.client
                .as_ref()
                .is_some_and(|(_, c)| c.is_handshake_complete())
                && p.server
                    .as_ref()
                    .is_some_and(|(_, s)| s.is_handshake_complete() && s.handshake_confirmed)
        });
    }

    pub(crate) fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }
}

fn lost(events: &[Event]) -> Option<&ConnectionError> {
    events.iter().find_map(|e| match e {
        Event::ConnectionLost(err) => Some(err),
        _ => None,
    })
}

fn exchange_datagrams(pair: &mut Pair) {
    pair.client()
        .send_datagram(Bytes::from_static(b"ping from client"))
        .unwrap();
    pair.server()
        .send_datagram(Bytes::from_static(b"pong from server"))
        .unwrap();
    pair.drive_until(50, |p| {
        p.server
            .as_ref()
            .is_some_and(|(_, s)| !s.datagrams.incoming.is_empty())
            && p.client
                .as_ref()
                .is_some_and(|(_, c)| !c.datagrams.incoming.is_empty())
    });
    assert_eq!(
        pair.server().recv_datagram().unwrap(),
        &b"ping from client"[..]
    );
    assert_eq!(
        pair.client().recv_datagram().unwrap(),
        &b"pong from server"[..]
    );
}

#[test]
fn hybrid_handshake_completes_and_data_flows_both_ways_for_each_suite() {
    for suite in CipherSuite::ALL {
        let mut setup = Setup::new(3);
        setup.server_config.cipher_suites = vec![suite];
        let mut pair = Pair::new(&setup);
        pair.handshake();
        exchange_datagrams(&mut pair);
        let infos = [
            pair.client().handshake_info().unwrap().clone(),
            pair.server().handshake_info().unwrap().clone(),
        ];
        for info in infos {
            assert_eq!(info.suite, suite);
            assert_eq!(info.key_exchange, KeyExchange::X25519MlKem768);
            assert!(!info.resumed);
        }
        let events = Pair::events(pair.client());
        let connected = events.iter().find_map(|e| match e {
            Event::Connected(info) => Some(info),
            _ => None,
        });
        assert_eq!(
            connected.and_then(|i| i.peer_identity.clone()),
            Some(setup.server_identity.public()),
            "the client reports the server's identity"
        );
    }
}

#[test]
fn the_server_hello_leaves_before_the_key_agreement_and_the_rest_of_the_flight() {
    let setup = Setup::new(5);
    let mut pair = Pair::new(&setup);
    let now = pair.now;
    let mut buf = vec![0u8; 1500];
    let hello: Vec<Vec<u8>> = std::iter::from_fn(|| {
        let t = pair.client().poll_transmit(now, &mut buf)?;
        Some(buf[..t.size].to_vec())
    })
    .collect();
    let mut server: Option<(ConnectionHandle, Connection)> = None;
    for d in hello {
        match pair
            .server_ep
            .handle_datagram(now, client_addr(), BytesMut::from(&d[..]))
        {
            Some(DatagramEvent::NewConnection(h, mut conn, data)) => {
                conn.handle_datagram(now, client_addr(), data);
                server = Some((h, *conn));
            }
            Some(DatagramEvent::Route(_, data)) => {
                let (_, conn) = server.as_mut().expect("routed to the new connection");
                conn.handle_datagram(now, client_addr(), data);
            }
            None => panic!("the ClientHello was dropped"),
        }
    }
    let (handle, mut s) = server.expect("a server connection");
    assert!(
        s.session.work_pending(),
        "the ClientHello is answered in two steps"
    );
    assert_eq!(
        s.poll_timeout(),
        Some(now),
        "the second step is due at once"
    );
    let take = |s: &mut Connection, buf: &mut Vec<u8>| -> Vec<Vec<u8>> {
        std::iter::from_fn(|| {
            let t = s.poll_transmit(now, buf)?;
            Some(buf[..t.size].to_vec())
        })
        .collect()
    };
    let long_type = |d: &[u8]| (d[0] & 0x80 != 0).then_some((d[0] >> 4) & 3);
    let first = take(&mut s, &mut buf);
    assert!(!first.is_empty());
    for d in &first {
        assert_eq!(
            long_type(d),
            Some(0),
            "only Initial packets (the ServerHello) go first"
        );
    }
    assert!(
        s.spaces[SpaceId::Handshake.index()].tx.is_none(),
        "no handshake keys before the agreement"
    );
    s.handle_timeout(now);
    assert!(!s.session.work_pending());
    let rest = take(&mut s, &mut buf);
    assert_eq!(
        rest.first().map(|d| long_type(d)),
        Some(Some(2)),
        "then the Handshake flight"
    );
    // The handshake completes from there.
    for d in first.into_iter().chain(rest) {
        pair.send(server_addr(), client_addr(), d, None);
    }
    pair.server = Some((handle, s));
    pair.handshake();
    assert!(pair.client().is_handshake_complete());
}

#[test]
fn a_packet_that_ends_a_stream_is_acknowledged_at_once_and_others_wait_for_the_timer() {
    let mut pair = Pair::new(&Setup::new(7));
    pair.handshake();
    pair.run_for(Duration::from_millis(300));
    let largest = |p: &mut Pair| {
        p.server().spaces[SpaceId::Data.index()]
            .largest_received
            .map(|(pn, _)| pn)
    };
    for fin in [false, true] {
        let id = pair.client().open_uni().unwrap();
        pair.client().write(id, b"one packet").unwrap();
        if fin {
            pair.client().finish(id).unwrap();
        }
        let before = largest(&mut pair);
        pair.drive_until(20, |p| largest(p) != before);
        let server = pair.server();
        let data = &server.spaces[SpaceId::Data.index()];
        println!(
            "fin {fin}: ack now {}, ack timer {:?}",
            data.ack_now,
            server.timers.get(Timer::Ack)
        );
        assert_eq!(data.ack_now, fin);
        assert_eq!(server.timers.get(Timer::Ack).is_some(), !fin);
        pair.run_for(Duration::from_millis(300));
    }
}

/// Reads what `id` has into `out`; returns true at the end of the stream.
fn drain_stream(c: &mut Connection, id: crate::frame::StreamId, out: &mut Vec<u8>) -> bool {
    loop {
        match c.read(id, usize::MAX) {
            Ok(Some(d)) => out.extend_from_slice(&d),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_retransmission_that_completes_a_stream_is_acknowledged_at_once() {
    let mut pair = Pair::new(&Setup::new(9));
    pair.handshake();
    pair.run_for(Duration::from_millis(300));
    let id = pair.client().open_uni().unwrap();
    // The first packet of the stream is lost; the rest, with the FIN, arrives.
    pair.client().write(id, &[1; 1000]).unwrap();
    pair.cut = true;
    pair.step();
    pair.cut = false;
    pair.client().write(id, &[2; 1000]).unwrap();
    pair.client().finish(id).unwrap();
    let mut got = Vec::new();
    pair.drive_until(200, |p| {
        let done = drain_stream(p.server(), id, &mut got);
        let ack_now = p.server().spaces[SpaceId::Data.index()].ack_now;
        println!(
            "{:?}: {} bytes, end {done}, ack now {ack_now}",
            p.now,
            got.len()
        );
        done
    });
    assert_eq!(got.len(), 2000);
    // The step that delivered the retransmission left an ACK due at once, not on the timer.
    let server = pair.server();
    assert!(server.spaces[SpaceId::Data.index()].ack_now);
    assert!(server.timers.get(Timer::Ack).is_none());
}

#[test]
fn a_client_closing_before_its_finished_left_still_completes_the_servers_handshake() {
    for lose_first_close in [false, true] {
        client_closes_before_its_finished_left(lose_first_close);
    }
}

fn client_closes_before_its_finished_left(lose_first_close: bool) {
    let mut pair = Pair::new(&Setup::new(8));
    // Until the client has the server's flight; its Finished is queued, not yet sent.
    pair.drive_until(50, |p| p.client().is_handshake_complete());
    assert!(pair.client().spaces[SpaceId::Handshake.index()]
        .crypto_out
        .has_pending());
    let now = pair.now;
    pair.client().close(now, 42, b"bye now");
    if lose_first_close {
        // The server hears nothing, sends its flight again on its probe timeout, and the
        // closing client answers with its CLOSE (and Finished) again.
        pair.cut = true;
        pair.step();
        pair.cut = false;
    }
    pair.drive_until(50, |p| {
        p.server.as_ref().is_some_and(|(_, s)| s.is_closed())
    });
    let events = Pair::events(pair.server());
    println!(
        "first close lost: {lose_first_close}; server closed at {:?}: {events:?}",
        pair.now
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::Connected(_))),
        "the server completed its handshake: {events:?}"
    );
    assert_eq!(
        lost(&events),
        Some(&ConnectionError::ApplicationClosed {
            code: 42,
            reason: "bye now".into()
        }),
        "and then saw the application's close"
    );
}

#[test]
fn a_wrong_pinned_key_fails_the_handshake_with_a_clear_error() {
    let mut setup = Setup::new(4);
    let other = IdentityKey::generate(SignatureScheme::Ed25519, &mut Rng::from_seed([99; 32]));
    setup.client_config.trust = ServerTrust::Pinned(vec![other.public()]);
    let mut pair = Pair::new(&setup);
    pair.drive_until(200, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_closed())
    });
    let events = Pair::events(pair.client());
    match lost(&events) {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, TransportErrorCode::HANDSHAKE_FAILED);
            assert!(
                e.reason.contains("does not match the pinned key"),
                "{}",
                e.reason
            );
        }
        other => panic!("expected a handshake failure, got {other:?}"),
    }
    // The server learns why, too.
    pair.drive_until(200, |p| {
        p.server.as_ref().is_some_and(|(_, s)| s.is_closed())
    });
    let events = Pair::events(pair.server());
    assert!(matches!(
        lost(&events),
        Some(ConnectionError::ConnectionClosed {
            code: TransportErrorCode::HANDSHAKE_FAILED,
            ..
        })
    ));
}

#[test]
fn classical_key_exchange_is_used_only_when_both_sides_allow_it() {
    // Client allows both, server prefers classical: X25519 is negotiated and reported.
    let mut setup = Setup::new(5);
    setup.client_config.key_exchanges = vec![KeyExchange::X25519MlKem768, KeyExchange::X25519];
    setup.server_config.key_exchanges = vec![KeyExchange::X25519];
    let mut pair = Pair::new(&setup);
    pair.handshake();
    assert_eq!(
        pair.client().handshake_info().unwrap().key_exchange,
        KeyExchange::X25519
    );
    // Client requires post-quantum, server only classical: no connection.
    let mut setup = Setup::new(6);
    setup.server_config.key_exchanges = vec![KeyExchange::X25519];
    let mut pair = Pair::new(&setup);
    pair.drive_until(200, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_closed())
    });
    let events = Pair::events(pair.client());
    assert!(
        matches!(lost(&events), Some(ConnectionError::ConnectionClosed { code: TransportErrorCode::HANDSHAKE_FAILED, reason, .. }) if reason.contains("no key exchange in common")),
        "{events:?}"
    );
}

#[test]
fn key_update_mid_connection_keeps_data_flowing() {
    let setup = Setup::new(7);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    exchange_datagrams(&mut pair);
    assert!(pair.client().initiate_key_update());
    assert!(!pair.client().initiate_key_update(), "one update at a time");
    exchange_datagrams(&mut pair);
    exchange_datagrams(&mut pair);
    assert_eq!(pair.server().one_rtt.as_ref().unwrap().rx_generation(), 1);
    assert_eq!(pair.server().one_rtt.as_ref().unwrap().tx_generation(), 1);
    // And the server can start the next one.
    assert!(pair.server().initiate_key_update());
    exchange_datagrams(&mut pair);
    exchange_datagrams(&mut pair);
    assert_eq!(pair.client().one_rtt.as_ref().unwrap().rx_generation(), 2);
    assert_eq!(pair.client().stats().key_updates, 2);
}

#[test]
fn idle_timeout_ends_both_sides_and_close_codes_reach_the_peer() {
    let mut setup = Setup::new(8);
    setup.client_config.transport = Arc::new(TransportConfig {
        idle_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    });
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.cut = true;
    let start = pair.now;
    pair.drive_until(500, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_drained())
            && p.server.as_ref().is_some_and(|(_, s)| s.is_drained())
    });
    let elapsed = pair.now - start;
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(7),
        "{elapsed:?}"
    );
    assert_eq!(
        lost(&Pair::events(pair.client())),
        Some(&ConnectionError::TimedOut)
    );
    assert_eq!(
        lost(&Pair::events(pair.server())),
        Some(&ConnectionError::TimedOut)
    );

    let setup = Setup::new(9);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let now = pair.now;
    pair.client().close(now, 42, b"bye now");
    pair.drive_until(50, |p| {
        p.server.as_ref().is_some_and(|(_, s)| s.is_closed())
    });
    let events = Pair::events(pair.server());
    assert_eq!(
        lost(&events),
        Some(&ConnectionError::ApplicationClosed {
            code: 42,
            reason: "bye now".into()
        })
    );
    pair.drive_until(200, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_drained())
    });
}

#[test]
fn keep_alive_pings_hold_an_idle_connection_open() {
    let mut setup = Setup::new(10);
    let transport = Arc::new(TransportConfig {
        idle_timeout: Duration::from_secs(3),
        keep_alive_interval: Some(Duration::from_secs(1)),
        ..TransportConfig::default()
    });
    setup.client_config.transport = transport.clone();
    setup.server_config.transport = transport;
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let start = pair.now;
    pair.drive_until(2000, |p| p.now >= start + Duration::from_secs(20));
    assert!(!pair.client().is_closed());
    assert!(!pair.server().is_closed());
}

#[test]
fn zero_rtt_is_accepted_once_and_a_replay_is_refused() {
    let setup = Setup::new(11);
    // First connection: obtain a ticket.
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.drive_until(50, |p| {
        p.client
            .as_ref()
            .is_some_and(|(_, c)| c.events.iter().any(|e| matches!(e, Event::NewTicket(_))))
    });
    let ticket = Pair::events(pair.client())
        .into_iter()
        .find_map(|e| match e {
            Event::NewTicket(t) => Some(*t),
            _ => None,
        })
        .unwrap();

    // Second connection resumes and sends a replay-safe datagram as 0-RTT.
    let mut pair = Pair::with_ticket(&setup, Some(ticket.clone()));
    pair.client()
        .send_datagram_early(Bytes::from_static(b"early hello"))
        .unwrap();
    pair.drive_until(10, |p| {
        p.server
            .as_ref()
            .is_some_and(|(_, s)| !s.datagrams.incoming.is_empty())
    });
    assert!(
        !pair.server().is_handshake_complete(),
        "the early datagram arrived before the handshake completed"
    );
    assert_eq!(pair.server().recv_datagram().unwrap(), &b"early hello"[..]);
    pair.handshake();
    let info = pair.client().handshake_info().unwrap().clone();
    assert!(info.resumed);
    assert_eq!(info.early_data, EarlyData::Accepted);

    // An attacker replays the client's first flight to another server of the same deployment
    // (sharing ticket keys and the replay filter): 0-RTT must not be accepted twice.
    pair.server_ep = Endpoint::new(
        Arc::new(server_endpoint_config()),
        Some(pair.server_config.clone()),
        Rng::from_seed([78; 32]),
        pair.now,
    )
    .unwrap();
    let flight = pair.client_sent.clone();
    for d in flight.iter().take(3) {
        pair.inject("10.0.0.66:5000".parse().unwrap(), d.clone());
    }
    pair.drive_until(20, |p| !p.extra_servers.is_empty());
    for _ in 0..10 {
        pair.step();
    }
    let replayed = &mut pair.extra_servers[0].1;
    assert!(
        replayed.datagrams.incoming.is_empty(),
        "replayed 0-RTT data must not be delivered"
    );
    assert!(replayed.zero_rtt.is_none());

    // The same ticket used again by the real client: 0-RTT refused, handshake still completes.
    let mut pair = Pair::with_ticket(&setup, Some(ticket));
    pair.client()
        .send_datagram_early(Bytes::from_static(b"early again"))
        .unwrap();
    pair.handshake();
    let info = pair.client().handshake_info().unwrap().clone();
    assert_eq!(info.early_data, EarlyData::Rejected);
    assert!(
        info.resumed,
        "the ticket still resumes the session; only 0-RTT is refused"
    );
    assert!(Pair::events(pair.client())
        .iter()
        .any(|e| matches!(e, Event::ZeroRttRejected)));
    assert!(pair.server().datagrams.incoming.is_empty());
    exchange_datagrams(&mut pair);
}

#[test]
fn a_stateless_reset_ends_the_connection_of_a_restarted_server() {
    let setup = Setup::new(12);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    // The server restarts: same reset key (from config), no connection state.
    pair.server_ep = Endpoint::new(
        Arc::new(server_endpoint_config()),
        Some(pair.server_config.clone()),
        Rng::from_seed([77; 32]),
        pair.now,
    )
    .unwrap();
    pair.server = None;
    pair.client()
        .send_datagram(Bytes::from_static(b"anyone there?"))
        .unwrap();
    pair.drive_until(50, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_drained())
    });
    assert_eq!(
        lost(&Pair::events(pair.client())),
        Some(&ConnectionError::Reset)
    );
}

/// The byte at `offset` of stream number `n` in the transfer tests.
fn pattern(n: usize, offset: usize) -> u8 {
    ((n * 31 + offset * 7 + offset / 251) % 251) as u8
}

/// One sender stream's progress.
struct Outgoing {
    id: crate::frame::StreamId,
    n: usize,
    sent: usize,
    finished: bool,
}

/// Moves `count` unidirectional streams of `size` bytes from client to server and checks every
/// byte, in order, exactly once. Returns the steps taken.
fn transfer(pair: &mut Pair, count: usize, size: usize, max_steps: usize) -> usize {
    let mut next_stream = 0usize;
    let mut open: Vec<Outgoing> = Vec::new();
    let mut received: std::collections::BTreeMap<crate::frame::StreamId, (Vec<u8>, bool)> =
        Default::default();
    let mut done = 0usize;
    let chunk: Vec<u8> = Vec::with_capacity(64 << 10);
    let _ = chunk;
    for step in 0..max_steps {
        // Sender: open streams while allowed, write what flow control accepts, finish.
        {
            let c = pair.client();
            while next_stream < count && open.len() < 200 {
                let Some(id) = c.open_uni() else { break };
                open.push(Outgoing {
                    id,
                    n: next_stream,
                    sent: 0,
                    finished: false,
                });
                next_stream += 1;
            }
            for o in open.iter_mut() {
                while o.sent < size {
                    let end = (o.sent + (32 << 10)).min(size);
                    let data: Vec<u8> = (o.sent..end).map(|i| pattern(o.n, i)).collect();
                    let n = c.write(o.id, &data).unwrap();
                    o.sent += n;
                    if n < data.len() {
                        break;
                    }
                }
                if o.sent == size && !o.finished {
                    c.finish(o.id).unwrap();
                    o.finished = true;
                }
            }
            open.retain(|o| !o.finished);
            while c.poll_event().is_some() {}
        }
        // Receiver: accept and read everything available.
        {
            let s = pair.server();
            while let Some(id) = s.accept_uni() {
                received.insert(id, (Vec::new(), false));
            }
            for (id, (buf, fin)) in received.iter_mut() {
                if *fin {
                    continue;
                }
                loop {
                    match s.read(*id, usize::MAX) {
                        Ok(Some(bytes)) => buf.extend_from_slice(&bytes),
                        Ok(None) => {
                            *fin = true;
                            done += 1;
                            break;
                        }
                        Err(crate::stream::ReadError::Blocked) => break,
                        Err(e) => panic!("read error on {id:?}: {e:?}"),
                    }
                }
            }
            while s.poll_event().is_some() {}
        }
        if done == count {
            for (i, (_, (buf, _))) in received.iter().enumerate() {
                assert_eq!(buf.len(), size, "stream {i} length");
                // Stream IDs are opened in order, so the i-th received is stream number i.
                assert!(
                    buf.iter().enumerate().all(|(off, b)| *b == pattern(i, off)),
                    "stream {i} content differs"
                );
            }
            return step;
        }
        if !pair.step() {
            break;
        }
    }
    panic!("transfer of {count}×{size} bytes incomplete after {max_steps} steps: {done} streams done at {:?}", pair.now);
}

fn lossy() -> Impairment {
    Impairment::new(0.05, 0.02, 0.05, 17)
}

#[test]
fn sixteen_mebibytes_over_one_stream_arrive_byte_exact_on_a_clean_link() {
    let mut pair = Pair::new(&Setup::new(20));
    pair.handshake();
    transfer(&mut pair, 1, 16 << 20, 200_000);
    assert_eq!(pair.client().stats().packets_lost, 0);
}

#[test]
fn sixteen_mebibytes_over_one_stream_survive_loss_duplication_and_reordering() {
    let mut pair = Pair::new(&Setup::new(21));
    pair.impair = lossy();
    pair.handshake();
    transfer(&mut pair, 1, 16 << 20, 400_000);
    assert!(pair.impair.dropped > 100, "the link really dropped packets");
    let stats = pair.client().stats();
    assert!(
        stats.packets_lost > 0 && stats.retransmitted_bytes > 0,
        "{stats:?}"
    );
}

#[test]
fn a_thousand_streams_of_sixteen_kibibytes_arrive_byte_exact() {
    let mut pair = Pair::new(&Setup::new(22));
    pair.handshake();
    transfer(&mut pair, 1000, 16 << 10, 200_000);
}

#[test]
fn a_thousand_streams_survive_loss_duplication_and_reordering() {
    let mut pair = Pair::new(&Setup::new(23));
    pair.impair = lossy();
    pair.handshake();
    transfer(&mut pair, 1000, 16 << 10, 400_000);
}

#[test]
fn the_handshake_completes_over_a_lossy_link() {
    for seed in 0..8 {
        let mut pair = Pair::new(&Setup::new(30 + seed));
        pair.impair = Impairment::new(0.2, 0.05, 0.1, seed);
        pair.drive_until(5000, |p| {
            p.client
                .as_ref()
                .is_some_and(|(_, c)| c.is_handshake_complete())
                && p.server
                    .as_ref()
                    .is_some_and(|(_, s)| s.is_handshake_complete())
        });
    }
}

#[test]
fn datagrams_are_delivered_or_dropped_but_never_duplicated() {
    let mut pair = Pair::new(&Setup::new(24));
    pair.impair = Impairment::new(0.1, 0.3, 0.1, 5);
    pair.handshake();
    for i in 0..200u32 {
        pair.client()
            .send_datagram(Bytes::from(i.to_be_bytes().to_vec()))
            .unwrap();
        if i % 10 == 0 {
            pair.step();
        }
    }
    for _ in 0..200 {
        pair.step();
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(d) = pair.server().recv_datagram() {
        let n = u32::from_be_bytes(d[..4].try_into().unwrap());
        assert!(seen.insert(n), "datagram {n} delivered twice");
    }
    assert!(
        seen.len() > 100 && seen.len() < 200,
        "some lost, most delivered: {}",
        seen.len()
    );
}

#[test]
fn a_stream_reset_and_stop_sending_are_seen_by_the_peer() {
    use crate::stream::{ReadError, StreamEvent, WriteError};
    let mut pair = Pair::new(&Setup::new(25));
    pair.handshake();
    let a = pair.client().open_bi().unwrap();
    pair.client().write(a, b"partial").unwrap();
    pair.client().reset(a, 7).unwrap();
    let b = pair.client().open_bi().unwrap();
    pair.client().write(b, b"hello").unwrap();
    pair.run_for(Duration::from_millis(500));
    let server = pair.server();
    let mut accepted = Vec::new();
    while let Some(id) = server.accept_bi() {
        accepted.push(id);
    }
    assert!(accepted.contains(&a) && accepted.contains(&b));
    assert_eq!(server.read(a, 100), Err(ReadError::Reset(7)));
    server.stop(b, 9).unwrap();
    let mut stopped = false;
    for _ in 0..100 {
        pair.run_for(Duration::from_millis(10));
        while let Some(e) = pair.client().poll_event() {
            if let Event::Stream(StreamEvent::Stopped { id, error_code: 9 }) = e {
                assert_eq!(id, b);
                stopped = true;
            }
        }
        if stopped {
            break;
        }
    }
    assert!(stopped, "the client saw STOP_SENDING");
    assert_eq!(pair.client().write(b, b"more"), Err(WriteError::Stopped(9)));
}

#[test]
fn an_unknown_version_is_answered_with_version_negotiation() {
    let mut pair = Pair::new(&Setup::new(40));
    pair.flush();
    let mut first = pair.client_sent[0].clone();
    first[1..5].copy_from_slice(&0x0a0a_0a0au32.to_be_bytes());
    let now = pair.now;
    let event = pair
        .server_ep
        .handle_datagram(now, client_addr(), BytesMut::from(&first[..]));
    assert!(event.is_none(), "no connection for an unknown version");
    let mut buf = vec![0u8; 1500];
    let t = pair
        .server_ep
        .poll_transmit(&mut buf)
        .expect("a version negotiation packet");
    let partial = crate::packet::decode(&buf[..t.size], 8).unwrap();
    match partial.header {
        crate::packet::Header::VersionNegotiation { versions, .. } => {
            let listed: Vec<u32> =
                crate::packet::header::versions(&buf[..t.size], versions).collect();
            assert_eq!(listed, vec![crate::VERSION_1]);
        }
        other => panic!("expected version negotiation, got {other:?}"),
    }
    // A small datagram is not answered at all (no amplification).
    first.truncate(600);
    assert!(pair
        .server_ep
        .handle_datagram(now, client_addr(), BytesMut::from(&first[..]))
        .is_none());
    assert!(pair.server_ep.poll_transmit(&mut buf).is_none());
}

#[test]
fn a_full_connection_table_refuses_with_connection_refused() {
    let mut setup = Setup::new(41);
    setup.server_config.zero_rtt = false;
    let mut pair = Pair::new(&setup);
    pair.server_ep = Endpoint::new(
        Arc::new(EndpointConfig {
            max_connections: 1,
            ..server_endpoint_config()
        }),
        Some(pair.server_config.clone()),
        Rng::from_seed([5; 32]),
        pair.now,
    )
    .unwrap();
    pair.handshake();
    // A second client on the same endpoint pair is refused with a clear reason.
    let now = pair.now;
    let (h, conn) = pair
        .client_ep
        .connect(
            now,
            Arc::new(setup.client_config.clone()),
            server_addr(),
            None,
        )
        .unwrap();
    let first = pair.client.replace((h, conn));
    pair.drive_until(200, |p| {
        p.client.as_ref().is_some_and(|(_, c)| c.is_closed())
    });
    let events = Pair::events(pair.client());
    assert!(
        matches!(
            lost(&events),
            Some(ConnectionError::ConnectionClosed {
                code: TransportErrorCode::CONNECTION_REFUSED,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(pair.server_ep.stats().refused >= 1);
    assert!(first.is_some());
}

#[test]
fn handshakes_from_one_source_are_rate_limited() {
    let setup = Setup::new(42);
    let mut pair = Pair::new(&setup);
    pair.flush();
    let first = pair.client_sent[0].clone();
    let now = pair.now;
    let mut accepted = 0;
    for i in 0..10u8 {
        // A fresh destination ID per attempt, as new clients would choose.
        let mut d = first.clone();
        d[6] ^= i.wrapping_add(1);
        if let Some(DatagramEvent::NewConnection(..)) = pair.server_ep.handle_datagram(
            now,
            "10.9.9.9:1000".parse().unwrap(),
            BytesMut::from(&d[..]),
        ) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 5, "the per-source burst is 5");
    // Another source is not affected by the first one's flood.
    let other = pair.server_ep.handle_datagram(
        now,
        "10.8.8.8:1000".parse().unwrap(),
        BytesMut::from(&first[..]),
    );
    assert!(matches!(other, Some(DatagramEvent::NewConnection(..))));
}

#[test]
fn nat_rebinding_is_followed_after_path_validation() {
    let mut pair = Pair::new(&Setup::new(43));
    pair.handshake();
    exchange_datagrams(&mut pair);
    pair.client_from = "10.0.0.1:4999".parse().unwrap();
    exchange_datagrams(&mut pair);
    pair.run_for(Duration::from_millis(200));
    let server = pair.server();
    assert_eq!(server.remote_address(), "10.0.0.1:4999".parse().unwrap());
    assert!(
        server.address_validated,
        "the new path was validated by PATH_CHALLENGE/RESPONSE"
    );
    assert!(server.path_challenge.is_none());
    exchange_datagrams(&mut pair);
}

#[test]
fn an_unauthenticated_client_gets_no_data_through() {
    let mut rng = Rng::from_seed([44; 32]);
    let trusted = IdentityKey::generate(SignatureScheme::Ed25519, &mut rng).public();
    let mut setup = Setup::new(45);
    setup.server_config.client_auth = crate::config::ClientAuth::Required(vec![trusted]);
    let mut pair = Pair::new(&setup);
    // The client completes on its side after the server's Finished and sends 1-RTT data at once.
    pair.drive_until(100, |p| {
        p.client
            .as_ref()
            .is_some_and(|(_, c)| c.is_handshake_complete() || c.is_closed())
    });
    let _ = pair.client().send_datagram(Bytes::from_static(b"sneaky"));
    pair.drive_until(200, |p| {
        p.server.as_ref().is_some_and(|(_, s)| s.is_closed())
    });
    assert!(pair.server().datagrams.incoming.is_empty());
    let events = Pair::events(pair.server());
    assert!(
        matches!(lost(&events), Some(ConnectionError::TransportError(e)) if e.code == TransportErrorCode::HANDSHAKE_FAILED)
    );
}

#[test]
fn rejected_zero_rtt_stream_data_is_resent_under_one_rtt_keys() {
    let setup = Setup::new(46);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.run_for(Duration::from_millis(100));
    let ticket = Pair::events(pair.client())
        .into_iter()
        .find_map(|e| match e {
            Event::NewTicket(t) => Some(*t),
            _ => None,
        })
        .unwrap();
    // Use the ticket once so that its second use is refused by the replay filter.
    let mut first = Pair::with_ticket(&setup, Some(ticket.clone()));
    first.handshake();
    assert_eq!(
        first.client().handshake_info().unwrap().early_data,
        EarlyData::Accepted
    );

    let mut pair = Pair::with_ticket(&setup, Some(ticket));
    let id = pair
        .client()
        .open_bi()
        .expect("0-RTT streams under the resumed limits");
    pair.client().set_replay_safe(id, true);
    pair.client().write(id, b"GET /index.html").unwrap();
    pair.client().finish(id).unwrap();
    pair.handshake();
    assert_eq!(
        pair.client().handshake_info().unwrap().early_data,
        EarlyData::Rejected
    );
    pair.run_for(Duration::from_millis(300));
    let server = pair.server();
    let got = server.accept_bi().expect("the stream arrived");
    assert!(!server.received_early(got), "it came under 1-RTT keys");
    let mut buf = [0u8; 64];
    assert_eq!(server.read_into(got, &mut buf), Ok(Some(15)));
    assert_eq!(&buf[..15], b"GET /index.html");
}

#[test]
fn accepted_zero_rtt_stream_data_is_marked_early() {
    let setup = Setup::new(47);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.run_for(Duration::from_millis(100));
    let ticket = Pair::events(pair.client())
        .into_iter()
        .find_map(|e| match e {
            Event::NewTicket(t) => Some(*t),
            _ => None,
        })
        .unwrap();
    let mut pair = Pair::with_ticket(&setup, Some(ticket));
    let id = pair.client().open_bi().unwrap();
    pair.client().set_replay_safe(id, true);
    pair.client().write(id, b"idempotent").unwrap();
    let unsafe_id = pair.client().open_bi().unwrap();
    pair.client().write(unsafe_id, b"not replay safe").unwrap();
    // After one round trip the server has the replay-safe data, before the handshake completes.
    pair.run_for(Duration::from_millis(15));
    let server = pair.server();
    assert!(!server.is_handshake_complete());
    let got = server.accept_bi().expect("0-RTT stream");
    assert!(server.received_early(got));
    assert!(
        server.accept_bi().is_none(),
        "data not marked replay-safe waits for 1-RTT"
    );
    pair.handshake();
}

#[test]
fn flow_control_stalls_a_sender_whose_peer_does_not_read_and_resumes_when_it_reads() {
    let mut setup = Setup::new(48);
    let window = 64 << 10;
    setup.server_config.transport = Arc::new(TransportConfig {
        stream_receive_window: window,
        max_stream_receive_window: window,
        receive_window: 2 * window,
        ..TransportConfig::default()
    });
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let id = pair.client().open_uni().unwrap();
    let data = vec![7u8; 1 << 20];
    let mut written = 0;
    // Write as much as the peer allows; the peer does not read.
    for _ in 0..50 {
        written += pair.client().write(id, &data[written..]).unwrap();
        pair.run_for(Duration::from_millis(50));
        let server = pair.server();
        assert!(
            server.streams.recv_buffered() <= 2 * window,
            "receiver buffered beyond its window"
        );
    }
    assert_eq!(
        written as u64, window,
        "the sender stalls exactly at the stream window"
    );
    assert_eq!(pair.client().write(id, &data[written..]), Ok(0));
    // The reader reads: the window reopens and the writer is told.
    let server_id = pair.server().accept_uni().unwrap();
    let mut total = 0;
    let mut writable = false;
    for _ in 0..200 {
        while let Ok(Some(chunk)) = pair.server().read(server_id, usize::MAX) {
            total += chunk.len();
        }
        while let Some(e) = pair.client().poll_event() {
            writable |= matches!(
                e,
                Event::Stream(crate::stream::StreamEvent::Writable { .. })
            );
        }
        if written < data.len() {
            written += pair.client().write(id, &data[written..]).unwrap();
        }
        pair.run_for(Duration::from_millis(50));
        if total == data.len() {
            break;
        }
    }
    assert!(writable, "a Writable event announced the reopened window");
    assert_eq!(total, data.len());
}

#[test]
fn a_spoofed_source_address_does_not_hijack_the_connection() {
    let mut pair = Pair::new(&Setup::new(49));
    pair.handshake();
    exchange_datagrams(&mut pair);
    // An on-path attacker rewrites the source of one packet to an address that never answers.
    let spoofed: SocketAddr = "10.66.66.66:666".parse().unwrap();
    pair.blackhole = Some(spoofed);
    pair.client_from = spoofed;
    pair.client()
        .send_datagram(Bytes::from_static(b"rewritten"))
        .unwrap();
    pair.flush();
    pair.client_from = client_addr();
    pair.run_for(Duration::from_secs(3));
    assert_eq!(
        pair.server().remote_address(),
        client_addr(),
        "the server is back on the real path"
    );
    assert!(pair.server().address_validated);
    assert_eq!(pair.server().recv_datagram().unwrap(), &b"rewritten"[..]);
    exchange_datagrams(&mut pair);
}

#[test]
fn poll_transmit_never_spins_on_acknowledgement_only_packets() {
    let mut pair = Pair::new(&Setup::new(50));
    pair.impair = Impairment::new(0.3, 0.0, 0.0, 3);
    pair.handshake();
    pair.impair = Impairment::clean();
    let max = pair.client().max_datagram_size();
    assert!(max > 1000);
    for _ in 0..3 {
        pair.client()
            .send_datagram(Bytes::from(vec![1u8; max]))
            .unwrap();
    }
    pair.server()
        .send_datagram(Bytes::from_static(b"x"))
        .unwrap();
    pair.run_for(Duration::from_millis(30));
    let now = pair.now;
    let client = pair.client();
    let mut buf = vec![0u8; 1500];
    let mut calls = 0;
    while client.poll_transmit(now, &mut buf).is_some() {
        calls += 1;
        assert!(calls < 20, "poll_transmit keeps producing packets");
    }
}

#[test]
fn the_opt_in_key_log_exports_matching_secrets_on_both_sides() {
    let mut setup = Setup::new(60);
    let transport = Arc::new(TransportConfig {
        key_log: true,
        ..TransportConfig::default()
    });
    setup.client_config.transport = transport.clone();
    setup.server_config.transport = transport;
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let logged = |conn: &mut Connection| -> Vec<KeyLogEntry> {
        Pair::events(conn)
            .into_iter()
            .filter_map(|e| match e {
                Event::KeyLog(k) => Some(k),
                _ => None,
            })
            .collect()
    };
    let client = logged(pair.client());
    let server = logged(pair.server());
    let labels: Vec<&str> = client.iter().map(|k| k.label).collect();
    assert_eq!(
        labels,
        [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0"
        ]
    );
    assert_eq!(
        client, server,
        "both sides export the same secrets under the same connection ID"
    );
    assert!(client[2].to_line().starts_with("CLIENT_TRAFFIC_SECRET_0 "));
    // Off by default: nothing is exported.
    let mut pair = Pair::new(&Setup::new(61));
    pair.handshake();
    assert!(logged(pair.client()).is_empty());
}
