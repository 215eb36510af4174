//! The endpoint: what one UDP socket's worth of connections share.
//!
//! It routes each datagram to its connection by destination connection ID, accepts new
//! connections (within a bounded table and token-bucket rate limits), answers unknown versions
//! with version negotiation, answers packets for unknown connections with a stateless reset, and
//! refuses handshakes it will not serve with a CONNECTION_REFUSED close — all without per-peer
//! state for packets it does not accept.
//!
//! Address validation ([`token`], docs/PROTOCOL.md §10.6): depending on
//! [`crate::config::AddressValidation`] and on load, an Initial without a valid token is
//! answered with a stateless Retry carrying a sealed token, and nothing is allocated — no
//! connection, no key exchange — until the client comes back with it. After each handshake the
//! server gives the client a NEW_TOKEN token that validates its address on the next connection.
//! A client endpoint keeps the latest such token per server and uses it by itself.
//!
//! Endpoint and connections are separate values (DESIGN rule 4): the endpoint returns
//! [`DatagramEvent::Route`] with the datagram and the driver feeds it to the connection it owns;
//! connections report back through [`crate::connection::EndpointEvent`].

mod timers;
pub mod token;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;

use crate::cid::ConnectionId;
use crate::coding::Writer;
use crate::config::{
    AddressValidation, ClientConfig, ConfigError, EndpointConfig, RateLimit, ServerConfig,
    MIN_UDP_PAYLOAD,
};
use crate::connection::{Connection, EndpointEvent, Incoming, Transmit};
use crate::crypto::kex::{ClientKeyShare, KeyExchange, X25519KeyPair};
use crate::crypto::schedule::{directional_keys, hmac_sha256, initial_secrets, INITIAL_SUITE};
use crate::crypto::TAG_LEN;
use crate::error::TransportErrorCode;
use crate::frame::{Close, CloseKind, Frame};
use crate::handshake::ClientTicket;
use crate::packet::{self, header, Header, HeaderSpec, PacketKind};
use crate::rand::Rng;
use crate::time::Instant;

pub use self::timers::{ConnectionQueues, ConnectionTimers, QueueMarks};
use self::token::{AddressTokens, KIND_NEW_TOKEN, KIND_RETRY};
pub use self::token::{TokenError, MAX_TOKEN_LEN};

/// Identifies a connection within its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u64);

/// What to do with a datagram the endpoint looked at.
#[derive(Debug)]
#[must_use = "a datagram event must be acted on"]
pub enum DatagramEvent {
    /// Feed the datagram to this existing connection.
    Route(ConnectionHandle, BytesMut),
    /// A new connection was accepted: keep it, then feed it the datagram.
    NewConnection(ConnectionHandle, Box<Connection>, BytesMut),
}

/// A token bucket on the driver's clock: `rate` tokens per second up to `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: limit.burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = self.updated.max(now);
        self.tokens = (self.tokens + elapsed * self.limit.rate).min(self.limit.burst);
    }

    /// The tokens available at `now`.
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counters an endpoint keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams dropped before reaching a connection (malformed, unknown, too small, limited).
    pub datagrams_dropped: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Handshakes refused (table full or rate limited).
    pub refused: u64,
    /// Datagrams dropped by a connection's rate limit.
    pub rate_limited: u64,
    /// Version-negotiation packets sent.
    pub version_negotiations: u64,
    /// Stateless resets sent.
    pub stateless_resets: u64,
    /// Retry packets sent (Initials answered statelessly, nothing allocated).
    pub retries_sent: u64,
    /// Connections accepted on a valid Retry token.
    pub retry_tokens_accepted: u64,
    /// Connections accepted on a valid NEW_TOKEN token.
    pub new_tokens_accepted: u64,
    /// Tokens that did not validate (altered, forged, other address, expired, replayed); an
    /// invalid Retry token is answered with INVALID_TOKEN, an invalid NEW_TOKEN token counts as
    /// no token.
    pub tokens_rejected: u64,
    /// Times the endpoint entered the under-load state.
    pub load_episodes: u64,
    /// Handshakes that used an ephemeral key generated ahead ([`KeyShareDemand`]) instead of
    /// generating one while the peer waited.
    pub keys_generated_ahead_used: u64,
}

struct Route {
    local_cid: ConnectionId,
    original_dcid: Option<ConnectionId>,
    reset_token: Option<[u8; 16]>,
    /// The per-connection datagram budget, when configured.
    bucket: Option<TokenBucket>,
}

