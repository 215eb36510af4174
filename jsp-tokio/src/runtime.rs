//! The few things the driver needs from an async runtime: a UDP socket it can poll, one timer,
//! and a way to spawn the driver task. Tokio always; smol behind the `smol` feature. The runtime
//! is picked when an endpoint is created: tokio when a tokio runtime is running, smol otherwise.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Socket buffer size asked for, in bytes.
const SOCKET_BUFFER: usize = 4 << 20;

/// Which runtime drives an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    Tokio,
    #[cfg(feature = "smol")]
    Smol,
}

impl Runtime {
    /// The runtime the caller runs on, if one is supported.
    pub(crate) fn current() -> Option<Self> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Some(Self::Tokio);
        }
        #[cfg(feature = "smol")]
        return Some(Self::Smol);
        #[cfg(not(feature = "smol"))]
        None
    }

    /// Runs `fut` in the background.
    pub(crate) fn spawn(self, fut: impl Future<Output = ()> + Send + 'static) {
        match self {
            Self::Tokio => {
                tokio::spawn(fut);
            }
            #[cfg(feature = "smol")]
            Self::Smol => smol::spawn(fut).detach(),
        }
    }

    /// Runs the CPU-bound `f` on the runtime's blocking-task threads, off the event loop.
    pub(crate) fn spawn_blocking(self, f: impl FnOnce() + Send + 'static) {
        match self {
            Self::Tokio => {
                tokio::task::spawn_blocking(f);
            }
            #[cfg(feature = "smol")]
            Self::Smol => smol::unblock(f).detach(),
        }
    }

    /// Wraps a bound, non-blocking std socket for this runtime.
    pub(crate) fn wrap(self, socket: std::net::UdpSocket) -> io::Result<Socket> {
        let state = UdpSocketState::new((&socket).into())?;
        // Bursts of GSO batches overflow the default buffers (~200 KiB on Linux) and turn into
        // loss; ask for more (best effort: the kernel caps it at net.core.[rw]mem_max).
        for (what, r) in [
            (
                "receive",
                state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER),
            ),
            (
                "send",
                state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER),
            ),
        ] {
            if let Err(e) = r {
                tracing::debug!(error = %e, "cannot enlarge the socket's {what} buffer");
            }
        }
        let io = match self {
            Self::Tokio => Io::Tokio(tokio::net::UdpSocket::from_std(socket)?),
            #[cfg(feature = "smol")]
            Self::Smol => Io::Smol(smol::Async::new(socket)?),
        };
        Ok(Socket { io, state })
    }

    /// A timer that has not been armed.
    pub(crate) fn timer(self) -> Timer {
        match self {
            Self::Tokio => Timer::Tokio(Box::pin(tokio::time::sleep_until(far_future().into()))),
            #[cfg(feature = "smol")]
            Self::Smol => Timer::Smol(smol::Timer::never()),
        }
    }
}

fn far_future() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}

enum Io {
    Tokio(tokio::net::UdpSocket),
    #[cfg(feature = "smol")]
    Smol(smol::Async<std::net::UdpSocket>),
}

/// A UDP socket with quinn-udp's batched, offloaded I/O.
pub(crate) struct Socket {
    io: Io,
    state: UdpSocketState,
}

impl Socket {
    /// Datagrams one receive buffer may hold (GRO).
    pub(crate) fn gro_segments(&self) -> usize {
        self.state.gro_segments()
    }

    /// Datagrams one send may carry (GSO).
    pub(crate) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Receives a batch into `bufs`; returns how many of `meta` were filled.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let res = match &self.io {
                Io::Tokio(s) => {
                    ready!(s.poll_recv_ready(cx))?;
                    s.try_io(tokio::io::Interest::READABLE, || {
                        self.state.recv(s.into(), bufs, meta)
                    })
                }
                #[cfg(feature = "smol")]
                Io::Smol(s) => {
                    ready!(s.poll_readable(cx))?;
                    self.state.recv(s.get_ref().into(), bufs, meta)
                }
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends one transmit (possibly a GSO batch).
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        transmit: &Transmit<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let res = match &self.io {
                Io::Tokio(s) => {
                    ready!(s.poll_send_ready(cx))?;
                    s.try_io(tokio::io::Interest::WRITABLE, || {
                        self.state.try_send(s.into(), transmit)
                    })
                }
                #[cfg(feature = "smol")]
                Io::Smol(s) => {
                    ready!(s.poll_writable(cx))?;
                    self.state.try_send(s.get_ref().into(), transmit)
                }
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

/// The driver's one timer.
pub(crate) enum Timer {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    #[cfg(feature = "smol")]
    Smol(smol::Timer),
}

impl Timer {
    /// Re-arms the timer for `deadline` and polls it (so it wakes the task when it fires).
    pub(crate) fn poll_at(
        &mut self,
        cx: &mut Context<'_>,
        deadline: std::time::Instant,
    ) -> Poll<()> {
        match self {
            Self::Tokio(sleep) => {
                if sleep.deadline() != deadline.into() {
                    sleep.as_mut().reset(deadline.into());
                }
                sleep.as_mut().poll(cx)
            }
            #[cfg(feature = "smol")]
            Self::Smol(timer) => {
                timer.set_at(deadline);
                Pin::new(timer).poll(cx).map(|_| ())
            }
        }
    }
}
