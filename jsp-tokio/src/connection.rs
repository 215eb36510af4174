//! Connection handles: [`Connecting`] (a handshake in progress) and [`Connection`].

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use jsp_core::connection::{ConnectionStats, SendDatagramError as CoreDatagramError};
use jsp_core::endpoint::ConnectionHandle;
use jsp_core::frame::{Dir, StreamId};
use jsp_core::handshake::ClientTicket;
use jsp_core::session::HandshakeInfo;

use crate::clock;
use crate::error::{ConnectionError, SendDatagramError};
use crate::state::{ConnState, Shared, State};
use crate::streams::{RecvStream, SendStream, StreamOptions};

/// A counted reference to one connection in its endpoint's shared state. When the last one is
/// dropped the connection is closed with code 0 (if still open) and forgotten once drained.
pub(crate) struct ConnRef {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: ConnectionHandle,
}

impl ConnRef {
    /// Takes over a reference already counted in the connection's state.
    pub(crate) fn adopt(shared: Arc<Shared>, handle: ConnectionHandle) -> Self {
        Self { shared, handle }
    }

    /// Runs `f` on the connection under the lock. `None` when the connection is gone from the
    /// table (only after its driver stopped).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> Option<R> {
        let mut st = self.shared.lock();
        st.conn_mut(self.handle).map(f)
    }

    /// Like [`Self::with`], then wakes the driver (the call may have queued something to send).
    pub(crate) fn with_send<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> Option<R> {
        let mut st = self.shared.lock();
        let r = st.conn_mut(self.handle).map(f);
        st.wake_driver();
        r
    }

    /// Polls `f` with the connection; translates a closed connection into its error, waiting for
    /// the driver to report why when it has not yet.
    pub(crate) fn poll<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut ConnState, &mut Context<'_>) -> Poll<Result<R, ConnectionError>>,
    ) -> Poll<Result<R, ConnectionError>> {
        self.poll_then_wake(cx, f, |_| true)
    }

    /// [`Self::poll`] for calls that rarely give the driver work (reads): the driver is woken
    /// only when `wake` says the call left something to send. A reader taking one chunk per
    /// call would otherwise re-run the driver (a receive syscall, timer and event scans) for
    /// every chunk it takes.
    pub(crate) fn poll_then_wake<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut ConnState, &mut Context<'_>) -> Poll<Result<R, ConnectionError>>,
        wake: impl FnOnce(&ConnState) -> bool,
    ) -> Poll<Result<R, ConnectionError>> {
        let mut st = self.shared.lock();
        let Some(cs) = st.conn_mut(self.handle) else {
            return Poll::Ready(Err(ConnectionError::EndpointClosed));
        };
        // Every pending path registers its waker in a set the connection's end also wakes.
        let r = f(cs, cx);
        let wanted = wake(cs);
        if r.is_pending() && st.driver_gone {
            return Poll::Ready(Err(ConnectionError::EndpointClosed));
        }
        if wanted {
            st.wake_driver();
        }
        r
    }
}

impl Clone for ConnRef {
    fn clone(&self) -> Self {
        if let Some(cs) = self.shared.lock().conn_mut(self.handle) {
            cs.refs += 1;
        }
        Self {
            shared: self.shared.clone(),
            handle: self.handle,
        }
    }
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let st: &mut State = &mut st;
        if let Some(cs) = st.conn_mut(self.handle) {
            cs.refs = cs.refs.saturating_sub(1);
            if cs.refs == 0 && !cs.conn.is_closed() {
                tracing::debug!(remote = %cs.remote, "every handle dropped: closing with code 0");
                cs.conn.close(clock::now(), 0, b"");
            }
        }
        st.reap(self.handle);
        st.wake_driver();
    }
}

/// A connection whose handshake is in progress. Await it for the [`Connection`].
#[must_use = "a connection is only established when `Connecting` is awaited"]
pub struct Connecting {
    conn: Option<ConnRef>,
    zero_rtt: bool,
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("zero_rtt", &self.zero_rtt)
            .finish_non_exhaustive()
    }
}

