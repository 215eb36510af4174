//! Forward error correction inside a connection: which packets join a block, where repair
//! symbols go, how rebuilt packets are processed and how recovery is signalled back.
//!
//! - Sending: while the loss estimate keeps FEC on, every 1-RTT packet that is not itself a
//!   repair packet or a path-MTU probe joins the open block (its payload is copied, into a
//!   buffer reused across blocks). Protected packets leave [`FEC_RESERVE`] bytes unused so that
//!   their repair symbol fits in one packet. Repair symbols go in packets of their own, ahead of
//!   new data, within the congestion window: they are ack-eliciting and in flight (congestion
//!   control counts them) but never retransmitted.
//! - Receiving: a FEC_REPAIR frame may rebuild packets; each rebuilt packet is processed after
//!   the packet that completed its block, exactly like a received one (same anti-replay window,
//!   same frame rules), and acknowledged like one, so the sender never retransmits it.
//! - Signalling: acknowledging a rebuilt packet hides its loss from the sender, so the receiver
//!   also reports a cumulative count of rebuilt packets in FEC_RECOVERED (with the next few
//!   ACKs). The sender feeds the increase to its congestion controller as a congestion event
//!   and to its loss estimate, so FEC hides losses from retransmission, not from congestion
//!   control.

use bytes::Bytes;

use super::timers::Timer;
use super::{Connection, ConnectionStats, State};
use crate::coding::Writer;
use crate::error::TransportError;
use crate::fec::{FecError, FecReceiver, FecSender};
use crate::frame::{self, Frame};
use crate::handshake::TransportParameters;
use crate::packet::{PacketKind, SpaceId};
use crate::time::Instant;

/// Bytes a protected packet leaves unused: the repair symbol's 2-byte length prefix plus the
/// FEC_REPAIR frame's type and fields (block up to 8, sources 1, symbol ID 2, length 2).
pub(super) const FEC_RESERVE: usize = 16;

/// Packets carrying an ACK that repeat a changed FEC_RECOVERED count.
const RECOVERED_REPEATS: u8 = 3;

impl Connection {
    /// Sets FEC up from both sides' parameters.
    pub(super) fn fec_setup(&mut self, peer: &TransportParameters) {
        let Some(config) = &self.transport.fec else {
            return;
        };
        self.fec_rx = Some(FecReceiver::new(config.max_block));
        if peer.fec_max_block > 0 {
            let peer_max =
                u16::try_from(peer.fec_max_block.min(u64::from(u16::MAX))).unwrap_or(u16::MAX);
            self.fec_tx = Some(FecSender::new(config.clone(), peer_max));
        }
    }

    /// Whether 1-RTT packets are being protected now.
    pub(super) fn fec_protecting(&self) -> bool {
        self.fec_tx.as_ref().is_some_and(FecSender::is_active)
    }

    /// Whether repair symbols wait to be sent.
    pub(super) fn fec_has_repairs(&self) -> bool {
        self.fec_tx.as_ref().is_some_and(FecSender::has_repairs)
    }

    /// When the open block must close, for the timer.
    pub(super) fn fec_close_deadline(&self) -> Option<Instant> {
        if self.state != State::Established {
            return None;
        }
        self.fec_tx
            .as_ref()?
            .close_deadline(self.recovery.rtt().smoothed())
    }

    /// Closes the open block if it is old enough.
    pub(super) fn fec_poll_close(&mut self, now: Instant) {
        let srtt = self.recovery.rtt().smoothed();
        if let Some(fec) = &mut self.fec_tx {
            fec.poll_close(now, srtt);
        }
    }

    /// A packet was written: a protected one joins the open block. `payload` is its frames.
    pub(super) fn fec_on_sent(
        &mut self,
        now: Instant,
        kind: PacketKind,
        pn: u64,
        payload: &[u8],
        cap: usize,
    ) {
        if kind != PacketKind::Short {
            return;
        }
        if let Some(fec) = &mut self.fec_tx {
            fec.on_packet_sent(now, pn, payload, cap);
        }
    }

    /// Writes as many pending repair symbols as fit; returns whether any was written.
    pub(super) fn write_fec_repairs(&mut self, w: &mut Writer<'_>) -> bool {
        let Some(fec) = &mut self.fec_tx else {
            return false;
        };
        let mut wrote = false;
        while let Some(rep) = fec.next_repair() {
            let f = Frame::FecRepair {
                block: rep.block,
                sources: u64::from(rep.sources),
                symbol: u64::from(rep.esi),
                data: &rep.data,
            };
            if f.encode(w).is_err() {
                if !wrote && w.position() == 0 {
                    // Too large for any packet: drop it.
                    fec.pop_repair();
                    continue;
                }
                break;
            }
            let len = rep.data.len() as u64;
            fec.pop_repair();
            self.stats.fec_repair_symbols_sent += 1;
            self.stats.fec_repair_bytes_sent += len;
            wrote = true;
        }
        wrote
    }

    /// After an ACK in a 1-RTT packet: the FEC_RECOVERED count, when it changed lately.
    pub(super) fn write_fec_recovered(&mut self, w: &mut Writer<'_>) {
        if self.fec_recovered_repeat == 0 {
            return;
        }
        let Some(rx) = &self.fec_rx else { return };
        let f = Frame::FecRecovered {
            count: rx.stats().recovered,
            largest: rx.largest_recovered().unwrap_or(0),
        };
        if f.encode(w).is_ok() {
            self.fec_recovered_repeat -= 1;
        }
    }

