//! The state one endpoint's driver task and all its handles share, behind one mutex.
//!
//! The driver task owns the socket and the timer; everything protocol-related (the core endpoint,
//! its connections, and the wakers of tasks waiting on them) lives here. Handles lock, call the
//! core, register a waker when they must wait, and wake the driver when they queued something to
//! send. The driver locks, feeds datagrams and timeouts to the core, drains the core's events
//! into the waiting tasks' wakers, and sends what the core produced. Invariant: the core's
//! events are drained under the same lock hold that produced them, so a waiter that registered
//! its waker under the lock never misses the event that concerns it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use jsp_core::connection::{Connection as CoreConnection, Event};
use jsp_core::endpoint::{ConnectionHandle, Endpoint as CoreEndpoint};
use jsp_core::frame::{Dir, StreamId};
use jsp_core::handshake::ClientTicket;
use jsp_core::session::HandshakeInfo;
use jsp_core::stream::StreamEvent;

use crate::error::ConnectionError;

/// Most session tickets kept per connection (the newest win).
const MAX_TICKETS: usize = 4;

/// Tasks waiting for the same thing.
#[derive(Default, Debug)]
pub(crate) struct WakerSet(Vec<Waker>);

impl WakerSet {
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        if !self.0.iter().any(|w| w.will_wake(cx.waker())) {
            self.0.push(cx.waker().clone());
        }
    }

    pub(crate) fn wake(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

/// The shared state and its lock.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A panic in another holder leaves the state usable (the core keeps its
    /// invariants between calls), so a poisoned lock is entered anyway.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One endpoint's state.
pub(crate) struct State {
    pub(crate) endpoint: CoreEndpoint,
    /// Boxed: a connection's state is several KiB, and a map's empty buckets (up to half of
    /// them after it grows) would hold that much each.
    pub(crate) conns: HashMap<ConnectionHandle, Box<ConnState>>,
    /// Server: accepted connections not yet handed out by `accept()`.
    pub(crate) incoming: VecDeque<ConnectionHandle>,
    pub(crate) accept_wakers: WakerSet,
    pub(crate) idle_wakers: WakerSet,
    pub(crate) driver: Option<Waker>,
    /// Live `Endpoint` handles.
    pub(crate) endpoint_refs: usize,
    /// No new connections: `close()` was called or every `Endpoint` handle is gone.
    pub(crate) closed: bool,
    /// The driver task ended (all work done, or a fatal socket error).
    pub(crate) driver_gone: bool,
    pub(crate) local_addr: SocketAddr,
    /// The key log, when [`crate::Endpoint::enable_key_log`] turned it on.
    pub(crate) key_log: Option<std::fs::File>,
}

impl State {
    /// Asks the driver to run (something was queued for sending, or a handle went away).
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Stops accepting: queued, unaccepted connections are refused and `accept()` returns `None`.
    pub(crate) fn stop_accepting(&mut self) {
        self.closed = true;
        self.endpoint.set_server_config(None);
        let now = crate::clock::now();
        for h in self.incoming.drain(..) {
            if let Some(cs) = self.conns.get_mut(&h) {
                cs.conn.close(now, 0, b"server endpoint closed");
                cs.refs = cs.refs.saturating_sub(1);
            }
        }
        self.accept_wakers.wake();
        self.wake_driver();
    }

    /// Drops connections that are gone and no longer referenced by any handle. A connection that
    /// drained while waiting in the accept queue leaves the queue first (`accept()` could only
    /// have handed out a dead connection): the endpoint already forgot it, so keeping it would
    /// let an application that stops accepting, under a stream of handshakes, grow the queue and
    /// the connection map without bound. The queue so holds at most the endpoint's live
    /// connections (`EndpointConfig::max_connections`).
    pub(crate) fn reap(&mut self) {
        let conns = &mut self.conns;
        self.incoming.retain(|h| match conns.get_mut(h) {
            Some(cs) if cs.conn.is_drained() => {
                cs.refs = cs.refs.saturating_sub(1);
                false
            }
            Some(_) => true,
            None => false,
        });
        self.conns
            .retain(|_, cs| !(cs.refs == 0 && cs.conn.is_drained()));
        if self.is_idle() {
            self.idle_wakers.wake();
        }
    }

    /// Whether every connection is closed and drained.
    pub(crate) fn is_idle(&self) -> bool {
        self.conns.values().all(|cs| cs.conn.is_drained())
    }

    /// Hands the core's events of every connection to the tasks waiting for them.
    pub(crate) fn dispatch_events(&mut self) {
        for (handle, cs) in self.conns.iter_mut() {
            cs.dispatch();
            if !cs.key_log_lines.is_empty() {
                if let Some(file) = &mut self.key_log {
                    use std::io::Write;
                    for line in cs.key_log_lines.drain(..) {
                        if let Err(e) = writeln!(file, "{line}") {
                            tracing::warn!(error = %e, "writing the key log failed");
                        }
                    }
                } else {
                    cs.key_log_lines.clear();
                }
            }
            while let Some(ev) = cs.conn.poll_endpoint_event() {
                self.endpoint.handle_event(*handle, ev);
            }
        }
    }
}

/// One connection and the tasks waiting on it.
pub(crate) struct ConnState {
    pub(crate) conn: CoreConnection,
    pub(crate) remote: SocketAddr,
    /// Key-log lines exported by the core, waiting to be written to the endpoint's key log.
    pub(crate) key_log_lines: Vec<String>,
    /// Handles (connections, streams, `Connecting`s, the accept queue) referring to it.
    pub(crate) refs: usize,
    pub(crate) handshake: Option<HandshakeInfo>,
    pub(crate) error: Option<ConnectionError>,
    pub(crate) zero_rtt_rejected: bool,
    pub(crate) handshake_wakers: WakerSet,
    pub(crate) closed_wakers: WakerSet,
    pub(crate) accept_bi: WakerSet,
    pub(crate) accept_uni: WakerSet,
    pub(crate) open_bi: WakerSet,
    pub(crate) open_uni: WakerSet,
    pub(crate) datagrams: WakerSet,
    pub(crate) tickets: VecDeque<ClientTicket>,
    pub(crate) ticket_wakers: WakerSet,
    pub(crate) readers: HashMap<StreamId, Waker>,
    pub(crate) writers: HashMap<StreamId, Waker>,
    /// Streams whose handle waits for the peer to acknowledge everything (`finished()`).
    pub(crate) awaiting_finish: HashMap<StreamId, Option<Waker>>,
    /// Outcomes for the streams in `awaiting_finish`: `None` finished, `Some(code)` stopped.
    pub(crate) finish_outcome: HashMap<StreamId, Option<u64>>,
}

impl ConnState {
    pub(crate) fn new(conn: CoreConnection, refs: usize) -> Self {
        Self {
            remote: conn.remote_address(),
            key_log_lines: Vec::new(),
            conn,
            refs,
            handshake: None,
            error: None,
            zero_rtt_rejected: false,
            handshake_wakers: WakerSet::default(),
            closed_wakers: WakerSet::default(),
            accept_bi: WakerSet::default(),
            accept_uni: WakerSet::default(),
            open_bi: WakerSet::default(),
            open_uni: WakerSet::default(),
            datagrams: WakerSet::default(),
            tickets: VecDeque::new(),
            ticket_wakers: WakerSet::default(),
            readers: HashMap::new(),
            writers: HashMap::new(),
            awaiting_finish: HashMap::new(),
            finish_outcome: HashMap::new(),
        }
    }

    /// The error that ended the connection, or `Err(())` when it is closed but the driver has
    /// not reported why yet (the caller waits; the driver wakes every waiter when it does).
    pub(crate) fn check(&self) -> Result<(), Option<ConnectionError>> {
        match &self.error {
            Some(e) => Err(Some(e.clone())),
            None if self.conn.is_closed() => Err(None),
            None => Ok(()),
        }
    }

    fn wake_all(&mut self) {
        for set in [
            &mut self.handshake_wakers,
            &mut self.closed_wakers,
            &mut self.accept_bi,
            &mut self.accept_uni,
            &mut self.open_bi,
            &mut self.open_uni,
            &mut self.datagrams,
            &mut self.ticket_wakers,
        ] {
            set.wake();
        }
        for (_, w) in self.readers.drain() {
            w.wake();
        }
        for (_, w) in self.writers.drain() {
            w.wake();
        }
        for (_, w) in self.awaiting_finish.drain() {
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    fn dispatch(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            tracing::trace!(remote = %self.remote, event = ?ev, "event");
            match ev {
                Event::Connected(info) => {
                    tracing::debug!(remote = %self.remote, suite = ?info.suite, kex = %info.key_exchange, resumed = info.resumed, "connected");
                    self.handshake = Some(info);
                    self.handshake_wakers.wake();
                }
                Event::ZeroRttRejected => {
                    tracing::debug!(remote = %self.remote, "0-RTT rejected; early data is resent");
                    self.zero_rtt_rejected = true;
                }
                Event::NewTicket(t) => {
                    if self.tickets.len() == MAX_TICKETS {
                        self.tickets.pop_front();
                    }
                    // Room for exactly one more: most connections get one ticket, and the
                    // default growth (four slots) would keep ~1 KiB with each idle connection.
                    self.tickets.reserve_exact(1);
                    self.tickets.push_back(*t);
                    self.ticket_wakers.wake();
                }
                Event::DatagramReceived => self.datagrams.wake(),
                Event::Stream(ev) => self.stream_event(ev),
                Event::KeyLog(entry) => self.key_log_lines.push(entry.to_line()),
                Event::KeyUpdated { generation } => {
                    tracing::debug!(remote = %self.remote, generation, "key update");
                }
                Event::ConnectionLost(e) => {
                    let err = ConnectionError::from_core(&e, self.remote, self.handshake.is_some());
                    tracing::debug!(remote = %self.remote, error = %err, "connection lost");
                    self.error = Some(err);
                    self.wake_all();
                }
                _ => {}
            }
        }
    }

    fn stream_event(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Opened { dir: Dir::Bi } => self.accept_bi.wake(),
            StreamEvent::Opened { dir: Dir::Uni } => self.accept_uni.wake(),
            StreamEvent::Available { dir: Dir::Bi } => self.open_bi.wake(),
            StreamEvent::Available { dir: Dir::Uni } => self.open_uni.wake(),
            StreamEvent::Readable { id } | StreamEvent::Reset { id, .. } => {
                if let Some(w) = self.readers.remove(&id) {
                    w.wake();
                }
            }
            StreamEvent::Writable { id } => {
                if let Some(w) = self.writers.remove(&id) {
                    w.wake();
                }
            }
            StreamEvent::Stopped { id, error_code } => {
                if let Some(w) = self.writers.remove(&id) {
                    w.wake();
                }
                if let Some(w) = self.awaiting_finish.remove(&id) {
                    self.finish_outcome.insert(id, Some(error_code));
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            StreamEvent::Finished { id } => {
                if let Some(w) = self.awaiting_finish.remove(&id) {
                    self.finish_outcome.insert(id, None);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsp_core::config::{ClientConfig, EndpointConfig};
    use jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
    use jsp_core::rand::Rng;
    use jsp_core::Instant;
    use std::sync::Arc;

    #[test]
    fn a_connection_that_drained_in_the_accept_queue_leaves_it_and_the_map() {
        let mut rng = Rng::from_seed([3; 32]);
        let identity = IdentityKey::generate(SignatureScheme::Ed25519, &mut rng);
        let client = Arc::new(ClientConfig::pinned(identity.public()));
        let mut endpoint = CoreEndpoint::new(
            Arc::new(EndpointConfig::default()),
            None,
            rng.fork(),
            Instant::ZERO,
        )
        .expect("endpoint");
        let remote: SocketAddr = "127.0.0.1:443".parse().expect("address");
        let mut state = State {
            endpoint: CoreEndpoint::new(
                Arc::new(EndpointConfig::default()),
                None,
                rng.fork(),
                Instant::ZERO,
            )
            .expect("endpoint"),
            conns: HashMap::new(),
            incoming: VecDeque::new(),
            accept_wakers: WakerSet::default(),
            idle_wakers: WakerSet::default(),
            driver: None,
            endpoint_refs: 1,
            closed: false,
            driver_gone: false,
            local_addr: remote,
            key_log: None,
        };
        // Three queued connections, as `route` queues them (the queue's reference only); the
        // application never calls `accept()`. Two of them end and drain.
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (h, conn) = endpoint
                .connect(Instant::ZERO, client.clone(), remote, None)
                .expect("connect");
            state.conns.insert(h, Box::new(ConnState::new(conn, 1)));
            state.incoming.push_back(h);
            handles.push(h);
        }
        let later = Instant::from_millis(120_000);
        for h in &handles[..2] {
            let conn = &mut state.conns.get_mut(h).expect("queued").conn;
            conn.close(Instant::ZERO, 0, b"gone");
            conn.handle_timeout(later);
            assert!(conn.is_drained(), "closed and past its drain period");
        }
        state.reap();
        assert_eq!(
            state.incoming.iter().copied().collect::<Vec<_>>(),
            [handles[2]]
        );
        assert_eq!(
            state.conns.len(),
            1,
            "the drained ones are gone from the map too"
        );
        assert!(state.conns.contains_key(&handles[2]));
    }
}
