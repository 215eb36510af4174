//! The state one endpoint's driver task and all its handles share, behind one mutex.
//!
//! The driver task owns the socket and the timer; everything protocol-related (the core endpoint,
//! its connections, and the wakers of tasks waiting on them) lives here. Handles lock, call the
//! core, register a waker when they must wait, and wake the driver when they queued something to
//! send. The driver locks, feeds datagrams and timeouts to the core, drains the core's events
//! into the waiting tasks' wakers, and sends what the core produced. Invariant: the core's
//! events are drained under the same lock hold that produced them, so a waiter that registered
//! its waker under the lock never misses the event that concerns it.
//!
//! Wakers are woken after the lock is released, not while it is held ([`StateGuard`]): a task
//! woken on another worker thread runs at once and locks the state first thing, and finding it
//! still held it went to sleep on the mutex and had to be woken a second time (on loopback, a
//! sequential handshake paid for several of these round trips through the kernel).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use jsp_core::connection::{Connection as CoreConnection, Event};
use jsp_core::endpoint::{
    ConnectionHandle, ConnectionQueues, ConnectionTimers, Endpoint as CoreEndpoint, KeyShareDemand,
    KeyShares, QueueMarks,
};
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
            defer_wake(w);
        }
    }
}

thread_local! {
    /// Per thread: how many [`StateGuard`]s are alive, and the wakers to wake once the last
    /// of them is dropped (its lock released).
    static DEFERRED: RefCell<(u32, Vec<Waker>)> = const { RefCell::new((0, Vec::new())) };
}

/// Wakes `w` once this thread holds no state lock any more (at once if it holds none).
pub(crate) fn defer_wake(w: Waker) {
    let now = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 == 0 {
            Some(w)
        } else {
            d.1.push(w);
            None
        }
    });
    if let Some(w) = now {
        w.wake();
    }
}

/// The locked state. Dropping it releases the lock, then wakes the wakers deferred while it
/// (or any other guard of this thread) was held.
pub(crate) struct StateGuard<'a>(Option<MutexGuard<'a, State>>);

impl Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        match &self.0 {
            Some(g) => g,
            None => unreachable!("the guard is only emptied when dropped"),
        }
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        match &mut self.0 {
            Some(g) => g,
            None => unreachable!("the guard is only emptied when dropped"),
        }
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        drop(self.0.take());
        let ready = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            d.0 = d.0.saturating_sub(1);
            if d.0 == 0 && !d.1.is_empty() {
                Some(std::mem::take(&mut d.1))
            } else {
                None
            }
        });
        if let Some(mut wakers) = ready {
            for w in wakers.drain(..) {
                w.wake();
            }
            // Give the (now empty) buffer back, so steady state does not allocate.
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.1.capacity() == 0 {
                    d.1 = wakers;
                }
            });
        }
    }
}

/// Narrows a key demand to at most `max` client shares (no server key pairs).
fn client_part(demand: &mut KeyShareDemand, max: usize) {
    demand.server_key_pairs = 0;
    demand.client_shares = demand.client_shares.min(max);
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
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        let guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        DEFERRED.with(|d| d.borrow_mut().0 += 1);
        StateGuard(Some(guard))
    }
}

/// One endpoint's state.
///
/// The driver's work per wake-up is proportional to the connections that changed, not to all of
/// them: every access to a connection goes through [`State::conn_mut`] (or [`State::insert`]),
/// which queues it for [`State::settle`] (hand its events out, re-arm its timer, forget it once
/// drained) and for the driver's send pass. Timers live in one ordered set.
pub(crate) struct State {
    pub(crate) endpoint: CoreEndpoint,
    /// Boxed: a connection's state is several KiB, and a map's empty buckets (up to half of
    /// them after it grows) would hold that much each.
    conns: HashMap<ConnectionHandle, Box<ConnState>>,
    /// Connections to settle, and those that may have datagrams to send (each once: its
    /// [`ConnState::marks`]).
    queues: ConnectionQueues,
    /// Every connection's next deadline (as of its last settling).
    timers: ConnectionTimers,
    /// Connections in the map that have not drained.
    live: usize,
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
    /// The generator of keys made ahead of handshakes, seeded from the OS; `None` while keys
    /// are being made with it ([`State::take_server_key_work`], [`State::take_client_key_work`]).
    pub(crate) keygen_rng: Option<jsp_core::rand::Rng>,
}

/// What [`State::for_each_sender`]'s callback says of a connection it was given.
pub(crate) enum SendTurn {
    /// It has nothing more to send now: leave the send queue.
    Exhausted,
    /// It may have more: back of the queue.
    More,
    /// It may have more, and the caller's buffer is full: back of the queue, stop.
    Full,
}