impl Connecting {
    pub(crate) fn new(conn: ConnRef, zero_rtt: bool) -> Self {
        Self {
            conn: Some(conn),
            zero_rtt,
        }
    }

    /// The peer's address.
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.conn.as_ref()?.with(|cs| cs.remote)
    }

    /// Uses the connection before the handshake completes (0-RTT).
    ///
    /// On a client this works only when resuming with a session ticket that allows 0-RTT;
    /// otherwise `Err(self)` is returned and the caller awaits the handshake. Only data marked
    /// replay-safe ([`SendStream::set_replay_safe`], [`Connection::send_datagram_early`]) travels
    /// early: an attacker can replay 0-RTT data, so mark only idempotent requests. If the server
    /// refuses 0-RTT, that data is resent after the handshake; [`Connection::handshake`] reports
    /// which happened.
    ///
    /// On a server this always succeeds: streams and datagrams the client sent as 0-RTT data can
    /// be read at once (check [`RecvStream::received_early`] before acting on them).
    pub fn into_0rtt(mut self) -> Result<Connection, Self> {
        let Some(conn) = self.conn.take() else {
            return Err(self);
        };
        let server = conn.with(|cs| cs.conn.side().is_server()).unwrap_or(false);
        if self.zero_rtt || server {
            Ok(Connection { inner: conn })
        } else {
            self.conn = Some(conn);
            Err(self)
        }
    }
}

impl Future for Connecting {
    type Output = Result<Connection, ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(conn) = self.conn.as_ref() else {
            return Poll::Ready(Err(ConnectionError::EndpointClosed));
        };
        match conn.poll(cx, poll_handshake) {
            Poll::Ready(Ok(_)) => {
                let inner = self.conn.take().ok_or(ConnectionError::EndpointClosed)?;
                Poll::Ready(Ok(Connection { inner }))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn poll_handshake(
    cs: &mut ConnState,
    cx: &mut Context<'_>,
) -> Poll<Result<HandshakeInfo, ConnectionError>> {
    if let Some(info) = &cs.handshake {
        return Poll::Ready(Ok(info.clone()));
    }
    if let Err(Some(e)) = cs.check() {
        return Poll::Ready(Err(e));
    }
    cs.handshake_wakers.register(cx);
    Poll::Pending
}

/// An established (or, after [`Connecting::into_0rtt`], resuming) connection.
///
/// Cheap to clone; every clone refers to the same connection. When every handle to the
/// connection and its streams is dropped, the connection is closed with application code 0.
#[derive(Clone)]
pub struct Connection {
    inner: ConnRef,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote_address())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens a bidirectional stream, waiting while the peer's stream limit is reached.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = poll_fn(|cx| self.inner.poll(cx, |cs, cx| poll_open(cs, cx, Dir::Bi))).await?;
        Ok((
            SendStream::new(self.inner.clone(), id),
            RecvStream::new(self.inner.clone(), id),
        ))
    }

    /// Opens a unidirectional (send-only) stream, waiting while the peer's limit is reached.
    pub async fn open_uni(&self) -> Result<SendStream, ConnectionError> {
        let id = poll_fn(|cx| self.inner.poll(cx, |cs, cx| poll_open(cs, cx, Dir::Uni))).await?;
        Ok(SendStream::new(self.inner.clone(), id))
    }

    /// Opens a bidirectional stream with `options` (delivery mode of our sending, priority,
    /// weight), waiting while the peer's stream limit is reached.
    pub async fn open_bi_with(
        &self,
        options: StreamOptions,
    ) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = poll_fn(|cx| {
            self.inner
                .poll(cx, |cs, cx| poll_open_with(cs, cx, Dir::Bi, options))
        })
        .await?;
        Ok((
            SendStream::new(self.inner.clone(), id),
            RecvStream::new(self.inner.clone(), id),
        ))
    }

