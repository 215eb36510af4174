//! Weighted fair queuing on a bottleneck: two bulk streams of one connection, weights 3 and 1,
//! both kept backlogged by the client, share a 10 Mbit/s link with a 40 ms RTT (and, in the
//! lossy runs, 1 % random loss, so retransmissions take their share too). The server counts the
//! bytes it reads from each stream; the shares over a window after start-up must be within ±5 %
//! of 75/25. Deterministic from the seed; the figures are printed.

// The helpers are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use jsp_sim::jsp::{JspApp, JspNode};
use jsp_sim::jsp_core::connection::Connection;
use jsp_sim::jsp_core::endpoint::ConnectionHandle;
use jsp_sim::jsp_core::frame::StreamId;
use jsp_sim::jsp_core::{Duration, Instant};
use jsp_sim::link::LinkConfig;
use jsp_sim::profile::Profile;
use jsp_sim::scenario::{build_jsp, Scenario, Transfer};

const WEIGHTS: [u16; 2] = [3, 1];
/// The measurement window: after start-up, while both streams are backlogged.
const FROM: Duration = Duration::from_secs(3);
const TO: Duration = Duration::from_secs(13);

/// Opens two uni streams with `WEIGHTS` and keeps both full.
struct Client {
    ids: Vec<StreamId>,
    chunk: Vec<u8>,
    /// Times a stream's write came up short (it stays backlogged: the scheduler, not the
    /// application, decides the shares).
    short_writes: [u64; 2],
}

impl JspApp for Client {
    fn on_connection(&mut self, _now: Instant, _h: ConnectionHandle, conn: &mut Connection) {
        while conn.poll_event().is_some() {}
        while self.ids.len() < WEIGHTS.len() {
            let Some(id) = conn.open_uni() else { return };
            conn.set_weight(id, WEIGHTS[self.ids.len()]).unwrap();
            self.ids.push(id);
        }
        for (i, &id) in self.ids.iter().enumerate() {
            loop {
                let n = conn.write(id, &self.chunk).unwrap();
                if n < self.chunk.len() {
                    self.short_writes[i] += 1;
                    break;
                }
            }
        }
    }

    fn is_done(&self) -> bool {
        false
    }
}

/// Reads everything and counts the bytes of each stream, sampled at `FROM` and `TO`.
#[derive(Default)]
struct Server {
    ids: Vec<StreamId>,
    bytes: [u64; 2],
    at_from: Option<[u64; 2]>,
    at_to: Option<[u64; 2]>,
}

impl JspApp for Server {
    fn on_connection(&mut self, now: Instant, _h: ConnectionHandle, conn: &mut Connection) {
        while conn.poll_event().is_some() {}
        while let Some(id) = conn.accept_uni() {
            self.ids.push(id);
        }
        let since = now.since_origin();
        if since >= FROM && self.at_from.is_none() {
            self.at_from = Some(self.bytes);
        }
        if since >= TO && self.at_to.is_none() {
            self.at_to = Some(self.bytes);
        }
        for (i, &id) in self.ids.iter().enumerate().take(2) {
            while let Ok(Some(chunk)) = conn.read(id, usize::MAX) {
                self.bytes[i] += chunk.len() as u64;
            }
        }
    }

    fn is_done(&self) -> bool {
        false
    }
}

fn bottleneck(loss: f64) -> Profile {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        bandwidth_bps: Some(10_000_000),
        queue_bytes: 64 << 10,
        loss,
        ..LinkConfig::default()
    };
    Profile {
        name: format!("bottleneck-10mbit-40ms-{}%", loss * 100.0),
        up: link.clone(),
        down: LinkConfig { loss: 0.0, ..link },
        faults: Vec::new(),
    }
}

/// Runs one case; returns stream 0's share of the bytes read in the window.
fn run(loss: f64, seed: u64) -> f64 {
    let s = Scenario::new(bottleneck(loss), seed, Transfer::many(0, 0));
    let mut setup = build_jsp(&s, Box::<Server>::default(), |_| {
        Box::new(Client {
            ids: Vec::new(),
            chunk: vec![0x5a; 64 << 10],
            short_writes: [0; 2],
        })
    })
    .unwrap();
    setup
        .sim
        .run_until(Instant::ZERO + TO + Duration::from_millis(200))
        .unwrap();
    let (client_id, _) = setup.clients[0];
    let server = setup.sim.node::<JspNode>(setup.server).unwrap();
    let app = server.app::<Server>().unwrap();
    let (from, to) = (app.at_from.unwrap(), app.at_to.unwrap());
    let window = [to[0] - from[0], to[1] - from[1]];
    let total = window[0] + window[1];
    let share = window[0] as f64 / total as f64;
    let client = setup.sim.node::<JspNode>(client_id).unwrap();
    let (_, conn) = client.connections().next().unwrap();
    let stats = conn.stats();
    let short = client.app::<Client>().unwrap().short_writes;
    println!(
        "wfq on {}, seed {seed}: weights {WEIGHTS:?}, bytes read in [{FROM:?}, {TO:?}]: {window:?} \
         ({:.2} Mbit/s), shares {:.2}% / {:.2}%; packets lost {}, retransmitted {} bytes; \
         short writes (backlog kept) {short:?}",
        s.profile.name,
        total as f64 * 8.0 / (TO - FROM).as_secs_f64() / 1e6,
        share * 100.0,
        (1.0 - share) * 100.0,
        stats.packets_lost,
        stats.retransmitted_bytes,
    );
    assert!(
        total as f64 * 8.0 / (TO - FROM).as_secs_f64() > 5e6,
        "the bottleneck was used"
    );
    assert!(
        loss == 0.0 || stats.retransmitted_bytes > 0,
        "losses repaired"
    );
    share
}

#[test]
fn two_bulk_streams_weighted_three_to_one_share_a_bottleneck_75_25() {
    for (loss, seed) in [(0.0, 1), (0.01, 2), (0.01, 3)] {
        let share = run(loss, seed);
        assert!(
            (share - 0.75).abs() <= 0.05,
            "3:1 weights within ±5% of 75/25: {:.2}%",
            share * 100.0
        );
    }
}
