//! A connection: one secure session with one peer, as a pure state machine.
//!
//! The connection is a thin coordinator over rooms that own their state: the handshake
//! ([`crate::session`]), packet-number spaces ([`spaces`]), 1-RTT keys ([`keys`]), loss recovery
//! ([`crate::recovery`]), congestion control ([`crate::congestion`]) and timers ([`timers`]).
//! Packets are received in [`recv`] and assembled in [`send`].
//!
//! The driver contract (DESIGN rule 2): [`Connection::handle_datagram`],
//! [`Connection::poll_transmit`], [`Connection::poll_timeout`], [`Connection::handle_timeout`];
//! the application drains [`Connection::poll_event`] and uses the datagram API. Nothing else
//! advances the state machine.

mod cids;
mod ecn;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod keys;
mod mtud;
mod pacing;
mod recv;
mod send;
mod spaces;
mod streams_glue;
mod timers;
mod types;

#[cfg(feature = "fuzzing")]
pub use fuzzing::Footprint;
pub use types::{
    ConnectionError, ConnectionStats, EcnCodepoint, EndpointEvent, Event, Incoming, KeyLogEntry,
    SendDatagramError, Transmit,
};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use self::keys::OneRttKeys;
use self::spaces::PacketSpace;
use self::timers::{Timer, TimerTable};
use crate::cid::ConnectionId;
use crate::config::{ClientConfig, ServerConfig, TransportConfig};
use crate::congestion::{Controller, DeliveryRate, PacketDelivery};
use crate::crypto::schedule::{directional_keys, initial_secrets, INITIAL_SUITE};
use crate::crypto::{HeaderKey, PacketKey};
use crate::error::{TransportError, TransportErrorCode};
use crate::handshake::{ClientTicket, TransportParameters};
use crate::packet::{PartialDecode, SpaceId};
use crate::rand::Rng;
use crate::recovery::{AckOutcome, Recovery, RecoveryConfig};
use crate::session::{
    ClientSession, EarlyData, HandshakeInfo, ServerSession, Session, SessionOutput,
};
use crate::side::Side;
use crate::stream::{StreamRecord, Streams};
use crate::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    /// We sent CLOSE; repeat it to incoming packets until `Timer::Close`.
    Closing,
    /// The peer sent CLOSE; stay silent until `Timer::Close`.
    Draining,
    /// Gone: the endpoint may forget the connection.
    Drained,
}

/// The CLOSE frame we send while closing.
#[derive(Debug, Clone)]
struct CloseFrame {
    application: bool,
    code: u64,
    frame_type: u64,
    reason: Vec<u8>,
}

/// Stream-record lists kept for reuse per connection: enough for the packets one round of
/// acknowledgements frees, small enough not to matter per idle connection (they start empty).
const RECORD_POOL: usize = 1024;

/// Lists longer than this (a packet that carried many small stream frames) are freed rather than
/// kept, so the pool's memory stays bounded.
const RECORD_LIST_MAX: usize = 8;

/// What a sent packet carried, so that its loss can requeue exactly those frames.
#[derive(Debug, Default)]
pub(crate) struct SentFrames {
    /// A CRYPTO frame: stream offset and length.
    crypto: Option<(u64, usize)>,
    /// The largest packet number our ACK in this packet covered.
    largest_ack: Option<u64>,
    handshake_done: bool,
    tickets: Vec<Bytes>,
    key_update: Option<u64>,
    /// Stream frames and stream control frames.
    streams: Vec<StreamRecord>,
    /// A PATH_CHALLENGE.
    path_challenge: bool,
    /// The delivery-rate snapshot taken when the packet was sent (in-flight packets only).
    delivery: PacketDelivery,
    /// The NEW_TOKEN frame.
    new_token: bool,
    /// RETIRE_CONNECTION_ID frames: the sequence numbers.
    retired_cids: Vec<u64>,
    /// A path-MTU probe (PING and PADDING only): its loss is no congestion signal.
    mtu_probe: bool,
    /// Sent in a datagram marked ECT(0): the peer's ECN counts must account for it.
    ecn_marked: bool,
}

/// Datagram queues, both bounded in bytes.
#[derive(Debug, Default)]
struct Datagrams {
    incoming: VecDeque<Bytes>,
    incoming_bytes: usize,
    outgoing: VecDeque<(Bytes, bool)>,
    outgoing_bytes: usize,
    dropped_incoming: u64,
    dropped_outgoing: u64,
}

