//! Running a [`Scenario`] with quinn: the same network, built in the same order from the same
//! seed as [`Scenario::run`] builds it for JSP, so both stacks see links that behave alike (the
//! links' generators are forked at the same points; which datagram a loss hits still depends on
//! what each stack sends).

use std::net::SocketAddr;

use jsp_core::{Duration, Instant};

use super::{
    transport_config, Controller, MessageClient, QuinnClient, QuinnConfig, QuinnNode, QuinnServer,
};
use crate::link::LinkStats;
use crate::scenario::messages::{MessageReport, Messages};
use crate::scenario::{
    client_addr, new_simulator, run_limits, schedule_faults, Scenario, Setup, Transfer, SERVER_ADDR,
};
use crate::trace::TraceHash;

/// What a quinn transfer run did (the quinn counterpart of [`crate::scenario::Report`]).
#[derive(Clone, Debug)]
pub struct QuinnReport {
    /// The scenario's one-line description.
    pub scenario: String,
    /// The controller.
    pub controller: Controller,
    /// The seed.
    pub seed: u64,
    /// The trace hash: equal for equal seeds.
    pub trace_hash: TraceHash,
    /// Every client completed every transfer.
    pub completed: bool,
    /// When the last client completed, from the start.
    pub completion_time: Option<Duration>,
    /// Simulated time of the whole run.
    pub sim_time: Duration,
    /// Reliable bytes verified at the server.
    pub bytes_up: u64,
    /// Reliable bytes verified at the clients.
    pub bytes_down: u64,
    /// Datagrams the clients sent.
    pub datagrams_sent: u64,
    /// Datagrams the server received intact.
    pub datagrams_received: u64,
    /// Client → server link counters, all clients.
    pub up: LinkStats,
    /// Server → client link counters, all clients.
    pub down: LinkStats,
    /// Queueing delays on the client → server links (when the scenario records them).
    pub up_queue_delays: Vec<Duration>,
    /// Packets the first client declared lost, and sent.
    pub packets_lost: u64,
    /// Packets the first client sent.
    pub packets_sent: u64,
    /// The first client's smoothed RTT at the end.
    pub rtt: Duration,
    /// What went wrong. Empty for a good run.
    pub violations: Vec<String>,
}

impl QuinnReport {
    /// Goodput: reliable bytes delivered per second of completion time, in bits per second.
    pub fn goodput_bps(&self) -> f64 {
        let t = self
            .completion_time
            .unwrap_or(self.sim_time)
            .as_secs_f64()
            .max(1e-9);
        (self.bytes_up + self.bytes_down) as f64 * 8.0 / t
    }

    /// `Ok`, or an error naming the scenario, the seed and every problem.
    pub fn check(&self) -> Result<(), String> {
        if self.violations.is_empty() {
            return Ok(());
        }
        Err(format!(
            "quinn-{} {} (trace {}): {}",
            self.controller.name(),
            self.scenario,
            self.trace_hash,
            self.violations.join("; ")
        ))
    }
}

