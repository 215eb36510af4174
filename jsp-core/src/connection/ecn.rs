//! Explicit Congestion Notification, the sending side (RFC 9000 §13.4, PROTOCOL §12.19).
//!
//! Owns whether this connection marks its datagrams ECT(0) and the ECN counts the peer last
//! reported for each packet-number space. A path is *tested* first: the first
//! [`TESTING_PACKETS`] datagrams are marked, and marking goes on only once an ACK that newly
//! acknowledges marked packets carries counts that account for them; counts missing, going
//! down, or short of the marked packets acknowledged (a path or peer that bleaches or
//! miscounts the bits), or every tested packet lost (a path that drops marked datagrams), end
//! marking for the path. Once validated, an increase of the peer's CE count is a congestion
//! signal.
//!
//! Invariants: nothing is marked after validation failed or with ECN off; counts are only
//! taken from ACKs that raise the largest acknowledged packet (older ACKs may carry older
//! counts, RFC 9000 §13.4.2.1); no sequence of ACK frames can panic (all differences are
//! checked).

use crate::frame::EcnCounts;
use crate::packet::SpaceId;

use super::types::EcnCodepoint;

/// Datagrams marked while a path is tested, before its ACKs say the marks arrive.
pub(super) const TESTING_PACKETS: u32 = 10;

/// Where ECN stands on the current path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EcnState {
    /// Marking the first datagrams of the path and waiting for their ACKs.
    Testing {
        /// Datagrams marked so far.
        marked: u32,
        /// Marked packets declared lost.
        lost: u32,
    },
    /// The peer's ACKs counted our marks: every datagram is marked.
    Capable,
    /// The path or the peer failed validation: nothing is marked on this path.
    Failed,
    /// ECN is turned off ([`crate::config::TransportConfig::ecn`]).
    Off,
}

/// The sending side's ECN state (see the module documentation).
#[derive(Clone, Debug)]
pub(super) struct EcnSender {
    state: EcnState,
    /// The counts the peer last reported, per packet-number space.
    peer: [EcnCounts; 3],
}

