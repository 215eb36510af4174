//! Validated configuration with documented defaults.
//!
//! - [`TransportConfig`]: per-connection transport knobs (timeouts, windows, limits, MTU), shared
//!   by both sides.
//! - [`EndpointConfig`]: what an endpoint shares across its connections (connection-ID length,
//!   connection table bound, handshake rate limits, stateless-reset key).
//! - [`ServerConfig`]: the server's identity, its negotiation preferences, 0-RTT policy and
//!   resumption state.
//! - [`ClientConfig`]: how a client trusts the server, its preferences and optional client identity.
//!
//! Every config has a `validate` that rejects impossible combinations with a [`ConfigError`] saying
//! which field is wrong and why; constructors of the state machines call it, so an invalid config
//! never reaches the wire.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::congestion::{BbrFactory, ControllerFactory};
use crate::crypto::kex::KeyExchange;
use crate::crypto::sign::{IdentityKey, PublicIdentity};
use crate::crypto::{Backend, CipherSuite};
use crate::session::ServerResumption;
use crate::time::Duration;

/// A configuration value that cannot work, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The smallest UDP payload every path must carry (as in QUIC): client first flights are padded
/// to it, and no endpoint may configure less.
pub const MIN_UDP_PAYLOAD: u16 = 1200;

/// Per-connection transport settings.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Close the connection after this long without receiving anything. Default 30 s. The
    /// effective timeout is the smaller of both sides' values. Zero disables it (not recommended).
    pub idle_timeout: Duration,
    /// Send a PING after this long without sending ack-eliciting data, to keep NAT bindings and
    /// the idle timer alive. Default: none (off).
    pub keep_alive_interval: Option<Duration>,
    /// The largest UDP payload this endpoint sends and accepts. Default 1472 (1500-byte Ethernet
    /// MTU minus IPv4 and UDP headers; path-MTU discovery bounds IPv6 paths to 1452, see
    /// [`MtuDiscoveryConfig::upper_bound`]); never below [`MIN_UDP_PAYLOAD`].
    pub max_udp_payload_size: u16,
    /// Connection-level receive window in bytes. Default 16 MiB.
    pub receive_window: u64,
    /// Per-stream receive window in bytes. Default 1 MiB.
    pub stream_receive_window: u64,
    /// Upper bound for window auto-tuning, per stream. Default 16 MiB.
    pub max_stream_receive_window: u64,
    /// Concurrent bidirectional streams the peer may open. Default 100.
    pub max_concurrent_bidi_streams: u64,
    /// Concurrent unidirectional streams the peer may open. Default 100.
    pub max_concurrent_uni_streams: u64,
    /// Largest DATAGRAM frame payload accepted; 0 disables datagrams. Default 1200.
    pub max_datagram_frame_size: u64,
    /// Bytes the application may queue on streams, unsent or unacknowledged. Default 16 MiB.
    pub send_buffer: u64,
    /// Received datagrams buffered before the oldest is dropped. Default 1 MiB.
    pub datagram_receive_buffer: usize,
    /// Bytes of outgoing datagrams queued before the oldest is dropped. Default 1 MiB.
    pub datagram_send_buffer: usize,
    /// Maximum time an ACK may be delayed. Default 25 ms.
    pub max_ack_delay: Duration,
    /// ACK delay exponent (units of 2^n µs). Default 3.
    pub ack_delay_exponent: u8,
    /// RTT assumed before the first sample. Default 333 ms (RFC 9002).
    pub initial_rtt: Duration,
    /// Handshake bytes buffered per packet-number space before the peer is cut off. Default 64 KiB.
    pub max_handshake_buffer: usize,
    /// Builds each connection's congestion controller. Default: BBR ([`BbrFactory`]);
    /// [`crate::congestion::NewRenoFactory`] gives RFC 9002's NewReno.
    pub congestion_controller: Arc<dyn ControllerFactory>,
    /// Export every traffic secret as [`crate::connection::Event::KeyLog`], for decrypting
    /// packet captures while debugging. Default false. Anyone holding the secrets can read the
    /// traffic: turn it on only on a test machine; the connection logs a warning when it is on.
    pub key_log: bool,
    /// Which implementation protects packets. Default [`Backend::Auto`]. [`Backend::Null`] must be
    /// chosen on both sides and is only for tests and benchmarks.
    pub crypto_backend: Backend,
    /// How datagrams carrying 0-RTT or 1-RTT packets are padded against traffic-size
    /// fingerprinting. Default [`PaddingPolicy::None`] (see there for why).
    pub padding: PaddingPolicy,
    /// Path-MTU discovery (RFC 8899 DPLPMTUD): after the handshake, probe for datagrams larger
    /// than [`MIN_UDP_PAYLOAD`], up to 1472 bytes on IPv4 paths and 1452 on IPv6 paths with
    /// [`MtuDiscoveryConfig::default`]. On by
    /// default; `None` keeps every datagram at 1200 bytes.
    pub mtu_discovery: Option<MtuDiscoveryConfig>,
    /// Forward error correction ([`crate::fec`]): when set, this endpoint announces that it
    /// decodes FEC, and protects what it sends with repair symbols once it measures loss, if
    /// the peer announced it too. Adaptive: no repair bytes on a clean link. Default `None`
    /// (off, neither sent nor announced).
    pub fec: Option<crate::fec::FecConfig>,
    /// Explicit Congestion Notification (PROTOCOL §12.19): mark sent datagrams ECT(0) while the
    /// path proves it carries the marks (the peer's ACKs count them), and take the CE marks the
    /// peer reports as congestion signals, as losses are, without a loss. Received marks are
    /// counted and reported whatever this says. Needs a driver that sets and reads the IP
    /// header's ECN bits (`jsp-tokio` does); without one, the first ACKs show no marks and the
    /// connection stops marking. Default `true`.
    pub ecn: bool,
}