/// Builds the network of `s` with quinn nodes: the server runs `server_app`, client `i` runs
/// `client_app(i)`; the random draws happen in the order [`crate::scenario::build_jsp`] makes
/// them.
pub(super) fn build(
    s: &Scenario,
    controller: Controller,
    server_app: Box<dyn super::QuinnApp>,
    mut client_app: impl FnMut(usize) -> Box<dyn super::QuinnApp>,
) -> Result<Setup, String> {
    let mut sim = new_simulator(s);
    let transport = transport_config(controller, s.idle_timeout, s.keep_alive);
    // JSP draws its identity and resumption keys here; quinn its certificate and server keys.
    let mut rng = sim.rng().fork_core();
    let (server_config, cert) = QuinnConfig::server(&mut rng, transport.clone())?;
    // JSP's server node generator (quinn's server took everything from the one above).
    let _ = sim.rng().fork_core();
    let server_addr: SocketAddr = SERVER_ADDR.parse().map_err(|e| format!("{e}"))?;
    let server = sim.add_node(
        "server",
        server_addr,
        Box::new(QuinnNode::new(server_config, server_app)),
    );
    let faults: Vec<_> = s.all_faults().cloned().collect();
    let mut clients = Vec::new();
    for i in 0..s.clients {
        let mut crng = sim.rng().fork_core();
        let config = QuinnConfig::client(&mut crng, transport.clone(), cert.clone())?;
        let mut node = QuinnNode::new(config, client_app(i));
        node.connect(Instant::ZERO, server_addr)?;
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

/// Runs the transfer of `s` with quinn and `controller`, and checks that every byte arrived.
pub fn run_transfer(s: &Scenario, controller: Controller) -> QuinnReport {
    let mut r = QuinnReport {
        scenario: s.describe(),
        controller,
        seed: s.seed,
        trace_hash: TraceHash([0; 32]),
        completed: false,
        completion_time: None,
        sim_time: Duration::ZERO,
        bytes_up: 0,
        bytes_down: 0,
        datagrams_sent: 0,
        datagrams_received: 0,
        up: LinkStats::default(),
        down: LinkStats::default(),
        up_queue_delays: Vec::new(),
        packets_lost: 0,
        packets_sent: 0,
        rtt: Duration::ZERO,
        violations: Vec::new(),
    };
    let mut setup = match build(
        s,
        controller,
        Box::new(QuinnServer::new(s.seed, s.transfer.clone())),
        |_| Box::new(QuinnClient::new(s.seed, s.transfer.clone())),
    ) {
        Ok(setup) => setup,
        Err(e) => {
            r.violations.push(format!("setup failed: {e}"));
            return r;
        }
    };
    let mut result = setup.sim.run(run_limits(s));
    if result.is_ok() && s.transfer.datagrams > 0 {
        let settle = setup.sim.now() + Duration::from_secs(10);
        result = setup.sim.run_until(settle);
    }
    let sim_ok = result.is_ok();
    if let Err(e) = result {
        r.violations.push(e.to_string());
    }
    let sim = &setup.sim;
    r.trace_hash = sim.trace_hash();
    r.sim_time = sim.now().since_origin();
    let mut all_complete = true;
    let mut last = Instant::ZERO;
    for (i, (id, link)) in setup.clients.iter().enumerate() {
        if let Some([up, down]) = sim.link_stats(*link) {
            r.up.add(&up);
            r.down.add(&down);
        }
        if let Some([up, _]) = sim.queue_delays(*link) {
            r.up_queue_delays.extend_from_slice(up);
        }
        let Some(app) = sim
            .node::<QuinnNode>(*id)
            .and_then(|n| n.app::<QuinnClient>())
        else {
            r.violations.push(format!("client {i}: node missing"));
            continue;
        };
        if i == 0 {
            if let Some(st) = &app.stats {
                r.packets_lost = st.path.lost_packets;
                r.packets_sent = st.path.sent_packets;
                r.rtt = st.path.rtt;
            }
        }
        r.bytes_down += app.bytes_received();
        r.datagrams_sent += app.datagrams_sent;
        r.violations
            .extend(app.errors.iter().map(|e| format!("client {i}: {e}")));
        r.violations.extend(
            app.answer_errors()
                .into_iter()
                .map(|e| format!("client {i}: {e}")),
        );
        match (app.completed_at, &app.lost) {
            (Some(t), _) => last = last.max(t),
            (None, Some(l)) => {
                all_complete = false;
                r.violations
                    .push(format!("client {i} lost its connection: {l}"));
            }
            (None, None) => {
                all_complete = false;
                if sim_ok {
                    r.violations
                        .push(format!("client {i} neither completed nor ended"));
                }
            }
        }
    }
    match sim
        .node::<QuinnNode>(setup.server)
        .and_then(|n| n.app::<QuinnServer>())
    {
        Some(server) => {
            r.bytes_up = server.bytes_received();
            r.datagrams_received = server.datagrams_received();
            r.violations.extend(server.errors());
            if all_complete && !server.all_complete() {
                r.violations
                    .push("the clients completed but the server did not get everything".into());
            }
        }
        None => r.violations.push("server node missing".into()),
    }
    let expected = s.transfer.bytes_per_stream * s.transfer.streams as u64 * s.clients as u64;
    if all_complete && r.bytes_up != expected {
        r.violations.push(format!(
            "the server verified {} bytes of {expected}",
            r.bytes_up
        ));
    }
    r.completed = all_complete && sim_ok;
    if r.completed {
        r.completion_time = Some(last.since_origin());
    }
    r
}

/// Runs the messages `plan` over the network of `s` (its transfer is ignored) with quinn and
/// `controller`, one client.
pub fn run_messages(s: &Scenario, plan: Messages, controller: Controller) -> MessageReport {
    let transfer = Transfer::bidirectional(plan.count, plan.size, plan.size);
    let mut report = MessageReport {
        trace_hash: TraceHash([0; 32]),
        latencies: Vec::new(),
        completed: false,
        violations: Vec::new(),
        sim_time: Duration::ZERO,
        bytes_sent: 0,
        repair_bytes_sent: 0,
    };
    let mut setup = match build(
        s,
        controller,
        Box::new(QuinnServer::new(s.seed, transfer)),
        |_| Box::new(MessageClient::new(s.seed, plan)),
    ) {
        Ok(setup) => setup,
        Err(e) => {
            report.violations.push(format!("setup failed: {e}"));
            return report;
        }
    };
    if let Err(e) = setup.sim.run(run_limits(s)) {
        report.violations.push(e.to_string());
    }
    report.trace_hash = setup.sim.trace_hash();
    report.sim_time = setup.sim.now().since_origin();
    for (id, _) in &setup.clients {
        match setup
            .sim
            .node::<QuinnNode>(*id)
            .and_then(|n| n.app::<MessageClient>())
        {
            Some(app) => {
                report.latencies.extend_from_slice(&app.log.latencies);
                report.violations.extend(app.log.errors.iter().cloned());
                if let Some(l) = &app.log.lost {
                    report.violations.push(format!("connection lost: {l}"));
                }
                report.completed = app.log.completed_at.is_some();
            }
            None => report.violations.push("client node missing".into()),
        }
    }
    report
}
