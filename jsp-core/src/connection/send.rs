//! Sending: assembling packets into the caller's buffer.
//!
//! One call to [`Connection::poll_transmit`] fills one datagram, coalescing a packet per space
//! that has something to send (Initial, then Handshake, then 0-RTT/1-RTT). Frames are chosen in
//! a fixed order: ACK, CLOSE, PING, CRYPTO, then the application space's control frames,
//! session tickets, stream data and datagrams. What each packet carried is recorded for loss
//! recovery, so a loss requeues exactly those frames (never whole packets).

use super::timers::Timer;
use super::{Connection, SentFrames, State, Transmit};
use crate::coding::Writer;
use crate::config::MIN_UDP_PAYLOAD;
use crate::crypto::{HeaderKey, PacketKey, TAG_LEN};
use crate::frame::{self, Close, CloseKind, Frame};
use crate::packet::{self, header, number, HeaderSpec, PacketKind, SpaceId};
use crate::recovery::SentPacket;
use crate::time::Instant;

/// A packet needs at least this much room to be worth starting.
const MIN_PACKET_ROOM: usize = 64;

/// How a packet pads the datagram it ends.
#[derive(Clone, Copy)]
struct Padding {
    /// Pad the packet to this length if it is the datagram's last (0: no padding).
    to: usize,
    /// A later space has something to send and may follow in the same datagram.
    later_wants: bool,
    /// Bytes of the datagram before this packet.
    offset: usize,
    /// A path-MTU probe: PING only, padded to `to`.
    probe: bool,
}

