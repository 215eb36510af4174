//! The scenario applications on quinn: the same work as [`crate::scenario::ClientApp`],
//! [`crate::scenario::ServerApp`] and [`crate::scenario::messages::MessageClient`] do on JSP —
//! the same stream contents, the same order of opening, the same completion rules — written
//! against quinn-proto's connection API.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use jsp_core::{Duration, Instant};
use quinn_proto::{
    Connection, ConnectionHandle, Dir, Event, ReadError, SendDatagramError, StreamEvent, StreamId,
    WriteError,
};

use super::QuinnApp;
use crate::scenario::messages::{MessageLog, Messages};
use crate::scenario::pattern::{self, Verifier, Writer};
use crate::scenario::Transfer;

const UP: u64 = 0;
const DOWN: u64 = 1;
const DATAGRAM: u64 = 2;

fn pump(
    w: &mut Writer,
    conn: &mut Connection,
    id: StreamId,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    w.pump_with(
        scratch,
        |data: &[u8], conn: &mut Connection| match conn.send_stream(id).write(data) {
            Ok(n) => Ok(n),
            Err(WriteError::Blocked) => Ok(0),
            Err(e) => Err(format!("write on stream {id} failed: {e}")),
        },
        |conn: &mut Connection| {
            conn.send_stream(id)
                .finish()
                .map_err(|e| format!("finish of stream {id} failed: {e}"))
        },
        conn,
    )
}

/// Reads everything readable on `id` into `v`; returns the bytes read.
fn drain(v: &mut Verifier, conn: &mut Connection, id: StreamId, scratch: &mut Vec<u8>) -> u64 {
    let mut stream = conn.recv_stream(id);
    let Ok(mut chunks) = stream.read(true) else {
        return 0;
    };
    let mut read = 0;
    loop {
        match chunks.next(usize::MAX) {
            Ok(Some(chunk)) => {
                read += chunk.bytes.len() as u64;
                v.feed(&chunk.bytes, scratch);
            }
            Ok(None) => {
                v.end();
                break;
            }
            Err(ReadError::Blocked) => break,
            Err(ReadError::Reset(_)) => {
                // The stream ends short: the verifier reports how short.
                v.end();
                break;
            }
        }
    }
    let _ = chunks.finalize();
    read
}

struct ClientStream {
    id: StreamId,
    writer: Writer,
    acked: bool,
    response: Option<Verifier>,
}

/// The bulk client on quinn: opens `streams` streams, writes the pattern on each (and checks
/// the answers on bidirectional ones), sends `datagrams`; complete when every stream's data and
/// end were acknowledged and every answer arrived.
pub struct QuinnClient {
    seed: u64,
    plan: Transfer,
    scratch: Vec<u8>,
    streams: Vec<ClientStream>,
    by_id: BTreeMap<StreamId, usize>,
    /// When the handshake completed.
    pub connected_at: Option<Instant>,
    /// Datagrams handed to the connection.
    pub datagrams_sent: u64,
    /// How the connection ended, if it did.
    pub lost: Option<String>,
    /// When everything was sent, acknowledged and answered.
    pub completed_at: Option<Instant>,
    /// Problems seen.
    pub errors: Vec<String>,
    /// The connection's counters, as of its last input.
    pub stats: Option<quinn_proto::ConnectionStats>,
    progress: u64,
}

