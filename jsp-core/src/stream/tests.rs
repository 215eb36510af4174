//! Stream scenarios: two `Streams` wired by encoded frames (see `harness`), plus the reassembler
//! against a model and hostile frames fed directly.

mod harness;
mod hostile;
mod memory;
mod modes;
mod sched;

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use self::harness::{byte_at, pattern, Faults, Pair};
use super::flow::RecvWindow;
use super::recv::{Recv, RecvState, Room, MIN_ZERO_COPY};
use super::send::SendState;
use super::*;
use crate::coding::Writer;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// What a transfer observed.
#[derive(Debug, Default)]
struct Seen {
    rounds: usize,
    max_window: u64,
    max_buffered: u64,
}

/// The client sends `count` streams of `size` bytes to the server, which reads and checks every
/// byte, at most `read_budget` bytes per stream per round (bidirectional streams are finished by
/// the server once read, and the client reads that end, so they close). Fails if the transfer
/// does not complete in `max_rounds`.
fn transfer(
    pair: &mut Pair,
    dir: Dir,
    (count, size): (u64, u64),
    read_budget: u64,
    max_rounds: usize,
) -> Seen {
    let mut seen = Seen::default();
    let mut writers: Vec<(StreamId, u64, bool)> = Vec::new();
    let mut readers: BTreeMap<StreamId, u64> = BTreeMap::new();
    let (mut read_done, mut finished, mut closed) = (0u64, 0u64, 0u64);
    for round in 0..max_rounds {
        while (writers.len() as u64) < count {
            let Some(id) = pair.client.open(dir) else {
                break;
            };
            writers.push((id, 0, false));
        }
        for (id, written, fin) in writers.iter_mut().filter(|w| !w.2) {
            while *written < size {
                let len = (size - *written).min(64 * KIB) as usize;
                let n = pair
                    .client
                    .write(*id, &pattern(id.0, *written, len))
                    .unwrap();
                *written += n as u64;
                if n < len {
                    break;
                }
            }
            if *written == size {
                pair.client.finish(*id).unwrap();
                *fin = true;
            }
        }
        while let Some(event) = pair.client.poll_event() {
            match event {
                StreamEvent::Finished { .. } => finished += 1,
                StreamEvent::Readable { id } => {
                    assert_eq!(pair.client.read(id, 10), Ok(None), "the server's end");
                    closed += 1;
                }
                _ => {}
            }
        }
        while let Some(id) = pair.server.accept(dir) {
            readers.insert(id, 0);
        }
        while pair.server.poll_event().is_some() {}
        seen.max_buffered = seen.max_buffered.max(pair.server.recv_buffered());
        for (&id, offset) in readers.iter_mut().filter(|r| *r.1 <= size) {
            if let Some(window) = pair.server.stream_recv_window(id) {
                seen.max_window = seen.max_window.max(window);
            }
            let mut budget = read_budget;
            while budget > 0 {
                match pair.server.read(id, budget as usize) {
                    Ok(Some(chunk)) => {
                        assert_eq!(&chunk[..], &pattern(id.0, *offset, chunk.len())[..]);
                        *offset += chunk.len() as u64;
                        budget -= chunk.len() as u64;
                    }
                    Ok(None) => {
                        assert_eq!(*offset, size, "stream {id} ended early");
                        *offset = size + 1;
                        read_done += 1;
                        if dir == Dir::Bi {
                            pair.server.finish(id).unwrap();
                        }
                        break;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(e) => panic!("read of {id} failed: {e}"),
                }
            }
        }
        let ends = if dir == Dir::Bi { closed } else { count };
        if read_done == count && finished == count && ends == count && !pair.in_flight() {
            seen.rounds = round;
            return seen;
        }
        pair.round(64);
    }
    panic!("transfer stalled: {read_done} of {count} streams read, {finished} finished");
}

fn lossy() -> Faults {
    Faults {
        loss: 50,
        dup: 20,
        reorder: 30,
    }
}

#[test]
fn sixteen_mebibytes_over_one_stream_arrive_byte_exact() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    transfer(&mut pair, Dir::Bi, (1, 16 * MIB), u64::MAX, 5_000);
    assert_eq!(
        pair.client.streams.len(),
        0,
        "the stream closed on both sides"
    );
    assert_eq!(pair.server.streams.len(), 0);
}

