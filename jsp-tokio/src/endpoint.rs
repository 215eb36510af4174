//! The endpoint handle: a UDP socket, its driver task, and the connections on it.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig};
use jsp_core::crypto::sign::{IdentityKey, PublicIdentity, SignatureScheme};
use jsp_core::endpoint::{Endpoint as CoreEndpoint, EndpointStats};
use jsp_core::handshake::ClientTicket;
use jsp_core::rand::Rng;
use jsp_core::session::ServerResumption;

use crate::clock;
use crate::connection::{ConnRef, Connecting};
use crate::driver::Driver;
use crate::error::{BindError, ConnectError, KeyLogError};
use crate::runtime::Runtime;
use crate::state::{ConnState, Shared, State};

/// A random number generator seeded from the operating system, for the core.
pub fn os_rng() -> Result<Rng, BindError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| BindError::Random(e.to_string()))?;
    Ok(Rng::from_seed(seed))
}

/// A new Ed25519 server identity key from the operating system's randomness.
pub fn generate_identity() -> Result<IdentityKey, BindError> {
    Ok(IdentityKey::generate(
        SignatureScheme::Ed25519,
        &mut os_rng()?,
    ))
}

/// A server configuration with the core's defaults for `identity`, and fresh ticket keys and
/// replay filter (so 0-RTT resumption works against this process).
pub fn server_config(identity: Arc<IdentityKey>) -> Result<ServerConfig, BindError> {
    let resumption = ServerResumption::new(&mut os_rng()?, clock::now());
    Ok(ServerConfig::new(identity, Arc::new(resumption)))
}

/// A JetStreamProto endpoint: one UDP socket, driven by one background task, carrying any number
/// of connections (outgoing, and incoming for a server).
///
/// Cloning gives another handle to the same endpoint. When every handle is dropped the endpoint
/// stops accepting; the driver keeps running until the connections still in use are closed and
/// drained, then releases the socket.
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Endpoint")
            .field("local_addr", &st.local_addr)
            .field("connections", &st.len())
            .finish()
    }
}

impl Endpoint {
    /// A server endpoint bound to `addr`, accepting connections with `config` (see
    /// [`server_config`]). It can also make outgoing connections.
    pub fn server(config: ServerConfig, addr: SocketAddr) -> Result<Self, BindError> {
        Self::new(EndpointConfig::default(), Some(config), bind(addr)?)
    }

    /// A client endpoint bound to `addr` (usually `0.0.0.0:0` or `[::]:0`).
    pub fn client(addr: SocketAddr) -> Result<Self, BindError> {
        Self::new(EndpointConfig::default(), None, bind(addr)?)
    }

