//! The properties the fuzz targets in `fuzz/` check, in one place, so that the libFuzzer targets
//! and their `cargo test` twins (bolero harnesses in `jsp-core/tests/fuzz_properties.rs`) run the
//! very same code. Feature `fuzzing` only; nothing here is part of the protocol.
//!
//! Each `fn(&[u8])` below is one target: it must return for every input, and panics (an assert)
//! only when a property breaks. [`EstablishedPair`] and [`ServerHarness`] are the drivers the
//! stateful targets use; the seed-corpus generator (`jsp-sim corpus`) runs them on real traffic.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use crate::coding::{Reader, Writer};
use crate::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use crate::connection::{Connection, Event, Footprint};
use crate::crypto::kex::KeyExchange;
use crate::crypto::sign::{IdentityKey, SignatureScheme};
use crate::crypto::{Backend, CipherSuite};
use crate::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use crate::frame::{self, Frame};
use crate::handshake::HandshakeMessage;
use crate::packet;
use crate::rand::Rng;
use crate::session::ServerResumption;
use crate::stream::StreamEvent;
use crate::time::{Duration, Instant};
use crate::TransportError;

/// Largest datagram the harnesses handle, and the size of their transmit buffers.
pub const MAX_DATAGRAM: usize = 1500;
/// Most datagrams one flush may exchange before the harness calls it a transmit storm.
const MAX_FLUSH_DATAGRAMS: usize = 4096;
/// Most events a connection may queue between two polls. One datagram holds at most
/// [`MAX_DATAGRAM`] frames, each raising at most a couple of events.
const MAX_QUEUED_EVENTS: usize = 4 * MAX_DATAGRAM;

// ---------------------------------------------------------------------------------------------
// Stateless targets.

/// `frame_decode`: arbitrary bytes as a packet payload. The decoder returns frames or typed
/// errors, never panics, stops after the first error, and every frame it returns re-encodes to
/// exactly `encoded_len` bytes that decode back to the same frame.
pub fn frame_decode(data: &[u8]) {
    let mut buf = vec![0u8; data.len() + 64];
    let mut items = 0usize;
    let mut errors = 0usize;
    for item in frame::iter(data) {
        items += 1;
        assert!(items <= data.len(), "more frames than bytes");
        assert_eq!(errors, 0, "the decoder went on after an error");
        match item {
            Ok(f) => {
                let len = f.encoded_len();
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                let mut w = Writer::new(&mut buf);
                assert!(f.encode(&mut w).is_ok(), "encoded_len bytes do not fit");
                assert_eq!(w.position(), len, "encoded_len disagrees with encode");
                let again = Frame::decode(&mut Reader::new(&buf[..len]));
                assert_eq!(again.as_ref(), Ok(&f), "frame does not round-trip");
            }
            Err(e) => {
                errors += 1;
                let te = TransportError::from(e);
                assert_eq!(te.frame_type, e.frame_type);
            }
        }
    }
}

/// `packet_header`: `[cid_len][datagram]` through header parsing, header-protection removal and
/// AEAD opening under fixed keys: every packet ends in a packet, a typed error or an
/// authentication failure, and a parsed packet lies within the datagram.
pub fn packet_header(data: &[u8]) {
    let Some((&cid_len, rest)) = data.split_first() else {
        return;
    };
    let cid_len = usize::from(cid_len % 21);
    let mut buf = rest.to_vec();
    let key = Backend::Auto.packet_key(CipherSuite::ChaCha20Poly1305, &[1; 32], &[2; 12]);
    let hp = Backend::Auto.header_key(CipherSuite::ChaCha20Poly1305, &[3; 32]);
    let mut offset = 0;
    while offset < buf.len() {
        let Ok(partial) = packet::decode(&buf[offset..], cid_len) else {
            break;
        };
        assert!(
            partial.len <= buf.len() - offset,
            "packet longer than its datagram"
        );
        let end = (offset + partial.len.max(1)).min(buf.len());
        let pkt = &mut buf[offset..end];
        if let Ok(un) = packet::unprotect_header(pkt, &partial, &*hp, None) {
            if let Ok(range) = packet::open(pkt, &un, &*key) {
                assert!(range.end <= pkt.len(), "payload range outside the packet");
            }
        }
        offset = end;
    }
}

