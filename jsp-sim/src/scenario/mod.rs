//! Transfer scenarios: clients move pattern data to a server over a profile's links, and the run
//! is checked against the invariants of a reliable transport.
//!
//! The invariants ([`Report::violations`] lists each one broken):
//! - every reliable byte arrives exactly once, in order, unaltered (checked at its offset and by
//!   comparing SHA-256 digests of what was sent and what was received), with the stream's end;
//! - or the connection ends with a clear error, and only after the network was cut for at least
//!   the idle timeout — never a silent hang (no progress for a bounded time fails the run);
//! - datagrams arrive intact and at most once (all of them when the path loses nothing);
//! - memory stays bounded: link queues within their bounds, the event queue bounded, and the
//!   connections' counters consistent with what the network carried.

mod apps;
pub mod files;
pub mod messages;
pub mod on_time;
pub mod pattern;
mod random;

use std::net::SocketAddr;
use std::sync::Arc;

use jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use jsp_core::connection::ConnectionStats;
use jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_core::session::ServerResumption;
use jsp_core::{Duration, Instant};

pub use self::apps::{ClientApp, ClientStream, Loss, ServerApp, ServerConn, ServerStream};
use crate::jsp::{JspApp, JspNode};
use crate::link::{LinkChange, LinkStats};
use crate::profile::{Fault, Profile};
use crate::sim::{LinkId, NodeId, RunLimits, SimError, SimStats, Simulator, Which};
use crate::trace::TraceHash;

/// What each client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Streams the client opens.
    pub streams: usize,
    /// Bytes the client sends on each stream.
    pub bytes_per_stream: u64,
    /// Bytes the server answers on each stream; when non-zero the streams are bidirectional,
    /// otherwise unidirectional.
    pub response_bytes: u64,
    /// Unreliable datagrams the client sends.
    pub datagrams: usize,
    /// Size of each datagram (at least 8: a sequence number leads it).
    pub datagram_size: usize,
}

impl Transfer {
    /// One large stream of `bytes`.
    pub fn large(bytes: u64) -> Self {
        Self::many(1, bytes)
    }

    /// `streams` unidirectional streams of `bytes_each`.
    pub fn many(streams: usize, bytes_each: u64) -> Self {
        Self {
            streams,
            bytes_per_stream: bytes_each,
            response_bytes: 0,
            datagrams: 0,
            datagram_size: 0,
        }
    }

    /// `streams` bidirectional streams: `up` bytes of request, `down` bytes of answer each.
    pub fn bidirectional(streams: usize, up: u64, down: u64) -> Self {
        Self {
            streams,
            bytes_per_stream: up,
            response_bytes: down.max(1),
            datagrams: 0,
            datagram_size: 0,
        }
    }

    /// `count` datagrams of `size` bytes, and one small stream.
    pub fn datagrams(count: usize, size: usize) -> Self {
        Self {
            streams: 1,
            bytes_per_stream: 1024,
            response_bytes: 0,
            datagrams: count,
            datagram_size: size.max(8),
        }
    }

    /// Reliable bytes per client, both directions.
    pub fn reliable_bytes(&self) -> u64 {
        self.streams as u64 * (self.bytes_per_stream + self.response_bytes)
    }
}

/// A whole run: network, faults, clients and what they send.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed of everything random.
    pub seed: u64,
    /// The network.
    pub profile: Profile,
    /// Extra faults (on top of the profile's own).
    pub faults: Vec<Fault>,
    /// Clients, each on its own link to the server.
    pub clients: usize,
    /// What each client sends.
    pub transfer: Transfer,
    /// Both sides' idle timeout.
    pub idle_timeout: Duration,
    /// Both sides' keep-alive interval (none by default).
    pub keep_alive: Option<Duration>,
    /// Simulated time after which the run fails.
    pub time_limit: Duration,
    /// Trace lines to keep (0: none).
    pub trace_log: usize,
    /// Keep each datagram's queueing delay on the client → server links (for
    /// [`Report::up_queue_delays`]). Off by default.
    pub record_queue_delays: bool,
    /// Both JSP sides' forward-error-correction settings (none by default: FEC off).
    pub fec: Option<jsp_core::fec::FecConfig>,
}

