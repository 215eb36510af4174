//! The tool's errors: each one line saying what happened and what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// An argument combination that cannot work.
    #[error("{0}")]
    Usage(&'static str),
    /// A key file could not be read or written.
    #[error("{path}: {what}")]
    KeyFile { path: PathBuf, what: String },
    /// The endpoint could not start.
    #[error(transparent)]
    Bind(#[from] jsp_tokio::BindError),
    /// The connection could not start.
    #[error(transparent)]
    Connect(#[from] jsp_tokio::ConnectError),
    /// The connection failed or ended.
    #[error(transparent)]
    Connection(#[from] jsp_tokio::ConnectionError),
    /// The handshake did not complete in time.
    #[error("no answer from {addr} within {secs} s: check that `jsp serve` runs there and that UDP is not blocked")]
    HandshakeTimeout { addr: SocketAddr, secs: f64 },
    /// A stream failed.
    #[error("stream failed: {0}")]
    Write(#[from] jsp_tokio::WriteError),
    /// A stream failed.
    #[error("stream failed: {0}")]
    Read(#[from] jsp_tokio::ReadError),
    /// Terminal or other local I/O failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// A ticket that cannot be used.
    #[error("bad ticket: {0}")]
    Ticket(String),
    /// A file transfer failed.
    #[error("{0}")]
    Transfer(#[from] jsp_tokio::file::FileTransferError),
    /// The demo did not behave as it should.
    #[error("demo failed: {0}")]
    Demo(String),
}
