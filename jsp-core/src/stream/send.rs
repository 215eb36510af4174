//! The send half of a stream: the send buffer and the send state machine of RFC 9000 §3.1
//! (Ready → Send → Data Sent → Data Recvd, or Reset Sent → Reset Recvd).
//!
//! The buffer holds the application's bytes as [`Bytes`] chunks from the lowest unacknowledged
//! offset to the highest written one. Invariants:
//! - `acked_base <= unsent <= written`; the chunks cover exactly `[acked_base, written)`, in
//!   order, without gaps, and the first starts at `acked_base`;
//! - `retransmit` (lost ranges, sent before new data) and `acked` (acknowledged ranges above
//!   `acked_base`) lie inside `[acked_base, unsent)` and never share a byte;
//! - `written` never exceeds the peer's stream limit (writes are capped by it), so new data is
//!   always sendable as far as flow control goes; after a reset the buffer is empty for good.
//!
//! Partially reliable and best-effort streams (see [`DeliveryMode`]) carry whole messages only.
//! `msgs` lists the messages from the lowest not yet acknowledged or abandoned one up, in
//! offset order and without gaps; their deadlines only grow. Abandoning a message marks its
//! whole range as done (like an acknowledgement: it is freed and never sent again). Once every
//! byte below a run of abandoned messages is acknowledged or abandoned, the end of the run
//! becomes a STREAM_SKIP target: the receiver, at the hole the run leaves, jumps to the run's
//! end and goes on with the (acknowledged) messages after it. Invariants on top of the above:
//! - the first message starts at `msg_base_offset <= acked_base` and is live (neither fully
//!   acknowledged nor abandoned), so the earliest deadline is the first message's;
//! - every STREAM_SKIP target (`skips`) is a message boundary at or below `acked_base`; each
//!   is sent until acknowledged, and the half is not done while one is unacknowledged.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, Bytes};

use super::flow::SendCredit;
use super::sched::{Slot, DEFAULT_WEIGHT};
use super::{DeliveryMode, SendStats, WriteError};
use crate::coding::{BufferTooSmall, Writer};
use crate::frame::{encode_stream_header, stream_header_len, StreamId};
use crate::range_set::RangeSet;
use crate::time::{Duration, Instant};

/// The send states of RFC 9000 §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendState {
    /// Opened; nothing sent yet.
    Ready,
    /// Some data sent; more may follow.
    Send,
    /// The FIN was sent; some data is unacknowledged.
    DataSent,
    /// Every byte and the FIN were acknowledged.
    DataRecvd,
    /// We reset the stream; the RESET_STREAM is unacknowledged.
    ResetSent,
    /// The RESET_STREAM was acknowledged.
    ResetRecvd,
}

/// Where the FIN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fin {
    /// The application has not finished the stream.
    None,
    /// Finished; the FIN is owed to the peer (never sent, or lost).
    Queued,
    /// Sent and not yet acknowledged.
    Sent,
    /// Acknowledged.
    Acked,
}

/// One STREAM frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) fin: bool,
    retransmit: bool,
}

/// The application's bytes from the lowest unacknowledged offset up.
#[derive(Debug, Default)]
struct SendBuf {
    chunks: VecDeque<(u64, Bytes)>,
    acked_base: u64,
    unsent: u64,
    written: u64,
    retransmit: RangeSet,
    acked: RangeSet,
}

impl SendBuf {
    fn push(&mut self, data: Bytes) {
        let len = data.len() as u64;
        self.chunks.push_back((self.written, data));
        self.written += len;
    }

    /// Copies `[offset, offset + len)` into `w`.
    fn copy_to(&self, offset: u64, len: u64, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        let first = self
            .chunks
            .partition_point(|(start, b)| start + b.len() as u64 <= offset);
        let end = offset + len;
        for (start, chunk) in self.chunks.iter().skip(first) {
            if *start >= end {
                break;
            }
            let from = offset.saturating_sub(*start) as usize;
            let to = ((end - start) as usize).min(chunk.len());
            w.bytes(chunk.get(from..to).unwrap_or(&[]))?;
        }
        Ok(())
    }