/// One connection.
pub struct Connection {
    side: Side,
    transport: Arc<TransportConfig>,
    session: Session,
    rng: Rng,
    state: State,
    spaces: [PacketSpace; 3],
    zero_rtt: Option<(Box<dyn PacketKey>, Box<dyn HeaderKey>)>,
    one_rtt: Option<OneRttKeys>,
    handshake_confirmed: bool,
    local_cid: ConnectionId,
    remote_cid: ConnectionId,
    /// Client: whether `remote_cid` was replaced by the server's chosen ID.
    remote_cid_from_peer: bool,
    original_dcid: ConnectionId,
    remote: SocketAddr,
    recovery: Recovery<SentFrames>,
    cc: Box<dyn Controller>,
    /// Delivery-rate sampling for the controller.
    delivery: DeliveryRate,
    pacer: pacing::Pacer,
    timers: TimerTable,
    events: VecDeque<Event>,
    endpoint_events: VecDeque<EndpointEvent>,
    datagrams: Datagrams,
    streams: Streams,
    stats: ConnectionStats,
    idle_timeout: Option<Duration>,
    close: Option<CloseFrame>,
    close_pending: bool,
    error: Option<ConnectionError>,
    address_validated: bool,
    amplification_received: u64,
    amplification_sent: u64,
    peer_params: Option<TransportParameters>,
    handshake_done_pending: bool,
    tickets_pending: Vec<Bytes>,
    /// Emptied stream-record lists of acknowledged or lost packets, reused by the next packets
    /// sent so that the steady state allocates none (at most [`RECORD_POOL`] kept).
    record_pool: Vec<Vec<StreamRecord>>,
    key_update_frame_pending: Option<u64>,
    path_responses: VecDeque<[u8; 8]>,
    session_out: SessionOutput,
    ack_outcome: AckOutcome<SentFrames>,
    early_data_sent: u64,
    early_data_received: u64,
    /// A client closed before its Finished left: every CLOSE datagram carries the Finished
    /// ahead of the 1-RTT close (see `Connection::finished_left_behind`).
    close_with_finished: bool,
    max_early_data: u64,
    /// Client resuming with 0-RTT: the DATAGRAM limit the ticket's parameters gave.
    early_datagram_limit: Option<u64>,
    peer_reset_token: Option<[u8; 16]>,
    /// 0-RTT packets that arrived before the ClientHello completed (bounded), retried once the
    /// early keys exist.
    early_buffer: Vec<(PartialDecode, BytesMut, Option<EcnCodepoint>)>,
    decrypt_failures: u64,
    /// Key generation of the 1-RTT packet being processed.
    rx_packet_generation: u64,
    /// Restart the idle timer at the next ack-eliciting send (one was received since).
    idle_restart_on_send: bool,
    /// Path validation of a new peer address: the challenge we sent, if unanswered.
    path_challenge: Option<[u8; 8]>,
    path_challenge_pending: bool,
    /// The idle deadline for which last-chance probes were sent, and how many (at most two).
    idle_probed_for: (Option<Instant>, u8),
    /// The validated address to return to if the new path does not answer.
    previous_remote: Option<SocketAddr>,
    /// The largest datagram we send on the current path (path-MTU discovery raises it).
    mtu: u16,
    /// Path-MTU discovery of the current path.
    mtud: mtud::Mtud,
    /// Congestion events reported to the controller (losses of path-MTU probes are not).
    congestion_events: u64,
    /// Forward error correction, sending half: set once both sides announced FEC.
    fec_tx: Option<crate::fec::FecSender>,
    /// Forward error correction, receiving half: set when we announced FEC.
    fec_rx: Option<crate::fec::FecReceiver>,
    /// Packets rebuilt by FEC, processed after the packet whose repair symbol rebuilt them.
    fec_recovered: Vec<crate::fec::Recovered>,
    /// How many more packets carrying an ACK also carry FEC_RECOVERED (a change of our count
    /// is repeated in a few, since the frame is not retransmitted).
    fec_recovered_repeat: u8,
    /// The peer's last FEC_RECOVERED count.
    fec_peer_repaired: u64,
    /// Packet number of the 1-RTT packet being processed (the carrier of its repair symbols).
    rx_pn: u64,
    /// The ECN codepoint of the datagram being processed.
    rx_ecn: Option<EcnCodepoint>,
    /// The ECN codepoint of the datagram being built.
    tx_ecn: Option<EcnCodepoint>,
    /// Whether we mark our datagrams, and the peer's ECN counts (PROTOCOL §12.19).
    ecn: ecn::EcnSender,
    /// Client: the token its Initial packets carry (from a Retry, or a NEW_TOKEN of an earlier
    /// connection); empty for none.
    initial_token: Vec<u8>,
    /// The source ID of the Retry this handshake went through: the client's after accepting
    /// one (it ignores any later Retry), the server's when the client came back with its token.
    retry_scid: Option<ConnectionId>,
    /// Server: the NEW_TOKEN token to give the client after the handshake.
    new_token: Option<Bytes>,
    /// Server: the NEW_TOKEN frame is due (first send or retransmission).
    new_token_pending: bool,
    /// Client: NEW_TOKEN frames reported so far (bounded by [`MAX_NEW_TOKENS`]).
    new_tokens_received: u8,
    /// The connection IDs the peer issued us, bounded by our active_connection_id_limit.
    peer_cids: cids::PeerCids,
}

/// NEW_TOKEN frames a client reports per connection; further ones are ignored (a server has
/// no reason to send more than one or two, and events must stay bounded).
const MAX_NEW_TOKENS: u8 = 4;

/// ACK decimation: after this many ack-eliciting application packets, a receiver acknowledges
/// every [`ACK_DECIMATION_EVERY`]th in-order packet (or after a quarter of the round trip)
/// instead of every second one. At high rates ACKs cost both ends a packet each, and the
/// sender's controller measures delivery rate from the ACKs it gets, not from their number.
/// Out-of-order packets are still acknowledged at once (RFC 9000 §13.2.1).
pub(crate) const ACK_DECIMATION_AFTER: u64 = 100;

/// How many in-order ack-eliciting packets one ACK covers once decimation started.
pub(crate) const ACK_DECIMATION_EVERY: u32 = 10;

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("state", &self.state)
            .field("local_cid", &self.local_cid)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// Bytes of a 1-RTT packet around a DATAGRAM payload at most: first byte, a 20-byte connection
/// ID, a 4-byte packet number, the tag, and the frame's type and 2-byte length.
const SHORT_OVERHEAD: usize = 1 + 20 + 4 + crate::crypto::TAG_LEN + 1 + 2;
/// The same for a 0-RTT long-header packet (version, both IDs with lengths, 2-byte length field).
const ZERO_RTT_OVERHEAD: usize = 1 + 4 + 1 + 20 + 1 + 20 + 2 + 4 + crate::crypto::TAG_LEN + 1 + 2;

/// The addresses and IDs a connection starts with.
struct Ids {
    local_cid: ConnectionId,
    remote_cid: ConnectionId,
    original_dcid: ConnectionId,
    remote: SocketAddr,
}

