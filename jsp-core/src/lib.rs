//! # jsp-core — the JetStreamProto protocol core
//!
//! A pure sans-IO state machine: it consumes datagrams and timestamps and emits datagrams and
//! events. It opens no sockets, reads no clock, starts no threads and needs no async runtime, so
//! the same code runs under tokio, in a hand-written event loop, in a browser, in the deterministic
//! simulator and in a fuzzer.
//!
//! A driver calls four things (DESIGN rule 2): [`endpoint::Endpoint::handle_datagram`],
//! `poll_transmit`, `poll_timeout` and `handle_timeout`; the application drains events and uses
//! stream and datagram handles. Time is [`time::Instant`], supplied by the driver; randomness is a
//! [`rand::Rng`] the driver seeds.
//!
//! Rooms, one per protocol concept:
//! - [`coding`]: byte cursors and variable-length integers;
//! - [`cid`]: connection IDs;
//! - [`packet`]: headers, packet numbers, protection, coalescing, version negotiation;
//! - [`frame`]: the frame codec;
//! - [`crypto`]: cipher suites, key schedule, hybrid key exchange, identity signatures;
//! - [`handshake`]: handshake messages, transport parameters, session tickets and replay filter;
//! - [`recovery`]: RTT estimation, loss detection, probe timeouts (RFC 9002);
//! - [`congestion`]: the congestion-controller trait, delivery-rate sampling, BBR and NewReno;
//! - [`session`]: the client and server handshake state machines;
//! - [`connection`]: one connection, coordinating the rooms above;
//! - [`endpoint`]: routing, acceptance, rate limits, stateless replies;
//! - [`file`]: the sans-IO file-transfer protocol (manifest, chunk requests, resume, verification);
//! - [`config`]: validated configuration with documented defaults;
//! - [`error`]: wire error codes;
//! - `fuzzing` (feature `fuzzing` only): the properties the fuzz targets and their `cargo test`
//!   twins check, and an established connection pair to inject decrypted frames into.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cid;
pub mod coding;
pub mod config;
pub mod congestion;
pub mod connection;
pub mod crypto;
pub mod delta;
pub mod endpoint;
pub mod error;
pub mod fec;
pub mod file;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handshake;
pub mod packet;
pub mod rand;
pub mod range_set;
pub mod recovery;
pub mod session;
pub mod side;
pub mod stream;
pub mod time;

pub use cid::ConnectionId;
pub use crypto::CipherSuite;
pub use error::{TransportError, TransportErrorCode};
pub use side::Side;
pub use time::{Duration, Instant};

/// The protocol version this implementation speaks: "JSP" and version 1.
pub const VERSION_1: u32 = 0x4a53_5001;

/// Every version this implementation speaks, most preferred first.
pub const SUPPORTED_VERSIONS: &[u32] = &[VERSION_1];
