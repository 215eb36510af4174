//! A client and a server wired through an in-memory link with a fixed delay on a virtual clock,
//! through the core's public API only, for the attack suites that need to capture, replay or
//! forge datagrams. Everything is deterministic from the seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jsp_sim::jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use jsp_sim::jsp_core::connection::{Connection, Event};
use jsp_sim::jsp_core::crypto::schedule::{directional_keys, DirectionalKeys, Secret};
use jsp_sim::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_sim::jsp_core::crypto::{Backend, CipherSuite, TAG_LEN};
use jsp_sim::jsp_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use jsp_sim::jsp_core::handshake::ClientTicket;
use jsp_sim::jsp_core::packet::{self, header, HeaderSpec, PacketKind};
use jsp_sim::jsp_core::rand::Rng;
use jsp_sim::jsp_core::session::ServerResumption;
use jsp_sim::jsp_core::{ConnectionId, Duration, Instant};

pub(crate) const ONE_WAY: Duration = Duration::from_millis(10);

pub(crate) fn client_addr() -> SocketAddr {
    "10.1.0.1:50000".parse().unwrap()
}

pub(crate) fn server_addr() -> SocketAddr {
    "10.0.0.1:443".parse().unwrap()
}

/// Server and client configuration sharing one identity and resumption state.
pub(crate) struct Configs {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
}

impl Configs {
    pub(crate) fn new(seed: u8, transport: TransportConfig) -> Self {
        let mut rng = Rng::from_seed([seed; 32]);
        let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
        let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
        let transport = Arc::new(transport);
        let mut server = ServerConfig::new(identity.clone(), resumption);
        server.transport = transport.clone();
        let mut client = ClientConfig::pinned(identity.public());
        client.transport = transport;
        Self {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// The two endpoints, their connections and the link.
pub(crate) struct Net {
    pub(crate) now: Instant,
    pub(crate) client_ep: Endpoint,
    pub(crate) server_ep: Endpoint,
    pub(crate) client: Connection,
    /// Every server connection, in creation order.
    pub(crate) servers: Vec<(ConnectionHandle, Connection)>,
    link: Vec<InFlight>,
    /// Every datagram the client sent, in order.
    pub(crate) client_sent: Vec<Vec<u8>>,
    /// Bytes the server sent, in total.
    pub(crate) server_bytes_sent: u64,
    /// The client sends nothing (the server only sees what is injected).
    pub(crate) client_muted: bool,
    /// The source address the client's datagrams carry on arrival (an on-path rewrite).
    pub(crate) client_from: SocketAddr,
    /// A victim address: what the server sends there is counted and never answered.
    pub(crate) victim: Option<SocketAddr>,
    /// Bytes arriving at the server from the victim's address, and sent by it to that address.
    pub(crate) victim_received: u64,
    pub(crate) victim_sent: u64,
}

impl Net {
    pub(crate) fn new(
        configs: &Configs,
        seed: u8,
        ticket: Option<ClientTicket>,
        now: Instant,
    ) -> Self {
        let server_ep = Endpoint::new(
            Arc::new(EndpointConfig {
                stateless_reset_key: Some([seed; 32]),
                ..EndpointConfig::default()
            }),
            Some(configs.server.clone()),
            Rng::from_seed([seed.wrapping_add(1); 32]),
            now,
        )
        .unwrap();
        let mut client_ep = Endpoint::new(
            Arc::new(EndpointConfig::default()),
            None,
            Rng::from_seed([seed.wrapping_add(2); 32]),
            now,
        )
        .unwrap();
        let (_, client) = client_ep
            .connect(now, configs.client.clone(), server_addr(), ticket)
            .unwrap();
        Self {
            now,
            client_ep,
            server_ep,
            client,
            servers: Vec::new(),
            link: Vec::new(),
            client_sent: Vec::new(),
            server_bytes_sent: 0,
            client_muted: false,
            client_from: client_addr(),
            victim: None,
            victim_received: 0,
            victim_sent: 0,
        }
    }

    pub(crate) fn server(&mut self) -> &mut Connection {
        &mut self.servers.first_mut().expect("a server connection").1
    }

    /// Puts `data` on the link to the server, arriving one delay from now.
    pub(crate) fn inject(&mut self, from: SocketAddr, data: Vec<u8>) {
        self.link.push(InFlight {
            at: self.now + ONE_WAY,
            from,
            to: server_addr(),
            data,
        });
    }

    fn flush(&mut self) {
        let mut buf = vec![0u8; 1500];
        loop {
            let mut sent = false;
            let client = if self.client_muted {
                None
            } else {
                self.client.poll_transmit(self.now, &mut buf)
            };
            if let Some(t) = client {
                let d = buf[..t.size].to_vec();
                self.client_sent.push(d.clone());
                if Some(self.client_from) == self.victim {
                    self.victim_received += d.len() as u64;
                }
                self.link.push(InFlight {
                    at: self.now + ONE_WAY,
                    from: self.client_from,
                    to: t.destination,
                    data: d,
                });
                sent = true;
            }
            let mut out = Vec::new();
            for (_, s) in &mut self.servers {
                if let Some(t) = s.poll_transmit(self.now, &mut buf) {
                    out.push((t.destination, buf[..t.size].to_vec()));
                }
            }
            while let Some(t) = self.server_ep.poll_transmit(&mut buf) {
                out.push((t.destination, buf[..t.size].to_vec()));
            }
            for (to, d) in out {
                self.server_bytes_sent += d.len() as u64;
                if Some(to) == self.victim {
                    self.victim_sent += d.len() as u64;
                    sent = true;
                    continue;
                }
                self.link.push(InFlight {
                    at: self.now + ONE_WAY,
                    from: server_addr(),
                    to,
                    data: d,
                });
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
                    conn.handle_datagram(self.now, d.from, data);
                    self.servers.push((h, *conn));
                }
                Some(DatagramEvent::Route(h, data)) => {
                    if let Some((_, c)) = self.servers.iter_mut().find(|(x, _)| *x == h) {
                        c.handle_datagram(self.now, d.from, data);
                    }
                }
                None => {}
            }
        } else if d.to == client_addr() {
            if let Some(DatagramEvent::Route(_, data)) =
                self.client_ep.handle_datagram(self.now, d.from, data)
            {
                self.client.handle_datagram(self.now, d.from, data);
            }
        }
    }

    fn endpoint_events(&mut self) {
        for (h, s) in &mut self.servers {
            while let Some(e) = s.poll_endpoint_event() {
                self.server_ep.handle_event(*h, e);
            }
        }
        // The client's endpoint events (tokens, retirement) do not matter here.
        while self.client.poll_endpoint_event().is_some() {}
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.servers
            .iter()
            .filter_map(|(_, c)| c.poll_timeout())
            .chain(self.client.poll_timeout().filter(|_| !self.client_muted))
            .chain(self.link.iter().map(|d| d.at))
            .min()
    }

    /// Sends what is due, then advances to the next delivery or timer. False when idle.
    pub(crate) fn step(&mut self) -> bool {
        self.endpoint_events();
        self.flush();
        let Some(next) = self.next_deadline() else {
            return false;
        };
        self.now = self.now.max(next);
        self.link.sort_by_key(|d| d.at);
        let due = self.link.iter().take_while(|d| d.at <= self.now).count();
        for d in self.link.drain(..due).collect::<Vec<_>>() {
            self.deliver(d);
        }
        let now = self.now;
        if !self.client_muted && self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        for (_, s) in &mut self.servers {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        true
    }

    /// Steps until `done`, panicking after `max` steps.
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
            "not reached after {max} steps at {:?}",
            self.now
        );
    }

    /// Runs everything due within `d`; the clock ends at now + `d`.
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
        self.now = self.now.max(end);
    }

