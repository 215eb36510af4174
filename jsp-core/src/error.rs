//! Error codes carried on the wire and the errors the core reports to the application.
//!
//! A connection ends with a [`TransportErrorCode`] (a protocol decision of the core) or an
//! application error code (chosen by the application, opaque to the core). Both travel in the
//! CLOSE frame together with a human-readable reason, so that the peer's application can tell
//! *who* ended the connection and *why*.

use core::fmt;

/// A transport-level error code (RFC 9000 §20.1 numbering, so tools that know QUIC read ours).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportErrorCode(pub u64);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl TransportErrorCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The code's name, when it is one the core defines.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// The connection closed without error.
    NO_ERROR = 0x0;
    /// The endpoint hit an internal error (a bug on that side).
    INTERNAL_ERROR = 0x1;
    /// The server refused the connection (limits, policy, load).
    CONNECTION_REFUSED = 0x2;
    /// The peer sent more data than the advertised flow-control window.
    FLOW_CONTROL_ERROR = 0x3;
    /// The peer opened more streams than allowed.
    STREAM_LIMIT_ERROR = 0x4;
    /// A frame arrived for a stream in a state that forbids it.
    STREAM_STATE_ERROR = 0x5;
    /// A stream's final size changed or was exceeded.
    FINAL_SIZE_ERROR = 0x6;
    /// A frame could not be decoded.
    FRAME_ENCODING_ERROR = 0x7;
    /// Transport parameters were malformed or invalid.
    TRANSPORT_PARAMETER_ERROR = 0x8;
    /// The peer supplied more connection IDs than the limit.
    CONNECTION_ID_LIMIT_ERROR = 0x9;
    /// The peer violated the protocol in a way no more specific code names.
    PROTOCOL_VIOLATION = 0xa;
    /// An address-validation token was invalid.
    INVALID_TOKEN = 0xb;
    /// The application closed the connection (used when an application code cannot be sent).
    APPLICATION_ERROR = 0xc;
    /// The peer sent more handshake data than can be buffered.
    CRYPTO_BUFFER_EXCEEDED = 0xd;
    /// A key update was invalid.
    KEY_UPDATE_ERROR = 0xe;
    /// Too many packets failed authentication under one key.
    AEAD_LIMIT_REACHED = 0xf;
    /// No usable network path remains.
    NO_VIABLE_PATH = 0x10;
    /// The handshake failed: bad signature, bad Finished MAC, no common suite or key exchange,
    /// unexpected message, or a server key that the client does not trust.
    HANDSHAKE_FAILED = 0x100;
}

impl fmt::Debug for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "TransportErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A transport error raised by this endpoint: the code that goes on the wire and a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// The code sent to the peer.
    pub code: TransportErrorCode,
    /// The type of the frame that triggered the error, when one did.
    pub frame_type: Option<u64>,
    /// A human-readable explanation, also sent to the peer.
    pub reason: String,
}

impl TransportError {
    /// An error with `code` and `reason`.
    pub fn new(code: TransportErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            frame_type: None,
            reason: reason.into(),
        }
    }

    /// A PROTOCOL_VIOLATION with `reason`.
    pub fn protocol(reason: impl Into<String>) -> Self {
        Self::new(TransportErrorCode::PROTOCOL_VIOLATION, reason)
    }

    /// A HANDSHAKE_FAILED with `reason`.
    pub fn handshake(reason: impl Into<String>) -> Self {
        Self::new(TransportErrorCode::HANDSHAKE_FAILED, reason)
    }

    /// Sets the frame type that triggered the error.
    pub fn with_frame(mut self, frame_type: u64) -> Self {
        self.frame_type = Some(frame_type);
        self
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)?;
        if let Some(t) = self.frame_type {
            write!(f, " (frame type {t:#x})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}
