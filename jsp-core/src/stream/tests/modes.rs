//! Delivery modes and the message API between two `Streams`, with the fate of every packet
//! chosen by the test: abandonment on loss and on expiry, STREAM_SKIP, the receiver's jump and
//! report, flow control staying in step, and hostile STREAM_SKIP frames.

use bytes::Bytes;

use super::harness::Pair;
use crate::error::TransportErrorCode;
use crate::frame::{Dir, Frame, StreamId};
use crate::side::Side;
use crate::stream::{
    Delivery, DeliveryMode, ReadError, Skipped, StreamEvent, StreamLimits, StreamRecord, WriteError,
};
use crate::time::{Duration, Instant};

fn pair() -> Pair {
    let mut p = Pair::new(StreamLimits::default(), StreamLimits::default());
    p.client.set_rtt(Duration::from_millis(20));
    p.server.set_rtt(Duration::from_millis(20));
    p
}

fn message(i: u8, len: usize) -> Bytes {
    Bytes::from(vec![i; len])
}

/// One packet from the client: delivered (and acknowledged) or lost. Returns its records.
fn send(p: &mut Pair, deliver: bool) -> Vec<StreamRecord> {
    let (packet, records) = p
        .packet(Side::Client)
        .expect("the client has something to send");
    if deliver {
        p.deliver(Side::Server, &packet, false)
            .expect("frames accepted");
        for r in records.iter().cloned() {
            p.client.on_acked(r);
        }
    } else {
        for r in records.iter().cloned() {
            p.client.on_lost(r);
        }
    }
    records
}

/// Everything the server can read from `id` now.
fn drain(p: &mut Pair, id: StreamId) -> Vec<Result<Option<Delivery>, ReadError>> {
    let mut out = Vec::new();
    loop {
        let r = p.server.recv_message(id);
        let stop = !matches!(r, Ok(Some(_)));
        out.push(r);
        if stop {
            return out;
        }
    }
}

fn skip_of(records: &[StreamRecord]) -> Option<(u64, u64)> {
    records.iter().find_map(|r| match *r {
        StreamRecord::Skip {
            offset, messages, ..
        } => Some((offset, messages)),
        _ => None,
    })
}

#[test]
fn a_lost_best_effort_message_is_skipped_not_retransmitted() {
    let mut p = pair();
    let id = p
        .client
        .open_with(Dir::Uni, DeliveryMode::BestEffort)
        .unwrap();
    p.client.send_message(id, message(1, 100)).unwrap();
    send(&mut p, false);
    p.client.send_message(id, message(2, 100)).unwrap();
    let records = send(&mut p, true);
    // The second packet carries the skip over the first message (102 bytes with its prefix),
    // and the second message; no byte of the first was sent again.
    assert_eq!(skip_of(&records), Some((102, 1)));
    assert!(records
        .iter()
        .all(|r| !matches!(r, StreamRecord::Data { offset: 0, .. })));
    let got = drain(&mut p, id);
    assert_eq!(
        got[..2],
        [
            Ok(Some(Delivery::Skipped(Skipped {
                first: 0,
                count: 1,
                bytes: 102
            }))),
            Ok(Some(Delivery::Message(message(2, 100)))),
        ]
    );
    assert_eq!(got[2], Err(ReadError::Blocked));
    let stats = p.client.send_stats(id).unwrap();
    println!("best-effort: {stats:?}");
    assert_eq!(stats.retransmitted_bytes, 0);
    assert_eq!((stats.abandoned_messages, stats.abandoned_bytes), (1, 102));
    // The skip would go once more in the next packet, but its acknowledgement came first.
    assert!(p.packet(Side::Client).is_none(), "nothing is owed");

    // Unacknowledged, it goes again in the next packet, and the copy changes nothing.
    p.client.send_message(id, message(3, 100)).unwrap();
    send(&mut p, false);
    let (packet, records) = p.packet(Side::Client).unwrap();
    assert_eq!(skip_of(&records), Some((306, 3)));
    p.deliver(Side::Server, &packet, false).unwrap();
    let (again, records) = p.packet(Side::Client).unwrap();
    assert_eq!(
        records,
        [StreamRecord::Skip {
            id,
            offset: 306,
            messages: 3
        }]
    );
    p.deliver(Side::Server, &again, false).unwrap();
    assert_eq!(
        drain(&mut p, id)[..2],
        [
            Ok(Some(Delivery::Skipped(Skipped {
                first: 2,
                count: 1,
                bytes: 102
            }))),
            Err(ReadError::Blocked)
        ]
    );
}