/// Settings of path-MTU discovery (see [`TransportConfig::mtu_discovery`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtuDiscoveryConfig {
    /// The largest link MTU (IP packet size) to probe for. The search looks for UDP payloads up
    /// to this minus the path's IP and UDP headers (28 bytes on IPv4 paths, IPv4-mapped IPv6
    /// addresses included, 48 on IPv6 paths: see [`Self::upper_bound`]), and is also bounded
    /// by both sides' `max_udp_payload_size`. Default 1500 (Ethernet): 1472-byte datagrams on
    /// IPv4 paths, 1452 on IPv6 paths. A fixed IPv6-sized bound, as QUIC stacks commonly use,
    /// would leave 1.4 % of every full IPv4 datagram to headers for nothing.
    pub link_mtu: u16,
    /// How long to wait before searching again after a search ended below the upper bound or
    /// a black hole sent the path back to 1200 bytes. Default 600 s (RFC 8899 §5.1.1).
    pub interval: Duration,
}

impl MtuDiscoveryConfig {
    /// The largest UDP payload the search probes for on a path to `remote`: [`Self::link_mtu`]
    /// minus the IP and UDP headers of that address family, at least [`MIN_UDP_PAYLOAD`].
    pub fn upper_bound(&self, remote: SocketAddr) -> u16 {
        let ipv4 = match remote {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        let headers = if ipv4 { 20 + 8 } else { 40 + 8 };
        self.link_mtu.saturating_sub(headers).max(MIN_UDP_PAYLOAD)
    }
}

impl Default for MtuDiscoveryConfig {
    fn default() -> Self {
        Self {
            link_mtu: 1500,
            interval: Duration::from_secs(600),
        }
    }
}

/// Padding of datagrams that carry application-space (0-RTT or 1-RTT) packets, against
/// traffic-size fingerprinting: an observer sees the size of every datagram even though the
/// content is encrypted, and sizes alone can reveal which page, command or keystroke was sent.
///
/// The padding is made of PADDING frames inside the last packet of the datagram, so it is
/// encrypted and authenticated like everything else and the receiver discards it. A datagram is
/// padded to the chosen size, never beyond what may be sent now (the path's maximum payload
/// size, the caller's buffer, and the 3× anti-amplification budget on an unvalidated path):
/// when the chosen size does not fit, the datagram is padded to that maximum instead. So every
/// such datagram has a size in the policy's set plus the current maximum: 1200 bytes until
/// path-MTU discovery ([`TransportConfig::mtu_discovery`]) finds a larger one, then that size
/// (PTO and keep-alive probes stay at 1200, and discovery's own probes, PING and PADDING only,
/// reveal the path's MTU but nothing of the content). Handshake-only datagrams are not affected: those carrying Initial
/// packets are always padded to [`MIN_UDP_PAYLOAD`], and their sizes are the same for everyone.
///
/// The default is [`PaddingPolicy::None`], as in QUIC: padding costs bandwidth and congestion
/// window (up to 2× for small messages with the default buckets, far more with
/// [`PaddingPolicy::FullMtu`]) and does not hide timing or the number of datagrams, so it is
/// chosen by applications whose traffic sizes are sensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PaddingPolicy {
    /// No padding beyond what the protocol requires.
    #[default]
    None,
    /// Pad each datagram to the smallest of these sizes (bytes of UDP payload) that holds it;
    /// a datagram larger than every bucket is padded to the maximum. Must be non-empty, strictly
    /// increasing, each at least 64. [`PaddingPolicy::default_buckets`] gives a reasonable set.
    Buckets(Vec<u16>),
    /// Pad every datagram to the maximum: all application datagrams have one size.
    FullMtu,
}