    /// A received 1-RTT packet `pn`: keep its payload (frames without trailing padding) when
    /// the peer is sending repair symbols.
    pub(super) fn fec_store_received(&mut self, pn: u64, payload: &[u8]) {
        let Some(rx) = &mut self.fec_rx else { return };
        if !rx.wants(pn) {
            return;
        }
        let mut end = 0usize;
        let mut it = frame::iter(payload);
        while let Some(Ok(f)) = it.next() {
            if !matches!(f, Frame::Padding { .. }) {
                end = payload.len() - it.rest().len();
            }
        }
        if let Some(p) = payload.get(..end) {
            rx.store(pn, p);
        }
    }

    /// A FEC_REPAIR frame in the 1-RTT packet being processed.
    pub(super) fn on_fec_repair_frame(
        &mut self,
        block: u64,
        sources: u64,
        symbol: u64,
        data: &[u8],
    ) -> Result<(), TransportError> {
        let Some(rx) = &mut self.fec_rx else {
            return Err(
                TransportError::protocol("FEC_REPAIR, but we did not announce FEC")
                    .with_frame(frame::ty::FEC_REPAIR),
            );
        };
        let space = &self.spaces[SpaceId::Data.index()];
        let result = rx.on_repair(
            crate::fec::RepairIn {
                carrier: self.rx_pn,
                block,
                sources,
                esi: symbol,
                data,
            },
            |pn| space.is_duplicate(pn),
            &mut self.fec_recovered,
        );
        match result {
            Ok(()) | Err(FecError::Stale) => Ok(()),
            Err(e) => {
                Err(TransportError::protocol(e.to_string()).with_frame(frame::ty::FEC_REPAIR))
            }
        }
    }

    /// A FEC_RECOVERED frame: the peer rebuilt `count` of our packets so far.
    pub(super) fn on_fec_recovered_frame(&mut self, now: Instant, count: u64) {
        let Some(delta) = count.checked_sub(self.fec_peer_repaired).filter(|d| *d > 0) else {
            return;
        };
        self.fec_peer_repaired = count;
        let Some(fec) = &mut self.fec_tx else { return };
        fec.on_repaired(delta);
        // The rebuilt packets were acknowledged (the peer has their frames) but lost on the
        // path: a congestion event, dated one round trip back (the packets were acknowledged
        // already, so their send times are gone; they were sent about an RTT before the report).
        let srtt = self.recovery.rtt().smoothed();
        let sent = now - srtt;
        let bytes = delta.saturating_mul(u64::from(self.mtu));
        self.delivery.on_lost(bytes);
        self.congestion_events += 1;
        self.cc.on_congestion_event(now, sent, false, bytes);
    }

    /// Feeds acknowledged, lost and spuriously lost 1-RTT packets to the loss estimate.
    pub(super) fn fec_outcome(&mut self, delivered: u64, lost: u64, spurious: u64) {
        if let Some(fec) = &mut self.fec_tx {
            if spurious > 0 {
                fec.on_spurious(spurious);
            }
            if delivered > 0 || lost > 0 {
                fec.on_outcome(delivered, lost);
            }
        }
    }

    /// Processes the packets FEC rebuilt, as if received now.
    pub(super) fn process_fec_recovered(&mut self, now: Instant) -> Result<(), TransportError> {
        while let Some(rec) = self.fec_recovered.pop() {
            let s = &mut self.spaces[SpaceId::Data.index()];
            if s.discarded || !s.accept_packet_number(rec.pn) {
                continue;
            }
            self.fec_recovered_repeat = RECOVERED_REPEATS;
            let payload = Bytes::from(rec.payload);
            let carrier = self.rx_pn;
            self.rx_pn = rec.pn;
            let result = self.process_frames(now, SpaceId::Data, PacketKind::Short, &payload);
            self.rx_pn = carrier;
            let ack_eliciting = result?;
            if matches!(self.state, State::Draining | State::Drained) {
                return Ok(());
            }
            let s = &mut self.spaces[SpaceId::Data.index()];
            s.on_packet_received(rec.pn, ack_eliciting, now);
            // A rebuilt packet counts with the codepoint of the datagram whose repair symbol
            // rebuilt it: its sender marked it, and ECN validation counts it as acknowledged.
            if s.count_ecn(self.rx_ecn) {
                s.ack_now = true;
            }
            if ack_eliciting {
                // A rebuilt packet fills a gap: acknowledge at once, so the sender learns it
                // before declaring the packet lost.
                s.ack_now = true;
            }
        }
        if self.spaces[SpaceId::Data.index()].ack_now {
            self.timers.stop(Timer::Ack);
        }
        Ok(())
    }

    /// Fills the FEC counters of `s`.
    pub(super) fn fec_stats(&self, s: &mut ConnectionStats) {
        if let Some(tx) = &self.fec_tx {
            let t = tx.stats();
            s.fec_packets_protected = t.packets_protected;
            s.fec_loss_estimate_ppm = (tx.estimator().rate() * 1e6) as u64;
        }
        if let Some(rx) = &self.fec_rx {
            s.fec_packets_recovered = rx.stats().recovered;
            s.fec_stale_blocks = rx.stats().stale_blocks;
        }
        s.fec_packets_repaired_by_peer = self.fec_peer_repaired;
    }
}