/// `handshake_message`: arbitrary bytes through the handshake message decoder: a message,
/// "need more bytes" or a typed error, and a decoded message re-encodes to one that decodes to
/// the same message.
pub fn handshake_message(data: &[u8]) {
    if let Ok(Some((msg, n))) = HandshakeMessage::decode(data) {
        assert!(n <= data.len(), "consumed more than the input");
        let again = msg.encode();
        match HandshakeMessage::decode(&again) {
            Ok(Some((decoded, m))) => {
                assert_eq!(m, again.len(), "re-encoded message not consumed whole");
                assert_eq!(decoded, msg, "message does not round-trip");
            }
            other => panic!("re-encoded message does not decode: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A live server endpoint.

/// The source address the `server_endpoint` input byte `b` stands for: four hosts, 256 ports.
pub fn source_address(b: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, b % 4], 1000 + u16::from(b)))
}

/// A server endpoint with every connection it accepts, driven one datagram at a time, all
/// deterministic: the same datagrams give the same answers, so a captured client session
/// replays through it exactly (the seed corpus relies on that).
pub struct ServerHarness {
    /// The endpoint.
    pub endpoint: Endpoint,
    conns: Vec<(ConnectionHandle, Connection)>,
    /// The harness's clock: it advances by [`ServerHarness::STEP`] per datagram.
    pub now: Instant,
    buf: Vec<u8>,
}

impl ServerHarness {
    /// Virtual time between two datagrams.
    pub const STEP: Duration = Duration::from_millis(7);

    /// A server with the default endpoint and server configuration and a fixed identity.
    pub fn new() -> Self {
        let mut rng = Rng::from_seed([7; 32]);
        let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
        let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
        let server = Arc::new(ServerConfig::new(identity, resumption));
        let endpoint = Endpoint::new(
            Arc::new(EndpointConfig::default()),
            Some(server),
            rng.fork(),
            Instant::ZERO,
        );
        let Ok(endpoint) = endpoint else {
            panic!("the default endpoint config is valid");
        };
        Self {
            endpoint,
            conns: Vec::new(),
            now: Instant::ZERO,
            buf: vec![0; MAX_DATAGRAM],
        }
    }

    /// The server's identity key, for a client that pins it.
    pub fn identity() -> Arc<IdentityKey> {
        let mut rng = Rng::from_seed([7; 32]);
        Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Connections whose handshake completed.
    pub fn established(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| c.is_handshake_complete())
            .count()
    }

    /// Advances the clock one step, feeds `datagram` from `source`, drives every connection
    /// (timers, transmits, events) and returns what the server sent, in order. Checks that
    /// nothing goes to an address that never sent anything and that queues stay bounded.
    pub fn feed(&mut self, source: SocketAddr, datagram: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.now += Self::STEP;
        let now = self.now;
        match self
            .endpoint
            .handle_datagram(now, source, BytesMut::from(datagram))
        {
            Some(DatagramEvent::NewConnection(h, mut c, d)) => {
                c.handle_datagram(now, source, d);
                self.conns.push((h, *c));
            }
            Some(DatagramEvent::Route(h, d)) => {
                if let Some((_, c)) = self.conns.iter_mut().find(|(x, _)| *x == h) {
                    c.handle_datagram(now, source, d);
                }
            }
            None => {}
        }
        let mut out = Vec::new();
        for (h, c) in self.conns.iter_mut() {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
            while let Some(t) = c.poll_transmit(now, &mut self.buf) {
                assert!(t.size <= self.buf.len(), "transmit larger than the buffer");
                out.push((t.destination, self.buf[..t.size].to_vec()));
                assert!(out.len() <= MAX_FLUSH_DATAGRAMS, "transmit storm");
            }
            check_footprint(&c.footprint_for_fuzzing(), &TransportConfig::default());
            drain_application(c);
            while let Some(e) = c.poll_endpoint_event() {
                self.endpoint.handle_event(*h, e);
            }
        }
        while let Some(t) = self.endpoint.poll_transmit(&mut self.buf) {
            out.push((t.destination, self.buf[..t.size].to_vec()));
            assert!(out.len() <= MAX_FLUSH_DATAGRAMS, "transmit storm");
        }
        out
    }
}

impl Default for ServerHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// `server_endpoint`: a live server endpoint fed `[source: u8][len: u16 BE][bytes]...`, every
/// accepted connection driven: no panic, bounded queues, and nothing sent to an address that did
/// not send first.
pub fn server_endpoint(data: &[u8]) {
    let mut server = ServerHarness::new();
    let mut senders = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let source = source_address(rest[0]);
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])) % MAX_DATAGRAM;
        let body = &rest[3..];
        let take = len.min(body.len());
        if !senders.contains(&source) {
            senders.push(source);
        }
        for (to, _) in server.feed(source, &body[..take]) {
            assert!(
                senders.contains(&to),
                "sent to {to}, which never sent anything"
            );
        }
        rest = &body[take..];
    }
}