/// Most queued stateless responses; beyond this they are dropped (they are best-effort).
pub const MAX_RESPONSES: usize = 64;

/// The sizes of an endpoint's tables and queues at one moment. Each has a bound an attacker
/// cannot raise: the field docs name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointFootprint {
    /// Connections in the table: at most [`EndpointConfig::max_connections`].
    pub connections: usize,
    /// Connection IDs routed to a connection: at most 2 per connection (its own and, on a
    /// server, the client's first destination ID).
    pub routed_cids: usize,
    /// Stateless-reset tokens of peers: at most 1 per connection.
    pub reset_tokens: usize,
    /// Sources with a handshake token bucket: at most
    /// [`EndpointConfig::max_tracked_sources`], the oldest forgotten first.
    pub tracked_sources: usize,
    /// Stateless responses waiting for [`Endpoint::poll_transmit`]: at most
    /// [`MAX_RESPONSES`], more are dropped.
    pub queued_responses: usize,
    /// NEW_TOKEN tokens remembered as used: at most [`EndpointConfig::token_log_capacity`].
    pub token_log: usize,
    /// Client: servers with a stored NEW_TOKEN token, at most [`MAX_STORED_TOKENS`].
    pub stored_tokens: usize,
}

/// Servers a client endpoint keeps a NEW_TOKEN token for; the oldest is forgotten first.
pub const MAX_STORED_TOKENS: usize = 256;

/// A copy of `transport` with `key_log` set.
fn with_key_log(
    transport: &crate::config::TransportConfig,
    enabled: bool,
) -> crate::config::TransportConfig {
    crate::config::TransportConfig {
        key_log: enabled,
        ..transport.clone()
    }
}

/// One endpoint.
pub struct Endpoint {
    config: Arc<EndpointConfig>,
    server: Option<Arc<ServerConfig>>,
    rng: Rng,
    reset_key: [u8; 32],
    by_cid: HashMap<ConnectionId, ConnectionHandle>,
    reset_tokens: HashMap<[u8; 16], ConnectionHandle>,
    routes: HashMap<ConnectionHandle, Route>,
    next_handle: u64,
    handshake_bucket: TokenBucket,
    per_source: HashMap<IpAddr, TokenBucket>,
    source_order: VecDeque<IpAddr>,
    responses: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: EndpointStats,
    /// When the endpoint was created (the start of new buckets' clocks).
    created: Instant,
    /// Export traffic secrets of new connections ([`Endpoint::set_key_log`]).
    key_log: bool,
    /// Address-validation token keys and the NEW_TOKEN replay log.
    tokens: AddressTokens,
    /// Measures unvalidated handshake attempts (same rate and burst as the global bucket); when
    /// `load_fraction` of it is used, the endpoint is under load.
    attempts: TokenBucket,
    /// Under load until this instant.
    load_until: Option<Instant>,
    /// Client: the latest NEW_TOKEN token per server, and their insertion order (bounded).
    stored_tokens: BTreeMap<SocketAddr, Vec<u8>>,
    stored_order: VecDeque<SocketAddr>,
    /// Client: key shares generated ahead for the next connections ([`KeyShareDemand`]), at
    /// most [`MAX_SPARE_CLIENT_SHARES`], all for `client_kex`.
    spare_client_shares: Vec<ClientKeyShare>,
    /// Client: the group the latest connection offered a share for (what to generate ahead).
    client_kex: Option<KeyExchange>,
    /// Server: X25519 key pairs generated ahead, at most [`MAX_SPARE_KEY_PAIRS`].
    spare_key_pairs: Vec<X25519KeyPair>,
}

/// Most X25519 key pairs a server endpoint keeps generated ahead of its handshakes.
pub const MAX_SPARE_KEY_PAIRS: usize = 16;
/// Most key shares a client endpoint keeps generated ahead of its connections.
pub const MAX_SPARE_CLIENT_SHARES: usize = 4;
/// A server asks for key pairs once no more than this many are left (then for a full set):
/// refills come in batches, so a driver's hand-off to another thread is paid once per batch,
/// not once per handshake, and half a set covers a burst while the refill is made.
const SERVER_REFILL_AT: usize = MAX_SPARE_KEY_PAIRS / 2;
/// A client asks for key shares once no more than this many are left (then for a full set).
const CLIENT_REFILL_AT: usize = 1;

