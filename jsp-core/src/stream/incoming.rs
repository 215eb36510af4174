//! Frames from the peer: STREAM, RESET_STREAM, STOP_SENDING, the flow-control limits and the
//! BLOCKED signals. Each is checked against the stream's direction and state (RFC 9000 §19) and
//! turned into a typed [`TransportError`] when the peer broke a rule.

use bytes::Bytes;

use super::recv::Room;
use super::{di, StreamEvent, Streams};
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{Dir, Frame, StreamId, MAX_STREAM_COUNT};
use crate::time::Instant;

/// Which half of the stream a frame addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    /// Our receive half (STREAM, RESET_STREAM, STREAM_DATA_BLOCKED).
    Recv,
    /// Our send half (STOP_SENDING, MAX_STREAM_DATA).
    Send,
}

/// `data` as a slice of `payload` when it points into it (zero-copy), else a copy; with the size
/// of the buffer the result keeps alive.
fn slice_of(payload: &Bytes, data: &[u8]) -> (Bytes, usize) {
    let base = payload.as_ptr() as usize;
    let start = data.as_ptr() as usize;
    let inside = start >= base
        && start
            .checked_add(data.len())
            .is_some_and(|end| end <= base + payload.len());
    if inside && !data.is_empty() {
        (payload.slice_ref(data), payload.len())
    } else {
        (Bytes::copy_from_slice(data), data.len())
    }
}

impl Streams {
    /// Handles a stream-related frame from the peer: STREAM, RESET_STREAM, STOP_SENDING,
    /// MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS, DATA_BLOCKED, STREAM_DATA_BLOCKED and
    /// STREAMS_BLOCKED (other frames are ignored).
    ///
    /// `payload` is the decrypted packet payload the frame's data points into; STREAM data is
    /// kept as a slice of it without copying when it is large next to the payload, else copied
    /// (see `recv`). `early`: the frame arrived in a 0-RTT packet.
    pub fn on_frame(
        &mut self,
        frame: &Frame<'_>,
        payload: &Bytes,
        early: bool,
        now: Instant,
    ) -> Result<(), TransportError> {
        debug_assert!(now >= self.now, "time ran backwards");
        self.now = self.now.max(now);
        let result = match *frame {
            Frame::Stream {
                id,
                offset,
                fin,
                data,
            } => self.on_stream(id, offset, fin, slice_of(payload, data), early),
            Frame::ResetStream {
                id,
                error_code,
                final_size,
            } => self.on_reset_stream(id, error_code, final_size),
            Frame::StopSending { id, error_code } => self.on_stop_sending(id, error_code),
            Frame::MaxData(max) => {
                self.raise_conn_credit(max);
                Ok(())
            }
            Frame::MaxStreamData { id, max } => self.on_max_stream_data(id, max),
            Frame::MaxStreams { dir, count } => {
                self.raise_local_max(dir, count);
                Ok(())
            }
            Frame::StreamDataBlocked { id, .. } => self.open_for(id, Half::Recv).map(|_| ()),
            Frame::StreamsBlocked { dir, limit } => {
                self.on_streams_blocked(dir, limit);
                Ok(())
            }
            Frame::StreamSkip {
                id,
                offset,
                messages,
            } => self.on_stream_skip(id, offset, messages),
            // Informational: our MAX_DATA goes out as the application reads.
            Frame::DataBlocked { .. } => Ok(()),
            _ => Ok(()),
        };
        result.map_err(|e| e.with_frame(frame.ty()))
    }

    /// Finds the stream a peer frame addresses, opening peer-initiated streams up to it
    /// implicitly. `Ok(false)`: the stream is closed and forgotten (late frames are ignored).
    fn open_for(&mut self, id: StreamId, half: Half) -> Result<bool, TransportError> {
        let local = id.initiator() == self.side;
        let state = TransportErrorCode::STREAM_STATE_ERROR;
        match (local, id.dir(), half) {
            (true, Dir::Uni, Half::Recv) => {
                return Err(TransportError::new(
                    state,
                    format!("peer sent data-side frame for stream {id}, which only we send on"),
                ));
            }
            (false, Dir::Uni, Half::Send) => {
                return Err(TransportError::new(
                    state,
                    format!(
                        "peer sent receiver-side frame for stream {id}, which only it sends on"
                    ),
                ));
            }
            _ => {}
        }
        if self.streams.contains_key(&id) {
            return Ok(true);
        }
        let dir = id.dir();
        if local {
            let opened = self.local.get(di(dir)).map_or(0, |c| c.opened);
            if id.index() >= opened {
                return Err(TransportError::new(
                    state,
                    format!("peer referred to stream {id}, which we have not opened"),
                ));
            }
            return Ok(false);
        }
        let Some(counts) = self.remote.get(di(dir)) else {
            return Ok(false);
        };
        if id.index() < counts.opened {
            return Ok(false);
        }
        if id.index() >= counts.max {
            return Err(TransportError::new(
                TransportErrorCode::STREAM_LIMIT_ERROR,
                format!(
                    "peer opened stream {id} (index {}) beyond our limit of {} {:?} streams",
                    id.index(),
                    counts.max,
                    dir
                ),
            ));
        }
        let (from, to) = (counts.opened, id.index());
        for index in from..=to {
            let new = StreamId::new(id.initiator(), dir, index);
            let stream = self.new_stream(new);
            self.streams.insert(new, stream);
        }
        if let Some(counts) = self.remote.get_mut(di(dir)) {
            counts.opened = to + 1;
            if !counts.event {
                counts.event = true;
                self.events.push_back(StreamEvent::Opened { dir });
            }
        }
        tracing::trace!(%id, "peer opened streams up to");
        Ok(true)
    }