impl core::fmt::Debug for QuinnClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuinnClient")
            .field("plan", &self.plan)
            .field("completed_at", &self.completed_at)
            .field("lost", &self.lost)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl QuinnClient {
    /// A client that will carry out `plan`; `seed` keys the contents.
    pub fn new(seed: u64, plan: Transfer) -> Self {
        Self {
            seed,
            plan,
            scratch: Vec::new(),
            streams: Vec::new(),
            by_id: BTreeMap::new(),
            connected_at: None,
            datagrams_sent: 0,
            lost: None,
            completed_at: None,
            errors: Vec::new(),
            stats: None,
            progress: 0,
        }
    }

    fn bidirectional(&self) -> bool {
        self.plan.response_bytes > 0
    }

    fn open_streams(&mut self, conn: &mut Connection) {
        let dir = if self.bidirectional() {
            Dir::Bi
        } else {
            Dir::Uni
        };
        while self.streams.len() < self.plan.streams {
            let Some(id) = conn.streams().open(dir) else {
                break;
            };
            let index = self.streams.len() as u64;
            let mut writer = Writer::new(
                pattern::key(self.seed, index, UP),
                self.plan.bytes_per_stream,
            );
            if let Err(e) = pump(&mut writer, conn, id, &mut self.scratch) {
                self.errors.push(e);
            }
            let response = self.bidirectional().then(|| {
                Verifier::new(
                    pattern::key(self.seed, index, DOWN),
                    self.plan.response_bytes,
                )
            });
            self.by_id.insert(id, self.streams.len());
            self.streams.push(ClientStream {
                id,
                writer,
                acked: false,
                response,
            });
        }
    }

    fn send_datagrams(&mut self, conn: &mut Connection) {
        while self.datagrams_sent < self.plan.datagrams as u64 {
            let seq = self.datagrams_sent;
            let size = self.plan.datagram_size.max(8);
            let mut d = vec![0u8; size];
            d[..8].copy_from_slice(&seq.to_be_bytes());
            pattern::fill(pattern::key(self.seed, seq, DATAGRAM), 0, &mut d[8..]);
            match conn.datagrams().send(Bytes::from(d), false) {
                Ok(()) => self.datagrams_sent += 1,
                Err(SendDatagramError::Blocked(_)) => return,
                Err(e) => {
                    self.errors.push(format!("datagram {seq} refused: {e}"));
                    return;
                }
            }
        }
    }

    /// Whether every stream was written, acknowledged and answered.
    pub fn is_complete(&self) -> bool {
        self.streams.len() == self.plan.streams
            && self.datagrams_sent == self.plan.datagrams as u64
            && self
                .streams
                .iter()
                .all(|s| s.acked && s.response.as_ref().is_none_or(|r| r.is_complete()))
    }

    /// Bytes of answers received and verified.
    pub fn bytes_received(&self) -> u64 {
        self.streams
            .iter()
            .filter_map(|s| s.response.as_ref())
            .map(|r| r.received())
            .sum()
    }

    /// Problems with the answers.
    pub fn answer_errors(&self) -> Vec<String> {
        self.streams
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                s.response
                    .as_ref()
                    .and_then(|v| v.error())
                    .map(|e| format!("answer on stream {k} ({}): {e}", s.id))
            })
            .collect()
    }
}

impl QuinnApp for QuinnClient {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll() {
            match event {
                Event::Connected => {
                    self.connected_at = Some(now);
                    self.progress += 1;
                    self.open_streams(conn);
                    self.send_datagrams(conn);
                }
                Event::Stream(StreamEvent::Available { .. }) => self.open_streams(conn),
                Event::DatagramsUnblocked => self.send_datagrams(conn),
                Event::Stream(StreamEvent::Writable { id }) => {
                    if let Some(s) = self.by_id.get(&id).and_then(|i| self.streams.get_mut(*i)) {
                        if let Err(e) = pump(&mut s.writer, conn, id, &mut self.scratch) {
                            self.errors.push(e);
                        }
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(s) = self.by_id.get(&id).and_then(|i| self.streams.get_mut(*i)) {
                        if let Some(r) = &mut s.response {
                            self.progress += drain(r, conn, id, &mut self.scratch) + 1;
                        }
                    }
                }
                Event::Stream(StreamEvent::Finished { id }) => {
                    if let Some(s) = self.by_id.get(&id).and_then(|i| self.streams.get_mut(*i)) {
                        if !s.acked {
                            s.acked = true;
                            self.progress += 1;
                        }
                    }
                }
                Event::Stream(StreamEvent::Stopped { id, error_code }) => {
                    self.errors
                        .push(format!("server stopped stream {id} (code {error_code})"));
                }
                Event::ConnectionLost { reason } => {
                    self.progress += 1;
                    self.lost.get_or_insert(format!(
                        "{reason} at {:.3}s",
                        now.since_origin().as_secs_f64()
                    ));
                }
                _ => {}
            }
        }
        self.stats = Some(conn.stats());
        if self.completed_at.is_none() && self.lost.is_none() && self.is_complete() {
            self.completed_at = Some(now);
            self.progress += 1;
        }
    }

