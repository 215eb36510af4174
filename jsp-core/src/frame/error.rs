//! Frame decoding errors.
//!
//! Every decoding failure is a [`FrameError`] naming the frame type (when it was readable) and
//! what was wrong; it converts to the FRAME_ENCODING_ERROR the connection closes with.

use core::fmt;

use super::ty;
use crate::coding::Truncated;
use crate::error::{TransportError, TransportErrorCode};

/// What was wrong with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameErrorKind {
    /// The payload ended inside the frame.
    Truncated,
    /// The type code is not one this implementation knows.
    UnknownType,
    /// A field holds a value the protocol forbids; the text names the field and the rule.
    InvalidValue(&'static str),
}

/// A frame that could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// The frame's type code, or `None` when the payload ended inside the type itself.
    pub frame_type: Option<u64>,
    /// What was wrong.
    pub kind: FrameErrorKind,
}

impl FrameError {
    /// An error of `kind` in a frame of type `frame_type`.
    pub const fn new(frame_type: Option<u64>, kind: FrameErrorKind) -> Self {
        Self { frame_type, kind }
    }
}

impl From<Truncated> for FrameErrorKind {
    fn from(_: Truncated) -> Self {
        Self::Truncated
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(t) = self.frame_type else {
            return f.write_str("truncated frame type");
        };
        let name = ty::name(t).unwrap_or("unknown");
        match self.kind {
            FrameErrorKind::Truncated => write!(f, "truncated {name} frame"),
            FrameErrorKind::UnknownType => write!(f, "unknown frame type {t:#x}"),
            FrameErrorKind::InvalidValue(why) => write!(f, "invalid {name} frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for TransportError {
    /// A FRAME_ENCODING_ERROR carrying the frame type and the problem (RFC 9000 §12.4: unknown
    /// types and malformed frames are both FRAME_ENCODING_ERROR).
    fn from(e: FrameError) -> Self {
        let err = TransportError::new(TransportErrorCode::FRAME_ENCODING_ERROR, e.to_string());
        match e.frame_type {
            Some(t) => err.with_frame(t),
            None => err,
        }
    }
}