impl Connection {
    fn base(
        side: Side,
        transport: Arc<TransportConfig>,
        session: Session,
        rng: Rng,
        ids: Ids,
        now: Instant,
    ) -> Self {
        let Ids {
            local_cid,
            remote_cid,
            original_dcid,
            remote,
        } = ids;
        let mtu = crate::config::MIN_UDP_PAYLOAD;
        let recovery = Recovery::new(RecoveryConfig {
            initial_rtt: transport.initial_rtt,
            ..RecoveryConfig::default()
        });
        let cc = transport.congestion_controller.build(now, mtu);
        let mtud = mtud::Mtud::new(transport.mtu_discovery.clone());
        let ecn_enabled = transport.ecn;
        let spaces = [
            PacketSpace::new(transport.max_handshake_buffer),
            PacketSpace::new(transport.max_handshake_buffer),
            PacketSpace::new(transport.max_handshake_buffer),
        ];
        let mut conn = Self {
            side,
            session,
            rng,
            state: State::Handshake,
            spaces,
            zero_rtt: None,
            one_rtt: None,
            handshake_confirmed: false,
            local_cid,
            remote_cid,
            peer_cids: cids::PeerCids::new(
                remote_cid,
                TransportParameters::default().active_connection_id_limit,
            ),
            remote_cid_from_peer: false,
            original_dcid,
            remote,
            recovery,
            cc,
            delivery: DeliveryRate::new(),
            pacer: pacing::Pacer::default(),
            timers: TimerTable::default(),
            events: VecDeque::new(),
            endpoint_events: VecDeque::new(),
            datagrams: Datagrams::default(),
            streams: Streams::new(side, streams_glue::stream_limits(&transport)),
            stats: ConnectionStats::default(),
            idle_timeout: (!transport.idle_timeout.is_zero()).then_some(transport.idle_timeout),
            transport,
            close: None,
            close_pending: false,
            error: None,
            address_validated: side.is_client(),
            amplification_received: 0,
            amplification_sent: 0,
            peer_params: None,
            handshake_done_pending: false,
            tickets_pending: Vec::new(),
            record_pool: Vec::new(),
            key_update_frame_pending: None,
            path_responses: VecDeque::new(),
            session_out: SessionOutput::default(),
            ack_outcome: AckOutcome::default(),
            early_data_sent: 0,
            early_data_received: 0,
            close_with_finished: false,
            max_early_data: 0,
            early_datagram_limit: None,
            peer_reset_token: None,
            early_buffer: Vec::new(),
            decrypt_failures: 0,
            rx_packet_generation: 0,
            idle_restart_on_send: false,
            path_challenge: None,
            path_challenge_pending: false,
            previous_remote: None,
            idle_probed_for: (None, 0),
            mtu,
            mtud,
            congestion_events: 0,
            fec_tx: None,
            fec_rx: None,
            fec_recovered: Vec::new(),
            fec_recovered_repeat: 0,
            fec_peer_repaired: 0,
            rx_pn: 0,
            rx_ecn: None,
            tx_ecn: None,
            ecn: ecn::EcnSender::new(ecn_enabled),
            initial_token: Vec::new(),
            retry_scid: None,
            new_token: None,
            new_token_pending: false,
            new_tokens_received: 0,
        };
        let (client, server) = initial_secrets(crate::VERSION_1, &conn.original_dcid);
        let backend = conn.transport.crypto_backend;
        let (rx, tx) = match side {
            Side::Client => (server, client),
            Side::Server => (client, server),
        };
        let initial = &mut conn.spaces[SpaceId::Initial.index()];
        initial.rx = Some(directional_keys(backend, INITIAL_SUITE, &rx));
        initial.tx = Some(directional_keys(backend, INITIAL_SUITE, &tx));
        if conn.transport.key_log {
            tracing::warn!(side = ?side, "key log is ON: this connection's traffic secrets are exported");
        }
        if side.is_client() {
            // Anti-deadlock (RFC 9002 §6.2.2.1): the client keeps probing until the handshake is
            // confirmed, even with nothing in flight, or a lost server flight would stall both.
            conn.recovery.set_anti_deadlock(Some(SpaceId::Initial));
        }
        conn.reset_idle_timer(now);
        conn
    }

    /// Transport parameters this side announces, from its config and connection IDs.
    fn local_params(transport: &TransportConfig, scid: &ConnectionId) -> TransportParameters {
        TransportParameters {
            max_idle_timeout_ms: transport.idle_timeout.as_millis() as u64,
            max_udp_payload_size: u64::from(transport.max_udp_payload_size),
            initial_max_data: transport.receive_window,
            initial_max_stream_data_bidi_local: transport.stream_receive_window,
            initial_max_stream_data_bidi_remote: transport.stream_receive_window,
            initial_max_stream_data_uni: transport.stream_receive_window,
            initial_max_streams_bidi: transport.max_concurrent_bidi_streams,
            initial_max_streams_uni: transport.max_concurrent_uni_streams,
            ack_delay_exponent: transport.ack_delay_exponent,
            max_ack_delay_ms: transport.max_ack_delay.as_millis() as u64,
            max_datagram_frame_size: transport.max_datagram_frame_size,
            fec_max_block: transport.fec.as_ref().map_or(0, |f| u64::from(f.max_block)),
            initial_source_connection_id: scid.to_vec(),
            ..TransportParameters::default()
        }
    }

    /// Starts a client connection to `remote`. `ticket`, from an earlier connection's
    /// [`Event::NewTicket`], resumes the session and enables 0-RTT.
    pub fn new_client(
        config: Arc<ClientConfig>,
        remote: SocketAddr,
        local_cid: ConnectionId,
        rng: Rng,
        ticket: Option<ClientTicket>,
        now: Instant,
    ) -> Result<Self, crate::config::ConfigError> {
        Self::new_client_with_share(config, remote, local_cid, rng, ticket, None, now)
    }

    /// [`Self::new_client`] with the key share generated ahead (used when its group is the one
    /// the configuration offers first).
    pub(crate) fn new_client_with_share(
        config: Arc<ClientConfig>,
        remote: SocketAddr,
        local_cid: ConnectionId,
        mut rng: Rng,
        ticket: Option<ClientTicket>,
        share: Option<crate::crypto::kex::ClientKeyShare>,
        now: Instant,
    ) -> Result<Self, crate::config::ConfigError> {
        config.validate()?;
        let original_dcid = ConnectionId::random(&mut rng, 16);
        let params = Self::local_params(&config.transport, &local_cid);
        let mut out = SessionOutput::default();
        let early_limit = ticket.as_ref().map_or(0, |t| u64::from(t.max_early_data));
        let early_peer_limits = ticket.as_ref().map(|t| {
            (
                streams_glue::peer_limits(&t.params),
                t.params.max_datagram_frame_size,
            )
        });
        let session = ClientSession::with_share(
            config.clone(),
            params.clone(),
            ticket,
            share,
            &mut rng,
            now,
            &mut out,
        );
        let mut conn = Self::base(
            Side::Client,
            config.transport.clone(),
            Session::Client(Box::new(session)),
            rng,
            Ids {
                local_cid,
                remote_cid: original_dcid,
                original_dcid,
                remote,
            },
            now,
        );
        conn.max_early_data = early_limit;
        if let Some((limits, datagrams)) = early_peer_limits.filter(|_| conn.zero_rtt_pending(&out))
        {
            // 0-RTT streams and datagrams run under the limits the server gave the resumed session.
            conn.streams.set_peer_limits(limits);
            conn.early_datagram_limit = Some(datagrams);
        }
        conn.apply_session_output(out, now);
        Ok(conn)
    }

