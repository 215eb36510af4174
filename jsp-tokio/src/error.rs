//! Errors, one `#[non_exhaustive]` enum per operation. Each message says what happened and, where
//! the caller can act, what to do.

use std::net::SocketAddr;

use jsp_core::connection::ConnectionError as CoreError;
use jsp_core::{TransportError, TransportErrorCode};

/// Creating an endpoint failed ([`crate::Endpoint::server`], [`crate::Endpoint::client`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind a UDP socket to {addr}: {source} (is the address in use, or not one of this host's?)")]
    Socket {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value cannot work.
    #[error("{0}")]
    Config(jsp_core::config::ConfigError),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// No supported async runtime is running on this thread.
    #[error("no tokio runtime is running: create endpoints from inside a tokio runtime (or enable jsp-tokio's `smol` feature)")]
    NoRuntime,
}

/// Starting a connection failed ([`crate::Endpoint::connect`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint was closed or its driver stopped.
    #[error("the endpoint is closed; create a new one to connect")]
    EndpointClosed,
    /// A configuration value cannot work.
    #[error("{0}")]
    Config(jsp_core::config::ConfigError),
    /// The remote address cannot be reached from this endpoint's socket.
    #[error("cannot connect to {remote} from a socket bound to {local}: use an address of the same family")]
    AddressFamily {
        /// The address asked for.
        remote: SocketAddr,
        /// The endpoint's socket address.
        local: SocketAddr,
    },
}

