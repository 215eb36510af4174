//! Glue between the connection and the stream room (placeholder until streams land).

use bytes::Bytes;

use super::{Connection, SentFrames};
use crate::coding::Writer;
use crate::error::TransportError;
use crate::frame::Frame;
use crate::time::Instant;

impl Connection {
    pub(super) fn streams_want_to_send(&self, _early: bool) -> bool {
        false
    }

    pub(super) fn write_stream_frames(
        &mut self,
        _w: &mut Writer<'_>,
        _sent: &mut SentFrames,
        _early: bool,
    ) -> bool {
        false
    }

    pub(super) fn on_stream_frame(
        &mut self,
        _now: Instant,
        frame: &Frame<'_>,
        _payload: &Bytes,
        _early: bool,
    ) -> Result<(), TransportError> {
        Err(TransportError::protocol("streams are not supported yet").with_frame(frame.ty()))
    }
}
