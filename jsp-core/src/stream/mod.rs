//! Streams: multiplexed, ordered, flow-controlled byte streams (RFC 9000 §2–4 are the model).
//!
//! [`Streams`] owns every stream of one connection: their send and receive halves (the `send`
//! and `recv` modules), the connection- and stream-level flow-control
//! windows (`flow`), stream-count limits in both directions, the queue of control frames owed to
//! the peer, the send scheduler and the application's events. It does no I/O and reads no
//! clock: the connection feeds it decoded frames and acknowledgements, and pulls frames to send.
//!
//! Each send half has a delivery mode ([`DeliveryMode`]): reliable, or partially reliable and
//! best-effort streams of whole messages that the sender may abandon and the receiver skips
//! (STREAM_SKIP); the message API frames messages on any stream (the `message` module).
//!
//! Invariants:
//! - the bytes buffered for the application never exceed the windows we advertised (per stream
//!   and for the connection); a peer exceeding them is a FLOW_CONTROL_ERROR;
//! - bytes accepted from the application never exceed the peer's limits nor `send_buffer`, so
//!   queued data is always sendable as far as flow control goes;
//! - a stream is in the send scheduler exactly when it has a STREAM frame to send;
//! - a stream is forgotten once both halves are over and the application saw the end of what it
//!   reads; forgetting a peer-initiated stream returns its slot to the peer (MAX_STREAMS);
//! - every queue is bounded by the number of live streams, itself bounded by the stream limits;
//! - `fragments` is the sum of the streams' out-of-order ranges (`Recv::fragments`) and never
//!   exceeds `fragment_limit`: received data cannot be dropped once acknowledged, so a peer
//!   cutting it into more ranges than that is a PROTOCOL_VIOLATION (see `recv` for the memory
//!   bound this gives).
//!
//! Time: reads take no `now`, so window auto-tuning measures with the latest instant the
//! connection gave: [`Streams::set_now`] (which it calls with the `now` of every input) or
//! [`Streams::on_frame`]. Frames alone are not enough: a sender blocked by our window sends no
//! STREAM frames, and that is exactly when the reader's pace must be measured.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod app;
mod flow;
mod incoming;
mod message;
mod outgoing;
mod recv;
mod sched;
mod send;
#[cfg(test)]
mod tests;
mod types;

pub use sched::DEFAULT_WEIGHT;
pub use types::{
    Delivery, DeliveryMode, PeerLimits, ReadError, SendStats, Skipped, StreamEvent, StreamLimits,
    StreamRecord, UnknownStream, WriteError,
};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use self::flow::{RecvWindow, SendCredit, INITIAL_RTT};
use self::recv::Recv;
use self::sched::{Key, Scheduler};
use self::send::Send;
use crate::coding::VARINT_MAX;
use crate::frame::{Dir, StreamId, MAX_STREAM_COUNT};
use crate::side::Side;
use crate::time::{Duration, Instant};

/// Index of `dir` in per-direction arrays.
fn di(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

/// Both halves of a stream; a unidirectional stream has one.
#[derive(Debug)]
struct Stream {
    send: Option<Send>,
    recv: Option<Recv>,
}

/// A per-stream control frame owed to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctl {
    MaxStreamData(StreamId),
    Reset(StreamId),
    StopSending(StreamId),
    StreamDataBlocked(StreamId),
    Skip(StreamId),
}

/// Streams opened by one side in one direction.
#[derive(Debug, Clone, Default)]
struct Counts {
    /// How many we opened, or the peer opened (the next index).
    opened: u64,
    /// The limit: the peer's MAX_STREAMS for ours, the one we advertised for the peer's.
    max: u64,
    /// Peer-initiated streams closed and forgotten.
    closed: u64,
    /// Peer-initiated streams handed to the application by `accept`.
    accepted: u64,
    /// Ours: a STREAMS_BLOCKED is owed / the limit it was signalled for. Peer's: a MAX_STREAMS
    /// is owed.
    queued: bool,
    signalled: Option<u64>,
    /// An `Opened` (peer's) or `Available` (ours) event is outstanding or wanted.
    event: bool,
}

