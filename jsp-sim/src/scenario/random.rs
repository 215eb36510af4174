//! Random scenarios for soak runs: a seed picks a profile, perturbs its numbers, adds a fault
//! schedule and chooses the clients, streams and sizes — all from the seed, so a failing soak
//! seed replays alone.

use jsp_core::Duration;

use super::{Scenario, Transfer};
use crate::link::{GilbertElliott, Jitter, LinkConfig};
use crate::profile::{Fault, Profile, PROFILE_NAMES};
use crate::rng::SimRng;

fn perturb(l: &mut LinkConfig, rng: &mut SimRng) {
    let scale = |rng: &mut SimRng| 0.5 + rng.f64() * 1.5;
    l.delay = l.delay.mul_f64(scale(rng));
    if let Some(b) = l.bandwidth_bps.as_mut() {
        *b = ((*b as f64) * scale(rng)).max(200_000.0) as u64;
    }
    l.loss = (l.loss * scale(rng)).min(0.15);
    if rng.chance(0.2) {
        l.loss += rng.f64() * 0.05;
    }
    if rng.chance(0.2) {
        l.reorder = rng.f64() * 0.05;
        l.reorder_delay = rng.duration(Duration::from_millis(1), Duration::from_millis(30));
    }
    if rng.chance(0.15) {
        l.duplicate = rng.f64() * 0.03;
    }
    if rng.chance(0.15) {
        l.corrupt = rng.f64() * 0.01;
    }
    if rng.chance(0.15) {
        l.burst_loss = Some(GilbertElliott {
            p_good_to_bad: rng.f64() * 0.02,
            p_bad_to_good: 0.2 + rng.f64() * 0.6,
            loss_good: 0.0,
            loss_bad: 0.5 + rng.f64() * 0.5,
            step: rng.duration(Duration::from_millis(1), Duration::from_millis(50)),
        });
    }
    if rng.chance(0.2) {
        l.jitter = Jitter::Exponential {
            mean: rng.duration(Duration::ZERO, Duration::from_millis(10)),
        };
    }
    if rng.chance(0.1) {
        l.queue_bytes = rng.range(16 << 10, 4 << 20) as usize;
    }
}

/// The random scenario of soak seed `seed`.
pub fn random_scenario(seed: u64) -> Scenario {
    let mut rng = SimRng::new(seed ^ 0x736f_616b);
    let name = PROFILE_NAMES[rng.below(PROFILE_NAMES.len() as u64) as usize];
    let mut profile = Profile::named(name).unwrap_or_else(|| Profile {
        name: name.to_owned(),
        up: LinkConfig::default(),
        down: LinkConfig::default(),
        faults: Vec::new(),
    });
    perturb(&mut profile.up, &mut rng);
    perturb(&mut profile.down, &mut rng);
    let idle_timeout = Duration::from_secs(rng.range(3, 10));
    let streams = match rng.below(4) {
        0 => 1,
        1 => rng.range(2, 8) as usize,
        2 => rng.range(8, 40) as usize,
        _ => rng.range(1, 150) as usize,
    };
    let per_stream_cap = (768u64 << 10) / streams as u64;
    let bytes = rng.range(0, per_stream_cap.max(1));
    let mut transfer = Transfer::many(streams, bytes);
    if rng.chance(0.35) {
        transfer.response_bytes = rng.range(1, per_stream_cap.max(1));
    }
    if rng.chance(0.25) {
        transfer.datagrams = rng.range(1, 200) as usize;
        transfer.datagram_size = rng.range(8, 1100) as usize;
    }
    let clients = if rng.chance(0.2) { 2 } else { 1 };
    let mut faults = Vec::new();
    for _ in 0..rng.below(4) {
        let at = rng.duration(Duration::from_millis(50), Duration::from_secs(6));
        let fault = match rng.below(4) {
            0 => Fault::Outage {
                at,
                duration: if rng.chance(0.3) {
                    idle_timeout + rng.duration(Duration::ZERO, Duration::from_secs(5))
                } else {
                    rng.duration(Duration::from_millis(50), idle_timeout.mul_f64(0.7))
                },
            },
            1 => Fault::Bandwidth {
                at,
                bps: Some(rng.range(300_000, 50_000_000)),
            },
            2 => Fault::Delay {
                at,
                delay: rng.duration(Duration::from_millis(1), Duration::from_millis(400)),
            },
            _ => Fault::Rebind { at },
        };
        faults.push(fault);
    }
    faults.sort_by_key(Fault::at);
    let mut s = Scenario::new(profile, seed, transfer);
    s.faults = faults;
    s.clients = clients;
    s.idle_timeout = idle_timeout;
    if rng.chance(0.5) {
        s.keep_alive = Some(idle_timeout / 3);
    }
    s.time_limit = Duration::from_secs(1200);
    s
}