impl Connection {
    /// Writes the next datagram to send into `buf` and says where it goes, or `None` when there
    /// is nothing to send now. `buf` should hold at least 1500 bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.streams.set_now(now);
        match self.state {
            State::Drained | State::Draining => return None,
            State::Closing if !self.close_pending => return None,
            _ => {}
        }
        let mut max = usize::from(self.mtu).min(buf.len());
        if !self.address_validated {
            // Anti-amplification: at most three times what the unvalidated peer sent us.
            let budget = self
                .amplification_received
                .saturating_mul(3)
                .saturating_sub(self.amplification_sent);
            max = max.min(usize::try_from(budget).unwrap_or(usize::MAX));
        }
        // Path-MTU probes go unmarked: a path that drops marked datagrams must not look narrow.
        self.tx_ecn = None;
        if let Some(t) = self.poll_mtu_probe(now, buf) {
            return Some(t);
        }
        self.tx_ecn = self.ecn.codepoint();
        if self.state == State::Closing && self.close_pending && self.close_with_finished {
            // Each repeat of the CLOSE carries the Finished again: the first may have been lost.
            let handshake = &mut self.spaces[SpaceId::Handshake.index()];
            if !handshake.discarded {
                handshake.crypto_out.requeue_unacked();
            }
        }
        if self.state == State::Established {
            self.fec_poll_close(now);
        }
        let data = &self.spaces[SpaceId::Data.index()];
        if self.mtu > MIN_UDP_PAYLOAD && data.ping_pending > 0 {
            // PTO and keep-alive probes stay at the base size, so that they get through a path
            // whose MTU shrank and let black-hole detection see small packets arrive.
            max = max.min(usize::from(MIN_UDP_PAYLOAD));
        }
        let cwnd_ok = self.recovery.bytes_in_flight() + u64::from(self.mtu) <= self.cc.window();
        // Data waits for the pacer too; ACKs, CLOSE, probes and handshake data do not.
        let cwnd_open = cwnd_ok && self.pacer_allows(now);
        let mut len = 0usize;
        let mut has_initial = false;
        for space in SpaceId::ALL {
            if !self.wants_to_send(space, cwnd_open) {
                continue;
            }
            if max.saturating_sub(len) < MIN_PACKET_ROOM {
                break;
            }
            has_initial |= space == SpaceId::Initial;
            let later_wants = SpaceId::ALL
                .iter()
                .filter(|s| **s > space)
                .any(|s| self.wants_to_send(*s, cwnd_open));
            // Datagrams carrying Initial packets are padded to 1200 bytes so that a path that
            // cannot carry full-size packets fails during the handshake, not later. The last
            // packet of the datagram carries the padding.
            // Datagrams ending in an application-space packet follow the padding policy
            // (against size fingerprinting): the whole datagram is padded to its target size.
            let to = if has_initial {
                usize::from(MIN_UDP_PAYLOAD).min(max).saturating_sub(len)
            } else if space == SpaceId::Data {
                // `len` is what earlier packets of this datagram took; the target is for the
                // whole datagram, so it is computed when this packet's size is known.
                usize::MAX
            } else {
                0
            };
            let pad = Padding {
                to,
                later_wants,
                offset: len,
                probe: false,
            };
            let out = buf.get_mut(len..max)?;
            if let Some(n) = self.write_packet(now, space, out, pad, cwnd_open) {
                len += n;
            }
        }
        if has_initial && len > 0 && len < usize::from(MIN_UDP_PAYLOAD).min(max) {
            // A later packet we expected did not materialize: fill with zeros, which the
            // receiver discards as an unparsable remainder after the long-header packets.
            let target = usize::from(MIN_UDP_PAYLOAD).min(max);
            buf.get_mut(len..target)?.fill(0);
            len = target;
        }
        if len == 0 {
            self.check_app_limited(cwnd_ok);
            return None;
        }
        if self.state == State::Closing {
            self.close_pending = false;
        }
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += len as u64;
        if !self.address_validated {
            self.amplification_sent += len as u64;
        }
        self.update_loss_timer(now);
        if self.tx_ecn.is_some() {
            self.ecn.on_marked_sent();
        }
        Some(Transmit {
            destination: self.remote,
            size: len,
            segment_size: None,
            ecn: self.tx_ecn,
        })
    }

    /// Sends a path-MTU probe if one is due: once the handshake is confirmed on a validated
    /// path, in a datagram of its own, within the congestion window (probes are in flight like
    /// any packet) but not held back by the pacer.
    fn poll_mtu_probe(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if !self.handshake_confirmed
            || !self.address_validated
            || self.state != State::Established
            || self.one_rtt.is_none()
        {
            return None;
        }
        let peer_max = self.peer_params.as_ref()?.max_udp_payload_size;
        self.mtud
            .start(self.transport.max_udp_payload_size, peer_max, self.remote);
        let size = self.mtud.probe_due(now)?;
        let size_usize = usize::from(size);
        if size_usize > buf.len()
            || self.recovery.bytes_in_flight() + u64::from(size) > self.cc.window()
        {
            return None;
        }
        let pn = self.spaces[SpaceId::Data.index()].next_pn;
        let pad = Padding {
            to: size_usize,
            later_wants: false,
            offset: 0,
            probe: true,
        };
        let n = self.write_packet(now, SpaceId::Data, buf.get_mut(..size_usize)?, pad, true)?;
        if n != size_usize {
            return None;
        }
        self.mtud.on_probe_sent(pn);
        tracing::trace!(side = ?self.side, size, "path-MTU probe");
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += n as u64;
        self.update_loss_timer(now);
        Some(Transmit {
            destination: self.remote,
            size: n,
            segment_size: None,
            ecn: None,
        })
    }

    /// Whether `space` has keys and something to send.
    fn wants_to_send(&self, space: SpaceId, cwnd_open: bool) -> bool {
        let s = &self.spaces[space.index()];
        if s.discarded {
            return false;
        }
        let has_keys = match space {
            SpaceId::Data => {
                self.one_rtt.is_some() || (self.side.is_client() && self.zero_rtt.is_some())
            }
            _ => s.tx.is_some(),
        };
        if !has_keys {
            return false;
        }
        if self.state == State::Closing {
            return self.closes_in(space);
        }
        if s.ack_now || (space != SpaceId::Data && s.unacked_eliciting > 0) {
            return true;
        }
        if s.ping_pending > 0 {
            return true;
        }
        // Handshake data is not held back by the congestion window: the window can be full of
        // 1-RTT packets the server will not acknowledge before it has our Finished, and the
        // handshake spaces are bounded anyway (a few kilobytes, and the 3x limit on servers).
        if s.crypto_out.has_pending() {
            return true;
        }
        if !cwnd_open {
            return false;
        }
        if space != SpaceId::Data {
            return false;
        }
        if self.one_rtt.is_none() {
            // 0-RTT: only replay-safe data.
            return self.datagrams.outgoing.iter().any(|(_, safe)| *safe)
                || self.streams_want_to_send(true);
        }
        self.handshake_done_pending
            || !self.tickets_pending.is_empty()
            || self.new_token_pending
            || self.key_update_frame_pending.is_some()
            || !self.path_responses.is_empty()
            || self.path_challenge_pending
            || !self.peer_cids.retire_pending.is_empty()
            || !self.datagrams.outgoing.is_empty()
            || self.fec_has_repairs()
            || self.streams_want_to_send(false)
    }

    /// Whether a CLOSE goes in `space`: only 1-RTT once the handshake is confirmed; before that
    /// in every space we have keys for, because we cannot know which keys the peer has yet.
    fn closes_in(&self, space: SpaceId) -> bool {
        if self.handshake_confirmed {
            return space == SpaceId::Data;
        }
        match space {
            SpaceId::Data => self.one_rtt.is_some(),
            _ => !self.spaces[space.index()].discarded && self.spaces[space.index()].tx.is_some(),
        }
    }

    /// Builds and seals one packet of `space` at the start of `out`; returns its length.
    fn write_packet(
        &mut self,
        now: Instant,
        space: SpaceId,
        out: &mut [u8],
        pad: Padding,
        cwnd_open: bool,
    ) -> Option<usize> {
        let (kind, key_phase) = match space {
            SpaceId::Initial => (PacketKind::Initial, false),
            SpaceId::Handshake => (PacketKind::Handshake, false),
            SpaceId::Data => match &self.one_rtt {
                Some(keys) => (PacketKind::Short, keys.tx_phase()),
                None => (PacketKind::ZeroRtt, false),
            },
        };
        let pn = self.spaces[space.index()].next_pn;
        // At least 2 bytes: a 1-byte packet number is misread once a packet is reordered behind
        // more than 128 later ones, which a fast path with a deep queue does; 1 byte per packet
        // buys a window of 32768.
        let pn_len = number::encoded_len(pn, self.recovery.largest_acked(space)).max(2);
        // A client's Initial packets carry its address-validation token, if it has one.
        let token = if kind == PacketKind::Initial && self.side.is_client() {
            self.initial_token.as_slice()
        } else {
            &[]
        };
        let spec = HeaderSpec {
            kind,
            version: crate::VERSION_1,
            dcid: self.remote_cid,
            scid: self.local_cid,
            token,
            pn,
            pn_len,
            key_phase,
            spin: false,
        };
        let mut w = Writer::new(&mut *out);
        let hdr = header::write(&mut w, &spec).ok()?;
        let header_len = hdr.len();
        // FEC: a packet of repair symbols goes ahead of new data; a protected packet leaves
        // room for its repair symbol's framing.
        let repair_packet = kind == PacketKind::Short
            && cwnd_open
            && !pad.probe
            && self.state != State::Closing
            && self.fec_has_repairs();
        let reserve = if kind == PacketKind::Short && !repair_packet && self.fec_protecting() {
            super::fec_glue::FEC_RESERVE
        } else {
            0
        };
        let frames_end = out.len().checked_sub(TAG_LEN + reserve)?;
        if frames_end <= header_len + 8 {
            return None;
        }
        let mut sent = SentFrames {
            streams: self.take_records(),
            ecn_marked: self.tx_ecn.is_some(),
            ..SentFrames::default()
        };
        let (payload_len, ack_eliciting) = {
            let body = out.get_mut(header_len..frames_end)?;
            let mut w = Writer::new(body);
            let eliciting = if pad.probe {
                sent.mtu_probe = true;
                Frame::Ping.encode(&mut w).is_ok()
            } else if repair_packet {
                let s = &self.spaces[space.index()];
                if s.ack_now || s.unacked_eliciting > 0 {
                    self.write_ack(now, space, &mut w, &mut sent);
                    self.write_fec_recovered(&mut w);
                }
                self.write_fec_repairs(&mut w)
            } else {
                self.write_frames(now, space, kind, &mut w, &mut sent, cwnd_open)
            };
            (w.position(), eliciting)
        };
        if sent.streams.is_empty() {
            // Most packets of a receiver (ACKs) carry no stream record: keep the pooled list.
            let records = std::mem::take(&mut sent.streams);
            self.recycle_records(records);
        }
        if payload_len == 0 {
            return None;
        }
        if !pad.probe && !repair_packet && self.fec_tx.is_some() {
            let cap = frames_end - header_len;
            if let Some(payload) = out.get(header_len..header_len + payload_len) {
                self.fec_on_sent(now, kind, pn, payload, cap);
            }
        }
        // Pad: to the header-protection sample minimum, and to the datagram minimum when this
        // packet ends the datagram (nothing follows, or nothing more would fit).
        let mut total = header_len + payload_len + TAG_LEN;
        let ends_datagram = !pad.later_wants || out.len().saturating_sub(total) < MIN_PACKET_ROOM;
        let pad_to = match (ends_datagram, pad.to) {
            (false, _) => 0,
            (true, usize::MAX) => {
                // Application space: `out` starts `offset` bytes into the datagram and ends at
                // the datagram's maximum.
                let offset = pad.offset;
                self.transport
                    .padding
                    .target(offset + total, offset + out.len())
                    .saturating_sub(offset)
            }
            (true, to) => to,
        };
        let min_total = (header_len + packet::min_payload_len(pn_len) + TAG_LEN).max(pad_to);
        if total < min_total && min_total <= out.len() {
            out.get_mut(header_len + payload_len..min_total - TAG_LEN)?
                .fill(0);
            total = min_total;
        }
        let sealed = {
            let (key, hp): (&dyn PacketKey, &dyn HeaderKey) = match kind {
                PacketKind::Initial | PacketKind::Handshake => {
                    let keys = self.spaces[space.index()].tx.as_ref()?;
                    (&*keys.packet, &*keys.header)
                }
                PacketKind::ZeroRtt => {
                    let (k, h) = self.zero_rtt.as_ref()?;
                    (&**k, &**h)
                }
                _ => {
                    let keys = self.one_rtt.as_ref()?;
                    (keys.tx_key(), &*keys.header_tx)
                }
            };
            packet::seal(out.get_mut(..total)?, &hdr, pn, key, hp)
        };
        if let Err(e) = sealed {
            if let Some(fec) = &mut self.fec_tx {
                fec.unsend(pn);
            }
            tracing::error!(error = %e, "failed to seal a packet");
            return None;
        }
        self.spaces[space.index()].next_pn += 1;
        self.stats.packets_sent += 1;
        if repair_packet {
            self.stats.fec_repair_wire_bytes += total as u64;
        }
        if kind == PacketKind::Short {
            if let Some(keys) = &mut self.one_rtt {
                keys.tx_packets += 1;
            }
        }
        let size = u16::try_from(total).unwrap_or(u16::MAX);
        if ack_eliciting {
            let in_flight = self.recovery.bytes_in_flight();
            self.on_in_flight_sent(now, &mut sent, in_flight, u64::from(size));
            if self.idle_restart_on_send {
                // RFC 9000 §10.1: sending the first ack-eliciting packet after a receipt also
                // restarts the idle timer.
                self.idle_restart_on_send = false;
                self.reset_idle_timer(now);
            }
            self.reset_keep_alive(now);
        }
        self.recovery.on_packet_sent(
            space,
            pn,
            SentPacket {
                time_sent: now,
                size,
                ack_eliciting,
                in_flight: ack_eliciting,
                frames: sent,
            },
            now,
        );
        if ack_eliciting {
            self.cc
                .on_sent(now, u64::from(size), self.recovery.bytes_in_flight());
        }
        if self.side.is_client() && space == SpaceId::Handshake {
            // The client stops using Initial keys once it sends a Handshake packet (RFC 9001 §4.9.1).
            self.discard_space(SpaceId::Initial, now);
        }
        self.maybe_update_keys_for_limit();
        Some(total)
    }

    /// Writes the frames of one packet; returns whether any is ack-eliciting.
    fn write_frames(
        &mut self,
        now: Instant,
        space: SpaceId,
        kind: PacketKind,
        w: &mut Writer<'_>,
        sent: &mut SentFrames,
        cwnd_open: bool,
    ) -> bool {
        // ACK first when one is due; otherwise one is piggybacked at the end of a packet that
        // carries other frames anyway, never sent on its own.
        let s = &self.spaces[space.index()];
        if kind != PacketKind::ZeroRtt && (s.ack_now || s.unacked_eliciting > 0) {
            self.write_ack(now, space, w, sent);
        }
        if self.state == State::Closing {
            if space != SpaceId::Data && self.close_with_finished {
                // A client that completed the handshake and closes before its Finished left:
                // the Finished goes instead of the close (and no Initial packet carries one),
                // so the server completes the handshake and then reads the close from the 1-RTT
                // packet that follows in this datagram, with its code and reason (which the
                // APPLICATION_ERROR stand-in of the handshake spaces would hide).
                return space == SpaceId::Handshake && self.write_crypto(space, w, sent);
            }
            self.write_close(space, w);
            return false;
        }
        let eliciting = self.write_other_frames(space, kind, w, sent, cwnd_open);
        if kind != PacketKind::ZeroRtt
            && w.position() > 0
            && sent.largest_ack.is_none()
            && self.spaces[space.index()].ack_new
        {
            self.write_ack(now, space, w, sent);
        }
        if space == SpaceId::Data && kind == PacketKind::Short && sent.largest_ack.is_some() {
            self.write_fec_recovered(w);
        }
        eliciting
    }

    /// Everything but ACK and CLOSE, in priority order; returns whether any is ack-eliciting.
    fn write_other_frames(
        &mut self,
        space: SpaceId,
        kind: PacketKind,
        w: &mut Writer<'_>,
        sent: &mut SentFrames,
        cwnd_open: bool,
    ) -> bool {
        let mut eliciting = false;
        let s = &mut self.spaces[space.index()];
        if s.ping_pending > 0 && Frame::Ping.encode(w).is_ok() {
            s.ping_pending -= 1;
            eliciting = true;
        }
        if !cwnd_open && !eliciting && space == SpaceId::Data {
            return false;
        }
        eliciting |= self.write_crypto(space, w, sent);
        if space != SpaceId::Data {
            return eliciting;
        }
        let early = kind == PacketKind::ZeroRtt;
        if !early {
            if self.handshake_done_pending && Frame::HandshakeDone.encode(w).is_ok() {
                self.handshake_done_pending = false;
                sent.handshake_done = true;
                eliciting = true;
            }
            if let Some(generation) = self.key_update_frame_pending {
                if (Frame::KeyUpdate { generation }).encode(w).is_ok() {
                    self.key_update_frame_pending = None;
                    sent.key_update = Some(generation);
                    eliciting = true;
                }
            }
            if let (true, Some(token)) = (self.path_challenge_pending, self.path_challenge) {
                if Frame::PathChallenge(token).encode(w).is_ok() {
                    self.path_challenge_pending = false;
                    sent.path_challenge = true;
                    eliciting = true;
                }
            }
            while let Some(sequence) = self.peer_cids.retire_pending.front().copied() {
                if (Frame::RetireConnectionId { sequence }).encode(w).is_err() {
                    break;
                }
                self.peer_cids.retire_pending.pop_front();
                sent.retired_cids.push(sequence);
                eliciting = true;
            }
            while let Some(token) = self.path_responses.front().copied() {
                if Frame::PathResponse(token).encode(w).is_err() {
                    break;
                }
                self.path_responses.pop_front();
                eliciting = true;
            }
            if let (true, Some(token)) = (self.new_token_pending, &self.new_token) {
                if (Frame::NewToken { token }).encode(w).is_ok() {
                    self.new_token_pending = false;
                    sent.new_token = true;
                    eliciting = true;
                }
            }
            while let Some(ticket) = self.tickets_pending.last() {
                if (Frame::SessionTicket { data: ticket }).encode(w).is_err() {
                    break;
                }
                if let Some(t) = self.tickets_pending.pop() {
                    sent.tickets.push(t);
                }
                eliciting = true;
            }
        }
        eliciting |= self.write_stream_frames(w, sent, early);
        // Datagrams: in order; in 0-RTT only those marked replay-safe.
        let mut i = 0;
        while i < self.datagrams.outgoing.len() {
            let Some((data, safe)) = self.datagrams.outgoing.get(i) else {
                break;
            };
            if early && (!safe || self.early_data_sent + data.len() as u64 > self.max_early_data) {
                i += 1;
                continue;
            }
            let peer_limit = self.peer_params.as_ref().map(|p| p.max_datagram_frame_size);
            if peer_limit.is_some_and(|l| data.len() as u64 > l) {
                // Queued before the peer's limit was known, and over it: never sendable.
                if let Some((d, _)) = self.datagrams.outgoing.remove(i) {
                    self.datagrams.outgoing_bytes -= d.len();
                    self.datagrams.dropped_outgoing += 1;
                }
                continue;
            }
            if frame::datagram_header_len(data.len()) + data.len() > w.remaining() {
                break;
            }
            let frame = Frame::Datagram { data };
            if frame.encode(w).is_err() {
                break;
            }
            if let Some((d, _)) = self.datagrams.outgoing.remove(i) {
                self.datagrams.outgoing_bytes -= d.len();
                if early {
                    self.early_data_sent += d.len() as u64;
                }
            }
            eliciting = true;
        }
        eliciting
    }

    /// Writes an ACK of everything received in `space` that the peer may not know we have.
    fn write_ack(
        &mut self,
        now: Instant,
        space: SpaceId,
        w: &mut Writer<'_>,
        sent: &mut SentFrames,
    ) {
        let ack_exponent = u32::from(self.transport.ack_delay_exponent);
        let s = &mut self.spaces[space.index()];
        if s.ack_ranges.is_empty() {
            return;
        }
        let delay = s.largest_received.map_or(0, |(_, at)| {
            (now.saturating_duration_since(at).as_micros() as u64) >> ack_exponent
        });
        let before = w.position();
        let ecn = s.ecn_report();
        let written = frame::encode_ack(
            w,
            &s.ack_ranges,
            delay,
            ecn.as_ref(),
            super::spaces::MAX_ACK_RANGES,
        )
        .is_ok()
            && w.position() > before;
        if written {
            sent.largest_ack = s.ack_ranges.max();
            s.ack_now = false;
            s.ack_new = false;
            s.unacked_eliciting = 0;
            if space == SpaceId::Data {
                self.timers.stop(Timer::Ack);
            }
        }
    }

    /// Writes the next CRYPTO frame of `space`, if any; returns whether it did.
    fn write_crypto(&mut self, space: SpaceId, w: &mut Writer<'_>, sent: &mut SentFrames) -> bool {
        let s = &mut self.spaces[space.index()];
        let Some((offset, data)) = s.crypto_out.next(w.remaining().saturating_sub(16)) else {
            return false;
        };
        let len = data.len();
        if len > 0 && frame::encode_crypto_header(w, offset, len).is_ok() && w.bytes(data).is_ok() {
            s.crypto_out.mark_sent(offset, len);
            sent.crypto = Some((offset, len));
            return true;
        }
        false
    }

    /// Whether a client still has its handshake-completing flight (Finished) unsent, with the
    /// 1-RTT keys to send a close itself.
    pub(super) fn finished_left_behind(&self) -> bool {
        let handshake = &self.spaces[SpaceId::Handshake.index()];
        self.side.is_client()
            && self.one_rtt.is_some()
            && self.session.is_complete()
            && !handshake.discarded
            && handshake.crypto_out.has_pending()
    }

    fn write_close(&mut self, space: SpaceId, w: &mut Writer<'_>) {
        let Some(close) = &self.close else { return };
        // An application close before 1-RTT keys travels as a transport APPLICATION_ERROR
        // without its reason, which Initial and Handshake packets must not reveal.
        let (kind, code, reason): (CloseKind, u64, &[u8]) =
            if close.application && space != SpaceId::Data {
                (
                    CloseKind::Transport { frame_type: 0 },
                    crate::error::TransportErrorCode::APPLICATION_ERROR.0,
                    &[],
                )
            } else if close.application {
                (CloseKind::Application, close.code, &close.reason)
            } else {
                (
                    CloseKind::Transport {
                        frame_type: close.frame_type,
                    },
                    close.code,
                    &close.reason,
                )
            };
        let room = w.remaining().saturating_sub(24);
        let reason = reason.get(..reason.len().min(room)).unwrap_or_default();
        let _ = Frame::Close(Close { kind, code, reason }).encode(w);
    }

    /// Starts a key update before the suite's confidentiality limit is reached.
    fn maybe_update_keys_for_limit(&mut self) {
        let Some(keys) = &self.one_rtt else { return };
        let limit = keys.suite().confidentiality_limit();
        if keys.tx_packets >= limit.saturating_sub(limit / 16) && keys.can_initiate_update() {
            self.initiate_key_update();
        }
    }
}
