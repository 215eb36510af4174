//! The task that drives one endpoint: socket in, core, socket out, one timer.
//!
//! Each wake-up: receive batches of datagrams (GRO) and route them; fire expired connection
//! timers; hand the core's events to waiting tasks; send what the core produced, gluing
//! consecutive equal-size datagrams to the same peer into GSO batches; re-arm the timer for the
//! earliest deadline. Only connections that changed are visited (see [`State`]): a wake-up costs
//! the same with ten or ten thousand idle connections. Work is budgeted per wake-up so one busy
//! peer cannot starve the others; when budget runs out the task wakes itself again.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use jsp_core::endpoint::DatagramEvent;
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, BATCH_SIZE};

use crate::clock;
use crate::runtime::{Runtime, Socket, Timer};
use crate::state::{ConnState, SendTurn, Shared, State};

/// Largest datagram we receive or ask the core to fill.
const MAX_DATAGRAM: usize = 1500;
/// Largest GSO batch, in bytes (the UDP payload limit, rounded down).
const MAX_BATCH_BYTES: usize = 64_000;
/// Receive batches (syscalls) per wake-up before yielding.
const RECV_BUDGET: usize = 16;
/// Send syscalls per wake-up before yielding.
const SEND_BUDGET: usize = 64;

/// A datagram or GSO batch in `send_buf` that the socket has not taken yet.
#[derive(Clone, Copy)]
struct Pending {
    destination: SocketAddr,
    start: usize,
    len: usize,
    segment_size: Option<usize>,
    /// The ECN codepoint of the datagram (of every datagram of a GSO batch).
    ecn: Option<jsp_core::connection::EcnCodepoint>,
}

/// The socket's ECN codepoint for the core's.
fn to_udp_ecn(ecn: jsp_core::connection::EcnCodepoint) -> quinn_udp::EcnCodepoint {
    use jsp_core::connection::EcnCodepoint as E;
    match ecn {
        E::Ect0 => quinn_udp::EcnCodepoint::Ect0,
        E::Ect1 => quinn_udp::EcnCodepoint::Ect1,
        E::Ce => quinn_udp::EcnCodepoint::Ce,
    }
}

/// The core's ECN codepoint for the socket's.
fn from_udp_ecn(ecn: quinn_udp::EcnCodepoint) -> jsp_core::connection::EcnCodepoint {
    use jsp_core::connection::EcnCodepoint as E;
    match ecn {
        quinn_udp::EcnCodepoint::Ect0 => E::Ect0,
        quinn_udp::EcnCodepoint::Ect1 => E::Ect1,
        quinn_udp::EcnCodepoint::Ce => E::Ce,
    }
}