/// Encodes one `server_endpoint` input record.
pub fn server_endpoint_record(source: u8, datagram: &[u8], out: &mut Vec<u8>) {
    out.push(source);
    out.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    out.extend_from_slice(datagram);
}

// ---------------------------------------------------------------------------------------------
// An established connection fed decrypted frames.

fn check_footprint(f: &Footprint, transport: &TransportConfig) {
    assert!(
        f.events <= MAX_QUEUED_EVENTS,
        "event queue unbounded: {f:?}"
    );
    assert!(
        f.endpoint_events <= MAX_QUEUED_EVENTS,
        "endpoint events unbounded: {f:?}"
    );
    assert!(
        f.incoming_datagram_bytes <= transport.datagram_receive_buffer,
        "datagram receive buffer over its bound: {f:?}"
    );
    assert!(
        f.path_responses <= 4,
        "PATH_RESPONSE queue over its bound: {f:?}"
    );
    assert!(
        f.early_buffer <= 16,
        "early packet buffer over its bound: {f:?}"
    );
    assert!(
        f.ack_ranges <= 3 * 64 + 3,
        "ACK ranges over their bound: {f:?}"
    );
}

/// What the application does with everything a connection hands it: accepts every stream,
/// reads everything readable, takes every datagram. Returns the events seen.
fn drain_application(c: &mut Connection) -> usize {
    let mut n = 0;
    while let Some(e) = c.poll_event() {
        n += 1;
        if let Event::Stream(StreamEvent::Readable { id }) = e {
            while let Ok(Some(_)) = c.read(id, usize::MAX) {}
        }
    }
    while c.accept_bi().is_some() {}
    while c.accept_uni().is_some() {}
    while c.recv_datagram().is_some() {}
    n
}

/// A datagram captured from an [`EstablishedPair`]'s link.
#[derive(Clone, Debug)]
pub struct Captured {
    /// Whether the client sent it.
    pub from_client: bool,
    /// The datagram.
    pub data: Vec<u8>,
}

/// A client and a server endpoint, each with its connection, wired back to back with no delay
/// and a virtual clock. Both sides use the null cipher (packets keep their layout; payloads
/// stay readable, which the corpus generator needs) and classical X25519, so a fuzz iteration
/// spends its time in the state machine rather than in cryptography.
pub struct EstablishedPair {
    /// The virtual clock.
    pub now: Instant,
    client_ep: Endpoint,
    server_ep: Endpoint,
    client: (ConnectionHandle, Connection),
    server: Option<(ConnectionHandle, Connection)>,
    transport: Arc<TransportConfig>,
    buf: Vec<u8>,
    /// Every datagram exchanged, when capturing.
    pub capture: Option<Vec<Captured>>,
}

const CLIENT_ADDR: ([u8; 4], u16) = ([192, 0, 2, 1], 4433);
const SERVER_ADDR: ([u8; 4], u16) = ([192, 0, 2, 2], 443);

impl EstablishedPair {
    /// Starts a client and a server from `seed` and runs the handshake to completion (both
    /// sides complete, the handshake confirmed, nothing left in flight). `capture` records
    /// every datagram from the first one on.
    pub fn new(seed: u8, capture: bool) -> Self {
        let mut rng = Rng::from_seed([seed; 32]);
        let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
        let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
        let transport = Arc::new(TransportConfig {
            crypto_backend: Backend::Null,
            ..TransportConfig::default()
        });
        let mut server = ServerConfig::new(identity.clone(), resumption);
        server.transport = transport.clone();
        server.key_exchanges = vec![KeyExchange::X25519];
        let mut client = ClientConfig::pinned(identity.public());
        client.transport = transport.clone();
        client.key_exchanges = vec![KeyExchange::X25519];
        let now = Instant::from_millis(1);
        let endpoints = (
            Endpoint::new(Arc::new(EndpointConfig::default()), None, rng.fork(), now),
            Endpoint::new(
                Arc::new(EndpointConfig::default()),
                Some(Arc::new(server)),
                rng.fork(),
                now,
            ),
        );
        let (Ok(mut client_ep), Ok(server_ep)) = endpoints else {
            panic!("the default endpoint configs are valid");
        };
        let Ok(conn) = client_ep.connect(now, Arc::new(client), SERVER_ADDR.into(), None) else {
            panic!("the client config is valid");
        };
        let mut pair = Self {
            now,
            client_ep,
            server_ep,
            client: conn,
            server: None,
            transport,
            buf: vec![0; MAX_DATAGRAM],
            capture: capture.then(Vec::new),
        };
        for _ in 0..64 {
            pair.flush();
            let done = pair.client.1.is_handshake_complete()
                && pair
                    .server
                    .as_ref()
                    .is_some_and(|(_, s)| s.is_handshake_complete());
            if done {
                break;
            }
            pair.step_timers();
        }
        // Let the acknowledgements of HANDSHAKE_DONE and the tickets go out and arrive.
        pair.advance(Duration::from_millis(30));
        pair.flush();
        assert!(
            pair.is_established(),
            "the fuzzing pair did not complete its handshake"
        );
        pair
    }

