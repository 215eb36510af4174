//! The hot path allocates nothing per packet: a bulk transfer between a client and a server
//! core (`jsp-core`, no sockets) over an in-memory 1 Gbit/s, 1 ms link, with a counting global
//! allocator. After the handshake and a warm-up of 20,000 packets (BBR's startup and drain are
//! over, and the connection's queues have grown to their working size: with a 5,000-packet
//! warm-up one amortised capacity growth still lands in the window), the allocations made
//! *inside the core's calls* are counted over 20,000 packets, by call:
//! - `transmit`: `Connection::poll_transmit` and `Endpoint::poll_transmit`;
//! - `receive`: `Endpoint::handle_datagram` and `Connection::handle_datagram`;
//! - `timers`: `Connection::handle_timeout` and `poll_timeout`;
//! - `events`: `poll_event`, `poll_endpoint_event`, `Endpoint::handle_event`;
//! - `app`: the application's `write` (64 KiB at a time) and zero-copy `read` calls, which are
//!   per call rather than per packet.
//!
//! The test driver's own work (cutting each datagram's `BytesMut` from a shared arena, as a
//! socket driver cuts its receive batch, and its queues) happens outside those calls and is not
//! counted.
//!
//! Both sides announce forward error correction, which stays off on this clean link.
//!
//! This file holds a single test, so no other test's thread allocates while it counts.

use std::alloc::System;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use jsp_core::connection::{Connection, Event};
use jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_core::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use jsp_core::fec::FecConfig;
use jsp_core::rand::Rng;
use jsp_core::session::ServerResumption;
use jsp_core::stream::StreamEvent;
use jsp_core::{Duration, Instant};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocation calls so far (allocations and reallocations).
fn allocs() -> u64 {
    let s = GLOBAL.stats();
    (s.allocations + s.reallocations) as u64
}

/// Runs `f`, adding the allocations it made to `counter` when `counting`.
fn counted<T>(counting: bool, counter: &mut u64, f: impl FnOnce() -> T) -> T {
    let before = allocs();
    let out = f();
    if counting {
        *counter += allocs() - before;
    }
    out
}

/// A received datagram's buffer, cut from a shared arena as a socket driver cuts a receive
/// batch's buffer into datagrams (jsp-tokio's does): the arena is allocated once per megabyte,
/// and the pieces share it, so the core's own splitting of coalesced packets costs nothing.
fn datagram(arena: &mut BytesMut, bytes: &[u8]) -> BytesMut {
    if arena.capacity() < bytes.len() {
        *arena = BytesMut::with_capacity(1 << 20);
    }
    arena.extend_from_slice(bytes);
    arena.split_to(bytes.len())
}

#[derive(Default, Debug)]
struct Counts {
    transmit: u64,
    receive: u64,
    timers: u64,
    events: u64,
    app: u64,
}

/// One side: its endpoint and its one connection.
struct Side {
    endpoint: Endpoint,
    addr: SocketAddr,
    conn: Option<(ConnectionHandle, Connection)>,
}

const LINK_BPS: f64 = 1e9;
const DELAY: Duration = Duration::from_millis(1);
const WARMUP_PACKETS: u64 = 20_000;
const MEASURED_PACKETS: u64 = 20_000;

struct InFlight {
    arrival: Instant,
    to_server: bool,
    from: SocketAddr,
    data: BytesMut,
}