    fn conn_room(&self) -> u64 {
        self.conn_recv.limit().saturating_sub(self.conn_received)
    }

    fn on_stream(
        &mut self,
        id: StreamId,
        offset: u64,
        fin: bool,
        (data, backing): (Bytes, usize),
        early: bool,
    ) -> Result<(), TransportError> {
        self.stream_end |= fin;
        if !self.open_for(id, Half::Recv)? {
            return Ok(());
        }
        let conn_room = self.conn_room();
        let (total, fragment_limit) = (self.fragments, self.fragment_limit);
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        recv.early |= early;
        let had_all_data = recv.has_all_data();
        let other_fragments = total.saturating_sub(recv.fragments());
        let room = Room {
            conn: conn_room,
            other_fragments,
            fragment_limit,
        };
        let received = recv.on_data(offset, data, backing, fin, room)?;
        self.stream_end |= !had_all_data && recv.has_all_data();
        self.fragments = other_fragments + recv.fragments();
        if recv.is_readable() && !recv.readable_signalled {
            recv.readable_signalled = true;
            self.events.push_back(StreamEvent::Readable { id });
        }
        self.conn_received += received.growth;
        self.release_conn(received.released);
        self.maybe_forget(id);
        Ok(())
    }

    fn on_reset_stream(
        &mut self,
        id: StreamId,
        error_code: u64,
        final_size: u64,
    ) -> Result<(), TransportError> {
        if !self.open_for(id, Half::Recv)? {
            return Ok(());
        }
        let conn_room = self.conn_room();
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        let fragments = recv.fragments();
        let (received, news) = recv.on_reset(error_code, final_size, conn_room)?;
        self.fragments = self.fragments.saturating_sub(fragments) + recv.fragments();
        if news {
            recv.readable_signalled = true;
            self.events.push_back(StreamEvent::Reset { id, error_code });
            tracing::trace!(%id, error_code, "peer reset stream");
        }
        self.conn_received += received.growth;
        self.release_conn(received.released);
        self.maybe_forget(id);
        Ok(())
    }

    fn on_stream_skip(
        &mut self,
        id: StreamId,
        offset: u64,
        messages: u64,
    ) -> Result<(), TransportError> {
        if !self.open_for(id, Half::Recv)? {
            return Ok(());
        }
        let conn_room = self.conn_room();
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        let received = recv.on_skip(offset, messages, conn_room)?;
        if recv.is_readable() && !recv.readable_signalled {
            recv.readable_signalled = true;
            self.events.push_back(StreamEvent::Readable { id });
        }
        self.conn_received += received.growth;
        self.release_conn(received.released);
        self.maybe_forget(id);
        Ok(())
    }

    fn on_stop_sending(&mut self, id: StreamId, error_code: u64) -> Result<(), TransportError> {
        if !self.open_for(id, Half::Send)? {
            return Ok(());
        }
        let Some(send) = self.stream_send(id) else {
            return Ok(());
        };
        if send.on_stop(error_code) {
            self.events
                .push_back(StreamEvent::Stopped { id, error_code });
            tracing::trace!(%id, error_code, "peer stopped stream");
            // RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM (with the peer's code).
            self.reset_send(id, error_code);
        }
        Ok(())
    }

    fn on_max_stream_data(&mut self, id: StreamId, max: u64) -> Result<(), TransportError> {
        if !self.open_for(id, Half::Send)? {
            return Ok(());
        }
        if let Some(send) = self.stream_send(id) {
            if send.credit.raise(max) {
                self.wake_writer(id);
            }
        }
        Ok(())
    }

    /// The peer is blocked at our stream limit: return freed slots now rather than waiting for
    /// the batching threshold.
    fn on_streams_blocked(&mut self, dir: Dir, limit: u64) {
        let concurrent = match dir {
            Dir::Bi => self.limits.max_concurrent_bidi,
            Dir::Uni => self.limits.max_concurrent_uni,
        };
        if let Some(counts) = self.remote.get_mut(di(dir)) {
            let target = counts
                .closed
                .saturating_add(concurrent)
                .min(MAX_STREAM_COUNT);
            if limit >= counts.max && target > counts.max {
                counts.max = target;
                counts.queued = true;
            }
        }
    }
}
