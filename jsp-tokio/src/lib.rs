//! # jsp-tokio — JetStreamProto on tokio (and smol)
//!
//! An async API over the sans-IO [`jsp_core`]: bind an [`Endpoint`], [`Endpoint::connect`] or
//! [`Endpoint::accept`], then use [`Connection`]s with streams ([`SendStream`] implements
//! `AsyncWrite`, [`RecvStream`] `AsyncRead`) and unreliable datagrams.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use jsp_tokio::{Endpoint, generate_identity, server_config};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let identity = Arc::new(generate_identity()?);
//! let server = Endpoint::server(server_config(identity.clone())?, "127.0.0.1:0".parse()?)?;
//! let addr = server.local_addr();
//! tokio::spawn(async move {
//!     while let Some(connecting) = server.accept().await {
//!         tokio::spawn(async move {
//!             let conn = connecting.await?;
//!             let (mut send, mut recv) = conn.accept_bi().await?;
//!             tokio::io::copy(&mut recv, &mut send).await?; // echo
//!             send.shutdown().await?;
//!             Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!         });
//!     }
//! });
//!
//! let client = Endpoint::client("127.0.0.1:0".parse()?)?;
//! let conn = client.connect(addr, identity.public())?.await?;
//! let (mut send, mut recv) = conn.open_bi().await?;
//! send.write_all(b"hello").await?;
//! send.shutdown().await?;
//! let mut echo = Vec::new();
//! recv.read_to_end(&mut echo).await?;
//! assert_eq!(echo, b"hello");
//! conn.close(0, b"done");
//! client.wait_idle().await;
//! # Ok(()) }
//! ```
//!
//! ## How it is driven
//!
//! Each endpoint has **one task** (spawned on the runtime the endpoint was created in) that owns
//! the UDP socket and one timer. The core endpoint and all its connections live in a state shared
//! by that task and every handle, behind one mutex ([`state`](crate) module docs): handles lock
//! it, call the core, and register a waker when they must wait; the task feeds received datagrams
//! and expired timers to the core, wakes the tasks whose streams became readable or writable, and
//! sends what the core produced. Socket I/O goes through `quinn-udp`: batched receives with GRO,
//! and GSO sends that glue consecutive equal-size datagrams to one peer, with one ECN codepoint,
//! into one syscall; each datagram's ECN bits are passed to and from the core (PROTOCOL §12.19).
//!
//! ## File transfer
//!
//! [`file`] sends and receives files and directories over a connection: resumable, over
//! parallel streams, verified chunk by chunk, optionally zstd-compressed.
//!
//! ## Drop semantics
//!
//! - A [`SendStream`] dropped without [`SendStream::finish`] is **reset** (code
//!   [`DROPPED_CODE`]): the peer sees an error, never a truncated message that looks complete.
//!   After `finish`, dropping it is fine: the data is still delivered.
//! - A [`RecvStream`] dropped before its end sends STOP_SENDING.
//! - When every handle of a connection (the [`Connection`] clones and its streams) is dropped,
//!   the connection is closed with application code 0.
//! - When every [`Endpoint`] handle is dropped, it stops accepting; its task runs until the
//!   remaining connections have drained, then releases the socket. Call [`Endpoint::close`] and
//!   [`Endpoint::wait_idle`] before exiting so that peers learn of the close.
//!
//! ## Runtimes
//!
//! Endpoints created inside a tokio runtime run on tokio. With the `smol` feature, endpoints
//! created outside a tokio runtime run on smol, and the streams also implement futures-io's
//! `AsyncRead`/`AsyncWrite`.
//!
//! ## Debugging captures
//!
//! [`Endpoint::enable_key_log`] is the explicit opt-in for a key log: the traffic secrets of
//! later connections are appended to a file (owner-readable only), and every connection logs a
//! warning while it is on.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod connection;
mod driver;
mod endpoint;
mod error;
pub mod file;
mod runtime;
mod state;
mod streams;

pub use clock::now;
pub use connection::{Connecting, Connection};
pub use endpoint::{generate_identity, os_rng, server_config, Endpoint};
pub use error::{
    BindError, ConnectError, ConnectionError, KeyLogError, ReadError, SendDatagramError, WriteError,
};
pub use streams::{RecvStream, SendStream, StreamOptions, DROPPED_CODE};

pub use jsp_core;
pub use jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
pub use jsp_core::connection::ConnectionStats;
pub use jsp_core::crypto::sign::{IdentityKey, PublicIdentity};
pub use jsp_core::frame::StreamId;
pub use jsp_core::handshake::ClientTicket;
pub use jsp_core::session::{EarlyData, HandshakeInfo};
pub use jsp_core::stream::{Delivery, DeliveryMode, SendStats, Skipped, DEFAULT_WEIGHT};