impl PaddingPolicy {
    /// Buckets 128, 256, 512 and 1024 (and the maximum above them): at most 2× overhead for
    /// a small datagram, and five sizes in all.
    pub fn default_buckets() -> Self {
        Self::Buckets(vec![128, 256, 512, 1024])
    }

    /// The size to pad a datagram of `len` bytes to, given that at most `max` may be sent:
    /// `len` itself for [`Self::None`] or when `len >= max`.
    pub fn target(&self, len: usize, max: usize) -> usize {
        if len >= max {
            return len;
        }
        match self {
            Self::None => len,
            Self::FullMtu => max,
            Self::Buckets(buckets) => buckets
                .iter()
                .map(|b| usize::from(*b))
                .find(|b| *b >= len)
                .map_or(max, |b| b.min(max)),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Self::Buckets(b) = self {
            if b.is_empty() {
                return Err(ConfigError::new("padding", "bucket list is empty"));
            }
            if b.iter().any(|s| *s < 64) {
                return Err(ConfigError::new(
                    "padding",
                    "buckets must be at least 64 bytes",
                ));
            }
            if b.windows(2).any(|w| w.first() >= w.get(1)) {
                return Err(ConfigError::new(
                    "padding",
                    "buckets must strictly increase",
                ));
            }
        }
        Ok(())
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: None,
            max_udp_payload_size: 1472,
            receive_window: 16 << 20,
            stream_receive_window: 1 << 20,
            max_stream_receive_window: 16 << 20,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            max_datagram_frame_size: 1200,
            send_buffer: 16 << 20,
            datagram_receive_buffer: 1 << 20,
            datagram_send_buffer: 1 << 20,
            max_ack_delay: Duration::from_millis(25),
            ack_delay_exponent: 3,
            initial_rtt: Duration::from_millis(333),
            max_handshake_buffer: 64 << 10,
            congestion_controller: Arc::new(BbrFactory::default()),
            crypto_backend: Backend::Auto,
            key_log: false,
            padding: PaddingPolicy::None,
            mtu_discovery: Some(MtuDiscoveryConfig::default()),
            fec: None,
            ecn: true,
        }
    }
}

