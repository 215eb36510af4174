//! The connection's public vocabulary: what it hands the driver ([`Transmit`]), the
//! application ([`Event`], [`ConnectionError`], [`ConnectionStats`], [`SendDatagramError`]) and
//! the endpoint ([`EndpointEvent`], [`Incoming`]).

use std::net::SocketAddr;

use crate::cid::ConnectionId;
use crate::error::{TransportError, TransportErrorCode};
use crate::handshake::ClientTicket;
use crate::session::HandshakeInfo;
use crate::stream::StreamEvent;
use crate::time::Duration;

/// A datagram for the driver to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a transmit must be sent"]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// How many bytes of the caller's buffer it occupies.
    pub size: usize,
    /// Segment size for GSO batches (`None`: one datagram).
    pub segment_size: Option<usize>,
    /// The ECN codepoint to set in the datagram's IP header (`None`: not ECN-capable). A
    /// driver that cannot set it sends the datagram without: the connection then sees no
    /// ECN feedback and stops marking (PROTOCOL §12.19).
    pub ecn: Option<EcnCodepoint>,
}

/// An Explicit Congestion Notification codepoint of an IP header (RFC 3168): the two low bits
/// of the IPv4 TOS or IPv6 Traffic Class byte. "Not ECN-capable" (0b00) is `None` where an
/// `Option<EcnCodepoint>` is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EcnCodepoint {
    /// ECT(0), 0b10: ECN-capable transport. What JSP marks its datagrams with.
    Ect0,
    /// ECT(1), 0b01: ECN-capable transport (L4S).
    Ect1,
    /// CE, 0b11: congestion experienced, set by a router instead of dropping the datagram.
    Ce,
}

impl EcnCodepoint {
    /// The codepoint of the two low bits of `bits` (a TOS or Traffic Class byte); `None` for
    /// "not ECN-capable".
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0b11 {
            0b10 => Some(Self::Ect0),
            0b01 => Some(Self::Ect1),
            0b11 => Some(Self::Ce),
            _ => None,
        }
    }

    /// The codepoint's two bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::Ect0 => 0b10,
            Self::Ect1 => 0b01,
            Self::Ce => 0b11,
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionError {
    /// This endpoint closed the connection because the peer violated the protocol.
    TransportError(TransportError),
    /// The peer closed the connection with a transport error code.
    ConnectionClosed {
        /// The peer's error code.
        code: TransportErrorCode,
        /// The frame type that triggered it, if the peer said.
        frame_type: Option<u64>,
        /// The peer's reason.
        reason: String,
    },
    /// The peer's application closed the connection.
    ApplicationClosed {
        /// The application's error code.
        code: u64,
        /// The application's reason.
        reason: String,
    },
    /// This side's application closed the connection.
    LocallyClosed,
    /// Nothing was received for the idle timeout.
    TimedOut,
    /// The peer sent a stateless reset: it lost the connection's state.
    Reset,
    /// The server speaks no version this client offers.
    VersionMismatch,
}