#[test]
fn a_partially_reliable_message_is_retransmitted_within_its_ttl_and_abandoned_after() {
    let mut p = pair();
    let ttl = Duration::from_millis(100);
    let id = p
        .client
        .open_with(Dir::Uni, DeliveryMode::PartiallyReliable { ttl })
        .unwrap();
    p.client.send_message(id, message(1, 50)).unwrap();
    send(&mut p, false);
    // Within the TTL (less the one-way delay of 10 ms): sent again.
    p.client.set_now(Instant::from_millis(50));
    let records = send(&mut p, true);
    assert!(matches!(
        records[..],
        [StreamRecord::Data {
            offset: 0,
            len: 51,
            ..
        }]
    ));
    assert_eq!(
        drain(&mut p, id)[0],
        Ok(Some(Delivery::Message(message(1, 50))))
    );
    // The next one is lost twice; the second loss comes too late to send it again.
    p.client.send_message(id, message(2, 50)).unwrap();
    send(&mut p, false);
    p.client.set_now(Instant::from_millis(100));
    send(&mut p, false);
    // Its last-chance check, 1 ms (the guard) before it expires, finds it already queued
    // again: nothing more to do.
    assert_eq!(p.client.next_expiry(), Some(Instant::from_millis(139)));
    p.client.set_now(Instant::from_millis(139));
    assert_eq!(p.client.next_expiry(), Some(Instant::from_millis(140)));
    p.client.set_now(Instant::from_millis(145));
    assert_eq!(p.client.next_expiry(), None);
    let records = send(&mut p, true);
    assert_eq!(skip_of(&records), Some((102, 2)));
    assert_eq!(
        drain(&mut p, id)[0],
        Ok(Some(Delivery::Skipped(Skipped {
            first: 1,
            count: 1,
            bytes: 51
        })))
    );
    let stats = p.client.send_stats(id).unwrap();
    println!("partially reliable: {stats:?}");
    assert_eq!(stats.retransmitted_bytes, 51 + 51);
    assert_eq!(stats.abandoned_messages, 1);
    assert_eq!(stats.last_chance_messages, 0);
}

#[test]
fn an_unacknowledged_message_is_sent_again_once_at_its_last_chance_even_if_not_declared_lost() {
    let mut p = pair();
    let ttl = Duration::from_millis(100);
    let id = p
        .client
        .open_with(Dir::Uni, DeliveryMode::PartiallyReliable { ttl })
        .unwrap();
    p.client.send_message(id, message(1, 50)).unwrap();
    // Sent; neither acknowledged nor declared lost (its ACK, or the packets after it, lost).
    let (_, records) = p.packet(Side::Client).unwrap();
    assert_eq!(records.len(), 1);
    // Deadline 100 ms, one-way 10 ms, guard 1 ms: its last chance is at 89 ms.
    assert_eq!(p.client.next_expiry(), Some(Instant::from_millis(89)));
    p.client.set_now(Instant::from_millis(88));
    assert!(p.packet(Side::Client).is_none(), "not yet");
    p.client.set_now(Instant::from_millis(89));
    let records = send(&mut p, true);
    assert!(matches!(
        records[..],
        [StreamRecord::Data {
            offset: 0,
            len: 51,
            ..
        }]
    ));
    assert_eq!(
        drain(&mut p, id)[0],
        Ok(Some(Delivery::Message(message(1, 50))))
    );
    let stats = p.client.send_stats(id).unwrap();
    println!("last chance: {stats:?}");
    assert_eq!(stats.last_chance_messages, 1);
    assert_eq!(stats.retransmitted_bytes, 51);
    assert_eq!(p.client.last_chance_bytes(), 51);
}

