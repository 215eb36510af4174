//! Attack: a spoofed-source ClientHello flood of 100,000 datagrams against a server, while a
//! legitimate client connects and transfers data over the simulator. The scenario is
//! [`jsp_tests::flood`]; its server-memory figures are measured by `tests/tests/flood_memory.rs`
//! (a binary of its own, for its counting allocator).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use jsp_sim::jsp_core::config::AddressValidation;
use jsp_sim::jsp_core::Duration;
use jsp_tests::flood::{print, run};

#[test]
fn a_spoofed_client_hello_flood_causes_no_key_exchange_and_no_amplification() {
    let baseline = run(AddressValidation::UnderLoad, 0, 10, false, None);
    print("no flood (baseline)", &baseline);
    let base_hs = baseline.client_handshake.expect("baseline handshake");

    for policy in [AddressValidation::Always, AddressValidation::UnderLoad] {
        // 50,000 flights of two datagrams = 100,000 datagrams over 10 s of virtual time.
        let o = run(policy, 50_000, 10, true, None);
        print(&format!("{policy:?}"), &o);
        assert!(o.datagrams >= 100_000, "{o:?}");
        match policy {
            AddressValidation::Always => {
                assert_eq!(o.spoofed_connections, 0, "no key exchange without a token")
            }
            _ => {
                // Before the endpoint notices the load (attempts using 1/8 of the 200-token
                // handshake burst, i.e. 25, plus what the bucket refills meanwhile at 1000/s),
                // Initials are served as usual; after that, none.
                assert!(o.spoofed_connections <= 50, "{o:?}");
                assert_eq!(o.after_load, 0, "{o:?}");
            }
        }
        assert!(o.max_ratio <= 3.0, "amplification above 3x: {o:?}");
        assert!(o.stats.retries_sent > 0);
        let hs = o.client_handshake.expect("the legitimate client connects");
        assert!(
            o.client_completed.is_some(),
            "and completes its transfer: {o:?}"
        );
        assert_eq!(
            o.stats.retry_tokens_accepted, 1,
            "after following a Retry: {o:?}"
        );
        // One extra round trip (the Retry), not a timeout.
        assert!(
            hs < base_hs + Duration::from_millis(500),
            "{hs:?} vs {base_hs:?}"
        );
    }
}

#[test]
fn without_address_validation_the_same_flood_costs_key_exchanges_but_stays_within_3x() {
    // The control: Retry off. 2,000 flights over 1 s.
    let o = run(AddressValidation::Never, 2_000, 1, true, None);
    print("Never", &o);
    assert!(
        o.spoofed_connections > 100,
        "each accepted spoofed ClientHello costs a key exchange: {o:?}"
    );
    assert!(o.max_ratio <= 3.0, "amplification above 3x: {o:?}");
    assert!(o.client_completed.is_some(), "{o:?}");
}