    /// Creates the server side of a connection for a client's first Initial packet. Called by
    /// the endpoint, which chose `local_cid` and checked limits.
    pub fn new_server(
        config: Arc<ServerConfig>,
        incoming: Incoming,
        rng: Rng,
        now: Instant,
    ) -> Self {
        let Incoming {
            remote,
            local_cid,
            client_scid,
            original_dcid,
            retry_scid,
            validated,
            new_token,
            reset_token,
        } = incoming;
        let mut params = Self::local_params(&config.transport, &local_cid);
        params.original_destination_connection_id = Some(original_dcid.to_vec());
        params.retry_source_connection_id = retry_scid.map(|c| c.to_vec());
        params.stateless_reset_token = Some(reset_token);
        let session = ServerSession::new(config.clone(), params.clone());
        let mut conn = Self::base(
            Side::Server,
            config.transport.clone(),
            Session::Server(Box::new(session)),
            rng,
            Ids {
                local_cid,
                remote_cid: client_scid,
                // After a Retry the Initial packets are keyed by the Retry's source ID.
                original_dcid: retry_scid.unwrap_or(original_dcid),
                remote,
            },
            now,
        );
        conn.retry_scid = retry_scid;
        // A valid token proved the address: no 3x limit (RFC 9000 §8.1).
        conn.address_validated = validated;
        conn.new_token = new_token.map(Bytes::from);
        conn
    }

    /// Server: an X25519 key pair generated ahead, for this connection's ServerHello.
    pub(crate) fn offer_key_pair(&mut self, pair: crate::crypto::kex::X25519KeyPair) {
        if let Session::Server(s) = &mut self.session {
            s.offer_key_pair(pair);
        }
    }

    /// Client: the address-validation token to carry in Initial packets (a NEW_TOKEN token
    /// from an earlier connection). Call before the first `poll_transmit`; ignored by servers.
    pub fn set_initial_token(&mut self, token: Vec<u8>) {
        if self.side.is_client() && self.retry_scid.is_none() {
            self.initial_token = token;
        }
    }

    fn zero_rtt_pending(&self, out: &SessionOutput) -> bool {
        out.keys
            .iter()
            .any(|k| matches!(k, crate::session::KeyInstall::ZeroRtt { .. }))
    }

