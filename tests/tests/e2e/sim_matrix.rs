//! The end-to-end matrix: every network profile × every transfer shape, each asserting that every
//! byte arrives exactly once, in order, with matching SHA-256 digests on both sides. A failure
//! names the profile and the seed; `jsp-sim run --profile P --seed S ...` replays it exactly.

use jsp_sim::scenario::Transfer;
use jsp_tests::deliver;

const SEED: u64 = 7;

/// One stream of 4 MiB.
fn one_large_stream() -> Transfer {
    Transfer::large(4 << 20)
}

/// 150 unidirectional streams of 8 KiB each: more than the peer's limit of 100 concurrent
/// streams, so the client must wait for the limit to be raised.
fn many_small_streams() -> Transfer {
    Transfer::many(150, 8 << 10)
}

/// 8 bidirectional streams: 128 KiB up, 256 KiB down each.
fn bidirectional() -> Transfer {
    Transfer::bidirectional(8, 128 << 10, 256 << 10)
}

/// 300 datagrams of 1000 bytes, plus one small stream; intact and at most once, all of them on
/// a path that loses nothing.
fn datagrams() -> Transfer {
    Transfer::datagrams(200, 1000)
}

macro_rules! matrix {
    ($($module:ident => $profile:literal),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn one_large_stream_arrives_exactly() {
                deliver($profile, SEED, super::one_large_stream());
            }

            #[test]
            fn many_small_streams_arrive_exactly() {
                deliver($profile, SEED, super::many_small_streams());
            }

            #[test]
            fn bidirectional_streams_arrive_exactly() {
                deliver($profile, SEED, super::bidirectional());
            }

            #[test]
            fn datagrams_arrive_intact_and_at_most_once() {
                let r = deliver($profile, SEED, super::datagrams());
                assert!(r.datagrams_received > 0, "{}: no datagram arrived", r.scenario);
            }
        }
    )*};
}

matrix! {
    lan => "lan",
    wifi => "wifi",
    lte => "lte",
    three_g => "3g",
    satellite => "satellite",
    lossy => "lossy",
    bursty => "bursty",
    bufferbloat => "bufferbloat",
    flaky => "flaky",
}