impl Scenario {
    /// A scenario with one client, no extra faults, a 30 s idle timeout and a 1 h time limit.
    pub fn new(profile: Profile, seed: u64, transfer: Transfer) -> Self {
        Self {
            seed,
            profile,
            faults: Vec::new(),
            clients: 1,
            transfer,
            idle_timeout: Duration::from_secs(30),
            keep_alive: None,
            time_limit: Duration::from_secs(3600),
            trace_log: 0,
            record_queue_delays: false,
            fec: None,
        }
    }

    /// Every fault of the run: the profile's and the extra ones.
    pub fn all_faults(&self) -> impl Iterator<Item = &Fault> {
        self.profile.faults.iter().chain(self.faults.iter())
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        let t = &self.transfer;
        let mut s = format!(
            "profile {} seed {}: {} client(s) × {} stream(s) × {} B up",
            self.profile.name, self.seed, self.clients, t.streams, t.bytes_per_stream
        );
        if t.response_bytes > 0 {
            s += &format!(" + {} B down", t.response_bytes);
        }
        if t.datagrams > 0 {
            s += &format!(", {} datagrams × {} B", t.datagrams, t.datagram_size);
        }
        s += &format!(", idle timeout {:.1}s", self.idle_timeout.as_secs_f64());
        if let Some(k) = self.keep_alive {
            s += &format!(", keep-alive {:.1}s", k.as_secs_f64());
        }
        for f in &self.faults {
            s += &format!(", {f}");
        }
        s
    }

    /// Runs the scenario.
    pub fn run(&self) -> Report {
        run(self)
    }
}

/// What happened in a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's one-line description.
    pub scenario: String,
    /// The profile's name.
    pub profile: String,
    /// The seed.
    pub seed: u64,
    /// The trace hash: equal for equal seeds.
    pub trace_hash: TraceHash,
    /// Trace events recorded.
    pub trace_events: u64,
    /// Trace lines kept (see [`Scenario::trace_log`]).
    pub trace_log: Vec<String>,
    /// How the run itself failed (hang, stall, time limit), if it did.
    pub sim_error: Option<SimError>,
    /// Every client completed every transfer.
    pub completed: bool,
    /// When the last client completed, from the start.
    pub completion_time: Option<Duration>,
    /// Simulated time of the whole run.
    pub sim_time: Duration,
    /// Reliable bytes verified at the server (requests).
    pub bytes_up: u64,
    /// Reliable bytes verified at the clients (answers).
    pub bytes_down: u64,
    /// The first client's smoothed RTT at the end.
    pub rtt: Duration,
    /// Client → server link counters, all clients.
    pub up: LinkStats,
    /// Server → client link counters, all clients.
    pub down: LinkStats,
    /// The clients' connection counters, summed.
    pub client_stats: ConnectionStats,
    /// The server's connection counters, summed.
    pub server_stats: ConnectionStats,
    /// Datagrams the clients sent.
    pub datagrams_sent: u64,
    /// Datagrams the server received intact.
    pub datagrams_received: u64,
    /// Connections that ended with an error: who, when, why.
    pub losses: Vec<String>,
    /// Invariants broken. Empty for a good run.
    pub violations: Vec<String>,
    /// The simulator's own counters.
    pub sim_stats: SimStats,
    /// How long each datagram waited in the bottleneck queue of a client → server link, all
    /// clients (empty unless [`Scenario::record_queue_delays`]).
    pub up_queue_delays: Vec<Duration>,
}

impl Report {
    /// Whether every invariant held.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Goodput: reliable bytes delivered per second of completion time, in bits per second.
    pub fn goodput_bps(&self) -> f64 {
        let t = self
            .completion_time
            .unwrap_or(self.sim_time)
            .as_secs_f64()
            .max(1e-9);
        (self.bytes_up + self.bytes_down) as f64 * 8.0 / t
    }

