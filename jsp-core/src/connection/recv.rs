//! Receiving: datagram → packets → frames → state changes.
//!
//! Each packet is parsed, its header protection removed, its packet number checked against the
//! space's anti-replay window, its payload opened in place, its number recorded in the window,
//! and only then are its frames processed.
//! A packet that fails any step is dropped and counted; it never changes state. A frame that
//! breaks the protocol closes this connection with a typed error and affects no other.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::keys::RxChoice;
use super::timers::Timer;
use super::{
    Connection, ConnectionError, EcnCodepoint, Event, State, ACK_DECIMATION_AFTER,
    ACK_DECIMATION_EVERY,
};
use crate::crypto::schedule::{directional_keys, initial_secrets, INITIAL_SUITE};
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{self, Ack, Close, CloseKind, Frame};
use crate::handshake::HandshakeMessage;
use crate::packet::{self, header, Header, PacketKind, PartialDecode, ProtectError, SpaceId};
use crate::session::SessionOutput;
use crate::time::{Duration, Instant};

/// Most PATH_CHALLENGE responses queued at once; further challenges are ignored until sent.
const MAX_PATH_RESPONSES: usize = 4;
/// Most packets held for later: 0-RTT packets while the ClientHello is incomplete, 1-RTT packets
/// while the client's Finished has not arrived.
const MAX_EARLY_BUFFER: usize = 16;

impl Connection {
    /// Feeds a datagram received from `remote` at `now`, with the ECN codepoint of its IP
    /// header (`None`: not ECN-capable, or a driver that cannot read it): the packets it
    /// carries are counted by codepoint and the counts reported in our ACKs (PROTOCOL §12.19).
    /// Otherwise as [`Self::handle_datagram`].
    pub fn handle_datagram_ecn(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        self.rx_ecn = ecn;
        self.handle_datagram(now, remote, data);
        self.rx_ecn = None;
    }