    /// An endpoint on an already bound socket, with full control of the configuration. Must be
    /// called from within a tokio runtime (or anywhere, with the `smol` feature).
    pub fn new(
        config: EndpointConfig,
        server: Option<ServerConfig>,
        socket: std::net::UdpSocket,
    ) -> Result<Self, BindError> {
        let runtime = Runtime::current().ok_or(BindError::NoRuntime)?;
        let local_addr = socket.local_addr().map_err(|source| BindError::Socket {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let sock_err = |source| BindError::Socket {
            addr: local_addr,
            source,
        };
        socket.set_nonblocking(true).map_err(sock_err)?;
        let socket = runtime.wrap(socket).map_err(sock_err)?;
        let endpoint = CoreEndpoint::new(
            Arc::new(config),
            server.map(Arc::new),
            os_rng()?,
            clock::now(),
        )
        .map_err(BindError::Config)?;
        let mut state = State::new(endpoint, local_addr);
        state.keygen_rng = Some(os_rng()?);
        let shared = Arc::new(Shared::new(state));
        runtime.spawn(Driver::new(shared.clone(), socket, runtime));
        tracing::debug!(%local_addr, "endpoint started");
        Ok(Self { shared })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.lock().local_addr
    }

    /// Connects to the server at `addr` whose identity key is `server_key` (pinned: any other
    /// key fails the handshake). Await the returned [`Connecting`] for the connection.
    pub fn connect(
        &self,
        addr: SocketAddr,
        server_key: PublicIdentity,
    ) -> Result<Connecting, ConnectError> {
        self.connect_with(Arc::new(ClientConfig::pinned(server_key)), addr, None)
    }

    /// Connects with a full client configuration and, to resume a session, a ticket from an
    /// earlier connection ([`crate::Connection::session_ticket`]). With a ticket, the
    /// connection may be used before the handshake completes: see [`Connecting::into_0rtt`].
    pub fn connect_with(
        &self,
        config: Arc<ClientConfig>,
        addr: SocketAddr,
        ticket: Option<ClientTicket>,
    ) -> Result<Connecting, ConnectError> {
        let mut st = self.shared.lock();
        if st.driver_gone {
            return Err(ConnectError::EndpointClosed);
        }
        if st.local_addr.is_ipv4() != addr.is_ipv4() {
            return Err(ConnectError::AddressFamily {
                remote: addr,
                local: st.local_addr,
            });
        }
        let zero_rtt = ticket.is_some() && config.zero_rtt;
        let (handle, conn) = st
            .endpoint
            .connect(clock::now(), config, addr, ticket)
            .map_err(ConnectError::Config)?;
        st.insert(handle, ConnState::new(conn, 1));
        st.wake_driver();
        drop(st);
        tracing::debug!(%addr, zero_rtt, "connecting");
        Ok(Connecting::new(
            ConnRef::adopt(self.shared.clone(), handle),
            zero_rtt,
        ))
    }

    /// The next incoming connection (still handshaking: await it), or `None` once the endpoint
    /// is closed or is not a server.
    pub async fn accept(&self) -> Option<Connecting> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if let Some(handle) = st.pop_incoming() {
                // The accept queue's reference passes to the `Connecting`.
                return Poll::Ready(Some(handle));
            }
            if st.closed || st.driver_gone {
                return Poll::Ready(None);
            }
            st.accept_wakers.register(cx);
            Poll::Pending
        })
        .await
        .map(|handle| Connecting::new(ConnRef::adopt(self.shared.clone(), handle), false))
    }

    /// Closes every connection with `code` and `reason` and stops accepting new ones. Use
    /// [`Self::wait_idle`] to let the close reach the peers before the process exits.
    pub fn close(&self, code: u64, reason: &[u8]) {
        let mut st = self.shared.lock();
        let now = clock::now();
        st.for_each_conn(|cs| cs.conn.close(now, code, reason));
        st.stop_accepting();
    }

    /// Waits until every connection on the endpoint is closed and drained (its close reached the
    /// peer, or timed out).
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.is_idle() || st.driver_gone {
                return Poll::Ready(());
            }
            st.idle_wakers.register(cx);
            st.wake_driver();
            Poll::Pending
        })
        .await
    }

    /// The endpoint's counters (datagrams, accepted and refused handshakes, stateless replies).
    pub fn stats(&self) -> EndpointStats {
        self.shared.lock().endpoint.stats()
    }

    /// Appends the traffic secrets of every connection made or accepted from now on to `path`,
    /// one line per secret (`LABEL <connection id hex> <secret hex>`, NSS key-log labels), for
    /// decrypting packet captures while debugging. Off by default, and never turned on behind
    /// the caller's back (no environment variable). Anyone holding the file can read the
    /// traffic: the file is created readable by its owner only, and every connection logs a
    /// warning while the key log is on.
    pub fn enable_key_log(&self, path: &std::path::Path) -> Result<(), KeyLogError> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|source| KeyLogError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        tracing::warn!(path = %path.display(), "key log is ON: traffic secrets are written to this file");
        let mut st = self.shared.lock();
        st.key_log = Some(file);
        st.endpoint.set_key_log(true);
        Ok(())
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared.lock().endpoint_refs += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.endpoint_refs -= 1;
        if st.endpoint_refs == 0 {
            st.stop_accepting();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    std::net::UdpSocket::bind(addr).map_err(|source| BindError::Socket { addr, source })
}
