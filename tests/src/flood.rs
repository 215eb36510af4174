//! A spoofed-source ClientHello flood against a simulated server while a legitimate client
//! connects and transfers data: the scenario of the `attack_flood` suite and of the flood
//! memory test (`tests/tests/flood_memory.rs`), one implementation for both.
//!
//! The flood is real first-flight datagrams (hybrid ClientHellos from 1,000 real client
//! connections), each flight sent from a fresh spoofed address. The server runs in a wrapper
//! node that injects the flood into its endpoint on the virtual clock and swallows — and
//! counts, per address — everything the server sends back to spoofed addresses, so a run
//! measures the amplification and the work each mode lets an attacker cause.
//!
//! A key exchange (X25519 + ML-KEM-768 encapsulation) happens only inside a server connection,
//! once it has a whole ClientHello, so "connections created for spoofed sources" bounds the
//! key exchanges the flood caused.
//!
//! **Heap accounting.** With a [`HeapCounter`] (a counting global allocator's live bytes, in a
//! test binary that runs nothing else), the wrapper charges to the server every byte allocated
//! minus freed *inside* the server node's calls (endpoint, connections, the server
//! application), plus each received datagram's buffer from the moment it is handed over (the
//! server owns it then, and frees it inside its calls). The simulator, the client, the flood
//! generator and the wrapper's own bookkeeping allocate outside those calls and are not
//! charged. Because the simulator is single-threaded, the difference of the global counter
//! around a call is exactly what that call allocated.
#![allow(clippy::expect_used)] // a test scenario fails by panicking, as documented on `run`

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use jsp_sim::jsp_core::config::{
    AddressValidation, ClientConfig, EndpointConfig, ServerConfig, TransportConfig,
};
use jsp_sim::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_sim::jsp_core::endpoint::{Endpoint, EndpointFootprint, EndpointStats};
use jsp_sim::jsp_core::rand::Rng;
use jsp_sim::jsp_core::session::ServerResumption;
use jsp_sim::jsp_core::{Duration, Instant};
use jsp_sim::node::{Node, Transmit};
use jsp_sim::scenario::{ClientApp, ServerApp, Transfer};
use jsp_sim::{JspNode, Simulator};

use crate::profile;

/// The server's address.
pub const SERVER: &str = "10.0.0.1:443";
/// The legitimate client's address.
pub const CLIENT: &str = "10.1.0.1:50000";

/// Reads the live heap of the process: bytes allocated minus bytes freed so far, from a
/// counting global allocator.
pub type HeapCounter = fn() -> u64;

/// What a spoofed address sent and was sent.
#[derive(Clone, Copy, Debug, Default)]
struct AddrBytes {
    received: u64,
    sent: u64,
}

/// The server's heap as charged by [`FloodedServer`], in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapFigures {
    /// Right after the server node was created (endpoint, configuration, application).
    pub created: i64,
    /// When the first flood datagram arrives (the legitimate client's handshake may be under
    /// way; in a run without flood, at the same instant).
    pub before: i64,
    /// The highest value while the flood runs.
    pub peak: i64,
    /// Connections in the endpoint's table at the peak.
    pub connections_at_peak: usize,
    /// Most connections in the table at once while the flood ran.
    pub max_connections: usize,
    /// When the last flood datagram has been handled.
    pub at_flood_end: i64,
    /// At the end of the run (the flood over, the transfer done, timers run out).
    pub after: i64,
    /// Connections still in the table at the end.
    pub connections_after: usize,
    /// Spoofed flights that made the server create a connection.
    pub spoofed_accepts: u64,
    /// The most heap growth over one such flight (both datagrams, with the calls that sent the
    /// answers): what one half-open connection for a spoofed source costs on arrival — its
    /// state, key exchange, first flight kept for retransmission, table entries. The node's
    /// connection map stores connections by value in B-tree nodes of 11, so every 11th or so
    /// connection also pays for a new node.
    pub spoofed_accept_max: i64,
    /// The least growth over one such flight (a connection that paid for no new map node).
    pub spoofed_accept_min: i64,
    /// Sum of the growth over those flights.
    pub spoofed_accept_total: i64,
    /// The heap growth of the call that accepted the legitimate client's connection (with
    /// whatever the server application allocated then).
    pub legitimate_accept: i64,
}

struct HeapMeter {
    read: HeapCounter,
    figures: HeapFigures,
    /// The running charge.
    now: i64,
}

/// The largest sizes each endpoint table reached while the flood ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprints {
    /// Element-wise maximum over every sample (after each flood datagram).
    pub max: EndpointFootprint,
    /// Samples taken.
    pub samples: u64,
}

