//! Small request/response messages at a steady rate, for latency: the client opens one
//! bidirectional stream per request on a fixed schedule, writes the request and its end, and
//! times the answer. The server side is [`super::ServerApp`] with
//! [`super::Transfer::bidirectional`]`(count, size, size)`: it checks each request and answers
//! with `size` bytes as soon as the stream opens.
//!
//! A request's latency runs from the instant it was due (not when it could be written: a request
//! held back by the stream limit counts its wait) to the instant the client has read the whole
//! answer and its end.

use std::collections::BTreeMap;

use jsp_core::connection::{Connection, Event};
use jsp_core::endpoint::ConnectionHandle;
use jsp_core::frame::StreamId;
use jsp_core::stream::StreamEvent;
use jsp_core::{Duration, Instant};

use super::pattern::{self, Verifier, Writer};
use crate::jsp::JspApp;

/// What a message client sends: `count` requests of `size` bytes, one every `interval`, each
/// answered with `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Messages {
    /// Requests to send.
    pub count: usize,
    /// Bytes of each request and of each answer.
    pub size: u64,
    /// Time between two requests.
    pub interval: Duration,
}

impl Messages {
    /// The pattern key of request `index` (`dir` 0) or its answer (`dir` 1), as the scenario's
    /// [`super::ServerApp`] expects them.
    pub fn key(seed: u64, index: u64, dir: u64) -> u64 {
        pattern::key(seed, index, dir)
    }
}

/// The schedule and the measurements of a message client, shared by the JSP and quinn clients.
#[derive(Debug)]
pub struct MessageLog {
    /// The plan.
    pub plan: Messages,
    /// When the next request is due (set once connected).
    pub next_due: Option<Instant>,
    /// Requests sent so far.
    pub sent: usize,
    /// Latency of each answered request, in the order the answers completed.
    pub latencies: Vec<Duration>,
    /// Problems seen.
    pub errors: Vec<String>,
    /// How the connection ended, if it did.
    pub lost: Option<String>,
    /// When the last answer completed.
    pub completed_at: Option<Instant>,
    /// Grows with every request sent and answer read.
    pub progress: u64,
}

impl MessageLog {
    /// A log for `plan`.
    pub fn new(plan: Messages) -> Self {
        Self {
            plan,
            next_due: None,
            sent: 0,
            latencies: Vec::new(),
            errors: Vec::new(),
            lost: None,
            completed_at: None,
            progress: 0,
        }
    }

    /// The connection is up: the first request is due now.
    pub fn connected(&mut self, now: Instant) {
        self.next_due.get_or_insert(now);
    }

    /// The instant of the next request if one is due at `now` (the caller sends it and calls
    /// [`Self::sent_one`]).
    pub fn due(&self, now: Instant) -> Option<Instant> {
        self.next_due
            .filter(|t| *t <= now && self.sent < self.plan.count && !self.is_done())
    }

    /// The request due at `due` went out.
    pub fn sent_one(&mut self, due: Instant) {
        self.sent += 1;
        self.progress += 1;
        self.next_due = Some(due + self.plan.interval);
    }

    /// An answer to the request due at `due` completed at `now`.
    pub fn answered(&mut self, now: Instant, due: Instant) {
        self.latencies.push(now.saturating_duration_since(due));
        self.progress += 1;
        if self.latencies.len() == self.plan.count {
            self.completed_at.get_or_insert(now);
        }
    }

    /// When the client must wake to send the next request.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.is_done() || self.sent >= self.plan.count {
            return None;
        }
        self.next_due
    }

    /// Whether the work is over (all answered, or failed).
    pub fn is_done(&self) -> bool {
        self.completed_at.is_some() || self.lost.is_some() || !self.errors.is_empty()
    }
}

struct Pending {
    index: u64,
    due: Instant,
    answer: Verifier,
}

/// The JSP message client.
pub struct MessageClient {
    seed: u64,
    scratch: Vec<u8>,
    pending: BTreeMap<StreamId, Pending>,
    /// The schedule and the measurements.
    pub log: MessageLog,
}

impl core::fmt::Debug for MessageClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MessageClient")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl MessageClient {
    /// A client that sends `plan`; `seed` keys the contents (as the server expects them).
    pub fn new(seed: u64, plan: Messages) -> Self {
        Self {
            seed,
            scratch: Vec::new(),
            pending: BTreeMap::new(),
            log: MessageLog::new(plan),
        }
    }

    fn send_due(&mut self, now: Instant, conn: &mut Connection) {
        while let Some(due) = self.log.due(now) {
            let Some(id) = conn.open_bi() else { return };
            let index = self.log.sent as u64;
            let mut w = Writer::new(Messages::key(self.seed, index, 0), self.log.plan.size);
            if let Err(e) = w.pump(conn, id, &mut self.scratch) {
                self.log.errors.push(e);
                return;
            }
            if !w.is_finished() {
                self.log
                    .errors
                    .push(format!("request {index} did not fit the stream's buffer"));
                return;
            }
            let answer = Verifier::new(Messages::key(self.seed, index, 1), self.log.plan.size);
            self.pending.insert(id, Pending { index, due, answer });
            self.log.sent_one(due);
        }
    }
}