impl TransportConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_udp_payload_size < MIN_UDP_PAYLOAD {
            return Err(ConfigError::new(
                "max_udp_payload_size",
                format!(
                    "{} is below the minimum of {MIN_UDP_PAYLOAD}",
                    self.max_udp_payload_size
                ),
            ));
        }
        if self.max_udp_payload_size > 16_383 {
            return Err(ConfigError::new(
                "max_udp_payload_size",
                "must be at most 16383",
            ));
        }
        if let Some(m) = &self.mtu_discovery {
            if !(1280..=16_431).contains(&m.link_mtu) {
                return Err(ConfigError::new(
                    "mtu_discovery.link_mtu",
                    format!("{} is outside 1280..=16431", m.link_mtu),
                ));
            }
        }
        if self.ack_delay_exponent > 20 {
            return Err(ConfigError::new("ack_delay_exponent", "must be at most 20"));
        }
        if self.max_ack_delay >= Duration::from_millis(1 << 14) {
            return Err(ConfigError::new("max_ack_delay", "must be below 16384 ms"));
        }
        if self.max_concurrent_bidi_streams > 1 << 60 || self.max_concurrent_uni_streams > 1 << 60 {
            return Err(ConfigError::new(
                "max_concurrent_streams",
                "must be at most 2^60",
            ));
        }
        if self.stream_receive_window > self.max_stream_receive_window {
            return Err(ConfigError::new(
                "stream_receive_window",
                "exceeds max_stream_receive_window",
            ));
        }
        if self.initial_rtt.is_zero() {
            return Err(ConfigError::new("initial_rtt", "must be positive"));
        }
        if let Some(k) = self.keep_alive_interval {
            if k.is_zero() {
                return Err(ConfigError::new("keep_alive_interval", "must be positive"));
            }
        }
        if self.max_handshake_buffer < 4096 {
            return Err(ConfigError::new(
                "max_handshake_buffer",
                "must be at least 4096 bytes",
            ));
        }
        self.padding.validate()?;
        if let Some(fec) = &self.fec {
            fec.validate().map_err(|e| ConfigError::new("fec", e))?;
        }
        Ok(())
    }
}

/// A token bucket's parameters: `rate` tokens per second, at most `burst` saved up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained rate, tokens per second.
    pub rate: f64,
    /// Largest burst.
    pub burst: f64,
}

/// Settings an endpoint shares across all its connections.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Length of the connection IDs this endpoint issues (0..=20). Default 8.
    ///
    /// 0 (zero-length IDs) is for client endpoints only (no server config) and allows one
    /// connection at a time: packets to it carry no connection ID at all, which saves 8 bytes
    /// (at the default) on every packet the server sends, at the cost of telling connections
    /// apart by ID, so one connection per socket. The endpoint routes everything it receives to
    /// its one connection. Servers need IDs to route and to survive client address changes.
    pub cid_len: usize,
    /// Connections held at once; further handshakes are refused. Default 10,000.
    pub max_connections: usize,
    /// Global rate of new handshakes. Default 1,000/s, burst 200.
    pub handshake_rate: RateLimit,
    /// Rate of new handshakes per source address (IPv4 /32, IPv6 /64). Default 20/s, burst 5
    /// (WireGuard's numbers).
    pub per_source_handshake_rate: RateLimit,
    /// Datagrams per second one connection's peer may send; excess datagrams are dropped before
    /// they reach the connection (and counted). Default: none (unlimited).
    pub per_connection_rate: Option<RateLimit>,
    /// Source addresses tracked for per-source limits before the oldest are forgotten. Default 4096.
    pub max_tracked_sources: usize,
    /// Key from which stateless-reset tokens are derived. Set the same value across restarts so a
    /// restarted server can reset the connections it lost. Default: random per endpoint.
    pub stateless_reset_key: Option<[u8; 32]>,
    /// Versions accepted, most preferred first. Default: [`crate::SUPPORTED_VERSIONS`].
    pub supported_versions: Vec<u32>,
    /// How long a Retry token validates the client's address. Default 10 s: long enough for a
    /// client on a slow path to answer, short enough that a captured token is of little use.
    pub retry_token_lifetime: Duration,
    /// How often the Retry-token key is replaced (the previous key is kept one more period for
    /// tokens in flight). Default 120 s, WireGuard's cookie-secret rotation.
    pub retry_key_rotation: Duration,
    /// How long a NEW_TOKEN token validates the client's address on a later connection; zero
    /// issues none. Default 24 h. Its key rotates every lifetime.
    pub new_token_lifetime: Duration,
    /// Used NEW_TOKEN tokens remembered to refuse a second use. When full, the oldest are
    /// forgotten and every token issued before them refused. Default 65,536 (about 3 MiB).
    pub token_log_capacity: usize,
    /// The endpoint is *under load* (see `ServerConfig::address_validation`) when new handshake
    /// attempts have used this fraction of the global handshake bucket's burst, i.e. arrive
    /// faster than `handshake_rate` for a moment. Default 1/8, as WireGuard's queue threshold.
    pub load_fraction: f64,
    /// How long the endpoint stays under load after the last attempt that put it there.
    /// Default 1 s (WireGuard's `UnderLoadAfterTime`).
    pub load_hold: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            cid_len: 8,
            max_connections: 10_000,
            handshake_rate: RateLimit {
                rate: 1000.0,
                burst: 200.0,
            },
            per_source_handshake_rate: RateLimit {
                rate: 20.0,
                burst: 5.0,
            },
            per_connection_rate: None,
            max_tracked_sources: 4096,
            stateless_reset_key: None,
            supported_versions: crate::SUPPORTED_VERSIONS.to_vec(),
            retry_token_lifetime: Duration::from_secs(10),
            retry_key_rotation: Duration::from_secs(120),
            new_token_lifetime: Duration::from_secs(24 * 3600),
            token_log_capacity: 65_536,
            load_fraction: 0.125,
            load_hold: Duration::from_secs(1),
        }
    }
}