impl Footprints {
    fn add(&mut self, f: EndpointFootprint) {
        let m = &mut self.max;
        m.connections = m.connections.max(f.connections);
        m.routed_cids = m.routed_cids.max(f.routed_cids);
        m.reset_tokens = m.reset_tokens.max(f.reset_tokens);
        m.tracked_sources = m.tracked_sources.max(f.tracked_sources);
        m.queued_responses = m.queued_responses.max(f.queued_responses);
        m.token_log = m.token_log.max(f.token_log);
        m.stored_tokens = m.stored_tokens.max(f.stored_tokens);
        self.samples += 1;
    }
}

/// A server node under a spoofed flood.
struct FloodedServer {
    inner: JspNode,
    /// First flights to replay (each one or more datagrams).
    flights: Vec<Vec<Vec<u8>>>,
    /// Flights still to send, and how many go out per tick.
    remaining: usize,
    per_tick: usize,
    tick: Duration,
    next_tick: Instant,
    sent_flights: usize,
    rng: Rng,
    /// Per spoofed address.
    spoofed: BTreeMap<SocketAddr, AddrBytes>,
    /// Transmits to real peers, held until the simulator polls.
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    datagrams: u64,
    /// Connections created while the flood ran (the legitimate client's included).
    accepted_at_first_load: Option<u64>,
    heap: Option<HeapMeter>,
    footprints: Footprints,
    /// A transmit buffer, reused.
    buf: Vec<u8>,
}

impl FloodedServer {
    fn spoofed_addr(&mut self, i: usize) -> SocketAddr {
        // A unique address per flight in 198.18.0.0/15 (benchmarking range), random port.
        let ip = Ipv4Addr::from(0xc612_0000u32 + (i as u32 % (1 << 17)));
        let port = 1024 + (self.rng.u64() % 60_000) as u16;
        SocketAddr::new(IpAddr::V4(ip), port)
    }

    /// Runs `f` on the server node, charging to it what the call allocated minus what it
    /// freed, plus `handed_over` bytes the server takes ownership of.
    fn in_server<T>(&mut self, handed_over: usize, f: impl FnOnce(&mut JspNode) -> T) -> T {
        self.in_server_from(false, handed_over, f)
    }

    /// [`Self::in_server`], saying whether the call handles a spoofed datagram.
    fn in_server_from<T>(
        &mut self,
        spoofed: bool,
        handed_over: usize,
        f: impl FnOnce(&mut JspNode) -> T,
    ) -> T {
        let Some(read) = self.heap.as_ref().map(|h| h.read) else {
            return f(&mut self.inner);
        };
        let accepted = self.inner.endpoint().stats().accepted;
        let before = read();
        let out = f(&mut self.inner);
        let grown = read() as i64 - before as i64 + handed_over as i64;
        let accepts = self.inner.endpoint().stats().accepted - accepted;
        let connections = self.inner.endpoint().connection_count();
        let flooding = self.sent_flights > 0 && self.remaining > 0;
        if let Some(h) = self.heap.as_mut() {
            h.now += grown;
            let fig = &mut h.figures;
            if accepts > 0 && !spoofed {
                fig.legitimate_accept = fig.legitimate_accept.max(grown);
            }
            if flooding {
                fig.max_connections = fig.max_connections.max(connections);
                if h.now > fig.peak {
                    fig.peak = h.now;
                    fig.connections_at_peak = connections;
                }
            }
        }
        out
    }

    fn drain(&mut self, now: Instant) {
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(t) = self.in_server(0, |s| s.poll_transmit(now, &mut buf)) {
            if let Some(b) = self.spoofed.get_mut(&t.destination) {
                b.sent += t.size as u64;
            } else {
                self.out.push_back((t.destination, buf[..t.size].to_vec()));
            }
        }
        self.buf = buf;
    }

    fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    /// Sends the next flight from a fresh spoofed address.
    fn send_flight(&mut self, now: Instant) {
        let i = self.sent_flights;
        let from = self.spoofed_addr(i);
        let template = i % self.flights.len();
        if i == 0 {
            if let Some(h) = self.heap.as_mut() {
                h.figures.before = h.now;
                h.figures.peak = h.now;
            }
        }
        self.sent_flights += 1;
        let start = (
            self.heap.as_ref().map_or(0, |h| h.now),
            self.endpoint().stats().accepted,
        );
        for d in 0..self.flights[template].len() {
            let data = BytesMut::from(&self.flights[template][d][..]);
            let e = self.spoofed.entry(from).or_default();
            e.received += data.len() as u64;
            self.datagrams += 1;
            self.in_server_from(true, data.capacity(), |s| {
                s.handle_datagram(now, from, data)
            });
            self.drain(now);
            self.footprints.add(self.endpoint().footprint());
        }
        let accepted = self.endpoint().stats().accepted - start.1;
        if let Some(h) = self.heap.as_mut().filter(|_| accepted > 0) {
            let grown = h.now - start.0;
            h.figures.spoofed_accepts += accepted;
            h.figures.spoofed_accept_max = h.figures.spoofed_accept_max.max(grown);
            h.figures.spoofed_accept_min = match h.figures.spoofed_accepts {
                1 => grown,
                _ => h.figures.spoofed_accept_min.min(grown),
            };
            h.figures.spoofed_accept_total += grown;
        }
        if self.accepted_at_first_load.is_none() && self.endpoint().is_under_load(now) {
            self.accepted_at_first_load = Some(self.endpoint().stats().accepted);
        }
        self.remaining -= 1;
        if self.remaining == 0 {
            if let Some(h) = self.heap.as_mut() {
                h.figures.at_flood_end = h.now;
            }
        }
    }
}