    /// Opens a unidirectional stream with `options`, waiting while the peer's limit is reached.
    pub async fn open_uni_with(
        &self,
        options: StreamOptions,
    ) -> Result<SendStream, ConnectionError> {
        let id = poll_fn(|cx| {
            self.inner
                .poll(cx, |cs, cx| poll_open_with(cs, cx, Dir::Uni, options))
        })
        .await?;
        Ok(SendStream::new(self.inner.clone(), id))
    }

    /// Waits for the next bidirectional stream the peer opens.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = poll_fn(|cx| self.inner.poll(cx, |cs, cx| poll_accept(cs, cx, Dir::Bi))).await?;
        Ok((
            SendStream::new(self.inner.clone(), id),
            RecvStream::new(self.inner.clone(), id),
        ))
    }

    /// Waits for the next unidirectional stream the peer opens.
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        let id = poll_fn(|cx| self.inner.poll(cx, |cs, cx| poll_accept(cs, cx, Dir::Uni))).await?;
        Ok(RecvStream::new(self.inner.clone(), id))
    }

    /// Queues an unreliable datagram (sent at most once, never retransmitted; the oldest queued
    /// ones are dropped when the send buffer is full).
    pub fn send_datagram(&self, data: Bytes) -> Result<(), SendDatagramError> {
        self.queue_datagram(data, false)
    }

    /// Queues a datagram that may travel as 0-RTT data. Only for data that is safe to be
    /// replayed by an attacker (idempotent requests).
    pub fn send_datagram_early(&self, data: Bytes) -> Result<(), SendDatagramError> {
        self.queue_datagram(data, true)
    }

    fn queue_datagram(&self, data: Bytes, early: bool) -> Result<(), SendDatagramError> {
        self.inner
            .with_send(|cs| {
                if let Some(e) = &cs.error {
                    return Err(SendDatagramError::ConnectionLost(e.clone()));
                }
                let r = if early {
                    cs.conn.send_datagram_early(data)
                } else {
                    cs.conn.send_datagram(data)
                };
                r.map_err(|e| match e {
                    CoreDatagramError::Disabled => SendDatagramError::Disabled,
                    CoreDatagramError::TooLarge { max } => SendDatagramError::TooLarge { max },
                    CoreDatagramError::ConnectionLost => {
                        SendDatagramError::ConnectionLost(ConnectionError::LocallyClosed)
                    }
                })
            })
            .unwrap_or(Err(SendDatagramError::ConnectionLost(
                ConnectionError::EndpointClosed,
            )))
    }

    /// Waits for the next datagram from the peer.
    pub async fn read_datagram(&self) -> Result<Bytes, ConnectionError> {
        poll_fn(|cx| {
            self.inner.poll(cx, |cs, cx| {
                if let Some(d) = cs.conn.recv_datagram() {
                    return Poll::Ready(Ok(d));
                }
                if let Err(Some(e)) = cs.check() {
                    return Poll::Ready(Err(e));
                }
                cs.datagrams.register(cx);
                Poll::Pending
            })
        })
        .await
    }

    /// The largest datagram payload the peer accepts now (0 when it accepts none, or before the
    /// handshake told us).
    pub fn max_datagram_size(&self) -> usize {
        self.inner
            .with(|cs| cs.conn.max_datagram_size())
            .unwrap_or(0)
    }

    /// Closes the connection with an application `code` and `reason` the peer sees. Data not
    /// yet delivered is abandoned; finish streams and await [`SendStream::finished`] first to
    /// make sure it arrived.
    pub fn close(&self, code: u64, reason: &[u8]) {
        self.inner
            .with_send(|cs| cs.conn.close(clock::now(), code, reason));
    }

    /// Waits until the connection ends, and says why.
    pub async fn closed(&self) -> ConnectionError {
        poll_fn(|cx| {
            self.inner.poll(cx, |cs, cx| match &cs.error {
                Some(e) => Poll::Ready(Ok(e.clone())),
                None => {
                    cs.closed_wakers.register(cx);
                    Poll::Pending
                }
            })
        })
        .await
        .unwrap_or_else(|e| e)
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.inner.with(|cs| cs.error.clone()).flatten()
    }

    /// Waits for the handshake to complete and returns what was negotiated (immediately once
    /// it has). After [`Connecting::into_0rtt`], `early_data` says whether 0-RTT was accepted.
    pub async fn handshake(&self) -> Result<HandshakeInfo, ConnectionError> {
        poll_fn(|cx| self.inner.poll(cx, poll_handshake)).await
    }

    /// What the handshake negotiated, once it completed.
    pub fn handshake_info(&self) -> Option<HandshakeInfo> {
        self.inner.with(|cs| cs.handshake.clone()).flatten()
    }

    /// Waits for a session ticket from the server, to resume with 0-RTT on a later
    /// [`crate::Endpoint::connect_with`]. Tickets are single-use. `None` on a server, or when the
    /// connection ends first.
    pub async fn session_ticket(&self) -> Option<ClientTicket> {
        poll_fn(|cx| {
            self.inner.poll(cx, |cs, cx| {
                if let Some(t) = cs.tickets.pop_front() {
                    return Poll::Ready(Ok(Some(t)));
                }
                if cs.conn.side().is_server() || cs.check().is_err() {
                    return Poll::Ready(Ok(None));
                }
                cs.ticket_wakers.register(cx);
                Poll::Pending
            })
        })
        .await
        .unwrap_or(None)
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.inner
            .with(|cs| cs.remote)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.inner.with(|cs| cs.conn.stats()).unwrap_or_default()
    }

    /// The smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.inner
            .with(|cs| cs.conn.rtt())
            .unwrap_or(Duration::ZERO)
    }

    /// Starts a key update (see the core's `initiate_key_update`); returns whether one started.
    pub fn update_keys(&self) -> bool {
        self.inner
            .with_send(|cs| cs.conn.initiate_key_update())
            .unwrap_or(false)
    }
}