impl State {
    /// A fresh state for `endpoint` bound to `local_addr`, with one `Endpoint` handle.
    pub(crate) fn new(endpoint: CoreEndpoint, local_addr: SocketAddr) -> Self {
        Self {
            endpoint,
            conns: HashMap::new(),
            queues: ConnectionQueues::new(),
            timers: ConnectionTimers::new(),
            live: 0,
            incoming: VecDeque::new(),
            accept_wakers: WakerSet::default(),
            idle_wakers: WakerSet::default(),
            driver: None,
            endpoint_refs: 1,
            closed: false,
            driver_gone: false,
            local_addr,
            key_log: None,
            keygen_rng: None,
        }
    }

    /// The server's ephemeral key pairs the endpoint wants generated ahead of its next
    /// handshakes, with the generator to make them, when there are any and no blocking task is
    /// already at it. The caller generates them off the event loop (a server answering many
    /// handshakes keeps its driver free for them) and hands both back with
    /// [`Self::supply_key_shares`].
    pub(crate) fn take_server_key_work(&mut self) -> Option<(KeyShareDemand, jsp_core::rand::Rng)> {
        let demand = self.key_work(|d| d.client_shares = 0)?;
        self.keygen_rng.take().map(|rng| (demand, rng))
    }

    /// At most `max` of the client key shares the endpoint wants generated ahead of its next
    /// connects, with the generator, for the driver to make at once (see `Driver::poll`).
    pub(crate) fn take_client_key_work(
        &mut self,
        max: usize,
    ) -> Option<(KeyShareDemand, jsp_core::rand::Rng)> {
        let demand = self.key_work(|d| client_part(d, max))?;
        self.keygen_rng.take().map(|rng| (demand, rng))
    }

    /// Whether [`Self::take_client_key_work`] would have work.
    pub(crate) fn wants_client_keys(&self) -> bool {
        self.key_work(|d| client_part(d, usize::MAX)).is_some()
    }

    /// The endpoint's key demand, narrowed by `part`, when there is any and the generator is
    /// free.
    fn key_work(&self, part: impl FnOnce(&mut KeyShareDemand)) -> Option<KeyShareDemand> {
        if self.keygen_rng.is_none() || self.closed {
            return None;
        }
        let mut demand = self.endpoint.key_share_demand();
        part(&mut demand);
        (!demand.is_empty()).then_some(demand)
    }

    /// Takes keys generated for [`Self::take_key_share_work`], and its generator back.
    pub(crate) fn supply_key_shares(&mut self, shares: KeyShares, rng: jsp_core::rand::Rng) {
        self.endpoint.supply_key_shares(shares);
        self.keygen_rng = Some(rng);
    }

    /// Connections in the table (drained ones included until their last handle goes).
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Adds a new connection (queued for settling and sending).
    pub(crate) fn insert(&mut self, handle: ConnectionHandle, cs: ConnState) {
        self.live += 1;
        if let Some(old) = self.conns.insert(handle, Box::new(cs)) {
            // Handles are never reused by the core; keep the counts right regardless.
            if !old.drained {
                self.live -= 1;
            }
            self.timers.set(handle, None);
        }
        self.touch(handle);
    }

    /// The connection `handle`, queued for settling and sending: the caller may change it.
    pub(crate) fn conn_mut(&mut self, handle: ConnectionHandle) -> Option<&mut ConnState> {
        let cs = self.conns.get_mut(&handle)?;
        self.queues.touch(handle, &mut cs.marks);
        Some(cs)
    }

    /// Queues `handle` for settling and sending.
    fn touch(&mut self, handle: ConnectionHandle) {
        let _ = self.conn_mut(handle);
    }

    /// Runs `f` on every connection (each queued for settling and sending).
    pub(crate) fn for_each_conn(&mut self, mut f: impl FnMut(&mut ConnState)) {
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for h in handles {
            if let Some(cs) = self.conn_mut(h) {
                f(cs);
            }
        }
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&self) -> Option<jsp_core::Instant> {
        self.timers.next()
    }

    /// Hands every connection whose deadline passed its timeout.
    pub(crate) fn fire_timers(&mut self, now: jsp_core::Instant) {
        while let Some(h) = self.timers.pop_due(now) {
            let Some(cs) = self.conn_mut(h) else {
                continue;
            };
            // The armed deadline may be stale (the connection changed since it was settled).
            if cs.conn.poll_timeout().is_some_and(|d| d <= now) {
                cs.conn.handle_timeout(now);
            }
        }
    }

