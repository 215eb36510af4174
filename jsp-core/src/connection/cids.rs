//! The connection IDs the peer issued us (NEW_CONNECTION_ID), bounded against exhaustion.
//!
//! RFC 9000 §5.1: the peer may give us at most `active_connection_id_limit` (our transport
//! parameter) IDs that are not retired, the handshake's own counting as sequence 0; one more is
//! the CONNECTION_ID_LIMIT_ERROR. `retire_prior_to` makes us retire every ID below it, which we
//! confirm with RETIRE_CONNECTION_ID frames; those we owe and have not seen acknowledged are
//! bounded too ([`MAX_RETIREMENTS_OUTSTANDING`]), so a peer that issues and retires IDs faster
//! than it acknowledges our answers (the "retire-prior-to game") is closed with the same error
//! instead of growing our queue. Memory per connection is thus fixed: at most `limit` active
//! IDs, a bounded queue, and a bounded set of retired sequence ranges.
//!
//! The connection keeps sending to the ID it uses until that ID is retired; then it switches to
//! the lowest active one (and to its stateless-reset token).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::VecDeque;

use crate::cid::ConnectionId;
use crate::error::{TransportError, TransportErrorCode};
use crate::frame;
use crate::range_set::RangeSet;

/// RETIRE_CONNECTION_ID frames we may owe (queued or unacknowledged) at once, per unit of our
/// `active_connection_id_limit`.
pub(crate) const MAX_RETIREMENTS_OUTSTANDING: u64 = 4;
/// Most disjoint ranges of retired sequence numbers remembered (a peer that leaves gaps in its
/// sequence numbers cannot make the set grow further).
const MAX_RETIRED_RANGES: usize = 16;

/// An active ID: its sequence number, the ID, and its stateless-reset token.
type Entry = (u64, ConnectionId, Option<[u8; 16]>);

/// What the peer issued and what we retired.
#[derive(Debug)]
pub(crate) struct PeerCids {
    /// Our `active_connection_id_limit`.
    limit: u64,
    /// Active IDs sorted by sequence number, with their stateless-reset tokens (`None` for
    /// sequence 0, whose token came in the transport parameters). A vector, not a map: it holds
    /// at most `limit` entries (a handful), and a B-tree node would keep 500 bytes with each
    /// connection that only ever has one.
    active: Vec<Entry>,
    /// The largest `retire_prior_to` received.
    retire_prior_to: u64,
    /// Sequence numbers retired (below `retire_prior_to`, or a retirement was queued).
    retired: RangeSet,
    /// The sequence number of the ID we send to.
    current: u64,
    /// RETIRE_CONNECTION_ID frames to send.
    pub(crate) retire_pending: VecDeque<u64>,
    /// Retirements queued or sent and not yet acknowledged.
    outstanding: u64,
}

/// A switch to another destination ID, because the one in use was retired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Switch {
    /// The ID to send to from now on.
    pub(crate) id: ConnectionId,
    /// Its stateless-reset token.
    pub(crate) reset_token: Option<[u8; 16]>,
}

impl PeerCids {
    /// The peer's handshake ID (sequence 0) is active; `limit` is our advertised limit.
    pub(crate) fn new(initial: ConnectionId, limit: u64) -> Self {
        Self {
            limit,
            active: vec![(0, initial, None)],
            retire_prior_to: 0,
            retired: RangeSet::new(),
            current: 0,
            retire_pending: VecDeque::new(),
            outstanding: 0,
        }
    }

    /// The handshake's ID changed (the server picked its own): sequence 0 is that one.
    pub(crate) fn set_initial(&mut self, id: ConnectionId) {
        if let Some(entry) = self.active.iter_mut().find(|e| e.0 == 0) {
            entry.1 = id;
        }
    }

