//! Frames to the peer and their fate: control frames owed (window updates, stream-count updates,
//! resets, stop requests, BLOCKED signals), STREAM frames chosen by the scheduler (`sched`:
//! strict priority, then earliest deadline, then weighted fair queuing), and what
//! acknowledgement or loss of each does.
//!
//! Loss requeues a control frame only if it is still current (a newer limit supersedes an older
//! one), and a STREAM frame's bytes only where they are not acknowledged already.

use super::sched::Slot;
use super::{di, Ctl, StreamEvent, StreamRecord, Streams};
use crate::coding::Writer;
use crate::frame::{Dir, Frame, StreamId};

impl Streams {
    /// Writes the control frames that fit, recording each in `sent`: MAX_DATA, MAX_STREAMS,
    /// MAX_STREAM_DATA, RESET_STREAM, STOP_SENDING, DATA_BLOCKED, STREAM_DATA_BLOCKED,
    /// STREAMS_BLOCKED.
    pub fn write_control(&mut self, w: &mut Writer<'_>, sent: &mut Vec<StreamRecord>) {
        for id in std::mem::take(&mut self.skip_repeat) {
            let n = self.stream_send(id).map_or(0, |s| s.repeat_skips());
            for _ in 0..n {
                self.control.push_back(Ctl::Skip(id));
            }
        }
        if self.max_data_queued {
            let max = self.conn_recv.limit();
            if Frame::MaxData(max).encode(w).is_err() {
                return;
            }
            self.max_data_queued = false;
            sent.push(StreamRecord::MaxData(max));
        }
        for dir in [Dir::Bi, Dir::Uni] {
            let Some(counts) = self.remote.get_mut(di(dir)) else {
                continue;
            };
            if counts.queued {
                let count = counts.max;
                if (Frame::MaxStreams { dir, count }).encode(w).is_err() {
                    return;
                }
                counts.queued = false;
                sent.push(StreamRecord::MaxStreams { dir, count });
            }
        }
        while let Some(ctl) = self.control.pop_front() {
            let Some(record) = self.current_ctl(ctl) else {
                continue;
            };
            if encode_record(&record, w).is_err() {
                self.control.push_front(ctl);
                return;
            }
            self.clear_ctl(ctl);
            sent.push(record);
        }
        if self.data_blocked_queued {
            let limit = self.conn_send.max();
            if self.conn_send.blocked_at(limit) {
                if (Frame::DataBlocked { limit }).encode(w).is_err() {
                    return;
                }
                sent.push(StreamRecord::DataBlocked(limit));
            }
            self.data_blocked_queued = false;
        }
        for dir in [Dir::Bi, Dir::Uni] {
            let Some(counts) = self.local.get_mut(di(dir)) else {
                continue;
            };
            if counts.queued {
                let limit = counts.max;
                if counts.opened >= limit {
                    if (Frame::StreamsBlocked { dir, limit }).encode(w).is_err() {
                        return;
                    }
                    sent.push(StreamRecord::StreamsBlocked { dir, limit });
                }
                counts.queued = false;
            }
        }
    }

    /// The frame a queued per-stream control entry stands for, if still worth sending.
    fn current_ctl(&self, ctl: Ctl) -> Option<StreamRecord> {
        let id = match ctl {
            Ctl::MaxStreamData(id)
            | Ctl::Reset(id)
            | Ctl::StopSending(id)
            | Ctl::StreamDataBlocked(id)
            | Ctl::Skip(id) => id,
        };
        let stream = self.streams.get(&id)?;
        match ctl {
            Ctl::MaxStreamData(_) => {
                let recv = stream.recv.as_ref()?;
                let wanted = recv.max_data_queued && !recv.size_known() && recv.stopped().is_none();
                wanted.then(|| StreamRecord::MaxStreamData {
                    id,
                    max: recv.window.limit(),
                })
            }
            Ctl::Reset(_) => {
                let send = stream.send.as_ref()?;
                let (code, final_size) = send.reset_frame().filter(|_| send.reset_queued)?;
                Some(StreamRecord::Reset {
                    id,
                    code,
                    final_size,
                })
            }
            Ctl::StopSending(_) => {
                let recv = stream.recv.as_ref()?;
                let code = recv
                    .stopped()
                    .filter(|_| recv.stop_queued && !recv.size_known())?;
                Some(StreamRecord::StopSending { id, code })
            }
            Ctl::StreamDataBlocked(_) => {
                let send = stream.send.as_ref()?;
                let limit = send.credit.max();
                let wanted = send.blocked_queued
                    && send.credit.blocked_at(limit)
                    && send.check_writable().is_ok();
                wanted.then_some(StreamRecord::StreamDataBlocked { id, limit })
            }
            Ctl::Skip(_) => {
                let send = stream.send.as_ref()?;
                let (offset, messages) = send.skip_frame()?;
                Some(StreamRecord::Skip {
                    id,
                    offset,
                    messages,
                })
            }
        }
    }