#[test]
fn sixteen_mebibytes_survive_loss_duplication_and_reordering() {
    let mut pair =
        Pair::new(StreamLimits::default(), StreamLimits::default()).with_faults(lossy(), 1);
    transfer(&mut pair, Dir::Bi, (1, 16 * MIB), u64::MAX, 20_000);
    assert!(
        pair.max_fragments[1] < pair.server.fragment_limit / 100,
        "far from the fragmentation limit: {:?}",
        pair.max_fragments
    );
    let retransmitted = pair.log[0]
        .iter()
        .filter(|r| matches!(r, StreamRecord::Data { .. }))
        .count();
    assert!(
        retransmitted > (16 * MIB / 1200) as usize,
        "losses caused resends"
    );
}

#[test]
fn a_thousand_streams_of_sixteen_kibibytes_arrive_byte_exact() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    transfer(&mut pair, Dir::Uni, (1000, 16 * KIB), u64::MAX, 5_000);
    let raised = pair.log[1]
        .iter()
        .filter(|r| matches!(r, StreamRecord::MaxStreams { dir: Dir::Uni, .. }))
        .count();
    assert!(
        raised >= 30,
        "MAX_STREAMS rose as streams closed ({raised} updates)"
    );
}

#[test]
fn a_thousand_streams_survive_loss_duplication_and_reordering() {
    let mut pair =
        Pair::new(StreamLimits::default(), StreamLimits::default()).with_faults(lossy(), 2);
    transfer(&mut pair, Dir::Uni, (1000, 16 * KIB), u64::MAX, 20_000);
    assert!(
        pair.max_fragments[1] < pair.server.fragment_limit / 100,
        "far from the fragmentation limit: {:?}",
        pair.max_fragments
    );
}

/// Any data, cut into a covering partition plus random overlapping extra segments.
/// Original bytes, segments as `(start, end)`, a shuffle seed, and read sizes to interleave.
type Case = (Vec<u8>, Vec<(usize, usize)>, u64, Vec<usize>);

fn segments() -> impl Strategy<Value = Case> {
    proptest::collection::vec(any::<u8>(), 1..600).prop_flat_map(|data| {
        let n = data.len();
        (
            Just(data),
            proptest::collection::vec(0..n, 0..10),
            proptest::collection::vec((0..n, 1..80usize), 0..20),
            any::<u64>(),
            proptest::collection::vec(0..100usize, 1..8),
        )
            .prop_map(move |(data, mut cuts, extra, seed, reads)| {
                cuts.push(0);
                cuts.push(n);
                cuts.sort_unstable();
                cuts.dedup();
                let mut segs: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
                segs.extend(extra.into_iter().map(|(s, l)| (s, (s + l).min(n))));
                (data, segs, seed, reads)
            })
    })
}