    /// `Ok` or an error naming the profile, the seed and every broken invariant.
    pub fn check(&self) -> Result<(), String> {
        if self.is_ok() {
            return Ok(());
        }
        Err(format!(
            "{} (trace {}): {}",
            self.scenario,
            self.trace_hash,
            self.violations.join("; ")
        ))
    }
}

/// The server's address in every scenario.
pub const SERVER_ADDR: &str = "10.0.0.1:443";

pub(crate) fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 50_000))
}

fn at(d: Duration) -> Instant {
    Instant::from_duration(d)
}

/// Schedules `faults` on `link` (both directions) and, for NAT rebindings, on the node
/// `client` (the scenario's `i`th client, whose address it rebinds), as the scenario runners do:
/// for a custom build of a scenario's network (the `cc_timeline` example).
pub fn schedule_faults(
    sim: &mut Simulator,
    link: LinkId,
    client: NodeId,
    i: usize,
    faults: &[Fault],
) {
    let mut rebinds = 0u16;
    for f in faults {
        match f {
            Fault::Outage { at: t, duration } => {
                sim.schedule(at(*t), link, Which::Both, LinkChange::Down);
                sim.schedule(at(*t + *duration), link, Which::Both, LinkChange::Up);
            }
            Fault::Bandwidth { at: t, bps } => {
                sim.schedule(at(*t), link, Which::Both, LinkChange::Bandwidth(*bps))
            }
            Fault::Delay { at: t, delay } => {
                sim.schedule(at(*t), link, Which::Both, LinkChange::Delay(*delay))
            }
            Fault::Rebind { at: t } => {
                rebinds += 1;
                let mut addr = client_addr(i);
                addr.set_port(50_000 + rebinds);
                sim.schedule_rebind(at(*t), client, addr);
            }
        }
    }
}

/// A scenario's network, built: the simulator, the server and each client with its link.
#[derive(Debug)]
pub struct Setup {
    /// The simulator, at time zero.
    pub sim: Simulator,
    /// The server's node.
    pub server: NodeId,
    /// Each client's node and its link to the server.
    pub clients: Vec<(NodeId, LinkId)>,
}

/// A simulator for `s` with its recording options set, before any node is added.
pub(crate) fn new_simulator(s: &Scenario) -> Simulator {
    let mut sim = Simulator::new(s.seed);
    sim.trace_mut().set_log_limit(s.trace_log);
    if s.record_queue_delays {
        sim.record_queue_delays();
    }
    sim
}

fn build(s: &Scenario) -> Result<Setup, String> {
    build_jsp(
        s,
        Box::new(ServerApp::new(s.seed, s.transfer.clone())),
        |_| Box::new(ClientApp::new(s.seed, s.transfer.clone())),
    )
}

/// Builds the network of `s` with JSP nodes running other applications than the scenario's own
/// transfer: `server_app` on the server, `client_app(i)` on client `i`. Every random choice is
/// drawn as in [`Scenario::run`], so the links behave the same for the same seed.
pub fn build_jsp(
    s: &Scenario,
    server_app: Box<dyn JspApp>,
    mut client_app: impl FnMut(usize) -> Box<dyn JspApp>,
) -> Result<Setup, String> {
    let mut sim = new_simulator(s);
    let mut rng = sim.rng().fork_core();
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let transport = Arc::new(TransportConfig {
        idle_timeout: s.idle_timeout,
        keep_alive_interval: s.keep_alive,
        fec: s.fec.clone(),
        ..TransportConfig::default()
    });
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    server_config.transport = transport.clone();
    let mut client_config = ClientConfig::pinned(identity.public());
    client_config.transport = transport;
    let client_config = Arc::new(client_config);
    let endpoint = Arc::new(EndpointConfig::default());
    let server_addr: SocketAddr = SERVER_ADDR.parse().map_err(|e| format!("{e}"))?;
    let server_node = JspNode::server(
        endpoint.clone(),
        Arc::new(server_config),
        sim.rng().fork_core(),
        Instant::ZERO,
        server_app,
    )
    .map_err(|e| e.to_string())?;
    let server = sim.add_node("server", server_addr, Box::new(server_node));
    let faults: Vec<Fault> = s.all_faults().cloned().collect();
    let mut clients = Vec::new();
    for i in 0..s.clients {
        let mut node = JspNode::client(
            endpoint.clone(),
            sim.rng().fork_core(),
            Instant::ZERO,
            client_app(i),
        )
        .map_err(|e| e.to_string())?;
        node.connect(Instant::ZERO, client_config.clone(), server_addr, None)
            .map_err(|e| e.to_string())?;
        let id = sim.add_node(&format!("client {i}"), client_addr(i), Box::new(node));
        let link = sim.connect(id, server, s.profile.up.clone(), s.profile.down.clone());
        schedule_faults(&mut sim, link, id, i, &faults);
        clients.push((id, link));
    }
    Ok(Setup {
        sim,
        server,
        clients,
    })
}

