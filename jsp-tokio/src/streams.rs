//! Stream handles: [`SendStream`] and [`RecvStream`], with tokio's `AsyncWrite`/`AsyncRead`
//! (and futures-io's with the `smol` feature).
//!
//! # Drop semantics
//!
//! A stream's end must mean "the sender finished", never "the sender went away":
//! - dropping a [`SendStream`] that was **not** finished resets it with code
//!   [`DROPPED_CODE`] (0): the peer's read fails with a reset, so a partial message never looks
//!   complete. Data already written is abandoned.
//! - dropping a [`SendStream`] **after** [`SendStream::finish`] keeps delivering what was
//!   written, in the background, until the peer has it all (or the connection ends).
//! - dropping a [`RecvStream`] before its end asks the peer to stop sending (STOP_SENDING with
//!   [`DROPPED_CODE`]); a stream read to its end or reset needs nothing.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use jsp_core::connection::Connection as CoreConnection;
use jsp_core::frame::StreamId;
use jsp_core::stream::{
    Delivery, DeliveryMode, ReadError as CoreReadError, SendStats, WriteError as CoreWriteError,
    DEFAULT_WEIGHT,
};
use jsp_core::Duration;

use crate::connection::ConnRef;
use crate::error::{ReadError, WriteError};
use crate::state::ConnState;

/// The application error code sent when a stream handle is dropped before its end.
pub const DROPPED_CODE: u64 = 0;

/// How to open a stream: its delivery mode and its place in the send scheduler.
///
/// ```
/// use jsp_tokio::{DeliveryMode, StreamOptions};
/// use std::time::Duration;
///
/// // Game state: partially reliable (worthless after 100 ms), ahead of bulk streams.
/// let opts = StreamOptions::new()
///     .mode(DeliveryMode::PartiallyReliable { ttl: Duration::from_millis(100) })
///     .priority(10);
/// assert_eq!(opts.weight, jsp_tokio::DEFAULT_WEIGHT);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// How the stream's data is delivered (default reliable). Partially reliable and
    /// best-effort streams carry whole messages only ([`SendStream::send_message`]).
    pub mode: DeliveryMode,
    /// The send priority (default 0): a higher level is served strictly first.
    pub priority: i32,
    /// The weight inside its priority level (default [`DEFAULT_WEIGHT`]): backlogged streams of
    /// one level share the bytes sent in proportion to their weights.
    pub weight: u16,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamOptions {
    /// Reliable, priority 0, the default weight.
    pub fn new() -> Self {
        Self {
            mode: DeliveryMode::Reliable,
            priority: 0,
            weight: DEFAULT_WEIGHT,
        }
    }

    /// Sets the delivery mode.
    pub fn mode(mut self, mode: DeliveryMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the send priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the weight inside the priority level (0 counts as 1).
    pub fn weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    Open,
    /// FIN queued; waiting (maybe) for the acknowledgement.
    Finishing,
    /// Acknowledged, reset or stopped: nothing more to do.
    Done,
}

/// The sending half of a stream.
pub struct SendStream {
    conn: ConnRef,
    id: StreamId,
    state: SendState,
}

impl std::fmt::Debug for SendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStream")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish()
    }
}

impl SendStream {
    pub(crate) fn new(conn: ConnRef, id: StreamId) -> Self {
        Self {
            conn,
            id,
            state: SendState::Open,
        }
    }

