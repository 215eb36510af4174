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
use jsp_core::stream::{ReadError as CoreReadError, WriteError as CoreWriteError};

use crate::connection::ConnRef;
use crate::error::{ReadError, WriteError};

/// The application error code sent when a stream handle is dropped before its end.
pub const DROPPED_CODE: u64 = 0;

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

    /// Sets the stream's priority: higher is sent first, equal priorities share round-robin.
    pub fn set_priority(&self, priority: i32) {
        let id = self.id;
        self.conn.with(|cs| cs.conn.set_priority(id, priority).ok());
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
        if self.state != SendState::Open {
            return Poll::Ready(Err(WriteError::ClosedStream));
        }
        let id = self.id;
        let r = ready!(self.conn.poll(cx, |cs, cx| {
            if let Err(Some(e)) = cs.check() {
                return Poll::Ready(Ok(Err(WriteError::ConnectionLost(e))));
            }
            match cs.conn.write(id, data) {
                Ok(0) if !data.is_empty() => {
                    cs.writers.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(Ok(n))),
                Err(e) => Poll::Ready(Ok(Err(map_write_error(e)))),
            }
        }));
        let r = r.map_err(WriteError::ConnectionLost).and_then(|r| r);
        if matches!(r, Err(WriteError::Stopped(_))) {
            self.state = SendState::Done;
        }
        Poll::Ready(r)
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
        let r = ready!(self.conn.poll(cx, |cs, cx| {
            match op(&mut cs.conn, id) {
                Ok(v) => Poll::Ready(Ok(Ok(v))),
                Err(CoreReadError::Blocked) => {
                    if let Err(Some(e)) = cs.check() {
                        return Poll::Ready(Ok(Err(ReadError::ConnectionLost(e))));
                    }
                    cs.readers.insert(id, cx.waker().clone());
                    Poll::Pending
                }
                Err(CoreReadError::Reset(code)) => Poll::Ready(Ok(Err(ReadError::Reset(code)))),
                Err(_) => Poll::Ready(Ok(Err(ReadError::ClosedStream))),
            }
        }));
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
