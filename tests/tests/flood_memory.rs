//! Server memory during the spoofed ClientHello flood of `attack_flood` (100,000 hybrid
//! ClientHellos from spoofed sources while a legitimate client connects), measured with a
//! counting global allocator.
//!
//! This binary holds a single test and installs the allocator; the e2e binary, whose tests run
//! in parallel threads, does not. The scenario is [`jsp_tests::flood`], which charges the
//! server node (endpoint, connections, server application) with what its own calls allocate
//! and free (see its module docs). Run: `cargo test -p jsp-tests --test flood_memory --
//! --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::alloc::System;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};

use jsp_sim::jsp_core::config::{AddressValidation, EndpointConfig, TransportConfig};
use jsp_sim::jsp_core::endpoint::{TokenBucket, MAX_RESPONSES};
use jsp_tests::flood::{print, run, HeapFigures, Outcome};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes of the process.
fn live() -> u64 {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated) as u64
}

/// Packets a connection holds until their keys exist (`connection/recv.rs`).
const EARLY_PACKETS: u64 = 16;
/// The largest UDP payload: the endpoint does not refuse bigger datagrams than it sends.
const MAX_DATAGRAM: u64 = 65_535;
/// A connection's own state: keys, transcript, its first flight kept for retransmission,
/// sent-packet records, its entries in the endpoint's and the node's tables (measured below:
/// about 18 KiB for a half-open connection).
const CONNECTION_STATE: u64 = 64 << 10;

/// The documented bound of what one connection that has not completed its handshake can be
/// made to hold — a spoofed source can still send Initials to the connection ID it chose and
/// packets for later spaces: CRYPTO reassembly `max_handshake_buffer` in each of 3 spaces,
/// 16 early-buffered datagrams, and its own state.
fn half_open_bound(t: &TransportConfig) -> u64 {
    3 * t.max_handshake_buffer as u64 + EARLY_PACKETS * MAX_DATAGRAM + CONNECTION_STATE
}

/// The endpoint's tables at their configured caps, each entry counted twice its size (hash
/// tables and deques grow by doubling): per-source buckets and their order, queued stateless
/// responses (≤ 256 bytes each), the NEW_TOKEN log (an issue time and a 12-byte nonce per
/// entry).
fn tables_bound(e: &EndpointConfig) -> u64 {
    let sources = e.max_tracked_sources as u64
        * 2
        * (size_of::<IpAddr>() + size_of::<TokenBucket>() + 1 + size_of::<IpAddr>()) as u64;
    let responses = MAX_RESPONSES as u64 * 2 * (size_of::<(SocketAddr, Vec<u8>)>() + 256) as u64;
    let token_log = e.token_log_capacity as u64 * 2 * (8 + 12 + 8);
    sources + responses + token_log
}

fn kib(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn print_heap(name: &str, o: &Outcome) -> HeapFigures {
    let h = o.heap.expect("heap figures");
    let grown = h.peak - h.before;
    println!(
        "{name}: server heap created {}, before the flood {}, peak during it {} ({} connections \
         in the table then, at most {} during the flood), at the flood's end {}, after {} ({} \
         connections left); peak − before {} = {:.1} B per spoofed datagram, {} per connection held; {} connections \
         for spoofed sources, each flight that made one grew the heap by {} to {}, {} on \
         average; the legitimate client's connection {}",
        kib(h.created),
        kib(h.before),
        kib(h.peak),
        h.connections_at_peak,
        h.max_connections,
        kib(h.at_flood_end),
        kib(h.after),
        h.connections_after,
        kib(grown),
        grown as f64 / o.datagrams.max(1) as f64,
        kib(grown / h.connections_at_peak.max(1) as i64),
        h.spoofed_accepts,
        kib(h.spoofed_accept_min),
        kib(h.spoofed_accept_max),
        kib(h.spoofed_accept_total / h.spoofed_accepts.max(1) as i64),
        kib(h.legitimate_accept),
    );
    println!(
        "{name}: largest endpoint tables during the flood: {:?}",
        o.footprints.max
    );
    h
}

#[test]
fn attack_flood_server_memory_stays_bounded() {
    let limits = EndpointConfig::default();
    let per_connection = half_open_bound(&TransportConfig::default());
    let tables = tables_bound(&limits);
    println!(
        "size_of::<Connection>() = {} bytes",
        size_of::<jsp_sim::jsp_core::connection::Connection>()
    );
    println!(
        "bounds: {} per connection before its handshake completes, endpoint tables at their \
         caps {}; configured ceiling (max_connections {} × per connection + tables) {:.2} GiB",
        kib(per_connection as i64),
        kib(tables as i64),
        limits.max_connections,
        (limits.max_connections as u64 * per_connection + tables) as f64 / (1u64 << 30) as f64,
    );
    let baseline = run(AddressValidation::UnderLoad, 0, 10, false, Some(live));
    print("no flood (baseline)", &baseline);
    print_heap("no flood (baseline)", &baseline);

    for policy in [AddressValidation::Always, AddressValidation::UnderLoad] {
        let o = run(policy, 50_000, 10, true, Some(live));
        print(&format!("{policy:?}"), &o);
        let h = print_heap(&format!("{policy:?}"), &o);
        assert!(o.datagrams >= 100_000, "{o:?}");
        assert!(o.client_completed.is_some(), "{o:?}");

        // Every endpoint table stayed within its configured bound.
        let f = o.footprints.max;
        assert!(o.footprints.samples >= 100_000);
        assert!(f.connections <= limits.max_connections, "{f:?}");
        assert!(f.routed_cids <= 2 * f.connections, "{f:?}");
        assert!(f.reset_tokens <= f.connections, "{f:?}");
        assert!(f.tracked_sources <= limits.max_tracked_sources, "{f:?}");
        assert!(f.queued_responses <= MAX_RESPONSES, "{f:?}");
        assert!(f.token_log <= limits.token_log_capacity, "{f:?}");
        assert!(h.max_connections <= limits.max_connections, "{h:?}");
        assert!(
            h.peak > 0 && h.legitimate_accept > 0,
            "the meter saw the server work: {h:?}"
        );

        // The heap grows with connections, never with datagrams: each connection within its
        // documented bound, the peak within the tables plus that bound per connection held.
        assert!(
            h.spoofed_accept_max <= per_connection as i64,
            "{h:?} vs {per_connection}"
        );
        let bound = h.before + tables as i64 + h.max_connections as i64 * per_connection as i64;
        assert!(h.peak <= bound, "peak {} above {bound}: {h:?}", h.peak);
        // Once the connections are gone, what is left is the tables (buckets of the sources
        // that got a connection, hash-table capacity), not the flood.
        assert_eq!(h.connections_after, 0, "{h:?}");
        assert!(h.after <= h.created + tables as i64, "{h:?}");
    }
}
