//! Real-time messages with a deadline: the client sends a small message on one unidirectional
//! stream at a steady rate; each counts as on time if the server's application reads it within
//! the deadline of the instant it was due. The workload of issue 8's benchmark (50 messages/s of
//! 200 B, 150 ms deadline), run on JSP here and on quinn in [`crate::quinn`].
//!
//! Each message carries its index and the instant it was due (8 + 8 bytes, big-endian), then a
//! filler derived from the index, all of which the server checks.

use std::collections::BTreeMap;

use bytes::Bytes;
use jsp_core::connection::{Connection, Event};
use jsp_core::endpoint::ConnectionHandle;
use jsp_core::frame::StreamId;
use jsp_core::stream::{Delivery, DeliveryMode};
use jsp_core::{Duration, Instant};

use crate::jsp::JspApp;
use crate::link::LinkStats;

/// The workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnTimePlan {
    /// Messages to send.
    pub count: usize,
    /// Bytes per message (at least 16).
    pub size: usize,
    /// Time between two messages.
    pub interval: Duration,
    /// A message read later than this after it was due is late.
    pub deadline: Duration,
}

impl OnTimePlan {
    /// Issue 8's workload: 50 messages/s of 200 B with a 150 ms deadline, for `seconds`.
    pub fn realtime(seconds: u32) -> Self {
        Self {
            count: 50 * seconds as usize,
            size: 200,
            interval: Duration::from_millis(20),
            deadline: Duration::from_millis(150),
        }
    }
}

/// Message `index`, due at `due`, of `size` bytes.
pub fn message(index: u64, due: Instant, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size.max(16)];
    v[..8].copy_from_slice(&index.to_be_bytes());
    v[8..16].copy_from_slice(&due.as_nanos().to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(16) {
        *b = (index as usize).wrapping_mul(7).wrapping_add(i) as u8;
    }
    v
}

/// Checks a received message; returns its index and due instant.
pub fn parse(m: &[u8], size: usize) -> Result<(u64, Instant), String> {
    if m.len() != size.max(16) {
        return Err(format!("message of {} bytes, expected {size}", m.len()));
    }
    let index = u64::from_be_bytes(m[..8].try_into().map_err(|_| "short")?);
    let due = Instant::from_nanos(u64::from_be_bytes(
        m[8..16].try_into().map_err(|_| "short")?,
    ));
    if message(index, due, size) != m {
        return Err(format!("message {index} damaged"));
    }
    Ok((index, due))
}

/// What the receiving side saw, shared by the JSP and quinn servers.
#[derive(Debug, Default)]
pub struct ArrivalLog {
    /// Latency (read instant minus due instant) of each message read, by index.
    pub latencies: BTreeMap<u64, Duration>,
    /// Messages the sender abandoned and the receiver was told to skip.
    pub skipped: u64,
    /// The stream ended.
    pub ended: bool,
    /// Problems seen.
    pub errors: Vec<String>,
    /// How the connection ended, if it did.
    pub lost: Option<String>,
    /// Grows with every message.
    pub progress: u64,
}

impl ArrivalLog {
    /// A message arrived at `now`.
    pub fn on_message(&mut self, now: Instant, m: &[u8], size: usize) {
        match parse(m, size) {
            Ok((index, due)) => {
                if self
                    .latencies
                    .insert(index, now.saturating_duration_since(due))
                    .is_some()
                {
                    self.errors.push(format!("message {index} delivered twice"));
                }
            }
            Err(e) => self.errors.push(e),
        }
        self.progress += 1;
    }

    /// Whether the work is over.
    pub fn is_done(&self) -> bool {
        self.ended || self.lost.is_some() || !self.errors.is_empty()
    }
}

/// The sending schedule, shared by the JSP and quinn clients.
#[derive(Debug)]
pub struct Schedule {
    /// The plan.
    pub plan: OnTimePlan,
    /// When the next message is due (set once connected).
    pub next_due: Option<Instant>,
    /// Messages sent so far.
    pub sent: usize,
    /// The stream was finished after the last message.
    pub finished: bool,
    /// Problems seen.
    pub errors: Vec<String>,
    /// How the connection ended, if it did.
    pub lost: Option<String>,
}

