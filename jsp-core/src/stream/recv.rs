//! The receive half of a stream: reassembly of STREAM data into in-order chunks, and the receive
//! state machine of RFC 9000 §3.2 (Recv → Size Known → Data Recvd → Data Read, or Reset Recvd →
//! Reset Read).
//!
//! Received data is kept in a map from offset to chunk. A piece of a frame that touches held
//! chunks is merged with them (copied) while the result stays within [`MERGE_LIMIT`] bytes.
//! Otherwise a piece large next to the packet it came in (at least [`MIN_ZERO_COPY`] bytes and
//! half the payload) stays the [`Bytes`] the payload was sliced into — no copy, the common case
//! of full-size frames — and a smaller one is copied, so that a few bytes never keep a whole
//! packet buffer alive. Flow control bounds the bytes held; these rules bound the memory behind
//! them: packet buffers kept alive by chunks are at most twice the bytes held (plus the tail of
//! the chunk being read), and any two touching chunks hold more than [`MERGE_LIMIT`] bytes
//! together (but for the tail being read), so a run of `n` bytes is at most `2n / 1025 + 1`
//! chunks. What flow control cannot bound is the number of runs cut off from the read offset by
//! holes: [`Recv::fragments`] counts them, and the caller limits them per connection.
//!
//! Invariants:
//! - chunks never overlap, are never empty and lie in `[read, end)`; `buffered` is the sum of
//!   their lengths, so a duplicate or overlapping segment costs nothing (only the bytes not yet
//!   held are kept);
//! - `runs` is the number of maximal runs of contiguous chunks; two touching chunks hold more
//!   than [`MERGE_LIMIT`] bytes together, unless one is the tail of a chunk partly read;
//! - `read` counts every byte released to flow control (read by the application, or discarded
//!   after a reset or STOP_SENDING), so `end - read <= window` and the buffer is bounded by the
//!   advertised window;
//! - once known, the final size never changes, and no data lies beyond it;
//! - pending STREAM_SKIP targets (`skips`) lie above `read` and at or below `end`: every byte
//!   below one that is not here never will be. Reads deliver what is contiguous from `read` and
//!   jump to the lowest target at the first hole (the byte API) or the first incomplete message
//!   (the message API), dropping everything in between (see [`Recv::jump`]). At most
//!   [`MAX_SKIP_TARGETS`] are held: beyond, the lowest is forgotten (a later jump then drops
//!   more, still counting every message exactly).

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};

use super::flow::RecvWindow;
use super::{ReadError, Skipped};
use crate::coding::Reader;
use crate::error::{TransportError, TransportErrorCode};

/// Received pieces shorter than this are copied out of the packet payload rather than kept as a
/// slice of it.
pub(super) const MIN_ZERO_COPY: usize = 256;

/// Copied pieces merge with the chunks they touch while the result stays within this many bytes
/// (so a merge copies at most this much).
pub(super) const MERGE_LIMIT: usize = 1024;

/// Whether a piece of `len` bytes out of a packet payload of `backing` bytes is kept as a slice
/// of it: only when it is large in absolute terms and at least half the payload, so packet
/// buffers kept alive never exceed twice the bytes held.
fn keeps_packet(len: usize, backing: usize) -> bool {
    len >= MIN_ZERO_COPY && len.saturating_mul(2) >= backing
}

/// The most STREAM_SKIP targets held per stream.
pub(super) const MAX_SKIP_TARGETS: usize = 64;

/// Room a STREAM frame may use on a stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    /// Connection-level credit left (MAX_DATA).
    pub(super) conn: u64,
    /// Out-of-order ranges held by the connection's other streams.
    pub(super) other_fragments: u64,
    /// The connection's limit on out-of-order ranges.
    pub(super) fragment_limit: u64,
}

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
    /// Maximal runs of contiguous chunks.
    runs: u64,
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
    /// STREAM_SKIP targets above `read`: offset → messages below it.
    skips: BTreeMap<u64, u64>,
    /// Messages delivered by `read_message` (the index of the next one, jumps included).
    msgs_read: u64,
}

/// What [`Recv::read_message`] took.
#[derive(Debug)]
pub(super) enum MessageOut {
    /// A whole message (without its framing) and the stream bytes it took.
    Message(Bytes, u64),
    /// A jump over abandoned data.
    Skipped(Skipped),
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
            runs: 0,
            reset_code: None,
            stopped: None,
            window,
            early: false,
            readable_signalled: false,
            max_data_queued: false,
            stop_queued: false,
            skips: BTreeMap::new(),
            msgs_read: 0,
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

