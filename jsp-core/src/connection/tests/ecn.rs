//! Pair tests of ECN (PROTOCOL §12.19): validation on a path that carries the marks, giving
//! up on one that clears them, CE marks taken as congestion without losses, and ECN off.

use super::*;
use crate::config::TransportConfig;
use crate::connection::ecn::EcnState;

/// Handshakes over `path` and moves 2 MiB from the client to the server.
fn run(path: EcnPath, client_ecn: bool) -> (ConnectionStats, ConnectionStats, EcnState) {
    let mut setup = Setup::new(40);
    setup.client_config.transport = Arc::new(TransportConfig {
        ecn: client_ecn,
        ..TransportConfig::default()
    });
    let mut pair = Pair::new(&setup);
    pair.ecn = path;
    pair.handshake();
    transfer(&mut pair, 1, 2 << 20, 100_000);
    let state = pair.client().ecn.state();
    (pair.client().stats(), pair.server().stats(), state)
}

#[test]
fn a_path_that_carries_the_marks_is_validated_and_every_packet_is_counted() {
    let (client, server, state) = run(EcnPath::Carry, true);
    assert_eq!(state, EcnState::Capable);
    assert!(
        client.ecn_capable && server.ecn_capable,
        "{client:?} {server:?}"
    );
    // Every packet the client sent after validation came marked: the server counted them all
    // (the ten tested ones and every later one), and so did the client of the server's.
    assert!(
        server.ecn_marked_received + 10 >= server.packets_received,
        "{} of {} packets marked",
        server.ecn_marked_received,
        server.packets_received
    );
    assert!(client.ecn_marked_received > 0);
    assert_eq!(client.ecn_ce_reported, 0);
    assert_eq!(client.packets_lost, 0);
}

#[test]
fn a_path_that_clears_the_marks_ends_marking_and_data_still_flows() {
    let (client, server, state) = run(EcnPath::Bleach, true);
    assert_eq!(state, EcnState::Failed);
    assert!(!client.ecn_capable && !server.ecn_capable);
    assert_eq!(server.ecn_marked_received, 0);
    assert_eq!(client.congestion_events, 0, "{client:?}");
}

#[test]
fn ce_marks_are_congestion_events_without_a_loss() {
    let (clean, _, _) = run(EcnPath::Carry, true);
    let (marked, server, state) = run(EcnPath::MarkCe { every: 50, seen: 0 }, true);
    assert_eq!(
        state,
        EcnState::Capable,
        "CE marks are no validation failure"
    );
    assert!(server.ecn_marked_received > 0);
    assert!(marked.ecn_ce_reported > 0, "{marked:?}");
    assert!(marked.congestion_events > 0, "{marked:?}");
    assert_eq!(marked.packets_lost, 0);
    assert_eq!(clean.congestion_events, 0, "{clean:?}");
}

#[test]
fn with_ecn_off_nothing_is_marked_and_the_peer_counts_nothing() {
    let (client, server, state) = run(EcnPath::Carry, false);
    assert_eq!(state, EcnState::Off);
    assert!(!client.ecn_capable);
    assert_eq!(server.ecn_marked_received, 0);
    // The server still marks (its own setting) and the client still counts and reports.
    assert!(server.ecn_capable && client.ecn_marked_received > 0);
}