proptest! {
    #[test]
    fn the_reassembler_gives_back_the_original_bytes_for_any_interleaving(
        (data, mut segs, seed, reads) in segments()
    ) {
        // Shuffle with the seed (Fisher-Yates over xorshift).
        let mut x = seed | 1;
        for i in (1..segs.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            segs.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let n = data.len();
        let payload = Bytes::from(data.clone());
        let range = payload.as_ptr() as usize..payload.as_ptr() as usize + n;
        let mut recv = Recv::new(RecvWindow::new(1 << 20, 1 << 20, crate::time::Instant::ZERO));
        let room = Room { conn: u64::MAX, other_fragments: 0, fragment_limit: u64::MAX };
        let mut out = Vec::new();
        for (i, &(start, end)) in segs.iter().enumerate() {
            let fragments = recv.fragments();
            let predicted = recv.predicted_fragments(start as u64, end as u64);
            recv.on_data(start as u64, payload.slice(start..end), n, end == n, room).unwrap();
            recv.check_invariants();
            prop_assert_eq!(recv.fragments(), predicted, "the fragment limit's prediction");
            prop_assert!(recv.buffered() as usize + out.len() <= n, "no byte is held twice");
            prop_assert!(recv.fragments() <= fragments + 1, "one segment adds at most one range");
            // Only large pieces keep the payload alive (a read may leave the tail of one).
            for (at, chunk) in recv.chunks().skip(1) {
                if range.contains(&(chunk.as_ptr() as usize)) {
                    prop_assert!(chunk.len() >= MIN_ZERO_COPY && 2 * chunk.len() >= n, "{at}");
                }
            }
            if let Ok(Some(chunk)) = recv.read(reads[i % reads.len()]) {
                out.extend_from_slice(&chunk);
            }
        }
        loop {
            match recv.read(usize::MAX) {
                Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => prop_assert!(false, "reassembly incomplete: {:?}", e),
            }
        }
        prop_assert_eq!(recv.state(), RecvState::DataRead);
        prop_assert_eq!(out, data);
    }
}

#[test]
fn opening_beyond_max_streams_is_refused_until_closed_streams_raise_the_limit() {
    let server_limits = StreamLimits {
        max_concurrent_bidi: 2,
        ..StreamLimits::default()
    };
    let mut pair = Pair::new(StreamLimits::default(), server_limits);
    let a = pair.client.open(Dir::Bi).unwrap();
    let b = pair.client.open(Dir::Bi).unwrap();
    assert_eq!(pair.client.open(Dir::Bi), None);
    for id in [a, b] {
        pair.client.write(id, b"request").unwrap();
        pair.client.finish(id).unwrap();
    }
    pair.round(8);
    assert!(pair.log[0].contains(&StreamRecord::StreamsBlocked {
        dir: Dir::Bi,
        limit: 2
    }));
    while let Some(id) = pair.server.accept(Dir::Bi) {
        assert_eq!(pair.server.read(id, 100).unwrap().unwrap(), &b"request"[..]);
        assert_eq!(pair.server.read(id, 100), Ok(None));
        pair.server.write(id, b"response").unwrap();
        pair.server.finish(id).unwrap();
    }
    pair.round(8);
    for id in [a, b] {
        assert_eq!(
            pair.client.read(id, 100).unwrap().unwrap(),
            &b"response"[..]
        );
        assert_eq!(pair.client.read(id, 100), Ok(None));
    }
    pair.round(8);
    assert_eq!(
        pair.server.streams.len(),
        0,
        "both streams closed on the server"
    );
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        events.contains(&StreamEvent::Available { dir: Dir::Bi }),
        "{events:?}"
    );
    assert_eq!(
        pair.client.open(Dir::Bi),
        Some(StreamId::new(Side::Client, Dir::Bi, 2))
    );
}

#[test]
fn a_reset_stream_is_seen_by_the_peer_as_an_event_and_a_read_error() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &[5; 100]).unwrap();
    pair.round(8);
    pair.client.reset(id, 7).unwrap();
    assert_eq!(
        pair.client.write(id, b"more"),
        Err(WriteError::ClosedStream)
    );
    assert_eq!(pair.client.reset(id, 7), Err(WriteError::ClosedStream));
    pair.round(8);
    let events: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert!(
        events.contains(&StreamEvent::Reset { id, error_code: 7 }),
        "{events:?}"
    );
    assert_eq!(pair.server.read(id, 100), Err(ReadError::Reset(7)));
    assert!(pair.log[0].contains(&StreamRecord::Reset {
        id,
        code: 7,
        final_size: 100
    }));
    assert_eq!(
        pair.server.recv_buffered(),
        0,
        "the reset dropped buffered data"
    );
}

#[test]
fn a_stop_sending_is_seen_by_the_peer_as_an_event_and_a_write_error() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let id = pair.client.open(Dir::Bi).unwrap();
    pair.client.write(id, &[5; 100]).unwrap();
    pair.round(8);
    pair.server.stop(id, 9).unwrap();
    assert_eq!(pair.server.read(id, 10), Err(ReadError::ClosedStream));
    pair.round(8);
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        events.contains(&StreamEvent::Stopped { id, error_code: 9 }),
        "{events:?}"
    );
    assert_eq!(pair.client.write(id, b"more"), Err(WriteError::Stopped(9)));
    assert_eq!(pair.client.finish(id), Err(WriteError::Stopped(9)));
    pair.round(8);
    assert!(pair.log[0]
        .iter()
        .any(|r| matches!(r, StreamRecord::Reset { code: 9, .. })));
    let send = pair.client.streams[&id].send.as_ref().unwrap();
    assert_eq!(
        send.state(),
        SendState::ResetRecvd,
        "the answering reset was acknowledged"
    );
}

