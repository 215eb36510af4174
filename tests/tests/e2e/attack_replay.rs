//! Attack: an on-path observer captures every datagram of a resumed session — its 0-RTT request
//! included — and replays all of them into the server, first while the connection is alive,
//! then into a restarted server of the same deployment (same ticket keys and replay filter).
//!
//! Defences exercised: the per-space anti-replay window on packet numbers (a datagram is
//! processed at most once by a connection), and single-use tickets in the bounded 0-RTT replay
//! filter (a replayed ClientHello never gets its early data accepted again).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use bytes::Bytes;
use jsp_sim::jsp_core::config::TransportConfig;
use jsp_sim::jsp_core::connection::{Connection, Event};
use jsp_sim::jsp_core::session::EarlyData;
use jsp_sim::jsp_core::{Duration, Instant};

use jsp_sim::jsp_core::packet::PacketKind;

use super::attack_harness::{client_addr, events, has_packet, Configs, Net};

const EARLY_REQUEST: &[u8] = b"POST /transfer amount=100 (idempotent id 7)";

/// Requests (streams and datagrams) the application of `conn` has received, and how many
/// of them arrived as 0-RTT.
fn requests(conn: &mut Connection) -> (usize, usize) {
    let (mut total, mut early) = (0, 0);
    while let Some(id) = conn.accept_bi() {
        total += 1;
        if conn.received_early(id) {
            early += 1;
        }
        while let Ok(Some(_)) = conn.read(id, 1 << 16) {}
    }
    while conn.recv_datagram().is_some() {
        total += 1;
    }
    (total, early)
}

#[test]
fn replaying_every_datagram_of_a_session_with_0rtt_processes_none_and_accepts_no_early_request() {
    let configs = Configs::new(21, TransportConfig::default());
    // Session 1: the client obtains a ticket.
    let mut n = Net::new(&configs, 21, None, Instant::from_millis(1));
    n.handshake();
    n.run_for(Duration::from_millis(200));
    let ticket = events(&mut n.client)
        .into_iter()
        .find_map(|e| match e {
            Event::NewTicket(t) => Some(*t),
            _ => None,
        })
        .expect("a session ticket");

    // Session 2 (captured): resumes with a replay-safe request in 0-RTT, then 1-RTT traffic.
    let start = ticket.received_at + Duration::from_secs(5);
    let mut n = Net::new(&configs, 22, Some(ticket), start);
    let id = n.client.open_bi().unwrap();
    n.client.set_replay_safe(id, true);
    n.client.write(id, EARLY_REQUEST).unwrap();
    n.client.finish(id).unwrap();
    n.client
        .send_datagram_early(Bytes::from_static(b"early datagram"))
        .unwrap();
    n.handshake();
    let info = n.client.handshake_info().unwrap().clone();
    assert_eq!(
        info.early_data,
        EarlyData::Accepted,
        "the original 0-RTT is accepted"
    );
    for i in 0..10u8 {
        n.client.send_datagram(Bytes::from(vec![i; 200])).unwrap();
        let s = n.client.open_bi().unwrap();
        n.client.write(s, &[i; 3000]).unwrap();
        n.client.finish(s).unwrap();
        n.run_for(Duration::from_millis(20));
    }
    n.run_for(Duration::from_millis(500));
    let (original, original_early) = requests(n.server());
    assert_eq!(
        original, 22,
        "1 early stream + 1 early datagram + 10 streams + 10 datagrams"
    );
    assert_eq!(original_early, 1);
    let captured = n.client_sent.clone();
    let zero_rtt_datagrams = captured
        .iter()
        .filter(|d| has_packet(d, PacketKind::ZeroRtt, 8))
        .count();
    assert!(zero_rtt_datagrams > 0);
    println!(
        "captured session: {} client datagrams ({} carrying 0-RTT), {} requests, {} of them 0-RTT",
        captured.len(),
        zero_rtt_datagrams,
        original,
        original_early
    );

    // Replay A: everything, into the live connection, from the client's address and from the
    // attacker's own.
    let before = n.server().stats();
    let conns_before = n.servers.len();
    let attacker = "203.0.113.9:7000".parse().unwrap();
    for d in &captured {
        n.inject(client_addr(), d.clone());
        n.inject(attacker, d.clone());
    }
    n.run_for(Duration::from_secs(2));
    let after = n.server().stats();
    let processed = after.packets_received - before.packets_received;
    let (again, _) = requests(n.server());
    let mut replay_conns_early = 0;
    let mut replay_conns_requests = 0;
    for (_, c) in n.servers.iter_mut().skip(conns_before) {
        let (r, e) = requests(c);
        replay_conns_requests += r;
        replay_conns_early += e;
    }
    println!(
        "replay into the live server: {} datagrams replayed; packets processed by the \
         connection: {processed}; refused by its replay window: {}; new requests delivered: \
         {again}; connections started by replayed Initials: {} (requests accepted there: {}, \
         0-RTT: {})",
        captured.len() * 2,
        after.packets_replayed - before.packets_replayed,
        n.servers.len() - conns_before,
        replay_conns_requests,
        replay_conns_early,
    );
    assert_eq!(processed, 0, "replayed datagrams processed");
    assert_eq!(again, 0);
    assert_eq!(replay_conns_requests, 0, "replayed 0-RTT requests accepted");
    assert!(
        !n.server().is_closed(),
        "the replay did not hurt the real connection"
    );
    n.client
        .send_datagram(Bytes::from_static(b"still here"))
        .unwrap();
    n.run_for(Duration::from_millis(100));
    assert_eq!(n.server().recv_datagram().unwrap(), &b"still here"[..]);

    // Replay B: the server restarts (or the replay goes to another server of the deployment,
    // sharing ticket keys and the replay filter); the whole capture is replayed into it.
    let mut restarted = Net::new(&configs, 23, None, n.now);
    restarted.client_muted = true;
    for d in &captured {
        restarted.inject(client_addr(), d.clone());
    }
    restarted.run_for(Duration::from_secs(5));
    let (mut accepted, mut early, mut zero_rtt_keys) = (0, 0, 0);
    for (_, c) in &mut restarted.servers {
        let (r, e) = requests(c);
        accepted += r;
        early += e;
        zero_rtt_keys += usize::from(c.is_handshake_complete());
    }
    println!(
        "replay into a restarted server: {} datagrams; connections started: {}; handshakes \
         completed: {zero_rtt_keys}; requests accepted: {accepted}; replayed 0-RTT requests \
         accepted: {early}",
        captured.len(),
        restarted.servers.len(),
    );
    assert_eq!(early, 0, "replayed 0-RTT requests accepted");
    assert_eq!(accepted, 0, "no replayed request of any kind is delivered");
    assert_eq!(zero_rtt_keys, 0, "a replayed handshake cannot complete");
}
