//! Hosting [quinn-proto](quinn_proto) — quinn's sans-IO QUIC state machine, with rustls — as a
//! simulator [`Node`], for side-by-side runs against JSP on identical links and seeds.
//!
//! Behind the `quinn` feature (off by default, so the library's normal build carries no QUIC or
//! TLS stack; the `vs_quinn` example and the tests turn it on through the crate's dev-dependency
//! on itself).
//!
//! ## Configuration
//! quinn's defaults ([`quinn_proto::TransportConfig::default`]) except what must match JSP's
//! defaults for a fair comparison: 1 MiB per-stream and 16 MiB connection receive windows, a
//! 16 MiB send window (JSP's send buffer), 100 concurrent streams each way, a 30 s idle timeout;
//! and the congestion controller, one of the three quinn ships ([`Controller`]). TLS 1.3 through
//! rustls's *ring* provider, a self-signed `localhost` certificate made with rcgen that the
//! client trusts as its only root. MTU discovery is on, as in quinn.
//!
//! ## Time
//! quinn-proto takes `std::time::Instant`s. The simulator's virtual instant `t` (nanoseconds from
//! the run's origin) maps to `base + t`, where `base` is one `std::time::Instant` taken once per
//! process ([`QuinnClock`]); a deadline quinn returns maps back as its distance from `base`.
//! Both directions are exact to the nanosecond, and quinn only ever compares and subtracts
//! instants, so where `base` lies changes nothing. quinn-proto reads no clock of its own on
//! these paths. The wall-clock time that validation tokens and rustls want is a fixed date
//! (2025-01-01) plus the virtual time.
//!
//! ## Randomness
//! Everything random comes from the run's seed, through generators forked from the simulator's:
//! the endpoint's RNG ([`quinn_proto::EndpointConfig::rng_seed`], which seeds each connection's
//! own), the stateless-reset key, the token key, connection IDs and the client's first
//! destination CID (seeded generators in place of quinn's, which draw from the thread's RNG), and
//! rustls's randomness and X25519 ephemeral keys (a seeded `SecureRandom` and key-exchange group
//! in place of *ring*'s, which read the operating system). The certificate's Ed25519 key is made
//! from the seed too. So a seed replays a quinn run with Cubic or NewReno exactly, trace hash
//! included.
//!
//! One exception quinn-proto does not let a host close: its BBR seeds the generator that picks
//! the starting phase of its gain cycle from the thread's RNG (`Pcg32::from_rng(&mut
//! rand::rng())` in quinn-proto 0.11's `congestion/bbr`), and `BbrConfig` has no seed. Runs with
//! [`Controller::Bbr`] are therefore not bit-for-bit reproducible: the handshake and links are,
//! but where BBR starts its 8-phase probing cycle varies between runs (one of 7 offsets), which
//! moves its results by a little.

mod apps;
mod on_time;
mod run;
mod tls;

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use jsp_core::rand::Rng;
use jsp_core::{Duration, Instant};
pub use quinn_proto;
use quinn_proto::{
    congestion, ClientConfig, Connection, ConnectionHandle, DatagramEvent, Endpoint,
    EndpointConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt,
};

pub use self::apps::{MessageClient, QuinnClient, QuinnServer};
pub use self::on_time::{run_on_time, OnTimeClient, OnTimeServer};
pub use self::run::{run_messages, run_transfer, QuinnReport};
use self::tls::VirtualWallClock;
use crate::node::{Node, Transmit};
pub use rustls;
use rustls::pki_types::CertificateDer;

/// The congestion controllers quinn ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// CUBIC (RFC 8312), quinn's default.
    Cubic,
    /// NewReno (RFC 9002).
    NewReno,
    /// quinn's BBR (version 1, marked experimental by quinn).
    Bbr,
}

impl Controller {
    /// All three, in a fixed order.
    pub const ALL: [Controller; 3] = [Self::Cubic, Self::NewReno, Self::Bbr];

