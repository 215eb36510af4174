//! The lifecycle of a packet-number space inside [`Recovery`]: its per-space state, key discard
//! (RFC 9002 A.11), 0-RTT rejection, and the peer's ECN-CE count.
//!
//! Owns [`Space`], the state one space adds to the connection-wide recovery. Invariant: discarding
//! or emptying a space moves every outstanding packet out exactly once, so bytes in flight drop by
//! exactly the bytes that space held.

use super::loss::Recovery;
use super::sent::{LostHistory, SentPacket, SentPackets};
use super::AckOutcome;
use crate::packet::SpaceId;
use crate::time::Instant;

/// Per-space recovery state.
#[derive(Debug)]
pub(super) struct Space<T> {
    pub(super) sent: SentPackets<T>,
    pub(super) largest_acked: Option<u64>,
    /// When the earliest not-yet-lost packet below `largest_acked` crosses the time threshold.
    pub(super) loss_time: Option<Instant>,
    pub(super) time_of_last_ack_eliciting: Option<Instant>,
    pub(super) lost_history: LostHistory,
    pub(super) ecn_ce: u64,
}

impl<T> Space<T> {
    pub(super) fn new() -> Self {
        Self {
            sent: SentPackets::new(),
            largest_acked: None,
            loss_time: None,
            time_of_last_ack_eliciting: None,
            lost_history: LostHistory::new(),
            ecn_ce: 0,
        }
    }
}

impl<T> Recovery<T> {
    /// Records the peer's ECN-CE count from an ACK of `space` (RFC 9002 A.7 `ProcessECN`):
    /// sets `out.ecn_ce_increase` when it grew. The caller then signals a congestion event with
    /// the send time of the largest newly acknowledged packet.
    pub fn on_ecn_ce_count(&mut self, space: SpaceId, ce_count: u64, out: &mut AckOutcome<T>) {
        let sp = self.space_mut(space);
        if ce_count > sp.ecn_ce {
            sp.ecn_ce = ce_count;
            out.ecn_ce_increase = true;
        }
    }

    /// Drops all state of `space` when its keys are discarded (RFC 9002 A.11), appending the
    /// in-flight packets it held to `out`: their bytes leave the flight and their frames are not
    /// retransmitted. Resets the PTO backoff.
    pub fn discard_space(&mut self, space: SpaceId, out: &mut Vec<SentPacket<T>>) {
        let sp = self.space_mut(space);
        sp.sent.drain_outstanding(|_, packet| {
            if packet.in_flight {
                out.push(packet);
            }
        });
        sp.sent.release();
        sp.largest_acked = None;
        sp.loss_time = None;
        sp.time_of_last_ack_eliciting = None;
        sp.lost_history.clear();
        sp.ecn_ce = 0;
        self.pto_count = 0;
    }

    /// Removes every outstanding packet of `space` with its number (for 0-RTT rejection: the
    /// caller requeues their frames for 1-RTT). The space itself carries on: later numbers,
    /// the largest acknowledged and the RTT are kept; acknowledgements of the taken numbers are
    /// ignored.
    pub fn take_all(&mut self, space: SpaceId, out: &mut Vec<(u64, SentPacket<T>)>) {
        let sp = self.space_mut(space);
        sp.sent
            .drain_outstanding(|pn, packet| out.push((pn, packet)));
        sp.loss_time = None;
        sp.time_of_last_ack_eliciting = None;
    }
}