    fn progress(&self) -> u64 {
        self.progress
    }

    fn is_done(&self) -> bool {
        self.lost.is_some() || self.completed_at.is_some() || !self.errors.is_empty()
    }
}

struct ServerStream {
    verifier: Verifier,
    responder: Option<Writer>,
}

/// The server's view of one quinn connection.
#[derive(Default)]
struct ServerConn {
    streams: BTreeMap<u64, ServerStream>,
    datagrams: BTreeSet<u64>,
    lost: Option<String>,
    completed_at: Option<Instant>,
    errors: Vec<String>,
}

/// The server on quinn: accepts every stream, checks the pattern, answers bidirectional
/// streams at once, checks datagrams.
pub struct QuinnServer {
    seed: u64,
    plan: Transfer,
    scratch: Vec<u8>,
    conns: BTreeMap<ConnectionHandle, ServerConn>,
    progress: u64,
}

impl core::fmt::Debug for QuinnServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuinnServer")
            .field("plan", &self.plan)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl QuinnServer {
    /// A server expecting clients that carry out `plan`.
    pub fn new(seed: u64, plan: Transfer) -> Self {
        Self {
            seed,
            plan,
            scratch: Vec::new(),
            conns: BTreeMap::new(),
            progress: 0,
        }
    }

    /// Request bytes received and verified, all connections.
    pub fn bytes_received(&self) -> u64 {
        self.conns
            .values()
            .flat_map(|c| c.streams.values())
            .map(|s| s.verifier.received())
            .sum()
    }

    /// Distinct datagrams received intact, all connections.
    pub fn datagrams_received(&self) -> u64 {
        self.conns.values().map(|c| c.datagrams.len() as u64).sum()
    }

    /// Problems seen, all connections (streams' included).
    pub fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (h, c) in &self.conns {
            out.extend(
                c.errors
                    .iter()
                    .map(|e| format!("server connection {}: {e}", h.0)),
            );
            for (i, s) in &c.streams {
                if let Some(e) = s.verifier.error() {
                    out.push(format!("server connection {} stream {i}: {e}", h.0));
                }
            }
            if c.completed_at.is_none() {
                if let Some(l) = &c.lost {
                    out.push(format!("server connection {} lost: {l}", h.0));
                }
            }
        }
        out
    }

    /// Whether every connection received everything.
    pub fn all_complete(&self) -> bool {
        !self.conns.is_empty() && self.conns.values().all(|c| c.completed_at.is_some())
    }

    fn accept(&mut self, conn: &mut Connection, state: &mut ServerConn) {
        loop {
            let Some(id) = conn
                .streams()
                .accept(Dir::Bi)
                .or_else(|| conn.streams().accept(Dir::Uni))
            else {
                return;
            };
            let index = id.index();
            let responder = (id.dir() == Dir::Bi).then(|| {
                Writer::new(
                    pattern::key(self.seed, index, DOWN),
                    self.plan.response_bytes,
                )
            });
            let mut s = ServerStream {
                verifier: Verifier::new(
                    pattern::key(self.seed, index, UP),
                    self.plan.bytes_per_stream,
                ),
                responder,
            };
            if let Some(w) = &mut s.responder {
                if let Err(e) = pump(w, conn, id, &mut self.scratch) {
                    state.errors.push(e);
                }
            }
            self.progress += drain(&mut s.verifier, conn, id, &mut self.scratch) + 1;
            if state.streams.insert(index, s).is_some() {
                state
                    .errors
                    .push(format!("stream index {index} accepted twice"));
            }
        }
    }

    fn on_datagram(&mut self, d: &[u8], state: &mut ServerConn) {
        let Some(seq) = d
            .get(..8)
            .and_then(|h| <[u8; 8]>::try_from(h).ok())
            .map(u64::from_be_bytes)
        else {
            state
                .errors
                .push(format!("datagram of {} bytes is too short", d.len()));
            return;
        };
        let mut expected = vec![0u8; d.len() - 8];
        pattern::fill(pattern::key(self.seed, seq, DATAGRAM), 0, &mut expected);
        if seq >= self.plan.datagrams as u64
            || expected != d[8..]
            || d.len() != self.plan.datagram_size.max(8)
        {
            state.errors.push(format!("datagram {seq} arrived damaged"));
        } else if !state.datagrams.insert(seq) {
            state.errors.push(format!("datagram {seq} delivered twice"));
        }
        self.progress += 1;
    }
}