/// The bounds of a run of `s`: its time limit, and a hang window longer than anything the
/// protocol may legitimately wait out.
pub fn run_limits(s: &Scenario) -> RunLimits {
    let longest_outage = s
        .all_faults()
        .filter_map(|f| match f {
            Fault::Outage { duration, .. } => Some(*duration),
            _ => None,
        })
        .max()
        .unwrap_or(Duration::ZERO);
    RunLimits {
        max_time: at(s.time_limit),
        // The effective idle timeout is max(idle, 3 × PTO), and one RTT sample taken across an
        // outage can make the PTO tens of seconds; past this long without progress, it is a hang.
        hang_after: (s.idle_timeout * 3 + Duration::from_secs(10))
            .max(Duration::from_secs(120))
            .max(longest_outage + Duration::from_secs(10)),
    }
}

/// Runs `s` and checks every invariant.
pub fn run(s: &Scenario) -> Report {
    let mut report = Report {
        scenario: s.describe(),
        profile: s.profile.name.clone(),
        seed: s.seed,
        trace_hash: TraceHash([0; 32]),
        trace_events: 0,
        trace_log: Vec::new(),
        sim_error: None,
        completed: false,
        completion_time: None,
        sim_time: Duration::ZERO,
        bytes_up: 0,
        bytes_down: 0,
        rtt: Duration::ZERO,
        up: LinkStats::default(),
        down: LinkStats::default(),
        client_stats: ConnectionStats::default(),
        server_stats: ConnectionStats::default(),
        datagrams_sent: 0,
        datagrams_received: 0,
        losses: Vec::new(),
        violations: Vec::new(),
        sim_stats: SimStats::default(),
        up_queue_delays: Vec::new(),
    };
    let mut setup = match build(s) {
        Ok(setup) => setup,
        Err(e) => {
            report.violations.push(format!("setup failed: {e}"));
            return report;
        }
    };
    let limits = run_limits(s);
    let mut result = setup.sim.run(limits);
    if result.is_ok() && s.transfer.datagrams > 0 {
        // Let datagrams still in flight land before counting them.
        let settle = setup.sim.now() + Duration::from_secs(10);
        result = setup.sim.run_until(settle);
    }
    if let Err(e) = result {
        report.violations.push(e.to_string());
        report.sim_error = Some(e);
    }
    evaluate(s, &setup, &mut report);
    report
}