impl Node for FloodedServer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        self.in_server(data.capacity(), |s| s.handle_datagram(now, from, data));
        self.drain(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.drain(now);
        let (destination, data) = self.out.pop_front()?;
        buf[..data.len()].copy_from_slice(&data);
        Some(Transmit {
            destination,
            size: data.len(),
            segment_size: None,
        })
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let flood = (self.remaining > 0).then_some(self.next_tick);
        match (self.in_server(0, |s| s.poll_timeout()), flood) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.remaining > 0 && now >= self.next_tick {
            for _ in 0..self.per_tick.min(self.remaining) {
                self.send_flight(now);
            }
            self.next_tick = now + self.tick;
        }
        self.in_server(0, |s| {
            s.handle_timeout(now);
            // As a production driver does: the endpoint forgot them already.
            s.forget_drained();
        });
        self.drain(now);
    }

    fn progress(&self) -> u64 {
        self.inner.progress()
    }

    fn is_done(&self) -> bool {
        self.remaining == 0 && self.inner.is_done()
    }
}

/// The figures of one run.
#[derive(Debug)]
pub struct Outcome {
    /// Spoofed datagrams sent.
    pub datagrams: u64,
    /// Spoofed flights sent (each from its own address).
    pub flights: usize,
    /// The server endpoint's counters at the end.
    pub stats: EndpointStats,
    /// Connections the server created for spoofed sources.
    pub spoofed_connections: u64,
    /// Of those, created after the endpoint first detected load.
    pub after_load: u64,
    /// The highest bytes-sent ÷ bytes-received of any spoofed address.
    pub max_ratio: f64,
    /// Bytes received from spoofed addresses.
    pub total_received: u64,
    /// Bytes sent to spoofed addresses.
    pub total_sent: u64,
    /// Spoofed addresses used.
    pub addresses: usize,
    /// When the legitimate client's handshake completed.
    pub client_handshake: Option<Duration>,
    /// When the legitimate client's transfer completed.
    pub client_completed: Option<Duration>,
    /// The server's heap, when the run had a [`HeapCounter`].
    pub heap: Option<HeapFigures>,
    /// The largest endpoint tables during the flood.
    pub footprints: Footprints,
}

/// Real first flights of `n` client connections to the server.
fn first_flights(n: usize, client: &Arc<ClientConfig>, server: SocketAddr) -> Vec<Vec<Vec<u8>>> {
    let mut ep = Endpoint::new(
        Arc::new(EndpointConfig::default()),
        None,
        Rng::from_seed([42; 32]),
        Instant::ZERO,
    )
    .expect("client endpoint");
    let mut buf = vec![0u8; 1500];
    (0..n)
        .map(|_| {
            let (_, mut c) = ep
                .connect(Instant::ZERO, client.clone(), server, None)
                .expect("connect");
            std::iter::from_fn(|| {
                c.poll_transmit(Instant::ZERO, &mut buf)
                    .map(|t| buf[..t.size].to_vec())
            })
            .collect()
        })
        .collect()
}

