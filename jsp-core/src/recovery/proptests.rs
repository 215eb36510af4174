//! Property tests: whatever a peer acknowledges and whenever timers fire, recovery never panics,
//! never hands a packet back twice, and `bytes_in_flight` equals the sum of the outstanding
//! in-flight sizes.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::packet::SpaceId;
use crate::time::{Duration, Instant};

/// ACK ranges: arbitrary pairs, or a valid set of packet numbers scaled (per mille) to those
/// sent in the space so far.
#[derive(Clone, Debug)]
enum Ranges {
    Raw(Vec<(u64, u64)>),
    Scaled(std::collections::BTreeSet<u64>),
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        space: usize,
        skip: u64,
        size: u16,
        ack_eliciting: bool,
        in_flight: bool,
        dt: u64,
    },
    Ack {
        space: usize,
        largest: Option<u64>,
        ranges: Ranges,
        ack_delay: u64,
        handshake_confirmed: bool,
        dt: u64,
    },
    Timeout {
        handshake_confirmed: bool,
        dt: u64,
    },
    Discard(usize),
    TakeAll(usize),
    AntiDeadlock(Option<usize>),
}

/// Packet numbers near those sent, with an occasional absurd one.
fn pn() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..40, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

/// Valid ranges (descending, disjoint, separated by gaps) from a set of packet numbers.
fn well_formed(set: std::collections::BTreeSet<u64>) -> Vec<(u64, u64)> {
    let desc: Vec<u64> = set.into_iter().rev().collect();
    desc.chunks(2)
        .map(|c| (*c.last().unwrap_or(&c[0]), c[0]))
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3u64, 1..1500u16, any::<bool>(), any::<bool>(), 0..50u64).prop_map(
            |(space, skip, size, ack_eliciting, in_flight, dt)| Op::Send {
                space,
                skip: u64::from(skip == 2),
                size,
                ack_eliciting,
                in_flight,
                dt,
            }
        ),
        4 => (
            0..3usize,
            prop_oneof![4 => Just(None), 1 => pn().prop_map(Some)],
            prop_oneof![
                1 => proptest::collection::vec((pn(), pn()), 0..6).prop_map(Ranges::Raw),
                3 => proptest::collection::btree_set(0u64..1000, 1..12).prop_map(Ranges::Scaled),
            ],
            prop_oneof![0..50_000u64, Just(u64::MAX)],
            any::<bool>(),
            0..200u64,
        )
            .prop_map(|(space, largest, ranges, ack_delay, handshake_confirmed, dt)| Op::Ack {
                space,
                largest,
                ranges,
                ack_delay,
                handshake_confirmed,
                dt,
            }),
        2 => (any::<bool>(), 0..3000u64)
            .prop_map(|(handshake_confirmed, dt)| Op::Timeout { handshake_confirmed, dt }),
        1 => (0..2usize).prop_map(Op::Discard),
        1 => Just(Op::TakeAll(2)),
        1 => proptest::option::of(0..2usize).prop_map(Op::AntiDeadlock),
    ]
}

/// Mirror of what should be outstanding: (space, pn) → (size, in_flight, ack_eliciting).
type Model = BTreeMap<(usize, u64), (u16, bool, bool)>;

fn remove(model: &mut Model, space: SpaceId, pn: u64) {
    let removed = model.remove(&(space.index(), pn));
    assert!(
        removed.is_some(),
        "{space:?} {pn} handed back twice or never sent"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_acks_and_timeouts_keep_bytes_in_flight_exact(ops in proptest::collection::vec(op(), 1..120)) {
        let mut r: Recovery<u64> = Recovery::new(RecoveryConfig::default());
        let mut model = Model::new();
        let mut next_pn = [0u64; 3];
        let mut now = Instant::ZERO;
        let mut out = AckOutcome::default();
        for op in ops {
            out.clear();
            match op {
                Op::Send { space, skip, size, ack_eliciting, in_flight, dt } => {
                    now += Duration::from_millis(dt);
                    let id = SpaceId::ALL[space];
                    let pn = next_pn[space] + skip;
                    next_pn[space] = pn + 1;
                    let packet = SentPacket { time_sent: now, size, ack_eliciting, in_flight, frames: pn };
                    r.on_packet_sent(id, pn, packet, now);
                    model.insert((space, pn), (size, in_flight, ack_eliciting));
                }
                Op::Ack { space, largest, ranges, ack_delay, handshake_confirmed, dt } => {
                    now += Duration::from_millis(dt);
                    let id = SpaceId::ALL[space];
                    let ranges = match ranges {
                        Ranges::Raw(pairs) => pairs,
                        Ranges::Scaled(set) => {
                            well_formed(set.into_iter().map(|v| v * next_pn[space] / 1000).collect())
                        }
                    };
                    let largest = largest.or(ranges.first().map(|r| r.1)).unwrap_or(0);
                    let ranges = ranges.into_iter().map(|(a, b)| a..=b);
                    let delay = Duration::from_micros(ack_delay);
                    let _ = r.on_ack_received(id, largest, delay, ranges, handshake_confirmed, now, &mut out);
                }
                Op::Timeout { handshake_confirmed, dt } => {
                    now += Duration::from_millis(dt);
                    if let Some(deadline) = r.loss_timer(handshake_confirmed, now) {
                        prop_assert!(deadline >= Instant::ZERO);
                    }
                    let _ = r.on_loss_timeout(handshake_confirmed, now, &mut out);
                }
                Op::Discard(space) => {
                    let id = SpaceId::ALL[space];
                    let mut dropped = Vec::new();
                    r.discard_space(id, &mut dropped);
                    let held: Vec<_> = model.range((space, 0)..=(space, u64::MAX)).map(|(k, v)| (*k, *v)).collect();
                    let in_flight = held.iter().filter(|(_, (_, f, _))| *f).count();
                    prop_assert_eq!(dropped.len(), in_flight);
                    for (key, _) in held {
                        model.remove(&key);
                    }
                    next_pn[space] = 0;
                }
                Op::TakeAll(space) => {
                    let id = SpaceId::ALL[space];
                    let mut taken = Vec::new();
                    r.take_all(id, &mut taken);
                    for (pn, _) in taken {
                        remove(&mut model, id, pn);
                    }
                }
                Op::AntiDeadlock(space) => r.set_anti_deadlock(space.map(|s| SpaceId::ALL[s])),
            }
            for (id, pn, packet) in out.acked.iter().chain(out.lost.iter()) {
                prop_assert_eq!(packet.frames, *pn);
                remove(&mut model, *id, *pn);
            }
            let expected: u64 = model.values().filter(|(_, f, _)| *f).map(|(s, _, _)| u64::from(*s)).sum();
            prop_assert_eq!(r.bytes_in_flight(), expected);
            for id in SpaceId::ALL {
                let eliciting = model
                    .range((id.index(), 0)..=(id.index(), u64::MAX))
                    .filter(|(_, (_, f, e))| *f && *e)
                    .count();
                prop_assert_eq!(r.ack_eliciting_in_flight(id), eliciting);
            }
            let lost_bytes: u64 = out.lost.iter().filter(|(_, _, p)| p.in_flight).map(|(_, _, p)| u64::from(p.size)).sum();
            prop_assert_eq!(out.lost_bytes, lost_bytes);
        }
    }
}
