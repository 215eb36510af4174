//! Hosting JSP on the simulator: a [`JspNode`] is one [`Endpoint`] and its connections, driven
//! through the four-call loop, with a [`JspApp`] playing the application.
//!
//! The node is the simulator's version of a real driver (`jsp-tokio`, `jsp-mio`): it routes each
//! datagram through the endpoint to its connection, hands connection events back to the endpoint,
//! and lets the application act on every connection that received input. Connections are kept in
//! a `BTreeMap` by handle so that polling order, and therefore the trace, is deterministic.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jsp_core::config::{ClientConfig, ConfigError, EndpointConfig, ServerConfig};
use jsp_core::connection::Connection;
use jsp_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use jsp_core::handshake::ClientTicket;
use jsp_core::rand::Rng;
use jsp_core::Instant;

use crate::node::{Node, Transmit};

/// The application on a JSP node.
pub trait JspApp: Any {
    /// Called after a connection was created and after each input it received (a datagram or
    /// a timer): drain `conn.poll_event()` and act on the streams and datagrams.
    fn on_connection(&mut self, now: Instant, handle: ConnectionHandle, conn: &mut Connection);

    /// A counter that grows with application progress (see [`Node::progress`]).
    fn progress(&self) -> u64 {
        0
    }

    /// Whether the application's work is finished (see [`Node::is_done`]).
    fn is_done(&self) -> bool {
        true
    }

    /// When the application wants to act next on its own (a request due at a set time), if
    /// ever. At that instant [`JspApp::on_connection`] runs for every live connection.
    /// Default: never (the application only reacts to its connections).
    fn next_wakeup(&self) -> Option<Instant> {
        None
    }
}

/// A JSP endpoint, its connections and its application, as a simulator [`Node`].
pub struct JspNode {
    endpoint: Endpoint,
    conns: BTreeMap<ConnectionHandle, Connection>,
    app: Box<dyn JspApp>,
}

impl core::fmt::Debug for JspNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JspNode")
            .field("endpoint", &self.endpoint)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl JspNode {
    /// A node whose endpoint accepts connections with `server`.
    pub fn server(
        config: Arc<EndpointConfig>,
        server: Arc<ServerConfig>,
        rng: Rng,
        now: Instant,
        app: Box<dyn JspApp>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            endpoint: Endpoint::new(config, Some(server), rng, now)?,
            conns: BTreeMap::new(),
            app,
        })
    }

    /// A node that only makes outgoing connections (see [`Self::connect`]).
    pub fn client(
        config: Arc<EndpointConfig>,
        rng: Rng,
        now: Instant,
        app: Box<dyn JspApp>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            endpoint: Endpoint::new(config, None, rng, now)?,
            conns: BTreeMap::new(),
            app,
        })
    }

    /// Starts a connection to `remote`; the application sees it at once.
    pub fn connect(
        &mut self,
        now: Instant,
        config: Arc<ClientConfig>,
        remote: SocketAddr,
        ticket: Option<ClientTicket>,
    ) -> Result<ConnectionHandle, ConfigError> {
        let (handle, conn) = self.endpoint.connect(now, config, remote, ticket)?;
        self.conns.insert(handle, conn);
        self.after(now, handle);
        Ok(handle)
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A connection, drained or not.
    pub fn connection(&self, handle: ConnectionHandle) -> Option<&Connection> {
        self.conns.get(&handle)
    }

    /// All connections (drained ones included), by handle.
    pub fn connections(&self) -> impl Iterator<Item = (ConnectionHandle, &Connection)> {
        self.conns.iter().map(|(h, c)| (*h, c))
    }

    /// Drops the connections that have drained and returns how many, as a production driver
    /// does (`jsp-tokio`, `jsp-mio`). The node keeps drained connections otherwise, so that a
    /// test can read their final state and statistics after a run; a long run that accepts
    /// connections without end (a flood) calls this to keep the node's memory bounded by the
    /// live connections.
    pub fn forget_drained(&mut self) -> usize {
        let before = self.conns.len();
        self.conns.retain(|_, c| !c.is_drained());
        before - self.conns.len()
    }

    /// The application, when it is an `A`.
    pub fn app<A: JspApp>(&self) -> Option<&A> {
        let app: &dyn Any = self.app.as_ref();
        app.downcast_ref::<A>()
    }

    /// The application, mutably, when it is an `A`.
    pub fn app_mut<A: JspApp>(&mut self) -> Option<&mut A> {
        let app: &mut dyn Any = self.app.as_mut();
        app.downcast_mut::<A>()
    }

    /// Lets the application act on `handle`, then passes the connection's events to the endpoint.
    fn after(&mut self, now: Instant, handle: ConnectionHandle) {
        let Some(conn) = self.conns.get_mut(&handle) else {
            return;
        };
        self.app.on_connection(now, handle, conn);
        while let Some(e) = conn.poll_endpoint_event() {
            self.endpoint.handle_event(handle, e);
        }
    }
}

impl Node for JspNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: BytesMut) {
        match self.endpoint.handle_datagram(now, from, data) {
            Some(DatagramEvent::Route(handle, data)) => {
                if let Some(conn) = self.conns.get_mut(&handle) {
                    conn.handle_datagram(now, from, data);
                    self.after(now, handle);
                }
            }
            Some(DatagramEvent::NewConnection(handle, conn, data)) => {
                let mut conn = *conn;
                conn.handle_datagram(now, from, data);
                self.conns.insert(handle, conn);
                self.after(now, handle);
            }
            None => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(t) = self.endpoint.poll_transmit(buf) {
            return Some(Transmit {
                destination: t.destination,
                size: t.size,
                segment_size: t.segment_size,
            });
        }
        for conn in self.conns.values_mut() {
            if conn.is_drained() {
                continue;
            }
            if let Some(t) = conn.poll_transmit(now, buf) {
                return Some(Transmit {
                    destination: t.destination,
                    size: t.size,
                    segment_size: t.segment_size,
                });
            }
        }
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !c.is_drained())
            .filter_map(|c| c.poll_timeout())
            .chain(self.app.next_wakeup())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        let app_due = self.app.next_wakeup().is_some_and(|t| t <= now);
        let due: Vec<ConnectionHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                !c.is_drained() && (app_due || c.poll_timeout().is_some_and(|t| t <= now))
            })
            .map(|(h, _)| *h)
            .collect();
        for handle in due {
            if let Some(conn) = self.conns.get_mut(&handle) {
                // Also when only the application is due: the connection's clock must read `now`
                // before the application acts (a message's TTL counts from the connection's
                // latest `now`), as the tokio driver does before each send. With no timer due
                // this only moves the clock.
                conn.handle_timeout(now);
            }
            self.after(now, handle);
        }
    }

    fn progress(&self) -> u64 {
        self.app.progress()
    }

    fn is_done(&self) -> bool {
        self.app.is_done()
    }
}