    /// Records an acknowledgement; returns the bytes freed from the buffer.
    fn on_ack(&mut self, offset: u64, len: u64) -> u64 {
        let end = offset + len;
        if end <= self.acked_base {
            return 0;
        }
        let range = offset.max(self.acked_base)..end.min(self.unsent);
        self.retransmit.remove(range.clone());
        self.acked.insert(range);
        let old = self.acked_base;
        while self.acked.min() == Some(self.acked_base) {
            match self.acked.pop_min() {
                Some(r) => self.acked_base = r.end,
                None => break,
            }
        }
        while let Some((start, chunk)) = self.chunks.front_mut() {
            let chunk_end = *start + chunk.len() as u64;
            if chunk_end <= self.acked_base {
                self.chunks.pop_front();
            } else {
                if *start < self.acked_base {
                    chunk.advance((self.acked_base - *start) as usize);
                    *start = self.acked_base;
                }
                break;
            }
        }
        self.acked_base - old
    }

    /// Queues again the bytes of `[offset, offset + len)` that are sent, unacknowledged and
    /// not already queued; returns how many.
    fn requeue(&mut self, offset: u64, len: u64) -> u64 {
        self.queue_retransmit(offset, len, true)
    }

    /// Queues the parts of a lost range that are neither acknowledged nor freed; returns how
    /// many bytes that is (parts already queued count again).
    fn on_lost(&mut self, offset: u64, len: u64) -> u64 {
        self.queue_retransmit(offset, len, false)
    }

    /// Queues for retransmission the bytes of `[offset, offset + len)` that are sent and not
    /// acknowledged; returns how many it counted: with `only_new`, those not already queued.
    fn queue_retransmit(&mut self, offset: u64, len: u64, only_new: bool) -> u64 {
        let range = offset.max(self.acked_base)..(offset + len).min(self.unsent);
        if range.is_empty() {
            return 0;
        }
        let mut todo = RangeSet::new();
        todo.insert(range);
        todo.subtract(&self.acked);
        if only_new {
            todo.subtract(&self.retransmit);
        }
        let mut queued = 0;
        for r in todo.iter() {
            queued += r.end - r.start;
            self.retransmit.insert(r);
        }
        queued
    }
}

/// One message of a partially reliable or best-effort stream.
#[derive(Debug, Clone, Copy)]
struct Msg {
    start: u64,
    end: u64,
    /// When it stops being worth delivering (partially reliable only).
    deadline: Option<Instant>,
    abandoned: bool,
    /// Some of its bytes were sent.
    sent: bool,
    /// Its last-chance check is done (see [`Send::last_chance`]).
    checked: bool,
}

/// The send half of a stream.
#[derive(Debug)]
pub(super) struct Send {
    state: SendState,
    buf: SendBuf,
    fin: Fin,
    mode: DeliveryMode,
    /// Messages from the first live one up (non-reliable modes only).
    msgs: VecDeque<Msg>,
    /// Index and offset of `msgs.front()` (or of the next message when empty).
    msg_base_index: u64,
    msg_base_offset: u64,
    /// Reliable streams: the messages sent with a deadline (start, end, deadline), from the
    /// lowest not entirely acknowledged up, for scheduling only (never abandoned).
    deadlines: VecDeque<(u64, u64, Instant)>,
    /// The latest deadline given to a message so far.
    last_deadline: Option<Instant>,
    /// Unacknowledged STREAM_SKIP targets: offset → (messages below it, owed to the peer,
    /// times sent).
    skips: BTreeMap<u64, (u64, bool, u8)>,
    /// Targets newly owed, for which the caller queues a control entry each.
    pub(super) skips_to_queue: u32,
    pub(super) stats: SendStats,
    /// The peer's MAX_STREAM_DATA; `used` is `written`.
    pub(super) credit: SendCredit,
    stop_code: Option<u64>,
    reset: Option<(u64, u64)>,
    /// Higher goes first.
    pub(super) priority: i32,
    /// The stream's data may go in 0-RTT packets.
    pub(super) replay_safe: bool,
    /// Its share of its priority level against the level's other streams (fair queuing).
    pub(super) weight: u16,
    /// Its fair-queuing tag relative to its level's virtual time, kept while it is out of the
    /// scheduler (see `sched`).
    pub(super) lag: u128,
    /// Where the stream is queued for sending, if queued.
    pub(super) in_ready: Option<Slot>,
    /// A RESET_STREAM frame is queued.
    pub(super) reset_queued: bool,
    /// A STREAM_DATA_BLOCKED frame is queued.
    pub(super) blocked_queued: bool,
    /// A write came up short: a `Writable` event is owed when room appears.
    pub(super) want_writable: bool,
}

