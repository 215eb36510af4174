//! The send scheduler between two `Streams` (see `harness`): weighted fair queuing inside a
//! priority level, earliest deadline first, strict priority over both, coalescing of small
//! frames of several streams into one packet, and control frames riding with data. Every test
//! prints what it measured.

use bytes::Bytes;

use super::harness::{Faults, Pair};
use crate::frame::{stream_header_len, Dir, StreamId};
use crate::side::Side;
use crate::stream::{DeliveryMode, StreamLimits, StreamRecord};
use crate::time::Duration;

fn pair() -> Pair {
    let mut p = Pair::new(StreamLimits::default(), StreamLimits::default());
    p.client.set_rtt(Duration::from_millis(20));
    p.server.set_rtt(Duration::from_millis(20));
    p
}

/// The (stream, length) of the client's next `packets` packets' STREAM frames, in order (none
/// delivered: the scheduler's order alone).
fn frames(p: &mut Pair, packets: usize) -> Vec<(StreamId, u64)> {
    let mut out = Vec::new();
    for _ in 0..packets {
        let Some((_, records)) = p.packet(Side::Client) else {
            break;
        };
        out.extend(records.iter().filter_map(|r| match r {
            StreamRecord::Data { id, len, .. } => Some((*id, *len)),
            _ => None,
        }));
    }
    out
}

fn order(p: &mut Pair, packets: usize) -> Vec<StreamId> {
    frames(p, packets).into_iter().map(|(id, _)| id).collect()
}

/// Stream bytes each of `ids` put in the client's STREAM frames, from `log[from..]`.
fn bytes_of(p: &Pair, from: usize, ids: &[StreamId]) -> Vec<u64> {
    ids.iter()
        .map(|want| {
            p.log[0][from..]
                .iter()
                .map(|r| match r {
                    StreamRecord::Data { id, len, .. } if id == want => *len,
                    _ => 0,
                })
                .sum()
        })
        .collect()
}

/// Backlogged streams of weights `weights` over a lossy exchange; returns each one's share of
/// the stream bytes sent (retransmissions included) over `packets` packets.
fn shares(weights: &[u16], packets: usize, seed: u64) -> Vec<f64> {
    let faults = Faults {
        loss: 30,
        dup: 0,
        reorder: 20,
    };
    let mut p = pair().with_faults(faults, seed);
    let ids: Vec<StreamId> = weights
        .iter()
        .map(|&w| {
            let id = p.client.open(Dir::Uni).unwrap();
            p.client.set_weight(id, w).unwrap();
            id
        })
        .collect();
    let chunk = vec![7u8; 64 << 10];
    let mut sent = 0;
    let mut start = None;
    while sent < packets {
        for &id in &ids {
            while p.client.write(id, &chunk).unwrap() == chunk.len() {}
        }
        for &id in &ids {
            while let Ok(Some(_)) = p.server.read(id, usize::MAX) {}
        }
        // Warm-up: the first 50 packets (every stream starts at tag 0).
        if start.is_none() && sent >= 50 {
            start = Some(p.log[0].len());
        }
        sent += p.flush(Side::Client, 10);
        p.flush(Side::Server, 10);
        p.round(0);
    }
    let bytes = bytes_of(&p, start.unwrap(), &ids);
    let total: u64 = bytes.iter().sum();
    let retransmitted: Vec<u64> = ids
        .iter()
        .map(|&id| p.client.send_stats(id).unwrap().retransmitted_bytes)
        .collect();
    let shares: Vec<f64> = bytes.iter().map(|&b| b as f64 / total as f64).collect();
    println!(
        "wfq (stream pair, 3% loss, 2% reorder, seed {seed}): weights {weights:?}, bytes {bytes:?}, \
         shares {:?}, retransmitted {retransmitted:?}",
        shares
            .iter()
            .map(|s| format!("{:.2}%", s * 100.0))
            .collect::<Vec<_>>()
    );
    assert!(retransmitted.iter().all(|&r| r > 0), "losses were repaired");
    shares
}