/// The endpoint's driver future.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    socket: Socket,
    timer: Timer,
    recv_buf: Vec<u8>,
    recv_chunk: usize,
    recv_meta: Vec<RecvMeta>,
    send_buf: Vec<u8>,
    pending: VecDeque<Pending>,
    max_segments: usize,
    runtime: Runtime,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, socket: Socket, runtime: Runtime) -> Self {
        let timer = runtime.timer();
        let gro = socket.gro_segments().max(1);
        let recv_chunk = MAX_DATAGRAM * gro;
        let max_segments = socket.max_gso_segments().clamp(1, 64);
        Self {
            shared,
            socket,
            timer,
            recv_buf: vec![0; recv_chunk * BATCH_SIZE],
            recv_chunk,
            recv_meta: vec![RecvMeta::default(); BATCH_SIZE],
            send_buf: vec![0; MAX_BATCH_BYTES.max(MAX_DATAGRAM)],
            pending: VecDeque::new(),
            max_segments,
            runtime,
        }
    }

    /// Receives and routes datagrams; returns whether budget ran out with more to read.
    fn receive(&mut self, cx: &mut Context<'_>, st: &mut State) -> bool {
        for _ in 0..RECV_BUDGET {
            let mut slices: Vec<IoSliceMut<'_>> = self
                .recv_buf
                .chunks_mut(self.recv_chunk)
                .map(IoSliceMut::new)
                .collect();
            let n = match self.socket.poll_recv(cx, &mut slices, &mut self.recv_meta) {
                Poll::Pending => return false,
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => {
                    // ICMP errors and the like: the socket stays usable.
                    tracing::debug!(error = %e, "receive failed");
                    continue;
                }
            };
            drop(slices);
            let now = clock::now();
            tracing::trace!(buffers = n, "received");
            // One allocation per batch: copy what arrived into one buffer and split it into
            // datagrams that share it (the core decrypts each in place and hands out slices).
            let total = self.recv_meta[..n].iter().map(|m| m.len).sum();
            let mut all = BytesMut::with_capacity(total);
            for (i, meta) in self.recv_meta[..n].iter().enumerate() {
                let start = i * self.recv_chunk;
                all.extend_from_slice(&self.recv_buf[start..start + meta.len]);
            }
            for meta in &self.recv_meta[..n] {
                let mut buf = all.split_to(meta.len);
                let stride = meta.stride.max(1);
                let ecn = meta.ecn.map(from_udp_ecn);
                while !buf.is_empty() {
                    let datagram = buf.split_to(stride.min(buf.len()));
                    route(st, now, meta.addr, ecn, datagram);
                }
            }
        }
        true
    }

    /// Sends what the core has; returns whether budget ran out with more to send.
    fn transmit(&mut self, cx: &mut Context<'_>, st: &mut State) -> bool {
        let now = clock::now();
        let mut budget = SEND_BUDGET;
        loop {
            // The socket takes queued transmits in order; nothing new is built until it has.
            while let Some(p) = self.pending.front().copied() {
                let transmit = UdpTransmit {
                    destination: p.destination,
                    ecn: p.ecn.map(to_udp_ecn),
                    contents: &self.send_buf[p.start..p.start + p.len],
                    segment_size: p.segment_size,
                    src_ip: None,
                };
                match self.socket.poll_send(cx, &transmit) {
                    Poll::Pending => {
                        tracing::trace!("socket full");
                        return false;
                    }
                    Poll::Ready(Err(e)) => {
                        // Loss recovery resends what mattered; the socket stays usable.
                        tracing::debug!(error = %e, to = %p.destination, "send failed");
                    }
                    Poll::Ready(Ok(())) => {
                        tracing::trace!(to = %p.destination, len = p.len, segment = ?p.segment_size, "sent");
                    }
                }
                self.pending.pop_front();
                budget = budget.saturating_sub(1);
            }
            if budget == 0 {
                return true;
            }
            if !self.fill(st, now) {
                return false;
            }
        }
    }

    /// Asks the endpoint and then each connection for datagrams, queueing one batch per
    /// connection. Returns whether anything was queued.
    fn fill(&mut self, st: &mut State, now: jsp_core::Instant) -> bool {
        if let Some(t) = st.endpoint.poll_transmit(&mut self.send_buf) {
            self.pending.push_back(Pending {
                destination: t.destination,
                start: 0,
                len: t.size,
                segment_size: None,
                ecn: t.ecn,
            });
            return true;
        }
        let mut len = 0;
        let buf_len = self.send_buf.len();
        st.for_each_sender(|cs| {
            let (end, exhausted) = self.batch(cs, now, len);
            len = end;
            if len + MAX_DATAGRAM > buf_len {
                SendTurn::Full
            } else if exhausted {
                SendTurn::Exhausted
            } else {
                SendTurn::More
            }
        });
        !self.pending.is_empty()
    }

    /// Appends one connection's datagrams at `start` as a GSO batch; returns the new end and
    /// whether the connection had nothing more to send.
    fn batch(&mut self, cs: &mut ConnState, now: jsp_core::Instant, start: usize) -> (usize, bool) {
        let mut end = start;
        let mut first: Option<(
            SocketAddr,
            usize,
            Option<jsp_core::connection::EcnCodepoint>,
        )> = None;
        let mut count = 0;
        let mut exhausted = false;
        while count < self.max_segments && end + MAX_DATAGRAM <= self.send_buf.len() {
            let Some(t) = cs
                .conn
                .poll_transmit(now, &mut self.send_buf[end..end + MAX_DATAGRAM])
            else {
                exhausted = true;
                break;
            };
            match first {
                None => first = Some((t.destination, t.size, t.ecn)),
                Some((dest, seg, ecn)) if dest != t.destination || t.size > seg || ecn != t.ecn => {
                    // Cannot join the batch (one destination, segment size and ECN codepoint
                    // per batch): the batch goes first, this datagram alone after it.
                    self.push(start, end, count, (dest, seg, ecn));
                    self.pending.push_back(Pending {
                        destination: t.destination,
                        start: end,
                        len: t.size,
                        segment_size: None,
                        ecn: t.ecn,
                    });
                    return (end + t.size, false);
                }
                Some(_) => {}
            }
            end += t.size;
            count += 1;
            if first.is_some_and(|(_, seg, _)| t.size < seg) {
                break; // a short datagram ends a batch
            }
        }
        if let Some(first) = first {
            self.push(start, end, count, first);
        }
        (end, exhausted)
    }

    /// Queues the batch of `count` datagrams in `start..end` with its destination, segment
    /// size and ECN codepoint.
    fn push(
        &mut self,
        start: usize,
        end: usize,
        count: usize,
        (dest, seg, ecn): (
            SocketAddr,
            usize,
            Option<jsp_core::connection::EcnCodepoint>,
        ),
    ) {
        self.pending.push_back(Pending {
            destination: dest,
            start,
            len: end - start,
            segment_size: (count > 1).then_some(seg),
            ecn,
        });
    }
}