#[test]
fn flow_control_stalls_a_writer_whose_peer_does_not_read_until_it_reads() {
    let server_limits = StreamLimits {
        receive_window: 256 * KIB,
        stream_receive_window: 64 * KIB,
        max_stream_receive_window: 64 * KIB,
        ..StreamLimits::default()
    };
    let mut pair = Pair::new(StreamLimits::default(), server_limits);
    let ids: Vec<StreamId> = (0..6)
        .map(|_| pair.client.open(Dir::Uni).unwrap())
        .collect();
    let mut written = vec![0u64; ids.len()];
    let zeros = vec![0u8; MIB as usize];
    for _ in 0..20 {
        for (i, &id) in ids.iter().enumerate() {
            let n = pair.client.write(id, &zeros).unwrap();
            written[i] += n as u64;
        }
        pair.round(64);
        assert!(
            pair.server.recv_buffered() <= 256 * KIB,
            "connection window respected"
        );
        for &id in &ids {
            let buffered = pair
                .server
                .streams
                .get(&id)
                .map_or(0, |s| s.recv.as_ref().unwrap().buffered());
            assert!(buffered <= 64 * KIB, "stream window respected");
        }
    }
    assert_eq!(
        written.iter().sum::<u64>(),
        256 * KIB,
        "the writer stalled at the window"
    );
    assert_eq!(&written[..4], &[64 * KIB; 4]);
    assert!(
        !pair.client.wants_to_send(),
        "nothing left to send while stalled"
    );
    assert_eq!(pair.client.poll_event(), None);
    let blocked = |r: &StreamRecord| matches!(r, StreamRecord::DataBlocked(_));
    assert_eq!(
        pair.log[0].iter().filter(|r| blocked(r)).count(),
        1,
        "one DATA_BLOCKED per limit"
    );
    assert!(pair.log[0].contains(&StreamRecord::StreamDataBlocked {
        id: ids[0],
        limit: 64 * KIB
    }));

    for &id in &ids[..4] {
        while let Ok(Some(chunk)) = pair.server.read(id, usize::MAX) {
            assert!(chunk.iter().all(|&b| b == 0));
        }
    }
    pair.round(64);
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    for &id in &ids {
        assert!(
            events.contains(&StreamEvent::Writable { id }),
            "{id} writable: {events:?}"
        );
    }
    assert!(
        pair.client.write(ids[5], &[0; 1000]).unwrap() > 0,
        "writing resumed"
    );
    assert!(pair.client.write(ids[0], &[0; 1000]).unwrap() > 0);
}

#[test]
fn auto_tuning_grows_the_window_when_reads_keep_up_and_never_beyond_the_maximum() {
    let limits = |max| StreamLimits {
        stream_receive_window: 64 * KIB,
        max_stream_receive_window: max,
        ..StreamLimits::default()
    };
    let mut pair = Pair::new(StreamLimits::default(), limits(MIB));
    pair.server.set_rtt(Duration::from_millis(50));
    let fast = transfer(&mut pair, Dir::Uni, (1, 8 * MIB), u64::MAX, 5_000);
    assert_eq!(fast.max_window, MIB, "grew to the ceiling: {fast:?}");
    assert!(fast.max_buffered <= MIB);

    // A reader taking 16 KiB per 1 ms round consumes half the window in 2 ms: beyond 2 RTT.
    let mut pair = Pair::new(StreamLimits::default(), limits(MIB));
    pair.server.set_rtt(Duration::from_micros(500));
    let slow = transfer(&mut pair, Dir::Uni, (1, MIB), 16 * KIB, 5_000);
    assert_eq!(
        slow.max_window,
        64 * KIB,
        "a slow reader keeps the window: {slow:?}"
    );
    assert!(slow.max_buffered <= 64 * KIB);
}