    /// The stream's ID.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Writes some of `data`, waiting while flow control or the send buffer is full; returns
    /// how many bytes were taken.
    pub async fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        poll_fn(|cx| self.poll_write_inner(cx, data)).await
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), WriteError> {
        while !data.is_empty() {
            let n = self.write(data).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Ends the stream cleanly: the peer reads everything written, then the end. Returns at
    /// once; data keeps flowing in the background even if this handle is dropped. Await
    /// [`Self::finished`] to know the peer has it all.
    pub fn finish(&mut self) -> Result<(), WriteError> {
        if self.state != SendState::Open {
            return Err(WriteError::ClosedStream);
        }
        let id = self.id;
        let r = self
            .conn
            .with_send(|cs| {
                if let Some(e) = &cs.error {
                    return Err(WriteError::ConnectionLost(e.clone()));
                }
                cs.conn.finish(id).map_err(map_write_error)?;
                // From now on a `Finished` or `Stopped` event for this stream is kept for us.
                cs.awaiting_finish.insert(id, None);
                Ok(())
            })
            .unwrap_or(Err(WriteError::ConnectionLost(
                crate::ConnectionError::EndpointClosed,
            )));
        if r.is_ok() {
            self.state = SendState::Finishing;
        }
        r
    }

    /// Finishes the stream if that was not done yet, and waits until the peer acknowledged all
    /// its data and the end.
    pub async fn finished(&mut self) -> Result<(), WriteError> {
        poll_fn(|cx| self.poll_finished(cx)).await
    }

    /// Abandons the stream: unsent data is dropped and the peer's read fails with `code`.
    pub fn reset(&mut self, code: u64) -> Result<(), WriteError> {
        if self.state == SendState::Done {
            return Err(WriteError::ClosedStream);
        }
        let id = self.id;
        self.state = SendState::Done;
        self.conn
            .with_send(|cs| cs.conn.reset(id, code).map_err(map_write_error))
            .unwrap_or(Ok(()))
    }

    /// Sets the stream's priority: a higher level is sent strictly first; streams of one level
    /// share it by message deadline, then by weight ([`Self::set_weight`]).
    pub fn set_priority(&self, priority: i32) {
        let id = self.id;
        self.conn.with(|cs| cs.conn.set_priority(id, priority).ok());
    }

    /// Sets the stream's weight inside its priority level (default [`DEFAULT_WEIGHT`]; 0 counts
    /// as 1): backlogged streams of one level share the bytes sent in proportion to their
    /// weights, retransmissions included.
    pub fn set_weight(&self, weight: u16) {
        let id = self.id;
        self.conn.with(|cs| cs.conn.set_weight(id, weight).ok());
    }

    /// The stream's priority and weight, while the connection knows the stream.
    pub fn scheduling(&self) -> Option<(i32, u16)> {
        let id = self.id;
        self.conn.with(|cs| cs.conn.stream_scheduling(id)).flatten()
    }

    /// The stream's delivery mode, while the connection knows the stream.
    pub fn delivery_mode(&self) -> Option<DeliveryMode> {
        let id = self.id;
        self.conn.with(|cs| cs.conn.delivery_mode(id)).flatten()
    }

    /// Figures of this stream's sending: messages, abandoned messages and bytes, retransmitted
    /// bytes, STREAM_SKIPs sent.
    pub fn stats(&self) -> Option<SendStats> {
        let id = self.id;
        self.conn.with(|cs| cs.conn.stream_send_stats(id)).flatten()
    }

    /// Sends one whole message (its boundaries are kept; the peer reads it with
    /// [`RecvStream::recv_message`]), waiting while there is no room for all of it. On a
    /// partially reliable stream the message's TTL counts from this call; on a partially
    /// reliable or best-effort stream a message that cannot arrive in time (or, best-effort, is
    /// lost once) is abandoned and the peer is told it was skipped.
    pub async fn send_message(&mut self, data: Bytes) -> Result<(), WriteError> {
        poll_fn(|cx| self.poll_send_message(cx, &data, None)).await
    }

    /// Sends one whole message that should arrive within `within` from now, as
    /// [`Self::send_message`] otherwise. Inside a priority level, the message whose deadline
    /// is earliest is sent first, across streams. On a reliable stream the deadline only orders
    /// sending; on a partially reliable stream it replaces the TTL for this message; on the
    /// non-reliable modes the message is abandoned once it can no longer arrive by it.
    pub async fn send_message_with_deadline(
        &mut self,
        data: Bytes,
        within: Duration,
    ) -> Result<(), WriteError> {
        poll_fn(|cx| self.poll_send_message(cx, &data, Some(within))).await
    }

    fn poll_send_message(
        &mut self,
        cx: &mut Context<'_>,
        data: &Bytes,
        within: Option<Duration>,
    ) -> Poll<Result<(), WriteError>> {
        let id = self.id;
        self.poll_send_op(cx, |cs, cx| {
            // Deadlines and TTLs count from the connection's latest `now`: bring it up to date
            // (a timer fire with nothing due only moves the clock).
            cs.conn.handle_timeout(crate::clock::now());
            let sent = match within {
                Some(within) => cs.conn.send_message_with_deadline(id, data.clone(), within),
                None => cs.conn.send_message(id, data.clone()),
            };
            match sent {
                Ok(()) => Poll::Ready(Ok(())),
                Err(CoreWriteError::Blocked) => {
                    cs.writers.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(map_write_error(e))),
            }
        })
    }

    /// Runs a send-side operation on the open stream: fails on a closed stream or a lost
    /// connection, and marks the stream done when the peer stopped it.
    fn poll_send_op<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut ConnState, &mut Context<'_>) -> Poll<Result<T, WriteError>>,
    ) -> Poll<Result<T, WriteError>> {
        if self.state != SendState::Open {
            return Poll::Ready(Err(WriteError::ClosedStream));
        }
        let r = ready!(self.conn.poll(cx, |cs, cx| {
            if let Err(Some(e)) = cs.check() {
                return Poll::Ready(Ok(Err(WriteError::ConnectionLost(e))));
            }
            op(cs, cx).map(Ok)
        }));
        let r = r.map_err(WriteError::ConnectionLost).and_then(|r| r);
        if matches!(r, Err(WriteError::Stopped(_))) {
            self.state = SendState::Done;
        }
        Poll::Ready(r)
    }

    /// Lets this stream's data travel as 0-RTT data before the handshake completes. Only for
    /// idempotent requests: an attacker can replay 0-RTT data.
    pub fn set_replay_safe(&self, safe: bool) {
        let id = self.id;
        self.conn.with_send(|cs| cs.conn.set_replay_safe(id, safe));
    }

    fn poll_write_inner(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        let id = self.id;
        self.poll_send_op(cx, |cs, cx| match cs.conn.write(id, data) {
            Ok(0) if !data.is_empty() => {
                cs.writers.insert(id, cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(map_write_error(e))),
        })
    }

    fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        match self.state {
            SendState::Open => self.finish()?,
            SendState::Finishing => {}
            SendState::Done => return Poll::Ready(Ok(())),
        }
        let id = self.id;
        let r = ready!(self.conn.poll(cx, |cs, cx| {
            match cs.finish_outcome.remove(&id) {
                Some(None) => return Poll::Ready(Ok(Ok(()))),
                Some(Some(code)) => return Poll::Ready(Ok(Err(WriteError::Stopped(code)))),
                None => {}
            }
            if let Err(Some(e)) = cs.check() {
                return Poll::Ready(Ok(Err(WriteError::ConnectionLost(e))));
            }
            cs.awaiting_finish.insert(id, Some(cx.waker().clone()));
            Poll::Pending
        }));
        self.state = SendState::Done;
        Poll::Ready(r.map_err(WriteError::ConnectionLost).and_then(|r| r))
    }
}

