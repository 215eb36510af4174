//! The application's stream API on a connection, and the glue between the connection and the
//! streams room ([`crate::stream`]): stream frames in, stream frames out, acknowledgements and
//! losses of what was sent.

use bytes::Bytes;

use super::{Connection, SentFrames};
use crate::coding::Writer;
use crate::error::TransportError;
use crate::frame::{Dir, Frame, StreamId};
use crate::handshake::TransportParameters;
use crate::stream::{
    Delivery, DeliveryMode, PeerLimits, ReadError, SendStats, StreamLimits, WriteError,
};
use crate::time::Instant;

/// The streams room's settings from a transport config.
pub(super) fn stream_limits(t: &crate::config::TransportConfig) -> StreamLimits {
    StreamLimits {
        receive_window: t.receive_window,
        stream_receive_window: t.stream_receive_window,
        max_stream_receive_window: t.max_stream_receive_window,
        max_concurrent_bidi: t.max_concurrent_bidi_streams,
        max_concurrent_uni: t.max_concurrent_uni_streams,
        send_buffer: t.send_buffer,
        max_fragments: None,
    }
}

/// The peer's stream limits from its transport parameters.
pub(super) fn peer_limits(p: &TransportParameters) -> PeerLimits {
    PeerLimits {
        max_data: p.initial_max_data,
        max_stream_data_bidi_local: p.initial_max_stream_data_bidi_local,
        max_stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote,
        max_stream_data_uni: p.initial_max_stream_data_uni,
        max_streams_bidi: p.initial_max_streams_bidi,
        max_streams_uni: p.initial_max_streams_uni,
    }
}

impl Connection {
    /// Opens a bidirectional stream, or `None` while the peer's stream limit is reached (an
    /// `Available` stream event follows when it is raised).
    pub fn open_bi(&mut self) -> Option<StreamId> {
        self.open(Dir::Bi)
    }

    /// Opens a unidirectional (send-only) stream, or `None` at the peer's limit.
    pub fn open_uni(&mut self) -> Option<StreamId> {
        self.open(Dir::Uni)
    }

    /// Opens a bidirectional stream whose sending uses `mode` (partially reliable and
    /// best-effort streams carry messages only: [`Self::send_message`]); `None` at the peer's
    /// limit.
    pub fn open_bi_with(&mut self, mode: DeliveryMode) -> Option<StreamId> {
        self.open_with(Dir::Bi, mode)
    }

    /// Opens a unidirectional stream whose sending uses `mode`; `None` at the peer's limit.
    pub fn open_uni_with(&mut self, mode: DeliveryMode) -> Option<StreamId> {
        self.open_with(Dir::Uni, mode)
    }

    fn open(&mut self, dir: Dir) -> Option<StreamId> {
        self.open_with(dir, DeliveryMode::Reliable)
    }

    fn open_with(&mut self, dir: Dir, mode: DeliveryMode) -> Option<StreamId> {
        if self.is_closed() {
            return None;
        }
        self.streams.open_with(dir, mode)
    }

    /// The delivery mode of our sending on a stream.
    pub fn delivery_mode(&self, id: StreamId) -> Option<DeliveryMode> {
        self.streams.delivery_mode(id)
    }

    /// Queues one message (boundaries kept; usable on every stream). A partially reliable
    /// message's TTL counts from the latest `now` the connection was given. `Err(Blocked)`: no
    /// room for the whole message now (a `Writable` stream event follows).
    pub fn send_message(&mut self, id: StreamId, data: Bytes) -> Result<(), WriteError> {
        if self.is_closed() {
            return Err(WriteError::ClosedStream);
        }
        self.streams.send_message(id, data)
    }

    /// Queues one message that should arrive within `within` of now (the latest `now` the
    /// connection was given). Inside a priority level, the message whose deadline is earliest is
    /// sent first; on a reliable stream the deadline only orders sending, on a partially reliable
    /// one it replaces the stream's TTL for this message, and on the non-reliable modes the
    /// message is abandoned once it can no longer arrive in time. See
    /// [`crate::stream::Streams::send_message_with_deadline`].
    pub fn send_message_with_deadline(
        &mut self,
        id: StreamId,
        data: Bytes,
        within: crate::time::Duration,
    ) -> Result<(), WriteError> {
        if self.is_closed() {
            return Err(WriteError::ClosedStream);
        }
        self.streams.send_message_with_deadline(id, data, within)
    }

    /// The next whole message on a stream, or the report of messages the peer abandoned
    /// before it. `Ok(None)`: the stream ended cleanly; `Err(ReadError::Blocked)`: nothing yet.
    pub fn recv_message(&mut self, id: StreamId) -> Result<Option<Delivery>, ReadError> {
        self.streams.recv_message(id)
    }

    /// Per-stream send figures (messages, abandoned messages and bytes, retransmitted bytes).
    pub fn stream_send_stats(&self, id: StreamId) -> Option<SendStats> {
        self.streams.send_stats(id)
    }

