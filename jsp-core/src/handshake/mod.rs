//! The handshake: messages, transport parameters, session tickets, the 0-RTT replay filter and
//! CRYPTO-stream reassembly.
//!
//! JSP's handshake has the shape of TLS 1.3 (RFC 8446) carried as in QUIC (RFC 9001): messages
//! travel on a CRYPTO stream per packet-number space, each framed as `type u8 ‖ length u24 ‖ CBOR
//! body` ([`messages`]), and every message is hashed into the transcript as framed.
//!
//! ```text
//! Client                                                     Server
//! ClientHello            (Initial)        -------->
//!   [+ PskOffer, + 0-RTT data]
//!                                                   ServerHello         (Initial)
//!                                           EncryptedExtensions       (Handshake)
//!                                                      Identity       (Handshake)
//!                                                IdentityVerify       (Handshake)
//!                                         <--------    Finished       (Handshake)
//! Identity               (Handshake, only if the server asked for client auth)
//! IdentityVerify         (Handshake, idem)
//! Finished               (Handshake)      -------->
//!                                         <--------    NewSessionTicket (1-RTT, SESSION_TICKET frame)
//! ```
//!
//! - **ClientHello** offers versions of suites, key-exchange groups and signature schemes (plain
//!   `u16` wire codes), one key share, the client's [`TransportParameters`] and optionally a
//!   ticket ([`PskOffer`]) with 0-RTT.
//! - **ServerHello** picks one suite and group and returns the server's share; from here both
//!   sides have Handshake keys.
//! - **EncryptedExtensions** carries the server's transport parameters and whether it wants
//!   client authentication. Identity and IdentityVerify follow on every handshake, resumed or
//!   not: a resumed session still runs a fresh key exchange and a fresh server signature.
//! - **Identity / IdentityVerify** send a long-term key and a signature over the transcript so far.
//! - **Finished** MACs the transcript; after the client's, the handshake is complete.
//! - **NewSessionTicket** is sent afterwards: an opaque ticket sealed under the server's rotating
//!   [`TicketKeys`], which the client keeps as a [`ClientTicket`].
//!
//! Server-side resumption checks, in order: [`TicketKeys::open`], version and suite match,
//! [`check_ticket_age`], and — only for 0-RTT — [`ReplayFilter::check_and_insert`] on the ticket's
//! nonce, so that early data is accepted at most once per ticket. Any [`TicketRejection`] falls
//! back to a full handshake or to 1-RTT; it never closes the connection.
//!
//! Receive side: CRYPTO frames feed a [`CryptoAssembler`]; [`HandshakeMessage::decode`] parses
//! complete messages from its contiguous bytes.

pub(crate) mod cbor;

pub mod assembler;
pub mod messages;
pub mod params;
pub mod replay;
pub mod ticket;

pub use assembler::{CryptoAssembler, DEFAULT_MAX_CRYPTO_BUFFER};
pub use messages::{
    ClientHello, EncryptedExtensions, Finished, HandshakeMessage, Identity, IdentityVerify,
    MessageError, NewSessionTicket, PskOffer, ServerHello, MAX_MESSAGE_LEN,
};
pub use params::TransportParameters;
pub use replay::{ReplayFilter, DEFAULT_REPLAY_CAPACITY};
pub use ticket::{
    check_ticket_age, ClientTicket, TicketContents, TicketKeys, TicketRejection,
    DEFAULT_FRESHNESS_WINDOW, DEFAULT_TICKET_KEY_ROTATION, MAX_TICKET_LIFETIME,
};