    /// `cubic`, `newreno` or `bbr`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cubic => "cubic",
            Self::NewReno => "newreno",
            Self::Bbr => "bbr",
        }
    }

    fn factory(self) -> Arc<dyn congestion::ControllerFactory + Send + Sync> {
        match self {
            Self::Cubic => Arc::new(congestion::CubicConfig::default()),
            Self::NewReno => Arc::new(congestion::NewRenoConfig::default()),
            Self::Bbr => Arc::new(congestion::BbrConfig::default()),
        }
    }
}

/// The mapping between the simulator's virtual time and the `std::time::Instant`s quinn-proto
/// takes (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct QuinnClock {
    base: std::time::Instant,
}

impl Default for QuinnClock {
    fn default() -> Self {
        Self::new()
    }
}

impl QuinnClock {
    /// The process's clock (one base for every node).
    pub fn new() -> Self {
        static BASE: OnceLock<std::time::Instant> = OnceLock::new();
        Self {
            base: *BASE.get_or_init(std::time::Instant::now),
        }
    }

    /// The quinn instant of virtual time `t`.
    pub fn to_std(self, t: Instant) -> std::time::Instant {
        self.base + t.since_origin()
    }

    /// The virtual time of quinn instant `t` (instants before the base map to the origin).
    pub fn from_std(self, t: std::time::Instant) -> Instant {
        Instant::from_duration(t.saturating_duration_since(self.base))
    }
}

/// What a quinn side is configured with, per node. Build one with [`QuinnConfig::new`].
#[derive(Clone)]
pub struct QuinnConfig {
    /// The endpoint's settings (seeded).
    pub endpoint: Arc<EndpointConfig>,
    /// The server's settings, for a server node.
    pub server: Option<Arc<ServerConfig>>,
    /// The client's settings, for a client node.
    pub client: Option<ClientConfig>,
    wall: VirtualWallClock,
}

impl core::fmt::Debug for QuinnConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuinnConfig")
            .field("server", &self.server.is_some())
            .field("client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// The transport settings of both sides (see the module documentation).
pub fn transport_config(
    controller: Controller,
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(16 << 20))
        .send_window(16 << 20)
        .max_concurrent_bidi_streams(VarInt::from_u32(100))
        .max_concurrent_uni_streams(VarInt::from_u32(100))
        .max_idle_timeout(IdleTimeout::try_from(idle_timeout).ok())
        .keep_alive_interval(keep_alive)
        .congestion_controller_factory(controller.factory());
    Arc::new(t)
}

impl QuinnConfig {
    /// A server's configuration, everything random drawn from `rng`, and the certificate its
    /// clients must trust.
    pub fn server(
        rng: &mut Rng,
        transport: Arc<TransportConfig>,
    ) -> Result<(QuinnConfig, CertificateDer<'static>), String> {
        let (cert, key) = tls::certificate(rng.array())?;
        let wall = VirtualWallClock::new();
        let provider = tls::provider(rng.fork());
        let mut tls = rustls::ServerConfig::builder_with_details(provider, Arc::new(wall.clone()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .map_err(|e| e.to_string())?;
        tls.max_early_data_size = u32::MAX;
        let crypto = quinn_proto::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| e.to_string())?;
        let token_key =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&rng.array::<64>());
        let mut sc = ServerConfig::new(Arc::new(crypto), Arc::new(token_key));
        sc.transport_config(transport)
            .time_source(Arc::new(wall.clone()));
        let config = QuinnConfig {
            endpoint: endpoint_config(rng),
            server: Some(Arc::new(sc)),
            client: None,
            wall,
        };
        Ok((config, cert))
    }