fn records_of(pair: &mut Pair, packets: usize) -> Vec<StreamId> {
    let mut ids = Vec::new();
    for _ in 0..packets {
        let Some((_, records)) = pair.packet(Side::Client) else {
            break;
        };
        ids.extend(records.iter().filter_map(|r| match r {
            StreamRecord::Data { id, .. } => Some(*id),
            _ => None,
        }));
    }
    ids
}

#[test]
fn a_higher_priority_stream_is_written_before_a_lower_one() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let low = pair.client.open(Dir::Uni).unwrap();
    let high = pair.client.open(Dir::Uni).unwrap();
    pair.client.write(low, &[1; 5000]).unwrap();
    pair.client.write(high, &[2; 5000]).unwrap();
    pair.client.set_priority(high, 10).unwrap();
    let order = records_of(&mut pair, 10);
    let first_low = order.iter().position(|&id| id == low).unwrap();
    assert!(order[..first_low].iter().all(|&id| id == high));
    assert_eq!(order.iter().filter(|&&id| id == high).count(), first_low);
    assert!(
        first_low >= 5,
        "all 5000 bytes of the high stream went first: {order:?}"
    );
}

#[test]
fn streams_of_equal_priority_share_packets_round_robin() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let a = pair.client.open(Dir::Uni).unwrap();
    let b = pair.client.open(Dir::Uni).unwrap();
    pair.client.write(a, &[1; 50_000]).unwrap();
    pair.client.write(b, &[2; 5000]).unwrap();
    assert_eq!(records_of(&mut pair, 4), [a, b, a, b]);
}

#[test]
fn only_replay_safe_streams_go_in_zero_rtt_and_the_server_marks_them_early() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let safe = pair.client.open(Dir::Uni).unwrap();
    let unsafe_ = pair.client.open(Dir::Uni).unwrap();
    pair.client.set_replay_safe(safe, true);
    pair.client.write(unsafe_, b"POST /pay").unwrap();
    pair.client.write(safe, b"GET /index").unwrap();
    assert!(pair.client.wants_to_send_early());
    let mut buf = vec![0u8; 1200];
    let mut w = Writer::new(&mut buf);
    let mut sent = Vec::new();
    let n = pair.client.write_stream_frames(&mut w, &mut sent, true);
    assert_eq!(n, 10);
    assert!(sent
        .iter()
        .all(|r| matches!(r, StreamRecord::Data { id, .. } if *id == safe)));
    assert!(!pair.client.wants_to_send_early());
    let len = w.position();
    let early = Bytes::copy_from_slice(&buf[..len]);
    pair.deliver(Side::Server, &early, true).unwrap();
    pair.round(8);
    assert!(pair.server.received_early(safe));
    assert!(!pair.server.received_early(unsafe_));
    assert_eq!(
        pair.server.read(unsafe_, 100).unwrap().unwrap(),
        &b"POST /pay"[..]
    );
}

#[test]
fn a_lost_frame_is_resent_only_where_it_was_not_acknowledged() {
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let id = pair.client.open(Dir::Uni).unwrap();
    pair.client.write(id, &pattern(id.0, 0, 3000)).unwrap();
    pair.client.finish(id).unwrap();
    let (_, first) = pair.packet(Side::Client).unwrap();
    let (second_packet, second) = pair.packet(Side::Client).unwrap();
    let (_, third) = pair.packet(Side::Client).unwrap();
    assert!(pair.packet(Side::Client).is_none());
    for r in second.clone() {
        pair.client.on_acked(r);
    }
    for r in first.iter().chain(&second).chain(&third).cloned() {
        pair.client.on_lost(r);
    }
    let (_, again) = pair.packet(Side::Client).unwrap();
    assert_eq!(
        again, first,
        "the first range again, the acknowledged one not"
    );
    let (_, again) = pair.packet(Side::Client).unwrap();
    assert_eq!(again, third, "the last range with its FIN");
    assert!(pair.packet(Side::Client).is_none());
    pair.deliver(Side::Server, &second_packet, false).unwrap();
    let send = pair.client.streams[&id].send.as_ref().unwrap();
    assert_eq!(send.unacked(), 3000);
    assert_eq!(byte_at(id.0, 0), pattern(id.0, 0, 1)[0]);
}