#[test]
fn an_expired_message_is_dropped_before_it_is_ever_sent() {
    let mut p = pair();
    let ttl = Duration::from_millis(30);
    let id = p
        .client
        .open_with(Dir::Bi, DeliveryMode::PartiallyReliable { ttl })
        .unwrap();
    p.client.send_message(id, message(7, 10)).unwrap();
    p.client.send_message(id, message(8, 10)).unwrap();
    assert_eq!(p.client.next_expiry(), Some(Instant::from_millis(20)));
    // The time passes before any packet goes out (congestion, a blocked pacer): both expire.
    p.client.set_now(Instant::from_millis(20));
    assert_eq!(p.client.next_expiry(), None);
    let records = send(&mut p, true);
    assert_eq!(records.len(), 1, "only the skip: {records:?}");
    assert_eq!(skip_of(&records), Some((22, 2)));
    p.client.send_message(id, message(9, 10)).unwrap();
    send(&mut p, true);
    let got = drain(&mut p, id);
    assert_eq!(
        got[..2],
        [
            Ok(Some(Delivery::Skipped(Skipped {
                first: 0,
                count: 2,
                bytes: 22
            }))),
            Ok(Some(Delivery::Message(message(9, 10)))),
        ]
    );
}

#[test]
fn a_partly_received_message_is_never_delivered() {
    let mut p = pair();
    p.mtu = 300;
    let id = p
        .client
        .open_with(Dir::Uni, DeliveryMode::BestEffort)
        .unwrap();
    p.client.send_message(id, message(1, 800)).unwrap();
    p.client.send_message(id, message(2, 20)).unwrap();
    send(&mut p, true); // the head of message 1
    send(&mut p, false); // its middle: message 1 is abandoned, its tail never sent
    send(&mut p, true); // the skip and message 2
    let records = send_all(&mut p);
    assert!(records.is_empty() || skip_of(&records).is_some());
    let got = drain(&mut p, id);
    assert_eq!(
        got[..2],
        [
            Ok(Some(Delivery::Skipped(Skipped {
                first: 0,
                count: 1,
                bytes: 802
            }))),
            Ok(Some(Delivery::Message(message(2, 20)))),
        ]
    );
    assert_eq!(p.server.recv_buffered(), 0);
}

/// Delivers whatever the client still has to send; returns the records.
fn send_all(p: &mut Pair) -> Vec<StreamRecord> {
    let mut all = Vec::new();
    while let Some((packet, records)) = p.packet(Side::Client) {
        p.deliver(Side::Server, &packet, false)
            .expect("frames accepted");
        for r in records.iter().cloned() {
            p.client.on_acked(r);
        }
        all.extend(records);
    }
    all
}