impl Send {
    /// A send half the peer lets send `max_data` bytes.
    pub(super) fn new(max_data: u64) -> Self {
        Self {
            state: SendState::Ready,
            buf: SendBuf::default(),
            fin: Fin::None,
            mode: DeliveryMode::Reliable,
            msgs: VecDeque::new(),
            msg_base_index: 0,
            msg_base_offset: 0,
            deadlines: VecDeque::new(),
            last_deadline: None,
            skips: BTreeMap::new(),
            skips_to_queue: 0,
            stats: SendStats::default(),
            credit: SendCredit::new(max_data),
            stop_code: None,
            reset: None,
            priority: 0,
            weight: DEFAULT_WEIGHT,
            lag: 0,
            replay_safe: false,
            in_ready: None,
            reset_queued: false,
            blocked_queued: false,
            want_writable: false,
        }
    }

    /// The current state.
    #[cfg(test)]
    pub(super) fn state(&self) -> SendState {
        self.state
    }

    /// The RESET_STREAM to send (code, final size), while the reset is unacknowledged.
    pub(super) fn reset_frame(&self) -> Option<(u64, u64)> {
        match self.state {
            SendState::ResetSent => self.reset,
            _ => None,
        }
    }

    /// Whether the application may still write or finish.
    pub(super) fn check_writable(&self) -> Result<(), WriteError> {
        if let Some(code) = self.stop_code {
            return Err(WriteError::Stopped(code));
        }
        if self.fin != Fin::None || self.reset.is_some() {
            return Err(WriteError::ClosedStream);
        }
        Ok(())
    }

    /// Appends application data (the caller checked the credit).
    pub(super) fn write(&mut self, data: Bytes) {
        self.credit.take(data.len() as u64);
        self.buf.push(data);
    }

    /// The application finished the stream.
    pub(super) fn finish(&mut self) {
        self.fin = Fin::Queued;
    }

    /// Whether the half is over (all acknowledged, or the reset acknowledged).
    pub(super) fn is_done(&self) -> bool {
        matches!(self.state, SendState::DataRecvd | SendState::ResetRecvd)
    }

    /// Whether a STREAM frame is owed: lost data, new data, or the FIN.
    pub(super) fn has_sendable(&self) -> bool {
        match self.state {
            SendState::Ready | SendState::Send | SendState::DataSent => {
                !self.buf.retransmit.is_empty()
                    || self.buf.unsent < self.buf.written
                    || self.fin == Fin::Queued
            }
            _ => false,
        }
    }

    /// Bytes held in the buffer: written and not yet acknowledged.
    #[cfg(test)]
    pub(super) fn unacked(&self) -> u64 {
        self.buf.written - self.buf.acked_base
    }

    /// The offset of the next byte to send: the first lost range's, else the first unsent one
    /// (`None` when only a FIN or nothing is owed).
    fn next_offset(&self) -> Option<u64> {
        if let Some(r) = self.buf.retransmit.iter().next() {
            Some(r.start)
        } else {
            (self.buf.unsent < self.buf.written).then_some(self.buf.unsent)
        }
    }

    /// The message holding `offset`, as (end, deadline), if it has a deadline.
    fn message_deadline(&self, offset: u64) -> Option<(u64, Instant)> {
        if self.mode.is_reliable() {
            let i = self.deadlines.partition_point(|&(_, end, _)| end <= offset);
            let &(start, end, d) = self.deadlines.get(i)?;
            return (start <= offset).then_some((end, d));
        }
        let i = self.msgs.partition_point(|m| m.end <= offset);
        let msg = self.msgs.get(i)?;
        Some((msg.end, msg.deadline?))
    }

    /// The deadline of the message the next frame starts in, if it has one: the stream's key
    /// for earliest-deadline-first scheduling.
    pub(super) fn head_deadline(&self) -> Option<Instant> {
        if !self.has_sendable() {
            return None;
        }
        self.message_deadline(self.next_offset()?).map(|(_, d)| d)
    }

