//! Loss recovery (RFC 9002 §5–§6, Appendix A): RTT estimation, acknowledgement processing, loss
//! detection, the probe timeout, and persistent-congestion detection.
//!
//! Owns, per connection, the record of every sent packet that is neither acknowledged nor lost in
//! each of the three packet-number spaces, the RTT estimate, the PTO backoff and the count of bytes
//! in flight. Invariant: `bytes_in_flight` always equals the sum of the sizes of the outstanding
//! in-flight packets of the three spaces, whatever a peer acknowledges; a peer's ACK can never
//! make this room panic, allocate beyond its bounds, or remove a packet twice.
//!
//! The room decides *what* was acknowledged or lost and *when* to probe; the connection decides
//! what to resend (the `frames` record handed back in [`AckOutcome::lost`]) and feeds the
//! [`crate::congestion`] controller from the same [`AckOutcome`].
//!
//! - [`rtt`]: the RTT estimator;
//! - [`sent`]: the per-space record of sent packets;
//! - [`loss`]: [`Recovery`], the per-connection state over the three spaces;
//! - `space`: per-space state, key discard and 0-RTT rejection;
//! - `timer`: the loss-detection timer and probe timeout.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod loss;
pub mod rtt;
pub mod sent;
mod space;
mod timer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timer_tests;

use crate::packet::SpaceId;
use crate::time::{Duration, Instant};

pub use loss::Recovery;
pub use rtt::{RttEstimator, DEFAULT_INITIAL_RTT, GRANULARITY};
pub use sent::{SentPacket, LOST_HISTORY_LEN};

/// The most ACK ranges one call processes; further ranges (only possible with datagrams far
/// larger than any path MTU) are ignored, which at worst delays their acknowledgement.
pub const MAX_ACK_RANGES: usize = 1024;

/// Recovery parameters, with RFC 9002's recommended values as defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryConfig {
    /// Reordering threshold in packets (`kPacketThreshold`, default 3): a packet is lost once a
    /// packet this many numbers later is acknowledged.
    pub packet_threshold: u64,
    /// Reordering threshold in RTTs (`kTimeThreshold`, default 9/8): a packet is lost once it is
    /// older than this many RTTs and a later packet was acknowledged. Non-finite or non-positive
    /// values are treated as 1.
    pub time_threshold: f32,
    /// RTT assumed before the first sample (default 333 ms).
    pub initial_rtt: Duration,
    /// The peer's `max_ack_delay` transport parameter (default 25 ms).
    pub max_ack_delay: Duration,
    /// Cap on the PTO backoff exponent (default 16, at most 31): the PTO is multiplied by
    /// `2^min(pto_count, max_pto_backoff)`.
    pub max_pto_backoff: u32,
    /// `kPersistentCongestionThreshold` (default 3): how many PTO periods a span of losses must
    /// exceed to be persistent congestion.
    pub persistent_congestion_threshold: u32,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            packet_threshold: 3,
            time_threshold: 9.0 / 8.0,
            initial_rtt: DEFAULT_INITIAL_RTT,
            max_ack_delay: Duration::from_millis(25),
            max_pto_backoff: 16,
            persistent_congestion_threshold: 3,
        }
    }
}

/// What an ACK or a loss-timer expiry changed. Reused across calls (call [`AckOutcome::clear`]
/// first) so that the steady state allocates nothing; calls append to the vectors.
#[derive(Debug)]
pub struct AckOutcome<T> {
    /// Newly acknowledged packets, in ascending packet-number order per call.
    pub acked: Vec<(SpaceId, u64, SentPacket<T>)>,
    /// Packets newly declared lost, in ascending packet-number order per space; their frames must
    /// be retransmitted.
    pub lost: Vec<(SpaceId, u64, SentPacket<T>)>,
    /// The raw RTT sample taken, if any (RFC 9002 §5.1).
    pub rtt_sample: Option<Duration>,
    /// Whether the losses establish persistent congestion (RFC 9002 §7.6).
    pub persistent_congestion: bool,
    /// Send time of the most recently sent in-flight packet among `lost`: the argument for
    /// [`crate::congestion::Controller::on_congestion_event`].
    pub largest_lost_sent: Option<Instant>,
    /// Bytes of the in-flight packets among `lost`.
    pub lost_bytes: u64,
    /// Acknowledgements of packets previously declared lost (see [`RecoveryStats::spurious_losses`]);
    /// the caller may undo its congestion reaction ([`crate::congestion::Controller::on_spurious_loss`]).
    pub spurious_losses: u64,
    /// Whether the peer's ECN-CE count increased ([`Recovery::on_ecn_ce_count`]).
    pub ecn_ce_increase: bool,
}

impl<T> Default for AckOutcome<T> {
    fn default() -> Self {
        Self {
            acked: Vec::new(),
            lost: Vec::new(),
            rtt_sample: None,
            persistent_congestion: false,
            largest_lost_sent: None,
            lost_bytes: 0,
            spurious_losses: 0,
            ecn_ce_increase: false,
        }
    }
}

impl<T> AckOutcome<T> {
    /// Empties the outcome, keeping the vectors' capacity.
    pub fn clear(&mut self) {
        self.acked.clear();
        self.lost.clear();
        self.rtt_sample = None;
        self.persistent_congestion = false;
        self.largest_lost_sent = None;
        self.lost_bytes = 0;
        self.spurious_losses = 0;
        self.ecn_ce_increase = false;
    }

    /// Whether nothing was acknowledged, lost or signalled.
    pub fn is_empty(&self) -> bool {
        self.acked.is_empty()
            && self.lost.is_empty()
            && self.rtt_sample.is_none()
            && self.spurious_losses == 0
            && !self.ecn_ce_increase
    }
}

/// Why an ACK frame was rejected. The connection closes with `PROTOCOL_VIOLATION`; state may have
/// been partly updated (packets before the offending one acknowledged), but every invariant holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// The peer acknowledged packet `pn` in `space`, which was never sent (RFC 9000 §13.1).
    UnsentPacketAcked {
        /// The packet-number space of the ACK.
        space: SpaceId,
        /// The packet number that was never sent.
        pn: u64,
    },
    /// The ranges are empty, inverted, overlapping, not in descending order, or the first does
    /// not end at the frame's largest acknowledged.
    InvalidRanges,
}

impl core::fmt::Display for AckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnsentPacketAcked { space, pn } => {
                write!(
                    f,
                    "peer acknowledged unsent packet {pn} in the {space:?} space"
                )
            }
            Self::InvalidRanges => f.write_str("peer sent malformed ACK ranges"),
        }
    }
}

/// Counters of what recovery has seen over the connection's life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Packets recorded by [`Recovery::on_packet_sent`].
    pub packets_sent: u64,
    /// Packets newly acknowledged.
    pub packets_acked: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Bytes of in-flight packets declared lost.
    pub bytes_lost: u64,
    /// Packets acknowledged after being declared lost (counted within the last
    /// [`LOST_HISTORY_LEN`] losses of each space).
    pub spurious_losses: u64,
    /// Probe timeouts fired.
    pub ptos: u64,
    /// Times persistent congestion was established.
    pub persistent_congestion: u64,
}