#[test]
fn backlogged_streams_share_the_bytes_sent_in_proportion_to_their_weights() {
    for seed in 1..=3 {
        let s = shares(&[3, 1], 2000, seed);
        assert!((s[0] - 0.75).abs() < 0.01, "3:1 gives 75/25: {s:?}");
    }
    let s = shares(&[1, 2, 5], 2000, 4);
    for (got, want) in s.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
        assert!((got - want).abs() < 0.01, "1:2:5: {s:?}");
    }
    let s = shares(&[16, 16], 2000, 5);
    assert!(
        (s[0] - 0.5).abs() < 0.01,
        "equal weights share equally: {s:?}"
    );
}

#[test]
fn a_stream_that_drains_and_refills_gains_no_more_than_its_weight() {
    // Stream `a` (weight 1) keeps running dry and being refilled with one packet's worth,
    // while `b` (weight 1) stays backlogged: `a` must not jump ahead on each return.
    let mut p = pair();
    let a = p.client.open(Dir::Uni).unwrap();
    let b = p.client.open(Dir::Uni).unwrap();
    p.client.set_weight(a, 1).unwrap();
    p.client.set_weight(b, 1).unwrap();
    p.client.write(b, &vec![1u8; 4 << 20]).unwrap();
    for _ in 0..400 {
        p.client.write(a, &[2u8; 1100]).unwrap();
        p.flush(Side::Client, 1);
    }
    let bytes = bytes_of(&p, 0, &[a, b]);
    println!(
        "drain and refill: a {} bytes, b {} bytes",
        bytes[0], bytes[1]
    );
    let share = bytes[0] as f64 / (bytes[0] + bytes[1]) as f64;
    assert!(share <= 0.51, "a stays at its fair share: {share}");
}

#[test]
fn the_message_with_the_earliest_deadline_goes_first_even_when_queued_later() {
    let mut p = pair();
    let bulk = p.client.open(Dir::Uni).unwrap();
    let late = p.client.open(Dir::Uni).unwrap();
    let soon = p.client.open(Dir::Uni).unwrap();
    let pr = p
        .client
        .open_with(
            Dir::Uni,
            DeliveryMode::PartiallyReliable {
                ttl: Duration::from_millis(60),
            },
        )
        .unwrap();
    p.client.write(bulk, &vec![0u8; 5000]).unwrap();
    // Queued in this order; deadlines: late 200 ms, pr 60 ms (its TTL), soon 30 ms.
    let msg = Bytes::from(vec![1u8; 100]);
    p.client
        .send_message_with_deadline(late, msg.clone(), Duration::from_millis(200))
        .unwrap();
    p.client.send_message(pr, msg.clone()).unwrap();
    p.client
        .send_message_with_deadline(soon, msg.clone(), Duration::from_millis(30))
        .unwrap();
    let ids = order(&mut p, 6);
    println!("edf order: {ids:?} (soon {soon}, pr {pr}, late {late}, bulk {bulk})");
    assert_eq!(ids[..3], [soon, pr, late], "earliest deadline first");
    assert!(ids[3..].iter().all(|&id| id == bulk), "then the rest");

    // Several messages per stream interleave by deadline: a at 10, 30, 50 ms; b at 20, 40 ms.
    let mut p = pair();
    let a = p.client.open(Dir::Uni).unwrap();
    let b = p.client.open(Dir::Uni).unwrap();
    for (id, ms) in [(a, 10), (a, 30), (a, 50), (b, 20), (b, 40)] {
        p.client
            .send_message_with_deadline(id, msg.clone(), Duration::from_millis(ms))
            .unwrap();
    }
    let records: Vec<(StreamId, u64)> = {
        let (_, records) = p.packet(Side::Client).unwrap();
        records
            .iter()
            .filter_map(|r| match r {
                StreamRecord::Data { id, offset, .. } => Some((*id, *offset)),
                _ => None,
            })
            .collect()
    };
    println!("edf interleaving in one packet: {records:?}");
    // Each message is 102 bytes on the stream (2-byte length prefix).
    assert_eq!(
        records,
        [(a, 0), (b, 0), (a, 102), (b, 102), (a, 204)],
        "one frame per message, in deadline order, all in one packet"
    );
}