    /// Out-of-order ranges held: runs of data not contiguous with the read offset.
    pub(super) fn fragments(&self) -> u64 {
        self.runs.saturating_sub(u64::from(self.starts_at_read()))
    }

    /// Whether a chunk starts at the read offset (the run there is not out of order).
    fn starts_at_read(&self) -> bool {
        self.chunks
            .first_key_value()
            .is_some_and(|(&start, _)| start == self.read)
    }

    /// The start and end of the highest chunk held. Data at or above its end touches no other
    /// chunk: the common case of a stream arriving in order, answered by one descent of the
    /// map instead of the two-sided searches a hole needs.
    fn last_chunk(&self) -> Option<(u64, u64)> {
        self.chunks
            .last_key_value()
            .map(|(&start, chunk)| (start, start + chunk.len() as u64))
    }

    /// The chunks held, by offset (to check invariants).
    #[cfg(test)]
    pub(super) fn chunks(&self) -> impl Iterator<Item = (u64, &Bytes)> {
        self.chunks.iter().map(|(&start, chunk)| (start, chunk))
    }

    /// The number of chunks held.
    #[cfg(test)]
    pub(super) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Asserts the invariants on chunks: in `[read, end)`, not empty, not overlapping, summing
    /// to `buffered`, in `runs` runs, touching ones too large to merge.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let (mut runs, mut bytes) = (0, 0);
        let mut last_end = None;
        let mut last: Option<(u64, usize)> = None;
        for (&start, chunk) in &self.chunks {
            assert!(!chunk.is_empty(), "empty chunk at {start}");
            assert!(
                start >= last_end.unwrap_or(self.read),
                "chunk at {start} overlaps"
            );
            if last_end != Some(start) {
                runs += 1;
            } else if let Some((last_start, last_len)) = last.filter(|&(at, _)| at != self.read) {
                assert!(
                    last_len + chunk.len() > MERGE_LIMIT,
                    "chunks at {last_start} and {start} should have merged"
                );
            }
            last = Some((start, chunk.len()));
            last_end = Some(start + chunk.len() as u64);
            bytes += chunk.len() as u64;
        }
        assert!(
            last_end.unwrap_or(self.read) <= self.end,
            "chunk beyond the end"
        );
        assert_eq!(bytes, self.buffered, "buffered is the sum of the chunks");
        assert_eq!(runs, self.runs, "runs counted");
    }

    /// The out-of-order ranges the stream would hold after storing data at `[at, end)`, `at`
    /// at or above the read offset. Pieces of one segment fill distinct holes, so each one's
    /// effect on the run count is known from the chunks already held.
    fn fragments_after(&self, mut at: u64, end: u64) -> u64 {
        let mut runs = self.runs;
        let mut at_read = self.starts_at_read();
        let last_end = self.last_chunk().map(|(_, e)| e);
        while at < end {
            if last_end.is_none_or(|e| e <= at) {
                // Beyond every chunk: one piece, touching at most the last chunk.
                let touches_prev = last_end == Some(at);
                runs = (runs + 1).saturating_sub(u64::from(touches_prev));
                at_read |= at == self.read;
                break;
            }
            let mut touches_prev = false;
            if let Some((&start, chunk)) = self.chunks.range(..=at).next_back() {
                let chunk_end = start + chunk.len() as u64;
                if chunk_end > at {
                    at = chunk_end;
                    continue;
                }
                touches_prev = chunk_end == at;
            }
            let next = self.chunks.range(at..).next().map(|(&start, _)| start);
            let piece_end = next.map_or(end, |next| next.min(end));
            let touches_next = next == Some(piece_end);
            runs = (runs + 1).saturating_sub(u64::from(touches_prev) + u64::from(touches_next));
            at_read |= at == self.read;
            at = piece_end;
        }
        runs.saturating_sub(u64::from(at_read))
    }

    /// The out-of-order ranges storing data at `[at, end)` would leave, as the fragment limit
    /// predicts them (to check the prediction against what storing does).
    #[cfg(test)]
    pub(super) fn predicted_fragments(&self, at: u64, end: u64) -> u64 {
        self.fragments_after(at.max(self.read), end)
    }

    /// Refuses data at `[at, end)` if it would take the connection's out-of-order ranges
    /// beyond `room.fragment_limit` (and raise this stream's count).
    fn check_fragments(&self, at: u64, end: u64, room: Room) -> Result<(), TransportError> {
        let now = self.fragments();
        let after = self.fragments_after(at.max(self.read), end);
        let total = room.other_fragments.saturating_add(after);
        if after > now && total > room.fragment_limit {
            return Err(error(
                TransportErrorCode::PROTOCOL_VIOLATION,
                format!(
                    "stream data too fragmented: the frame at {at}..{end} would make {total} \
                     out-of-order ranges, beyond the connection's limit of {}",
                    room.fragment_limit
                ),
            ));
        }
        Ok(())
    }

    /// Stores `piece` at `at`, a hole it fits in: merged (copied) with the chunks it touches
    /// while the result stays within [`MERGE_LIMIT`] bytes; otherwise as a slice of the packet
    /// payload of `backing` bytes when large next to it, else as a copy.
    fn store(&mut self, at: u64, piece: Bytes, backing: usize) {
        let len = piece.len();
        let end = at + len as u64;
        let (prev, next) = match self.last_chunk() {
            // In order: the last chunk is the only neighbour there can be.
            Some((start, last_end)) if last_end <= at => (
                (last_end == at).then(|| (start, (last_end - start) as usize)),
                None,
            ),
            None => (None, None),
            Some(_) => (
                self.chunks
                    .range(..at)
                    .next_back()
                    .filter(|(&start, chunk)| start + chunk.len() as u64 == at)
                    .map(|(&start, chunk)| (start, chunk.len())),
                self.chunks.get(&end).map(Bytes::len),
            ),
        };
        self.runs =
            (self.runs + 1).saturating_sub(u64::from(prev.is_some()) + u64::from(next.is_some()));
        self.buffered += len as u64;
        let mut total = len;
        let prev = prev.filter(|&(_, prev_len)| prev_len + total <= MERGE_LIMIT);
        total += prev.map_or(0, |(_, prev_len)| prev_len);
        let next = next.filter(|&next_len| next_len + total <= MERGE_LIMIT);
        total += next.unwrap_or(0);
        if prev.is_none() && next.is_none() && keeps_packet(len, backing) {
            self.chunks.insert(at, piece);
            return;
        }
        let mut merged = Vec::with_capacity(total);
        let mut start = at;
        if let Some(chunk) = prev.and_then(|(prev_start, _)| {
            start = prev_start;
            self.chunks.remove(&prev_start)
        }) {
            merged.extend_from_slice(&chunk);
        }
        merged.extend_from_slice(&piece);
        if let Some(chunk) = next.and_then(|_| self.chunks.remove(&end)) {
            merged.extend_from_slice(&chunk);
        }
        self.chunks.insert(start, Bytes::from(merged));
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

    /// Takes STREAM data at `offset`; `data` is a slice of a packet payload of `backing` bytes
    /// (or a buffer of its own, with `backing` its length).
    pub(super) fn on_data(
        &mut self,
        offset: u64,
        mut data: Bytes,
        backing: usize,
        fin: bool,
        room: Room,
    ) -> Result<Received, TransportError> {
        let len = data.len() as u64;
        let end = offset.saturating_add(len);
        self.check_final(offset, end, fin)?;
        let growth = self.check_flow(end, room.conn)?;
        let discarded = matches!(self.state, RecvState::ResetRecvd | RecvState::ResetRead);
        if !discarded && self.stopped.is_none() {
            self.check_fragments(offset, end, room)?;
        }
        self.end += growth;
        if discarded {
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
            if self.last_chunk().is_none_or(|(_, e)| e <= at) {
                // Beyond every chunk (in order, or the first data): nothing to skip or split.
                self.store(at, core::mem::take(&mut data), backing);
                break;
            }
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
            let gap = match self.chunks.range(at..).next() {
                Some((&next, _)) => next - at,
                None => u64::MAX,
            };
            let take = (data.len() as u64).min(gap) as usize;
            let piece = data.split_to(take);
            self.store(at, piece, backing);
            at += take as u64;
        }
        self.check_data_recvd();
        Ok(Received {
            growth,
            released: 0,
        })
    }

    /// Whether every byte up to the final size has arrived (Data Recvd or Data Read).
    pub(super) fn has_all_data(&self) -> bool {
        matches!(self.state, RecvState::DataRecvd | RecvState::DataRead)
    }

    /// Enters Data Recvd once every byte up to the known final size is here.
    fn check_data_recvd(&mut self) {
        if self.state == RecvState::SizeKnown
            && self.final_size.map(|size| size - self.read) == Some(self.buffered)
        {
            self.state = RecvState::DataRecvd;
        }
    }

    /// Takes a STREAM_SKIP: every byte below `offset` that is not here yet never will be, and
    /// `messages` messages begin below it. The target counts as received data for flow control
    /// (like a final size); it applies when a read reaches a hole below it.
    pub(super) fn on_skip(
        &mut self,
        offset: u64,
        messages: u64,
        conn_room: u64,
    ) -> Result<Received, TransportError> {
        self.check_final(offset, offset, false)?;
        let growth = self.check_flow(offset, conn_room)?;
        self.end += growth;
        if matches!(self.state, RecvState::ResetRecvd | RecvState::ResetRead) {
            return Ok(Received {
                growth,
                released: 0,
            });
        }
        if self.stopped.is_some() {
            let released = self.end - self.read;
            self.read = self.end;
            return Ok(Received { growth, released });
        }
        if offset > self.read {
            self.skips.insert(offset, messages);
            if self.skips.len() > MAX_SKIP_TARGETS {
                self.skips.pop_first();
            }
        }
        Ok(Received {
            growth,
            released: 0,
        })
    }

    /// Whether a STREAM_SKIP target lies ahead of the read offset.
    pub(super) fn skip_pending(&self) -> bool {
        self.skips
            .last_key_value()
            .is_some_and(|(&target, _)| target > self.read)
    }

    /// Jumps to the lowest STREAM_SKIP target ahead, dropping what is held below it; returns
    /// what was skipped (the caller releases `bytes` to flow control), or `None` if no target
    /// lies ahead.
    pub(super) fn jump(&mut self) -> Option<Skipped> {
        while self
            .skips
            .first_key_value()
            .is_some_and(|(&target, _)| target <= self.read)
        {
            self.skips.pop_first();
        }
        let (target, messages) = self.skips.pop_first()?;
        while let Some(entry) = self.chunks.first_entry() {
            let start = *entry.key();
            if start >= target {
                break;
            }
            let mut chunk = entry.remove();
            self.buffered -= chunk.len() as u64;
            let chunk_end = start + chunk.len() as u64;
            if chunk_end > target {
                chunk.advance((target - start) as usize);
                self.buffered += chunk.len() as u64;
                self.chunks.insert(target, chunk);
                break;
            }
        }
        let mut runs = 0;
        let mut last_end = None;
        for (&start, chunk) in &self.chunks {
            if last_end != Some(start) {
                runs += 1;
            }
            last_end = Some(start + chunk.len() as u64);
        }
        self.runs = runs;
        let skipped = Skipped {
            first: self.msgs_read,
            count: messages.saturating_sub(self.msgs_read),
            bytes: target - self.read,
        };
        self.read = target;
        self.msgs_read = self.msgs_read.max(messages);
        self.check_data_recvd();
        Some(skipped)
    }

    /// The message at the read offset: `Ok(Some((total, prefix)))` when all its `total` bytes
    /// (framing included, the length prefix taking `prefix`) are here, `Ok(None)` when not yet,
    /// `Err(len)` when it announces a length that can never be read whole: beyond the stream
    /// window, or beyond the final size.
    fn message_at_read(&self) -> Result<Option<(u64, usize)>, u64> {
        let mut head = [0u8; 8];
        let mut have = 0usize;
        let mut contiguous = 0u64;
        let mut at = self.read;
        for (&start, chunk) in self.chunks.range(self.read..) {
            if start != at {
                break;
            }
            if have < head.len() {
                let n = (head.len() - have).min(chunk.len());
                if let (Some(dst), Some(src)) = (head.get_mut(have..have + n), chunk.get(..n)) {
                    dst.copy_from_slice(src);
                }
                have += n;
            }
            contiguous += chunk.len() as u64;
            at += chunk.len() as u64;
        }
        let first = match head.first() {
            Some(&b) if have > 0 => b,
            _ => return Ok(None),
        };
        let prefix = 1usize << (first >> 6);
        let Some(Ok(len)) = head
            .get(..prefix)
            .filter(|_| have >= prefix)
            .map(|h| Reader::new(h).varint())
        else {
            return Ok(None);
        };
        let total = len.saturating_add(prefix as u64);
        let beyond_final = self
            .final_size
            .is_some_and(|size| self.read.saturating_add(total) > size);
        if total > self.window.window() || beyond_final {
            return Err(len);
        }
        Ok((contiguous >= total).then_some((total, prefix)))
    }

    /// The next whole message (`MessageOut::Message`), or a jump over abandoned data when the
    /// message at the read offset is incomplete and a STREAM_SKIP target lies ahead (it can
    /// then never complete); `Ok(None)` at the clean end of the stream.
    pub(super) fn read_message(&mut self) -> Result<Option<MessageOut>, ReadError> {
        if !self.readable()? {
            return Ok(None);
        }
        let at_read = self.message_at_read();
        if !matches!(at_read, Ok(Some(_))) {
            if let Some(skipped) = self.jump() {
                return Ok(Some(MessageOut::Skipped(skipped)));
            }
        }
        match at_read {
            Ok(Some((total, prefix))) => {
                // The common case, a message within one chunk, is a slice of it (no copy);
                // otherwise the parts are copied together.
                let want = usize::try_from(total).unwrap_or(usize::MAX);
                let mut whole = match self.read(want) {
                    Ok(Some(part)) => part,
                    _ => Bytes::new(),
                };
                let mut got = whole.len() as u64;
                if got < total {
                    let mut joined = Vec::with_capacity(want);
                    joined.extend_from_slice(&whole);
                    while got < total {
                        let rest = usize::try_from(total - got).unwrap_or(usize::MAX);
                        match self.read(rest) {
                            Ok(Some(part)) => {
                                got += part.len() as u64;
                                joined.extend_from_slice(&part);
                            }
                            _ => break,
                        }
                    }
                    whole = Bytes::from(joined);
                }
                self.msgs_read += 1;
                Ok(Some(MessageOut::Message(
                    whole.slice(prefix.min(whole.len())..),
                    got,
                )))
            }
            Err(len) => Err(ReadError::MessageTooLarge(len)),
            Ok(None) => {
                if self.final_size == Some(self.read) {
                    self.state = RecvState::DataRead;
                    return Ok(None);
                }
                Err(ReadError::Blocked)
            }
        }
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
        self.runs = 0;
        self.skips.clear();
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
        self.runs = 0;
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
            _ => {
                self.chunks.contains_key(&self.read)
                    || self.final_size == Some(self.read)
                    || self.skip_pending()
            }
        }
    }

    /// Whether in-order data (not just the end or a reset) is ready at the read offset.
    pub(super) fn has_data(&self) -> bool {
        self.stopped.is_none()
            && !matches!(self.state, RecvState::ResetRecvd | RecvState::ResetRead)
            && self.chunks.contains_key(&self.read)
    }

    /// Whether the receive half is over: the application saw the end or the reset, or stopped
    /// reading and the final size is known (so connection accounting is complete).
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state, RecvState::DataRead | RecvState::ResetRead)
            || (self.stopped.is_some() && self.final_size.is_some())
    }

    /// The gate of both read paths: an error once reading was stopped or the stream reset (a
    /// reset is then marked read), `Ok(false)` once all data was read, `Ok(true)` otherwise.
    fn readable(&mut self) -> Result<bool, ReadError> {
        if self.stopped.is_some() {
            return Err(ReadError::ClosedStream);
        }
        match self.state {
            RecvState::ResetRecvd | RecvState::ResetRead => {
                self.state = RecvState::ResetRead;
                Err(ReadError::Reset(self.reset_code.unwrap_or(0)))
            }
            RecvState::DataRead => Ok(false),
            _ => Ok(true),
        }
    }

    /// The next in-order chunk, at most `max` bytes; `Ok(None)` at the end of the stream.
    pub(super) fn read(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        if !self.readable()? {
            return Ok(None);
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
                    let out = entry.remove();
                    if !self.chunks.contains_key(&(self.read + out.len() as u64)) {
                        // The run at the read offset is used up.
                        self.runs = self.runs.saturating_sub(1);
                    }
                    out
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

    /// A summary for failing tests.
    #[cfg(test)]
    pub(super) fn debug_state(&self) -> String {
        format!(
            "state {:?} read {} end {} final {:?} skips {:?} msgs_read {} chunks {:?}",
            self.state,
            self.read,
            self.end,
            self.final_size,
            self.skips,
            self.msgs_read,
            self.chunks
                .iter()
                .take(4)
                .map(|(&s, c)| (s, c.len()))
                .collect::<Vec<_>>()
        )
    }
}