fn evaluate(s: &Scenario, setup: &Setup, r: &mut Report) {
    let sim = &setup.sim;
    r.trace_hash = sim.trace_hash();
    r.trace_events = sim.trace().events();
    r.trace_log = sim.trace().log().to_vec();
    r.sim_time = sim.now().since_origin();
    r.sim_stats = sim.stats();
    let secs = |t: Instant| t.since_origin().as_secs_f64();
    // A loss is explained only by faults before it that the protocol cannot ride out:
    // - cuts covering at least half of the idle timeout before the loss: probe timeouts back off
    //   exponentially, so after a cut of length D the next probe can come up to ~D later, and a
    //   cut longer than half the idle timeout can expire the idle timer before any probe gets
    //   through (as in QUIC);
    // - a NAT rebinding while keep-alive is off: a client that is only receiving sends nothing
    //   but ACKs to packets that no longer reach it, so the server never learns its new address;
    // - a NAT rebinding before the server confirmed the handshake: the server follows a new
    //   client address only once the handshake is confirmed (docs/PROTOCOL.md, as RFC 9000 §9).
    let server_app = sim
        .node::<JspNode>(setup.server)
        .and_then(|n| n.app::<ServerApp>());
    let confirmed_before = |t: Instant| {
        server_app.is_some_and(|a| {
            !a.conns.is_empty()
                && a.conns
                    .values()
                    .all(|c| c.connected_at.is_some_and(|c| c <= t))
        })
    };
    let outages: Vec<(Instant, Instant)> = s
        .all_faults()
        .filter_map(|f| match f {
            Fault::Outage { at: t, duration } => Some((at(*t), at(*t + *duration))),
            _ => None,
        })
        .collect();
    let explained = |loss: &Loss| {
        let half = s.idle_timeout / 2;
        let window = loss.at - s.idle_timeout;
        let mut covered = Duration::ZERO;
        let mut until = window;
        let mut sorted = outages.clone();
        sorted.sort();
        for (start, end) in sorted {
            if start <= loss.at && end - start >= half {
                return true;
            }
            let (a, b) = (start.max(until), end.min(loss.at));
            if b > a {
                covered += b - a;
                until = b;
            }
        }
        covered >= half
            || s.all_faults().any(|f| match f {
                Fault::Rebind { at: t } => {
                    at(*t) <= loss.at && (s.keep_alive.is_none() || !confirmed_before(at(*t)))
                }
                _ => false,
            })
    };
    let mut all_complete = true;
    let mut last_completion = Instant::ZERO;
    // When every client's connection ended (for an explained reason), a server connection that
    // then times out has lost its peer: that loss is explained by the client's.
    let mut explained_client_losses: Vec<Instant> = Vec::new();
    let mut up_lossless = true;
    for (i, (id, link)) in setup.clients.iter().enumerate() {
        if let Some([up, _]) = sim.queue_delays(*link) {
            r.up_queue_delays.extend_from_slice(up);
        }
        if let Some([up, down]) = sim.link_stats(*link) {
            r.up.add(&up);
            r.down.add(&down);
            if let Some([(ucfg, _), (dcfg, _)]) = sim.link_config(*link) {
                if up.max_queue_bytes > ucfg.queue_bytes as u64
                    || down.max_queue_bytes > dcfg.queue_bytes as u64
                {
                    r.violations
                        .push(format!("client {i}: a link queue exceeded its bound"));
                }
                up_lossless &= ucfg.is_lossless() && up.dropped() == 0;
            }
        }
        let Some(app) = sim.node::<JspNode>(*id).and_then(|n| n.app::<ClientApp>()) else {
            r.violations.push(format!("client {i}: node missing"));
            continue;
        };
        if i == 0 {
            r.rtt = app.rtt;
        }
        add_stats(&mut r.client_stats, &app.stats);
        r.datagrams_sent += app.datagrams_sent;
        r.bytes_down += app.bytes_received();
        for e in &app.errors {
            r.violations.push(format!("client {i}: {e}"));
        }
        for (k, st) in app.streams.iter().enumerate() {
            if let Some(e) = st.response.as_ref().and_then(|v| v.error()) {
                r.violations
                    .push(format!("client {i} answer on stream {k}: {e}"));
            }
        }
        match (&app.lost, app.completed_at) {
            (_, Some(t)) => last_completion = last_completion.max(t),
            (Some(loss), None) => {
                all_complete = false;
                r.losses.push(format!(
                    "client {i}: {} at {:.3}s",
                    loss.error,
                    secs(loss.at)
                ));
                if explained(loss) {
                    explained_client_losses.push(loss.at);
                } else {
                    r.violations.push(format!(
                        "client {i} lost its connection at {:.3}s ({}) without a cut of half the idle timeout or a rebinding",
                        secs(loss.at),
                        loss.error
                    ));
                }
            }
            (None, None) => {
                all_complete = false;
                if r.sim_error.is_none() {
                    r.violations
                        .push(format!("client {i} neither completed nor ended"));
                }
            }
        }
        check_stats(
            &format!("client {i}"),
            &app.stats,
            &sim.link_stats(*link).map(|l| l[1]),
            r,
        );
    }
    let Some(server) = sim
        .node::<JspNode>(setup.server)
        .and_then(|n| n.app::<ServerApp>())
    else {
        r.violations.push("server node missing".into());
        return;
    };
    let mut server_stats = ConnectionStats::default();
    for (h, c) in &server.conns {
        add_stats(&mut server_stats, &c.stats);
        r.datagrams_received += c.datagrams.len() as u64;
        r.bytes_up += c
            .streams
            .values()
            .map(|st| st.verifier.received())
            .sum::<u64>();
        for e in &c.errors {
            r.violations.push(format!("server connection {}: {e}", h.0));
        }
        if let Some(loss) = &c.lost {
            r.losses.push(format!(
                "server connection {}: {} at {:.3}s",
                h.0,
                loss.error,
                secs(loss.at)
            ));
            let peers_gone = explained_client_losses.len() == setup.clients.len()
                && explained_client_losses.iter().all(|t| *t <= loss.at);
            if c.completed_at.is_none() && !explained(loss) && !peers_gone {
                r.violations.push(format!(
                    "server connection {} lost at {:.3}s ({}) without a cut of half the idle timeout or a rebinding",
                    h.0,
                    secs(loss.at),
                    loss.error
                ));
            }
        }
        if c.completed_at.is_some() {
            for (index, st) in &c.streams {
                let expected =
                    pattern::digest(pattern::key(s.seed, *index, 0), s.transfer.bytes_per_stream);
                if st.verifier.hash() != expected {
                    r.violations.push(format!(
                        "server connection {}: stream {index} digest differs from the sender's",
                        h.0
                    ));
                }
            }
        }
    }
    r.server_stats = server_stats;
    let mut up_delivered = LinkStats::default();
    for (_, link) in &setup.clients {
        if let Some([up, _]) = sim.link_stats(*link) {
            up_delivered.add(&up);
        }
    }
    check_stats("server", &server_stats, &Some(up_delivered), r);
    if r.datagrams_received > r.datagrams_sent {
        r.violations.push(format!(
            "{} datagrams received but only {} sent",
            r.datagrams_received, r.datagrams_sent
        ));
    }
    let no_outage = !s
        .all_faults()
        .any(|f| matches!(f, Fault::Outage { .. } | Fault::Rebind { .. }));
    if all_complete && up_lossless && no_outage && r.datagrams_received != r.datagrams_sent {
        r.violations.push(format!(
            "only {} of {} datagrams arrived over a path that lost nothing",
            r.datagrams_received, r.datagrams_sent
        ));
    }
    if sim.stats().max_pending > 1_000_000 {
        r.violations.push(format!(
            "{} events pending at once",
            sim.stats().max_pending
        ));
    }
    r.completed = all_complete && r.sim_error.is_none();
    if r.completed {
        r.completion_time = Some(last_completion.since_origin());
    }
}

fn add_stats(acc: &mut ConnectionStats, s: &ConnectionStats) {
    acc.datagrams_sent += s.datagrams_sent;
    acc.datagrams_received += s.datagrams_received;
    acc.bytes_sent += s.bytes_sent;
    acc.bytes_received += s.bytes_received;
    acc.packets_sent += s.packets_sent;
    acc.packets_received += s.packets_received;
    acc.packets_dropped += s.packets_dropped;
    acc.packets_lost += s.packets_lost;
    acc.key_updates += s.key_updates;
}

fn check_stats(who: &str, s: &ConnectionStats, inbound: &Option<LinkStats>, r: &mut Report) {
    if s.packets_lost > s.packets_sent {
        r.violations.push(format!(
            "{who}: {} packets declared lost of {} sent",
            s.packets_lost, s.packets_sent
        ));
    }
    if let Some(l) = inbound {
        if s.datagrams_received > l.delivered || s.bytes_received > l.bytes_delivered {
            r.violations.push(format!(
                "{who}: counted {} datagrams / {} bytes received, the network carried {} / {}",
                s.datagrams_received, s.bytes_received, l.delivered, l.bytes_delivered
            ));
        }
    }
}

pub use self::random::random_scenario;
