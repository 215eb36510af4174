//! The applications of a transfer scenario: a client that opens streams, writes pattern data
//! and sends datagrams, and a server that verifies everything and answers on bidirectional
//! streams. Both act only on the connection's events, as a real application would.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use jsp_core::connection::{Connection, ConnectionError, ConnectionStats, Event};
use jsp_core::endpoint::ConnectionHandle;
use jsp_core::frame::{Dir, StreamId};
use jsp_core::stream::StreamEvent;
use jsp_core::{Duration, Instant};

use super::pattern::{self, Verifier, Writer};
use super::Transfer;
use crate::jsp::JspApp;

/// Direction tags for [`pattern::key`].
const UP: u64 = 0;
const DOWN: u64 = 1;
const DATAGRAM: u64 = 2;

/// One client stream: what it sends and, on bidirectional streams, the answer it checks.
#[derive(Debug)]
pub struct ClientStream {
    /// The stream.
    pub id: StreamId,
    /// The request being written.
    pub writer: Writer,
    /// All data and the FIN were acknowledged.
    pub acked: bool,
    /// The server's answer, on bidirectional streams.
    pub response: Option<Verifier>,
}

/// How a connection ended, seen by one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// When.
    pub at: Instant,
    /// Why.
    pub error: ConnectionError,
}

/// The client's application.
#[derive(Debug)]
pub struct ClientApp {
    seed: u64,
    plan: Transfer,
    scratch: Vec<u8>,
    /// When the handshake completed.
    pub connected_at: Option<Instant>,
    /// The streams opened so far, by index.
    pub streams: Vec<ClientStream>,
    by_id: BTreeMap<StreamId, usize>,
    /// Datagrams handed to the connection.
    pub datagrams_sent: u64,
    /// How the connection ended, if it did.
    pub lost: Option<Loss>,
    /// When everything was sent, acknowledged and answered.
    pub completed_at: Option<Instant>,
    /// Problems seen (write refused, stream reset, bad answer).
    pub errors: Vec<String>,
    /// The connection's counters, as of its last input.
    pub stats: ConnectionStats,
    /// The smoothed RTT, as of the last input.
    pub rtt: Duration,
    progress: u64,
}

impl ClientApp {
    /// A client that will carry out `plan`; `seed` keys the stream contents.
    pub fn new(seed: u64, plan: Transfer) -> Self {
        Self {
            seed,
            plan,
            scratch: Vec::new(),
            connected_at: None,
            streams: Vec::new(),
            by_id: BTreeMap::new(),
            datagrams_sent: 0,
            lost: None,
            completed_at: None,
            errors: Vec::new(),
            stats: ConnectionStats::default(),
            rtt: Duration::ZERO,
            progress: 0,
        }
    }

    fn bidirectional(&self) -> bool {
        self.plan.response_bytes > 0
    }