/// Every stream of a connection, with flow control and scheduling.
#[derive(Debug)]
pub struct Streams {
    side: Side,
    limits: StreamLimits,
    peer: PeerLimits,
    streams: BTreeMap<StreamId, Stream>,
    /// Streams we open, per direction.
    local: [Counts; 2],
    /// Streams the peer opens, per direction.
    remote: [Counts; 2],
    /// The connection window we extend, and the sum of the highest offsets received.
    conn_recv: RecvWindow,
    conn_received: u64,
    /// Out-of-order ranges held across all streams, and their limit.
    fragments: u64,
    fragment_limit: u64,
    max_data_queued: bool,
    /// The peer's MAX_DATA; `used` is every byte accepted from the application.
    conn_send: SendCredit,
    data_blocked_queued: bool,
    /// Bytes accepted from the application and not yet acknowledged (or dropped by a reset).
    send_buffered: u64,
    /// Streams whose short write waits for connection-level room.
    conn_writers: VecDeque<StreamId>,
    /// The send scheduler: streams with something to send (see `sched`).
    sched: Scheduler,
    control: VecDeque<Ctl>,
    events: VecDeque<StreamEvent>,
    /// Partially reliable streams of ours (their messages expire).
    timed: BTreeSet<StreamId>,
    /// Streams whose STREAM_SKIPs were sent once, to be sent again in the next packet.
    skip_repeat: Vec<StreamId>,
    rtt: Duration,
    now: Instant,
    /// Bytes queued again by last-chance retransmissions (see `message`).
    last_chance_bytes: u64,
    /// A received STREAM frame carried a FIN or completed a stream's data since
    /// [`Self::take_stream_end`].
    stream_end: bool,
}

impl Streams {
    /// Whether a STREAM frame handled since the last call carried a FIN or completed a stream's
    /// data (every byte up to its final size is here now): the connection acknowledges such a
    /// packet at once.
    pub fn take_stream_end(&mut self) -> bool {
        core::mem::take(&mut self.stream_end)
    }

    /// No streams yet; the peer's limits are zero until [`Self::set_peer_limits`].
    pub fn new(side: Side, limits: StreamLimits) -> Self {
        let limits = limits.clamped();
        let conn_max = limits.max_connection_window();
        let fragment_limit = limits.fragment_limit();
        let counts = |max| Counts {
            max,
            ..Counts::default()
        };
        Self {
            side,
            conn_recv: RecvWindow::new(limits.receive_window, conn_max, Instant::ZERO),
            remote: [
                counts(limits.max_concurrent_bidi),
                counts(limits.max_concurrent_uni),
            ],
            local: [Counts::default(), Counts::default()],
            limits,
            peer: PeerLimits::default(),
            streams: BTreeMap::new(),
            conn_received: 0,
            fragments: 0,
            fragment_limit,
            max_data_queued: false,
            conn_send: SendCredit::new(0),
            data_blocked_queued: false,
            send_buffered: 0,
            conn_writers: VecDeque::new(),
            sched: Scheduler::default(),
            control: VecDeque::new(),
            events: VecDeque::new(),
            timed: BTreeSet::new(),
            skip_repeat: Vec::new(),
            rtt: INITIAL_RTT,
            now: Instant::ZERO,
            last_chance_bytes: 0,
            stream_end: false,
        }
    }

    /// Applies the peer's limits. May be called twice (remembered values for 0-RTT, then the
    /// handshake's); limits only grow, as RFC 9000 §7.4.1 requires of a server accepting 0-RTT
    /// (a peer that lowers them is the connection's protocol error to detect).
    pub fn set_peer_limits(&mut self, peer: PeerLimits) {
        let peer = PeerLimits {
            max_data: peer.max_data.min(VARINT_MAX),
            max_stream_data_bidi_local: peer.max_stream_data_bidi_local.min(VARINT_MAX),
            max_stream_data_bidi_remote: peer.max_stream_data_bidi_remote.min(VARINT_MAX),
            max_stream_data_uni: peer.max_stream_data_uni.min(VARINT_MAX),
            max_streams_bidi: peer.max_streams_bidi.min(MAX_STREAM_COUNT),
            max_streams_uni: peer.max_streams_uni.min(MAX_STREAM_COUNT),
        };
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        self.peer = peer.clone();
        for id in ids {
            let initial = self.initial_send_credit(id);
            if let Some(send) = self.stream_send(id) {
                if send.credit.raise(initial) {
                    self.wake_writer(id);
                }
            }
        }
        self.raise_conn_credit(peer.max_data);
        self.raise_local_max(Dir::Bi, peer.max_streams_bidi);
        self.raise_local_max(Dir::Uni, peer.max_streams_uni);
    }