    /// Which side this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.remote
    }

    /// The connection ID this side issued (what the peer puts in its packets).
    pub fn local_cid(&self) -> ConnectionId {
        self.local_cid
    }

    /// The destination ID of the client's first packets (the server's routing key for them).
    pub fn original_dcid(&self) -> ConnectionId {
        self.original_dcid
    }

    /// Whether the peer's current address is validated (server: by a token, a Handshake packet
    /// or a PATH_RESPONSE; until then at most 3× the bytes received are sent to it). Always
    /// true on clients.
    pub fn is_peer_address_validated(&self) -> bool {
        self.address_validated
    }

    /// Whether the handshake has completed on this side.
    pub fn is_handshake_complete(&self) -> bool {
        self.session.is_complete()
    }

    /// What the handshake negotiated, once complete.
    pub fn handshake_info(&self) -> Option<&HandshakeInfo> {
        self.session.info()
    }

    /// Whether the connection is closed or closing.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        )
    }

    /// Whether the connection is gone and can be dropped.
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }

    /// Counters.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.last_chance_bytes = self.streams.last_chance_bytes();
        s.retransmitted_bytes += s.last_chance_bytes;
        s.packets_lost = self.recovery.stats().packets_lost;
        s.rtt = self.recovery.rtt().smoothed();
        s.min_rtt = self.recovery.rtt().min();
        s.congestion_window = self.cc.window();
        s.bytes_in_flight = self.recovery.bytes_in_flight();
        s.peer_connection_ids = self.peer_cids.active_count() as u64;
        s.connection_id_retirements_outstanding = self.peer_cids.outstanding();
        s.datagrams_dropped = self.datagrams.dropped_incoming + self.datagrams.dropped_outgoing;
        s.path_mtu = self.mtu;
        s.ecn_capable = self.ecn.state() == ecn::EcnState::Capable;
        s.ecn_marked_received = self
            .spaces
            .iter()
            .map(|sp| {
                let c = sp.ecn_received;
                c.ect0.saturating_add(c.ect1).saturating_add(c.ce)
            })
            .fold(0u64, u64::saturating_add);
        s.mtu_probes_sent = self.mtud.probes_sent;
        s.mtu_probes_lost = self.mtud.probes_lost;
        s.mtu_black_holes = self.mtud.black_holes;
        s.congestion_events = self.congestion_events;
        self.fec_stats(&mut s);
        s
    }

    /// The smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.recovery.rtt().smoothed()
    }

    /// The congestion window, in bytes.
    pub fn congestion_window(&self) -> u64 {
        self.cc.window()
    }

    /// The next event for the application. [`Event::ConnectionLost`] comes last.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.front() {
            if !matches!(e, Event::ConnectionLost(_)) {
                return self.events.pop_front();
            }
        }
        if let Some(e) = self.streams.poll_event() {
            return Some(Event::Stream(e));
        }
        self.events.pop_front()
    }

    /// The next event for the endpoint.
    pub fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        self.endpoint_events.pop_front()
    }

    /// When the driver must call [`Self::handle_timeout`] next (an absolute deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self
            .streams
            .next_expiry()
            .filter(|_| self.state == State::Established);
        let fec = self.fec_close_deadline();
        self.timers
            .next()
            .into_iter()
            .chain(expiry)
            .chain(fec)
            .min()
    }

    /// The largest datagram payload the peer accepts now (0 when datagrams are off).
    pub fn max_datagram_size(&self) -> usize {
        let peer = self
            .peer_params
            .as_ref()
            .map_or(0, |p| p.max_datagram_frame_size);
        // Bounded by the base size, not the discovered one: a queued datagram must stay
        // sendable when a black hole sends the path back to 1200 bytes.
        let room = usize::from(crate::config::MIN_UDP_PAYLOAD)
            .saturating_sub(1 + 20 + 4 + crate::crypto::TAG_LEN + 1 + 2);
        usize::try_from(peer).unwrap_or(usize::MAX).min(room)
    }

    /// Queues an unreliable datagram. It is sent once, when the congestion window allows, and
    /// never retransmitted. The oldest queued datagrams are dropped beyond the send buffer.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        self.queue_datagram(data, false)
    }

    /// Queues a datagram that may travel as 0-RTT data before the handshake completes. Only for
    /// data that is safe to be replayed by an attacker (idempotent requests): 0-RTT has no
    /// protection against replay beyond the server's single-use ticket check.
    pub fn send_datagram_early(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        self.queue_datagram(data, true)
    }

    fn queue_datagram(&mut self, data: Bytes, replay_safe: bool) -> Result<(), SendDatagramError> {
        if self.is_closed() {
            return Err(SendDatagramError::ConnectionLost);
        }
        let max = if self.peer_params.is_some() {
            self.max_datagram_size()
        } else if self.early_datagram_limit.is_some() && replay_safe {
            // 0-RTT: the limit the resumed session's parameters gave, in a long-header packet.
            let room =
                usize::from(crate::config::MIN_UDP_PAYLOAD).saturating_sub(ZERO_RTT_OVERHEAD);
            usize::try_from(self.early_datagram_limit.unwrap_or(0))
                .unwrap_or(usize::MAX)
                .min(room)
        } else {
            // The peer's limit is not known yet; it is checked again when the frame is written.
            usize::from(crate::config::MIN_UDP_PAYLOAD).saturating_sub(SHORT_OVERHEAD)
        };
        if max == 0
            || self
                .peer_params
                .as_ref()
                .is_some_and(|p| p.max_datagram_frame_size == 0)
        {
            return Err(SendDatagramError::Disabled);
        }
        if data.len() > max {
            return Err(SendDatagramError::TooLarge { max });
        }
        self.datagrams.outgoing_bytes += data.len();
        self.datagrams.outgoing.push_back((data, replay_safe));
        while self.datagrams.outgoing_bytes > self.transport.datagram_send_buffer {
            match self.datagrams.outgoing.pop_front() {
                Some((d, _)) => {
                    self.datagrams.outgoing_bytes -= d.len();
                    self.datagrams.dropped_outgoing += 1;
                }
                None => break,
            }
        }
        Ok(())
    }

    /// The next received datagram.
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        let d = self.datagrams.incoming.pop_front()?;
        self.datagrams.incoming_bytes -= d.len();
        Some(d)
    }

    /// Starts a key update (after the handshake is confirmed and the previous update answered).
    /// Returns whether one was started.
    pub fn initiate_key_update(&mut self) -> bool {
        if !self.handshake_confirmed {
            return false;
        }
        match &mut self.one_rtt {
            Some(keys) if keys.can_initiate_update() => {
                keys.initiate_update();
                let generation = keys.tx_generation();
                self.key_update_frame_pending = Some(generation);
                self.stats.key_updates += 1;
                self.events.push_back(Event::KeyUpdated { generation });
                true
            }
            _ => false,
        }
    }

    /// Closes the connection with an application error code and reason, as seen by the peer.
    pub fn close(&mut self, now: Instant, code: u64, reason: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.start_closing(
            now,
            CloseFrame {
                application: true,
                code,
                frame_type: 0,
                reason: reason.to_vec(),
            },
            ConnectionError::LocallyClosed,
        );
    }

    /// Ends the connection because of a transport error we detected.
    fn fail(&mut self, now: Instant, error: TransportError) {
        if self.is_closed() {
            return;
        }
        tracing::debug!(side = ?self.side, %error, "closing on error");
        self.start_closing(
            now,
            CloseFrame {
                application: false,
                code: error.code.0,
                frame_type: error.frame_type.unwrap_or(0),
                reason: error.reason.clone().into_bytes(),
            },
            ConnectionError::TransportError(error),
        );
    }

    fn start_closing(&mut self, now: Instant, frame: CloseFrame, error: ConnectionError) {
        self.close_with_finished = self.finished_left_behind();
        self.close = Some(frame);
        self.close_pending = true;
        self.state = State::Closing;
        self.timers.stop_all();
        let mut period = self.pto() * 3;
        if self.close_with_finished {
            // If the datagram with the Finished is lost, the server hears of this close only
            // by answering its own probe, which it sends after about three initial RTTs (it
            // has no RTT sample yet): stay closing until then, with room for one more.
            period = period.max(crate::recovery::DEFAULT_INITIAL_RTT * 6);
        }
        self.timers.set(Timer::Close, now + period);
        self.lose(error);
    }

    /// Records the connection's end and tells the application, once.
    fn lose(&mut self, error: ConnectionError) {
        if self.error.is_none() {
            self.error = Some(error.clone());
            self.events.push_back(Event::ConnectionLost(error));
        }
    }

    fn drain(&mut self) {
        self.state = State::Drained;
        self.timers.stop_all();
        self.endpoint_events.push_back(EndpointEvent::Drained);
    }

    /// The probe timeout without backoff.
    fn pto(&self) -> Duration {
        let rtt = self.recovery.rtt();
        let peer_delay = self
            .peer_params
            .as_ref()
            .map_or(self.transport.max_ack_delay, |p| {
                Duration::from_millis(p.max_ack_delay_ms)
            });
        rtt.pto_base() + peer_delay
    }

    fn reset_idle_timer(&mut self, now: Instant) {
        if let Some(t) = self.idle_timeout {
            let t = t.max(self.pto() * 3);
            self.timers.set(Timer::Idle, now + t);
        }
    }

    fn reset_keep_alive(&mut self, now: Instant) {
        match self.transport.keep_alive_interval {
            Some(k) if self.state == State::Established => {
                self.timers.set(Timer::KeepAlive, now + k)
            }
            _ => self.timers.stop(Timer::KeepAlive),
        }
    }

    /// Fires expired timers. Call at (or after) the deadline from [`Self::poll_timeout`].
    ///
    /// A deadline that is already due when a datagram has just been handled is work the
    /// connection wants done after what it queued is on the wire (a server's key agreement and
    /// signature after its ServerHello): drivers get the most from it by sending everything
    /// [`Self::poll_transmit`] returns first, then calling this. Either order is correct.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.streams.set_now(now);
        if self.state == State::Established {
            self.fec_poll_close(now);
        }
        // `expired` hands back the fired timers by value (no borrow, no allocation).
        let fired = self.timers.expired(now);
        for timer in fired {
            match timer {
                Timer::Idle => {
                    tracing::debug!(side = ?self.side, "idle timeout");
                    self.lose(ConnectionError::TimedOut);
                    self.drain();
                    return;
                }
                Timer::Close => {
                    self.drain();
                    return;
                }
                Timer::KeepAlive => {
                    if self.state == State::Established {
                        self.spaces[SpaceId::Data.index()].ping_pending = 1;
                    }
                }
                Timer::Ack => {
                    self.spaces[SpaceId::Data.index()].ack_now = true;
                }
                Timer::KeyDiscard => {
                    if let Some(keys) = &mut self.one_rtt {
                        keys.discard_previous();
                    }
                }
                Timer::LossDetection => self.on_loss_timeout(now),
                // Nothing to do: the driver's next `poll_transmit` sends what the pacer released.
                Timer::Pacing => {}
                Timer::HandshakeWork => {
                    if let Err(e) = self.finish_handshake_work(now) {
                        self.fail(now, e);
                        return;
                    }
                }
                Timer::IdleProbe => {
                    let sent = self.idle_probes_sent();
                    self.idle_probed_for = (self.timers.get(Timer::Idle), sent + 1);
                    if self.state == State::Established {
                        // Two datagrams, as a PTO sends: on a lossy path one alone is lost too
                        // often for the last word before the connection is given up.
                        self.spaces[SpaceId::Data.index()].ping_pending = 2;
                    }
                }
                Timer::PathValidation => {
                    if let (Some(_), Some(previous)) =
                        (self.path_challenge.take(), self.previous_remote.take())
                    {
                        tracing::debug!(back_to = %previous, "path validation failed: returning to the previous path");
                        self.remote = previous;
                        self.path_challenge_pending = false;
                        self.address_validated = true;
                    }
                }
            }
        }
        self.update_loss_timer(now);
    }

    fn update_loss_timer(&mut self, now: Instant) {
        if self.is_closed() {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        let deadline = self.recovery.loss_timer(self.handshake_confirmed, now);
        self.timers.set_or_stop(Timer::LossDetection, deadline);
        self.arm_idle_probe();
    }

    fn on_loss_timeout(&mut self, now: Instant) {
        let mut out = core::mem::take(&mut self.ack_outcome);
        out.clear();
        let probe = self
            .recovery
            .on_loss_timeout(self.handshake_confirmed, now, &mut out);
        self.process_lost(&mut out, now);
        self.ack_outcome = out;
        if let Some(space) = probe {
            self.probe(space);
        }
    }

    /// Queues ack-eliciting probe packets in `space`.
    fn probe(&mut self, space: SpaceId) {
        let s = &mut self.spaces[space.index()];
        if !s.discarded {
            s.ping_pending = 2;
            s.crypto_out.requeue_unacked();
        }
        if space != SpaceId::Data {
            // RFC 9002 §6.2.4: also probe the other handshake space that has data in flight, so
            // that a peer which already discarded one of them still hears from us.
            for other in [SpaceId::Initial, SpaceId::Handshake] {
                let o = &mut self.spaces[other.index()];
                if other != space
                    && !o.discarded
                    && o.tx.is_some()
                    && self.recovery.ack_eliciting_in_flight(other) > 0
                {
                    o.ping_pending = o.ping_pending.max(1);
                    o.crypto_out.requeue_unacked();
                }
            }
        }
        if space != SpaceId::Data && self.side.is_client() && self.session.is_complete() {
            // A client whose handshake is complete but not yet confirmed also probes with a
            // 1-RTT packet: the server has discarded its Handshake keys, so only a 1-RTT packet
            // draws an ACK (and a lost HANDSHAKE_DONE), and only one lets the server follow a
            // NAT rebinding that happened meanwhile.
            let data = &mut self.spaces[SpaceId::Data.index()];
            data.ping_pending = data.ping_pending.max(1);
        }
    }

    /// Last-chance probes already sent for the current idle deadline (a new deadline, set when
    /// something is received, starts again from 0).
    fn idle_probes_sent(&self) -> u8 {
        if self.idle_probed_for.0 == self.timers.get(Timer::Idle) {
            self.idle_probed_for.1
        } else {
            0
        }
    }

    /// When the idle deadline is near and nothing has been heard while ack-eliciting packets are
    /// in flight, probe before giving up: probe timeouts back off exponentially, and on a lossy
    /// but live path the next backed-off probe could otherwise come after the idle deadline
    /// (§10.1 of RFC 9000 bounds the idle timeout below by 3 PTOs without backoff). Probes go at
    /// 2/3 and at 5/6 of the idle period (each two datagrams), so that one lost round does not
    /// end a connection whose path came back.
    fn arm_idle_probe(&mut self) {
        let (Some(idle_at), Some(idle)) = (self.timers.get(Timer::Idle), self.idle_timeout) else {
            self.timers.stop(Timer::IdleProbe);
            return;
        };
        if self.recovery.bytes_in_flight() == 0 || !self.session.is_complete() {
            self.timers.stop(Timer::IdleProbe);
            return;
        }
        let at = match self.idle_probes_sent() {
            0 => idle_at - idle / 3,
            1 => idle_at - idle / 6,
            _ => {
                // Not again until something is received (which moves the idle deadline).
                self.timers.stop(Timer::IdleProbe);
                return;
            }
        };
        let loss = self.timers.get(Timer::LossDetection);
        if loss.is_none_or(|l| l > at) {
            self.timers.set(Timer::IdleProbe, at);
        } else {
            self.timers.stop(Timer::IdleProbe);
        }
    }

    /// Requeues the frames of lost packets and tells congestion control.
    fn process_lost(&mut self, out: &mut AckOutcome<SentFrames>, now: Instant) {
        let mut lost_bytes = 0u64;
        let mut largest_sent: Option<Instant> = None;
        let mut largest_large_lost: Option<u64> = None;
        let mut data_lost = 0u64;
        let mut marked_lost = 0u32;
        for (space, pn, packet) in out.lost.drain(..) {
            marked_lost += u32::from(packet.frames.ecn_marked);
            if packet.frames.mtu_probe {
                // RFC 8899 §3: a lost probe says the path is too narrow, not congested.
                self.mtud.on_probe_lost(now, pn);
                continue;
            }
            if packet.in_flight {
                if space == SpaceId::Data {
                    data_lost += 1;
                }
                lost_bytes += u64::from(packet.size);
                largest_sent = largest_sent.max(Some(packet.time_sent));
                if space == SpaceId::Data && packet.size > crate::config::MIN_UDP_PAYLOAD {
                    largest_large_lost = largest_large_lost.max(Some(pn));
                }
            }
            self.requeue(space, packet.frames);
        }
        self.fec_outcome(0, data_lost, 0);
        if marked_lost > 0 {
            self.ecn.on_marked_lost(marked_lost);
        }
        if let Some(sent) = largest_sent {
            self.delivery.on_lost(lost_bytes);
            self.congestion_events += 1;
            self.cc
                .on_congestion_event(now, sent, out.persistent_congestion, lost_bytes);
        }
        if self.mtud.on_loss_event(now, largest_large_lost) {
            tracing::debug!(side = ?self.side, "path-MTU black hole: back to 1200 bytes");
            self.set_mtu(self.mtud.current());
        }
    }

    /// Sets the largest datagram sent on the path and tells congestion control.
    fn set_mtu(&mut self, mtu: u16) {
        if mtu != self.mtu {
            self.mtu = mtu;
            self.cc.on_mtu_change(mtu);
        }
    }

    /// An empty stream-record list for a packet about to be sent, from the pool when it has one.
    fn take_records(&mut self) -> Vec<StreamRecord> {
        self.record_pool.pop().unwrap_or_default()
    }

    /// Returns a sent packet's emptied stream-record list to the pool.
    fn recycle_records(&mut self, mut records: Vec<StreamRecord>) {
        if records.capacity() > 0
            && records.capacity() <= RECORD_LIST_MAX
            && self.record_pool.len() < RECORD_POOL
        {
            records.clear();
            self.record_pool.push(records);
        }
    }

    fn requeue(&mut self, space: SpaceId, frames: SentFrames) {
        let s = &mut self.spaces[space.index()];
        if let Some((offset, len)) = frames.crypto {
            s.crypto_out.on_lost(offset, len);
            self.stats.retransmitted_bytes += len as u64;
        }
        if frames.handshake_done {
            self.handshake_done_pending = true;
        }
        self.tickets_pending.extend(frames.tickets);
        if let Some(g) = frames.key_update {
            if self
                .one_rtt
                .as_ref()
                .is_some_and(|k| k.tx_generation() == g)
            {
                self.key_update_frame_pending = Some(g);
            }
        }
        let mut records = frames.streams;
        for record in records.drain(..) {
            self.stats.retransmitted_bytes += self.streams.on_lost(record);
        }
        self.recycle_records(records);
        if frames.path_challenge && self.path_challenge.is_some() {
            self.path_challenge_pending = true;
        }
        if frames.new_token {
            self.new_token_pending = true;
        }
        self.peer_cids.retire_pending.extend(frames.retired_cids);
    }

    /// The session's deferred work (a server's flight after its ServerHello), then any handshake
    /// messages that arrived meanwhile.
    fn finish_handshake_work(&mut self, now: Instant) -> Result<(), TransportError> {
        if self.is_closed() || !self.session.work_pending() {
            return Ok(());
        }
        let mut out = core::mem::take(&mut self.session_out);
        let result = self.session.finish_pending(&mut out);
        self.apply_session_output(out, now);
        result?;
        for space in [SpaceId::Initial, SpaceId::Handshake] {
            if !self.spaces[space.index()].discarded {
                self.drain_crypto(now, space)?;
            }
        }
        Ok(())
    }

    /// Applies what the handshake produced: bytes to send, keys, completion, tickets.
    fn apply_session_output(&mut self, mut out: SessionOutput, now: Instant) {
        let backend = self.transport.crypto_backend;
        for (space, bytes) in SpaceId::ALL.iter().zip(out.crypto.iter_mut()) {
            if !bytes.is_empty() {
                self.spaces[space.index()].crypto_out.push(bytes);
                // Released, not cleared: handshake messages come a few per connection, and a
                // kept capacity would stay with every idle connection.
                *bytes = Vec::new();
            }
        }
        for install in out.keys.drain(..) {
            if self.transport.key_log {
                self.log_keys(&install);
            }
            match install {
                crate::session::KeyInstall::ZeroRtt { suite, secret } => {
                    let keys = directional_keys(backend, suite, &secret);
                    self.zero_rtt = Some((keys.packet, keys.header));
                }
                crate::session::KeyInstall::Handshake { suite, rx, tx } => {
                    let s = &mut self.spaces[SpaceId::Handshake.index()];
                    s.rx = Some(directional_keys(backend, suite, &rx));
                    s.tx = Some(directional_keys(backend, suite, &tx));
                    if self.side.is_client() {
                        self.recovery.set_anti_deadlock(Some(SpaceId::Handshake));
                    } else if self.zero_rtt.is_none() {
                        // 0-RTT was not accepted: buffered 0-RTT packets will never open.
                        self.early_buffer.clear();
                    }
                }
                crate::session::KeyInstall::OneRtt { suite, rx, tx } => {
                    self.one_rtt = Some(OneRttKeys::new(backend, suite, rx, tx));
                }
            }
        }
        if let Some(early) = out.early_data.take() {
            match (self.side, early) {
                (Side::Client, EarlyData::Rejected) => self.on_zero_rtt_rejected(),
                (Side::Server, EarlyData::Accepted) => {
                    if let Session::Server(s) = &self.session {
                        self.max_early_data = u64::from(s.max_early_data());
                    }
                }
                _ => {}
            }
        }
        for t in out.tickets.drain(..) {
            self.tickets_pending.push(Bytes::from(t));
        }
        // Taken, not drained: tickets come once or twice per connection, and a kept capacity
        // (about 1.2 KiB) would stay with every idle client connection.
        for t in core::mem::take(&mut out.received_tickets) {
            self.events.push_back(Event::NewTicket(Box::new(t)));
        }
        if core::mem::take(&mut out.completed) {
            self.on_handshake_complete(now);
        }
        self.session_out = out;
    }

    /// Exports the secrets of `install` as key-log events (only with `key_log` on).
    fn log_keys(&mut self, install: &crate::session::KeyInstall) {
        use crate::session::KeyInstall;
        let client = self.side.is_client();
        let entries: Vec<(&'static str, [u8; 32])> = match install {
            KeyInstall::ZeroRtt { secret, .. } => {
                vec![("CLIENT_EARLY_TRAFFIC_SECRET", *secret.as_bytes())]
            }
            KeyInstall::Handshake { rx, tx, .. } => {
                let (c, s) = if client { (tx, rx) } else { (rx, tx) };
                vec![
                    ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", *c.as_bytes()),
                    ("SERVER_HANDSHAKE_TRAFFIC_SECRET", *s.as_bytes()),
                ]
            }
            KeyInstall::OneRtt { rx, tx, .. } => {
                let (c, s) = if client { (tx, rx) } else { (rx, tx) };
                vec![
                    ("CLIENT_TRAFFIC_SECRET_0", *c.as_bytes()),
                    ("SERVER_TRAFFIC_SECRET_0", *s.as_bytes()),
                ]
            }
        };
        for (label, secret) in entries {
            self.events.push_back(Event::KeyLog(KeyLogEntry {
                label,
                connection_id: self.original_dcid,
                secret,
            }));
        }
    }

    fn on_zero_rtt_rejected(&mut self) {
        self.zero_rtt = None;
        // Every Data-space packet so far was 0-RTT: take them back and resend their frames.
        let mut taken = Vec::new();
        self.recovery.take_all(SpaceId::Data, &mut taken);
        for (_, packet) in taken {
            self.requeue(SpaceId::Data, packet.frames);
        }
        self.events.push_back(Event::ZeroRttRejected);
    }

    /// The connection IDs both sides used must be the ones the handshake authenticated
    /// (RFC 9000 §7.3): otherwise an attacker rewrote them on the path.
    fn check_peer_cids(&self, params: &TransportParameters) -> Result<(), TransportError> {
        let mismatch = |what: &str| {
            TransportError::new(
                TransportErrorCode::TRANSPORT_PARAMETER_ERROR,
                format!("{what} does not match the connection ID used on the wire"),
            )
        };
        if params.initial_source_connection_id.as_slice() != self.remote_cid.as_bytes() {
            return Err(mismatch("initial_source_connection_id"));
        }
        if self.side.is_client()
            && params.original_destination_connection_id.as_deref()
                != Some(self.original_dcid.as_bytes())
        {
            return Err(mismatch("original_destination_connection_id"));
        }
        // Present exactly when this client followed a Retry, and equal to its source ID: a
        // Retry injected or removed on the path is detected (RFC 9000 §7.3).
        if self.side.is_client()
            && params.retry_source_connection_id.as_deref()
                != self.retry_scid.as_ref().map(|c| c.as_bytes())
        {
            return Err(mismatch("retry_source_connection_id"));
        }
        Ok(())
    }

    fn on_handshake_complete(&mut self, now: Instant) {
        if let Some(params) = self.session.peer_params() {
            if let Err(e) = self.check_peer_cids(params) {
                self.fail(now, e);
                return;
            }
        }
        self.state = State::Established;
        if let Some(params) = self.session.peer_params().cloned() {
            self.apply_peer_params(params);
            // The negotiated idle timeout may be shorter than the one armed so far.
            self.reset_idle_timer(now);
        }
        if self.side.is_server() {
            // The server confirms the handshake when it completes (RFC 9001 §4.1.2).
            self.handshake_confirmed = true;
            self.handshake_done_pending = true;
            self.new_token_pending = self.new_token.is_some();
            self.discard_space(SpaceId::Handshake, now);
        }
        if let Some(info) = self.session.info() {
            self.events.push_back(Event::Connected(info.clone()));
        }
        self.reset_keep_alive(now);
    }

    fn apply_peer_params(&mut self, params: TransportParameters) {
        if params.max_idle_timeout_ms > 0 {
            let peer = Duration::from_millis(params.max_idle_timeout_ms);
            self.idle_timeout = Some(self.idle_timeout.map_or(peer, |t| t.min(peer)));
        }
        if self.side.is_client() {
            self.peer_reset_token = params.stateless_reset_token;
            if let Some(token) = params.stateless_reset_token {
                self.endpoint_events
                    .push_back(EndpointEvent::ResetToken(token));
            }
        }
        self.recovery
            .set_max_ack_delay(Duration::from_millis(params.max_ack_delay_ms));
        self.streams
            .set_peer_limits(streams_glue::peer_limits(&params));
        self.fec_setup(&params);
        self.peer_params = Some(params);
    }

    fn discard_space(&mut self, space: SpaceId, now: Instant) {
        let s = &mut self.spaces[space.index()];
        if s.discarded {
            return;
        }
        s.discarded = true;
        s.rx = None;
        s.tx = None;
        s.ping_pending = 0;
        s.ack_now = false;
        // Nothing more is sent or accepted in the space: free its buffers.
        // (The incoming CRYPTO buffer is already empty: it is released after each message.)
        s.crypto_out.discard();
        s.replay.release();
        s.ack_ranges = crate::range_set::RangeSet::new();
        let mut dropped = Vec::new();
        self.recovery.discard_space(space, &mut dropped);
        self.update_loss_timer(now);
    }
}

mod fec_glue;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_fec;
#[cfg(test)]
mod tests_modes;
#[cfg(test)]
mod tests_sched;