    /// Gives the connections that may have something to send, round-robin, to `f`, each at
    /// most once. Each is queued for settling (sending changes its timers and may raise
    /// events).
    pub(crate) fn for_each_sender(&mut self, mut f: impl FnMut(&mut ConnState) -> SendTurn) {
        for _ in 0..self.queues.senders() {
            let Some(h) = self.queues.pop_send() else {
                break;
            };
            let Some(cs) = self.conns.get_mut(&h) else {
                continue;
            };
            self.queues.to_settle(h, &mut cs.marks);
            match f(cs) {
                SendTurn::Exhausted => cs.marks.exhausted(),
                SendTurn::More => self.queues.requeue_send(h),
                SendTurn::Full => {
                    self.queues.requeue_send(h);
                    break;
                }
            }
        }
    }

    /// Settles every touched connection: hands its events to the tasks waiting for them,
    /// re-arms its timer, and forgets it once drained and unreferenced. A connection that
    /// drained while waiting in the accept queue leaves the queue first (`accept()` could only
    /// have handed out a dead connection): keeping it would let an application that stops
    /// accepting, under a stream of handshakes, grow the queue and the table without bound.
    /// The queue so holds at most the endpoint's live connections
    /// (`EndpointConfig::max_connections`).
    pub(crate) fn settle(&mut self) {
        while let Some(h) = self.queues.pop_settle() {
            let Some(cs) = self.conns.get_mut(&h) else {
                continue;
            };
            cs.marks.settled();
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
                self.endpoint.handle_event(h, ev);
            }
            self.timers.set(h, cs.conn.poll_timeout());
            if !cs.drained && cs.conn.is_drained() {
                cs.drained = true;
                self.live -= 1;
                if cs.accept_queued {
                    cs.accept_queued = false;
                    cs.refs = cs.refs.saturating_sub(1);
                    self.incoming.retain(|&x| x != h);
                }
            }
            if cs.drained && cs.refs == 0 {
                self.remove(h);
            }
        }
        if self.live == 0 {
            self.idle_wakers.wake();
        }
    }

    /// Forgets `handle` if it is drained and no handle refers to it.
    pub(crate) fn reap(&mut self, handle: ConnectionHandle) {
        if self
            .conns
            .get(&handle)
            .is_some_and(|cs| cs.drained && cs.refs == 0)
        {
            self.remove(handle);
        }
    }

    fn remove(&mut self, handle: ConnectionHandle) {
        if let Some(cs) = self.conns.remove(&handle) {
            self.timers.set(handle, None);
            if !cs.drained {
                self.live -= 1;
            }
        }
    }

    /// Takes the oldest connection from the accept queue.
    pub(crate) fn pop_incoming(&mut self) -> Option<ConnectionHandle> {
        let h = self.incoming.pop_front()?;
        if let Some(cs) = self.conns.get_mut(&h) {
            cs.accept_queued = false;
        }
        Some(h)
    }

    /// Queues a new server connection for `accept()` (the queue holds one reference).
    pub(crate) fn push_incoming(&mut self, handle: ConnectionHandle) {
        if let Some(cs) = self.conns.get_mut(&handle) {
            cs.accept_queued = true;
        }
        self.incoming.push_back(handle);
        self.accept_wakers.wake();
    }

    /// Asks the driver to run (something was queued for sending, or a handle went away).
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            defer_wake(w);
        }
    }

    /// Stops accepting: queued, unaccepted connections are refused and `accept()` returns `None`.
    pub(crate) fn stop_accepting(&mut self) {
        self.closed = true;
        self.endpoint.set_server_config(None);
        let now = crate::clock::now();
        while let Some(h) = self.pop_incoming() {
            if let Some(cs) = self.conn_mut(h) {
                cs.conn.close(now, 0, b"server endpoint closed");
                cs.refs = cs.refs.saturating_sub(1);
            }
        }
        self.accept_wakers.wake();
        self.wake_driver();
    }

    /// Whether every connection is closed and drained (as of the last settling).
    pub(crate) fn is_idle(&self) -> bool {
        self.live == 0
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
    /// Whether it is in [`State`]'s settle and send queues.
    marks: QueueMarks,
    /// Seen drained by [`State::settle`].
    drained: bool,
    /// Waiting in the accept queue (which holds a reference).
    accept_queued: bool,
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
            marks: QueueMarks::default(),
            drained: false,
            accept_queued: false,
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
            defer_wake(w);
        }
        for (_, w) in self.writers.drain() {
            defer_wake(w);
        }
        for (_, w) in self.awaiting_finish.drain() {
            if let Some(w) = w {
                defer_wake(w);
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
                    defer_wake(w);
                }
            }
            StreamEvent::Writable { id } => {
                if let Some(w) = self.writers.remove(&id) {
                    defer_wake(w);
                }
            }
            StreamEvent::Stopped { id, error_code } => {
                if let Some(w) = self.writers.remove(&id) {
                    defer_wake(w);
                }
                if let Some(w) = self.awaiting_finish.remove(&id) {
                    self.finish_outcome.insert(id, Some(error_code));
                    if let Some(w) = w {
                        defer_wake(w);
                    }
                }
            }
            StreamEvent::Finished { id } => {
                if let Some(w) = self.awaiting_finish.remove(&id) {
                    self.finish_outcome.insert(id, None);
                    if let Some(w) = w {
                        defer_wake(w);
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

    /// A client-only core endpoint.
    fn core_endpoint(rng: &mut Rng) -> CoreEndpoint {
        CoreEndpoint::new(
            Arc::new(EndpointConfig::default()),
            None,
            rng.fork(),
            Instant::ZERO,
        )
        .expect("endpoint")
    }

    /// Counts its wakes, and records whether the state's lock was free at each.
    struct Probe {
        shared: Arc<Shared>,
        wakes: std::sync::atomic::AtomicUsize,
        woken_while_locked: std::sync::atomic::AtomicUsize,
    }

    impl std::task::Wake for Probe {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            use std::sync::atomic::Ordering::SeqCst;
            self.wakes.fetch_add(1, SeqCst);
            if self.shared.state.try_lock().is_err() {
                self.woken_while_locked.fetch_add(1, SeqCst);
            }
        }
    }

    #[test]
    fn wakers_are_woken_after_the_lock_is_released() {
        use std::sync::atomic::Ordering::SeqCst;
        let mut rng = Rng::from_seed([4; 32]);
        let endpoint = core_endpoint(&mut rng);
        let local: SocketAddr = "127.0.0.1:4433".parse().expect("address");
        let shared = Arc::new(Shared::new(State::new(endpoint, local)));
        let other = Shared::new(State::new(core_endpoint(&mut rng), local));
        let probe = Arc::new(Probe {
            shared: shared.clone(),
            wakes: Default::default(),
            woken_while_locked: Default::default(),
        });
        let waker = Waker::from(probe.clone());
        let cx = Context::from_waker(&waker);
        // The driver's waker, and an accept() waiter: both woken from under the lock.
        {
            let mut st = shared.lock();
            st.driver = Some(waker.clone());
            st.accept_wakers.register(&cx);
            st.wake_driver();
            st.accept_wakers.wake();
            // A nested guard of this thread (another endpoint's, say) defers too, until the
            // outermost is released.
            drop(other.lock());
            assert_eq!(probe.wakes.load(SeqCst), 0, "nothing woken under the lock");
        }
        assert_eq!(
            probe.wakes.load(SeqCst),
            2,
            "both woken once the lock is free"
        );
        assert_eq!(probe.woken_while_locked.load(SeqCst), 0);
        // Without a lock held, a wake is immediate.
        defer_wake(waker.clone());
        assert_eq!(probe.wakes.load(SeqCst), 3);
    }

    #[test]
    fn a_connection_that_drained_in_the_accept_queue_leaves_it_and_the_map() {
        let mut rng = Rng::from_seed([3; 32]);
        let identity = IdentityKey::generate(SignatureScheme::Ed25519, &mut rng);
        let client = Arc::new(ClientConfig::pinned(identity.public()));
        let mut endpoint = core_endpoint(&mut rng);
        let remote: SocketAddr = "127.0.0.1:443".parse().expect("address");
        let mut state = State::new(core_endpoint(&mut rng), remote);
        // Three queued connections, as `route` queues them (the queue's reference only); the
        // application never calls `accept()`. Two of them end and drain.
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (h, conn) = endpoint
                .connect(Instant::ZERO, client.clone(), remote, None)
                .expect("connect");
            state.insert(h, ConnState::new(conn, 1));
            state.push_incoming(h);
            handles.push(h);
        }
        let later = Instant::from_millis(120_000);
        for h in &handles[..2] {
            let conn = &mut state.conn_mut(*h).expect("queued").conn;
            conn.close(Instant::ZERO, 0, b"gone");
            conn.handle_timeout(later);
            assert!(conn.is_drained(), "closed and past its drain period");
        }
        state.settle();
        assert_eq!(
            state.incoming.iter().copied().collect::<Vec<_>>(),
            [handles[2]]
        );
        assert_eq!(state.len(), 1, "the drained ones are gone from the map too");
        assert!(state.conns.contains_key(&handles[2]));
        assert!(!state.is_idle(), "one connection is still live");
    }
}
