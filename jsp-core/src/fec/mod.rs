//! Forward error correction: RaptorQ (RFC 6330, the `raptorq` crate) repair symbols over blocks
//! of outgoing 1-RTT packets.
//!
//! # The scheme
//!
//! - **What is protected: whole packets, not stream bytes.** A source block is a run of
//!   consecutive 1-RTT packet numbers `[first, first + sources)`; source symbol `i` is the
//!   plaintext payload of packet `first + i` (its frames, without trailing padding), prefixed by
//!   its length as a 16-bit big-endian integer and zero-filled to the block's symbol size (the
//!   largest payload of the block plus 2). Protecting packets rather than stream data means one
//!   mechanism covers every frame type (STREAM of every delivery mode, STREAM_SKIP, DATAGRAM,
//!   flow control), a recovered packet is processed by the ordinary frame path, and recovery is
//!   signalled in the currency loss recovery already speaks: packet numbers.
//! - **Repair symbols travel in FEC_REPAIR frames inside ordinary protected packets**, so they
//!   pass AEAD like everything else: a third party cannot inject one, and what a receiver
//!   recovers is exactly the frames of packets the authenticated peer sent.
//! - **Adaptive.** The sender estimates the loss rate over a recent window of packets
//!   ([`LossEstimator`]); FEC is off until it reaches [`FecConfig::enable_loss`] and off again
//!   below half of that. When on, the block size is chosen so that one repair symbol per block
//!   costs about [`FecConfig::overhead_factor`] times the loss rate, and blocks close early when
//!   their oldest packet gets older than a few round trips, so repairs stay timely on sparse
//!   traffic. When off, sending does nothing but one branch per packet: no copies, no
//!   allocation, no repair bytes.
//! - **Bounded receiver.** The receiver keeps copies of the last [`RING_SLOTS`] packet payloads
//!   (only after it has seen a repair symbol recently) and at most [`MAX_PENDING_BLOCKS`] blocks
//!   of repair symbols, [`MAX_REPAIR_BYTES`] in total; hostile repair frames get a typed
//!   [`FecError`].
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod estimator;
mod receiver;
mod sender;
#[cfg(test)]
mod tests;

pub use estimator::LossEstimator;
pub use receiver::{FecReceiver, FecReceiverStats, Recovered, RepairIn};
pub use sender::{FecSender, FecSenderStats, RepairSymbol};

use core::fmt;
use core::time::Duration;

/// The most source packets a block may have (our decoder's limit; the peer may announce less).
pub const MAX_BLOCK_SOURCES: u16 = 64;

/// The largest repair symbol accepted: a 16 383-byte payload (the largest
/// `max_udp_payload_size`) plus its 2-byte length.
pub const MAX_SYMBOL_SIZE: usize = 16_385;

/// Repair symbols of a block have encoding symbol IDs `sources..sources + MAX_REPAIR_ESI`.
pub const MAX_REPAIR_ESI: u64 = 1 << 12;

/// How many recent packet payloads a receiver keeps for decoding.
pub const RING_SLOTS: usize = 256;

/// How many blocks a receiver holds repair symbols for at once.
pub const MAX_PENDING_BLOCKS: usize = 8;

/// The most repair-symbol bytes a receiver holds at once.
pub const MAX_REPAIR_BYTES: usize = 256 * 1024;

/// Settings of forward error correction (see [`crate::config::TransportConfig::fec`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FecConfig {
    /// FEC turns on when the estimated loss rate reaches this fraction, and off again below
    /// half of it. Default 0.005 (0.5 %).
    pub enable_loss: f64,
    /// Repair bytes aimed at, as a multiple of the estimated loss rate. Default 1.35 (repair
    /// packets also carry a header and the symbol a length: measured overhead stays below 2×).
    pub overhead_factor: f64,
    /// The most source packets per block this endpoint sends and decodes, at most
    /// [`MAX_BLOCK_SOURCES`]. Default 64.
    pub max_block: u16,
    /// A block closes when its oldest packet is this many smoothed RTTs old, even if not full
    /// (it gets repair symbols only if it has enough packets for the overhead budget). Default 6.
    pub max_block_rtts: u32,
    /// Never turn off (for tests and benchmarks that want FEC from the first packet, sized as
    /// for [`Self::enable_loss`] until losses are measured). Default false.
    pub always_on: bool,
    /// The latency profile ([`Self::latency`]): while FEC is on, a block closes at the latest
    /// this long after its first packet and then always gets at least one repair symbol, so a
    /// lost packet is rebuilt about this long (plus the one-way delay) after it was sent,
    /// well before loss detection could resend it (about 9/8 of a round trip after the next
    /// packet is acknowledged), even on sparse, application-limited traffic where a block
    /// never fills. The overhead budget then no longer caps the repair bytes: expect one
    /// repair packet per `max_block_delay` of traffic (on a link losing nothing measurable
    /// FEC stays off and costs nothing). `None` (default): blocks close when full or after
    /// [`Self::max_block_rtts`].
    pub max_block_delay: Option<Duration>,
}

