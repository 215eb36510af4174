//! Attack: random single-bit flips in 10% of the datagrams, both directions, during a transfer
//! over the simulator. Every flipped datagram fails authentication (or header parsing) and is
//! dropped and counted; loss recovery resends what it carried. The transfer completes
//! byte-exact, or — should the corruption starve the path — ends with a clear error; it never
//! panics and never delivers a corrupted byte (the scenario verifies every byte it receives).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use jsp_sim::scenario::{Scenario, Transfer};
use jsp_tests::profile;

#[test]
fn bit_flips_in_ten_percent_of_datagrams_never_corrupt_data_or_panic() {
    for (name, seed) in [("lan", 31u64), ("lte", 32)] {
        let mut p = profile(name);
        for l in [&mut p.up, &mut p.down] {
            l.corrupt = 0.10;
        }
        p.name = format!("{name}+10% bit flips");
        let s = Scenario::new(p, seed, Transfer::many(4, 256 << 10));
        let r = s.run();
        r.check().unwrap();
        println!(
            "{}: completed {} in {:?}; flipped datagrams up {} / down {}; packets \
             dropped: server {}, client {}; bytes verified up {} down {}; losses {:?}",
            r.scenario,
            r.completed,
            r.completion_time,
            r.up.corrupted,
            r.down.corrupted,
            r.server_stats.packets_dropped,
            r.client_stats.packets_dropped,
            r.bytes_up,
            r.bytes_down,
            r.losses,
        );
        assert!(r.up.corrupted > 0 && r.down.corrupted > 0);
        if r.completed {
            assert_eq!(r.bytes_up, 4 * (256 << 10), "request bytes exact");
            assert!(
                r.server_stats.packets_dropped + r.client_stats.packets_dropped > 0,
                "flipped datagrams were dropped"
            );
        } else {
            assert!(
                !r.losses.is_empty(),
                "an unfinished run ends with a clear error"
            );
        }
    }
}