    /// The peer's initial limit for our sending on `id`.
    fn initial_send_credit(&self, id: StreamId) -> u64 {
        match (id.initiator() == self.side, id.dir()) {
            (true, Dir::Bi) => self.peer.max_stream_data_bidi_remote,
            (true, Dir::Uni) => self.peer.max_stream_data_uni,
            (false, _) => self.peer.max_stream_data_bidi_local,
        }
    }

    /// A new stream's halves as `side`'s stream `id`.
    fn new_stream(&self, id: StreamId) -> Stream {
        let local = id.initiator() == self.side;
        let sends = id.dir() == Dir::Bi || local;
        let recvs = id.dir() == Dir::Bi || !local;
        Stream {
            send: sends.then(|| Send::new(self.initial_send_credit(id))),
            recv: recvs.then(|| {
                Recv::new(RecvWindow::new(
                    self.limits.stream_receive_window,
                    self.limits.max_stream_receive_window,
                    self.now,
                ))
            }),
        }
    }

    fn stream_send(&mut self, id: StreamId) -> Option<&mut Send> {
        self.streams.get_mut(&id)?.send.as_mut()
    }

    fn stream_recv(&mut self, id: StreamId) -> Option<&mut Recv> {
        self.streams.get_mut(&id)?.recv.as_mut()
    }

    fn writable_send(&mut self, id: StreamId) -> Result<&mut Send, WriteError> {
        if id.dir() == Dir::Uni && id.initiator() != self.side {
            return Err(WriteError::NotSendable);
        }
        self.stream_send(id).ok_or(WriteError::UnknownStream)
    }

    fn readable_recv(&mut self, id: StreamId) -> Result<&mut Recv, ReadError> {
        if id.dir() == Dir::Uni && id.initiator() == self.side {
            return Err(ReadError::NotReadable);
        }
        self.stream_recv(id).ok_or(ReadError::UnknownStream)
    }

    /// Releases `n` bytes the application read from `id` to both windows.
    fn release(&mut self, id: StreamId, n: u64) {
        let (now, rtt) = (self.now, self.rtt);
        if let Some(recv) = self.stream_recv(id) {
            let raised = recv.window.release(n, now, rtt);
            if raised && !recv.size_known() && recv.stopped().is_none() && !recv.max_data_queued {
                recv.max_data_queued = true;
                self.control.push_back(Ctl::MaxStreamData(id));
            }
        }
        self.release_conn(n);
    }

    /// Releases `n` bytes to the connection window.
    fn release_conn(&mut self, n: u64) {
        if n > 0 && self.conn_recv.release(n, self.now, self.rtt) {
            self.max_data_queued = true;
        }
    }

    /// Resets our sending on `id` (application request or peer STOP_SENDING); returns whether
    /// it was reset now.
    fn reset_send(&mut self, id: StreamId, code: u64) -> bool {
        let Some(send) = self.stream_send(id) else {
            return false;
        };
        let Some((freed, unsent)) = send.reset(code) else {
            return false;
        };
        send.want_writable = false;
        if !send.reset_queued {
            send.reset_queued = true;
            self.control.push_back(Ctl::Reset(id));
        }
        tracing::trace!(%id, code, "stream reset");
        self.conn_send.give_back(unsent);
        self.send_buffered = self.send_buffered.saturating_sub(freed);
        self.reschedule(id);
        self.wake_conn_writers();
        true
    }

    /// Puts `id` in the send scheduler exactly when it has a STREAM frame to send, at its
    /// current priority, keyed by the deadline of its next message if it has one, else by its
    /// fair-queuing tag (see `sched`). O(log n).
    fn reschedule(&mut self, id: StreamId) {
        self.reschedule_with(id, true);
    }