/// Why a connection ended, or why its handshake did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Nothing arrived from the peer for the idle timeout, before the handshake completed.
    #[error("no answer from {remote}: check that a JSP server listens there and that UDP is not blocked")]
    HandshakeTimedOut {
        /// The peer's address.
        remote: SocketAddr,
    },
    /// Nothing arrived from the peer for the idle timeout on an established connection.
    #[error("the connection to {remote} timed out: nothing received for the idle timeout")]
    TimedOut {
        /// The peer's address.
        remote: SocketAddr,
    },
    /// The handshake failed: the server's identity did not match, no suite or key exchange in
    /// common, or a client certificate was refused. The reason says which.
    #[error("the handshake with {remote} failed: {reason}")]
    HandshakeFailed {
        /// The peer's address.
        remote: SocketAddr,
        /// What went wrong, from whichever side detected it.
        reason: String,
    },
    /// The peer's application closed the connection.
    #[error(
        "the peer closed the connection (application code {code}{})",
        reason_suffix(reason)
    )]
    ApplicationClosed {
        /// The peer's application code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The peer closed the connection with a transport error.
    #[error("the peer closed the connection: {code}{}", reason_suffix(reason))]
    PeerClosed {
        /// The peer's error code.
        code: TransportErrorCode,
        /// The peer's reason.
        reason: String,
    },
    /// This side detected a protocol violation by the peer and closed the connection.
    #[error("closed because the peer violated the protocol: {0}")]
    ProtocolViolation(TransportError),
    /// This side closed the connection ([`crate::Connection::close`], or every handle dropped).
    #[error("the connection was closed locally")]
    LocallyClosed,
    /// The peer lost the connection's state (it restarted) and answered with a stateless reset.
    #[error("the peer reset the connection (it lost its state, perhaps restarted); reconnect")]
    Reset,
    /// The server speaks no protocol version this client offers.
    #[error("the server speaks no protocol version in common with this client; upgrade one side")]
    VersionMismatch,
    /// The endpoint was closed or its driver stopped.
    #[error("the endpoint was closed")]
    EndpointClosed,
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl ConnectionError {
    /// Translates the core's reason, knowing whether the handshake had completed.
    pub(crate) fn from_core(e: &CoreError, remote: SocketAddr, handshake_done: bool) -> Self {
        match e {
            CoreError::TimedOut if handshake_done => Self::TimedOut { remote },
            CoreError::TimedOut => Self::HandshakeTimedOut { remote },
            CoreError::TransportError(t) if t.code == TransportErrorCode::HANDSHAKE_FAILED => {
                Self::HandshakeFailed {
                    remote,
                    reason: t.reason.clone(),
                }
            }
            CoreError::ConnectionClosed { code, reason, .. }
                if *code == TransportErrorCode::HANDSHAKE_FAILED =>
            {
                Self::HandshakeFailed {
                    remote,
                    reason: format!("the peer said: {reason}"),
                }
            }
            CoreError::TransportError(t) => Self::ProtocolViolation(t.clone()),
            CoreError::ConnectionClosed { code, reason, .. } => Self::PeerClosed {
                code: *code,
                reason: reason.clone(),
            },
            CoreError::ApplicationClosed { code, reason } => Self::ApplicationClosed {
                code: *code,
                reason: reason.clone(),
            },
            CoreError::LocallyClosed => Self::LocallyClosed,
            CoreError::Reset => Self::Reset,
            CoreError::VersionMismatch => Self::VersionMismatch,
            _ => Self::PeerClosed {
                code: TransportErrorCode::INTERNAL_ERROR,
                reason: e.to_string(),
            },
        }
    }
}

/// Writing to, finishing or resetting a [`crate::SendStream`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The peer asked us to stop sending (STOP_SENDING) with this code; the stream was reset.
    #[error("the peer stopped the stream (code {0}); stop writing to it")]
    Stopped(u64),
    /// The stream was already finished or reset.
    #[error("the stream was already finished or reset")]
    ClosedStream,
    /// The message, with its framing, is larger than the peer's initial stream window or our
    /// send buffer, so it could never be delivered whole: split it or raise the windows.
    #[error("the message is larger than the peer's stream window or the send buffer; split it")]
    MessageTooLarge,
    /// The stream is partially reliable or best-effort: it carries whole messages only
    /// ([`crate::SendStream::send_message`]), never bytes.
    #[error("the stream is not reliable: send whole messages with send_message")]
    MessagesOnly,
    /// The connection ended.
    #[error("the connection ended: {0}")]
    ConnectionLost(#[from] ConnectionError),
}

/// Reading from a [`crate::RecvStream`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer reset the stream with this code: what was sent is incomplete.
    #[error("the peer reset the stream (code {0}): its data is incomplete")]
    Reset(u64),
    /// Reading was stopped with [`crate::RecvStream::stop`].
    #[error("reading was stopped on this stream")]
    ClosedStream,
    /// [`crate::RecvStream::read_to_end`] reached its size limit.
    #[error("the stream is longer than the limit of {0} bytes")]
    TooLong(usize),
    /// The next message announces this many bytes, more than our stream window can ever hold
    /// (the peer broke the message framing); stop the stream.
    #[error("the peer's next message ({0} bytes) can never fit the stream window")]
    MessageTooLarge(u64),
    /// The connection ended.
    #[error("the connection ended: {0}")]
    ConnectionLost(#[from] ConnectionError),
}

/// Sending an unreliable datagram failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendDatagramError {
    /// The peer does not accept datagrams.
    #[error("the peer does not accept datagrams")]
    Disabled,
    /// The datagram is larger than the peer accepts; see [`crate::Connection::max_datagram_size`].
    #[error(
        "the datagram is larger than the {max} bytes the peer accepts; split it or use a stream"
    )]
    TooLarge {
        /// The largest payload accepted now.
        max: usize,
    },
    /// The connection ended.
    #[error("the connection ended: {0}")]
    ConnectionLost(#[from] ConnectionError),
}

/// Turning on the key log failed ([`crate::Endpoint::enable_key_log`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLogError {
    /// The key-log file could not be opened for appending.
    #[error(
        "cannot open the key log {path}: {source}; check the directory exists and is writable"
    )]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<WriteError> for std::io::Error {
    fn from(e: WriteError) -> Self {
        let kind = match e {
            WriteError::Stopped(_) => std::io::ErrorKind::ConnectionReset,
            WriteError::ClosedStream => std::io::ErrorKind::NotConnected,
            WriteError::MessageTooLarge => std::io::ErrorKind::InvalidInput,
            WriteError::MessagesOnly => std::io::ErrorKind::Unsupported,
            WriteError::ConnectionLost(_) => std::io::ErrorKind::ConnectionAborted,
        };
        Self::new(kind, e)
    }
}

impl From<ReadError> for std::io::Error {
    fn from(e: ReadError) -> Self {
        let kind = match e {
            ReadError::Reset(_) => std::io::ErrorKind::ConnectionReset,
            ReadError::ClosedStream => std::io::ErrorKind::NotConnected,
            ReadError::TooLong(_) | ReadError::MessageTooLarge(_) => {
                std::io::ErrorKind::InvalidData
            }
            ReadError::ConnectionLost(_) => std::io::ErrorKind::ConnectionAborted,
        };
        Self::new(kind, e)
    }
}
