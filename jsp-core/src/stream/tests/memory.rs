//! Memory held for received data: small pieces do not keep packet buffers alive, adjacent data
//! merges, and a peer cutting its data into too many out-of-order ranges is closed before the
//! count passes the limit (DESIGN rules 3 and 5).

use std::ops::Range;

use bytes::Bytes;

use super::super::recv::MERGE_LIMIT;
use super::super::{Dir, StreamId, StreamLimits, Streams};
use super::harness::{check_fragments, pattern, Pair};
use super::MIB;
use crate::coding::Writer;
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{self, Frame};
use crate::side::Side;
use crate::time::Instant;

const PACKET: usize = 1200;

fn client_bi(index: u64) -> StreamId {
    StreamId::new(Side::Client, Dir::Bi, index)
}

/// A packet payload holding `frames`, padded to `PACKET` bytes.
fn payload(frames: &[Frame<'_>]) -> Bytes {
    let mut buf = vec![0u8; PACKET];
    let mut w = Writer::new(&mut buf);
    for f in frames {
        f.encode(&mut w).expect("the frames fit a packet");
    }
    Bytes::from(buf)
}

/// Feeds every frame of `payload` to `s`, checking the fragment accounting after each.
fn feed(s: &mut Streams, payload: &Bytes) -> Result<(), TransportError> {
    for f in frame::iter(payload) {
        s.on_frame(&f.expect("frames decode"), payload, false, Instant::ZERO)?;
        check_fragments(s);
    }
    Ok(())
}

/// Chunk entries held across all streams.
fn chunks_held(s: &Streams) -> usize {
    s.streams
        .values()
        .filter_map(|stream| stream.recv.as_ref())
        .map(|recv| recv.chunk_count())
        .sum()
}

/// Whether any chunk held by `s` points into `range`.
fn points_into(s: &Streams, range: &Range<usize>) -> bool {
    s.streams
        .values()
        .filter_map(|stream| stream.recv.as_ref())
        .flat_map(|recv| recv.chunks())
        .any(|(_, chunk)| range.contains(&(chunk.as_ptr() as usize)))
}

fn range_of(b: &Bytes) -> Range<usize> {
    b.as_ptr() as usize..b.as_ptr() as usize + b.len()
}

/// A hostile peer: 1-byte STREAM frames at every other offset (1, 3, 5, …), round-robin over
/// `streams` streams, packed into full packets. Returns the error that closed the connection
/// and how many frames were accepted before it.
fn one_byte_frames_into_holes(s: &mut Streams, streams: u64) -> (TransportError, u64) {
    let byte = [0x55u8];
    let mut accepted = 0u64;
    let mut next = 0u64;
    loop {
        let mut frames = Vec::new();
        let mut len = 0;
        while len + 12 < PACKET {
            let f = Frame::Stream {
                id: client_bi(next % streams),
                offset: 2 * (next / streams) + 1,
                fin: false,
                data: &byte,
            };
            len += f.encoded_len();
            frames.push(f);
            next += 1;
        }
        let packet = payload(&frames);
        for f in frame::iter(&packet) {
            let f = f.expect("frames decode");
            if let Err(e) = s.on_frame(&f, &packet, false, Instant::ZERO) {
                check_fragments(s);
                return (e, accepted);
            }
            accepted += u64::from(matches!(f, Frame::Stream { .. }));
            assert!(s.fragments <= s.fragment_limit);
            assert!(
                chunks_held(s) as u64 <= s.fragment_limit,
                "never more chunks than the limit"
            );
        }
        check_fragments(s);
        assert!(next < 10_000_000, "the peer was never stopped");
    }
}

#[test]
fn one_byte_frames_into_holes_close_the_connection_at_the_fragment_limit() {
    let mut server = Streams::new(Side::Server, StreamLimits::default());
    let limit = server.fragment_limit;
    assert_eq!(
        limit,
        32 * 1024,
        "max(1024, 32 MiB / 1024) for the default windows"
    );
    let (err, accepted) = one_byte_frames_into_holes(&mut server, 100);
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    assert!(
        err.reason.starts_with("stream data too fragmented"),
        "{}",
        err.reason
    );
    assert_eq!(err.frame_type.map(frame::ty::is_stream), Some(true));
    assert_eq!(accepted, limit, "every frame made a range, up to the limit");
    assert_eq!(server.fragments, limit);
    assert_eq!(chunks_held(&server) as u64, limit);
    assert_eq!(server.recv_buffered(), limit, "1-byte chunks, copied");

    // The limit is configurable.
    let limits = StreamLimits {
        max_fragments: Some(10),
        ..StreamLimits::default()
    };
    let mut server = Streams::new(Side::Server, limits);
    let (err, accepted) = one_byte_frames_into_holes(&mut server, 3);
    assert_eq!(err.code, TransportErrorCode::PROTOCOL_VIOLATION);
    assert_eq!(accepted, 10);
}

#[test]
fn small_frames_are_copied_so_the_packet_buffer_is_freed() {
    let mut server = Streams::new(Side::Server, StreamLimits::default());
    let (a, b) = (client_bi(0), client_bi(1));
    let small = pattern(0, 10, 100);
    let tiny = pattern(1, 0, 50);
    let packet = payload(&[
        Frame::Stream {
            id: a,
            offset: 10,
            fin: false,
            data: &small,
        },
        Frame::Stream {
            id: b,
            offset: 0,
            fin: false,
            data: &tiny,
        },
    ]);
    let range = range_of(&packet);
    feed(&mut server, &packet).unwrap();
    assert_eq!(server.recv_buffered(), 150);
    assert!(!points_into(&server, &range), "small chunks were copied");
    assert!(packet.is_unique(), "nothing else holds the packet buffer");
    drop(packet);

    // A full-size frame is kept as a slice of its packet; in a packet shared with a small
    // frame, only the large one is.
    let full = pattern(0, 200, PACKET - 20);
    let full_packet = payload(&[Frame::Stream {
        id: a,
        offset: 200,
        fin: false,
        data: &full,
    }]);
    feed(&mut server, &full_packet).unwrap();
    assert!(points_into(&server, &range_of(&full_packet)), "zero-copy");
    assert!(!full_packet.is_unique());

    let large = pattern(1, 1000, 700);
    let side = pattern(0, 110, 40);
    let mixed = payload(&[
        Frame::Stream {
            id: b,
            offset: 1000,
            fin: false,
            data: &large,
        },
        Frame::Stream {
            id: a,
            offset: 110,
            fin: false,
            data: &side,
        },
    ]);
    feed(&mut server, &mixed).unwrap();
    let mixed_range = range_of(&mixed);
    let recv_a = server.streams[&a].recv.as_ref().unwrap();
    let copied: Vec<_> = recv_a.chunks().map(|(at, c)| (at, c.len())).collect();
    assert_eq!(
        copied,
        [(10, 140), (200, PACKET - 20)],
        "the 40 bytes merged with the 100 before them"
    );
    assert!(recv_a
        .chunks()
        .all(|(at, c)| (at == 200) == range_of(&full_packet).contains(&(c.as_ptr() as usize))));
    let recv_b = server.streams[&b].recv.as_ref().unwrap();
    assert!(recv_b
        .chunks()
        .any(|(at, c)| at == 1000 && mixed_range.contains(&(c.as_ptr() as usize))));

    // The bytes are intact.
    let first = pattern(0, 0, 10);
    feed(
        &mut server,
        &payload(&[Frame::Stream {
            id: a,
            offset: 0,
            fin: false,
            data: &first,
        }]),
    )
    .unwrap();
    let mut got = Vec::new();
    while let Ok(Some(chunk)) = server.read(a, usize::MAX) {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, pattern(0, 0, 150));
    assert_eq!(server.fragments, 2, "200.. on a, 1000.. on b");
}

#[test]
fn adjacent_small_frames_merge_into_one_range_of_few_chunks() {
    let mut server = Streams::new(Side::Server, StreamLimits::default());
    let a = client_bi(0);
    let data = pattern(0, 0, 4000);
    // After a hole at 0: 1-byte frames upward from 1, downward from 3999, and duplicates.
    let one = |offset: usize| {
        payload(&[Frame::Stream {
            id: a,
            offset: offset as u64,
            fin: false,
            data: &data[offset..offset + 1],
        }])
    };
    for offset in (1..2000).chain(500..600) {
        feed(&mut server, &one(offset)).unwrap();
        assert_eq!(server.fragments, 1, "one range, growing upward");
    }
    for offset in (2001..4000).rev() {
        feed(&mut server, &one(offset)).unwrap();
        assert_eq!(server.fragments, 2, "a second range, growing downward");
    }
    feed(&mut server, &one(2000)).unwrap();
    assert_eq!(server.fragments, 1, "the two ranges joined");
    let held = chunks_held(&server);
    assert!(
        held <= 2 * 4000 / MERGE_LIMIT + 1,
        "{held} chunks for 3999 bytes"
    );
    feed(&mut server, &one(0)).unwrap();
    assert_eq!(server.fragments, 0, "the hole is filled");
    let mut got = Vec::new();
    while let Ok(Some(chunk)) = server.read(a, usize::MAX) {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, data);
}

#[test]
fn stopping_or_resetting_a_stream_gives_its_ranges_back() {
    let mut server = Streams::new(Side::Server, StreamLimits::default());
    let (a, b) = (client_bi(0), client_bi(1));
    let byte = [1u8];
    for (id, offset) in [(a, 1), (a, 3), (b, 1), (b, 5), (b, 9)] {
        let f = Frame::Stream {
            id,
            offset,
            fin: false,
            data: &byte,
        };
        feed(&mut server, &payload(&[f])).unwrap();
    }
    assert_eq!(server.fragments, 5);
    server.stop(a, 0).unwrap();
    check_fragments(&server);
    assert_eq!(server.fragments, 3);
    let reset = Frame::ResetStream {
        id: b,
        error_code: 0,
        final_size: 10,
    };
    feed(&mut server, &payload(&[reset])).unwrap();
    assert_eq!(server.fragments, 0);
}

/// The client sends 8 streams of 2 MiB in full-size packets; the network shuffles each batch of
/// 1024 packets and holds 5% back until after the next batch (nothing is lost, so reordering is
/// all the server sees). The server reads everything as it becomes readable.
#[test]
fn shuffled_and_late_full_size_frames_stay_far_below_the_fragment_limit() {
    const SIZE: u64 = 2 * MIB;
    let mut pair = Pair::new(StreamLimits::default(), StreamLimits::default());
    let ids: Vec<StreamId> = (0..8)
        .map(|_| pair.client.open(Dir::Uni).unwrap())
        .collect();
    let mut written = [0u64; 8];
    let mut finished = [false; 8];
    let mut read = [0u64; 8];
    let mut late: Vec<Bytes> = Vec::new();
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut roll = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut delivered = 0usize;
    for _ in 0..10_000 {
        for (i, &id) in ids.iter().enumerate() {
            while written[i] < SIZE {
                let len = (SIZE - written[i]).min(64 << 10) as usize;
                let n = pair
                    .client
                    .write(id, &pattern(id.0, written[i], len))
                    .unwrap();
                written[i] += n as u64;
                if n < len {
                    break;
                }
            }
            if written[i] == SIZE && !finished[i] {
                pair.client.finish(id).unwrap();
                finished[i] = true;
            }
        }
        let mut batch = std::mem::take(&mut late);
        let mut fresh = 0;
        while batch.len() < 1024 {
            let Some((packet, records)) = pair.packet(Side::Client) else {
                break;
            };
            for r in records {
                pair.client.on_acked(r);
            }
            batch.push(packet);
            fresh += 1;
        }
        for i in (1..batch.len()).rev() {
            batch.swap(i, (roll() % (i as u64 + 1)) as usize);
        }
        for packet in batch {
            if fresh > 0 && roll() % 100 < 5 {
                late.push(packet);
            } else {
                pair.deliver(Side::Server, &packet, false).unwrap();
                delivered += 1;
            }
        }
        for (i, &id) in ids.iter().enumerate() {
            loop {
                match pair.server.read(id, usize::MAX) {
                    Ok(Some(chunk)) => {
                        assert_eq!(&chunk[..], &pattern(id.0, read[i], chunk.len())[..]);
                        read[i] += chunk.len() as u64;
                    }
                    Ok(None) => {
                        assert_eq!(read[i], SIZE);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        pair.flush(Side::Server, 64);
        while pair.client.poll_event().is_some() {}
        if read.iter().all(|&r| r == SIZE) && late.is_empty() {
            let limit = pair.server.fragment_limit;
            let most = pair.max_fragments[1];
            assert!(most > 50, "the shuffle did reorder: {most}");
            assert!(most < limit / 10, "{most} ranges at most, against {limit}");
            assert!(delivered > (8 * SIZE / 1200) as usize);
            return;
        }
    }
    panic!("transfer stalled: {read:?}");
}

#[test]
fn read_into_reports_data_then_the_end_on_the_next_call() {
    use crate::frame::{Dir, Frame, StreamId};
    use crate::side::Side;
    use crate::stream::{StreamLimits, Streams};
    let mut server = Streams::new(Side::Server, StreamLimits::default());
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    let payload = bytes::Bytes::from_static(b"hello");
    let frame = Frame::Stream {
        id,
        offset: 0,
        fin: true,
        data: &payload[..],
    };
    server
        .on_frame(&frame, &payload, false, crate::time::Instant::ZERO)
        .unwrap();
    let got = server.accept(Dir::Uni).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(server.read_into(got, &mut buf), Ok(Some(5)));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(
        server.read_into(got, &mut buf),
        Ok(None),
        "the end comes on the next call"
    );
}