#[test]
fn a_higher_priority_level_is_served_strictly_first_whatever_the_deadlines_and_weights() {
    let mut p = pair();
    let high = p.client.open(Dir::Uni).unwrap();
    let low_urgent = p.client.open(Dir::Uni).unwrap();
    let low_heavy = p.client.open(Dir::Uni).unwrap();
    p.client.set_priority(high, 5).unwrap();
    p.client.set_weight(high, 1).unwrap();
    p.client.set_weight(low_heavy, u16::MAX).unwrap();
    p.client
        .send_message_with_deadline(
            low_urgent,
            Bytes::from(vec![1u8; 50]),
            Duration::from_millis(1),
        )
        .unwrap();
    p.client.write(low_heavy, &vec![2u8; 20_000]).unwrap();
    p.client.write(high, &vec![3u8; 12_000]).unwrap();
    let frames = frames(&mut p, 40);
    let ids: Vec<StreamId> = frames.iter().map(|&(id, _)| id).collect();
    let first_low = ids.iter().position(|&id| id != high).unwrap();
    let high_bytes: u64 = frames[..first_low].iter().map(|&(_, len)| len).sum();
    println!(
        "priority: {first_low} frames of the high stream ({high_bytes} bytes) before the first \
         low one ({})",
        ids[first_low]
    );
    assert_eq!(high_bytes, 12_000);
    assert!(ids[first_low..].iter().all(|&id| id != high));
    assert_eq!(
        ids[first_low], low_urgent,
        "then the deadline, then the rest"
    );
}

#[test]
fn small_messages_of_many_streams_share_packets() {
    let mut p = pair();
    let ids: Vec<StreamId> = (0..50).map(|_| p.client.open(Dir::Uni).unwrap()).collect();
    let mut frame_bytes = 0;
    for &id in &ids {
        // Two messages of 1 + 40 bytes: one frame of 82 bytes per stream.
        for _ in 0..2 {
            p.client
                .send_message(id, Bytes::from(vec![9u8; 40]))
                .unwrap();
        }
        frame_bytes += stream_header_len(id, 0, 82) + 82;
    }
    let mut packets = 0;
    let mut records = 0;
    while let Some((packet, r)) = p.packet(Side::Client) {
        packets += 1;
        records += r.len();
        assert!(packet.len() <= p.mtu);
    }
    let room = p.mtu;
    let bound = frame_bytes.div_ceil(room);
    println!(
        "coalescing: 100 messages of 40 bytes on 50 streams ({frame_bytes} bytes of frames) in \
         {packets} packets of {room} bytes (ceil(bytes/room) = {bound}), {records} frames"
    );
    // A frame cut at a packet's end costs one more header in the next packet.
    assert!(packets <= bound + 1, "{packets} packets for {bound}");
    assert!(
        records < 50 + packets,
        "only frames cut at a packet end add one"
    );
}

#[test]
fn control_frames_ride_in_data_packets() {
    let limits = StreamLimits {
        stream_receive_window: 16 << 10,
        max_stream_receive_window: 16 << 10,
        ..StreamLimits::default()
    };
    let mut p = Pair::new(limits.clone(), limits);
    let up = p.client.open(Dir::Bi).unwrap();
    p.client.write(up, &vec![1u8; 16 << 10]).unwrap();
    p.flush(Side::Client, 100);
    p.server.accept(Dir::Bi);
    // The server reads (its window update is owed) and has data of its own to send.
    while let Ok(Some(_)) = p.server.read(up, usize::MAX) {}
    p.server.write(up, &[2u8; 3000]).unwrap();
    let (_, records) = p.packet(Side::Server).unwrap();
    println!("server packet: {records:?}");
    assert!(records
        .iter()
        .any(|r| matches!(r, StreamRecord::MaxStreamData { id, .. } if *id == up)));
    assert!(records
        .iter()
        .any(|r| matches!(r, StreamRecord::Data { id, .. } if *id == up)));
}