    /// [`Self::reschedule`]; `fresh`: the stream was not just served (see `sched`).
    fn reschedule_with(&mut self, id: StreamId, fresh: bool) {
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return;
        };
        let want = send
            .has_sendable()
            .then(|| (send.priority, send.head_deadline()));
        match (send.in_ready, want) {
            (None, None) => return,
            (Some(slot), Some((level, deadline))) if slot.level == level => {
                let same = match slot.key {
                    Key::Deadline(d) => deadline == Some(d),
                    Key::Fair(_) => deadline.is_none(),
                };
                if same {
                    return;
                }
            }
            _ => {}
        }
        if let Some(slot) = send.in_ready.take() {
            if let Some(lag) = self.sched.remove(id, slot) {
                send.lag = lag;
            }
        }
        if let Some((level, deadline)) = want {
            send.in_ready = Some(self.sched.insert(id, level, deadline, send.lag, fresh));
        }
    }

    /// Raises the peer's MAX_DATA and wakes writers waiting for it.
    fn raise_conn_credit(&mut self, max: u64) {
        if self.conn_send.raise(max) {
            self.wake_conn_writers();
        }
    }

    /// Raises how many streams of `dir` we may open.
    fn raise_local_max(&mut self, dir: Dir, max: u64) {
        let Some(counts) = self.local.get_mut(di(dir)) else {
            return;
        };
        if max > counts.max {
            counts.max = max;
            if counts.event {
                counts.event = false;
                self.events.push_back(StreamEvent::Available { dir });
            }
        }
    }

    /// Room for one more written byte on `id`, all limits considered.
    fn write_room(&self, id: StreamId) -> u64 {
        let Some(send) = self.streams.get(&id).and_then(|s| s.send.as_ref()) else {
            return 0;
        };
        send.credit
            .available()
            .min(self.conn_send.available())
            .min(self.limits.send_buffer.saturating_sub(self.send_buffered))
    }

    /// Emits `Writable` for `id` if it waits and now has room; otherwise keeps it waiting on
    /// whichever limit binds.
    fn wake_writer(&mut self, id: StreamId) {
        let room = self.write_room(id);
        let conn_room = self
            .conn_send
            .available()
            .min(self.limits.send_buffer.saturating_sub(self.send_buffered));
        let Some(send) = self.stream_send(id) else {
            return;
        };
        if !send.want_writable {
            return;
        }
        if room > 0 {
            send.want_writable = false;
            self.events.push_back(StreamEvent::Writable { id });
        } else if conn_room == 0 && !self.conn_writers.contains(&id) {
            self.conn_writers.push_back(id);
        }
    }

    /// Wakes writers waiting for connection-level room, if there is some.
    fn wake_conn_writers(&mut self) {
        let conn_room = self
            .conn_send
            .available()
            .min(self.limits.send_buffer.saturating_sub(self.send_buffered));
        if conn_room == 0 {
            return;
        }
        for id in std::mem::take(&mut self.conn_writers) {
            self.wake_writer(id);
        }
    }

    /// Forgets `id` if both halves are over; a peer-initiated stream's slot returns to the peer.
    fn maybe_forget(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        let send_done = stream.send.as_ref().is_none_or(Send::is_done);
        let recv_done = stream.recv.as_ref().is_none_or(Recv::is_done);
        if !(send_done && recv_done) {
            return;
        }
        self.streams.remove(&id);
        tracing::trace!(%id, "stream closed");
        if id.initiator() == self.side {
            return;
        }
        let concurrent = match id.dir() {
            Dir::Bi => self.limits.max_concurrent_bidi,
            Dir::Uni => self.limits.max_concurrent_uni,
        };
        if let Some(counts) = self.remote.get_mut(di(id.dir())) {
            counts.closed += 1;
            // Raise the limit once a quarter of the concurrency has been freed: the peer keeps
            // at least three quarters of its allowance at the cost of one small frame per
            // quarter (and at once when the peer says it is blocked; see `incoming`).
            let target = (counts.closed + concurrent).min(MAX_STREAM_COUNT);
            if target >= counts.max.saturating_add((concurrent / 4).max(1)) {
                counts.max = target;
                counts.queued = true;
            }
        }
    }
}
