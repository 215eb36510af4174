//! The secure session: the handshake state machines of client and server.
//!
//! A session consumes handshake messages (reassembled from CRYPTO frames by the connection) and
//! produces handshake bytes to send per packet-number space, keys to install, and what was
//! negotiated. It never sees packets; the connection owns those. The flight is one round trip:
//!
//! ```text
//! Client                                               Server
//! ClientHello (Initial) ------------------------------>
//!   [0-RTT data under early keys, when resuming]
//!                  <-------------------- ServerHello (Initial)  (sent first, on its own)
//!                  <-------------------- EncryptedExtensions, Identity,
//!                                        IdentityVerify, Finished (Handshake)
//!                                        [0.5-RTT data under 1-RTT keys]
//! [Identity, IdentityVerify,] Finished (Handshake) --->
//! application data (1-RTT) <---------------------------> application data (1-RTT)
//!                  <-------------------- SESSION_TICKET frames (1-RTT)
//! ```
//!
//! Key schedule (HKDF-SHA256, TLS 1.3 shape, labels prefixed `jsp1 `): the early secret from the
//! ticket's PSK (or zeros), the handshake secret from the hybrid shared secret (ML-KEM ‖ X25519),
//! the master secret; traffic secrets bound to the transcript hash at each step. Every message's
//! exact bytes enter the transcript, and the server signs it with its identity key, so a stripped
//! post-quantum share, a changed suite list or any altered byte fails the handshake.
//!
//! The server answers a ClientHello in two steps ([`Session::work_pending`]): the ServerHello
//! (after the ML-KEM encapsulation, with an X25519 share made ahead) leaves first, and the key
//! agreement, the signature and the rest of the flight follow once it is on the wire, so the
//! client's agreement and decapsulation overlap the server's agreement and signature.

mod client;
mod resumption;
mod server;

pub use client::ClientSession;
pub use resumption::ServerResumption;
pub use server::ServerSession;

use crate::crypto::kex::KeyExchange;
use crate::crypto::schedule::Secret;
use crate::crypto::sign::{PublicIdentity, SignatureScheme};
use crate::crypto::CipherSuite;
use crate::error::TransportError;
use crate::handshake::{ClientTicket, HandshakeMessage};
use crate::packet::SpaceId;
use crate::rand::Rng;
use crate::time::Instant;

/// Context string signed by the server, followed by the transcript hash.
pub const SERVER_SIGNATURE_CONTEXT: &[u8] = b"JSP1 server identity verify\0";
/// Context string signed by an authenticating client, followed by the transcript hash.
pub const CLIENT_SIGNATURE_CONTEXT: &[u8] = b"JSP1 client identity verify\0";

/// Traffic secrets the connection installs, in the order the session produces them.
pub enum KeyInstall {
    /// 0-RTT: the client's send secret (client) or receive secret (server), under `suite`.
    ZeroRtt {
        /// Cipher suite of the resumed session.
        suite: CipherSuite,
        /// The client's early traffic secret.
        secret: Secret,
    },
    /// Handshake-space secrets.
    Handshake {
        /// Negotiated suite.
        suite: CipherSuite,
        /// Secret for packets we receive.
        rx: Secret,
        /// Secret for packets we send.
        tx: Secret,
    },
    /// 1-RTT secrets.
    OneRtt {
        /// Negotiated suite.
        suite: CipherSuite,
        /// Secret for packets we receive.
        rx: Secret,
        /// Secret for packets we send.
        tx: Secret,
    },
}

impl core::fmt::Debug for KeyInstall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ZeroRtt { suite, .. } => write!(f, "ZeroRtt({suite})"),
            Self::Handshake { suite, .. } => write!(f, "Handshake({suite})"),
            Self::OneRtt { suite, .. } => write!(f, "OneRtt({suite})"),
        }
    }
}

/// What happened to 0-RTT data on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyData {
    /// No 0-RTT was attempted.
    NotOffered,
    /// The server accepted the 0-RTT data.
    Accepted,
    /// The server refused it; the client resends it under 1-RTT keys.
    Rejected,
}

