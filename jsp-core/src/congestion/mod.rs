//! Congestion control: the pluggable [`Controller`] trait, its [`ControllerFactory`], the
//! delivery-rate sampler both feed on ([`delivery`]), the default algorithm, [`Bbr`], and the
//! fallback, [`NewReno`] (RFC 9002 §7, Appendix B).
//!
//! Owns the congestion window of a connection. Invariant: a controller only ever learns about the
//! path through the calls below, made by the connection from [`crate::recovery::AckOutcome`]s, and
//! its window never falls below its configured minimum. Nothing here assumes loss-based control:
//! a model-based algorithm gets send events, per-packet acknowledgements with send times and the
//! application-limited flag, one [`RateSample`] per ACK, and may publish a pacing rate.
//!
//! How the connection drives a controller:
//! - [`Controller::on_sent`] for each in-flight packet sent;
//! - [`Controller::on_ack`] for each newly acknowledged in-flight packet;
//! - [`Controller::on_congestion_event`] once per ACK (or loss timeout) that declared in-flight
//!   packets lost, with [`crate::recovery::AckOutcome::largest_lost_sent`], or for an ECN-CE
//!   increase with the send time of the largest newly acknowledged packet;
//! - [`Controller::on_spurious_loss`] when recovery reports that a lost packet was acknowledged;
//! - [`Controller::on_rate_sample`] once per ACK frame, after the calls above, with the
//!   delivery-rate sample of the packets it acknowledged and the losses it revealed;
//! - it may send while `bytes_in_flight < window()`.

mod bbr;
pub mod delivery;
mod new_reno;

pub use bbr::{Bbr, BbrConfig, BbrFactory, BbrState};
pub use delivery::{DeliveryRate, PacketDelivery, RateSample};
pub use new_reno::{NewReno, NewRenoConfig, NewRenoFactory};

use crate::recovery::RttEstimator;
use crate::time::Instant;

/// A congestion controller for one connection (one path).
pub trait Controller: Send {
    /// An in-flight packet of `bytes` was sent at `now`; `bytes_in_flight` includes it.
    fn on_sent(&mut self, now: Instant, bytes: u64, bytes_in_flight: u64);

    /// An in-flight packet of `bytes`, sent at `sent`, was newly acknowledged at `now`.
    /// `app_limited` says the sender was not using the whole window when it sent the packet, so
    /// the acknowledgement proves nothing about the path's capacity.
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        rtt: &RttEstimator,
        app_limited: bool,
    );

    /// Packets were declared lost (or ECN-CE marked); `sent` is the send time of the most
    /// recently sent of them, `lost_bytes` their total, and `persistent` says the losses establish
    /// persistent congestion (RFC 9002 §7.6).
    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        persistent: bool,
        lost_bytes: u64,
    );

    /// A packet declared lost was acknowledged after all: the reaction may be undone.
    fn on_spurious_loss(&mut self) {}

    /// The delivery-rate sample of one ACK frame, after its [`Self::on_ack`] and
    /// [`Self::on_congestion_event`] calls. Loss-based controllers may ignore it.
    fn on_rate_sample(&mut self, _sample: &RateSample) {}

    /// Path-MTU discovery changed the largest datagram the path carries to `max_datagram_size`
    /// bytes: windows counted in packets (minimum, increments) scale with it from now on.
    fn on_mtu_change(&mut self, _max_datagram_size: u16) {}

    /// The congestion window in bytes.
    fn window(&self) -> u64;

    /// The rate at which to pace packets, in bytes per second, if the algorithm has one.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}

/// Builds one [`Controller`] per connection.
pub trait ControllerFactory: Send + Sync + core::fmt::Debug {
    /// A controller for a connection starting at `now` whose datagrams carry at most
    /// `max_datagram_size` bytes.
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller>;
}
