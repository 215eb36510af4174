//! Per packet-number-space state: packet numbers, what to acknowledge, and the CRYPTO stream.
//!
//! Invariants: packet numbers sent in a space strictly increase and are never reused; a received
//! packet number is processed at most once (the [`ReplayWindow`] of each space, RFC 6479 style);
//! handshake bytes are kept until acknowledged so lost CRYPTO frames can be sent again.

use crate::crypto::schedule::DirectionalKeys;
use crate::handshake::CryptoAssembler;
use crate::packet::replay_window::{ReplayVerdict, ReplayWindow};
use crate::range_set::RangeSet;
use crate::time::Instant;

/// Most ACK ranges remembered per space. Older ranges are forgotten (the peer retransmits what
/// they covered if it never learns of them); duplicates are filtered by the replay window, not by
/// these ranges.
pub(crate) const MAX_ACK_RANGES: usize = 64;

/// Outgoing handshake bytes of one space, with what still needs (re)sending.
#[derive(Debug, Default)]
pub(crate) struct CryptoSend {
    /// Stream offset of `data[0]`: bytes below it were all acknowledged and released.
    base: u64,
    /// The bytes queued from `base` on (handshake flights are small and bounded; once every
    /// byte is acknowledged the buffer is released, so an idle connection keeps none).
    data: Vec<u8>,
    /// Offsets not yet sent, or lost and due again.
    pending: RangeSet,
    /// Offsets acknowledged by the peer.
    acked: RangeSet,
}

impl CryptoSend {
    /// The stream offset after the last byte queued.
    fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let start = self.end();
        self.data.extend_from_slice(bytes);
        self.pending.insert(start..self.end());
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next chunk to send: its offset and up to `max` bytes.
    pub(crate) fn next(&self, max: usize) -> Option<(u64, &[u8])> {
        let range = self.pending.iter().next()?;
        let len = ((range.end - range.start) as usize).min(max);
        let start = usize::try_from(range.start.checked_sub(self.base)?).ok()?;
        Some((range.start, self.data.get(start..start + len)?))
    }

    pub(crate) fn mark_sent(&mut self, offset: u64, len: usize) {
        self.pending.remove(offset..offset + len as u64);
    }

    pub(crate) fn on_lost(&mut self, offset: u64, len: usize) {
        let mut range = RangeSet::new();
        range.insert(offset..offset + len as u64);
        range.subtract(&self.acked);
        for r in range.iter() {
            self.pending.insert(r);
        }
    }

    pub(crate) fn on_acked(&mut self, offset: u64, len: usize) {
        self.acked.insert(offset..offset + len as u64);
        let end = self.end();
        if !self.data.is_empty()
            && self.acked.iter().next() == Some(0..end)
            && self.pending.is_empty()
        {
            // Everything queued is acknowledged: release the buffer.
            self.base = end;
            self.data = Vec::new();
        }
    }

    /// Releases everything (the space's keys are gone: nothing can be sent in it any more).
    pub(crate) fn discard(&mut self) {
        *self = Self {
            base: self.end(),
            ..Self::default()
        };
    }

    /// Requeues everything not yet acknowledged (a probe timeout during the handshake).
    pub(crate) fn requeue_unacked(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let mut all = RangeSet::new();
        all.insert(self.base..self.end());
        all.subtract(&self.acked);
        for r in all.iter() {
            self.pending.insert(r);
        }
    }
}