    /// Marks a per-stream control entry as written.
    fn clear_ctl(&mut self, ctl: Ctl) {
        match ctl {
            Ctl::MaxStreamData(id) => {
                if let Some(recv) = self.stream_recv(id) {
                    recv.max_data_queued = false;
                }
            }
            Ctl::StopSending(id) => {
                if let Some(recv) = self.stream_recv(id) {
                    recv.stop_queued = false;
                }
            }
            Ctl::Reset(id) => {
                if let Some(send) = self.stream_send(id) {
                    send.reset_queued = false;
                }
            }
            Ctl::StreamDataBlocked(id) => {
                if let Some(send) = self.stream_send(id) {
                    send.blocked_queued = false;
                }
            }
            Ctl::Skip(id) => {
                if self.stream_send(id).is_some_and(|s| s.on_skip_sent()) {
                    self.skip_repeat.push(id);
                }
            }
        }
    }

    /// Writes STREAM frames into the writer's remaining room in scheduling order (see `sched`:
    /// strict priority, then earliest deadline, then weighted fair queuing; one frame per
    /// stream per turn), recording each in `sent`. Small frames of several streams share the
    /// packet: the loop goes on while a frame header and a byte still fit. `early_only`: only
    /// replay-safe streams (for 0-RTT packets). Returns the stream bytes written.
    pub fn write_stream_frames(
        &mut self,
        w: &mut Writer<'_>,
        sent: &mut Vec<StreamRecord>,
        early_only: bool,
    ) -> usize {
        if !self.timed.is_empty() {
            self.expire();
        }
        let mut total = 0usize;
        while let Some((slot, id)) = self.next_ready(early_only) {
            let contended = self.sched.deadline_contended(slot);
            let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
                break;
            };
            // A deadline stream facing other deadlines sends up to the end of its current
            // message, so that the next message competes on its own deadline.
            let end = if contended {
                send.head_message_end()
            } else {
                None
            };
            let Some(plan) = send.plan_until(id, w.remaining(), end) else {
                break;
            };
            let before = w.position();
            if send.encode(id, &plan, w).is_err() {
                break;
            }
            send.on_sent(&plan);
            let cost = w.position() - before;
            send.in_ready = None;
            if let Some(lag) = self.sched.served(id, slot, cost, send.weight) {
                send.lag = lag;
            }
            self.reschedule_with(id, false);
            self.sched.tidy(slot.level);
            total += plan.len as usize;
            sent.push(StreamRecord::Data {
                id,
                offset: plan.offset,
                len: plan.len,
                fin: plan.fin,
            });
        }
        total
    }

    /// The next stream to send from and its slot. O(log n), except for 0-RTT packets (a scan for
    /// replay-safe streams).
    fn next_ready(&self, early_only: bool) -> Option<(Slot, StreamId)> {
        if !early_only {
            return self.sched.first();
        }
        self.sched.first_where(|id| {
            self.streams
                .get(&id)
                .and_then(|s| s.send.as_ref())
                .is_some_and(|s| s.replay_safe)
        })
    }

    /// Whether control frames or stream data are waiting to be sent.
    pub fn wants_to_send(&self) -> bool {
        self.max_data_queued
            || self.data_blocked_queued
            || self.remote.iter().any(|c| c.queued)
            || self.local.iter().any(|c| c.queued)
            || !self.sched.is_empty()
            || self.skip_repeat.iter().any(|id| {
                self.streams
                    .get(id)
                    .and_then(|s| s.send.as_ref())
                    .is_some_and(|s| s.has_skip_repeat())
            })
            || self.control.iter().any(|&c| self.current_ctl(c).is_some())
    }

    /// Whether replay-safe streams have data to send in 0-RTT packets.
    pub fn wants_to_send_early(&self) -> bool {
        self.next_ready(true).is_some()
    }

    /// A packet carrying `record` was acknowledged: frees acknowledged send-buffer bytes and
    /// completes finished streams.
    pub fn on_acked(&mut self, record: StreamRecord) {
        match record {
            StreamRecord::Data {
                id,
                offset,
                len,
                fin,
            } => {
                let Some(send) = self.stream_send(id) else {
                    return;
                };
                let (freed, finished) = send.on_ack(offset, len, fin);
                if finished {
                    self.events.push_back(StreamEvent::Finished { id });
                }
                self.after_abandon(id, freed);
                if finished {
                    self.maybe_forget(id);
                }
            }
            StreamRecord::Skip { id, offset, .. }
                if self
                    .stream_send(id)
                    .is_some_and(|s| s.on_skip_acked(offset)) =>
            {
                self.events.push_back(StreamEvent::Finished { id });
                self.maybe_forget(id);
            }
            StreamRecord::Reset { id, .. }
                if self.stream_send(id).is_some_and(|s| s.on_reset_acked()) =>
            {
                self.maybe_forget(id);
            }
            _ => {}
        }
    }

    /// A packet carrying `record` was declared lost: requeues exactly the lost stream bytes that
    /// are not acknowledged (nor abandoned: see `message`), or the control frame if it is still
    /// current. Returns the stream bytes queued again.
    pub fn on_lost(&mut self, record: StreamRecord) -> u64 {
        let (now, one_way) = (self.now, self.one_way());
        match record {
            StreamRecord::Data {
                id,
                offset,
                len,
                fin,
            } => {
                let Some(send) = self.stream_send(id) else {
                    return 0;
                };
                let (queued, freed) = send.on_lost(offset, len, fin, now, one_way);
                self.after_abandon(id, freed);
                return queued;
            }
            StreamRecord::Skip { id, offset, .. } => {
                if self.stream_send(id).is_some_and(|s| s.on_skip_lost(offset)) {
                    self.control.push_back(Ctl::Skip(id));
                }
            }
            StreamRecord::MaxData(max) => {
                if max == self.conn_recv.limit() {
                    self.max_data_queued = true;
                }
            }
            StreamRecord::MaxStreams { dir, count } => {
                if let Some(counts) = self.remote.get_mut(di(dir)) {
                    if counts.max == count {
                        counts.queued = true;
                    }
                }
            }
            StreamRecord::MaxStreamData { id, max } => {
                let Some(recv) = self.stream_recv(id) else {
                    return 0;
                };
                if recv.window.limit() == max && !recv.size_known() && !recv.max_data_queued {
                    recv.max_data_queued = true;
                    self.control.push_back(Ctl::MaxStreamData(id));
                }
            }
            StreamRecord::Reset { id, .. } => {
                let Some(send) = self.stream_send(id) else {
                    return 0;
                };
                if send.reset_frame().is_some() && !send.reset_queued {
                    send.reset_queued = true;
                    self.control.push_back(Ctl::Reset(id));
                }
            }
            StreamRecord::StopSending { id, .. } => {
                let Some(recv) = self.stream_recv(id) else {
                    return 0;
                };
                if recv.stopped().is_some() && !recv.size_known() && !recv.stop_queued {
                    recv.stop_queued = true;
                    self.control.push_back(Ctl::StopSending(id));
                }
            }
            StreamRecord::DataBlocked(limit) => {
                if self.conn_send.blocked_at(limit) {
                    self.data_blocked_queued = true;
                }
            }
            StreamRecord::StreamDataBlocked { id, limit } => {
                let Some(send) = self.stream_send(id) else {
                    return 0;
                };
                if send.credit.blocked_at(limit) && !send.blocked_queued {
                    send.blocked_queued = true;
                    self.control.push_back(Ctl::StreamDataBlocked(id));
                }
            }
            StreamRecord::StreamsBlocked { dir, limit } => {
                if let Some(counts) = self.local.get_mut(di(dir)) {
                    if counts.max == limit && counts.opened >= limit {
                        counts.queued = true;
                    }
                }
            }
        }
        0
    }
}