/// Runs the scenario: with `with_flood`, `flights` spoofed first flights (two datagrams each)
/// spread over `flood_secs` seconds of virtual time from t = 0, against a server with
/// `policy` and default limits, while a legitimate client on the `lte` profile connects at
/// t = 0 and downloads 64 KiB; then 45 s more for everything to time out. With `heap`, the
/// server's heap is accounted (see the module docs).
///
/// # Panics
/// When the simulator fails or a configuration is refused.
pub fn run(
    policy: AddressValidation,
    flights: usize,
    flood_secs: u64,
    with_flood: bool,
    heap: Option<HeapCounter>,
) -> Outcome {
    let mut sim = Simulator::new(7);
    let mut rng = sim.rng().fork_core();
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let transport = Arc::new(TransportConfig::default());
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    server_config.transport = transport.clone();
    server_config.address_validation = policy;
    let mut client_config = ClientConfig::pinned(identity.public());
    client_config.transport = transport;
    let client_config = Arc::new(client_config);
    let server_addr: SocketAddr = SERVER.parse().expect("server address");
    let templates = first_flights(1000, &client_config, server_addr);
    let transfer = Transfer::large(64 << 10);
    let server_config = Arc::new(server_config);
    let endpoint_config = Arc::new(EndpointConfig::default());
    let app = Box::new(ServerApp::new(7, transfer.clone()));
    let rng = sim.rng().fork_core();
    let created_before = heap.map(|read| read());
    let inner = JspNode::server(endpoint_config, server_config, rng, Instant::ZERO, app)
        .expect("server node");
    let heap = heap.zip(created_before).map(|(read, before)| {
        let created = read() as i64 - before as i64;
        HeapMeter {
            read,
            figures: HeapFigures {
                created,
                before: created,
                peak: created,
                at_flood_end: created,
                ..HeapFigures::default()
            },
            now: created,
        }
    });
    let flood_ms = flood_secs * 1000;
    let flights_total = if with_flood { flights } else { 0 };
    let server = FloodedServer {
        inner,
        flights: templates,
        remaining: flights_total,
        per_tick: flights.div_ceil(flood_ms as usize).max(1),
        tick: Duration::from_millis(1),
        next_tick: Instant::ZERO,
        sent_flights: 0,
        rng: Rng::from_seed([9; 32]),
        spoofed: BTreeMap::new(),
        out: VecDeque::new(),
        datagrams: 0,
        accepted_at_first_load: None,
        heap,
        footprints: Footprints::default(),
        buf: vec![0u8; 65_536],
    };
    let server = sim.add_node("server", server_addr, Box::new(server));
    let mut client = JspNode::client(
        Arc::new(EndpointConfig::default()),
        sim.rng().fork_core(),
        Instant::ZERO,
        Box::new(ClientApp::new(7, transfer)),
    )
    .expect("client node");
    let lte = profile("lte");
    client
        .connect(Instant::ZERO, client_config.clone(), server_addr, None)
        .expect("connect");
    let client_addr: SocketAddr = CLIENT.parse().expect("client address");
    let client_id = sim.add_node("client", client_addr, Box::new(client));
    sim.connect(client_id, server, lte.up.clone(), lte.down.clone());
    sim.run_until(Instant::from_millis(flood_ms + 45_000))
        .expect("simulation");

    let s = sim.node_mut::<FloodedServer>(server).expect("server node");
    let connections_after = s.endpoint().connection_count();
    let heap = s.heap.as_mut().map(|h| {
        h.figures.after = h.now;
        h.figures.connections_after = connections_after;
        h.figures
    });
    let s = sim.node::<FloodedServer>(server).expect("server node");
    let app = sim
        .node::<JspNode>(client_id)
        .expect("client node")
        .app::<ClientApp>()
        .expect("client app");
    let stats = s.endpoint().stats();
    let legit = stats.accepted.min(1);
    let spoofed_connections = stats.accepted - legit;
    let after_load = s.accepted_at_first_load.map_or(0, |at| {
        stats.accepted.saturating_sub(at).saturating_sub(legit)
    });
    let (mut max_ratio, mut total_received, mut total_sent) = (0.0f64, 0, 0);
    for b in s.spoofed.values() {
        max_ratio = max_ratio.max(b.sent as f64 / b.received as f64);
        total_received += b.received;
        total_sent += b.sent;
    }
    Outcome {
        datagrams: s.datagrams,
        flights: s.sent_flights,
        stats,
        spoofed_connections,
        after_load,
        max_ratio,
        total_received,
        total_sent,
        addresses: s.spoofed.len(),
        client_handshake: app.connected_at.map(|t| t.since_origin()),
        client_completed: app.completed_at.map(|t| t.since_origin()),
        heap,
        footprints: s.footprints,
    }
}

/// Prints the figures of a run, prefixed with `name`.
pub fn print(name: &str, o: &Outcome) {
    println!(
        "{name}: {} datagrams in {} flights from {} spoofed addresses; connections for spoofed \
         sources {} ({} after load was detected); retries {}, refused {}, load episodes {}; \
         bytes to spoofed addresses {} for {} received (total ratio {:.3}, worst address {:.3}); \
         legitimate client: handshake at {:?}, 64 KiB delivered at {:?}",
        o.datagrams,
        o.flights,
        o.addresses,
        o.spoofed_connections,
        o.after_load,
        o.stats.retries_sent,
        o.stats.refused,
        o.stats.load_episodes,
        o.total_sent,
        o.total_received,
        o.total_sent as f64 / o.total_received.max(1) as f64,
        o.max_ratio,
        o.client_handshake,
        o.client_completed,
    );
}