#[test]
fn messages_keep_their_boundaries_on_a_reliable_stream_and_bytes_are_refused_elsewhere() {
    let mut p = pair();
    let id = p.client.open(Dir::Bi).unwrap();
    for (i, len) in [0usize, 1, 63, 64, 16_383, 16_384, 3000]
        .into_iter()
        .enumerate()
    {
        p.client.send_message(id, message(i as u8, len)).unwrap();
    }
    send_all(&mut p);
    let got = drain(&mut p, id);
    let lens: Vec<usize> = got
        .iter()
        .filter_map(|r| match r {
            Ok(Some(Delivery::Message(m))) => Some(m.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lens, [0, 1, 63, 64, 16_383, 16_384, 3000]);
    assert_eq!(p.client.delivery_mode(id), Some(DeliveryMode::Reliable));

    let be = p
        .client
        .open_with(Dir::Uni, DeliveryMode::BestEffort)
        .unwrap();
    assert_eq!(p.client.write(be, b"x"), Err(WriteError::MessagesOnly));
    let window = StreamLimits::default().stream_receive_window as usize;
    assert_eq!(
        p.client.send_message(be, message(0, window)),
        Err(WriteError::MessageTooLarge)
    );
}

#[test]
fn best_effort_under_heavy_loss_keeps_flow_control_in_step() {
    // Small windows: the transfer is many windows long, so it only completes if skipped bytes
    // are released on both sides.
    let limits = StreamLimits {
        receive_window: 8 << 10,
        stream_receive_window: 4 << 10,
        max_stream_receive_window: 4 << 10,
        ..StreamLimits::default()
    };
    let mut p = Pair::new(limits.clone(), limits);
    let id = p
        .client
        .open_with(Dir::Uni, DeliveryMode::BestEffort)
        .unwrap();
    p.client.finish(id).ok();
    let id2 = p
        .client
        .open_with(Dir::Uni, DeliveryMode::BestEffort)
        .unwrap();
    let (total, mut sent, mut delivered, mut skipped) = (400u64, 0u64, 0u64, 0u64);
    let mut rng = 7u64;
    let (mut rounds, mut ended) = (0, false);
    while delivered + skipped < total {
        rounds += 1;
        assert!(
            rounds < 10_000,
            "stalled: {delivered} + {skipped} of {sent}"
        );
        while sent < total && p.client.send_message(id2, message(sent as u8, 150)).is_ok() {
            sent += 1;
        }
        if sent == total {
            p.client.finish(id2).ok();
        }
        if let Some((packet, records)) = p.packet(Side::Client) {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let deliver = !(rng >> 33).is_multiple_of(3);
            if deliver {
                p.deliver(Side::Server, &packet, false).unwrap();
            }
            for r in records {
                if deliver {
                    p.client.on_acked(r);
                } else {
                    p.client.on_lost(r);
                }
            }
        }
        if p.server.accept(Dir::Uni).is_some() {
            continue;
        }
        for r in drain(&mut p, id2) {
            match r {
                Ok(Some(Delivery::Message(m))) => {
                    assert_eq!(m, message((delivered + skipped) as u8, 150));
                    delivered += 1;
                }
                Ok(Some(Delivery::Skipped(s))) => {
                    assert_eq!(s.first, delivered + skipped);
                    assert_eq!(s.bytes, 152 * s.count);
                    skipped += s.count;
                }
                Ok(None) => ended = true,
                _ => {}
            }
        }
        while let Some((packet, records)) = p.packet(Side::Server) {
            p.deliver(Side::Client, &packet, false).unwrap();
            for r in records {
                p.server.on_acked(r);
            }
        }
    }
    println!("best-effort over a 1-in-3 loss: {delivered} delivered, {skipped} skipped of {total}");
    assert!(skipped > 50 && delivered > 50);
    // The FIN follows the last message; the stream closes on both sides.
    send_all(&mut p);
    ended |= p.server.recv_message(id2) == Ok(None);
    assert!(ended, "the end of the stream was read");
    let finished = std::iter::from_fn(|| p.client.poll_event())
        .any(|e| e == StreamEvent::Finished { id: id2 });
    assert!(finished);
}

#[test]
fn hostile_stream_skips_are_refused_with_the_right_error() {
    let mut p = pair();
    let ours = p.server.open(Dir::Uni).unwrap();
    let theirs = StreamId::new(Side::Client, Dir::Uni, 0);
    let cases = [
        (ours, 10, 1, TransportErrorCode::STREAM_STATE_ERROR),
        (theirs, 100 << 20, 1, TransportErrorCode::FLOW_CONTROL_ERROR),
    ];
    for (id, offset, messages, code) in cases {
        let frame = Frame::StreamSkip {
            id,
            offset,
            messages,
        };
        let err = p
            .server
            .on_frame(&frame, &Bytes::new(), false, Instant::ZERO)
            .unwrap_err();
        assert_eq!(err.code, code, "{frame:?}");
    }
    // Beyond the final size.
    let fin = Frame::Stream {
        id: theirs,
        offset: 0,
        fin: true,
        data: b"\x01a",
    };
    p.server
        .on_frame(&fin, &Bytes::new(), false, Instant::ZERO)
        .unwrap();
    let skip = Frame::StreamSkip {
        id: theirs,
        offset: 3,
        messages: 1,
    };
    let err = p
        .server
        .on_frame(&skip, &Bytes::new(), false, Instant::ZERO)
        .unwrap_err();
    assert_eq!(err.code, TransportErrorCode::FINAL_SIZE_ERROR);
    // A message announcing more than the window can hold is a read error, not a hang.
    let big = StreamId::new(Side::Client, Dir::Uni, 1);
    let frame = Frame::Stream {
        id: big,
        offset: 0,
        fin: false,
        data: &[0x80, 0x40, 0, 0],
    };
    p.server
        .on_frame(&frame, &Bytes::new(), false, Instant::ZERO)
        .unwrap();
    assert_eq!(
        p.server.recv_message(big),
        Err(ReadError::MessageTooLarge(0x40_0000))
    );
}

#[test]
fn a_flood_of_stream_skips_is_bounded_and_still_counted_exactly() {
    let mut p = pair();
    let id = StreamId::new(Side::Client, Dir::Uni, 0);
    // 1000 targets, one per 10-byte message, none of the data: only the highest 64 are held.
    for k in 1..=1000u64 {
        let frame = Frame::StreamSkip {
            id,
            offset: 10 * k,
            messages: k,
        };
        p.server
            .on_frame(&frame, &Bytes::new(), false, Instant::ZERO)
            .unwrap();
    }
    let (mut counted, mut jumps) = (0, 0);
    loop {
        match p.server.recv_message(id) {
            Ok(Some(Delivery::Skipped(s))) => {
                assert_eq!((s.first, s.bytes), (counted, 10 * s.count));
                counted += s.count;
                jumps += 1;
            }
            Err(ReadError::Blocked) => break,
            other => panic!("{other:?}"),
        }
    }
    println!("1000 skip targets: {jumps} jumps counted {counted} messages");
    assert_eq!(
        (counted, jumps),
        (1000, super::super::recv::MAX_SKIP_TARGETS)
    );
    assert_eq!(p.server.recv_buffered(), 0);
}

#[test]
fn a_reader_blocked_on_a_partial_message_is_woken_when_the_rest_arrives() {
    let mut p = pair();
    let id = p.client.open(Dir::Uni).unwrap();
    p.client.send_message(id, message(7, 3000)).unwrap();
    let (first, first_records) = p.packet(Side::Client).unwrap();
    p.deliver(Side::Server, &first, false).unwrap();
    for r in first_records {
        p.client.on_acked(r);
    }
    let events: Vec<StreamEvent> = std::iter::from_fn(|| p.server.poll_event()).collect();
    assert!(events.contains(&StreamEvent::Readable { id }));
    // Part of the message is there: the reader is told to wait.
    assert_eq!(p.server.recv_message(id), Err(ReadError::Blocked));
    while let Some((packet, records)) = p.packet(Side::Client) {
        p.deliver(Side::Server, &packet, false).unwrap();
        for r in records {
            p.client.on_acked(r);
        }
    }
    let events: Vec<StreamEvent> = std::iter::from_fn(|| p.server.poll_event()).collect();
    assert!(
        events.contains(&StreamEvent::Readable { id }),
        "the waiting reader is signalled again: {events:?}"
    );
    assert_eq!(
        p.server.recv_message(id),
        Ok(Some(Delivery::Message(message(7, 3000))))
    );
}