/// Encodes the frame a control record stands for.
fn encode_record(
    record: &StreamRecord,
    w: &mut Writer<'_>,
) -> Result<(), crate::coding::BufferTooSmall> {
    let frame = match *record {
        StreamRecord::Data { .. } => return Ok(()),
        StreamRecord::MaxData(max) => Frame::MaxData(max),
        StreamRecord::MaxStreamData { id, max } => Frame::MaxStreamData { id, max },
        StreamRecord::MaxStreams { dir, count } => Frame::MaxStreams { dir, count },
        StreamRecord::Reset {
            id,
            code,
            final_size,
        } => Frame::ResetStream {
            id,
            error_code: code,
            final_size,
        },
        StreamRecord::StopSending { id, code } => Frame::StopSending {
            id,
            error_code: code,
        },
        StreamRecord::DataBlocked(limit) => Frame::DataBlocked { limit },
        StreamRecord::StreamDataBlocked { id, limit } => Frame::StreamDataBlocked { id, limit },
        StreamRecord::StreamsBlocked { dir, limit } => Frame::StreamsBlocked { dir, limit },
        StreamRecord::Skip {
            id,
            offset,
            messages,
        } => Frame::StreamSkip {
            id,
            offset,
            messages,
        },
    };
    frame.encode(w)
}