impl core::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TransportError(e) => write!(f, "closed by us: {e}"),
            Self::ConnectionClosed { code, reason, .. } => {
                write!(f, "closed by peer: {code}: {reason}")
            }
            Self::ApplicationClosed { code, reason } => {
                write!(f, "closed by peer application: code {code}: {reason}")
            }
            Self::LocallyClosed => f.write_str("closed locally"),
            Self::TimedOut => f.write_str("timed out: nothing received for the idle timeout"),
            Self::Reset => f.write_str("reset by peer (stateless reset)"),
            Self::VersionMismatch => f.write_str("no protocol version in common with the server"),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// Something the application should know about.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; what was negotiated.
    Connected(HandshakeInfo),
    /// The server refused 0-RTT; data sent early is being resent under 1-RTT keys.
    ZeroRttRejected,
    /// A session ticket arrived: store it and pass it to the next connect for 0-RTT resumption.
    NewTicket(Box<ClientTicket>),
    /// The server sent an address-validation token (NEW_TOKEN) for a later connection to the
    /// same server. The client's endpoint keeps the latest one per server address and puts it
    /// in the next connection's Initial by itself; an application that restarts can store it
    /// and hand it back with `Endpoint::set_address_token`. Single use, bound to the client's
    /// current IP address.
    NewToken(Vec<u8>),
    /// One or more datagrams can be read with [`Connection::recv_datagram`].
    DatagramReceived,
    /// Something happened on a stream (opened by the peer, readable, writable, finished,
    /// stopped, reset, or more streams available).
    Stream(StreamEvent),
    /// The 1-RTT keys moved to a new generation.
    KeyUpdated {
        /// The generation now used for sending.
        generation: u64,
    },
    /// A traffic secret, exported because [`crate::config::TransportConfig::key_log`] is on.
    KeyLog(KeyLogEntry),
    /// The connection ended. Final: no other event follows.
    ConnectionLost(ConnectionError),
}

/// Counters a connection keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Bytes sent (UDP payloads).
    pub bytes_sent: u64,
    /// Bytes received (UDP payloads).
    pub bytes_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received and authenticated.
    pub packets_received: u64,
    /// Packets dropped: undecryptable, duplicate, or malformed.
    pub packets_dropped: u64,
    /// Of the packets dropped, those refused by the anti-replay window: a packet number already
    /// processed (a duplicate or replayed datagram) or older than the window.
    pub packets_replayed: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Key updates completed.
    pub key_updates: u64,
    /// Datagrams dropped: received ones beyond the receive buffer, queued ones beyond the send
    /// buffer or over the peer's size limit.
    pub datagrams_dropped: u64,
    /// Stream and handshake bytes queued again because the packet carrying them was lost, or
    /// because a partially reliable message was still unacknowledged at its last chance
    /// (those are also in [`Self::last_chance_bytes`]).
    pub retransmitted_bytes: u64,
    /// Stream bytes of partially reliable messages sent again at their last chance (PROTOCOL
    /// §12.17): unacknowledged, not declared lost, and a copy sent later would be too late.
    pub last_chance_bytes: u64,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Minimum round-trip time seen.
    pub min_rtt: Duration,
    /// Congestion window, in bytes.
    pub congestion_window: u64,
    /// Bytes in flight (sent, not yet acknowledged or lost).
    pub bytes_in_flight: u64,
    /// Connection IDs the peer issued us that are active (not retired), the handshake's
    /// included; never above our `active_connection_id_limit`.
    pub peer_connection_ids: u64,
    /// RETIRE_CONNECTION_ID frames we owe the peer (queued or unacknowledged); bounded.
    pub connection_id_retirements_outstanding: u64,
    /// The largest UDP payload sent on the current path: 1200 until path-MTU discovery
    /// raises it.
    pub path_mtu: u16,
    /// Path-MTU probes sent.
    pub mtu_probes_sent: u64,
    /// Path-MTU probes declared lost (not congestion signals).
    pub mtu_probes_lost: u64,
    /// Path-MTU black holes detected (the path fell back to 1200 bytes).
    pub mtu_black_holes: u64,
    /// Loss events reported to the congestion controller.
    pub congestion_events: u64,
    /// Whether this connection marks its datagrams ECT(0): the path and the peer proved they
    /// carry and count the marks (PROTOCOL §12.19).
    pub ecn_capable: bool,
    /// CE marks the peer reported on our packets (each increase was a congestion event).
    pub ecn_ce_reported: u64,
    /// Packets we received in datagrams with an ECN codepoint (ECT(0), ECT(1) or CE).
    pub ecn_marked_received: u64,
    /// FEC repair symbols sent.
    pub fec_repair_symbols_sent: u64,
    /// Bytes of the packets carrying FEC repair symbols (headers and tags included).
    pub fec_repair_wire_bytes: u64,
    /// Bytes of FEC repair symbols sent (the symbols alone, not their frame and packet
    /// headers).
    pub fec_repair_bytes_sent: u64,
    /// Packets FEC made us send repairs for (members of a closed block).
    pub fec_packets_protected: u64,
    /// Packets of the peer we rebuilt from repair symbols.
    pub fec_packets_recovered: u64,
    /// Packets of ours the peer reported rebuilt (FEC_RECOVERED).
    pub fec_packets_repaired_by_peer: u64,
    /// FEC repair frames refused as too old to decode.
    pub fec_stale_blocks: u64,
    /// Our current loss estimate, in parts per million.
    pub fec_loss_estimate_ppm: u64,
}