/// Ephemeral keys an endpoint would like generated ahead of use, so that a handshake does not
/// wait for them: [`Endpoint::key_share_demand`]. A driver with threads to spare (jsp-tokio)
/// generates them off its event loop with [`KeyShares::generate`] and hands them over with
/// [`Endpoint::supply_key_shares`]; a driver that does not (the simulator, jsp-mio) never asks,
/// and every handshake generates its keys when it needs them, from the endpoint's own RNG.
///
/// Both sides ask in batches: a server once half of its [`MAX_SPARE_KEY_PAIRS`] key pairs are
/// used, a client once at most one of its [`MAX_SPARE_CLIENT_SHARES`] shares is left, each for a
/// full set, so that generating ahead costs a driver one hand-off per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyShareDemand {
    /// Client: shares for this group (the group of the latest connection).
    pub client: Option<KeyExchange>,
    /// Client: how many shares of `client` (up to [`MAX_SPARE_CLIENT_SHARES`] are kept).
    pub client_shares: usize,
    /// Server: this many more X25519 key pairs (up to [`MAX_SPARE_KEY_PAIRS`] are kept once
    /// the endpoint has answered a handshake).
    pub server_key_pairs: usize,
}

impl KeyShareDemand {
    /// Whether nothing is wanted.
    pub fn is_empty(&self) -> bool {
        (self.client.is_none() || self.client_shares == 0) && self.server_key_pairs == 0
    }
}

/// Keys generated ahead, for [`Endpoint::supply_key_shares`]. Their secrets are zeroized on
/// drop, and each is used by one handshake at most.
#[derive(Debug, Default)]
pub struct KeyShares {
    client: Vec<ClientKeyShare>,
    server: Vec<X25519KeyPair>,
}

impl KeyShares {
    /// Generates what `demand` asks for (at most [`MAX_SPARE_CLIENT_SHARES`] client shares and
    /// [`MAX_SPARE_KEY_PAIRS`] server key pairs). CPU-bound (tens of microseconds per key): run
    /// it off the event loop.
    pub fn generate(demand: &KeyShareDemand, rng: &mut Rng) -> Self {
        let client_shares = demand.client_shares.min(MAX_SPARE_CLIENT_SHARES);
        Self {
            client: demand
                .client
                .map(|kex| {
                    (0..client_shares)
                        .map(|_| ClientKeyShare::generate(kex, rng))
                        .collect()
                })
                .unwrap_or_default(),
            server: (0..demand.server_key_pairs.min(MAX_SPARE_KEY_PAIRS))
                .map(|_| X25519KeyPair::generate(rng))
                .collect(),
        }
    }
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("connections", &self.routes.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The IDs and token range of an Initial for an unknown connection.
struct InitialIds {
    dcid: ConnectionId,
    scid: ConnectionId,
    token: core::ops::Range<usize>,
}

/// The per-source key: IPv4 addresses as is, IPv6 by their /64 prefix (one subscriber).
fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
    }
}