    /// Feeds a datagram received from `remote` at `now` (as not ECN-capable; see
    /// [`Self::handle_datagram_ecn`]). The buffer is decrypted in place and received stream
    /// and datagram data are handed to the application as slices of it.
    pub fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, mut data: BytesMut) {
        if matches!(self.state, State::Drained | State::Draining) {
            return;
        }
        self.streams.set_now(now);
        let len = data.len() as u64;
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += len;
        if !self.address_validated && remote == self.remote {
            // Anti-amplification counts only what the address we send to sent us: bytes from
            // other sources (a spoofed copy of the client's DCID) must not raise its budget.
            self.amplification_received += len;
        }
        // The last 16 bytes, kept before in-place decryption, for stateless-reset detection.
        let mut tail = [0u8; 16];
        let reset_candidate = data.len() >= 21
            && data.get(data.len() - 16..).is_some_and(|t| {
                tail.copy_from_slice(t);
                true
            });
        let mut processed = false;
        let mut first_dcid = None;
        while !data.is_empty() {
            let partial = match packet::decode(&data, self.local_cid.len()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::trace!(error = %e, "undecodable packet dropped");
                    self.stats.packets_dropped += 1;
                    break;
                }
            };
            // Packets coalesced into one datagram all belong to one connection (RFC 9000 §12.2).
            if *first_dcid.get_or_insert(*partial.dcid()) != *partial.dcid() {
                self.stats.packets_dropped += 1;
                break;
            }
            let packet = data.split_to(partial.len.min(data.len()));
            match self.handle_packet(now, remote, partial, packet) {
                Ok(true) => processed = true,
                Ok(false) => self.stats.packets_dropped += 1,
                Err(error) => {
                    self.fail(now, error);
                    return;
                }
            }
            if matches!(self.state, State::Drained | State::Draining) {
                return;
            }
        }
        if !self.early_buffer.is_empty() && (self.zero_rtt.is_some() || self.session.is_complete())
        {
            let current = self.rx_ecn;
            for (partial, packet, ecn) in core::mem::take(&mut self.early_buffer) {
                // Counted by the codepoint of the datagram it came in.
                self.rx_ecn = ecn;
                let result = self.handle_packet(now, remote, partial, packet);
                self.rx_ecn = current;
                match result {
                    Ok(true) => processed = true,
                    Ok(false) => self.stats.packets_dropped += 1,
                    Err(error) => {
                        self.fail(now, error);
                        return;
                    }
                }
            }
        }
        if !processed {
            if reset_candidate && self.is_stateless_reset(&tail) {
                tracing::debug!("stateless reset received");
                self.lose(ConnectionError::Reset);
                self.drain();
            }
            return;
        }
        if self.state == State::Closing {
            // Answer the peer's packets with our CLOSE again (its copy may have been lost).
            self.close_pending = true;
        }
        self.update_loss_timer(now);
    }

    fn is_stateless_reset(&self, tail: &[u8; 16]) -> bool {
        use subtle::ConstantTimeEq;
        self.peer_reset_token
            .is_some_and(|t| bool::from(t.ct_eq(tail)))
    }

    /// Handles one packet. `Ok(false)`: dropped without effect.
    fn handle_packet(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        partial: PartialDecode,
        mut packet: BytesMut,
    ) -> Result<bool, TransportError> {
        let kind = match &partial.header {
            Header::VersionNegotiation { versions, .. } => {
                self.on_version_negotiation(&packet, versions.clone());
                return Ok(false);
            }
            Header::UnknownVersion { .. } => return Ok(false),
            Header::Long {
                kind: PacketKind::Retry,
                ..
            } => {
                self.on_retry(now, &partial, &packet);
                return Ok(false);
            }
            Header::Long { kind, .. } => *kind,
            Header::Short { .. } => PacketKind::Short,
        };
        let Some(space) = SpaceId::of(kind) else {
            return Ok(false);
        };
        // A server processes no 1-RTT packet before the client's Finished: until then the client
        // is unauthenticated (RFC 9001 §5.7). Such packets (usually reordered ahead of the
        // Handshake packet carrying the Finished) are kept, bounded, and processed once the
        // handshake completes, so their data is neither lost nor left unacknowledged.
        let early_1rtt =
            kind == PacketKind::Short && self.side.is_server() && !self.session.is_complete();
        if early_1rtt {
            if self.early_buffer.len() < MAX_EARLY_BUFFER {
                self.early_buffer.push((partial, packet, self.rx_ecn));
                return Ok(true);
            }
            return Ok(false);
        }
        if kind == PacketKind::ZeroRtt
            && self.side.is_server()
            && self.zero_rtt.is_none()
            && self.spaces[SpaceId::Handshake.index()].rx.is_none()
        {
            // The rest of the ClientHello may still be on its way: keep the packet briefly.
            if self.early_buffer.len() < MAX_EARLY_BUFFER {
                self.early_buffer.push((partial, packet, self.rx_ecn));
                return Ok(true);
            }
            return Ok(false);
        }
        if self.spaces[space.index()].discarded {
            return Ok(false);
        }
        let largest = self.spaces[space.index()]
            .largest_received
            .map(|(pn, _)| pn);
        // Remove header protection with the space's (or 0-RTT/1-RTT) header key.
        let unprotected = {
            let hp = match kind {
                PacketKind::Initial | PacketKind::Handshake => {
                    self.spaces[space.index()].rx.as_ref().map(|k| &*k.header)
                }
                PacketKind::ZeroRtt if self.side.is_server() => {
                    self.zero_rtt.as_ref().map(|(_, h)| &**h)
                }
                PacketKind::Short => self.one_rtt.as_ref().map(|k| &*k.header_rx),
                _ => None,
            };
            let Some(hp) = hp else {
                return Ok(false);
            };
            match packet::unprotect_header(&mut packet, &partial, hp, largest) {
                Ok(u) => u,
                Err(_) => return Ok(false),
            }
        };
        // Anti-replay, cheap half: a number already processed or older than the window is
        // dropped before spending an AEAD operation on it.
        if self.spaces[space.index()].is_duplicate(unprotected.pn) {
            self.stats.packets_replayed += 1;
            return Ok(false);
        }
        let mut choice = RxChoice::Current;
        let opened = match kind {
            PacketKind::Initial | PacketKind::Handshake => match &self.spaces[space.index()].rx {
                Some(keys) => packet::open(&mut packet, &unprotected, &*keys.packet),
                None => return Ok(false),
            },
            PacketKind::ZeroRtt => match &self.zero_rtt {
                Some((key, _)) => packet::open(&mut packet, &unprotected, &**key),
                None => return Ok(false),
            },
            _ => match &self.one_rtt {
                Some(keys) => {
                    choice = keys.choose_rx(unprotected.key_phase, unprotected.pn);
                    match keys.rx_key(&choice) {
                        Some(key) => packet::open(&mut packet, &unprotected, key),
                        None => return Ok(false),
                    }
                }
                None => return Ok(false),
            },
        };
        let range = match opened {
            Ok(r) => r,
            Err(ProtectError::ReservedBitsSet) => {
                return Err(TransportError::protocol("reserved header bits set"));
            }
            Err(_) => {
                self.decrypt_failures += 1;
                let limit = self
                    .one_rtt
                    .as_ref()
                    .map_or(u64::MAX, |k| k.suite().integrity_limit());
                if self.decrypt_failures >= limit {
                    return Err(TransportError::new(
                        TransportErrorCode::AEAD_LIMIT_REACHED,
                        "too many packets failed authentication",
                    ));
                }
                return Ok(false);
            }
        };
        let pn = unprotected.pn;
        // Anti-replay, authoritative half: only an authenticated packet enters the window (so a
        // forged packet cannot burn a number), and it does so before any frame is processed.
        if !self.spaces[space.index()].accept_packet_number(pn) {
            self.stats.packets_replayed += 1;
            return Ok(false);
        }
        self.stats.packets_received += 1;
        self.rx_packet_generation = self.one_rtt.as_ref().map_or(0, |k| match choice {
            RxChoice::Previous => k.rx_generation().saturating_sub(1),
            RxChoice::Current => k.rx_generation(),
            RxChoice::Next => k.rx_generation() + 1,
        });
        if kind == PacketKind::Short {
            let discard_at = now + self.pto() * 3;
            if let Some(keys) = &mut self.one_rtt {
                let tx_before = keys.tx_generation();
                if keys.on_rx_success(&choice, pn, discard_at) {
                    self.timers.set(Timer::KeyDiscard, discard_at);
                    let generation = keys.tx_generation();
                    if generation != tx_before {
                        // The peer started this update; we answered by updating ours.
                        self.stats.key_updates += 1;
                        self.events.push_back(Event::KeyUpdated { generation });
                    }
                }
            }
        }
        if let Header::Long { scid, .. } = &partial.header {
            if self.side.is_client() && !self.remote_cid_from_peer && kind == PacketKind::Initial {
                // The server picked its own ID: use it from now on.
                self.remote_cid = *scid;
                self.peer_cids.set_initial(*scid);
                self.remote_cid_from_peer = true;
            }
        }
        if self.side.is_server() && kind == PacketKind::Handshake && !self.address_validated {
            // Only the client that received our Initial can send this: its address is proven.
            self.address_validated = true;
            self.discard_space(SpaceId::Initial, now);
        }
        if kind == PacketKind::Short && self.side.is_server() && self.zero_rtt.is_some() {
            // The client has 1-RTT keys: no further 0-RTT packets are needed.
            self.zero_rtt = None;
        }
        if remote != self.remote {
            self.on_peer_address_change(now, remote, pn, largest, packet.len());
        }
        self.reset_idle_timer(now);
        self.idle_restart_on_send = true;
        let payload = packet.freeze().slice(range);
        if kind == PacketKind::Short {
            self.rx_pn = pn;
            self.fec_store_received(pn, &payload);
        }
        let ack_eliciting = self.process_frames(now, space, kind, &payload)?;
        if matches!(self.state, State::Draining | State::Drained) {
            return Ok(true);
        }
        let s = &mut self.spaces[space.index()];
        if s.discarded {
            return Ok(true);
        }
        // RFC 9000 §13.2.1: acknowledge at once a packet that arrives out of order (below the
        // largest, or past a gap): the peer's loss detection is waiting for that news. So is a
        // packet that ends a stream or completes its data (a retransmission filling its last
        // gap): the sender has no later packet on that stream whose ACK would cover it, and its
        // application waits for the whole stream to be acknowledged.
        let out_of_order = s.largest_received.is_some_and(|(l, _)| pn != l + 1);
        let ends_stream = self.streams.take_stream_end();
        s.on_packet_received(pn, ack_eliciting, now);
        if s.count_ecn(self.rx_ecn) {
            // RFC 9000 §13.2.1: a CE mark is acknowledged at once.
            s.ack_now = true;
        }
        if ack_eliciting {
            let decimate = space == SpaceId::Data && s.eliciting_received > ACK_DECIMATION_AFTER;
            let threshold = if decimate { ACK_DECIMATION_EVERY } else { 2 };
            if space != SpaceId::Data
                || out_of_order
                || ends_stream
                || s.unacked_eliciting >= threshold
            {
                s.ack_now = true;
            } else if self.timers.get(Timer::Ack).is_none() {
                let mut delay = self.transport.max_ack_delay;
                if decimate {
                    // A quarter of the round trip keeps the sender's clock ticking on short
                    // paths; never longer than the delay announced to the peer.
                    delay = delay.min(self.recovery.rtt().smoothed() / 4);
                }
                self.timers.set(Timer::Ack, now + delay);
            }
        }
        if !self.fec_recovered.is_empty() {
            self.process_fec_recovered(now)?;
        }
        Ok(true)
    }

    /// A packet from a new address. Only the server follows the client (NAT rebinding,
    /// migration), only after the handshake is confirmed, and only for the newest packet; the
    /// new path is unvalidated, so the 3× amplification limit applies again until the client
    /// answers a PATH_CHALLENGE.
    fn on_peer_address_change(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        pn: u64,
        largest: Option<u64>,
        len: usize,
    ) {
        let newest = largest.is_none_or(|l| pn > l);
        if self.side.is_client() || !self.handshake_confirmed || !newest {
            return;
        }
        tracing::debug!(old = %self.remote, new = %remote, "peer address changed: validating the new path");
        if self.address_validated {
            self.previous_remote = Some(self.remote);
        }
        self.remote = remote;
        self.address_validated = false;
        // RFC 9000 §14.3 / RFC 8899 §5.2: a new path starts over at the base size.
        self.mtud.reset();
        // The new path may treat ECN bits differently: test it again.
        self.ecn.on_new_path();
        self.set_mtu(crate::config::MIN_UDP_PAYLOAD);
        self.amplification_received = len as u64;
        self.amplification_sent = 0;
        self.path_challenge = Some(self.rng.array());
        self.path_challenge_pending = true;
        // RFC 9000 §8.2.4: abandon validation after three times the larger PTO.
        let deadline = now + self.pto() * 3;
        self.timers.set(Timer::PathValidation, deadline);
    }

    /// Client: a Retry (RFC 9000 §17.2.5.2). Accepted once, only before anything from the server
    /// was processed, and only when its integrity tag verifies for our original destination ID
    /// and it carries a token; then the client starts over: the Retry's source ID becomes the
    /// destination ID and keys new Initial keys, the token goes into every later Initial, and
    /// everything sent so far in Initial and 0-RTT packets is taken back and sent again
    /// (packet numbers continue). Anything else is dropped without effect.
    fn on_retry(&mut self, now: Instant, partial: &PartialDecode, packet: &[u8]) {
        let Header::Long { scid, token, .. } = &partial.header else {
            return;
        };
        if self.side.is_server()
            || self.state != State::Handshake
            || self.retry_scid.is_some()
            || self.remote_cid_from_peer
            || self.stats.packets_received > 0
            || *scid == self.original_dcid
        {
            return;
        }
        let Some(token) = packet::retry::verify_retry(&self.original_dcid, packet, token.clone())
        else {
            tracing::debug!("dropping a Retry whose integrity tag does not verify");
            return;
        };
        tracing::debug!(retry_scid = %scid, "following a Retry");
        self.initial_token = token.to_vec();
        self.retry_scid = Some(*scid);
        self.remote_cid = *scid;
        self.peer_cids.set_initial(*scid);
        let (client, server) = initial_secrets(crate::VERSION_1, scid);
        let backend = self.transport.crypto_backend;
        let initial = &mut self.spaces[SpaceId::Initial.index()];
        initial.rx = Some(directional_keys(backend, INITIAL_SUITE, &server));
        initial.tx = Some(directional_keys(backend, INITIAL_SUITE, &client));
        // The server kept nothing: whatever we sent must go again, under the new keys.
        for space in [SpaceId::Initial, SpaceId::Data] {
            if space == SpaceId::Data && self.zero_rtt.is_none() {
                continue;
            }
            let mut taken = Vec::new();
            self.recovery.take_all(space, &mut taken);
            for (_, sent) in taken {
                self.requeue(space, sent.frames);
            }
        }
        self.spaces[SpaceId::Initial.index()]
            .crypto_out
            .requeue_unacked();
        self.update_loss_timer(now);
    }

    /// Client: a NEW_TOKEN frame. Reported to the application and the endpoint (which keeps it
    /// for the next connection to this server), at most [`super::MAX_NEW_TOKENS`] times.
    fn on_new_token(&mut self, token: &[u8]) {
        if self.new_tokens_received >= super::MAX_NEW_TOKENS
            || token.len() > crate::endpoint::MAX_TOKEN_LEN
        {
            return;
        }
        self.new_tokens_received += 1;
        self.events.push_back(Event::NewToken(token.to_vec()));
        self.endpoint_events
            .push_back(super::EndpointEvent::NewToken {
                server: self.remote,
                token: token.to_vec(),
            });
    }

    fn on_version_negotiation(&mut self, packet: &[u8], versions: core::ops::Range<usize>) {
        if self.side.is_server()
            || self.stats.packets_received > 0
            || self.state != State::Handshake
        {
            return;
        }
        let offered: Vec<u32> = header::versions(packet, versions).collect();
        if offered.contains(&crate::VERSION_1) {
            // A version-negotiation packet listing our own version is forged or confused.
            return;
        }
        tracing::debug!(?offered, "server speaks no common version");
        self.lose(ConnectionError::VersionMismatch);
        self.drain();
    }

    /// Processes a packet's frames; returns whether any was ack-eliciting.
    pub(super) fn process_frames(
        &mut self,
        now: Instant,
        space: SpaceId,
        kind: PacketKind,
        payload: &Bytes,
    ) -> Result<bool, TransportError> {
        let mut ack_eliciting = false;
        self.streams.take_stream_end();
        for frame in frame::iter(payload) {
            let frame = frame.map_err(TransportError::from)?;
            let allowed = match kind {
                PacketKind::Initial | PacketKind::Handshake => frame.allowed_in_handshake(),
                PacketKind::ZeroRtt => frame.allowed_in_0rtt(),
                _ => true,
            };
            if !allowed {
                return Err(TransportError::protocol(format!(
                    "frame type {:#x} not allowed in {kind:?} packets",
                    frame.ty()
                ))
                .with_frame(frame.ty()));
            }
            ack_eliciting |= frame.is_ack_eliciting();
            match frame {
                Frame::Padding { .. } | Frame::Ping => {}
                Frame::Ack(ack) => self.on_ack_frame(now, space, &ack)?,
                Frame::Crypto { offset, data } => {
                    self.spaces[space.index()].crypto_in.insert(offset, data)?;
                    self.drain_crypto(now, space)?;
                }
                Frame::Close(close) => {
                    self.on_close_frame(now, &close);
                    return Ok(ack_eliciting);
                }
                Frame::HandshakeDone => {
                    if self.side.is_server() {
                        return Err(TransportError::protocol("client sent HANDSHAKE_DONE")
                            .with_frame(frame::ty::HANDSHAKE_DONE));
                    }
                    if !self.handshake_confirmed {
                        self.handshake_confirmed = true;
                        self.recovery.set_anti_deadlock(None);
                        self.discard_space(SpaceId::Handshake, now);
                    }
                }
                Frame::SessionTicket { data } => {
                    let mut out = core::mem::take(&mut self.session_out);
                    self.session.handle_ticket(data, now, &mut out)?;
                    self.apply_session_output(out, now);
                }
                Frame::KeyUpdate { generation } => {
                    let current = self.rx_packet_generation;
                    if generation != current {
                        return Err(TransportError::new(
                            TransportErrorCode::KEY_UPDATE_ERROR,
                            format!("KEY_UPDATE announces generation {generation}, packet was under {current}"),
                        ));
                    }
                }
                Frame::Datagram { data } => {
                    if kind == PacketKind::ZeroRtt {
                        self.count_early_data(data.len())?;
                    }
                    self.on_datagram_frame(payload.slice_ref(data))?;
                }
                Frame::PathChallenge(token) => {
                    if self.path_responses.len() < MAX_PATH_RESPONSES {
                        self.path_responses.push_back(token);
                    }
                }
                Frame::NewToken { .. } if self.side.is_server() => {
                    return Err(TransportError::protocol("client sent NEW_TOKEN")
                        .with_frame(frame::ty::NEW_TOKEN));
                }
                Frame::NewToken { token } => {
                    if token.is_empty() {
                        return Err(TransportError::new(
                            TransportErrorCode::FRAME_ENCODING_ERROR,
                            "empty NEW_TOKEN",
                        )
                        .with_frame(frame::ty::NEW_TOKEN));
                    }
                    self.on_new_token(token);
                }
                Frame::PathResponse(token) => {
                    if self.path_challenge == Some(token) {
                        tracing::debug!(remote = %self.remote, "new path validated");
                        self.path_challenge = None;
                        self.path_challenge_pending = false;
                        self.previous_remote = None;
                        self.address_validated = true;
                        self.timers.stop(Timer::PathValidation);
                    }
                }
                Frame::NewConnectionId {
                    sequence,
                    retire_prior_to,
                    id,
                    reset_token,
                } => {
                    if self.remote_cid.is_empty() {
                        return Err(TransportError::protocol(
                            "NEW_CONNECTION_ID from a peer using a zero-length ID",
                        )
                        .with_frame(frame::ty::NEW_CONNECTION_ID));
                    }
                    let switch =
                        self.peer_cids
                            .on_new(sequence, retire_prior_to, id, reset_token)?;
                    if let Some(switch) = switch {
                        tracing::debug!(new = %switch.id, "peer retired our destination ID: switching");
                        self.remote_cid = switch.id;
                        if switch.reset_token.is_some() {
                            self.peer_reset_token = switch.reset_token;
                        }
                    }
                }
                Frame::RetireConnectionId { .. } => {
                    // We issue no connection ID beyond the handshake's, so there is none for
                    // the peer to retire: valid and ignored.
                }
                Frame::FecRepair {
                    block,
                    sources,
                    symbol,
                    data,
                } => self.on_fec_repair_frame(block, sources, symbol, data)?,
                Frame::FecRecovered { count, .. } => self.on_fec_recovered_frame(now, count),
                Frame::Stream { .. }
                | Frame::ResetStream { .. }
                | Frame::StopSending { .. }
                | Frame::MaxData(_)
                | Frame::MaxStreamData { .. }
                | Frame::MaxStreams { .. }
                | Frame::DataBlocked { .. }
                | Frame::StreamDataBlocked { .. }
                | Frame::StreamsBlocked { .. }
                | Frame::StreamSkip { .. } => {
                    if let Frame::Stream { data, .. } = &frame {
                        if kind == PacketKind::ZeroRtt {
                            self.count_early_data(data.len())?;
                        }
                    }
                    self.on_stream_frame(now, &frame, payload, kind == PacketKind::ZeroRtt)?;
                }
            }
        }
        Ok(ack_eliciting)
    }

    fn count_early_data(&mut self, len: usize) -> Result<(), TransportError> {
        self.early_data_received += len as u64;
        if self.early_data_received > self.max_early_data {
            return Err(TransportError::protocol(
                "0-RTT data beyond the ticket's limit",
            ));
        }
        Ok(())
    }

    fn on_datagram_frame(&mut self, data: Bytes) -> Result<(), TransportError> {
        let limit = self.transport.max_datagram_frame_size;
        if limit == 0 || data.len() as u64 > limit {
            return Err(TransportError::protocol(format!(
                "DATAGRAM of {} bytes exceeds our limit of {limit}",
                data.len()
            ))
            .with_frame(frame::ty::DATAGRAM));
        }
        let d = &mut self.datagrams;
        d.incoming_bytes += data.len();
        d.incoming.push_back(data);
        while d.incoming_bytes > self.transport.datagram_receive_buffer {
            match d.incoming.pop_front() {
                Some(old) => {
                    d.incoming_bytes -= old.len();
                    d.dropped_incoming += 1;
                }
                None => break,
            }
        }
        if !matches!(self.events.back(), Some(Event::DatagramReceived)) {
            self.events.push_back(Event::DatagramReceived);
        }
        Ok(())
    }

    /// Feeds every complete handshake message of `space` to the session.
    pub(super) fn drain_crypto(
        &mut self,
        now: Instant,
        space: SpaceId,
    ) -> Result<(), TransportError> {
        loop {
            if self.session.work_pending() {
                // The rest waits until what the session produced is sent: see
                // `Connection::finish_handshake_work`.
                self.timers.set(Timer::HandshakeWork, now);
                return Ok(());
            }
            let contiguous = self.spaces[space.index()].crypto_in.contiguous();
            let Some((msg, n)) = HandshakeMessage::decode(contiguous)? else {
                return Ok(());
            };
            let raw = contiguous.get(..n).unwrap_or_default().to_vec();
            self.spaces[space.index()].crypto_in.consume(n);
            let mut out: SessionOutput = core::mem::take(&mut self.session_out);
            self.session
                .handle(space, msg, &raw, now, &mut self.rng, &mut out)?;
            self.apply_session_output(out, now);
        }
    }

    fn on_ack_frame(
        &mut self,
        now: Instant,
        space: SpaceId,
        ack: &Ack<'_>,
    ) -> Result<(), TransportError> {
        if self.spaces[space.index()].discarded {
            // The packet's earlier frames completed the handshake and discarded this space
            // (e.g. CRYPTO with the Finished, then a piggybacked ACK): nothing left to update.
            return Ok(());
        }
        let exponent = self
            .peer_params
            .as_ref()
            .map_or(3, |p| u32::from(p.ack_delay_exponent.min(20)));
        let delay = Duration::from_micros(
            ack.delay.checked_shl(exponent).unwrap_or(u64::MAX) & ((1 << 62) - 1),
        );
        let mut out = core::mem::take(&mut self.ack_outcome);
        out.clear();
        let largest_before = self.recovery.largest_acked(space);
        let result = self.recovery.on_ack_received(
            space,
            ack.largest,
            delay,
            ack.iter(),
            self.handshake_confirmed,
            now,
            &mut out,
        );
        if let Err(e) = result {
            self.ack_outcome = out;
            return Err(
                TransportError::protocol(format!("invalid ACK: {e:?}")).with_frame(frame::ty::ACK)
            );
        }
        // Application-limited: the window was far from full and we had nothing more to send, so
        // these acknowledgements say little about the path's capacity (RFC 9002 §7.8).
        let app_limited =
            self.recovery.bytes_in_flight() < self.cc.window() / 2 && !self.has_pending_data();
        let mut data_acked = 0u64;
        let mut marked_acked = 0u64;
        let mut largest_acked_sent = None;
        for (space, pn, packet) in out.acked.drain(..) {
            if space == SpaceId::Data && packet.in_flight {
                data_acked += 1;
            }
            marked_acked += u64::from(packet.frames.ecn_marked);
            largest_acked_sent = largest_acked_sent.max(Some(packet.time_sent));
            if space == SpaceId::Data {
                if packet.frames.mtu_probe {
                    if let Some(mtu) = self.mtud.on_probe_acked(now, pn, packet.size) {
                        tracing::debug!(side = ?self.side, mtu, "path-MTU probe acknowledged");
                        self.set_mtu(mtu);
                    }
                } else {
                    self.mtud.on_acked(pn, packet.size);
                }
            }
            if packet.in_flight {
                let size = u64::from(packet.size);
                let delivery = &packet.frames.delivery;
                self.delivery.on_ack(now, packet.time_sent, size, delivery);
                self.cc.on_ack(
                    now,
                    packet.time_sent,
                    u64::from(packet.size),
                    self.recovery.rtt(),
                    app_limited,
                );
            }
            let s = &mut self.spaces[space.index()];
            if let Some((offset, len)) = packet.frames.crypto {
                s.crypto_out.on_acked(offset, len);
            }
            if let Some(largest) = packet.frames.largest_ack {
                s.on_ack_acked(largest);
            }
            self.peer_cids
                .on_retire_acked(packet.frames.retired_cids.len());
            let mut records = packet.frames.streams;
            for record in records.drain(..) {
                self.streams.on_acked(record);
            }
            self.recycle_records(records);
        }
        self.fec_outcome(data_acked, 0, out.spurious_losses);
        self.streams.set_rtt(self.recovery.rtt().smoothed());
        if out.spurious_losses > 0 {
            self.cc.on_spurious_loss();
        }
        if self.side.is_client() && space == SpaceId::Handshake {
            // The server acknowledged a Handshake packet: it has our address validated, so the
            // anti-deadlock probe is no longer needed (RFC 9002 §6.2.2.1).
            self.recovery.set_anti_deadlock(None);
        }
        self.process_lost(&mut out, now);
        let raised_largest = self.recovery.largest_acked(space) > largest_before;
        let ce = self
            .ecn
            .on_ack(space, ack.ecn, marked_acked, raised_largest);
        if ce > 0 {
            // RFC 9002 §7.1: new CE marks are a congestion event, dated by the largest packet
            // this ACK newly acknowledged; BBR also sees them in the rate sample.
            self.stats.ecn_ce_reported = self.stats.ecn_ce_reported.saturating_add(ce);
            let peer_ce = ack.ecn.map_or(0, |c| c.ce);
            self.recovery.on_ecn_ce_count(space, peer_ce, &mut out);
            if let Some(sent) = largest_acked_sent {
                self.congestion_events += 1;
                self.cc.on_congestion_event(now, sent, false, 0);
            }
        }
        // As for the RTT (RFC 9002 §5.3), an Initial ACK's delay is not used.
        let sample_delay = if space == SpaceId::Initial {
            Duration::ZERO
        } else {
            delay
        };
        self.finish_rate_sample(now, &out, sample_delay);
        self.ack_outcome = out;
        Ok(())
    }

    fn on_close_frame(&mut self, now: Instant, close: &Close<'_>) {
        let reason = String::from_utf8_lossy(close.reason).into_owned();
        let error = match close.kind {
            CloseKind::Transport { frame_type } => ConnectionError::ConnectionClosed {
                code: TransportErrorCode(close.code),
                frame_type: (frame_type != 0).then_some(frame_type),
                reason,
            },
            CloseKind::Application => ConnectionError::ApplicationClosed {
                code: close.code,
                reason,
            },
        };
        tracing::debug!(side = ?self.side, %error, "peer closed");
        self.lose(error);
        self.state = State::Draining;
        self.close_pending = false;
        self.timers.stop_all();
        self.timers.set(Timer::Close, now + self.pto() * 3);
    }
}