impl EndpointConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cid_len > crate::cid::MAX_CID_LEN {
            return Err(ConfigError::new("cid_len", "must be between 0 and 20"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("max_connections", "must be at least 1"));
        }
        let per_connection = self.per_connection_rate.map(|r| ("per_connection_rate", r));
        for (field, r) in [
            ("handshake_rate", self.handshake_rate),
            ("per_source_handshake_rate", self.per_source_handshake_rate),
        ]
        .into_iter()
        .chain(per_connection)
        {
            if !(r.rate > 0.0 && r.burst >= 1.0 && r.rate.is_finite() && r.burst.is_finite()) {
                return Err(ConfigError::new(
                    field,
                    "rate must be positive and burst at least 1",
                ));
            }
        }
        if self.supported_versions.is_empty()
            || self
                .supported_versions
                .iter()
                .any(|v| !crate::SUPPORTED_VERSIONS.contains(v))
        {
            return Err(ConfigError::new(
                "supported_versions",
                "must be a non-empty subset of SUPPORTED_VERSIONS",
            ));
        }
        if self.retry_token_lifetime.is_zero() {
            return Err(ConfigError::new("retry_token_lifetime", "must be positive"));
        }
        if self.retry_key_rotation < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "retry_key_rotation",
                "must be at least 1 s",
            ));
        }
        if self.token_log_capacity == 0 {
            return Err(ConfigError::new("token_log_capacity", "must be at least 1"));
        }
        if !(self.load_fraction > 0.0 && self.load_fraction <= 1.0) {
            return Err(ConfigError::new("load_fraction", "must be in (0, 1]"));
        }
        Ok(())
    }
}

fn validate_common(suites: &[CipherSuite], kex: &[KeyExchange]) -> Result<(), ConfigError> {
    if suites.is_empty() {
        return Err(ConfigError::new(
            "cipher_suites",
            "at least one suite is required",
        ));
    }
    if kex.is_empty() {
        return Err(ConfigError::new(
            "key_exchanges",
            "at least one key exchange is required",
        ));
    }
    if (1..suites.len()).any(|i| suites[..i].contains(&suites[i])) {
        return Err(ConfigError::new("cipher_suites", "a suite is listed twice"));
    }
    if (1..kex.len()).any(|i| kex[..i].contains(&kex[i])) {
        return Err(ConfigError::new(
            "key_exchanges",
            "a key exchange is listed twice",
        ));
    }
    Ok(())
}

