//! Delivery modes and the message API of [`Streams`].
//!
//! A message is carried in the stream as `Length (varint) ‖ Data[Length]`, so boundaries hold
//! on every stream, reliable or not. On a partially reliable or best-effort stream the send
//! half abandons whole messages (on loss, or when their deadline can no longer be met; see
//! `send`) and tells the peer with a STREAM_SKIP frame; the receive half jumps over abandoned
//! data and reports the jump (see `recv`). Abandoned bytes count as sent and received for flow
//! control on both sides, so the windows stay in step.
//!
//! Time: a message's deadline is its submission time (the latest `now` the connection gave)
//! plus the stream's TTL. A message is abandoned once `now + srtt / 2` (the estimated one-way
//! delay) reaches its deadline: sending it then could only deliver it late. Every input of the
//! connection sweeps the partially reliable streams ([`Streams::set_now`]), and
//! [`Streams::next_expiry`] tells the connection when the next sweep is due.

use bytes::Bytes;

use super::recv::MessageOut;
use super::send::Send as SendSide;
use super::{Ctl, Delivery, DeliveryMode, ReadError, SendStats, StreamEvent, Streams, WriteError};
use crate::coding::{varint_len, Writer, VARINT_MAX};
use crate::frame::{Dir, StreamId};
use crate::time::{Duration, Instant};

impl Streams {
    /// Opens a stream whose send half uses `mode`; `None` at the peer's stream limit (as
    /// [`Self::open`]).
    pub fn open_with(&mut self, dir: Dir, mode: DeliveryMode) -> Option<StreamId> {
        let id = self.open(dir)?;
        if let Some(send) = self.stream_send(id) {
            send.set_mode(mode);
        }
        if matches!(mode, DeliveryMode::PartiallyReliable { .. }) {
            self.timed.insert(id);
        }
        Some(id)
    }

    /// The delivery mode of our sending on `id`, if it has a send half.
    pub fn delivery_mode(&self, id: StreamId) -> Option<DeliveryMode> {
        let send = self.streams.get(&id)?.send.as_ref()?;
        Some(send.mode())
    }

    /// Queues one message: all of it or nothing. `Err(Blocked)`: no room now (a `Writable`
    /// event follows). `Err(MessageTooLarge)`: with its length prefix it exceeds the peer's
    /// initial window for the stream or our send buffer, so it could never be read whole.
    pub fn send_message(&mut self, id: StreamId, data: Bytes) -> Result<(), WriteError> {
        self.send_message_at(id, data, None)
    }

    /// Queues one message that should arrive within `within` of now (the latest `now` the
    /// connection gave), as [`Self::send_message`] otherwise. The deadline orders sending: inside
    /// a priority level, the message whose deadline is earliest goes first (see `sched`). On a
    /// reliable stream it only orders sending (the message is always delivered); on a partially
    /// reliable stream it replaces the TTL for this message; on a partially reliable or
    /// best-effort stream the message is abandoned once it can no longer arrive by it. A
    /// deadline earlier than the one of a message queued before it on the same stream is raised
    /// to that one (a stream's data goes out in order).
    pub fn send_message_with_deadline(
        &mut self,
        id: StreamId,
        data: Bytes,
        within: Duration,
    ) -> Result<(), WriteError> {
        let deadline = self.now + within;
        self.send_message_at(id, data, Some(deadline))?;
        if self
            .stream_send(id)
            .is_some_and(|s| !s.mode().is_reliable())
        {
            self.timed.insert(id);
        }
        Ok(())
    }

    fn send_message_at(
        &mut self,
        id: StreamId,
        data: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), WriteError> {
        let len = data.len() as u64;
        if len > VARINT_MAX {
            return Err(WriteError::MessageTooLarge);
        }
        let prefix_len = varint_len(len);
        let total = len + prefix_len as u64;
        if total > self.initial_send_credit(id) || total > self.limits.send_buffer {
            self.writable_send(id)?.check_writable()?;
            return Err(WriteError::MessageTooLarge);
        }
        let conn_room = self
            .conn_send
            .available()
            .min(self.limits.send_buffer.saturating_sub(self.send_buffered));
        let conn_credit_binding = self.conn_send.available() <= conn_room;
        let now = self.now;
        let send = self.writable_send(id)?;
        send.check_writable()?;
        let stream_room = send.credit.available();
        if total > stream_room.min(conn_room) {
            send.want_writable = true;
            if stream_room < total {
                if send.credit.take_signal() && !send.blocked_queued {
                    send.blocked_queued = true;
                    self.control.push_back(Ctl::StreamDataBlocked(id));
                }
            } else {
                if !self.conn_writers.contains(&id) {
                    self.conn_writers.push_back(id);
                }
                if conn_credit_binding && self.conn_send.take_signal() {
                    self.data_blocked_queued = true;
                }
            }
            return Err(WriteError::Blocked);
        }
        let mut prefix = [0u8; 8];
        let mut w = Writer::new(&mut prefix);
        w.varint(len).map_err(|_| WriteError::MessageTooLarge)?;
        let prefix = Bytes::copy_from_slice(prefix.get(..prefix_len).unwrap_or(&[]));
        send.write_message(prefix, data, now, deadline);
        self.conn_send.take(total);
        self.send_buffered += total;
        self.reschedule(id);
        Ok(())
    }