    /// The end of the message the next frame starts in, if it has a deadline.
    pub(super) fn head_message_end(&self) -> Option<u64> {
        self.message_deadline(self.next_offset()?)
            .map(|(end, _)| end)
    }

    /// The next STREAM frame that fits in `room` bytes: lost data first, then new data, then a
    /// bare FIN; its data ends at `end` at the latest.
    pub(super) fn plan_until(&self, id: StreamId, room: usize, end: Option<u64>) -> Option<Plan> {
        let mut plan = self.plan(id, room)?;
        if let Some(end) = end.filter(|&e| e > plan.offset && e < plan.offset + plan.len) {
            plan.len = end - plan.offset;
            plan.fin = false;
        }
        Some(plan)
    }

    /// The next STREAM frame that fits in `room` bytes: lost data first, then new data, then a
    /// bare FIN.
    pub(super) fn plan(&self, id: StreamId, room: usize) -> Option<Plan> {
        let (offset, avail, retransmit) = if let Some(r) = self.buf.retransmit.iter().next() {
            (r.start, r.end - r.start, true)
        } else if self.buf.unsent < self.buf.written {
            (self.buf.unsent, self.buf.written - self.buf.unsent, false)
        } else if self.fin == Fin::Queued {
            (self.buf.written, 0, false)
        } else {
            return None;
        };
        let want = usize::try_from(avail).unwrap_or(usize::MAX).min(room);
        let header = stream_header_len(id, offset, want);
        let len = (room.checked_sub(header)? as u64).min(avail);
        if len == 0 && avail > 0 {
            return None;
        }
        let fin = self.fin == Fin::Queued && offset + len == self.buf.written;
        Some(Plan {
            offset,
            len,
            fin,
            retransmit,
        })
    }

    /// Writes the frame `plan` describes (header and data) into `w`.
    pub(super) fn encode(
        &self,
        id: StreamId,
        plan: &Plan,
        w: &mut Writer<'_>,
    ) -> Result<(), BufferTooSmall> {
        let len = usize::try_from(plan.len).map_err(|_| BufferTooSmall { needed: usize::MAX })?;
        let needed = stream_header_len(id, plan.offset, len) + len;
        if needed > w.remaining() {
            return Err(BufferTooSmall {
                needed: needed - w.remaining(),
            });
        }
        encode_stream_header(w, id, plan.offset, len, plan.fin)?;
        self.buf.copy_to(plan.offset, plan.len, w)
    }

    /// Records that the frame `plan` describes was sent.
    pub(super) fn on_sent(&mut self, plan: &Plan) {
        let end = plan.offset + plan.len;
        if plan.len > 0 && !self.msgs.is_empty() {
            let mut i = self.msgs.partition_point(|m| m.end <= plan.offset);
            while let Some(msg) = self.msgs.get_mut(i) {
                if msg.start >= end {
                    break;
                }
                msg.sent = true;
                i += 1;
            }
        }
        if plan.retransmit {
            self.buf.retransmit.remove(plan.offset..end);
            self.stats.retransmitted_bytes += plan.len;
        } else {
            self.buf.unsent = self.buf.unsent.max(end);
        }
        if plan.fin {
            self.fin = Fin::Sent;
            self.state = SendState::DataSent;
        } else if self.state == SendState::Ready {
            self.state = SendState::Send;
        }
    }

    /// Records an acknowledged STREAM frame; returns the bytes freed and whether the half just
    /// reached Data Recvd.
    pub(super) fn on_ack(&mut self, offset: u64, len: u64, fin: bool) -> (u64, bool) {
        if !matches!(self.state, SendState::Send | SendState::DataSent) {
            return (0, false);
        }
        let freed = self.buf.on_ack(offset, len);
        while self
            .deadlines
            .front()
            .is_some_and(|&(_, end, _)| end <= self.buf.acked_base)
        {
            self.deadlines.pop_front();
        }
        if fin {
            self.fin = Fin::Acked;
        }
        self.advance();
        (freed, self.check_done())
    }