    /// A client's configuration trusting `cert` as its only root, everything random drawn from
    /// `rng`.
    pub fn client(
        rng: &mut Rng,
        transport: Arc<TransportConfig>,
        cert: CertificateDer<'static>,
    ) -> Result<QuinnConfig, String> {
        let wall = VirtualWallClock::new();
        let provider = tls::provider(rng.fork());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).map_err(|e| e.to_string())?;
        let mut tls = rustls::ClientConfig::builder_with_details(provider, Arc::new(wall.clone()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.enable_early_data = true;
        let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| e.to_string())?;
        let mut cc = ClientConfig::new(Arc::new(crypto));
        cc.transport_config(transport);
        // The Initial's destination CID: 20 seeded bytes (quinn's default draws from the
        // thread's RNG).
        let dcids = Mutex::new(rng.fork());
        cc.initial_dst_cid_provider(Arc::new(move || {
            let bytes: [u8; 20] = match dcids.lock() {
                Ok(mut g) => g.array(),
                Err(poisoned) => poisoned.into_inner().array(),
            };
            quinn_proto::ConnectionId::new(&bytes)
        }));
        Ok(QuinnConfig {
            endpoint: endpoint_config(rng),
            server: None,
            client: Some(cc),
            wall,
        })
    }
}

fn endpoint_config(rng: &mut Rng) -> Arc<EndpointConfig> {
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rng.array::<64>());
    let mut c = EndpointConfig::new(Arc::new(reset));
    let cids = Arc::new(Mutex::new(rng.fork()));
    c.cid_generator(move || {
        let rng = match cids.lock() {
            Ok(mut g) => g.fork(),
            Err(poisoned) => poisoned.into_inner().fork(),
        };
        Box::new(tls::SeededCids::new(rng))
    });
    c.rng_seed(Some(rng.array()));
    Arc::new(c)
}

/// The application on a quinn node (the counterpart of [`crate::JspApp`]).
pub trait QuinnApp: Any {
    /// Called after a connection was created and after each input it received: drain
    /// `conn.poll()` and act on the streams and datagrams.
    fn on_connection(&mut self, now: Instant, handle: ConnectionHandle, conn: &mut Connection);

    /// A counter that grows with application progress (see [`Node::progress`]).
    fn progress(&self) -> u64 {
        0
    }

    /// Whether the application's work is finished (see [`Node::is_done`]).
    fn is_done(&self) -> bool {
        true
    }

    /// When the application wants to act next on its own (see [`crate::JspApp::next_wakeup`]).
    fn next_wakeup(&self) -> Option<Instant> {
        None
    }
}

/// A quinn-proto endpoint, its connections and its application, as a simulator [`Node`].
pub struct QuinnNode {
    endpoint: Endpoint,
    server: Option<Arc<ServerConfig>>,
    client: Option<ClientConfig>,
    conns: BTreeMap<ConnectionHandle, Connection>,
    app: Box<dyn QuinnApp>,
    clock: QuinnClock,
    wall: VirtualWallClock,
    /// Datagrams the endpoint answered directly (version negotiation, resets, refusals).
    responses: VecDeque<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
}

impl core::fmt::Debug for QuinnNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuinnNode")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl QuinnNode {
    /// A node with `config` (a server's accepts connections) running `app`.
    pub fn new(config: QuinnConfig, app: Box<dyn QuinnApp>) -> Self {
        let endpoint = Endpoint::new(config.endpoint.clone(), config.server.clone(), true, None);
        Self {
            endpoint,
            server: config.server,
            client: config.client,
            conns: BTreeMap::new(),
            app,
            clock: QuinnClock::new(),
            wall: config.wall,
            responses: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// Starts a connection to `remote` (server name `localhost`); the application sees it at
    /// once.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, String> {
        let config = self
            .client
            .clone()
            .ok_or("a node without a client configuration cannot connect")?;
        self.tick(now);
        let (handle, conn) = self
            .endpoint
            .connect(self.clock.to_std(now), config, remote, "localhost")
            .map_err(|e| e.to_string())?;
        self.conns.insert(handle, conn);
        self.after(now, handle);
        Ok(handle)
    }

    /// A connection, drained or not.
    pub fn connection(&self, handle: ConnectionHandle) -> Option<&Connection> {
        self.conns.get(&handle)
    }

    /// All connections (drained ones included), by handle.
    pub fn connections(&self) -> impl Iterator<Item = (ConnectionHandle, &Connection)> {
        self.conns.iter().map(|(h, c)| (*h, c))
    }

    /// The application, when it is an `A`.
    pub fn app<A: QuinnApp>(&self) -> Option<&A> {
        let app: &dyn Any = self.app.as_ref();
        app.downcast_ref::<A>()
    }

    /// The application, mutably, when it is an `A`.
    pub fn app_mut<A: QuinnApp>(&mut self) -> Option<&mut A> {
        let app: &mut dyn Any = self.app.as_mut();
        app.downcast_mut::<A>()
    }

    fn tick(&self, now: Instant) {
        self.wall.set(now.as_nanos());
    }

    /// Lets the application act on `handle`, then exchanges events between the connection and
    /// the endpoint until neither has more.
    fn after(&mut self, now: Instant, handle: ConnectionHandle) {
        let Some(conn) = self.conns.get_mut(&handle) else {
            return;
        };
        self.app.on_connection(now, handle, conn);
        while let Some(event) = conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(handle, event) {
                conn.handle_event(back);
            }
        }
    }
}