impl Endpoint {
    /// An endpoint; with `server` it accepts connections. `rng` is seeded by the driver.
    pub fn new(
        config: Arc<EndpointConfig>,
        server: Option<Arc<ServerConfig>>,
        mut rng: Rng,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if let Some(s) = &server {
            s.validate()?;
            if config.cid_len == 0 {
                return Err(ConfigError::new(
                    "cid_len",
                    "a server endpoint needs connection IDs (1 to 20 bytes) to route packets",
                ));
            }
        }
        let reset_key = config.stateless_reset_key.unwrap_or_else(|| rng.array());
        let tokens = AddressTokens::new(
            &mut rng,
            now,
            config.retry_key_rotation,
            config.retry_token_lifetime,
            config.new_token_lifetime,
            config.token_log_capacity,
        );
        Ok(Self {
            handshake_bucket: TokenBucket::new(config.handshake_rate, now),
            attempts: TokenBucket::new(config.handshake_rate, now),
            tokens,
            load_until: None,
            stored_tokens: BTreeMap::new(),
            stored_order: VecDeque::new(),
            spare_client_shares: Vec::new(),
            client_kex: None,
            spare_key_pairs: Vec::new(),
            config,
            server,
            rng,
            reset_key,
            by_cid: HashMap::new(),
            reset_tokens: HashMap::new(),
            routes: HashMap::new(),
            next_handle: 0,
            per_source: HashMap::new(),
            source_order: VecDeque::new(),
            responses: VecDeque::new(),
            stats: EndpointStats::default(),
            key_log: false,
            created: now,
        })
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Connections in the table.
    pub fn connection_count(&self) -> usize {
        self.routes.len()
    }

    /// The sizes of the endpoint's tables and queues now (for metrics, and for tests that
    /// check each stays within its bound under attack).
    pub fn footprint(&self) -> EndpointFootprint {
        EndpointFootprint {
            connections: self.routes.len(),
            routed_cids: self.by_cid.len(),
            reset_tokens: self.reset_tokens.len(),
            tracked_sources: self.per_source.len().max(self.source_order.len()),
            queued_responses: self.responses.len(),
            token_log: self.tokens.log_len(),
            stored_tokens: self.stored_tokens.len().max(self.stored_order.len()),
        }
    }

    /// The keys this endpoint would like generated ahead of its next handshakes (see
    /// [`KeyShareDemand`]). Empty until the endpoint has made (client) or answered (server) a
    /// handshake, so an endpoint that never does holds no spare keys.
    pub fn key_share_demand(&self) -> KeyShareDemand {
        let have = self
            .spare_client_shares
            .iter()
            .filter(|s| Some(s.kex()) == self.client_kex)
            .count();
        let (client, client_shares) = match self.client_kex {
            Some(kex) if have <= CLIENT_REFILL_AT => (Some(kex), MAX_SPARE_CLIENT_SHARES - have),
            _ => (None, 0),
        };
        let spare = self.spare_key_pairs.len();
        let server_key_pairs =
            if self.server.is_some() && self.stats.accepted > 0 && spare <= SERVER_REFILL_AT {
                MAX_SPARE_KEY_PAIRS - spare
            } else {
                0
            };
        KeyShareDemand {
            client,
            client_shares,
            server_key_pairs,
        }
    }

    /// Takes keys generated ahead (see [`KeyShareDemand`]). Client shares for a group the
    /// endpoint no longer offers (supplied or kept) are dropped (zeroized), as are client shares
    /// beyond [`MAX_SPARE_CLIENT_SHARES`] and server key pairs beyond [`MAX_SPARE_KEY_PAIRS`] or
    /// on an endpoint that is not a server.
    pub fn supply_key_shares(&mut self, shares: KeyShares) {
        let kex = self.client_kex;
        self.spare_client_shares.retain(|s| Some(s.kex()) == kex);
        let room = MAX_SPARE_CLIENT_SHARES - self.spare_client_shares.len();
        self.spare_client_shares.extend(
            shares
                .client
                .into_iter()
                .filter(|s| Some(s.kex()) == kex)
                .take(room),
        );
        if self.server.is_some() {
            let room = MAX_SPARE_KEY_PAIRS - self.spare_key_pairs.len();
            self.spare_key_pairs
                .extend(shares.server.into_iter().take(room));
        }
    }

    /// Replaces the server configuration for new connections (e.g. to rotate the identity).
    pub fn set_server_config(&mut self, server: Option<Arc<ServerConfig>>) {
        self.server = server;
        if self.key_log {
            self.set_key_log(true);
        }
    }

    /// Exports the traffic secrets of every connection created from now on as
    /// [`crate::connection::Event::KeyLog`] events (it turns
    /// [`crate::config::TransportConfig::key_log`] on in the configs this endpoint uses). For
    /// decrypting packet captures while debugging only: anyone holding the secrets can read the
    /// traffic. Off by default; turning it on logs a warning.
    pub fn set_key_log(&mut self, enabled: bool) {
        if enabled && !self.key_log {
            tracing::warn!("key log is ON: traffic secrets of new connections will be exported");
        }
        self.key_log = enabled;
        if let Some(server) = &self.server {
            if server.transport.key_log != enabled {
                let mut config = (**server).clone();
                config.transport = Arc::new(with_key_log(&config.transport, enabled));
                self.server = Some(Arc::new(config));
            }
        }
    }

    fn new_cid(&mut self) -> ConnectionId {
        loop {
            let cid = ConnectionId::random(&mut self.rng, self.config.cid_len);
            if !self.by_cid.contains_key(&cid) {
                return cid;
            }
        }
    }

    fn insert(
        &mut self,
        local_cid: ConnectionId,
        original_dcid: Option<ConnectionId>,
    ) -> ConnectionHandle {
        let handle = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        self.by_cid.insert(local_cid, handle);
        if let Some(o) = original_dcid {
            self.by_cid.insert(o, handle);
        }
        self.routes.insert(
            handle,
            Route {
                local_cid,
                original_dcid,
                reset_token: None,
                bucket: self
                    .config
                    .per_connection_rate
                    .map(|r| TokenBucket::new(r, self.created)),
            },
        );
        handle
    }

    /// The stateless-reset token for `cid`: HMAC-SHA256(reset key, cid), first 16 bytes.
    pub fn reset_token(&self, cid: &ConnectionId) -> [u8; 16] {
        let mac = hmac_sha256(&self.reset_key, cid);
        let mut token = [0u8; 16];
        token.copy_from_slice(&mac[..16]);
        token
    }

    /// Starts a connection to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: Arc<ClientConfig>,
        remote: SocketAddr,
        ticket: Option<ClientTicket>,
    ) -> Result<(ConnectionHandle, Connection), ConfigError> {
        if self.config.cid_len == 0 && !self.routes.is_empty() {
            return Err(ConfigError::new(
                "cid_len",
                "zero-length connection IDs allow one connection per endpoint; use another \
                 endpoint (socket) or non-zero IDs",
            ));
        }
        let local_cid = self.new_cid();
        let rng = self.rng.fork();
        let config = if self.key_log && !config.transport.key_log {
            let mut c = (*config).clone();
            c.transport = Arc::new(with_key_log(&c.transport, true));
            Arc::new(c)
        } else {
            config
        };
        let kex = crate::session::ClientSession::share_kex(&config);
        let share = self
            .spare_client_shares
            .iter()
            .position(|s| s.kex() == kex)
            .map(|i| self.spare_client_shares.swap_remove(i));
        self.stats.keys_generated_ahead_used += u64::from(share.is_some());
        let mut conn =
            Connection::new_client_with_share(config, remote, local_cid, rng, ticket, share, now)?;
        self.client_kex = Some(kex);
        if let Some(token) = self.take_address_token(remote) {
            conn.set_initial_token(token);
        }
        let handle = self.insert(local_cid, None);
        Ok((handle, conn))
    }