/// Feeds one datagram, with the ECN codepoint it came with, to the endpoint and the
/// connection it belongs to.
fn route(
    st: &mut State,
    now: jsp_core::Instant,
    from: SocketAddr,
    ecn: Option<jsp_core::connection::EcnCodepoint>,
    data: BytesMut,
) {
    match st.endpoint.handle_datagram(now, from, data) {
        Some(DatagramEvent::Route(handle, data)) => {
            if let Some(cs) = st.conn_mut(handle) {
                cs.conn.handle_datagram_ecn(now, from, ecn, data);
            }
        }
        Some(DatagramEvent::NewConnection(handle, conn, data)) => {
            let mut cs = ConnState::new(*conn, 1);
            cs.conn.handle_datagram_ecn(now, from, ecn, data);
            st.insert(handle, cs);
            st.push_incoming(handle);
        }
        None => {}
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        st.driver = Some(cx.waker().clone());
        let mut again = this.receive(cx, &mut st);
        st.fire_timers(clock::now());
        st.settle();
        again |= this.transmit(cx, &mut st);
        st.settle();
        if st.endpoint_refs == 0 && st.len() == 0 {
            tracing::debug!(local = %st.local_addr, "endpoint driver done");
            st.driver_gone = true;
            st.driver = None;
            return Poll::Ready(());
        }
        // The next connects' key shares (X25519 and ML-KEM, ~35 µs each) are made below, one
        // per pass, after this pass's datagrams went out and the lock (with the wakes it held
        // back) was released, while the handshakes in flight wait for the network: handing
        // them to a blocking thread cost a thread wake-up and a third runnable thread next to
        // the two the handshakes need (sequential loopback handshakes 2,649 → 2,916/s, medians
        // of three A/B runs of 3,000). If more are wanted, the driver passes again at once
        // (datagrams that arrived meanwhile first).
        let client_keys = st.take_client_key_work(1);
        if let Some((demand, mut rng)) = st.take_server_key_work() {
            // A server's next key pairs, made on another thread (tens of microseconds each):
            // a server answering many handshakes keeps its driver for them, and a machine with
            // more cores makes the keys in parallel.
            let shared = this.shared.clone();
            this.runtime.spawn_blocking(move || {
                let shares = jsp_core::endpoint::KeyShares::generate(&demand, &mut rng);
                shared.lock().supply_key_shares(shares, rng);
            });
        }
        let deadline = st.next_deadline();
        drop(st);
        if let Some((demand, mut rng)) = client_keys {
            let shares = jsp_core::endpoint::KeyShares::generate(&demand, &mut rng);
            let mut st = shared.lock();
            st.supply_key_shares(shares, rng);
            again |= st.wants_client_keys();
        }
        if let Some(deadline) = deadline {
            if this.timer.poll_at(cx, clock::to_std(deadline)).is_ready() {
                again = true;
            }
        }
        if again {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