    /// Enters Data Recvd once every byte is acknowledged or abandoned, the FIN is acknowledged
    /// and so is the last STREAM_SKIP; returns whether it just did.
    fn check_done(&mut self) -> bool {
        let skipped = self.skips.is_empty();
        let done = matches!(self.state, SendState::Send | SendState::DataSent)
            && self.fin == Fin::Acked
            && self.buf.acked_base == self.buf.written
            && skipped;
        if done {
            self.state = SendState::DataRecvd;
            self.buf.retransmit = RangeSet::new();
        }
        done
    }

    /// Records a lost STREAM frame: its unacknowledged bytes (and FIN) are owed again, except,
    /// on a non-reliable stream, those of messages that are abandoned instead: every message
    /// of a best-effort stream, and those of a partially reliable stream that could no longer
    /// arrive by their deadline (`now + one_way` at or past it). Returns the bytes queued again and
    /// the bytes freed by abandonment.
    pub(super) fn on_lost(
        &mut self,
        offset: u64,
        len: u64,
        fin: bool,
        now: Instant,
        one_way: Duration,
    ) -> (u64, u64) {
        if !matches!(self.state, SendState::Send | SendState::DataSent) {
            return (0, 0);
        }
        if fin && self.fin == Fin::Sent {
            self.fin = Fin::Queued;
        }
        if self.mode.is_reliable() {
            return (self.buf.on_lost(offset, len), 0);
        }
        let end = offset + len;
        let (mut queued, mut freed) = (0, 0);
        let mut i = self.msgs.partition_point(|m| m.end <= offset);
        while let Some(msg) = self.msgs.get(i).copied() {
            if msg.start >= end {
                break;
            }
            if !msg.abandoned {
                let expired = msg.deadline.is_some_and(|d| now + one_way >= d);
                if self.mode == DeliveryMode::BestEffort || expired {
                    freed += self.abandon(i);
                } else {
                    let from = msg.start.max(offset);
                    queued += self.buf.on_lost(from, msg.end.min(end) - from);
                }
            }
            i += 1;
        }
        self.advance();
        (queued, freed)
    }

    /// The delivery mode.
    pub(super) fn mode(&self) -> DeliveryMode {
        self.mode
    }

    /// Sets the delivery mode (before anything is written).
    pub(super) fn set_mode(&mut self, mode: DeliveryMode) {
        self.mode = mode;
    }

    /// Appends one framed message (`prefix` then `body`) submitted at `now`, with an optional
    /// `deadline`; the caller checked the credit for both.
    ///
    /// The deadline orders sending (earliest first, see `sched`) on every stream; on a partially
    /// reliable stream it replaces `now + ttl`, and on the non-reliable ones the message is
    /// abandoned once it can no longer arrive by it. Deadlines on a stream never decrease (its
    /// data goes out in order, so an earlier one could not be met before the one ahead of it):
    /// a deadline earlier than the previous message's is raised to it.
    pub(super) fn write_message(
        &mut self,
        prefix: Bytes,
        body: Bytes,
        now: Instant,
        deadline: Option<Instant>,
    ) {
        let start = self.buf.written;
        self.write(prefix);
        if !body.is_empty() {
            self.write(body);
        }
        self.stats.messages += 1;
        let deadline = match (self.mode, deadline) {
            (_, Some(d)) => Some(d),
            (DeliveryMode::PartiallyReliable { ttl }, None) => Some(now + ttl),
            _ => None,
        };
        let deadline = deadline.map(|d| self.last_deadline.map_or(d, |l| d.max(l)));
        if deadline.is_some() {
            self.last_deadline = deadline;
        }
        if self.mode.is_reliable() {
            if let Some(d) = deadline {
                self.deadlines.push_back((start, self.buf.written, d));
            }
            return;
        }
        self.msgs.push_back(Msg {
            start,
            end: self.buf.written,
            deadline,
            abandoned: false,
            sent: false,
            checked: false,
        });
    }

    /// Abandons message `i` of `msgs`: its bytes are never sent (again) and count as done;
    /// returns the bytes freed from the buffer.
    fn abandon(&mut self, i: usize) -> u64 {
        let Some(msg) = self.msgs.get_mut(i) else {
            return 0;
        };
        if msg.abandoned {
            return 0;
        }
        msg.abandoned = true;
        let (start, end) = (msg.start, msg.end);
        self.stats.abandoned_messages += 1;
        self.stats.abandoned_bytes += end - start;
        self.buf.unsent = self.buf.unsent.max(end);
        self.buf.retransmit.remove(start..end);
        self.buf.on_ack(start, end - start)
    }