    /// Client: stores `token` (from [`crate::connection::Event::NewToken`] of an earlier run) for
    /// the next connection to `server`, replacing any older one. At most
    /// [`MAX_STORED_TOKENS`] servers are remembered, the oldest forgotten first.
    pub fn set_address_token(&mut self, server: SocketAddr, token: Vec<u8>) {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return;
        }
        if self.stored_tokens.insert(server, token).is_none() {
            self.stored_order.push_back(server);
            while self.stored_order.len() > MAX_STORED_TOKENS {
                if let Some(old) = self.stored_order.pop_front() {
                    self.stored_tokens.remove(&old);
                }
            }
        }
    }

    /// Client: takes the stored token for `server` (each token is used once: reusing it would
    /// link the connections and the server accepts it only once).
    fn take_address_token(&mut self, server: SocketAddr) -> Option<Vec<u8>> {
        let token = self.stored_tokens.remove(&server)?;
        self.stored_order.retain(|s| *s != server);
        Some(token)
    }

    /// Whether the endpoint is under load at `now`: unvalidated handshake attempts recently
    /// used `load_fraction` of the global handshake budget (docs/PROTOCOL.md §10.6).
    pub fn is_under_load(&self, now: Instant) -> bool {
        self.load_until.is_some_and(|t| now < t)
    }

    /// Counts an unvalidated handshake attempt and says whether the endpoint is under load.
    fn note_attempt(&mut self, now: Instant) -> bool {
        let _ = self.attempts.try_take(now);
        let burst = self.config.handshake_rate.burst;
        let used = burst - self.attempts.available(now);
        if used >= self.config.load_fraction * burst {
            if !self.is_under_load(now) {
                self.stats.load_episodes += 1;
                tracing::debug!("under load: answering new handshakes with Retry");
            }
            self.load_until = Some(now + self.config.load_hold);
        }
        self.is_under_load(now)
    }

    /// Tells the endpoint what a connection reported.
    pub fn handle_event(&mut self, handle: ConnectionHandle, event: EndpointEvent) {
        match event {
            EndpointEvent::Drained => {
                if let Some(route) = self.routes.remove(&handle) {
                    self.by_cid.remove(&route.local_cid);
                    if let Some(o) = route.original_dcid {
                        self.by_cid.remove(&o);
                    }
                    if let Some(t) = route.reset_token {
                        self.reset_tokens.remove(&t);
                    }
                }
            }
            EndpointEvent::ResetToken(token) => {
                if let Some(route) = self.routes.get_mut(&handle) {
                    if let Some(old) = route.reset_token.replace(token) {
                        self.reset_tokens.remove(&old);
                    }
                    self.reset_tokens.insert(token, handle);
                }
            }
            EndpointEvent::NewToken { server, token } => {
                if self.server.is_none() {
                    self.set_address_token(server, token);
                }
            }
        }
    }

    /// Looks at a datagram from `remote`: routes it, accepts a new connection, or answers it
    /// statelessly (see [`Self::poll_transmit`]) and drops it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: BytesMut,
    ) -> Option<DatagramEvent> {
        self.stats.datagrams_received += 1;
        let partial = match packet::decode(&data, self.config.cid_len) {
            Ok(p) => p,
            Err(e) => {
                tracing::trace!(%remote, error = %e, "dropping undecodable datagram");
                self.stats.datagrams_dropped += 1;
                return None;
            }
        };
        if let Some(handle) = self.by_cid.get(partial.dcid()).copied() {
            let allowed = self
                .routes
                .get_mut(&handle)
                .and_then(|r| r.bucket.as_mut())
                .is_none_or(|b| b.try_take(now));
            if !allowed {
                self.stats.rate_limited += 1;
                return None;
            }
            return Some(DatagramEvent::Route(handle, data));
        }
        match &partial.header {
            Header::UnknownVersion { dcid, scid, .. } | Header::Long { dcid, scid, .. }
                if partial
                    .version()
                    .is_some_and(|v| !self.config.supported_versions.contains(&v)) =>
            {
                if data.len() >= usize::from(MIN_UDP_PAYLOAD) && self.server.is_some() {
                    self.send_version_negotiation(remote, dcid, scid);
                } else {
                    self.stats.datagrams_dropped += 1;
                }
                None
            }
            Header::Long {
                kind: PacketKind::Initial,
                dcid,
                scid,
                token,
                ..
            } => {
                let initial = InitialIds {
                    dcid: *dcid,
                    scid: *scid,
                    token: token.clone(),
                };
                self.accept(now, remote, initial, data)
            }
            Header::Short { .. } => {
                // A stateless reset from a peer that lost our connection looks like this: its
                // last 16 bytes are the token the peer gave us. The connection confirms it.
                let tail = data
                    .len()
                    .checked_sub(16)
                    .and_then(|start| data.get(start..));
                if let Some(handle) = tail
                    .and_then(|t| <[u8; 16]>::try_from(t).ok())
                    .and_then(|t| self.reset_tokens.get(&t))
                {
                    return Some(DatagramEvent::Route(*handle, data));
                }
                self.send_stateless_reset(remote, partial.dcid(), data.len());
                None
            }
            _ => {
                self.stats.datagrams_dropped += 1;
                None
            }
        }
    }

    fn source_allows(&mut self, now: Instant, remote: SocketAddr) -> bool {
        let key = source_key(remote.ip());
        if !self.per_source.contains_key(&key) {
            while self.per_source.len() >= self.config.max_tracked_sources {
                match self.source_order.pop_front() {
                    Some(old) => {
                        self.per_source.remove(&old);
                    }
                    None => break,
                }
            }
            self.per_source.insert(
                key,
                TokenBucket::new(self.config.per_source_handshake_rate, now),
            );
            self.source_order.push_back(key);
        }
        self.per_source
            .get_mut(&key)
            .is_some_and(|b| b.try_take(now))
    }

    fn accept(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        initial: InitialIds,
        data: BytesMut,
    ) -> Option<DatagramEvent> {
        let Some(server) = self.server.clone() else {
            self.stats.datagrams_dropped += 1;
            return None;
        };
        if self.config.cid_len == 0 {
            // A server config set later on an endpoint of zero-length IDs: it cannot route.
            self.stats.datagrams_dropped += 1;
            return None;
        }
        let InitialIds { dcid, scid, token } = initial;
        // A client's first datagram is padded to 1200 bytes; smaller ones are not answered, so
        // the server never amplifies a small spoofed packet.
        if data.len() < usize::from(MIN_UDP_PAYLOAD) || dcid.len() < 8 {
            self.stats.datagrams_dropped += 1;
            return None;
        }
        self.tokens.rotate_if_due(&mut self.rng, now);
        let token = data.get(token).unwrap_or_default();
        let mut proof = None;
        match token.first().copied() {
            None => {}
            Some(KIND_RETRY) => match self.tokens.check_retry(now, remote, &dcid, token) {
                Ok(odcid) => proof = Some(odcid),
                Err(e) => {
                    // The client followed a Retry but its token does not hold (expired, or
                    // another address): tell it, statelessly, instead of letting it time out.
                    tracing::debug!(%remote, error = %e, "invalid Retry token");
                    self.stats.tokens_rejected += 1;
                    self.refuse(
                        remote,
                        &dcid,
                        &scid,
                        TransportErrorCode::INVALID_TOKEN,
                        b"invalid token",
                    );
                    return None;
                }
            },
            Some(KIND_NEW_TOKEN) => match self.tokens.check_new_token(now, remote.ip(), token) {
                Ok(()) => proof = Some(dcid),
                Err(e) => {
                    // An old or foreign NEW_TOKEN token: as if there were none.
                    tracing::debug!(%remote, error = %e, "NEW_TOKEN token not accepted");
                    self.stats.tokens_rejected += 1;
                }
            },
            Some(_) => self.stats.tokens_rejected += 1,
        }
        let retry_scid = match (proof, token.first().copied()) {
            (Some(_), Some(KIND_RETRY)) => Some(dcid),
            _ => None,
        };
        if proof.is_none() {
            let loaded = self.note_attempt(now);
            let retry = match server.address_validation {
                AddressValidation::Never => false,
                AddressValidation::UnderLoad => loaded,
                AddressValidation::Always => true,
            };
            if retry {
                self.send_retry(now, remote, &dcid, &scid);
                return None;
            }
        }
        if self.routes.len() >= self.config.max_connections
            // Per source first, so that one flooding source cannot spend everyone's tokens.
            || !self.source_allows(now, remote)
            || !self.handshake_bucket.try_take(now)
        {
            self.stats.refused += 1;
            self.refuse(
                remote,
                &dcid,
                &scid,
                TransportErrorCode::CONNECTION_REFUSED,
                b"server busy",
            );
            return None;
        }
        match (proof, retry_scid) {
            (Some(_), Some(_)) => self.stats.retry_tokens_accepted += 1,
            (Some(_), None) => self.stats.new_tokens_accepted += 1,
            _ => {}
        }
        let local_cid = self.new_cid();
        let reset_token = self.reset_token(&local_cid);
        let new_token = (!self.config.new_token_lifetime.is_zero())
            .then(|| self.tokens.new_token(&mut self.rng, now, remote.ip()));
        let rng = self.rng.fork();
        let incoming = Incoming {
            remote,
            local_cid,
            client_scid: scid,
            original_dcid: proof.unwrap_or(dcid),
            retry_scid,
            validated: proof.is_some(),
            new_token,
            reset_token,
        };
        let mut conn = Connection::new_server(server, incoming, rng, now);
        if let Some(pair) = self.spare_key_pairs.pop() {
            conn.offer_key_pair(pair);
            self.stats.keys_generated_ahead_used += 1;
        }
        // Route this Initial's destination ID (the Retry's source ID after a Retry) to it.
        let handle = self.insert(local_cid, Some(dcid));
        self.stats.accepted += 1;
        tracing::debug!(%remote, cid = %local_cid, validated = proof.is_some(), "accepted connection");
        Some(DatagramEvent::NewConnection(handle, Box::new(conn), data))
    }

    /// Answers an Initial with a Retry (docs/PROTOCOL.md §3.10): a fresh source ID for the
    /// client to come back to and a token bound to its address, that ID and its original
    /// destination ID. Nothing is kept.
    fn send_retry(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        client_dcid: &ConnectionId,
        client_scid: &ConnectionId,
    ) {
        let retry_scid = loop {
            let cid = ConnectionId::random(&mut self.rng, self.config.cid_len.max(8));
            if !self.by_cid.contains_key(&cid) && cid != *client_dcid {
                break cid;
            }
        };
        let token = self
            .tokens
            .retry_token(&mut self.rng, now, remote, &retry_scid, client_dcid);
        let mut buf = vec![0u8; 64 + token.len() + packet::retry::RETRY_TAG_LEN];
        let unused = self.rng.array::<1>()[0];
        if let Ok(n) = packet::retry::write_retry(
            &mut buf,
            crate::VERSION_1,
            client_scid,
            &retry_scid,
            client_dcid,
            &token,
            unused,
        ) {
            buf.truncate(n);
            self.stats.retries_sent += 1;
            self.queue_response(remote, buf);
        }
    }

    fn queue_response(&mut self, remote: SocketAddr, bytes: Vec<u8>) {
        if self.responses.len() < MAX_RESPONSES {
            self.responses.push_back((remote, bytes));
        }
    }

    fn send_version_negotiation(
        &mut self,
        remote: SocketAddr,
        dcid: &ConnectionId,
        scid: &ConnectionId,
    ) {
        let mut buf = vec![0u8; 256];
        let unused = self.rng.array::<1>()[0];
        let versions = self.config.supported_versions.clone();
        if let Ok(n) = header::write_version_negotiation(&mut buf, dcid, scid, &versions, unused) {
            buf.truncate(n);
            self.stats.version_negotiations += 1;
            self.queue_response(remote, buf);
        }
    }

    fn send_stateless_reset(
        &mut self,
        remote: SocketAddr,
        dcid: &ConnectionId,
        trigger_len: usize,
    ) {
        // Smaller than the packet that triggered it (no reset loops, no amplification) and at
        // least 21 bytes so it looks like a short-header packet.
        const MIN_RESET: usize = 21;
        if trigger_len <= MIN_RESET || self.server.is_none() {
            self.stats.datagrams_dropped += 1;
            return;
        }
        let len = (trigger_len - 1).min(43);
        let mut buf = vec![0u8; len];
        self.rng.fill(&mut buf);
        buf[0] = (buf[0] & 0x3f) | 0x40;
        let token = self.reset_token(dcid);
        buf[len - 16..].copy_from_slice(&token);
        self.stats.stateless_resets += 1;
        self.queue_response(remote, buf);
    }

    /// Answers a refused handshake with an Initial packet carrying a CLOSE with `code`
    /// (CONNECTION_REFUSED, or INVALID_TOKEN), so the client fails fast with a clear reason
    /// instead of timing out.
    fn refuse(
        &mut self,
        remote: SocketAddr,
        client_dcid: &ConnectionId,
        client_scid: &ConnectionId,
        code: TransportErrorCode,
        reason: &[u8],
    ) {
        let (_, server_secret) = initial_secrets(crate::VERSION_1, client_dcid);
        let keys = directional_keys(crate::crypto::Backend::Auto, INITIAL_SUITE, &server_secret);
        let mut buf = vec![0u8; 256];
        let spec = HeaderSpec {
            kind: PacketKind::Initial,
            version: crate::VERSION_1,
            dcid: *client_scid,
            scid: *client_dcid,
            token: &[],
            pn: 0,
            pn_len: 1,
            key_phase: false,
            spin: false,
        };
        let mut w = Writer::new(&mut buf);
        let Ok(hdr) = header::write(&mut w, &spec) else {
            return;
        };
        let close = Frame::Close(Close {
            kind: CloseKind::Transport { frame_type: 0 },
            code: code.0,
            reason,
        });
        if close.encode(&mut w).is_err() {
            return;
        }
        let payload_end = w
            .position()
            .max(hdr.len() + packet::min_payload_len(hdr.pn_len));
        let total = payload_end + TAG_LEN;
        buf.truncate(total);
        if packet::seal(&mut buf, &hdr, 0, &*keys.packet, &*keys.header).is_ok() {
            self.queue_response(remote, buf);
        }
    }

    /// The next stateless response (version negotiation, stateless reset, Retry, refusal) to
    /// send.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        let (destination, bytes) = self.responses.pop_front()?;
        let out = buf.get_mut(..bytes.len())?;
        out.copy_from_slice(&bytes);
        Some(Transmit {
            destination,
            size: bytes.len(),
            segment_size: None,
            ecn: None,
        })
    }
}

#[cfg(test)]
mod key_share_tests;
#[cfg(test)]
mod retry_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::from_millis(0);
        let mut b = TokenBucket::new(
            RateLimit {
                rate: 10.0,
                burst: 2.0,
            },
            t0,
        );
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(b.try_take(Instant::from_millis(100)));
        assert!(!b.try_take(Instant::from_millis(100)));
        let later = Instant::from_millis(10_000);
        assert!(b.try_take(later) && b.try_take(later) && !b.try_take(later));
    }
}