    /// Drives the handshake to completion on both sides.
    pub(crate) fn handshake(&mut self) {
        self.drive_until(300, |n| {
            n.client.is_handshake_complete()
                && n.servers
                    .first()
                    .is_some_and(|(_, s)| s.is_handshake_complete())
        });
    }
}

/// Every event `conn` has queued.
pub(crate) fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Seals one packet of `kind` carrying `frames` (padded to `pad_to` bytes of packet, at least
/// the header-protection sample's minimum) under `keys`.
pub(crate) fn forge_packet(
    kind: PacketKind,
    dcid: ConnectionId,
    scid: ConnectionId,
    pn: u64,
    frames: &[u8],
    pad_to: usize,
    keys: &DirectionalKeys,
) -> Vec<u8> {
    let spec = HeaderSpec {
        kind,
        version: jsp_sim::jsp_core::VERSION_1,
        dcid,
        scid,
        token: &[],
        pn,
        pn_len: 4,
        key_phase: false,
        spin: false,
    };
    let mut buf = vec![0u8; 1500 + frames.len()];
    let mut w = jsp_sim::jsp_core::coding::Writer::new(&mut buf);
    let hdr = header::write(&mut w, &spec).unwrap();
    let header_len = hdr.len();
    let body = frames
        .len()
        .max(pad_to.saturating_sub(header_len + TAG_LEN))
        .max(24);
    let total = header_len + body + TAG_LEN;
    buf[header_len..header_len + frames.len()].copy_from_slice(frames);
    buf[header_len + frames.len()..total].fill(0); // PADDING frames
    buf.truncate(total);
    packet::seal(&mut buf, &hdr, pn, &*keys.packet, &*keys.header).unwrap();
    buf
}

/// The client's 1-RTT sending keys, rebuilt from its key log (the attacker is the client).
pub(crate) fn client_one_rtt_keys(
    log: &[Event],
    suite: CipherSuite,
    backend: Backend,
) -> DirectionalKeys {
    let secret = log
        .iter()
        .find_map(|e| match e {
            Event::KeyLog(k) if k.label == "CLIENT_TRAFFIC_SECRET_0" => Some(k.secret),
            _ => None,
        })
        .expect("the client logged its 1-RTT secret");
    directional_keys(backend, suite, &Secret::from_bytes(secret))
}

/// Whether datagram `d` holds a packet of `kind` (walking coalesced long-header packets).
pub(crate) fn has_packet(d: &[u8], kind: PacketKind, cid_len: usize) -> bool {
    let mut rest = d;
    while let Ok(p) = packet::decode(rest, cid_len) {
        match p.header {
            packet::Header::Long { kind: k, .. } if k == kind => return true,
            packet::Header::Short { .. } => return kind == PacketKind::Short,
            _ => {}
        }
        if p.len == 0 || p.len >= rest.len() {
            break;
        }
        rest = &rest[p.len..];
    }
    false
}