/// What the handshake negotiated, reported to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// Protocol version.
    pub version: u32,
    /// Cipher suite protecting the connection's packets.
    pub suite: CipherSuite,
    /// Key exchange used (post-quantum hybrid unless both sides allowed classical and chose it).
    pub key_exchange: KeyExchange,
    /// Signature scheme of the server's identity.
    pub signature_scheme: SignatureScheme,
    /// Whether a session ticket's PSK was mixed into the keys (resumption).
    pub resumed: bool,
    /// The fate of 0-RTT data.
    pub early_data: EarlyData,
    /// The peer's identity key: the server's (on a client) or the client's (on a server, when it
    /// authenticated).
    pub peer_identity: Option<PublicIdentity>,
}

/// Either side's session, behind one interface for the connection.
pub enum Session {
    /// A client session.
    Client(Box<ClientSession>),
    /// A server session.
    Server(Box<ServerSession>),
}

/// Things the session asks the connection to do.
#[derive(Default)]
pub struct SessionOutput {
    /// Handshake bytes to send, per packet-number space (CRYPTO stream data).
    pub crypto: [Vec<u8>; 3],
    /// Keys to install, in order.
    pub keys: Vec<KeyInstall>,
    /// Encoded NewSessionTicket messages to send in SESSION_TICKET frames (server).
    pub tickets: Vec<Vec<u8>>,
    /// Tickets received (client), for the application to store.
    pub received_tickets: Vec<ClientTicket>,
    /// The handshake completed with this call.
    pub completed: bool,
    /// The server decided about 0-RTT (client: learnt from ServerHello).
    pub early_data: Option<EarlyData>,
}

impl Session {
    /// Feeds one complete handshake message received in `space`; `raw` is its exact encoding.
    pub fn handle(
        &mut self,
        space: SpaceId,
        msg: HandshakeMessage,
        raw: &[u8],
        now: Instant,
        rng: &mut Rng,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        match self {
            Self::Client(c) => c.handle(space, msg, raw, now, out),
            Self::Server(s) => s.handle(space, msg, raw, now, rng, out),
        }
    }

    /// Whether the session has work left from the last message that it wants done after what
    /// it produced so far has been sent: a server that sent its ServerHello and has the rest of
    /// its flight (key agreement, signature) to make. The connection calls
    /// [`Self::finish_pending`] at once, after the datagrams are out.
    pub fn work_pending(&self) -> bool {
        match self {
            Self::Client(_) => false,
            Self::Server(s) => s.work_pending(),
        }
    }

    /// Does the work [`Self::work_pending`] announced; nothing when there is none.
    pub fn finish_pending(&mut self, out: &mut SessionOutput) -> Result<(), TransportError> {
        match self {
            Self::Client(_) => Ok(()),
            Self::Server(s) => s.finish_answer(out),
        }
    }

    /// Feeds a SESSION_TICKET frame's contents (client only; a server receiving one is a
    /// protocol violation).
    pub fn handle_ticket(
        &mut self,
        data: &[u8],
        now: Instant,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        match self {
            Self::Client(c) => c.handle_ticket(data, now, out),
            Self::Server(_) => Err(TransportError::protocol(
                "client sent a SESSION_TICKET frame",
            )),
        }
    }

    /// What was negotiated, once known.
    pub fn info(&self) -> Option<&HandshakeInfo> {
        match self {
            Self::Client(c) => c.info(),
            Self::Server(s) => s.info(),
        }
    }

    /// Whether the handshake has completed on this side.
    pub fn is_complete(&self) -> bool {
        match self {
            Self::Client(c) => c.is_complete(),
            Self::Server(s) => s.is_complete(),
        }
    }

    /// The peer's transport parameters, once received.
    pub fn peer_params(&self) -> Option<&crate::handshake::TransportParameters> {
        match self {
            Self::Client(c) => c.peer_params(),
            Self::Server(s) => s.peer_params(),
        }
    }
}

#[cfg(test)]
mod tests;

/// The error for a message that is not expected in the current state.
fn unexpected(msg: &HandshakeMessage, space: SpaceId, state: &str) -> TransportError {
    TransportError::protocol(format!(
        "unexpected handshake message type {} in {space:?} space while {state}",
        msg.type_code()
    ))
}
