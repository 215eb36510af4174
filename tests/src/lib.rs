//! Shared helpers for the cross-crate integration tests in `tests/tests/e2e/` (one test binary)
//! and the single-purpose test binaries beside it (`flood_memory.rs`).
#![forbid(unsafe_code)]

pub mod flood;

use jsp_sim::profile::Profile;
use jsp_sim::scenario::{Report, Scenario, Transfer};

/// The built-in profile `name`.
///
/// # Panics
/// When there is no such profile.
pub fn profile(name: &str) -> Profile {
    match Profile::named(name) {
        Some(p) => p,
        None => panic!("no profile named {name}"),
    }
}

/// Runs `scenario` and panics, naming profile and seed, unless every byte was delivered
/// exactly once and every invariant held.
pub fn assert_delivers(scenario: &Scenario) -> Report {
    let report = scenario.run();
    if let Err(e) = report.check() {
        panic!("{e}");
    }
    assert!(
        report.completed,
        "{}: did not complete (losses: {:?}); replay with this profile and seed",
        report.scenario, report.losses
    );
    let t = &scenario.transfer;
    assert_eq!(
        report.bytes_up,
        scenario.clients as u64 * t.streams as u64 * t.bytes_per_stream,
        "{}: request bytes verified at the server",
        report.scenario
    );
    assert_eq!(
        report.bytes_down,
        scenario.clients as u64 * t.streams as u64 * t.response_bytes,
        "{}: answer bytes verified at the clients",
        report.scenario
    );
    report
}

/// Runs a one-client transfer on the named profile with `seed` and asserts exact delivery.
pub fn deliver(profile_name: &str, seed: u64, transfer: Transfer) -> Report {
    assert_delivers(&Scenario::new(profile(profile_name), seed, transfer))
}