impl EcnSender {
    /// A sender that tests the path first, or never marks when `enabled` is false.
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            state: if enabled {
                EcnState::Testing { marked: 0, lost: 0 }
            } else {
                EcnState::Off
            },
            peer: [EcnCounts::default(); 3],
        }
    }

    /// The current state.
    pub(super) fn state(&self) -> EcnState {
        self.state
    }

    /// The codepoint for the next datagram.
    pub(super) fn codepoint(&self) -> Option<EcnCodepoint> {
        match self.state {
            EcnState::Testing { marked, .. } if marked < TESTING_PACKETS => {
                Some(EcnCodepoint::Ect0)
            }
            EcnState::Capable => Some(EcnCodepoint::Ect0),
            _ => None,
        }
    }

    /// A datagram marked with [`Self::codepoint`] was sent.
    pub(super) fn on_marked_sent(&mut self) {
        if let EcnState::Testing { marked, .. } = &mut self.state {
            *marked = marked.saturating_add(1);
        }
    }

    /// `n` marked packets were declared lost: if every packet of the test is lost, the path
    /// is taken to drop marked datagrams.
    pub(super) fn on_marked_lost(&mut self, n: u32) {
        if let EcnState::Testing { marked, lost } = &mut self.state {
            *lost = lost.saturating_add(n);
            if *marked >= TESTING_PACKETS && *lost >= *marked {
                self.state = EcnState::Failed;
            }
        }
    }

    /// Takes the ECN counts of an ACK of `space` (`None`: an ACK without counts) that newly
    /// acknowledged `newly_acked_marked` marked packets; `raised_largest` says whether it raised
    /// the largest acknowledged packet number. Returns by how much the peer's CE count grew, a
    /// congestion signal (0 when it did not, or when validation failed).
    pub(super) fn on_ack(
        &mut self,
        space: SpaceId,
        counts: Option<EcnCounts>,
        newly_acked_marked: u64,
        raised_largest: bool,
    ) -> u64 {
        if matches!(self.state, EcnState::Failed | EcnState::Off) || !raised_largest {
            return 0;
        }
        let prev = self.peer[space.index()];
        let Some(c) = counts else {
            if newly_acked_marked > 0 {
                // Marked packets acknowledged without counts: the marks or the counts are lost.
                self.state = EcnState::Failed;
            }
            return 0;
        };
        let (Some(ect0), Some(ce)) = (c.ect0.checked_sub(prev.ect0), c.ce.checked_sub(prev.ce))
        else {
            self.state = EcnState::Failed;
            return 0;
        };
        if c.ect1 < prev.ect1 || ect0.saturating_add(ce) < newly_acked_marked {
            self.state = EcnState::Failed;
            return 0;
        }
        self.peer[space.index()] = c;
        if newly_acked_marked > 0 && matches!(self.state, EcnState::Testing { .. }) {
            self.state = EcnState::Capable;
        }
        ce
    }

    /// The peer moved to another path: test it again (unless ECN is off).
    pub(super) fn on_new_path(&mut self) {
        if self.state != EcnState::Off {
            self.state = EcnState::Testing { marked: 0, lost: 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ect0: u64, ect1: u64, ce: u64) -> Option<EcnCounts> {
        Some(EcnCounts { ect0, ect1, ce })
    }

    fn tested(e: &mut EcnSender, n: u32) {
        for _ in 0..n {
            assert_eq!(e.codepoint(), Some(EcnCodepoint::Ect0));
            e.on_marked_sent();
        }
    }

    #[test]
    fn a_path_is_tested_with_ten_marks_then_validated_by_counts_that_cover_them() {
        let mut e = EcnSender::new(true);
        tested(&mut e, TESTING_PACKETS);
        assert_eq!(
            e.codepoint(),
            None,
            "no more marks until the test is answered"
        );
        assert_eq!(e.on_ack(SpaceId::Data, counts(4, 0, 0), 4, true), 0);
        assert_eq!(e.state(), EcnState::Capable);
        assert_eq!(e.codepoint(), Some(EcnCodepoint::Ect0));
        // Two CE marks among the next six packets: the increase is reported once.
        assert_eq!(e.on_ack(SpaceId::Data, counts(8, 0, 2), 6, true), 2);
        assert_eq!(e.on_ack(SpaceId::Data, counts(9, 0, 2), 1, true), 0);
        assert_eq!(e.state(), EcnState::Capable);
    }

    #[test]
    fn missing_decreasing_or_short_counts_fail_validation() {
        let mut e = EcnSender::new(true);
        tested(&mut e, 3);
        assert_eq!(e.on_ack(SpaceId::Data, None, 2, true), 0);
        assert_eq!(e.state(), EcnState::Failed);
        assert_eq!(e.codepoint(), None);

        let mut e = EcnSender::new(true);
        tested(&mut e, 3);
        e.on_ack(SpaceId::Data, counts(2, 0, 0), 2, true);
        assert_eq!(e.state(), EcnState::Capable);
        e.on_ack(SpaceId::Data, counts(1, 0, 1), 1, true);
        assert_eq!(e.state(), EcnState::Failed, "ECT(0) count went down");

        let mut e = EcnSender::new(true);
        tested(&mut e, 3);
        e.on_ack(SpaceId::Data, counts(1, 0, 0), 3, true);
        assert_eq!(
            e.state(),
            EcnState::Failed,
            "3 marked packets acknowledged, 1 counted"
        );

        let mut e = EcnSender::new(true);
        tested(&mut e, 3);
        e.on_ack(SpaceId::Data, counts(u64::MAX, 0, 0), 3, true);
        e.on_ack(SpaceId::Data, counts(0, 0, u64::MAX), 0, true);
        assert_eq!(e.state(), EcnState::Failed, "no wrap-around");
    }

    #[test]
    fn older_acks_and_acks_of_unmarked_packets_change_nothing() {
        let mut e = EcnSender::new(true);
        tested(&mut e, 2);
        assert_eq!(e.on_ack(SpaceId::Data, None, 2, false), 0);
        assert_eq!(e.on_ack(SpaceId::Data, None, 0, true), 0);
        assert!(matches!(e.state(), EcnState::Testing { .. }));
        // Counts are per space.
        e.on_ack(SpaceId::Handshake, counts(1, 0, 0), 1, true);
        assert_eq!(e.state(), EcnState::Capable);
        assert_eq!(e.on_ack(SpaceId::Data, counts(1, 0, 1), 2, true), 1);
    }

    #[test]
    fn a_path_that_loses_every_tested_packet_is_not_marked_again_until_it_changes() {
        let mut e = EcnSender::new(true);
        tested(&mut e, TESTING_PACKETS);
        e.on_marked_lost(TESTING_PACKETS - 1);
        assert!(matches!(e.state(), EcnState::Testing { .. }));
        e.on_marked_lost(1);
        assert_eq!(e.state(), EcnState::Failed);
        e.on_new_path();
        assert_eq!(e.codepoint(), Some(EcnCodepoint::Ect0));
        let mut off = EcnSender::new(false);
        assert_eq!(off.codepoint(), None);
        off.on_new_path();
        assert_eq!(off.codepoint(), None);
        assert_eq!(off.on_ack(SpaceId::Data, counts(0, 0, 5), 0, true), 0);
    }
}
