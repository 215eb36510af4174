//! Replay: the same seed gives the same trace hash, different seeds give different ones, and
//! every seed that ever failed stays a named regression test.

use jsp_sim::scenario::{random_scenario, Scenario, Transfer};
use jsp_tests::profile;

fn lte_transfer(seed: u64) -> Scenario {
    Scenario::new(
        profile("lte"),
        seed,
        Transfer::bidirectional(4, 64 << 10, 64 << 10),
    )
}

#[test]
fn the_same_seed_gives_the_same_trace_hash_twice() {
    let a = lte_transfer(7).run();
    let b = lte_transfer(7).run();
    a.check().unwrap();
    assert_eq!(
        a.trace_hash, b.trace_hash,
        "seed 7 on lte replayed differently"
    );
    assert_eq!(a.trace_events, b.trace_events);
    assert_eq!(a.completion_time, b.completion_time);
    // A soak scenario with faults, rebinding and several knobs replays as exactly.
    let (c, d) = (random_scenario(31).run(), random_scenario(31).run());
    assert_eq!(c.trace_hash, d.trace_hash, "{}", c.scenario);
}

#[test]
fn two_seeds_give_different_trace_hashes() {
    let a = lte_transfer(7).run();
    let b = lte_transfer(8).run();
    a.check().unwrap();
    b.check().unwrap();
    assert_ne!(a.trace_hash, b.trace_hash);
    // Even on a link without randomness the seed changes keys and connection IDs, so the bytes.
    let c = Scenario::new(profile("bufferbloat"), 1, Transfer::large(32 << 10)).run();
    let d = Scenario::new(profile("bufferbloat"), 2, Transfer::large(32 << 10)).run();
    assert_ne!(c.trace_hash, d.trace_hash);
}

#[test]
fn a_sample_of_soak_seeds_keeps_every_invariant() {
    for seed in 1000..1040 {
        let r = random_scenario(seed).run();
        if let Err(e) = r.check() {
            panic!("soak seed {seed}: {e}");
        }
    }
}

/// Seeds that failed during development, each for a reason now fixed; they must keep passing.
/// - 31, 45, 111, 123, 148, 191: a stale `Readable` hint for a stream already read to its end
///   made the server application read a forgotten stream.
/// - 192, 200, 394, 732: a NAT rebinding while the client only receives and keep-alive is off —
///   the server cannot learn the new address, and the connection must end with a clear error.
/// - 449, 731, 759, 932: a NAT rebinding before the handshake is confirmed (the server does not
///   follow an address change then), so the connection ends with a clear error.
/// - 40, 61, 96, 118, 133, 261: outages of at least half the idle timeout, alone or together,
///   outlast the probe-timeout backoff and end the connection with a clear timeout.
/// - 320: datagrams still queued behind a 2 MiB bufferbloat queue when the streams finished.
/// - 9588, 9669, 9758, 9761, 16473: Gilbert–Elliott bursts that never ended on a sparse flow
///   (the chain only stepped per datagram; it now also steps with idle time).
/// - 19619: overlapping outages, where the first one's end brought the link up inside the second.
#[test]
fn regression_seeds_from_soak_runs_keep_every_invariant() {
    let seeds = [
        31, 45, 111, 123, 148, 191, 192, 200, 394, 732, 449, 731, 759, 932, 40, 61, 96, 118, 133,
        261, 320, 9588, 9669, 9758, 9761, 16473, 19619,
    ];
    for seed in seeds {
        let r = random_scenario(seed).run();
        if let Err(e) = r.check() {
            panic!("soak seed {seed}: {e}");
        }
    }
}

fn assert_soak_seeds(seeds: &[u64]) {
    let failures: Vec<String> = seeds
        .iter()
        .filter_map(|&seed| random_scenario(seed).run().check().err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The server keeps answering a client's old address after a NAT rebinding that comes right
/// after the server completed the handshake but before the client saw HANDSHAKE_DONE (lost):
/// the client's probes arrive from the new address, the server's replies go to the old one,
/// and both sides time out although the client keeps sending and keep-alive is on.
#[test]
#[ignore = "core bug: server does not follow a NAT rebinding while the client still probes the handshake (seed 17661; likely also 5826, 15097, 17734)"]
fn core_server_follows_a_rebinding_right_after_the_handshake() {
    assert_soak_seeds(&[17661, 5826, 15097, 17734]);
}

/// Probe timeouts back off exponentially and the idle timer is max(idle, 3 × PTO without
/// backoff), so under random or burst loss, jitter, delay steps or several short cuts, two or
/// three lost probe rounds let the idle timer expire on a path that is up: a 3–10 s idle timeout
/// ends the connection without a cut anywhere near that long.
#[test]
#[ignore = "core: idle timeout expires during probe backoff on a live lossy path (seeds 1213 3192 3688 3719 4900 6703 8395 12605 13994 14548 15596 18450 19513 19854 20563 20575)"]
fn core_idle_timeout_outlives_probe_backoff_on_a_live_path() {
    assert_soak_seeds(&[
        1213, 3192, 3688, 3719, 4900, 6703, 8395, 12605, 13994, 14548, 15596, 18450, 19513, 19854,
        20563, 20575,
    ]);
}

/// One of 199 datagrams never arrives over a `lan` path that dropped nothing.
#[test]
#[ignore = "core: a datagram is lost on a path that dropped nothing (seed 1457)"]
fn core_delivers_every_datagram_over_a_lossless_path() {
    assert_soak_seeds(&[1457]);
}
