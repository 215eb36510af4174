//! The receive half of a stream: reassembly of STREAM data into in-order chunks, and the receive
//! state machine of RFC 9000 §3.2 (Recv → Size Known → Data Recvd → Data Read, or Reset Recvd →
//! Reset Read).
//!
//! Received data is kept as the [`Bytes`] the packet payload was sliced into — no copy — in a map
//! from offset to chunk. Invariants:
//! - chunks never overlap and lie in `[read, end)`; `buffered` is the sum of their lengths, so a
//!   duplicate or overlapping segment costs nothing (only the bytes not yet held are kept);
//! - `read` counts every byte released to flow control (read by the application, or discarded
//!   after a reset or STOP_SENDING), so `end - read <= window` and the buffer is bounded by the
//!   advertised window;
//! - once known, the final size never changes, and no data lies beyond it.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};

use super::flow::RecvWindow;
use super::ReadError;
use crate::error::{TransportError, TransportErrorCode};

/// The receive states of RFC 9000 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecvState {
    /// Receiving; the final size is not known.
    Recv,
    /// A FIN arrived; some data below the final size is missing.
    SizeKnown,
    /// Every byte up to the final size arrived; the application has not read it all.
    DataRecvd,
    /// The application saw the end of the stream.
    DataRead,
    /// The peer reset the stream; the application has not been told.
    ResetRecvd,
    /// The application was told of the reset.
    ResetRead,
}

/// What a received frame did to connection-level accounting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Received {
    /// How much the stream's highest received offset grew (counts against MAX_DATA).
    pub(super) growth: u64,
    /// Bytes released at once because nobody will read them (after STOP_SENDING or a reset).
    pub(super) released: u64,
}

/// The receive half of a stream.
#[derive(Debug)]
pub(super) struct Recv {
    state: RecvState,
    chunks: BTreeMap<u64, Bytes>,
    /// Bytes released: everything below is read or discarded.
    read: u64,
    /// The highest offset received (or the final size after a reset).
    end: u64,
    final_size: Option<u64>,
    buffered: u64,
    reset_code: Option<u64>,
    /// The application called `stop` with this code: incoming data is discarded.
    stopped: Option<u64>,
    /// The stream-level window we extend to the peer.
    pub(super) window: RecvWindow,
    /// Some of the stream's data arrived in 0-RTT packets.
    pub(super) early: bool,
    /// A `Readable` event is outstanding.
    pub(super) readable_signalled: bool,
    /// A MAX_STREAM_DATA frame is queued.
    pub(super) max_data_queued: bool,
    /// A STOP_SENDING frame is queued.
    pub(super) stop_queued: bool,
}

fn error(code: TransportErrorCode, reason: String) -> TransportError {
    TransportError::new(code, reason)
}