    /// The next bidirectional stream the peer opened.
    pub fn accept_bi(&mut self) -> Option<StreamId> {
        self.streams.accept(Dir::Bi)
    }

    /// The next unidirectional stream the peer opened.
    pub fn accept_uni(&mut self) -> Option<StreamId> {
        self.streams.accept(Dir::Uni)
    }

    /// Queues data on a stream; returns how much was accepted (0 when flow control or the send
    /// buffer is full: a `Writable` stream event follows).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        if self.is_closed() {
            return Err(WriteError::ClosedStream);
        }
        self.streams.write(id, data)
    }

    /// Ends a stream cleanly once all queued data is delivered.
    pub fn finish(&mut self, id: StreamId) -> Result<(), WriteError> {
        self.streams.finish(id)
    }

    /// Abandons a stream's outgoing data; the peer sees a reset with `error_code`.
    pub fn reset(&mut self, id: StreamId, error_code: u64) -> Result<(), WriteError> {
        self.streams.reset(id, error_code)
    }

    /// Reads the next in-order chunk of up to `max` bytes without copying. `Ok(None)`: the
    /// stream ended cleanly. `Err(ReadError::Blocked)`: nothing yet (a `Readable` event follows).
    pub fn read(&mut self, id: StreamId, max: usize) -> Result<Option<Bytes>, ReadError> {
        self.streams.read(id, max)
    }

    /// Reads into `buf`; `Ok(None)` at the end of the stream.
    pub fn read_into(&mut self, id: StreamId, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        self.streams.read_into(id, buf)
    }

    /// Asks the peer to stop sending on a stream (STOP_SENDING with `error_code`).
    pub fn stop(&mut self, id: StreamId, error_code: u64) -> Result<(), ReadError> {
        self.streams.stop(id, error_code)
    }

    /// Sets a stream's weight inside its priority level (default
    /// [`crate::stream::DEFAULT_WEIGHT`]; 0 counts as 1): backlogged streams of one level share
    /// the bytes sent in proportion to their weights.
    pub fn set_weight(
        &mut self,
        id: StreamId,
        weight: u16,
    ) -> Result<(), crate::stream::UnknownStream> {
        self.streams.set_weight(id, weight)
    }

    /// A stream's send priority and weight, if we send on it.
    pub fn stream_scheduling(&self, id: StreamId) -> Option<(i32, u16)> {
        self.streams.scheduling(id)
    }

    /// Sets a stream's priority: a higher level is sent strictly first; streams of one level
    /// share it by message deadline, then by weight ([`Self::set_weight`]).
    pub fn set_priority(
        &mut self,
        id: StreamId,
        priority: i32,
    ) -> Result<(), crate::stream::UnknownStream> {
        self.streams.set_priority(id, priority)
    }

    /// Marks a stream's data as safe to replay, so it may travel as 0-RTT data before the
    /// handshake completes. Only for idempotent requests: an attacker can replay 0-RTT data to
    /// a server that has lost its replay state.
    pub fn set_replay_safe(&mut self, id: StreamId, safe: bool) {
        self.streams.set_replay_safe(id, safe);
    }

    /// Whether data on this stream arrived as 0-RTT data (and could therefore be a replay).
    pub fn received_early(&self, id: StreamId) -> bool {
        self.streams.received_early(id)
    }

    /// Whether stream frames (data, or credit and other stream control frames) or datagrams
    /// are waiting to be sent. A driver may skip waking its sending side after an application
    /// call (a read, say) that left this false: nothing it did made a packet due.
    pub fn has_pending_data(&self) -> bool {
        self.streams.wants_to_send() || !self.datagrams.outgoing.is_empty()
    }

    pub(super) fn streams_want_to_send(&self, early: bool) -> bool {
        if early {
            self.early_data_sent < self.max_early_data && self.streams.wants_to_send_early()
        } else {
            self.streams.wants_to_send()
        }
    }

    /// Writes stream control and data frames; returns whether any was written.
    pub(super) fn write_stream_frames(
        &mut self,
        w: &mut Writer<'_>,
        sent: &mut SentFrames,
        early: bool,
    ) -> bool {
        let before = sent.streams.len();
        if early {
            // Stay within the server's 0-RTT allowance: only fill a packet the budget covers.
            let budget = self.max_early_data.saturating_sub(self.early_data_sent);
            if (w.remaining() as u64) <= budget {
                let n = self.streams.write_stream_frames(w, &mut sent.streams, true);
                self.early_data_sent += n as u64;
            }
        } else {
            self.streams.write_control(w, &mut sent.streams);
            self.streams
                .write_stream_frames(w, &mut sent.streams, false);
        }
        sent.streams.len() > before
    }

    pub(super) fn on_stream_frame(
        &mut self,
        now: Instant,
        frame: &Frame<'_>,
        payload: &Bytes,
        early: bool,
    ) -> Result<(), TransportError> {
        self.streams.on_frame(frame, payload, early, now)
    }
}