    /// The next message on `id`, or what the peer abandoned before it: `Ok(None)` at the clean
    /// end of the stream, `Err(Blocked)` when nothing is ready (a `Readable` event follows).
    /// Every abandoned message is reported exactly once, in a [`Delivery::Skipped`].
    pub fn recv_message(&mut self, id: StreamId) -> Result<Option<Delivery>, ReadError> {
        let recv = self.readable_recv(id)?;
        let fragments = recv.fragments();
        let result = recv.read_message();
        let fragments_after = recv.fragments();
        // Blocked on a message that arrived only in part: the bytes at the read offset keep the
        // stream "readable", but the caller waits for the rest, so the next arrival must signal
        // again (else an event-driven reader, such as jsp-tokio's, would wait forever).
        if !recv.is_readable() || matches!(result, Err(ReadError::Blocked)) {
            recv.readable_signalled = false;
        }
        self.fragments = self.fragments.saturating_sub(fragments) + fragments_after;
        let result = result.map(|out| {
            out.map(|out| match out {
                MessageOut::Message(data, taken) => {
                    // `Recv::read` only moved the read offset; flow control is released here.
                    self.release(id, taken);
                    Delivery::Message(data)
                }
                MessageOut::Skipped(skipped) => {
                    self.release(id, skipped.bytes);
                    Delivery::Skipped(skipped)
                }
            })
        });
        if !matches!(result, Ok(Some(_)) | Err(ReadError::Blocked)) {
            self.maybe_forget(id);
        }
        result
    }

    /// A jump over abandoned data for a byte-API read that met a hole: reported as a
    /// `Skipped` event. Returns whether it jumped.
    pub(super) fn jump_for_bytes(&mut self, id: StreamId) -> bool {
        let Some(recv) = self.stream_recv(id) else {
            return false;
        };
        let fragments = recv.fragments();
        let Some(skipped) = recv.jump() else {
            return false;
        };
        let fragments_after = recv.fragments();
        self.fragments = self.fragments.saturating_sub(fragments) + fragments_after;
        self.release(id, skipped.bytes);
        self.events.push_back(StreamEvent::Skipped { id, skipped });
        true
    }

    /// Figures of our sending on `id`, if it has a send half.
    pub fn send_stats(&self, id: StreamId) -> Option<SendStats> {
        let send = self.streams.get(&id)?.send.as_ref()?;
        Some(send.stats)
    }

    /// Stream bytes queued again by last-chance retransmissions so far.
    pub fn last_chance_bytes(&self) -> u64 {
        self.last_chance_bytes
    }

    /// The estimated one-way delay: half the smoothed RTT.
    pub(super) fn one_way(&self) -> Duration {
        self.rtt / 2
    }

    /// How long before the instant a copy sent would arrive just at its deadline a
    /// last-chance retransmission goes: 1/32 of the smoothed RTT, at least 1 ms (room for the
    /// pacer and for the one-way delay exceeding half the RTT a little).
    fn last_chance_guard(&self) -> Duration {
        (self.rtt / 32).max(Duration::from_millis(1))
    }

    /// When the next partially reliable message expires or has its last-chance check (see
    /// the module notes), if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        let one_way = self.one_way();
        let guard = self.last_chance_guard();
        self.timed
            .iter()
            .filter_map(|id| {
                let send = self.streams.get(id)?.send.as_ref()?;
                let expiry = send.next_expiry(one_way);
                let last = send.next_last_chance(one_way, guard);
                expiry.into_iter().chain(last).min()
            })
            .min()
    }

    /// The timed streams whose send side has `next` at or before the current time.
    fn timed_due(&self, next: impl Fn(&SendSide) -> Option<Instant>) -> Vec<StreamId> {
        self.timed
            .iter()
            .copied()
            .filter(|id| {
                self.streams
                    .get(id)
                    .and_then(|s| s.send.as_ref())
                    .and_then(&next)
                    .is_some_and(|at| at <= self.now)
            })
            .collect()
    }

    /// Abandons the partially reliable messages that can no longer arrive in time.
    pub(super) fn expire(&mut self) {
        let (now, one_way) = (self.now, self.one_way());
        for id in self.timed_due(|s| s.next_expiry(one_way)) {
            let freed = self.stream_send(id).map_or(0, |s| s.expire(now, one_way));
            self.after_abandon(id, freed);
        }
        let guard = self.last_chance_guard();
        let due = self.timed_due(|s| s.next_last_chance(one_way, guard));
        for id in due {
            let queued = self
                .stream_send(id)
                .map_or(0, |s| s.last_chance(now, one_way, guard));
            if queued > 0 {
                self.last_chance_bytes += queued;
                self.reschedule(id);
            }
        }
        let streams = &self.streams;
        self.timed.retain(|id| streams.contains_key(id));
    }

    /// Accounting after messages of `id` were abandoned (or acknowledged): frees `freed`
    /// buffered bytes, queues the STREAM_SKIPs newly owed, reschedules the stream.
    pub(super) fn after_abandon(&mut self, id: StreamId, freed: u64) {
        if let Some(send) = self.stream_send(id) {
            for _ in 0..std::mem::take(&mut send.skips_to_queue) {
                self.control.push_back(Ctl::Skip(id));
            }
        }
        self.send_buffered = self.send_buffered.saturating_sub(freed);
        if freed > 0 {
            self.wake_conn_writers();
        }
        self.reschedule(id);
    }
}

#[cfg(test)]
impl Streams {
    /// A one-line summary of both halves of `id`, for failing tests.
    pub(crate) fn debug_state(&self, id: StreamId) -> String {
        let Some(s) = self.streams.get(&id) else {
            return "forgotten".into();
        };
        format!(
            "send {:?}\nrecv {:?}",
            s.send.as_ref().map(|s| s.debug_state()),
            s.recv.as_ref().map(|r| r.debug_state())
        )
    }
}
