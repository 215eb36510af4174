//! Attack: connection-ID exhaustion. An authenticated but malicious client (it holds the real
//! 1-RTT keys: the test takes them from its key log) forges NEW_CONNECTION_ID frames into
//! properly protected 1-RTT packets. First it plays the retire-prior-to game — each frame
//! issues a new ID and retires all earlier ones, hundreds of times — which the server follows
//! with bounded state (at most `active_connection_id_limit` IDs, a bounded number of
//! RETIRE_CONNECTION_ID frames owed). Then it issues IDs beyond the limit without retiring
//! any: the server closes the connection with CONNECTION_ID_LIMIT_ERROR.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use jsp_sim::jsp_core::coding::Writer;
use jsp_sim::jsp_core::config::TransportConfig;
use jsp_sim::jsp_core::connection::{ConnectionError, Event};
use jsp_sim::jsp_core::crypto::Backend;
use jsp_sim::jsp_core::frame::Frame;
use jsp_sim::jsp_core::packet::PacketKind;
use jsp_sim::jsp_core::{ConnectionId, Duration, Instant, TransportErrorCode};

use super::attack_harness::{client_addr, client_one_rtt_keys, events, forge_packet, Configs, Net};

fn new_cid_frames(frames: &[(u64, u64)]) -> Vec<u8> {
    let mut buf = vec![0u8; 1200];
    let mut w = Writer::new(&mut buf);
    for &(sequence, retire_prior_to) in frames {
        let mut id = [0u8; 8];
        id[..8].copy_from_slice(&sequence.to_be_bytes());
        id[0] = 0xc1;
        Frame::NewConnectionId {
            sequence,
            retire_prior_to,
            id: ConnectionId::new(&id).unwrap(),
            reset_token: [sequence as u8; 16],
        }
        .encode(&mut w)
        .unwrap();
    }
    let n = w.position();
    buf.truncate(n);
    buf
}

/// A connection whose client is the attacker, with its forging function.
/// Forges a 1-RTT packet with this packet number carrying NEW_CONNECTION_ID frames
/// (sequence, retire_prior_to).
trait Forge: Fn(u64, &[(u64, u64)]) -> Vec<u8> {}
impl<F: Fn(u64, &[(u64, u64)]) -> Vec<u8>> Forge for F {}

fn attacker(seed: u8) -> (Net, impl Forge) {
    let transport = TransportConfig {
        key_log: true,
        ..TransportConfig::default()
    };
    let configs = Configs::new(seed, transport);
    let mut n = Net::new(&configs, seed, None, Instant::from_millis(1));
    n.handshake();
    n.run_for(Duration::from_millis(200));
    let log = events(&mut n.client);
    // From here on the real client stack is silent: the attacker speaks for it. (It would
    // otherwise close the connection itself on seeing the server acknowledge forged packet
    // numbers it never sent.)
    n.client_muted = true;
    let suite = n.client.handshake_info().unwrap().suite;
    let keys = client_one_rtt_keys(&log, suite, Backend::Auto);
    let dcid = n.server().local_cid();
    let empty = ConnectionId::new(&[]).unwrap();
    let forge = move |pn: u64, frames: &[(u64, u64)]| {
        forge_packet(
            PacketKind::Short,
            dcid,
            empty,
            pn,
            &new_cid_frames(frames),
            0,
            &keys,
        )
    };
    (n, forge)
}

fn transport_error(n: &mut Net) -> Option<jsp_sim::jsp_core::TransportError> {
    events(n.server()).into_iter().find_map(|e| match e {
        Event::ConnectionLost(ConnectionError::TransportError(t)) => Some(t),
        _ => None,
    })
}

#[test]
fn the_retire_prior_to_game_is_bounded_and_ends_in_a_connection_id_limit_error() {
    // Each frame issues a new ID and retires every earlier one, one every 20 ms. The server
    // follows (it switches to the newest ID and owes a RETIRE_CONNECTION_ID for each retired
    // one) but the attacker never acknowledges those (its IDs are not routable to it), so the
    // owed retirements reach their bound and the server closes.
    let (mut n, forge) = attacker(71);
    let (mut max_active, mut max_owed, mut rounds) = (0, 0, 0);
    for (pn, seq) in (500..).zip(1..=300u64) {
        n.inject(client_addr(), forge(pn, &[(seq, seq)]));
        rounds = seq;
        n.run_for(Duration::from_millis(20));
        let s = n.server().stats();
        max_active = max_active.max(s.peer_connection_ids);
        max_owed = max_owed.max(s.connection_id_retirements_outstanding);
        if n.server().is_closed() {
            break;
        }
    }
    let error = transport_error(&mut n);
    println!(
        "retire-prior-to game: server closed after {rounds} rounds with {:?} ({:?}); it held at \
         most {max_active} peer IDs (limit 4) and owed at most {max_owed} RETIRE_CONNECTION_ID \
         frames (bound 16)",
        error.as_ref().map(|e| e.code.name()),
        error.as_ref().map(|e| e.reason.clone()),
    );
    assert_eq!(
        error.expect("a transport error").code,
        TransportErrorCode::CONNECTION_ID_LIMIT_ERROR
    );
    assert!(max_active <= 4);
    assert!(max_owed <= 16);
    assert!(rounds <= 17, "{rounds}");
}

#[test]
fn connection_ids_beyond_the_limit_are_a_connection_id_limit_error() {
    let (mut n, forge) = attacker(72);
    // Three more IDs reach the limit of four (the handshake's counts): accepted. (No round
    // trip here: the server's acknowledgements of forged packets go nowhere.)
    n.inject(client_addr(), forge(500, &[(1, 0), (2, 0), (3, 0)]));
    n.run_for(Duration::from_millis(100));
    assert!(!n.server().is_closed(), "{:?}", events(n.server()));
    assert_eq!(n.server().stats().peer_connection_ids, 4);
    // Then a flood of 40 more that retire nothing.
    let frames: Vec<(u64, u64)> = (4..44).map(|s| (s, 0)).collect();
    n.inject(client_addr(), forge(501, &frames));
    n.run_for(Duration::from_millis(100));
    let error = transport_error(&mut n);
    println!(
        "flood of 40 IDs beyond the limit: server closed with {:?} ({:?}); peer IDs held {}",
        error.as_ref().map(|e| e.code.name()),
        error.as_ref().map(|e| e.reason.clone()),
        n.server().stats().peer_connection_ids,
    );
    assert_eq!(
        error.expect("a transport error").code,
        TransportErrorCode::CONNECTION_ID_LIMIT_ERROR
    );
    assert!(n.server().stats().peer_connection_ids <= 4);
}
