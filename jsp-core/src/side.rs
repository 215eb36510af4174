//! Which end of a connection an endpoint is.
//!
//! The side decides who initiated a stream (bit 0 of a stream ID), which keys seal which
//! direction, and which handshake messages an endpoint may send. [`Side::not`] names the peer.

use core::ops::Not;

/// The role an endpoint plays in a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The endpoint that opened the connection.
    Client,
    /// The endpoint that accepted the connection.
    Server,
}

impl Side {
    /// Whether this is the client side.
    pub fn is_client(self) -> bool {
        self == Self::Client
    }

    /// Whether this is the server side.
    pub fn is_server(self) -> bool {
        self == Self::Server
    }
}

impl Not for Side {
    type Output = Self;

    /// The peer's side.
    fn not(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_client_is_a_server_and_back() {
        assert_eq!(!Side::Client, Side::Server);
        assert_eq!(!Side::Server, Side::Client);
        assert!(Side::Client.is_client() && !Side::Client.is_server());
        assert!(Side::Server.is_server() && !Side::Server.is_client());
    }
}