impl Schedule {
    /// A schedule for `plan`.
    pub fn new(plan: OnTimePlan) -> Self {
        Self {
            plan,
            next_due: None,
            sent: 0,
            finished: false,
            errors: Vec::new(),
            lost: None,
        }
    }

    /// The due instant of the next message if it is due at `now`.
    pub fn due(&self, now: Instant) -> Option<Instant> {
        self.next_due
            .filter(|t| *t <= now && self.sent < self.plan.count)
    }

    /// The message due at `due` went out.
    pub fn sent_one(&mut self, due: Instant) {
        self.sent += 1;
        self.next_due = Some(due + self.plan.interval);
    }

    /// When to wake next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        (self.sent < self.plan.count)
            .then_some(self.next_due)
            .flatten()
    }

    /// Whether the sender is finished.
    pub fn is_done(&self) -> bool {
        self.finished || self.lost.is_some() || !self.errors.is_empty()
    }
}

/// The JSP sender: one unidirectional stream of `mode`, a message per interval.
#[derive(Debug)]
pub struct OnTimeSender {
    mode: DeliveryMode,
    stream: Option<StreamId>,
    /// The schedule.
    pub schedule: Schedule,
}

impl OnTimeSender {
    /// A sender of `plan` on a stream of `mode`.
    pub fn new(plan: OnTimePlan, mode: DeliveryMode) -> Self {
        Self {
            mode,
            stream: None,
            schedule: Schedule::new(plan),
        }
    }
}

impl JspApp for OnTimeSender {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(_) => {
                    self.schedule.next_due.get_or_insert(now);
                }
                Event::ConnectionLost(e) => {
                    self.schedule.lost.get_or_insert(e.to_string());
                }
                _ => {}
            }
        }
        if self.schedule.next_due.is_none() || self.schedule.is_done() {
            return;
        }
        if self.stream.is_none() {
            self.stream = conn.open_uni_with(self.mode);
        }
        let Some(id) = self.stream else {
            self.schedule.errors.push("no stream".into());
            return;
        };
        while let Some(due) = self.schedule.due(now) {
            let m = message(self.schedule.sent as u64, due, self.schedule.plan.size);
            if let Err(e) = conn.send_message(id, Bytes::from(m)) {
                self.schedule.errors.push(format!("send_message: {e:?}"));
                return;
            }
            self.schedule.sent_one(due);
        }
        if self.schedule.sent == self.schedule.plan.count && !self.schedule.finished {
            match conn.finish(id) {
                Ok(()) => self.schedule.finished = true,
                Err(e) => self.schedule.errors.push(format!("finish: {e:?}")),
            }
        }
    }

    fn progress(&self) -> u64 {
        self.schedule.sent as u64
    }

    fn is_done(&self) -> bool {
        self.schedule.is_done()
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.schedule.next_wakeup()
    }
}

/// The JSP receiver: reads the client's stream message by message.
#[derive(Debug)]
pub struct OnTimeReceiver {
    size: usize,
    stream: Option<StreamId>,
    /// What arrived.
    pub log: ArrivalLog,
}

impl OnTimeReceiver {
    /// A receiver of `size`-byte messages.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            stream: None,
            log: ArrivalLog::default(),
        }
    }
}

impl JspApp for OnTimeReceiver {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            if let Event::ConnectionLost(e) = event {
                if !self.log.ended {
                    self.log.lost.get_or_insert(e.to_string());
                }
            }
        }
        if self.stream.is_none() {
            self.stream = conn.accept_uni();
        }
        let Some(id) = self.stream else { return };
        while !self.log.ended {
            match conn.recv_message(id) {
                Ok(Some(Delivery::Message(m))) => self.log.on_message(now, &m, self.size),
                Ok(Some(Delivery::Skipped(s))) => {
                    self.log.skipped += s.count;
                    self.log.progress += 1;
                }
                Ok(None) => self.log.ended = true,
                Err(_) => break,
            }
        }
    }

    fn progress(&self) -> u64 {
        self.log.progress
    }

    fn is_done(&self) -> bool {
        self.log.is_done()
    }
}