    /// Active IDs (not retired).
    pub(crate) fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Retirements owed (queued or unacknowledged).
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding
    }

    fn limit_error(reason: &str) -> TransportError {
        TransportError::new(TransportErrorCode::CONNECTION_ID_LIMIT_ERROR, reason)
            .with_frame(frame::ty::NEW_CONNECTION_ID)
    }

    fn retire(&mut self, sequence: u64) -> Result<(), TransportError> {
        if !self.retired.insert_one(sequence) {
            return Ok(());
        }
        if self.retired.len() > MAX_RETIRED_RANGES {
            return Err(Self::limit_error("connection IDs retired out of order"));
        }
        if self.outstanding >= MAX_RETIREMENTS_OUTSTANDING * self.limit.max(1) {
            return Err(Self::limit_error(
                "too many connection-ID retirements outstanding",
            ));
        }
        self.outstanding += 1;
        self.retire_pending.push_back(sequence);
        Ok(())
    }

    /// A NEW_CONNECTION_ID frame. `Ok(Some(_))`: the ID in use was retired, switch to this one.
    pub(crate) fn on_new(
        &mut self,
        sequence: u64,
        retire_prior_to: u64,
        id: ConnectionId,
        reset_token: [u8; 16],
    ) -> Result<Option<Switch>, TransportError> {
        if retire_prior_to > sequence {
            return Err(TransportError::new(
                TransportErrorCode::FRAME_ENCODING_ERROR,
                "retire_prior_to above the sequence number",
            )
            .with_frame(frame::ty::NEW_CONNECTION_ID));
        }
        if let Some((_, known, token)) = self.active.iter().find(|e| e.0 == sequence) {
            if *known != id || token.is_some_and(|t| t != reset_token) {
                return Err(TransportError::protocol(
                    "a connection-ID sequence number reused for another ID",
                )
                .with_frame(frame::ty::NEW_CONNECTION_ID));
            }
        } else if self.active.iter().any(|(_, known, _)| *known == id) {
            return Err(
                TransportError::protocol("one connection ID under two sequence numbers")
                    .with_frame(frame::ty::NEW_CONNECTION_ID),
            );
        } else if sequence < self.retire_prior_to || self.retired.contains(sequence) {
            // Already retired (a late or repeated frame): retire it (once), never activate it.
            self.retire(sequence)?;
        } else {
            // Counted before anything is stored, with the frame's own retire_prior_to applied
            // (RFC 9000 §5.1.1): the table never holds more than the limit.
            let floor = retire_prior_to.max(self.retire_prior_to);
            let after = self.active.iter().filter(|e| e.0 >= floor).count() as u64 + 1;
            if after > self.limit {
                return Err(Self::limit_error(
                    "more active connection IDs than active_connection_id_limit",
                ));
            }
            let at = self.active.partition_point(|e| e.0 < sequence);
            self.active.insert(at, (sequence, id, Some(reset_token)));
        }
        if retire_prior_to > self.retire_prior_to {
            self.retire_prior_to = retire_prior_to;
            let below = self.active.partition_point(|e| e.0 < retire_prior_to);
            let old: Vec<u64> = self.active.drain(..below).map(|e| e.0).collect();
            for s in old {
                self.retire(s)?;
            }
        }
        // Checked after retiring: the frame's own retire_prior_to may make room (RFC 9000 §5.1.1).
        if self.active.len() as u64 > self.limit {
            return Err(Self::limit_error(
                "more active connection IDs than active_connection_id_limit",
            ));
        }
        if self.active.iter().any(|e| e.0 == self.current) {
            return Ok(None);
        }
        let Some(&(seq, ref id, ref token)) = self.active.first() else {
            return Err(TransportError::protocol("every connection ID retired"));
        };
        self.current = seq;
        Ok(Some(Switch {
            id: *id,
            reset_token: *token,
        }))
    }

    /// A packet with RETIRE_CONNECTION_ID frames for these sequences was acknowledged.
    pub(crate) fn on_retire_acked(&mut self, count: usize) {
        self.outstanding = self.outstanding.saturating_sub(count as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> ConnectionId {
        ConnectionId::new(&[n; 8]).unwrap()
    }

    #[test]
    fn ids_beyond_the_limit_are_a_connection_id_limit_error() {
        let mut p = PeerCids::new(cid(0), 4);
        for s in 1..4 {
            assert_eq!(p.on_new(s, 0, cid(s as u8), [s as u8; 16]), Ok(None));
        }
        // The same frame again is harmless.
        assert_eq!(p.on_new(3, 0, cid(3), [3; 16]), Ok(None));
        let e = p.on_new(4, 0, cid(4), [4; 16]).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::CONNECTION_ID_LIMIT_ERROR);
        assert_eq!(p.active_count(), 4);
    }

    #[test]
    fn retire_prior_to_makes_room_and_switches_the_id_in_use() {
        let mut p = PeerCids::new(cid(0), 2);
        assert_eq!(p.on_new(1, 0, cid(1), [1; 16]), Ok(None));
        let switch = p.on_new(2, 2, cid(2), [2; 16]).unwrap().unwrap();
        assert_eq!(switch.id, cid(2));
        assert_eq!(switch.reset_token, Some([2; 16]));
        assert_eq!(p.retire_pending, [0, 1]);
        assert_eq!(p.active_count(), 1);
        // A late copy of a retired ID is retired, not activated, and only once.
        assert_eq!(p.on_new(1, 0, cid(1), [1; 16]), Ok(None));
        assert_eq!(p.retire_pending, [0, 1]);
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        let mut p = PeerCids::new(cid(0), 4);
        assert_eq!(
            p.on_new(1, 2, cid(1), [1; 16]).unwrap_err().code,
            TransportErrorCode::FRAME_ENCODING_ERROR
        );
        p.on_new(1, 0, cid(1), [1; 16]).unwrap();
        assert_eq!(
            p.on_new(1, 0, cid(9), [1; 16]).unwrap_err().code,
            TransportErrorCode::PROTOCOL_VIOLATION
        );
        assert_eq!(
            p.on_new(2, 0, cid(1), [2; 16]).unwrap_err().code,
            TransportErrorCode::PROTOCOL_VIOLATION
        );
    }

    #[test]
    fn a_retire_prior_to_game_is_bounded() {
        // The peer issues a new ID retiring all previous ones, again and again, never
        // acknowledging our RETIRE_CONNECTION_ID frames.
        let mut p = PeerCids::new(cid(0), 2);
        let mut result = Ok(None);
        let mut rounds = 0u64;
        for s in 1..1000u64 {
            result = p.on_new(s, s, cid((s % 250) as u8 + 1), [0; 16]);
            rounds = s;
            if result.is_err() {
                break;
            }
            assert!(p.retire_pending.len() as u64 <= MAX_RETIREMENTS_OUTSTANDING * 2);
        }
        assert_eq!(
            result.unwrap_err().code,
            TransportErrorCode::CONNECTION_ID_LIMIT_ERROR
        );
        assert!(rounds <= MAX_RETIREMENTS_OUTSTANDING * 2 + 1, "{rounds}");
        // Acknowledged retirements make room again: the same game with acks goes on.
        let mut p = PeerCids::new(cid(0), 2);
        for s in 1..1000u64 {
            p.on_new(s, s, cid((s % 250) as u8 + 1), [0; 16]).unwrap();
            let n = p.retire_pending.len();
            p.retire_pending.clear();
            p.on_retire_acked(n);
        }
    }
}
