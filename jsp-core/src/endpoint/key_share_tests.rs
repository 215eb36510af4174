//! Keys generated ahead of handshakes: what an endpoint asks for, what it keeps, and that a
//! handshake uses a supplied key exactly once.

use std::sync::Arc;

use super::{KeyShareDemand, KeyShares, MAX_SPARE_CLIENT_SHARES, MAX_SPARE_KEY_PAIRS};
use crate::config::ClientConfig;
use crate::connection::tests::{server_addr, Pair, Setup};
use crate::crypto::kex::{
    server_respond_with, ClientKeyShare, KeyExchange, X25519KeyPair, HYBRID_SERVER_SHARE_LEN,
};
use crate::rand::Rng;
use crate::session::{ClientSession, SessionOutput};
use crate::time::Duration;

/// Generates and supplies what `ep` asks for, as a driver does.
fn fill(ep: &mut super::Endpoint, rng: &mut Rng) {
    let demand = ep.key_share_demand();
    ep.supply_key_shares(KeyShares::generate(&demand, rng));
}

#[test]
fn endpoints_ask_for_keys_only_after_a_handshake_and_keep_a_bounded_number() {
    let setup = Setup::new(41);
    let mut pair = Pair::new(&setup);
    assert_eq!(
        pair.server_ep.key_share_demand(),
        KeyShareDemand::default(),
        "a server that answered nothing holds no spare keys"
    );
    pair.handshake();
    let client = pair.client_ep.key_share_demand();
    assert_eq!(client.client, Some(KeyExchange::X25519MlKem768));
    assert_eq!(client.client_shares, MAX_SPARE_CLIENT_SHARES);
    assert_eq!(client.server_key_pairs, 0, "not a server");
    let server = pair.server_ep.key_share_demand();
    assert_eq!(server.client, None, "made no connection");
    assert_eq!(server.server_key_pairs, MAX_SPARE_KEY_PAIRS);

    let mut rng = Rng::from_seed([42; 32]);
    pair.client_ep
        .supply_key_shares(KeyShares::generate(&client, &mut rng));
    assert!(pair.client_ep.key_share_demand().is_empty());
    // More than asked for: the surplus is dropped.
    let lavish = KeyShareDemand {
        client: Some(KeyExchange::X25519MlKem768),
        client_shares: 3 * MAX_SPARE_CLIENT_SHARES,
        server_key_pairs: 3 * MAX_SPARE_KEY_PAIRS,
    };
    pair.server_ep
        .supply_key_shares(KeyShares::generate(&lavish, &mut rng));
    pair.server_ep
        .supply_key_shares(KeyShares::generate(&lavish, &mut rng));
    assert!(pair.server_ep.key_share_demand().is_empty());
    assert_eq!(pair.server_ep.spare_key_pairs.len(), MAX_SPARE_KEY_PAIRS);
    pair.client_ep
        .supply_key_shares(KeyShares::generate(&lavish, &mut rng));
    assert_eq!(
        pair.client_ep.spare_client_shares.len(),
        MAX_SPARE_CLIENT_SHARES
    );
    // A client share of another group than the endpoint offers is not kept.
    let classical = KeyShareDemand {
        client: Some(KeyExchange::X25519),
        client_shares: 2,
        server_key_pairs: 0,
    };
    pair.client_ep.spare_client_shares.clear();
    pair.client_ep
        .supply_key_shares(KeyShares::generate(&classical, &mut rng));
    assert!(pair.client_ep.spare_client_shares.is_empty());
}