    /// Drops messages entirely acknowledged or abandoned from the front of `msgs`; the end of
    /// each run of abandoned messages dropped becomes a STREAM_SKIP target.
    fn advance(&mut self) {
        let mut run_end = None;
        while let Some(msg) = self.msgs.front().copied() {
            if msg.end > self.buf.acked_base {
                break;
            }
            self.msg_base_offset = msg.end;
            self.msg_base_index += 1;
            self.msgs.pop_front();
            if msg.abandoned {
                run_end = Some((msg.end, self.msg_base_index));
            } else if let Some(target) = run_end.take() {
                self.add_skip(target);
            }
        }
        if let Some(target) = run_end {
            self.add_skip(target);
        }
    }

    fn add_skip(&mut self, (offset, messages): (u64, u64)) {
        self.skips.insert(offset, (messages, true, 0));
        self.skips_to_queue += 1;
    }

    /// The STREAM_SKIP to send next (offset, messages): the lowest target owed.
    pub(super) fn skip_frame(&self) -> Option<(u64, u64)> {
        if !self.skip_frame_state_ok() {
            return None;
        }
        self.skips
            .iter()
            .find(|(_, &(_, owed, _))| owed)
            .map(|(&offset, &(messages, ..))| (offset, messages))
    }

    /// The STREAM_SKIP `skip_frame` returned was written. Returns whether it was its first
    /// sending: each target is sent twice, in consecutive packets, because every message
    /// behind it waits for it (the caller calls [`Self::repeat_skips`] before the next packet).
    pub(super) fn on_skip_sent(&mut self) -> bool {
        let Some((_, owed, sends)) = self.skips.values_mut().find(|(_, owed, _)| *owed) else {
            return false;
        };
        *owed = false;
        *sends = sends.saturating_add(1);
        self.stats.skips_sent += 1;
        *sends == 1
    }

    /// Whether a target sent once is due again (see [`Self::repeat_skips`]).
    pub(super) fn has_skip_repeat(&self) -> bool {
        self.skip_frame_state_ok()
            && self
                .skips
                .values()
                .any(|&(_, owed, sends)| sends == 1 && !owed)
    }

