//! Two [`Streams`] (client and server) wired by encoded frames: each packet is built with
//! `write_control` + `write_stream_frames`, decoded with `frame::iter` and fed to the peer with
//! the packet as the payload the data slices point into. A seeded fault pattern drops,
//! duplicates and reorders packets; the sender learns each packet's fate through `on_lost` /
//! `on_acked` (a reordered packet is first declared lost, then acknowledged when it arrives:
//! spurious loss, as a real loss detector would produce).

use bytes::Bytes;

use super::super::{StreamLimits, StreamRecord, Streams};
use crate::coding::Writer;
use crate::error::TransportError;
use crate::frame;
use crate::side::Side;
use crate::time::{Duration, Instant};

/// Per-thousand fault rates.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Faults {
    pub(super) loss: u64,
    pub(super) dup: u64,
    pub(super) reorder: u64,
}

/// A packet in flight that arrives late.
struct Held {
    to: Side,
    packet: Bytes,
    records: Vec<StreamRecord>,
    rounds_left: u32,
}

/// The pair.
pub(super) struct Pair {
    pub(super) client: Streams,
    pub(super) server: Streams,
    pub(super) now: Instant,
    pub(super) mtu: usize,
    faults: Faults,
    rng: u64,
    held: Vec<Held>,
    /// Every record each side sent, in order: [client, server].
    pub(super) log: [Vec<StreamRecord>; 2],
    /// The most out-of-order ranges each side held after any frame: [client, server].
    pub(super) max_fragments: [u64; 2],
}

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl Pair {
    /// A pair that exchanged transport parameters.
    pub(super) fn new(client: StreamLimits, server: StreamLimits) -> Self {
        let mut c = Streams::new(Side::Client, client.clone());
        let mut s = Streams::new(Side::Server, server.clone());
        c.set_peer_limits(server.advertised());
        s.set_peer_limits(client.advertised());
        Self {
            client: c,
            server: s,
            now: Instant::ZERO,
            mtu: 1200,
            faults: Faults::default(),
            rng: 0x9e37_79b9_7f4a_7c15,
            held: Vec::new(),
            log: [Vec::new(), Vec::new()],
            max_fragments: [0, 0],
        }
    }

    /// The same pair with a seeded fault pattern.
    pub(super) fn with_faults(mut self, faults: Faults, seed: u64) -> Self {
        self.faults = faults;
        self.rng ^= seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        self
    }

    pub(super) fn side(&mut self, side: Side) -> &mut Streams {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    fn roll(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1000
    }

    /// One packet from `from`, or `None` when it has nothing to send.
    pub(super) fn packet(&mut self, from: Side) -> Option<(Bytes, Vec<StreamRecord>)> {
        let mtu = self.mtu;
        let sender = self.side(from);
        if !sender.wants_to_send() {
            return None;
        }
        let mut buf = vec![0u8; mtu];
        let mut w = Writer::new(&mut buf);
        let mut records = Vec::new();
        sender.write_control(&mut w, &mut records);
        sender.write_stream_frames(&mut w, &mut records, false);
        let n = w.position();
        if n == 0 {
            return None;
        }
        Some((Bytes::copy_from_slice(&buf[..n]), records))
    }

    /// Feeds every frame of `packet` to `to`.
    pub(super) fn deliver(
        &mut self,
        to: Side,
        packet: &Bytes,
        early: bool,
    ) -> Result<(), TransportError> {
        let now = self.now;
        for frame in frame::iter(packet) {
            let receiver = self.side(to);
            receiver.on_frame(&frame.expect("our own frames decode"), packet, early, now)?;
            check_fragments(receiver);
            let fragments = receiver.fragments;
            let max = &mut self.max_fragments[index(to)];
            *max = (*max).max(fragments);
        }
        Ok(())
    }

    /// Sends up to `budget` packets from `from` through the fault pattern; returns how many.
    pub(super) fn flush(&mut self, from: Side, budget: usize) -> usize {
        let to = !from;
        let mut sent = 0;
        while sent < budget {
            let Some((packet, records)) = self.packet(from) else {
                break;
            };
            sent += 1;
            self.log[index(from)].extend(records.iter().cloned());
            let roll = self.roll();
            if roll < self.faults.loss {
                for r in records {
                    self.side(from).on_lost(r);
                }
            } else if roll < self.faults.loss + self.faults.reorder {
                for r in records.iter().cloned() {
                    self.side(from).on_lost(r);
                }
                let rounds_left = 1 + (self.roll() % 3) as u32;
                self.held.push(Held {
                    to,
                    packet,
                    records,
                    rounds_left,
                });
            } else {
                self.deliver(to, &packet, false)
                    .expect("peer accepts the frames");
                if self.roll() < self.faults.dup {
                    self.deliver(to, &packet, false)
                        .expect("duplicates are harmless");
                }
                for r in records {
                    self.side(from).on_acked(r);
                }
            }
        }
        sent
    }

    /// One round: late packets age (and arrive), both sides send, time moves by 1 ms.
    pub(super) fn round(&mut self, budget: usize) {
        let mut still = Vec::new();
        for mut h in std::mem::take(&mut self.held) {
            h.rounds_left -= 1;
            if h.rounds_left == 0 {
                self.deliver(h.to, &h.packet, false)
                    .expect("late frames are accepted");
                for r in h.records {
                    self.side(!h.to).on_acked(r);
                }
            } else {
                still.push(h);
            }
        }
        self.held = still;
        self.flush(Side::Client, budget);
        self.flush(Side::Server, budget);
        self.now += Duration::from_millis(1);
        let now = self.now;
        self.client.set_now(now);
        self.server.set_now(now);
    }

    /// Whether packets are still in flight.
    pub(super) fn in_flight(&self) -> bool {
        !self.held.is_empty()
    }
}

/// Checks that the connection's count of out-of-order ranges is the sum of its streams', and
/// within the limit.
pub(super) fn check_fragments(s: &Streams) {
    let sum: u64 = s
        .streams
        .values()
        .filter_map(|stream| stream.recv.as_ref())
        .map(|recv| {
            recv.check_invariants();
            recv.fragments()
        })
        .sum();
    assert_eq!(
        s.fragments, sum,
        "the connection's count is the streams' sum"
    );
    assert!(s.fragments <= s.fragment_limit);
}

/// The byte at `offset` of test stream `stream`: a hash, so misplaced bytes are caught.
pub(super) fn byte_at(stream: u64, offset: u64) -> u8 {
    let x = (offset ^ (stream << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8
}

/// `len` bytes of test stream `stream` from `offset`.
pub(super) fn pattern(stream: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| byte_at(stream, offset + i))
        .collect()
}
