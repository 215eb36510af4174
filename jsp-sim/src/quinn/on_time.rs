//! The on-time message workload ([`crate::scenario::on_time`]) on quinn: one reliable
//! unidirectional stream carrying fixed-size messages back to back.

use jsp_core::Instant;
use quinn_proto::{Connection, ConnectionHandle, Dir, Event, ReadError, StreamEvent, StreamId};

use super::{Controller, QuinnApp, QuinnNode};
use crate::scenario::on_time::{message, ArrivalLog, OnTimePlan, OnTimeReport, Schedule};
use crate::scenario::{run_limits, Scenario};

/// The quinn sender: writes each message on one reliable unidirectional stream when due.
#[derive(Debug)]
pub struct OnTimeClient {
    stream: Option<StreamId>,
    /// Bytes accepted by neither the stream yet (the stream's window was full).
    backlog: Vec<u8>,
    /// The schedule.
    pub schedule: Schedule,
}

impl OnTimeClient {
    /// A sender of `plan`.
    pub fn new(plan: OnTimePlan) -> Self {
        Self {
            stream: None,
            backlog: Vec::new(),
            schedule: Schedule::new(plan),
        }
    }

    fn flush(&mut self, conn: &mut Connection, id: StreamId) {
        while !self.backlog.is_empty() {
            match conn.send_stream(id).write(&self.backlog) {
                Ok(n) => {
                    self.backlog.drain(..n);
                }
                Err(quinn_proto::WriteError::Blocked) => return,
                Err(e) => {
                    self.schedule.errors.push(format!("write: {e}"));
                    return;
                }
            }
        }
    }
}

impl QuinnApp for OnTimeClient {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll() {
            match event {
                Event::Connected => {
                    self.schedule.next_due.get_or_insert(now);
                }
                Event::ConnectionLost { reason } => {
                    self.schedule.lost.get_or_insert(reason.to_string());
                }
                _ => {}
            }
        }
        if self.schedule.next_due.is_none() || self.schedule.is_done() {
            return;
        }
        if self.stream.is_none() {
            self.stream = conn.streams().open(Dir::Uni);
        }
        let Some(id) = self.stream else { return };
        while let Some(due) = self.schedule.due(now) {
            let m = message(self.schedule.sent as u64, due, self.schedule.plan.size);
            self.backlog.extend_from_slice(&m);
            self.schedule.sent_one(due);
        }
        self.flush(conn, id);
        if self.schedule.sent == self.schedule.plan.count
            && self.backlog.is_empty()
            && !self.schedule.finished
        {
            match conn.send_stream(id).finish() {
                Ok(()) => self.schedule.finished = true,
                Err(e) => self.schedule.errors.push(format!("finish: {e}")),
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

/// The quinn receiver: reads the stream in order and cuts it into messages.
#[derive(Debug)]
pub struct OnTimeServer {
    size: usize,
    stream: Option<StreamId>,
    partial: Vec<u8>,
    /// What arrived.
    pub log: ArrivalLog,
}

impl OnTimeServer {
    /// A receiver of `size`-byte messages.
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(16),
            stream: None,
            partial: Vec::new(),
            log: ArrivalLog::default(),
        }
    }
}

impl QuinnApp for OnTimeServer {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll() {
            match event {
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) if self.stream.is_none() => {
                    self.stream = conn.streams().accept(Dir::Uni);
                }
                Event::ConnectionLost { reason } if !self.log.ended => {
                    self.log.lost.get_or_insert(reason.to_string());
                }
                _ => {}
            }
        }
        let Some(id) = self.stream else { return };
        let mut stream = conn.recv_stream(id);
        let Ok(mut chunks) = stream.read(true) else {
            return;
        };
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    self.partial.extend_from_slice(&chunk.bytes);
                    while self.partial.len() >= self.size {
                        let m: Vec<u8> = self.partial.drain(..self.size).collect();
                        self.log.on_message(now, &m, self.size);
                    }
                }
                Ok(None) => {
                    self.log.ended = true;
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    self.log.errors.push(format!("stream reset ({code})"));
                    break;
                }
            }
        }
        let _ = chunks.finalize();
    }

    fn progress(&self) -> u64 {
        self.log.progress
    }

    fn is_done(&self) -> bool {
        self.log.is_done()
    }
}

/// Runs `plan` over the network of `s` with quinn and `controller` (reliable stream).
pub fn run_on_time(s: &Scenario, plan: OnTimePlan, controller: Controller) -> OnTimeReport {
    let mut report = OnTimeReport::default();
    let mut setup = match super::run::build(
        s,
        controller,
        Box::new(OnTimeServer::new(plan.size)),
        |_| Box::new(OnTimeClient::new(plan)),
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
    let Some(&(client, link)) = setup.clients.first() else {
        report.violations.push("no client".into());
        return report;
    };
    let sent = setup
        .sim
        .node::<QuinnNode>(client)
        .and_then(|n| n.app::<OnTimeClient>())
        .map_or(0, |a| a.schedule.sent);
    if let Some(node) = setup.sim.node::<QuinnNode>(client) {
        if let Some((_, conn)) = node.connections().next() {
            let st = conn.stats();
            report.client_bytes_sent = st.udp_tx.bytes;
            report.retransmitted_bytes = st.path.lost_bytes;
        }
    }
    if let Some(app) = setup
        .sim
        .node::<QuinnNode>(setup.server)
        .and_then(|n| n.app::<OnTimeServer>())
    {
        report.count(&app.log, sent, plan.deadline);
    }
    report.link(setup.sim.link_stats(link));
    report
}