/// Why a datagram could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendDatagramError {
    /// The peer does not accept datagrams (or the handshake has not told us yet).
    Disabled,
    /// The datagram exceeds the size the peer accepts; `max` is the limit.
    TooLarge {
        /// The largest payload accepted.
        max: usize,
    },
    /// The connection is closed.
    ConnectionLost,
}

impl core::fmt::Display for SendDatagramError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Disabled => f.write_str("the peer does not accept datagrams"),
            Self::TooLarge { max } => {
                write!(f, "datagram larger than the peer's limit of {max} bytes")
            }
            Self::ConnectionLost => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for SendDatagramError {}

/// Events the endpoint must see (connection-ID routing, freeing the table entry).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// The connection is gone; forget its IDs.
    Drained,
    /// The peer's stateless-reset token: a datagram for an unknown ID ending in it belongs to
    /// this connection (which then learns that the peer lost its state).
    ResetToken([u8; 16]),
    /// Client: the server at `server` sent an address-validation token for the next connection.
    NewToken {
        /// The server's address.
        server: SocketAddr,
        /// The token, opaque to the client.
        token: Vec<u8>,
    },
}

/// What the endpoint decided about a client's first Initial packet, to create the server side.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The client's address.
    pub remote: SocketAddr,
    /// The connection ID the server chose for itself.
    pub local_cid: ConnectionId,
    /// The client's source connection ID.
    pub client_scid: ConnectionId,
    /// The destination ID of the client's first Initial packet. Without a Retry it keys the
    /// Initial packets; after one it comes from the Retry token and is only echoed in `odcid`.
    pub original_dcid: ConnectionId,
    /// After a Retry: the destination ID of this Initial, i.e. the Retry's source ID. It keys
    /// the Initial packets and is echoed in the `rscid` transport parameter.
    pub retry_scid: Option<ConnectionId>,
    /// The client proved its address with a token: no amplification limit applies.
    pub validated: bool,
    /// A NEW_TOKEN token to give the client once the handshake is complete.
    pub new_token: Option<Vec<u8>>,
    /// The stateless-reset token for `local_cid`.
    pub reset_token: [u8; 16],
}

/// One exported traffic secret (only with [`crate::config::TransportConfig::key_log`]).
///
/// Labels follow the NSS key-log names: `CLIENT_EARLY_TRAFFIC_SECRET`,
/// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`,
/// `CLIENT_TRAFFIC_SECRET_0`, `SERVER_TRAFFIC_SECRET_0`. Later 1-RTT generations follow from
/// generation 0 by the key-update derivation. The connection is named by the destination ID of
/// the client's first packet, which both sides know (JSP has no TLS client random).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyLogEntry {
    /// What the secret protects.
    pub label: &'static str,
    /// The client's original destination connection ID.
    pub connection_id: ConnectionId,
    /// The secret.
    pub secret: [u8; 32],
}

impl KeyLogEntry {
    /// The entry as one key-log line: `LABEL <connection id hex> <secret hex>`.
    pub fn to_line(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            "{} {} {}",
            self.label,
            hex(&self.connection_id),
            hex(&self.secret)
        )
    }
}

impl core::fmt::Debug for KeyLogEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyLogEntry")
            .field("label", &self.label)
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}