/// What one on-time run measured.
#[derive(Clone, Debug, Default)]
pub struct OnTimeReport {
    /// Messages sent.
    pub sent: usize,
    /// Messages read within the deadline.
    pub on_time: usize,
    /// Messages read after the deadline.
    pub late: usize,
    /// Messages skipped (abandoned by the sender) or never read.
    pub missing: usize,
    /// Latency of each message read.
    pub latencies: Vec<Duration>,
    /// Datagrams the client → server link lost, and offered.
    pub up_lost: u64,
    /// Datagrams offered to the client → server link.
    pub up_offered: u64,
    /// Bytes the client sent (UDP payloads).
    pub client_bytes_sent: u64,
    /// Of those, bytes of packets carrying FEC repair symbols.
    pub repair_bytes_sent: u64,
    /// Stream bytes the client retransmitted.
    pub retransmitted_bytes: u64,
    /// Packets the server rebuilt with FEC.
    pub recovered: u64,
    /// What went wrong.
    pub violations: Vec<String>,
}

impl OnTimeReport {
    /// The fraction of messages read on time.
    pub fn on_time_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.on_time as f64 / self.sent as f64
    }

    /// The client → server link's measured loss rate.
    pub fn loss_rate(&self) -> f64 {
        if self.up_offered == 0 {
            return 0.0;
        }
        self.up_lost as f64 / self.up_offered as f64
    }

    /// Repair bytes over all other bytes the client sent.
    pub fn fec_overhead(&self) -> f64 {
        let base = self
            .client_bytes_sent
            .saturating_sub(self.repair_bytes_sent);
        if base == 0 {
            return 0.0;
        }
        self.repair_bytes_sent as f64 / base as f64
    }

    /// Fills the counts from the receiver's `log`, `sent` messages and the deadline.
    pub fn count(&mut self, log: &ArrivalLog, sent: usize, deadline: Duration) {
        self.sent = sent;
        self.latencies = log.latencies.values().copied().collect();
        self.on_time = self.latencies.iter().filter(|l| **l <= deadline).count();
        self.late = self.latencies.len() - self.on_time;
        self.missing = sent.saturating_sub(self.latencies.len());
        self.violations.extend(log.errors.iter().cloned());
        if let Some(l) = &log.lost {
            self.violations.push(format!("connection lost: {l}"));
        }
    }

    /// Fills the link counters from the client link's stats (up is index 0).
    pub fn link(&mut self, stats: Option<[LinkStats; 2]>) {
        if let Some([up, _]) = stats {
            self.up_lost = up.lost + up.burst_lost;
            self.up_offered = up.offered;
        }
    }
}

/// Runs `plan` over the network of `s` (its transfer is ignored; its `fec` applies) with JSP,
/// the client sending on a stream of `mode`.
pub fn run_jsp(s: &super::Scenario, plan: OnTimePlan, mode: DeliveryMode) -> OnTimeReport {
    let mut report = OnTimeReport::default();
    let mut setup = match super::build_jsp(s, Box::new(OnTimeReceiver::new(plan.size)), |_| {
        Box::new(OnTimeSender::new(plan, mode))
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
    let Some(&(client, link)) = setup.clients.first() else {
        report.violations.push("no client".into());
        return report;
    };
    let sent = setup
        .sim
        .node::<crate::jsp::JspNode>(client)
        .and_then(|n| n.app::<OnTimeSender>())
        .map_or(0, |a| a.schedule.sent);
    if let Some(node) = setup.sim.node::<crate::jsp::JspNode>(client) {
        if let Some((_, conn)) = node.connections().next() {
            let st = conn.stats();
            report.client_bytes_sent = st.bytes_sent;
            report.repair_bytes_sent = st.fec_repair_wire_bytes;
            report.retransmitted_bytes = st.retransmitted_bytes;
        }
    }
    if let Some(node) = setup.sim.node::<crate::jsp::JspNode>(setup.server) {
        if let Some((_, conn)) = node.connections().next() {
            report.recovered = conn.stats().fec_packets_recovered;
        }
        if let Some(app) = node.app::<OnTimeReceiver>() {
            report.count(&app.log, sent, plan.deadline);
        }
    }
    report.link(setup.sim.link_stats(link));
    report
}