#[test]
fn spare_keys_are_asked_for_in_batches_once_a_pool_runs_low() {
    let setup = Setup::new(45);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let mut rng = Rng::from_seed([46; 32]);
    fill(&mut pair.server_ep, &mut rng);
    // Used one by one: nothing is asked until half the pool is gone, then a full set.
    for used in 1..=MAX_SPARE_KEY_PAIRS / 2 {
        pair.server_ep.spare_key_pairs.pop();
        let demand = pair.server_ep.key_share_demand().server_key_pairs;
        if used < MAX_SPARE_KEY_PAIRS / 2 {
            assert_eq!(demand, 0, "{used} used");
        } else {
            assert_eq!(demand, used, "refill after {used}");
        }
    }
    fill(&mut pair.client_ep, &mut rng);
    for used in 1..MAX_SPARE_CLIENT_SHARES {
        pair.client_ep.spare_client_shares.pop();
        let demand = pair.client_ep.key_share_demand().client_shares;
        let left = MAX_SPARE_CLIENT_SHARES - used;
        assert_eq!(demand, if left <= 1 { used } else { 0 }, "{left} left");
    }
}

#[test]
fn a_second_connection_takes_one_spare_key_on_each_side_and_completes() {
    let setup = Setup::new(43);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let mut rng = Rng::from_seed([44; 32]);
    fill(&mut pair.client_ep, &mut rng);
    fill(&mut pair.server_ep, &mut rng);
    pair.run_for(Duration::from_millis(100));

    let second = pair
        .client_ep
        .connect(
            pair.now,
            Arc::new(setup.client_config.clone()),
            server_addr(),
            None,
        )
        .unwrap();
    assert_eq!(
        pair.client_ep.spare_client_shares.len(),
        MAX_SPARE_CLIENT_SHARES - 1,
        "one used"
    );
    assert!(
        pair.client_ep.key_share_demand().is_empty(),
        "three left: not asked for yet"
    );
    pair.client = Some(second);
    pair.server = None;
    pair.handshake();
    assert_eq!(
        pair.server_ep.spare_key_pairs.len(),
        MAX_SPARE_KEY_PAIRS - 1
    );
    assert!(pair.server_ep.key_share_demand().is_empty(), "15 left");
    assert!(pair.client().is_handshake_complete());
}

/// The ClientHello bytes of a session started with `share` (the CRYPTO data of its Initial).
fn client_hello_with(config: &Arc<ClientConfig>, share: ClientKeyShare, rng: &mut Rng) -> Vec<u8> {
    let mut out = SessionOutput::default();
    let _session = ClientSession::with_share(
        config.clone(),
        crate::handshake::TransportParameters::default(),
        None,
        Some(share),
        rng,
        crate::time::Instant::ZERO,
        &mut out,
    );
    out.crypto[crate::packet::SpaceId::Initial.index()].clone()
}

#[test]
fn a_supplied_client_share_is_the_one_in_the_client_hello() {
    let mut rng = Rng::from_seed([45; 32]);
    let config = Arc::new(ClientConfig::pinned(
        Setup::new(45).server_identity.public(),
    ));
    let share = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng);
    let public = share.public().to_vec();
    let hello = client_hello_with(&config, share, &mut rng);
    assert!(hello.windows(public.len()).any(|w| w == public));
    // A share of a group the configuration does not offer first is not used.
    let other = ClientKeyShare::generate(KeyExchange::X25519, &mut rng);
    let other_public = other.public().to_vec();
    let hello = client_hello_with(&config, other, &mut rng);
    assert!(!hello.windows(other_public.len()).any(|w| w == other_public));
}

#[test]
fn a_supplied_server_key_pair_is_the_one_in_the_server_share() {
    let mut rng = Rng::from_seed([46; 32]);
    let client = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng);
    let pair = X25519KeyPair::generate(&mut rng);
    let public = *pair.public();
    let (share, server_secret) = server_respond_with(
        KeyExchange::X25519MlKem768,
        client.public(),
        Some(pair),
        &mut rng,
    )
    .unwrap();
    assert_eq!(share.len(), HYBRID_SERVER_SHARE_LEN);
    assert_eq!(share[share.len() - 32..], public);
    let client_secret = client.finish(&share).unwrap();
    assert_eq!(client_secret.as_bytes(), server_secret.as_bytes());
}