fn poll_open(
    cs: &mut ConnState,
    cx: &mut Context<'_>,
    dir: Dir,
) -> Poll<Result<StreamId, ConnectionError>> {
    if let Err(Some(e)) = cs.check() {
        return Poll::Ready(Err(e));
    }
    let opened = match dir {
        Dir::Bi => cs.conn.open_bi(),
        Dir::Uni => cs.conn.open_uni(),
    };
    match opened {
        Some(id) => Poll::Ready(Ok(id)),
        None => {
            // At the peer's limit, or closed and not yet reported: either way an event follows.
            match dir {
                Dir::Bi => cs.open_bi.register(cx),
                Dir::Uni => cs.open_uni.register(cx),
            }
            Poll::Pending
        }
    }
}

fn poll_open_with(
    cs: &mut ConnState,
    cx: &mut Context<'_>,
    dir: Dir,
    options: StreamOptions,
) -> Poll<Result<StreamId, ConnectionError>> {
    if let Err(Some(e)) = cs.check() {
        return Poll::Ready(Err(e));
    }
    let opened = match dir {
        Dir::Bi => cs.conn.open_bi_with(options.mode),
        Dir::Uni => cs.conn.open_uni_with(options.mode),
    };
    match opened {
        Some(id) => {
            // The stream was just opened: both calls only fail for unknown streams.
            let _ = cs.conn.set_priority(id, options.priority);
            let _ = cs.conn.set_weight(id, options.weight);
            Poll::Ready(Ok(id))
        }
        None => {
            match dir {
                Dir::Bi => cs.open_bi.register(cx),
                Dir::Uni => cs.open_uni.register(cx),
            }
            Poll::Pending
        }
    }
}

fn poll_accept(
    cs: &mut ConnState,
    cx: &mut Context<'_>,
    dir: Dir,
) -> Poll<Result<StreamId, ConnectionError>> {
    let accepted = match dir {
        Dir::Bi => cs.conn.accept_bi(),
        Dir::Uni => cs.conn.accept_uni(),
    };
    if let Some(id) = accepted {
        return Poll::Ready(Ok(id));
    }
    if let Err(Some(e)) = cs.check() {
        return Poll::Ready(Err(e));
    }
    match dir {
        Dir::Bi => cs.accept_bi.register(cx),
        Dir::Uni => cs.accept_uni.register(cx),
    }
    Poll::Pending
}
