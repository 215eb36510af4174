//! The [`Node`] trait: what the simulator needs from a hosted network stack.
//!
//! It is the sans-IO driver contract (DESIGN rule 2) seen from outside: feed a datagram at `now`,
//! drain transmits into a caller-owned buffer, ask for the next deadline, fire it. Any sans-IO
//! stack fits behind it — [`crate::jsp::JspNode`] hosts JSP, and a quinn-proto node can be added
//! the same way for side-by-side runs. Two optional methods let the simulator tell a finished
//! run from a hung one.

use std::any::Any;
use std::net::SocketAddr;

use bytes::BytesMut;
use jsp_core::Instant;

/// A datagram a node wants sent, occupying the first `size` bytes of the buffer it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Bytes of the buffer used.
    pub size: usize,
    /// When set, the buffer holds a batch of datagrams of this size (the last may be shorter),
    /// as with UDP GSO; the simulator splits it.
    pub segment_size: Option<usize>,
}

/// A network stack hosted by the simulator at one address.
pub trait Node: Any {
    /// A datagram arrived at `now` from `from` (the source address as the network rewrote it).
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: BytesMut);

    /// The next datagram to send, written into `buf`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next instant at which [`Node::handle_timeout`] must be called (absolute).
    fn poll_timeout(&mut self) -> Option<Instant>;

    /// Fires what is due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// A counter that grows whenever the node's application makes progress (bytes delivered,
    /// streams finished, connections established or lost). The simulator reports a hang when no
    /// node's counter moves for too long. Default: always 0 (the node never counts as progress).
    fn progress(&self) -> u64 {
        0
    }

    /// Whether the node's application has finished its work. A run ends when every node is
    /// done. Default: true (a passive node never holds a run open).
    fn is_done(&self) -> bool {
        true
    }
}
