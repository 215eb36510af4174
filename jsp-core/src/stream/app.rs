//! The application's side of [`Streams`]: opening and accepting streams, writing, finishing,
//! resetting, reading, stopping, priorities, 0-RTT marks and events. Every call checks the
//! stream's direction first (a receive-only stream cannot be written, a send-only one cannot be
//! read) and reports misuse as a typed error; none of them panics.

use bytes::Bytes;

use super::recv::Recv;
use super::{di, Ctl, ReadError, StreamEvent, Streams, UnknownStream, WriteError};
use crate::frame::{Dir, StreamId};
use crate::time::{Duration, Instant};

impl Streams {
    /// Opens a stream; `None` when the peer's MAX_STREAMS is reached (a STREAMS_BLOCKED frame is
    /// queued and an `Available` event follows when the peer raises the limit).
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        let counts = self.local.get_mut(di(dir))?;
        if counts.opened >= counts.max {
            counts.event = true;
            if counts.signalled != Some(counts.max) {
                counts.signalled = Some(counts.max);
                counts.queued = true;
            }
            return None;
        }
        let id = StreamId::new(self.side, dir, counts.opened);
        counts.opened += 1;
        let stream = self.new_stream(id);
        self.streams.insert(id, stream);
        tracing::trace!(%id, "stream opened");
        Some(id)
    }

    /// The next stream the peer opened in `dir`, in order of stream ID.
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        let peer = !self.side;
        let counts = self.remote.get_mut(di(dir))?;
        if counts.accepted >= counts.opened {
            counts.event = false;
            return None;
        }
        let id = StreamId::new(peer, dir, counts.accepted);
        counts.accepted += 1;
        if counts.accepted == counts.opened {
            counts.event = false;
        }
        Some(id)
    }

    /// Copies as much of `data` as the peer's limits and the send buffer allow; `Ok(0)` means
    /// blocked (a `Writable` event follows when room appears).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        let conn_room = self
            .conn_send
            .available()
            .min(self.limits.send_buffer.saturating_sub(self.send_buffered));
        let conn_credit_binding = self.conn_send.available() <= conn_room;
        if id.dir() == Dir::Uni && id.initiator() != self.side {
            return Err(WriteError::NotSendable);
        }
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(WriteError::UnknownStream)?;
        send.check_writable()?;
        if !send.mode().is_reliable() {
            return Err(WriteError::MessagesOnly);
        }
        let stream_room = send.credit.available();
        let room = stream_room.min(conn_room);
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        if n < data.len() {
            if stream_room <= conn_room {
                if send.credit.take_signal() && !send.blocked_queued {
                    send.blocked_queued = true;
                    self.control.push_back(Ctl::StreamDataBlocked(id));
                }
                send.want_writable = true;
            } else {
                if !self.conn_writers.contains(&id) {
                    self.conn_writers.push_back(id);
                }
                send.want_writable = true;
                if conn_credit_binding && self.conn_send.take_signal() {
                    self.data_blocked_queued = true;
                }
            }
        }
        if n == 0 {
            return Ok(0);
        }
        send.write(Bytes::copy_from_slice(data.get(..n).unwrap_or(&[])));
        self.conn_send.take(n as u64);
        self.send_buffered += n as u64;
        self.reschedule(id);
        Ok(n)
    }

    /// Ends the stream after the data written so far.
    pub fn finish(&mut self, id: StreamId) -> Result<(), WriteError> {
        let send = self.writable_send(id)?;
        send.check_writable()?;
        send.finish();
        self.reschedule(id);
        Ok(())
    }

    /// Abandons the stream's sending with `error_code` (RESET_STREAM); unsent data is dropped.
    pub fn reset(&mut self, id: StreamId, error_code: u64) -> Result<(), WriteError> {
        self.writable_send(id)?;
        if self.reset_send(id, error_code) {
            Ok(())
        } else {
            Err(WriteError::ClosedStream)
        }
    }

    /// Sets the stream's send priority: a higher level is served strictly first; streams of
    /// one level share it by deadline, then by weight (see [`Self::set_weight`]).
    pub fn set_priority(&mut self, id: StreamId, priority: i32) -> Result<(), UnknownStream> {
        let stream = self.streams.get_mut(&id).ok_or(UnknownStream)?;
        if let Some(send) = stream.send.as_mut() {
            send.priority = priority;
            self.reschedule(id);
        }
        Ok(())
    }

    /// Sets the stream's weight (default [`super::DEFAULT_WEIGHT`]; 0 counts as 1): backlogged streams
    /// of one priority level without deadlines share the bytes sent in proportion to their
    /// weights (weights 3 and 1: 75 % and 25 %).
    pub fn set_weight(&mut self, id: StreamId, weight: u16) -> Result<(), UnknownStream> {
        let stream = self.streams.get_mut(&id).ok_or(UnknownStream)?;
        if let Some(send) = stream.send.as_mut() {
            send.weight = weight.max(1);
        }
        Ok(())
    }

    /// The stream's send priority and weight, if it has a send half.
    pub fn scheduling(&self, id: StreamId) -> Option<(i32, u16)> {
        let send = self.streams.get(&id)?.send.as_ref()?;
        Some((send.priority, send.weight))
    }

    /// Marks whether the stream's data may go in 0-RTT packets (client side: only requests the
    /// application knows are safe to replay). Unknown streams are ignored.
    pub fn set_replay_safe(&mut self, id: StreamId, safe: bool) {
        if let Some(send) = self.stream_send(id) {
            send.replay_safe = safe;
        }
    }

    /// The next in-order chunk of at most `max` bytes, without copying; `Ok(None)` at the clean
    /// end of the stream, `Err(Blocked)` when nothing is ready.
    pub fn read(&mut self, id: StreamId, max: usize) -> Result<Option<Bytes>, ReadError> {
        let mut result = self.readable_recv(id)?.read(max);
        if matches!(result, Err(ReadError::Blocked)) && self.jump_for_bytes(id) {
            result = self.readable_recv(id)?.read(max);
        }
        let recv = self.readable_recv(id)?;
        if !recv.is_readable() {
            recv.readable_signalled = false;
        }
        if let Ok(Some(chunk)) = &result {
            self.release(id, chunk.len() as u64);
        }
        if !matches!(result, Ok(Some(_)) | Err(ReadError::Blocked)) {
            self.maybe_forget(id);
        }
        result
    }

    /// Copies in-order data into `buf`; `Ok(None)` at the clean end of the stream,
    /// `Err(Blocked)` when nothing is ready.
    pub fn read_into(&mut self, id: StreamId, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        let mut filled = 0;
        while filled < buf.len() {
            // Once something was copied, stop before the end of the stream or a reset: those are
            // reported by the next call, so that this one's data is not lost with the stream.
            if filled > 0 && !self.readable_recv(id).is_ok_and(|r| r.has_data()) {
                break;
            }
            let rest = buf.get_mut(filled..).unwrap_or(&mut []);
            match self.read(id, rest.len()) {
                Ok(Some(chunk)) => {
                    if let Some(dst) = rest.get_mut(..chunk.len()) {
                        dst.copy_from_slice(&chunk);
                    }
                    filled += chunk.len();
                }
                Ok(None) if filled == 0 => return Ok(None),
                Err(e) if filled == 0 => return Err(e),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Some(filled))
    }

    /// Stops reading: buffered data is dropped and STOP_SENDING asks the peer to reset.
    pub fn stop(&mut self, id: StreamId, error_code: u64) -> Result<(), ReadError> {
        let recv = self.readable_recv(id)?;
        if recv.is_done() || recv.stopped().is_some() {
            return Ok(());
        }
        let dropped = recv.fragments();
        let released = recv.stop(error_code);
        recv.readable_signalled = false;
        if !recv.size_known() {
            recv.stop_queued = true;
            self.control.push_back(Ctl::StopSending(id));
        }
        self.fragments = self.fragments.saturating_sub(dropped);
        self.release_conn(released);
        self.maybe_forget(id);
        Ok(())
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// Server: whether data of the stream arrived in 0-RTT packets (and may be a replay).
    pub fn received_early(&self, id: StreamId) -> bool {
        self.streams
            .get(&id)
            .and_then(|s| s.recv.as_ref())
            .is_some_and(|r| r.early)
    }

    /// Bytes received and held for the application, over all streams (never more than the
    /// connection window we advertised).
    pub fn recv_buffered(&self) -> u64 {
        self.streams
            .values()
            .filter_map(|s| s.recv.as_ref())
            .map(Recv::buffered)
            .sum()
    }

    /// The connection-level limit we last computed for the peer (MAX_DATA).
    pub fn recv_limit(&self) -> u64 {
        self.conn_recv.limit()
    }

    /// A stream's receive window size (grows with auto-tuning), if it has a receive half.
    pub fn stream_recv_window(&self, id: StreamId) -> Option<u64> {
        let recv = self.streams.get(&id)?.recv.as_ref()?;
        Some(recv.window.window())
    }

    /// The current time: the connection calls this with the `now` of every input (datagram,
    /// timer, transmit) so that window auto-tuning times the application's reads correctly.
    pub fn set_now(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time ran backwards");
        self.now = self.now.max(now);
        if !self.timed.is_empty() {
            self.expire();
        }
    }

    /// The smoothed RTT, input to window auto-tuning.
    pub fn set_rtt(&mut self, smoothed: Duration) {
        self.rtt = smoothed;
    }
}