impl Default for FecConfig {
    fn default() -> Self {
        Self {
            enable_loss: 0.005,
            overhead_factor: 1.35,
            max_block: MAX_BLOCK_SOURCES,
            max_block_rtts: 6,
            always_on: false,
            max_block_delay: None,
        }
    }
}

impl FecConfig {
    /// The latency profile, for latency-sensitive, application-limited traffic (requests
    /// and responses, small messages at a modest rate): FEC turns on from 0.2 % measured loss,
    /// and a block closes at most 30 ms after its first packet with at least one repair
    /// symbol, so a lone lost request or response is rebuilt from the next repair packet
    /// instead of waiting about a round trip and a half for loss detection. Costs about one
    /// repair packet per 30 ms of traffic while losses are measured; nothing on a clean link.
    pub fn latency() -> Self {
        Self {
            enable_loss: 0.002,
            max_block_delay: Some(Duration::from_millis(30)),
            ..Self::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(self.enable_loss > 0.0 && self.enable_loss < 0.5) {
            return Err("enable_loss must be in (0, 0.5)");
        }
        if !(self.overhead_factor >= 1.0 && self.overhead_factor <= 4.0) {
            return Err("overhead_factor must be in [1, 4]");
        }
        if !(2..=MAX_BLOCK_SOURCES).contains(&self.max_block) {
            return Err("max_block must be in 2..=64");
        }
        if self.max_block_rtts == 0 {
            return Err("max_block_rtts must be positive");
        }
        if self
            .max_block_delay
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return Err("max_block_delay must be at least 1 ms");
        }
        Ok(())
    }

    /// The longest a block stays open, for a smoothed RTT of `srtt`.
    pub fn max_block_age(&self, srtt: Duration) -> Duration {
        let age = srtt
            .saturating_mul(self.max_block_rtts)
            .max(Duration::from_millis(5));
        match self.max_block_delay {
            Some(d) => age.min(d),
            None => age,
        }
    }
}

/// Why a FEC_REPAIR frame was refused. Each is a protocol violation by the (authenticated) peer,
/// except [`FecError::Stale`], which the receiver ignores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FecError {
    /// The block's source count is 0 or above what we announced.
    Sources(u64),
    /// The symbol is shorter than 3 bytes or longer than [`MAX_SYMBOL_SIZE`].
    SymbolSize(usize),
    /// The encoding symbol ID is not a repair ID of the block (below `sources`, or more than
    /// [`MAX_REPAIR_ESI`] above it).
    SymbolId(u64),
    /// The block reaches past the packet carrying the repair symbol (repairs follow their
    /// sources), or past the packet-number space.
    BlockInFuture,
    /// Another repair symbol of the same block gave a different source count or symbol size.
    Inconsistent,
    /// A recovered source symbol's length prefix exceeds the symbol.
    RecoveredLength,
    /// The block is too old to decode (its packets left the receive ring): ignored.
    Stale,
}

impl FecError {
    /// Whether the error closes the connection (everything but [`FecError::Stale`]).
    pub fn is_fatal(self) -> bool {
        self != Self::Stale
    }
}

impl fmt::Display for FecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sources(n) => write!(f, "FEC block of {n} source packets"),
            Self::SymbolSize(n) => write!(f, "FEC repair symbol of {n} bytes"),
            Self::SymbolId(n) => write!(f, "FEC encoding symbol ID {n} is not a repair ID"),
            Self::BlockInFuture => f.write_str("FEC block reaches past its repair packet"),
            Self::Inconsistent => f.write_str("FEC repair symbols of one block disagree"),
            Self::RecoveredLength => f.write_str("FEC recovered a packet with a bad length"),
            Self::Stale => f.write_str("FEC block too old to decode"),
        }
    }
}

impl std::error::Error for FecError {}

/// The RaptorQ parameters of a block of `sources` symbols of `symbol_size` bytes: one source
/// block, no sub-blocks, alignment 1.
fn oti(sources: u16, symbol_size: u16) -> raptorq::ObjectTransmissionInformation {
    raptorq::ObjectTransmissionInformation::new(
        u64::from(sources) * u64::from(symbol_size),
        symbol_size,
        1,
        1,
        1,
    )
}