    fn open_streams(&mut self, conn: &mut Connection) {
        while self.streams.len() < self.plan.streams {
            let opened = if self.bidirectional() {
                conn.open_bi()
            } else {
                conn.open_uni()
            };
            let Some(id) = opened else { break };
            let index = self.streams.len() as u64;
            let mut writer = Writer::new(
                pattern::key(self.seed, index, UP),
                self.plan.bytes_per_stream,
            );
            if let Err(e) = writer.pump(conn, id, &mut self.scratch) {
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
            if let Err(e) = conn.send_datagram(Bytes::from(d)) {
                self.errors.push(format!("datagram {seq} refused: {e}"));
                return;
            }
            self.datagrams_sent += 1;
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
}

impl JspApp for ClientApp {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(_) => {
                    self.connected_at = Some(now);
                    self.progress += 1;
                    self.open_streams(conn);
                    self.send_datagrams(conn);
                }
                Event::Stream(StreamEvent::Available { .. }) => self.open_streams(conn),
                Event::Stream(StreamEvent::Writable { id }) => {
                    if let Some(s) = self.by_id.get(&id).and_then(|i| self.streams.get_mut(*i)) {
                        if let Err(e) = s.writer.pump(conn, id, &mut self.scratch) {
                            self.errors.push(e);
                        }
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(s) = self.by_id.get(&id).and_then(|i| self.streams.get_mut(*i)) {
                        if let Some(r) = &mut s.response {
                            self.progress += r.drain(conn, id, &mut self.scratch) + 1;
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
                    self.errors.push(format!(
                        "server stopped stream {} (code {error_code})",
                        id.0
                    ));
                }
                Event::Stream(StreamEvent::Reset { id, error_code }) => {
                    self.errors
                        .push(format!("server reset stream {} (code {error_code})", id.0));
                }
                Event::ConnectionLost(error) => {
                    self.progress += 1;
                    self.lost.get_or_insert(Loss { at: now, error });
                }
                _ => {}
            }
        }
        self.stats = conn.stats();
        self.rtt = conn.rtt();
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

/// One server stream.
#[derive(Debug)]
pub struct ServerStream {
    /// The request being checked.
    pub verifier: Verifier,
    /// The answer being written, on bidirectional streams.
    pub responder: Option<Writer>,
}

/// The server's view of one connection.
#[derive(Debug, Default)]
pub struct ServerConn {
    /// Streams by index.
    pub streams: BTreeMap<u64, ServerStream>,
    /// Sequence numbers of datagrams received intact.
    pub datagrams: BTreeSet<u64>,
    /// When the handshake completed (and, on the server, was confirmed).
    pub connected_at: Option<Instant>,
    /// How the connection ended, if it did.
    pub lost: Option<Loss>,
    /// When the last request byte arrived (all streams complete).
    pub completed_at: Option<Instant>,
    /// Problems seen (bad bytes, bad datagrams, refused writes).
    pub errors: Vec<String>,
    /// The connection's counters, as of its last input.
    pub stats: ConnectionStats,
}

/// The server's application.
#[derive(Debug)]
pub struct ServerApp {
    seed: u64,
    plan: Transfer,
    scratch: Vec<u8>,
    /// Every connection, by handle.
    pub conns: BTreeMap<ConnectionHandle, ServerConn>,
    progress: u64,
}

impl ServerApp {
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

    fn accept(&mut self, conn: &mut Connection, state: &mut ServerConn) {
        loop {
            let id = match conn.accept_bi().or_else(|| conn.accept_uni()) {
                Some(id) => id,
                None => return,
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
                if let Err(e) = w.pump(conn, id, &mut self.scratch) {
                    state.errors.push(e);
                }
            }
            self.progress += s.verifier.drain(conn, id, &mut self.scratch) + 1;
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

    fn is_conn_complete(&self, c: &ServerConn) -> bool {
        c.streams.len() == self.plan.streams && c.streams.values().all(|s| s.verifier.is_complete())
    }
}

impl JspApp for ServerApp {
    fn on_connection(&mut self, now: Instant, handle: ConnectionHandle, conn: &mut Connection) {
        let mut state = self.conns.remove(&handle).unwrap_or_default();
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(_) => {
                    state.connected_at.get_or_insert(now);
                    self.progress += 1;
                }
                Event::Stream(StreamEvent::Opened { .. }) => self.accept(conn, &mut state),
                Event::Stream(StreamEvent::Readable { id }) => {
                    if let Some(s) = state.streams.get_mut(&id.index()) {
                        self.progress += s.verifier.drain(conn, id, &mut self.scratch) + 1;
                    }
                }
                Event::Stream(StreamEvent::Writable { id }) => {
                    if let Some(w) = state
                        .streams
                        .get_mut(&id.index())
                        .and_then(|s| s.responder.as_mut())
                    {
                        if let Err(e) = w.pump(conn, id, &mut self.scratch) {
                            state.errors.push(e);
                        }
                    }
                }
                Event::DatagramReceived => {
                    while let Some(d) = conn.recv_datagram() {
                        self.on_datagram(&d, &mut state);
                    }
                }
                Event::Stream(StreamEvent::Reset { id, error_code }) => {
                    state
                        .errors
                        .push(format!("client reset stream {} (code {error_code})", id.0));
                }
                Event::ConnectionLost(error) => {
                    self.progress += 1;
                    state.lost.get_or_insert(Loss { at: now, error });
                }
                _ => {}
            }
        }
        for s in state.streams.values() {
            if let Some(e) = s.verifier.error() {
                if !state.errors.iter().any(|x| x.ends_with(e)) {
                    state.errors.push(format!("request stream: {e}"));
                }
            }
        }
        state.stats = conn.stats();
        if state.completed_at.is_none() && self.is_conn_complete(&state) {
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