    fn skip_frame_state_ok(&self) -> bool {
        matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        )
    }

    /// Owes again the targets sent once; returns how many (one control entry each).
    pub(super) fn repeat_skips(&mut self) -> u32 {
        let mut n = 0;
        for (_, owed, sends) in self.skips.values_mut() {
            if *sends == 1 && !*owed {
                *owed = true;
                n += 1;
            }
        }
        n
    }

    /// A STREAM_SKIP to `offset` was lost: returns whether it is owed again (the caller queues
    /// a control entry).
    pub(super) fn on_skip_lost(&mut self, offset: u64) -> bool {
        match self.skips.get_mut(&offset) {
            Some((_, owed, _)) if !*owed => {
                *owed = true;
                true
            }
            _ => false,
        }
    }

    /// A STREAM_SKIP to `offset` was acknowledged; returns whether the half just ended.
    pub(super) fn on_skip_acked(&mut self, offset: u64) -> bool {
        self.skips.remove(&offset);
        self.check_done()
    }

    /// Abandons partially reliable messages that could no longer arrive by their deadline
    /// (`now + one_way` at or past it), lost or not; returns the bytes freed.
    pub(super) fn expire(&mut self, now: Instant, one_way: Duration) -> u64 {
        let mut freed = 0;
        let mut i = 0;
        while let Some(msg) = self.msgs.get(i) {
            if msg.deadline.is_none_or(|d| now + one_way < d) {
                break;
            }
            freed += self.abandon(i);
            i += 1;
        }
        self.advance();
        freed
    }

    /// The last-chance retransmission of a partially reliable stream: at `deadline − one_way −
    /// guard`, the last instant a copy sent still arrives by the deadline, every live message
    /// already sent and not yet entirely acknowledged is sent again (its unacknowledged bytes
    /// are queued for retransmission), whether or not loss detection has declared it lost.
    /// Loss detection is often too slow for a deadline: it needs an ACK of a later packet,
    /// and on a stream of small messages those stop during a loss burst (the probe timeout
    /// keeps moving with each new message); and a retransmission sent at the first loss
    /// detection is acknowledged only after this instant, so its own loss would go unrepaired.
    /// Each message is checked once. Returns the bytes queued.
    pub(super) fn last_chance(&mut self, now: Instant, one_way: Duration, guard: Duration) -> u64 {
        if !matches!(self.mode, DeliveryMode::PartiallyReliable { .. })
            || !matches!(self.state, SendState::Send | SendState::DataSent)
        {
            return 0;
        }
        let mut queued = 0;
        for msg in self.msgs.iter_mut() {
            let Some(deadline) = msg.deadline else {
                break;
            };
            if deadline.saturating_duration_since(now) > one_way + guard {
                break;
            }
            if msg.checked || msg.abandoned || !msg.sent {
                // Unsent messages go out with the new data.
                continue;
            }
            msg.checked = true;
            let q = self.buf.requeue(msg.start, msg.end - msg.start);
            if q > 0 {
                self.stats.last_chance_messages += 1;
                queued += q;
            }
        }
        queued
    }

    /// When the next last-chance check is due (see [`Self::last_chance`]), if any.
    pub(super) fn next_last_chance(&self, one_way: Duration, guard: Duration) -> Option<Instant> {
        if !matches!(self.mode, DeliveryMode::PartiallyReliable { .. })
            || !matches!(self.state, SendState::Send | SendState::DataSent)
        {
            return None;
        }
        // Messages go out in order: the first unsent one ends the search.
        let msg = self
            .msgs
            .iter()
            .take_while(|m| m.sent)
            .find(|m| !m.checked && !m.abandoned)?;
        msg.deadline.map(|d| d - one_way - guard)
    }

    /// When the first live message expires (deadline less `one_way`), if any.
    pub(super) fn next_expiry(&self, one_way: Duration) -> Option<Instant> {
        if !matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        ) {
            return None;
        }
        let msg = self.msgs.front().filter(|m| !m.abandoned)?;
        msg.deadline.map(|d| d - one_way)
    }

    /// The peer asked us to stop; returns whether this is news.
    pub(super) fn on_stop(&mut self, code: u64) -> bool {
        if self.stop_code.is_some() || self.is_done() {
            return false;
        }
        self.stop_code = Some(code);
        true
    }

    /// Abandons the stream with `code`. Returns `(freed, unsent)`: the bytes dropped from the
    /// buffer and the credit taken for bytes never sent, or `None` if already reset or done.
    pub(super) fn reset(&mut self, code: u64) -> Option<(u64, u64)> {
        if self.reset.is_some() || self.is_done() {
            return None;
        }
        let final_size = self.buf.unsent;
        let freed = self.buf.written - self.buf.acked_base;
        let unsent = self.buf.written - self.buf.unsent;
        self.buf = SendBuf {
            acked_base: final_size,
            unsent: final_size,
            written: final_size,
            ..SendBuf::default()
        };
        self.credit.give_back(unsent);
        self.msgs.clear();
        self.deadlines.clear();
        self.skips.clear();
        self.reset = Some((code, final_size));
        self.state = SendState::ResetSent;
        Some((freed, unsent))
    }

    /// The RESET_STREAM was acknowledged; returns whether the half just ended.
    pub(super) fn on_reset_acked(&mut self) -> bool {
        if self.state == SendState::ResetSent {
            self.state = SendState::ResetRecvd;
            return true;
        }
        false
    }

    /// A summary for failing tests.
    #[cfg(test)]
    pub(super) fn debug_state(&self) -> String {
        format!(
            "state {:?} fin {:?} acked_base {} unsent {} written {} retransmit {:?} acked {:?} \
             msgs {:?} base {}/{} skips {:?}",
            self.state,
            self.fin,
            self.buf.acked_base,
            self.buf.unsent,
            self.buf.written,
            self.buf.retransmit,
            self.buf.acked,
            self.msgs.iter().take(3).collect::<Vec<_>>(),
            self.msg_base_index,
            self.msg_base_offset,
            self.skips,
        )
    }
}