    /// Whether both sides completed the handshake and neither is closed.
    pub fn is_established(&self) -> bool {
        self.client.1.is_handshake_complete()
            && !self.client.1.is_closed()
            && self
                .server
                .as_ref()
                .is_some_and(|(_, s)| s.is_handshake_complete() && !s.is_closed())
    }

    /// The client connection.
    pub fn client(&mut self) -> &mut Connection {
        &mut self.client.1
    }

    /// The server connection (present once the first Initial arrived).
    pub fn server(&mut self) -> Option<&mut Connection> {
        self.server.as_mut().map(|(_, c)| c)
    }

    fn deliver(&mut self, to_server: bool, data: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(Captured {
                from_client: to_server,
                data: data.to_vec(),
            });
        }
        let now = self.now;
        let bytes = BytesMut::from(data);
        if to_server {
            let from = CLIENT_ADDR.into();
            match self.server_ep.handle_datagram(now, from, bytes) {
                Some(DatagramEvent::NewConnection(h, mut c, d)) => {
                    c.handle_datagram(now, from, d);
                    if self.server.is_none() {
                        self.server = Some((h, *c));
                    }
                }
                Some(DatagramEvent::Route(h, d)) => {
                    if let Some((sh, s)) = &mut self.server {
                        if *sh == h {
                            s.handle_datagram(now, from, d);
                        }
                    }
                }
                None => {}
            }
        } else if let Some(DatagramEvent::Route(h, d)) =
            self.client_ep
                .handle_datagram(now, SERVER_ADDR.into(), bytes)
        {
            if h == self.client.0 {
                self.client.1.handle_datagram(now, SERVER_ADDR.into(), d);
            }
        }
    }

    /// Exchanges datagrams until neither side has anything to send now, handing everything
    /// received to the application side, and checks the invariants after each datagram.
    pub fn flush(&mut self) {
        let mut exchanged = 0usize;
        loop {
            let mut moved = false;
            let now = self.now;
            if let Some(t) = self.client.1.poll_transmit(now, &mut self.buf) {
                assert!(t.size <= MAX_DATAGRAM, "transmit larger than the buffer");
                let d = self.buf[..t.size].to_vec();
                self.deliver(true, &d);
                moved = true;
            }
            let mut from_server = Vec::new();
            if let Some((_, s)) = &mut self.server {
                if let Some(t) = s.poll_transmit(now, &mut self.buf) {
                    assert!(t.size <= MAX_DATAGRAM, "transmit larger than the buffer");
                    from_server.push(self.buf[..t.size].to_vec());
                }
            }
            while let Some(t) = self.server_ep.poll_transmit(&mut self.buf) {
                from_server.push(self.buf[..t.size].to_vec());
            }
            while self.client_ep.poll_transmit(&mut self.buf).is_some() {}
            for d in from_server {
                self.deliver(false, &d);
                moved = true;
            }
            self.check_and_drain();
            if !moved {
                return;
            }
            exchanged += 1;
            assert!(exchanged <= MAX_FLUSH_DATAGRAMS, "transmit storm");
        }
    }

    fn check_and_drain(&mut self) {
        let transport = self.transport.clone();
        let (h, c) = &mut self.client;
        check_footprint(&c.footprint_for_fuzzing(), &transport);
        drain_application(c);
        while let Some(e) = c.poll_endpoint_event() {
            self.client_ep.handle_event(*h, e);
        }
        if let Some((h, s)) = &mut self.server {
            check_footprint(&s.footprint_for_fuzzing(), &transport);
            drain_application(s);
            while let Some(e) = s.poll_endpoint_event() {
                self.server_ep.handle_event(*h, e);
            }
        }
    }

    /// Fires the timers due at the clock's time.
    fn fire_due(&mut self) {
        let now = self.now;
        if self.client.1.poll_timeout().is_some_and(|t| t <= now) {
            self.client.1.handle_timeout(now);
        }
        if let Some((_, s)) = &mut self.server {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
    }

    /// Moves the clock to the earliest timer of either side and fires it; false when no timer
    /// is armed.
    pub fn step_timers(&mut self) -> bool {
        let next = [
            self.client.1.poll_timeout(),
            self.server.as_ref().and_then(|(_, s)| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        self.fire_due();
        true
    }

    /// Moves the clock forward by `d`, firing every timer that falls due on the way (the
    /// datagrams it causes are exchanged).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..256 {
            self.flush();
            let next = [
                self.client.1.poll_timeout(),
                self.server.as_ref().and_then(|(_, s)| s.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.fire_due();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.fire_due();
    }

    /// Runs the timers of both sides, exchanging what they cause, for at most `steps` timer
    /// firings: retransmissions, probes, idle timeouts and the close-and-drain sequence.
    pub fn settle(&mut self, steps: usize) {
        for _ in 0..steps {
            self.flush();
            if !self.step_timers() {
                break;
            }
        }
        self.flush();
    }

    /// Puts `payload` as the decrypted frames of a 1-RTT packet from the other side into the
    /// server (`to_server`) or the client, through its endpoint. Returns false when the sender
    /// has no 1-RTT keys or the payload does not fit a datagram.
    pub fn inject(&mut self, to_server: bool, payload: &[u8]) -> bool {
        let now = self.now;
        let sealed = if to_server {
            self.client
                .1
                .seal_1rtt_for_fuzzing(now, payload, &mut self.buf)
        } else {
            match &mut self.server {
                Some((_, s)) => s.seal_1rtt_for_fuzzing(now, payload, &mut self.buf),
                None => None,
            }
        };
        let Some(t) = sealed else {
            return false;
        };
        let d = self.buf[..t.size].to_vec();
        self.deliver(to_server, &d);
        self.check_and_drain();
        true
    }

    /// The application on the client opens a bidirectional stream, writes to it and sends a
    /// datagram; the server does the same on a unidirectional stream. Gives injected frames
    /// (ACK, MAX_STREAM_DATA, STOP_SENDING, ...) live state to act on.
    pub fn application_sends(&mut self, len: usize) {
        let data = vec![0x5a; len];
        let c = &mut self.client.1;
        if let Some(id) = c.open_bi() {
            let _ = c.write(id, &data);
        }
        let _ = c.send_datagram(bytes::Bytes::from(data.clone()));
        if let Some((_, s)) = &mut self.server {
            if let Some(id) = s.open_uni() {
                let _ = s.write(id, &data);
                let _ = s.finish(id);
            }
        }
    }
}

/// Payload bytes a single injected packet may carry (the rest of [`MAX_DATAGRAM`] is header
/// and tag).
pub const MAX_INJECTED_PAYLOAD: usize = 1400;

/// `established_connection`: an established client/server pair fed a sequence of records
/// `[flags][len: u16 BE][payload]`, each payload the decrypted frames of a 1-RTT packet injected
/// into one side (flags bit 0: into the server, else the client). Flags bit 1: the applications
/// send stream data and a datagram first; bit 2: hold the answers (no flush); bits 3..=7: then
/// advance the clock by that many times 5 ms. At the end both sides run their timers. Never a
/// panic, no transmit storm, and every peer-fillable queue within its bound throughout.
pub fn established_connection(data: &[u8]) {
    let mut pair = EstablishedPair::new(1, false);
    let mut rest = data;
    while let Some((&flags, tail)) = rest.split_first() {
        let (len, body) = match tail {
            [hi, lo, body @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), body),
            _ => (tail.len(), &[][..]),
        };
        let take = len.min(body.len()).min(MAX_INJECTED_PAYLOAD);
        let (payload, next) = body.split_at(take);
        rest = next;
        if flags & 2 != 0 {
            pair.application_sends(64);
        }
        pair.inject(flags & 1 != 0, payload);
        if flags & 4 == 0 {
            pair.flush();
        }
        let wait = u64::from(flags >> 3) * 5;
        if wait > 0 {
            pair.advance(Duration::from_millis(wait));
        }
    }
    pair.settle(64);
}

/// Encodes one `established_connection` input record.
pub fn established_connection_record(flags: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}