/// When a server makes clients prove their address with a Retry before it spends anything on
/// their handshake (docs/PROTOCOL.md §10.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressValidation {
    /// Never send a Retry: every acceptable Initial starts a handshake at once (only the 3×
    /// amplification limit and the rate limits protect the server).
    Never,
    /// Send a Retry to every Initial without a valid token while the endpoint is under load
    /// (`EndpointConfig::load_fraction`); otherwise accept at once. Default: the usual cost is
    /// nothing, and under a flood no key exchange happens before an address is proven.
    #[default]
    UnderLoad,
    /// Send a Retry to every Initial without a valid token: one more round trip for new clients
    /// (none for clients with a NEW_TOKEN token), no handshake work for spoofed sources ever.
    Always,
}

/// Whether and how a server asks clients to authenticate.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// No client authentication (default).
    #[default]
    None,
    /// Ask for a client identity; accept clients without one, and report the identity when given.
    Optional,
    /// Require a client identity from this set of trusted keys.
    Required(Vec<PublicIdentity>),
}

/// A server's configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's long-term identity key, which signs every handshake.
    pub identity: Arc<IdentityKey>,
    /// Transport settings.
    pub transport: Arc<TransportConfig>,
    /// Cipher suites in preference order; the server picks its most preferred one the client
    /// offers. Default: AES-256-GCM first when the CPU has AES instructions, else ChaCha20-Poly1305.
    pub cipher_suites: Vec<CipherSuite>,
    /// Key exchanges in preference order. Default: the hybrid X25519+ML-KEM-768 only; add
    /// [`KeyExchange::X25519`] to also accept classical-only clients.
    pub key_exchanges: Vec<KeyExchange>,
    /// Client authentication policy. Default: none.
    pub client_auth: ClientAuth,
    /// Whether 0-RTT data is accepted on resumption. Default true.
    pub zero_rtt: bool,
    /// Largest amount of 0-RTT data accepted per connection, in bytes. Default 64 KiB.
    pub max_early_data: u32,
    /// How long issued session tickets stay valid. Default 1 h, the ticket-key rotation interval:
    /// a ticket opens only under the current or previous key, so a longer lifetime would promise
    /// more than the keys keep. At most 7 days.
    pub ticket_lifetime: Duration,
    /// Accepted difference between the client's and the server's view of a ticket's age.
    /// Default 10 s (RFC 8446 §8.3).
    pub freshness_window: Duration,
    /// Session tickets issued after each handshake. Default 2.
    pub tickets_per_connection: u8,
    /// Ticket keys and the 0-RTT replay filter, shared by the endpoint's connections.
    pub resumption: Arc<ServerResumption>,
    /// When clients must prove their address with a Retry first. Default
    /// [`AddressValidation::UnderLoad`].
    pub address_validation: AddressValidation,
}

impl core::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("identity", &self.identity.public())
            .field("cipher_suites", &self.cipher_suites)
            .field("key_exchanges", &self.key_exchanges)
            .field("zero_rtt", &self.zero_rtt)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// A server config with the defaults above for `identity`. `resumption` is created by the
    /// caller (it needs randomness and the current time): see [`ServerResumption::new`].
    pub fn new(identity: Arc<IdentityKey>, resumption: Arc<ServerResumption>) -> Self {
        Self {
            identity,
            transport: Arc::new(TransportConfig::default()),
            cipher_suites: CipherSuite::default_preference(),
            key_exchanges: vec![KeyExchange::X25519MlKem768],
            client_auth: ClientAuth::None,
            zero_rtt: true,
            max_early_data: 64 << 10,
            ticket_lifetime: crate::handshake::DEFAULT_TICKET_KEY_ROTATION,
            freshness_window: Duration::from_secs(10),
            tickets_per_connection: 2,
            resumption,
            address_validation: AddressValidation::UnderLoad,
        }
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.transport.validate()?;
        validate_common(&self.cipher_suites, &self.key_exchanges)?;
        if self.ticket_lifetime > crate::handshake::MAX_TICKET_LIFETIME {
            return Err(ConfigError::new(
                "ticket_lifetime",
                "must be at most 7 days",
            ));
        }
        if self.freshness_window.is_zero() {
            return Err(ConfigError::new("freshness_window", "must be positive"));
        }
        Ok(())
    }
}