impl QuinnApp for QuinnServer {
    fn on_connection(&mut self, now: Instant, handle: ConnectionHandle, conn: &mut Connection) {
        let mut state = self.conns.remove(&handle).unwrap_or_default();
        while let Some(event) = conn.poll() {
            match event {
                Event::Connected => self.progress += 1,
                Event::Stream(StreamEvent::Opened { .. }) => self.accept(conn, &mut state),
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(s) = state.streams.get_mut(&id.index()) {
                        self.progress += drain(&mut s.verifier, conn, id, &mut self.scratch) + 1;
                    }
                }
                Event::Stream(StreamEvent::Writable { id }) => {
                    if let Some(w) = state
                        .streams
                        .get_mut(&id.index())
                        .and_then(|s| s.responder.as_mut())
                    {
                        if let Err(e) = pump(w, conn, id, &mut self.scratch) {
                            state.errors.push(e);
                        }
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = conn.datagrams().recv() {
                        self.on_datagram(&d, &mut state);
                    }
                }
                Event::ConnectionLost { reason } => {
                    self.progress += 1;
                    state.lost.get_or_insert(format!(
                        "{reason} at {:.3}s",
                        now.since_origin().as_secs_f64()
                    ));
                }
                _ => {}
            }
        }
        if state.completed_at.is_none()
            && state.streams.len() == self.plan.streams
            && state.streams.values().all(|s| s.verifier.is_complete())
        {
            state.completed_at = Some(now);
            self.progress += 1;
        }
        self.conns.insert(handle, state);
    }

    fn progress(&self) -> u64 {
        self.progress
    }

    fn is_done(&self) -> bool {
        self.conns
            .values()
            .all(|c| c.lost.is_some() || c.completed_at.is_some() || !c.errors.is_empty())
    }
}

struct Pending {
    index: u64,
    due: Instant,
    answer: Verifier,
}

/// The message client on quinn (see [`crate::scenario::messages`]); the server is a
/// [`QuinnServer`] with [`Transfer::bidirectional`]`(count, size, size)`.
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
    /// A client that sends `plan`; `seed` keys the contents.
    pub fn new(seed: u64, plan: Messages) -> Self {
        Self {
            seed,
            scratch: Vec::new(),
            pending: BTreeMap::new(),
            log: MessageLog::new(plan),
        }
    }

    /// Latencies measured so far.
    pub fn latencies(&self) -> &[Duration] {
        &self.log.latencies
    }

    fn send_due(&mut self, now: Instant, conn: &mut Connection) {
        while let Some(due) = self.log.due(now) {
            let Some(id) = conn.streams().open(Dir::Bi) else {
                return;
            };
            let index = self.log.sent as u64;
            let mut w = Writer::new(Messages::key(self.seed, index, UP), self.log.plan.size);
            if let Err(e) = pump(&mut w, conn, id, &mut self.scratch) {
                self.log.errors.push(e);
                return;
            }
            if !w.is_finished() {
                self.log
                    .errors
                    .push(format!("request {index} did not fit the stream's buffer"));
                return;
            }
            let answer = Verifier::new(Messages::key(self.seed, index, DOWN), self.log.plan.size);
            self.pending.insert(id, Pending { index, due, answer });
            self.log.sent_one(due);
        }
    }
}

impl QuinnApp for MessageClient {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll() {
            match event {
                Event::Connected => self.log.connected(now),
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(p) = self.pending.get_mut(&id) {
                        drain(&mut p.answer, conn, id, &mut self.scratch);
                        if let Some(e) = p.answer.error() {
                            self.log.errors.push(format!("answer {}: {e}", p.index));
                        } else if p.answer.is_complete() {
                            let due = p.due;
                            self.pending.remove(&id);
                            self.log.answered(now, due);
                        }
                    }
                }
                Event::ConnectionLost { reason } => {
                    self.log.progress += 1;
                    self.log.lost.get_or_insert(format!(
                        "{reason} at {:.3}s",
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