impl JspApp for MessageClient {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(_) => self.log.connected(now),
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(p) = self.pending.get_mut(&id) {
                        p.answer.drain(conn, id, &mut self.scratch);
                        if let Some(e) = p.answer.error() {
                            self.log.errors.push(format!("answer {}: {e}", p.index));
                        } else if p.answer.is_complete() {
                            let due = p.due;
                            self.pending.remove(&id);
                            self.log.answered(now, due);
                        }
                    }
                }
                Event::Stream(StreamEvent::Reset { id, error_code }) => {
                    self.log
                        .errors
                        .push(format!("server reset stream {} (code {error_code})", id.0));
                }
                Event::ConnectionLost(error) => {
                    self.log.progress += 1;
                    self.log.lost.get_or_insert(format!(
                        "{error} at {:.3}s",
                        now.since_origin().as_secs_f64()
                    ));
                }
                _ => {}
            }
        }
        self.send_due(now, conn);
    }

    fn progress(&self) -> u64 {
        self.log.progress
    }

    fn is_done(&self) -> bool {
        self.log.is_done()
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.log.next_wakeup()
    }
}

/// The `p`-quantile (0 ≤ p ≤ 1) of `samples` by nearest rank, or zero when there are none.
pub fn quantile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The mean of `samples`, or zero when there are none.
pub fn mean(samples: &[Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let total: u128 = samples.iter().map(|d| d.as_nanos()).sum();
    Duration::from_nanos((total / samples.len() as u128) as u64)
}

/// What a message run measured.
#[derive(Clone, Debug)]
pub struct MessageReport {
    /// The trace hash.
    pub trace_hash: crate::trace::TraceHash,
    /// Latency of each answered request.
    pub latencies: Vec<Duration>,
    /// Every request was answered.
    pub completed: bool,
    /// What went wrong (a failed run, errors, a lost connection).
    pub violations: Vec<String>,
    /// Simulated time of the whole run.
    pub sim_time: Duration,
    /// UDP payload bytes both sides sent (JSP only; 0 for quinn).
    pub bytes_sent: u64,
    /// Of those, bytes of the packets carrying FEC repair symbols, both sides (JSP only).
    pub repair_bytes_sent: u64,
}

impl MessageReport {
    /// `Ok` or the problems.
    pub fn check(&self) -> Result<(), String> {
        if self.violations.is_empty() && self.completed {
            Ok(())
        } else {
            Err(format!(
                "messages incomplete (trace {}): {}",
                self.trace_hash,
                self.violations.join("; ")
            ))
        }
    }
}

/// Runs the messages `plan` over the network of `s` (its profile, faults and seed; its transfer
/// is ignored) with JSP, one client.
pub fn run_jsp(s: &super::Scenario, plan: Messages) -> MessageReport {
    let transfer = super::Transfer::bidirectional(plan.count, plan.size, plan.size);
    let mut report = MessageReport {
        trace_hash: crate::trace::TraceHash([0; 32]),
        latencies: Vec::new(),
        completed: false,
        violations: Vec::new(),
        sim_time: Duration::ZERO,
        bytes_sent: 0,
        repair_bytes_sent: 0,
    };
    let mut setup =
        match super::build_jsp(s, Box::new(super::ServerApp::new(s.seed, transfer)), |_| {
            Box::new(MessageClient::new(s.seed, plan))
        }) {
            Ok(setup) => setup,
            Err(e) => {
                report.violations.push(format!("setup failed: {e}"));
                return report;
            }
        };
    if let Err(e) = setup.sim.run(super::run_limits(s)) {
        report.violations.push(e.to_string());
    }
    report.trace_hash = setup.sim.trace_hash();
    report.sim_time = setup.sim.now().since_origin();
    let nodes = setup
        .clients
        .iter()
        .map(|(id, _)| *id)
        .chain([setup.server]);
    for id in nodes {
        if let Some(node) = setup.sim.node::<crate::jsp::JspNode>(id) {
            for (_, conn) in node.connections() {
                let st = conn.stats();
                report.bytes_sent += st.bytes_sent;
                report.repair_bytes_sent += st.fec_repair_wire_bytes;
            }
        }
    }
    for (id, _) in &setup.clients {
        match setup
            .sim
            .node::<crate::jsp::JspNode>(*id)
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