/// How a client decides to trust the server's identity key.
#[derive(Clone)]
pub enum ServerTrust {
    /// Accept only these keys (pinning). The handshake fails with a clear error otherwise.
    Pinned(Vec<PublicIdentity>),
    /// Trust on first use: accept any key and report it in the `Connected` event, so the
    /// application can record it and compare on the next connection.
    AcceptAny,
    /// Ask the application: the verifier sees the key during the handshake and decides.
    Custom(Arc<dyn ServerVerifier>),
}

impl core::fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Pinned(keys) => f.debug_tuple("Pinned").field(keys).finish(),
            Self::AcceptAny => f.write_str("AcceptAny"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// An application's decision on a server identity (trust-on-first-use stores, key rotation).
pub trait ServerVerifier: Send + Sync {
    /// Accepts `identity` or explains why not; the reason ends the handshake.
    fn verify(&self, identity: &PublicIdentity) -> Result<(), String>;
}

/// A client's configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How the server's identity is trusted.
    pub trust: ServerTrust,
    /// Transport settings.
    pub transport: Arc<TransportConfig>,
    /// Cipher suites offered, in preference order. Default: by CPU capability.
    pub cipher_suites: Vec<CipherSuite>,
    /// Key exchanges offered. Default: hybrid X25519+ML-KEM-768 only. Adding
    /// [`KeyExchange::X25519`] allows falling back to classical security when the server asks.
    pub key_exchanges: Vec<KeyExchange>,
    /// A client identity for servers that ask for one.
    pub identity: Option<Arc<IdentityKey>>,
    /// Whether to send 0-RTT data when resuming with a ticket that allows it. Default true.
    pub zero_rtt: bool,
}

impl ClientConfig {
    /// A client that trusts exactly `server_key`.
    pub fn pinned(server_key: PublicIdentity) -> Self {
        Self::with_trust(ServerTrust::Pinned(vec![server_key]))
    }

    /// A client with the given trust policy and defaults for everything else.
    pub fn with_trust(trust: ServerTrust) -> Self {
        Self {
            trust,
            transport: Arc::new(TransportConfig::default()),
            cipher_suites: CipherSuite::default_preference(),
            key_exchanges: vec![KeyExchange::X25519MlKem768],
            identity: None,
            zero_rtt: true,
        }
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.transport.validate()?;
        validate_common(&self.cipher_suites, &self.key_exchanges)?;
        if let ServerTrust::Pinned(keys) = &self.trust {
            if keys.is_empty() {
                return Err(ConfigError::new("trust", "pinning needs at least one key"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        assert_eq!(TransportConfig::default().validate(), Ok(()));
        assert_eq!(EndpointConfig::default().validate(), Ok(()));
        let t = TransportConfig {
            max_udp_payload_size: 1000,
            ..TransportConfig::default()
        };
        assert_eq!(t.validate().unwrap_err().field, "max_udp_payload_size");
        let e = EndpointConfig {
            cid_len: 21,
            ..EndpointConfig::default()
        };
        assert_eq!(e.validate().unwrap_err().field, "cid_len");
        // Zero-length IDs are valid for a client endpoint (the server check is in `Endpoint`).
        let e = EndpointConfig {
            cid_len: 0,
            ..EndpointConfig::default()
        };
        assert_eq!(e.validate(), Ok(()));
        let e = EndpointConfig {
            supported_versions: vec![0xdead_beef],
            ..EndpointConfig::default()
        };
        assert_eq!(e.validate().unwrap_err().field, "supported_versions");
    }
}