impl Recv {
    /// A receive half with `window`.
    pub(super) fn new(window: RecvWindow) -> Self {
        Self {
            state: RecvState::Recv,
            chunks: BTreeMap::new(),
            read: 0,
            end: 0,
            final_size: None,
            buffered: 0,
            reset_code: None,
            stopped: None,
            window,
            early: false,
            readable_signalled: false,
            max_data_queued: false,
            stop_queued: false,
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(super) fn state(&self) -> RecvState {
        self.state
    }

    /// Bytes held for the application.
    pub(super) fn buffered(&self) -> u64 {
        self.buffered
    }

    /// The code the application stopped the stream with.
    pub(super) fn stopped(&self) -> Option<u64> {
        self.stopped
    }

    /// Whether the final size is known (no more window updates are needed).
    pub(super) fn size_known(&self) -> bool {
        self.final_size.is_some()
    }

    /// Checks a segment at `[offset, end)` (with FIN or not) against the final size.
    fn check_final(&self, offset: u64, end: u64, fin: bool) -> Result<(), TransportError> {
        let code = TransportErrorCode::FINAL_SIZE_ERROR;
        match self.final_size {
            Some(size) if fin && end != size => Err(error(
                code,
                format!("peer changed the stream's final size from {size} to {end}"),
            )),
            Some(size) if end > size => Err(error(
                code,
                format!("peer sent data at {offset}..{end}, beyond the final size {size}"),
            )),
            None if fin && end < self.end => Err(error(
                code,
                format!(
                    "peer set final size {end} below data it already sent (up to {})",
                    self.end
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that data up to `end` fits the stream window and `conn_room` more bytes of
    /// connection credit; returns the growth of the highest received offset.
    fn check_flow(&self, end: u64, conn_room: u64) -> Result<u64, TransportError> {
        let code = TransportErrorCode::FLOW_CONTROL_ERROR;
        if end > self.window.limit() {
            return Err(error(
                code,
                format!(
                    "peer sent up to offset {end}, beyond the stream limit {}",
                    self.window.limit()
                ),
            ));
        }
        let growth = end.saturating_sub(self.end);
        if growth > conn_room {
            return Err(error(
                code,
                format!(
                    "peer exceeded the connection limit by {} bytes",
                    growth - conn_room
                ),
            ));
        }
        Ok(growth)
    }

    /// Takes STREAM data at `offset` (zero-copy: `data` is a slice of the packet payload).
    pub(super) fn on_data(
        &mut self,
        offset: u64,
        mut data: Bytes,
        fin: bool,
        conn_room: u64,
    ) -> Result<Received, TransportError> {
        let len = data.len() as u64;
        let end = offset.saturating_add(len);
        self.check_final(offset, end, fin)?;
        let growth = self.check_flow(end, conn_room)?;
        self.end += growth;
        if matches!(self.state, RecvState::ResetRecvd | RecvState::ResetRead) {
            return Ok(Received {
                growth,
                released: 0,
            });
        }
        if fin && self.final_size.is_none() {
            self.final_size = Some(end);
            self.state = RecvState::SizeKnown;
        }
        if self.stopped.is_some() {
            // Nobody will read it: release it to the connection window at once.
            let released = self.end - self.read;
            self.read = self.end;
            return Ok(Received { growth, released });
        }
        let mut at = offset;
        if at < self.read {
            let skip = self.read - at;
            if skip >= len {
                data.clear();
            } else {
                data.advance(skip as usize);
                at = self.read;
            }
        }
        while !data.is_empty() {
            // Skip what an earlier chunk already covers.
            if let Some((&start, chunk)) = self.chunks.range(..=at).next_back() {
                let chunk_end = start + chunk.len() as u64;
                if chunk_end > at {
                    let skip = (chunk_end - at).min(data.len() as u64);
                    data.advance(skip as usize);
                    at += skip;
                    continue;
                }
            }
            // Keep the part up to the next chunk.
            let room = match self.chunks.range(at..).next() {
                Some((&next, _)) => next - at,
                None => u64::MAX,
            };
            let take = (data.len() as u64).min(room) as usize;
            let piece = data.split_to(take);
            self.buffered += take as u64;
            self.chunks.insert(at, piece);
            at += take as u64;
        }
        if self.state == RecvState::SizeKnown
            && self.final_size.map(|size| size - self.read) == Some(self.buffered)
        {
            self.state = RecvState::DataRecvd;
        }
        Ok(Received {
            growth,
            released: 0,
        })
    }

    /// Takes a RESET_STREAM; returns the accounting and whether the reset is news for the
    /// application (not ignored because all data had arrived, nor already known).
    pub(super) fn on_reset(
        &mut self,
        code: u64,
        final_size: u64,
        conn_room: u64,
    ) -> Result<(Received, bool), TransportError> {
        self.check_final(final_size, final_size, true)?;
        let growth = self.check_flow(final_size, conn_room)?;
        self.end += growth;
        if matches!(
            self.state,
            RecvState::DataRecvd
                | RecvState::DataRead
                | RecvState::ResetRecvd
                | RecvState::ResetRead
        ) {
            // Every byte is here (the application may still read it all), or already reset.
            return Ok((
                Received {
                    growth,
                    released: 0,
                },
                false,
            ));
        }
        let released = final_size - self.read;
        self.chunks.clear();
        self.buffered = 0;
        self.read = final_size;
        self.final_size = Some(final_size);
        self.reset_code = Some(code);
        self.state = if self.stopped.is_some() {
            RecvState::ResetRead
        } else {
            RecvState::ResetRecvd
        };
        Ok((Received { growth, released }, self.stopped.is_none()))
    }

    /// The application stops reading: buffered data is dropped; returns the bytes released.
    pub(super) fn stop(&mut self, code: u64) -> u64 {
        if self.stopped.is_some() {
            return 0;
        }
        self.stopped = Some(code);
        self.chunks.clear();
        self.buffered = 0;
        let released = self.end - self.read;
        self.read = self.end;
        released
    }

    /// Whether a read would return something other than `Blocked`.
    pub(super) fn is_readable(&self) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        match self.state {
            RecvState::ResetRecvd => true,
            RecvState::DataRead | RecvState::ResetRead => false,
            _ => self.chunks.contains_key(&self.read) || self.final_size == Some(self.read),
        }
    }

    /// Whether the receive half is over: the application saw the end or the reset, or stopped
    /// reading and the final size is known (so connection accounting is complete).
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state, RecvState::DataRead | RecvState::ResetRead)
            || (self.stopped.is_some() && self.final_size.is_some())
    }

    /// The next in-order chunk, at most `max` bytes; `Ok(None)` at the end of the stream.
    pub(super) fn read(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        if self.stopped.is_some() {
            return Err(ReadError::ClosedStream);
        }
        match self.state {
            RecvState::ResetRecvd | RecvState::ResetRead => {
                self.state = RecvState::ResetRead;
                return Err(ReadError::Reset(self.reset_code.unwrap_or(0)));
            }
            RecvState::DataRead => return Ok(None),
            _ => {}
        }
        if let Some(mut entry) = self.chunks.first_entry() {
            if *entry.key() == self.read {
                let chunk = entry.get_mut();
                let out = if chunk.len() > max {
                    let head = chunk.split_to(max);
                    let rest = chunk.clone();
                    entry.remove();
                    self.chunks.insert(self.read + max as u64, rest);
                    head
                } else {
                    entry.remove()
                };
                self.read += out.len() as u64;
                self.buffered -= out.len() as u64;
                return Ok(Some(out));
            }
        }
        if self.final_size == Some(self.read) {
            self.state = RecvState::DataRead;
            return Ok(None);
        }
        Err(ReadError::Blocked)
    }
}
