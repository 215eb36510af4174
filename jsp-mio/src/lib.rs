//! # jsp-mio — JetStreamProto in a program that owns its event loop
//!
//! No async runtime: [`Endpoint`] wraps a mio `UdpSocket` and the sans-IO core. The program
//! registers it with its `mio::Poll`, polls with [`Endpoint::timeout`] as the timeout, calls
//! [`Endpoint::drive`] after every wake-up (and after using a connection), and drains
//! [`Endpoint::poll_event`]. Connections are the core's own [`jsp_core::connection::Connection`],
//! reached through [`Endpoint::connection`]: streams, datagrams and close are the core's API.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mio::{Events, Poll, Token};
//! # let (addr, key): (std::net::SocketAddr, jsp_core::crypto::sign::PublicIdentity) = todo!();
//! let mut poll = Poll::new()?;
//! let mut ep = jsp_mio::Endpoint::bind("127.0.0.1:0".parse()?, None)?;
//! ep.register(poll.registry(), Token(0))?;
//! let conn = ep.connect(addr, key)?;
//! let mut events = Events::with_capacity(64);
//! loop {
//!     poll.poll(&mut events, ep.timeout())?;
//!     ep.drive()?;
//!     while let Some((handle, event)) = ep.poll_event() {
//!         // react: ep.connection(handle) gives the core connection (open_bi, write, read, …)
//!     }
//!     ep.drive()?; // send what the reactions queued
//! }
//! # }
//! ```
//!
//! `examples/echo.rs` runs a server and a client in one loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig};
use jsp_core::connection::{Connection, Event};
use jsp_core::crypto::sign::PublicIdentity;
use jsp_core::endpoint::{
    ConnectionHandle, ConnectionQueues, ConnectionTimers, DatagramEvent, Endpoint as CoreEndpoint,
    QueueMarks,
};
use jsp_core::handshake::ClientTicket;
use jsp_core::rand::Rng;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSocketState, BATCH_SIZE};

pub use jsp_core;
pub use mio;

/// Largest datagram received or sent.
const MAX_DATAGRAM: usize = 1500;

/// Creating an endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The UDP socket could not be bound or set up.
    #[error("cannot set up a UDP socket on {addr}: {source} (is the address in use, or not one of this host's?)")]
    Socket {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A configuration value cannot work.
    #[error("{0}")]
    Config(jsp_core::config::ConfigError),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// Starting a connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A configuration value cannot work.
    #[error("{0}")]
    Config(jsp_core::config::ConfigError),
}

static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The core's clock, shared by every endpoint of the process (so tickets from one endpoint
/// resume on another): time since the process first asked.
pub fn now() -> jsp_core::Instant {
    jsp_core::Instant::from_duration(ORIGIN.get_or_init(std::time::Instant::now).elapsed())
}

/// A server configuration with the core's defaults for `identity` and fresh ticket keys.
pub fn server_config(
    identity: Arc<jsp_core::crypto::sign::IdentityKey>,
) -> Result<ServerConfig, BindError> {
    let resumption = jsp_core::session::ServerResumption::new(&mut os_rng()?, now());
    Ok(ServerConfig::new(identity, Arc::new(resumption)))
}

/// A random number generator seeded from the operating system.
pub fn os_rng() -> Result<Rng, BindError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| BindError::Random(e.to_string()))?;
    Ok(Rng::from_seed(seed))
}

/// A connection and its bookkeeping: [`Endpoint::drive`] visits only the connections that
/// changed (received a datagram, hit a deadline, or were used through
/// [`Endpoint::connection`]), so a wake-up costs the same with ten or ten thousand idle
/// connections.
struct Slot {
    conn: Connection,
    /// Whether it is in `Endpoint::queues`.
    marks: QueueMarks,
    /// Whether it is in `Endpoint::with_events`.
    events_queued: bool,
}

