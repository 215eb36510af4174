//! Pair tests of address validation: Retry, NEW_TOKEN and the transport-parameter checks that
//! authenticate the connection IDs a Retry changes.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use crate::cid::ConnectionId;
use crate::config::AddressValidation;
use crate::connection::tests::{Pair, Setup};
use crate::connection::{ConnectionError, Event};
use crate::error::TransportErrorCode;
use crate::packet::retry::write_retry;
use crate::rand::Rng;
use crate::time::Duration;

fn server_addr() -> SocketAddr {
    "10.0.0.2:443".parse().unwrap()
}

fn setup(seed: u8, policy: AddressValidation) -> Setup {
    let mut s = Setup::new(seed);
    s.server_config.address_validation = policy;
    s
}

fn new_tokens(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::NewToken(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn with_always_the_client_follows_one_retry_and_arrives_validated() {
    let mut pair = Pair::new(&setup(21, AddressValidation::Always));
    pair.handshake();
    let st = pair.server_ep.stats();
    // Each datagram of the client's first flight (the hybrid ClientHello needs two) is answered
    // with a Retry; the client follows the first and ignores the rest.
    assert!((1..=2).contains(&st.retries_sent), "{st:?}");
    assert_eq!(st.retry_tokens_accepted, 1, "{st:?}");
    assert_eq!(st.accepted, 1, "{st:?}");
    assert!(pair.server().is_peer_address_validated());
    // The Retry's connection IDs were authenticated by the transport parameters (the
    // handshake completed), and data flows.
    pair.client()
        .send_datagram(bytes::Bytes::from_static(b"after retry"))
        .unwrap();
    pair.drive_until(50, |p| {
        p.server.as_mut().unwrap().1.recv_datagram().is_some()
    });
}

#[test]
fn with_never_no_retry_is_sent_and_the_address_is_validated_by_the_handshake() {
    let mut pair = Pair::new(&setup(22, AddressValidation::Never));
    pair.handshake();
    let st = pair.server_ep.stats();
    assert_eq!((st.retries_sent, st.accepted), (0, 1), "{st:?}");
}

#[test]
fn a_new_token_lets_the_next_connection_skip_the_retry_and_is_single_use() {
    let mut pair = Pair::new(&setup(23, AddressValidation::Always));
    pair.handshake();
    let retries = pair.server_ep.stats().retries_sent;
    pair.run_for(Duration::from_millis(200));
    let events = Pair::events(pair.client());
    let tokens = new_tokens(&events);
    assert_eq!(tokens.len(), 1, "one NEW_TOKEN per connection");
    // The client endpoint stored it and puts it into the next connection's Initial.
    let config = Arc::new(setup(23, AddressValidation::Always).client_config);
    let second = pair
        .client_ep
        .connect(pair.now, config.clone(), server_addr(), None)
        .unwrap();
    pair.client = Some(second);
    pair.server = None;
    pair.handshake();
    let st = pair.server_ep.stats();
    assert_eq!(st.retries_sent, retries, "no second Retry: {st:?}");
    assert_eq!(st.new_tokens_accepted, 1, "{st:?}");
    assert!(pair.server().is_peer_address_validated());
    // Replaying the same token on a third connection: refused once used, so that connection
    // goes through a Retry like a new client.
    pair.run_for(Duration::from_millis(200));
    let _ = Pair::events(pair.client());
    let third = pair
        .client_ep
        .connect(pair.now, config, server_addr(), None)
        .unwrap();
    pair.client = Some(third);
    pair.client().set_initial_token(tokens[0].clone());
    pair.server = None;
    pair.handshake();
    let st = pair.server_ep.stats();
    assert!(st.tokens_rejected >= 1, "{st:?}");
    assert!(st.retries_sent > retries, "{st:?}");
    assert_eq!(st.new_tokens_accepted, 1, "{st:?}");
}

/// A Retry for the client's connection: to its source ID, from `scid`, tagged for `odcid`.
fn forged_retry(
    pair: &mut Pair,
    scid: ConnectionId,
    odcid: ConnectionId,
    token: &[u8],
) -> BytesMut {
    let client_cid = pair.client().local_cid();
    let mut buf = vec![0u8; 256];
    let n = write_retry(
        &mut buf,
        crate::VERSION_1,
        &client_cid,
        &scid,
        &odcid,
        token,
        0,
    )
    .unwrap();
    BytesMut::from(&buf[..n])
}

#[test]
fn a_retry_with_a_bad_integrity_tag_is_ignored() {
    let mut pair = Pair::new(&setup(24, AddressValidation::Never));
    let mut rng = Rng::from_seed([3; 32]);
    // An off-path attacker does not know the client's original destination ID.
    let wrong = ConnectionId::random(&mut rng, 16);
    let retry = forged_retry(&mut pair, ConnectionId::random(&mut rng, 8), wrong, b"tok");
    let now = pair.now;
    pair.client().handle_datagram(now, server_addr(), retry);
    pair.handshake();
    assert_eq!(pair.server_ep.stats().tokens_rejected, 0);
}

#[test]
fn a_second_retry_is_ignored_and_an_injected_one_fails_the_handshake_cleanly() {
    // An on-path attacker knows the original ID and can make a valid-looking Retry; the server
    // never issued its token, so the client's next Initial is refused with INVALID_TOKEN.
    let mut pair = Pair::new(&setup(25, AddressValidation::Never));
    let mut rng = Rng::from_seed([4; 32]);
    let odcid = pair.client().original_dcid();
    let first = forged_retry(
        &mut pair,
        ConnectionId::random(&mut rng, 8),
        odcid,
        b"\x01forged",
    );
    let second = forged_retry(
        &mut pair,
        ConnectionId::random(&mut rng, 8),
        odcid,
        b"\x01other",
    );
    let now = pair.now;
    pair.client().handle_datagram(now, server_addr(), first);
    pair.client().handle_datagram(now, server_addr(), second);
    pair.drive_until(200, |p| p.client.as_ref().unwrap().1.is_closed());
    let events = Pair::events(pair.client());
    let lost = events.iter().find_map(|e| match e {
        Event::ConnectionLost(e) => Some(e.clone()),
        _ => None,
    });
    assert!(
        matches!(lost, Some(ConnectionError::ConnectionClosed { code, .. }) if code == TransportErrorCode::INVALID_TOKEN),
        "{lost:?}"
    );
    let st = pair.server_ep.stats();
    assert!(st.tokens_rejected >= 1 && st.accepted == 0, "{st:?}");
}