fn map_write_error(e: CoreWriteError) -> WriteError {
    match e {
        CoreWriteError::Stopped(code) => WriteError::Stopped(code),
        CoreWriteError::MessageTooLarge => WriteError::MessageTooLarge,
        CoreWriteError::MessagesOnly => WriteError::MessagesOnly,
        _ => WriteError::ClosedStream,
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let (id, state) = (self.id, self.state);
        self.conn.with_send(|cs| {
            if state == SendState::Open && !cs.conn.is_closed() {
                tracing::debug!(
                    stream = id.0,
                    "send stream dropped unfinished: resetting it"
                );
                let _ = cs.conn.reset(id, DROPPED_CODE);
            }
            cs.writers.remove(&id);
            cs.awaiting_finish.remove(&id);
            cs.finish_outcome.remove(&id);
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecvState {
    Open,
    /// The end was read, the stream was reset, or reading was stopped.
    Done,
}

/// The receiving half of a stream.
pub struct RecvStream {
    conn: ConnRef,
    id: StreamId,
    state: RecvState,
}

impl std::fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish()
    }
}

impl RecvStream {
    pub(crate) fn new(conn: ConnRef, id: StreamId) -> Self {
        Self {
            conn,
            id,
            state: RecvState::Open,
        }
    }

    /// The stream's ID.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads into `buf`; `Ok(None)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        poll_fn(|cx| self.poll_read_with(cx, |c, id| read_into(c, id, buf))).await
    }

    /// Reads the next chunk of up to `max` bytes without copying; `Ok(None)` at the end.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        poll_fn(|cx| self.poll_read_with(cx, |c, id| c.read(id, max))).await
    }

    /// Reads the whole stream, failing with [`ReadError::TooLong`] past `limit` bytes.
    pub async fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read_chunk(usize::MAX).await? {
            if out.len() + chunk.len() > limit {
                return Err(ReadError::TooLong(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The next whole message (see [`SendStream::send_message`]), or the report of messages
    /// the peer abandoned before it ([`Delivery::Skipped`]: on partially reliable and
    /// best-effort streams, every abandoned message is reported exactly once); `Ok(None)` at the
    /// end of the stream.
    pub async fn recv_message(&mut self) -> Result<Option<Delivery>, ReadError> {
        poll_fn(|cx| self.poll_read_with(cx, |c, id| c.recv_message(id))).await
    }

    /// Asks the peer to stop sending, with `code`; later reads fail.
    pub fn stop(&mut self, code: u64) -> Result<(), ReadError> {
        if self.state == RecvState::Done {
            return Err(ReadError::ClosedStream);
        }
        self.state = RecvState::Done;
        let id = self.id;
        self.conn
            .with_send(|cs| cs.conn.stop(id, code).map_err(|_| ReadError::ClosedStream))
            .unwrap_or(Ok(()))
    }

    /// Whether data on this stream arrived as 0-RTT data (and so could be a replay).
    pub fn received_early(&self) -> bool {
        let id = self.id;
        self.conn
            .with(|cs| cs.conn.received_early(id))
            .unwrap_or(false)
    }

    fn poll_read_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut CoreConnection, StreamId) -> Result<Option<T>, CoreReadError>,
    ) -> Poll<Result<Option<T>, ReadError>> {
        if self.state == RecvState::Done {
            return Poll::Ready(Err(ReadError::ClosedStream));
        }
        let id = self.id;
        let r = ready!(self.conn.poll_then_wake(
            cx,
            |cs, cx| match op(&mut cs.conn, id) {
                Ok(v) => Poll::Ready(Ok(Ok(v))),
                Err(CoreReadError::Blocked) => {
                    if let Err(Some(e)) = cs.check() {
                        return Poll::Ready(Ok(Err(ReadError::ConnectionLost(e))));
                    }
                    cs.readers.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Err(CoreReadError::Reset(code)) => Poll::Ready(Ok(Err(ReadError::Reset(code)))),
                Err(CoreReadError::MessageTooLarge(n)) => {
                    Poll::Ready(Ok(Err(ReadError::MessageTooLarge(n))))
                }
                Err(_) => Poll::Ready(Ok(Err(ReadError::ClosedStream))),
            },
            // A read only gives the driver work when it released credit worth announcing.
            |cs| cs.conn.has_pending_data() || cs.conn.is_closed(),
        ));
        let r = r.map_err(ReadError::ConnectionLost).and_then(|r| r);
        if matches!(r, Ok(None) | Err(ReadError::Reset(_))) {
            self.state = RecvState::Done;
        }
        Poll::Ready(r)
    }
}

/// Copies in-order data into `buf`, one chunk per call so that the end of the stream is never
/// consumed together with data (the core forgets a stream once its end was read).
fn read_into(
    conn: &mut CoreConnection,
    id: StreamId,
    buf: &mut [u8],
) -> Result<Option<usize>, CoreReadError> {
    Ok(conn.read(id, buf.len())?.map(|chunk| {
        buf[..chunk.len()].copy_from_slice(&chunk);
        chunk.len()
    }))
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let (id, state) = (self.id, self.state);
        self.conn.with_send(|cs| {
            if state == RecvState::Open && !cs.conn.is_closed() {
                let _ = cs.conn.stop(id, DROPPED_CODE);
            }
            cs.readers.remove(&id);
        });
    }
}

impl tokio::io::AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state == RecvState::Done {
            return Poll::Ready(Ok(()));
        }
        let dst = buf.initialize_unfilled();
        let r = ready!(this.poll_read_with(cx, |c, id| read_into(c, id, dst)));
        match r {
            Ok(Some(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Ok(None) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}

impl tokio::io::AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_inner(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Finishes the stream and waits until the peer acknowledged everything.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finished(cx).map_err(io::Error::from)
    }
}

#[cfg(feature = "smol")]
impl futures_io::AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state == RecvState::Done {
            return Poll::Ready(Ok(0));
        }
        let r = ready!(this.poll_read_with(cx, |c, id| read_into(c, id, buf)));
        Poll::Ready(match r {
            Ok(n) => Ok(n.unwrap_or(0)),
            Err(e) => Err(e.into()),
        })
    }
}

#[cfg(feature = "smol")]
impl futures_io::AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_inner(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Finishes the stream and waits until the peer acknowledged everything.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finished(cx).map_err(io::Error::from)
    }
}