#[test]
fn bulk_transfer_steady_state_allocates_nothing_per_packet() {
    let mut rng = Rng::from_seed([7; 32]);
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    // Both sides announce FEC: negotiated, but off on this clean link (no loss measured), where
    // it must cost nothing.
    let transport = Arc::new(TransportConfig {
        fec: Some(FecConfig::default()),
        ..TransportConfig::default()
    });
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    server_config.transport = transport.clone();
    let server_config = Arc::new(server_config);
    let endpoint_config = Arc::new(EndpointConfig::default());
    let client_addr: SocketAddr = "10.0.0.1:4000".parse().expect("address");
    let server_addr: SocketAddr = "10.0.0.2:443".parse().expect("address");
    let mut server = Side {
        endpoint: Endpoint::new(
            endpoint_config.clone(),
            Some(server_config),
            rng.fork(),
            Instant::ZERO,
        )
        .expect("server endpoint"),
        addr: server_addr,
        conn: None,
    };
    let mut client = Side {
        endpoint: Endpoint::new(endpoint_config, None, rng.fork(), Instant::ZERO)
            .expect("client endpoint"),
        addr: client_addr,
        conn: None,
    };
    let mut client_config = ClientConfig::pinned(identity.public());
    client_config.transport = transport;
    let client_config = Arc::new(client_config);
    client.conn = Some(
        client
            .endpoint
            .connect(Instant::ZERO, client_config, server_addr, None)
            .expect("connect"),
    );

    let chunk = vec![0xa5u8; 64 << 10];
    let mut now = Instant::ZERO;
    let mut link_free = [Instant::ZERO; 2]; // per direction: when the link is idle again
    let mut flight: VecDeque<InFlight> = VecDeque::new();
    let mut buf = vec![0u8; 1500];
    let mut arena = BytesMut::new();
    let mut counts = Counts::default();
    let mut stream = None;
    let mut server_stream = None;
    let mut received = 0u64;
    let mut packets = 0u64; // datagrams sent by either side after the handshake
    let mut measured_from: Option<u64> = None;
    let mut measured_received = 0u64;

    for _ in 0..10_000_000u64 {
        let counting = measured_from.is_some();
        // Deliver what has arrived.
        while flight.front().is_some_and(|d| d.arrival <= now) {
            let Some(d) = flight.pop_front() else { break };
            let side = if d.to_server {
                &mut server
            } else {
                &mut client
            };
            let event = counted(counting, &mut counts.receive, || {
                side.endpoint.handle_datagram(now, d.from, d.data)
            });
            match event {
                Some(DatagramEvent::Route(h, data)) => {
                    if let Some((ch, conn)) = side.conn.as_mut() {
                        if *ch == h {
                            counted(counting, &mut counts.receive, || {
                                conn.handle_datagram(now, d.from, data)
                            });
                        }
                    }
                }
                Some(DatagramEvent::NewConnection(h, conn, data)) => {
                    let mut conn = *conn;
                    conn.handle_datagram(now, d.from, data);
                    side.conn = Some((h, conn));
                }
                None => {}
            }
        }
        // Timers.
        for side in [&mut client, &mut server] {
            if let Some((_, conn)) = side.conn.as_mut() {
                let due = counted(counting, &mut counts.timers, || {
                    conn.poll_timeout().is_some_and(|t| t <= now)
                });
                if due {
                    counted(counting, &mut counts.timers, || conn.handle_timeout(now));
                }
            }
        }
        // Applications: the client keeps its stream's buffer full, the server drains it.
        if let Some((h, conn)) = client.conn.as_mut() {
            while let Some(e) = counted(counting, &mut counts.events, || conn.poll_event()) {
                if let Event::ConnectionLost(e) = e {
                    panic!("client lost the connection: {e:?}");
                }
            }
            if stream.is_none() && conn.is_handshake_complete() {
                stream = conn.open_uni();
            }
            if let Some(id) = stream {
                while counted(counting, &mut counts.app, || conn.write(id, &chunk)).expect("write")
                    > 0
                {}
            }
            let h = *h;
            while let Some(e) = counted(counting, &mut counts.events, || conn.poll_endpoint_event())
            {
                counted(counting, &mut counts.events, || {
                    client.endpoint.handle_event(h, e)
                });
            }
        }
        if let Some((h, conn)) = server.conn.as_mut() {
            while let Some(e) = counted(counting, &mut counts.events, || conn.poll_event()) {
                match e {
                    Event::Stream(StreamEvent::Opened { .. }) => {
                        server_stream = server_stream.or_else(|| conn.accept_uni());
                    }
                    Event::ConnectionLost(e) => panic!("server lost the connection: {e:?}"),
                    _ => {}
                }
            }
            if let Some(id) = server_stream {
                loop {
                    match counted(counting, &mut counts.app, || conn.read(id, usize::MAX)) {
                        Ok(Some(data)) => {
                            received += data.len() as u64;
                            if counting {
                                measured_received += data.len() as u64;
                            }
                        }
                        Ok(None) => panic!("stream ended early"),
                        Err(_) => break,
                    }
                }
            }
            let h = *h;
            while let Some(e) = counted(counting, &mut counts.events, || conn.poll_endpoint_event())
            {
                counted(counting, &mut counts.events, || {
                    server.endpoint.handle_event(h, e)
                });
            }
        }
        // Transmit, serialising each datagram onto its direction's link.
        for (dir, side) in [&mut client, &mut server].into_iter().enumerate() {
            let to_server = dir == 0;
            loop {
                let t = counted(counting, &mut counts.transmit, || {
                    side.endpoint.poll_transmit(&mut buf)
                });
                let t = match t {
                    Some(t) => Some(t),
                    None => match side.conn.as_mut() {
                        Some((_, conn)) => counted(counting, &mut counts.transmit, || {
                            conn.poll_transmit(now, &mut buf)
                        }),
                        None => None,
                    },
                };
                let Some(t) = t else { break };
                let seg = t.segment_size.unwrap_or(t.size).max(1);
                for start in (0..t.size).step_by(seg) {
                    let len = seg.min(t.size - start);
                    let serialise =
                        Duration::from_nanos((len as f64 * 8.0 / LINK_BPS * 1e9) as u64);
                    let begin = link_free[dir].max(now);
                    link_free[dir] = begin + serialise;
                    flight.push_back(InFlight {
                        arrival: link_free[dir] + DELAY,
                        to_server,
                        from: side.addr,
                        data: datagram(&mut arena, &buf[start..start + len]),
                    });
                    if stream.is_some() {
                        packets += 1;
                    }
                }
            }
        }
        // Both directions share one queue ordered by arrival.
        flight.make_contiguous().sort_by_key(|d| d.arrival);

        if measured_from.is_none() && packets >= WARMUP_PACKETS {
            measured_from = Some(packets);
        }
        if measured_from.is_some_and(|from| packets - from >= MEASURED_PACKETS) {
            break;
        }
        // Advance to the next event.
        let mut next = flight.front().map(|d| d.arrival);
        for side in [&client, &server] {
            if let Some((_, conn)) = side.conn.as_ref() {
                if let Some(t) = conn.poll_timeout() {
                    next = Some(next.map_or(t, |n: Instant| n.min(t)));
                }
            }
        }
        let Some(next) = next else {
            panic!("nothing left to do after {packets} packets");
        };
        now = now.max(next);
    }

    let from = measured_from.expect("the transfer reached the steady state");
    let measured = packets - from;
    let per_packet = |n: u64| n as f64 / measured as f64;
    println!(
        "steady state: {measured} packets ({} MB delivered in the window, {} MB total) over \
         {:.3} s of virtual time",
        measured_received / 1_000_000,
        received / 1_000_000,
        now.since_origin().as_secs_f64()
    );
    println!(
        "allocations: transmit {} ({:.4}/packet), receive {} ({:.4}/packet), timers {} \
         ({:.4}/packet), events {} ({:.4}/packet), app write/read {} ({:.4}/packet)",
        counts.transmit,
        per_packet(counts.transmit),
        counts.receive,
        per_packet(counts.receive),
        counts.timers,
        per_packet(counts.timers),
        counts.events,
        per_packet(counts.events),
        counts.app,
        per_packet(counts.app),
    );
    if let Some((_, conn)) = client.conn.as_ref() {
        let st = conn.stats();
        println!(
            "FEC negotiated, off on the clean link: {} repair bytes, {} packets protected",
            st.fec_repair_bytes_sent, st.fec_packets_protected
        );
        assert_eq!(st.fec_repair_bytes_sent, 0);
    }
    assert!(measured >= 10_000, "only {measured} packets measured");
    assert!(measured_received > 10_000_000, "too little data moved");
    let hot = counts.transmit + counts.receive + counts.timers + counts.events;
    assert_eq!(
        hot, 0,
        "per-packet path allocated: {counts:?} over {measured} packets"
    );
}