/// One UDP socket's worth of JetStreamProto, for a mio event loop.
pub struct Endpoint {
    socket: UdpSocket,
    udp: UdpSocketState,
    core: CoreEndpoint,
    /// Boxed: a `Connection` is several KiB, and a map's empty buckets would hold that much
    /// each.
    conns: HashMap<ConnectionHandle, Box<Slot>>,
    /// Connections touched since [`Self::drive`] last settled them, and those that may have
    /// datagrams to send (each once).
    queues: ConnectionQueues,
    /// Every connection's next deadline.
    timers: ConnectionTimers,
    /// Connections that may have events, in the order they changed (each once). Events stay
    /// in the core's connection, which coalesces them and bounds them by the protocol's limits
    /// (one `Readable` per stream until it is read, one `DatagramReceived` for any number of
    /// datagrams), until [`Endpoint::poll_event`] takes them: an application that is slow to
    /// poll does not make them multiply with every wake-up.
    with_events: VecDeque<ConnectionHandle>,
    /// The last events of connections that drained (and are forgotten).
    final_events: VecDeque<(ConnectionHandle, Event)>,
    recv_buf: Vec<u8>,
    recv_meta: Vec<RecvMeta>,
    send_buf: Vec<u8>,
    /// A datagram the socket refused with WouldBlock: (destination, length in `send_buf`).
    blocked: Option<(SocketAddr, usize)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.socket.local_addr().ok())
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint on a new socket bound to `addr`; with `server` it accepts connections.
    pub fn bind(addr: SocketAddr, server: Option<ServerConfig>) -> Result<Self, BindError> {
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| BindError::Socket { addr, source })?;
        Self::new(EndpointConfig::default(), server, socket)
    }

    /// An endpoint on an already bound socket.
    pub fn new(
        config: EndpointConfig,
        server: Option<ServerConfig>,
        socket: std::net::UdpSocket,
    ) -> Result<Self, BindError> {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let err = |source| BindError::Socket { addr, source };
        socket.set_nonblocking(true).map_err(err)?;
        let udp = UdpSocketState::new((&socket).into()).map_err(err)?;
        let core = CoreEndpoint::new(Arc::new(config), server.map(Arc::new), os_rng()?, now())
            .map_err(BindError::Config)?;
        Ok(Self {
            socket: UdpSocket::from_std(socket),
            recv_buf: vec![0; MAX_DATAGRAM * udp.gro_segments().max(1) * BATCH_SIZE],
            recv_meta: vec![RecvMeta::default(); BATCH_SIZE],
            send_buf: vec![0; MAX_DATAGRAM],
            udp,
            core,
            conns: HashMap::new(),
            queues: ConnectionQueues::new(),
            timers: ConnectionTimers::new(),
            with_events: VecDeque::new(),
            final_events: VecDeque::new(),
            blocked: None,
        })
    }

    /// Registers the socket with `registry` under `token`, for readable and writable events.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut self.socket,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The core's clock (see [`now`]).
    pub fn now(&self) -> jsp_core::Instant {
        now()
    }

    /// Connects to `addr`, pinning `server_key`.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        server_key: PublicIdentity,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.connect_with(Arc::new(ClientConfig::pinned(server_key)), addr, None)
    }

    /// Connects with a full configuration and optionally a session ticket (0-RTT).
    pub fn connect_with(
        &mut self,
        config: Arc<ClientConfig>,
        addr: SocketAddr,
        ticket: Option<ClientTicket>,
    ) -> Result<ConnectionHandle, ConnectError> {
        let now = self.now();
        let (handle, conn) = self
            .core
            .connect(now, config, addr, ticket)
            .map_err(ConnectError::Config)?;
        self.insert(handle, conn);
        Ok(handle)
    }

    fn insert(&mut self, handle: ConnectionHandle, conn: Connection) {
        let slot = Slot {
            conn,
            marks: QueueMarks::default(),
            events_queued: false,
        };
        if self.conns.insert(handle, Box::new(slot)).is_some() {
            self.timers.set(handle, None);
        }
        self.touch(handle);
    }

    /// The connection, queued for settling and sending.
    fn touch(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        let slot = self.conns.get_mut(&handle)?;
        self.queues.touch(handle, &mut slot.marks);
        Some(&mut slot.conn)
    }

    /// A connection, to use the core's stream, datagram and close API. Call [`Self::drive`]
    /// afterwards so that what it queued is sent. `None` once the connection is gone.
    pub fn connection(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        self.touch(handle)
    }

    /// Handles of the live connections (incoming ones appear after their first datagram).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.conns.keys().copied()
    }

    /// How long the event loop may sleep before [`Self::drive`] must run again (`None`: until
    /// the socket is ready). Pass it to `mio::Poll::poll`.
    pub fn timeout(&self) -> Option<Duration> {
        let now = self.now();
        // The armed deadlines, and the live ones of connections used since the last `drive`.
        let changed = self
            .queues
            .unsettled()
            .filter_map(|h| self.conns.get(&h)?.conn.poll_timeout());
        self.timers
            .next()
            .into_iter()
            .chain(changed)
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    /// The next event: `(connection, event)`. A new incoming connection announces itself with
    /// its first event (usually `Connected`); `ConnectionLost` is the last of a connection's.
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        if let Some(e) = self.final_events.pop_front() {
            return Some(e);
        }
        while let Some(&h) = self.with_events.front() {
            if let Some(slot) = self.conns.get_mut(&h) {
                if let Some(ev) = slot.conn.poll_event() {
                    return Some((h, ev));
                }
                slot.events_queued = false;
            }
            self.with_events.pop_front();
        }
        None
    }

    /// Events and connections waiting for [`Self::poll_event`]: the last events of drained
    /// connections plus the connections that may have events (each holds its own, coalesced and
    /// bounded). For metrics, and for tests that check the queue stays bounded.
    pub fn queued_events(&self) -> usize {
        self.final_events.len() + self.with_events.len()
    }

    /// Does everything due now: reads every datagram the socket has, fires expired timers,
    /// collects events, sends what the connections want to send, and forgets drained
    /// connections. Call it after each `poll` wake-up and after using a connection.
    pub fn drive(&mut self) -> io::Result<()> {
        self.receive()?;
        let now = self.now();
        while let Some(h) = self.timers.pop_due(now) {
            if let Some(conn) = self.touch(h) {
                // The armed deadline may be stale (the connection changed since).
                if conn.poll_timeout().is_some_and(|d| d <= now) {
                    conn.handle_timeout(now);
                }
            }
        }
        let sent = self.transmit();
        self.collect();
        sent
    }

    fn receive(&mut self) -> io::Result<()> {
        let chunk = self.recv_buf.len() / BATCH_SIZE;
        loop {
            let mut slices: Vec<IoSliceMut<'_>> = self
                .recv_buf
                .chunks_mut(chunk)
                .map(IoSliceMut::new)
                .collect();
            let n = match self
                .udp
                .recv((&self.socket).into(), &mut slices, &mut self.recv_meta)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "receive failed");
                    continue;
                }
            };
            drop(slices);
            let now = self.now();
            for i in 0..n {
                let meta = self.recv_meta[i];
                let start = i * chunk;
                let mut data = BytesMut::from(&self.recv_buf[start..start + meta.len]);
                let stride = meta.stride.max(1);
                while !data.is_empty() {
                    let datagram = data.split_to(stride.min(data.len()));
                    match self.core.handle_datagram(now, meta.addr, datagram) {
                        Some(DatagramEvent::Route(h, d)) => {
                            if let Some(c) = self.touch(h) {
                                c.handle_datagram(now, meta.addr, d);
                            }
                        }
                        Some(DatagramEvent::NewConnection(h, mut c, d)) => {
                            c.handle_datagram(now, meta.addr, d);
                            self.insert(h, *c);
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Sends until nothing is left or the socket is full (then a writable event resumes it).
    fn transmit(&mut self) -> io::Result<()> {
        if let Some((dest, len)) = self.blocked.take() {
            if !self.send(dest, len)? {
                return Ok(());
            }
        }
        let now = self.now();
        loop {
            let t = match self.core.poll_transmit(&mut self.send_buf) {
                Some(t) => Some(t),
                None => self.next_datagram(now),
            };
            let Some(t) = t else { return Ok(()) };
            if !self.send(t.destination, t.size)? {
                return Ok(());
            }
        }
    }

    /// The next datagram of the connections that may have one, round-robin: a connection that
    /// had one goes to the back of the queue, one that had none leaves it.
    fn next_datagram(&mut self, now: jsp_core::Instant) -> Option<jsp_core::connection::Transmit> {
        while let Some(h) = self.queues.pop_send() {
            let Some(slot) = self.conns.get_mut(&h) else {
                continue;
            };
            // Sending moves its timers (pacing, loss detection): settle it afterwards.
            self.queues.to_settle(h, &mut slot.marks);
            match slot.conn.poll_transmit(now, &mut self.send_buf) {
                Some(t) => {
                    self.queues.requeue_send(h);
                    return Some(t);
                }
                None => slot.marks.exhausted(),
            }
        }
        None
    }

    /// Sends `send_buf[..len]`; `false` when the socket is full (kept for later).
    fn send(&mut self, destination: SocketAddr, len: usize) -> io::Result<bool> {
        let transmit = UdpTransmit {
            destination,
            ecn: None,
            contents: &self.send_buf[..len],
            segment_size: None,
            src_ip: None,
        };
        match self.udp.try_send((&self.socket).into(), &transmit) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.blocked = Some((destination, len));
                Ok(false)
            }
            Err(e) => {
                // Loss recovery resends what mattered.
                tracing::debug!(error = %e, to = %destination, "send failed");
                Ok(true)
            }
        }
    }

    /// Settles the connections that changed: queues their events, re-arms their timers, and
    /// forgets the drained ones.
    fn collect(&mut self) {
        while let Some(h) = self.queues.pop_settle() {
            let Some(slot) = self.conns.get_mut(&h) else {
                continue;
            };
            slot.marks.settled();
            while let Some(ev) = slot.conn.poll_endpoint_event() {
                self.core.handle_event(h, ev);
            }
            if slot.conn.is_drained() {
                while let Some(ev) = slot.conn.poll_event() {
                    self.final_events.push_back((h, ev));
                }
                self.timers.set(h, None);
                self.conns.remove(&h);
            } else {
                if !slot.events_queued {
                    slot.events_queued = true;
                    self.with_events.push_back(h);
                }
                self.timers.set(h, slot.conn.poll_timeout());
            }
        }
    }
}