impl Node for QuinnNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        self.tick(now);
        let t = self.clock.to_std(now);
        let mut buf = core::mem::take(&mut self.buf);
        buf.clear();
        let event = self.endpoint.handle(t, from, None, None, data, &mut buf);
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(conn) = self.conns.get_mut(&handle) {
                    conn.handle_event(event);
                    self.after(now, handle);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                buf.clear();
                match self
                    .endpoint
                    .accept(incoming, t, &mut buf, self.server.clone())
                {
                    Ok((handle, conn)) => {
                        self.conns.insert(handle, conn);
                        self.after(now, handle);
                    }
                    Err(e) => {
                        if let Some(r) = e.response {
                            self.responses
                                .push_back((r.destination, buf[..r.size].to_vec()));
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(r)) => {
                self.responses
                    .push_back((r.destination, buf[..r.size].to_vec()));
            }
            None => {}
        }
        self.buf = buf;
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        self.tick(now);
        if let Some((destination, data)) = self.responses.pop_front() {
            let size = data.len().min(out.len());
            out[..size].copy_from_slice(&data[..size]);
            return Some(Transmit {
                destination,
                size,
                segment_size: None,
            });
        }
        let t = self.clock.to_std(now);
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for handle in handles {
            let Some(conn) = self.conns.get_mut(&handle) else {
                continue;
            };
            if conn.is_drained() {
                continue;
            }
            self.buf.clear();
            let sent = conn.poll_transmit(t, 1, &mut self.buf);
            // Sending may produce endpoint events (retired connection IDs).
            while let Some(event) = conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(handle, event) {
                    conn.handle_event(back);
                }
            }
            if let Some(tx) = sent {
                let size = tx.size.min(out.len()).min(self.buf.len());
                out[..size].copy_from_slice(&self.buf[..size]);
                return Some(Transmit {
                    destination: tx.destination,
                    size,
                    segment_size: tx.segment_size,
                });
            }
        }
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let clock = self.clock;
        self.conns
            .values_mut()
            .filter(|c| !c.is_drained())
            .filter_map(|c| c.poll_timeout())
            .map(|t| clock.from_std(t))
            .chain(self.app.next_wakeup())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let t = self.clock.to_std(now);
        let app_due = self.app.next_wakeup().is_some_and(|w| w <= now);
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for handle in handles {
            let Some(conn) = self.conns.get_mut(&handle) else {
                continue;
            };
            if conn.is_drained() {
                continue;
            }
            let due = conn.poll_timeout().is_some_and(|d| d <= t);
            if due {
                conn.handle_timeout(t);
            }
            if due || app_due {
                self.after(now, handle);
            }
        }
    }

    fn progress(&self) -> u64 {
        self.app.progress()
    }

    fn is_done(&self) -> bool {
        self.app.is_done()
    }
}