/// One packet-number space.
pub(crate) struct PacketSpace {
    /// Keys for packets we receive (Initial and Handshake spaces; 1-RTT keys live elsewhere).
    pub(crate) rx: Option<DirectionalKeys>,
    /// Keys for packets we send.
    pub(crate) tx: Option<DirectionalKeys>,
    /// The next packet number to send.
    pub(crate) next_pn: u64,
    /// Packet numbers processed: the anti-replay window (duplicates and numbers older than
    /// [`crate::packet::replay_window::REPLAY_WINDOW`] below the largest are refused).
    pub(crate) replay: ReplayWindow,
    /// Packet numbers to acknowledge: received and not yet known to be acknowledged by the peer.
    pub(crate) ack_ranges: RangeSet,
    /// The largest packet number received, and when.
    pub(crate) largest_received: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since we last sent an ACK.
    pub(crate) unacked_eliciting: u32,
    /// Ack-eliciting packets received in this space, ever (ACK decimation starts after
    /// [`super::ACK_DECIMATION_AFTER`]).
    pub(crate) eliciting_received: u64,
    /// An ACK should go out in the next packet of this space.
    pub(crate) ack_now: bool,
    /// Packets arrived since our last ACK: worth piggybacking an ACK on an outgoing packet.
    pub(crate) ack_new: bool,
    /// Incoming CRYPTO stream.
    pub(crate) crypto_in: CryptoAssembler,
    /// Outgoing CRYPTO stream.
    pub(crate) crypto_out: CryptoSend,
    /// Send a PING (an ack-eliciting probe) in the next packet of this space.
    pub(crate) ping_pending: u8,
    /// The space's keys were discarded: nothing more is sent or accepted.
    pub(crate) discarded: bool,
    /// Packets received in this space by the ECN codepoint of their datagram (RFC 9000
    /// §13.4.1), reported in our ACKs once any is non-zero.
    pub(crate) ecn_received: crate::frame::EcnCounts,
}

impl PacketSpace {
    pub(crate) fn new(max_crypto_buffer: usize) -> Self {
        Self {
            rx: None,
            tx: None,
            next_pn: 0,
            replay: ReplayWindow::new(),
            ack_ranges: RangeSet::new(),
            largest_received: None,
            unacked_eliciting: 0,
            eliciting_received: 0,
            ack_now: false,
            ack_new: false,
            crypto_in: CryptoAssembler::new(max_crypto_buffer),
            crypto_out: CryptoSend::default(),
            ping_pending: 0,
            discarded: false,
            ecn_received: crate::frame::EcnCounts::default(),
        }
    }

    /// Counts a processed packet by the ECN codepoint of its datagram; returns whether it was
    /// CE, which is acknowledged at once (RFC 9000 §13.2.1).
    pub(crate) fn count_ecn(&mut self, ecn: Option<super::EcnCodepoint>) -> bool {
        let c = &mut self.ecn_received;
        match ecn {
            Some(super::EcnCodepoint::Ect0) => c.ect0 = c.ect0.saturating_add(1),
            Some(super::EcnCodepoint::Ect1) => c.ect1 = c.ect1.saturating_add(1),
            Some(super::EcnCodepoint::Ce) => {
                c.ce = c.ce.saturating_add(1);
                return true;
            }
            None => {}
        }
        false
    }

    /// The counts our ACKs report, once any packet came marked.
    pub(crate) fn ecn_report(&self) -> Option<crate::frame::EcnCounts> {
        (self.ecn_received != crate::frame::EcnCounts::default()).then_some(self.ecn_received)
    }

    /// Whether `pn` was already processed or lies below the replay window (a cheap test before
    /// decryption; nothing is recorded).
    pub(crate) fn is_duplicate(&self, pn: u64) -> bool {
        self.replay.check(pn) != ReplayVerdict::Fresh
    }

    /// Records an authenticated packet number in the replay window; `false`: a duplicate or too
    /// old, which must not be processed.
    pub(crate) fn accept_packet_number(&mut self, pn: u64) -> bool {
        self.replay.check_and_insert(pn) == ReplayVerdict::Fresh
    }

    /// Records a processed packet (already accepted by [`Self::accept_packet_number`]) for
    /// acknowledgement.
    pub(crate) fn on_packet_received(&mut self, pn: u64, ack_eliciting: bool, now: Instant) {
        self.ack_ranges.insert_one(pn);
        while self.ack_ranges.len() > MAX_ACK_RANGES {
            self.ack_ranges.pop_min();
        }
        if self.largest_received.is_none_or(|(l, _)| pn > l) {
            self.largest_received = Some((pn, now));
        }
        if ack_eliciting {
            self.unacked_eliciting += 1;
            self.eliciting_received += 1;
        }
        self.ack_new = true;
    }

    /// The peer has seen our ACK covering everything up to `largest`: stop repeating those ranges.
    pub(crate) fn on_ack_acked(&mut self, largest: u64) {
        self.ack_ranges.remove(0..largest.saturating_add(1));
    }
}
