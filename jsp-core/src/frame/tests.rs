//! Frame codec tests: round trips over every variant, hostile input, and the malformed-input
//! table.

use super::*;
use crate::coding::{BufferTooSmall, Writer, VARINT_MAX};
use crate::error::{TransportError, TransportErrorCode};
use crate::range_set::RangeSet;
use proptest::prelude::*;

/// A frame whose byte fields are empty, plus the bytes to put there (or an encoded ACK), so a
/// strategy can own what a `Frame<'_>` borrows.
#[derive(Clone, Debug)]
enum Spec {
    Plain(Frame<'static>, Vec<u8>),
    Ack(Vec<u8>),
}

impl Spec {
    fn frame(&self) -> Frame<'_> {
        let (template, bytes) = match self {
            Spec::Ack(bytes) => return decode_one(bytes).unwrap(),
            Spec::Plain(template, bytes) => (template.clone(), bytes.as_slice()),
        };
        match template {
            Frame::Crypto { offset, .. } => Frame::Crypto {
                offset,
                data: bytes,
            },
            Frame::NewToken { .. } => Frame::NewToken { token: bytes },
            Frame::Stream {
                id, offset, fin, ..
            } => Frame::Stream {
                id,
                offset,
                fin,
                data: bytes,
            },
            Frame::Close(close) => Frame::Close(Close {
                reason: bytes,
                ..close
            }),
            Frame::SessionTicket { .. } => Frame::SessionTicket { data: bytes },
            Frame::FecRepair {
                block,
                sources,
                symbol,
                ..
            } => Frame::FecRepair {
                block,
                sources,
                symbol,
                data: bytes,
            },
            Frame::Datagram { .. } => Frame::Datagram { data: bytes },
            other => other,
        }
    }
}

fn decode_one(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    Frame::decode(&mut Reader::new(bytes))
}

fn encode_all(frames: &[Frame<'_>]) -> Vec<u8> {
    let len = frames.iter().map(Frame::encoded_len).sum();
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    for f in frames {
        f.encode(&mut w).unwrap();
    }
    assert_eq!(w.remaining(), 0, "encoded_len disagrees with encode");
    buf
}

/// Varints with their length boundaries well represented.
fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        0u64..(1 << 14),
        0u64..(1 << 30),
        0u64..=VARINT_MAX,
        Just(VARINT_MAX),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn dir() -> impl Strategy<Value = Dir> {
    prop_oneof![Just(Dir::Bi), Just(Dir::Uni)]
}

fn plain(f: Frame<'static>) -> Spec {
    Spec::Plain(f, Vec::new())
}

fn ack_spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(0u64..300, 1..120),
        prop_oneof![Just(0u64), 0..VARINT_MAX - 400],
        varint(),
        proptest::option::of((varint(), varint(), varint())),
        1usize..64,
    )
        .prop_map(|(values, base, delay, ecn, max)| {
            let mut ranges = RangeSet::new();
            for v in values {
                ranges.insert_one(base + v);
            }
            let ecn = ecn.map(|(ect0, ect1, ce)| EcnCounts { ect0, ect1, ce });
            let mut buf = vec![0u8; ack_encoded_len(&ranges, delay, ecn.as_ref(), max)];
            encode_ack(
                &mut Writer::new(&mut buf),
                &ranges,
                delay,
                ecn.as_ref(),
                max,
            )
            .unwrap();
            Spec::Ack(buf)
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    let with_data = prop_oneof![
        (0..=VARINT_MAX - 64, data())
            .prop_map(|(offset, d)| Spec::Plain(Frame::Crypto { offset, data: &[] }, d)),
        proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|d| Spec::Plain(Frame::NewToken { token: &[] }, d)),
        (
            varint(),
            prop_oneof![Just(0u64), 0..=VARINT_MAX - 64],
            any::<bool>(),
            data()
        )
            .prop_map(|(id, offset, fin, d)| Spec::Plain(
                Frame::Stream {
                    id: StreamId(id),
                    offset,
                    fin,
                    data: &[],
                },
                d
            )),
        (varint(), proptest::option::of(varint()), data()).prop_map(|(code, ft, d)| {
            let kind = match ft {
                Some(frame_type) => CloseKind::Transport { frame_type },
                None => CloseKind::Application,
            };
            Spec::Plain(
                Frame::Close(Close {
                    kind,
                    code,
                    reason: &[],
                }),
                d,
            )
        }),
        data().prop_map(|d| Spec::Plain(Frame::SessionTicket { data: &[] }, d)),
        (varint(), 1..=VARINT_MAX, varint(), data()).prop_map(|(block, sources, extra, d)| {
            Spec::Plain(
                Frame::FecRepair {
                    block,
                    sources,
                    symbol: sources.saturating_add(extra).min(VARINT_MAX),
                    data: &[],
                },
                d,
            )
        }),
        (varint(), varint())
            .prop_map(|(count, largest)| plain(Frame::FecRecovered { count, largest })),
        data().prop_map(|d| Spec::Plain(Frame::Datagram { data: &[] }, d)),
    ];
    let skips = (varint(), varint(), varint()).prop_map(|(id, a, b)| {
        plain(Frame::StreamSkip {
            id: StreamId(id),
            offset: a.max(b),
            messages: a.min(b),
        })
    });
    let fixed = prop_oneof![
        (1usize..50).prop_map(|len| plain(Frame::Padding { len })),
        Just(plain(Frame::Ping)),
        (varint(), varint(), varint()).prop_map(|(id, error_code, final_size)| plain(
            Frame::ResetStream {
                id: StreamId(id),
                error_code,
                final_size,
            }
        )),
        (varint(), varint()).prop_map(|(id, error_code)| plain(Frame::StopSending {
            id: StreamId(id),
            error_code,
        })),
        varint().prop_map(|max| plain(Frame::MaxData(max))),
        (varint(), varint()).prop_map(|(id, max)| plain(Frame::MaxStreamData {
            id: StreamId(id),
            max,
        })),
        (dir(), 0..=MAX_STREAM_COUNT)
            .prop_map(|(dir, count)| plain(Frame::MaxStreams { dir, count })),
        varint().prop_map(|limit| plain(Frame::DataBlocked { limit })),
        (varint(), varint()).prop_map(|(id, limit)| plain(Frame::StreamDataBlocked {
            id: StreamId(id),
            limit,
        })),
        (dir(), 0..=MAX_STREAM_COUNT)
            .prop_map(|(dir, limit)| plain(Frame::StreamsBlocked { dir, limit })),
        (
            varint(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 1..=20),
            any::<[u8; 16]>()
        )
            .prop_map(
                |(sequence, r, id, reset_token)| plain(Frame::NewConnectionId {
                    sequence,
                    retire_prior_to: r % (sequence + 1),
                    id: ConnectionId::new(&id).unwrap(),
                    reset_token,
                })
            ),
        varint().prop_map(|sequence| plain(Frame::RetireConnectionId { sequence })),
        any::<[u8; 8]>().prop_map(|d| plain(Frame::PathChallenge(d))),
        any::<[u8; 8]>().prop_map(|d| plain(Frame::PathResponse(d))),
        Just(plain(Frame::HandshakeDone)),
        varint().prop_map(|generation| plain(Frame::KeyUpdate { generation })),
    ];
    prop_oneof![2 => fixed, 1 => with_data, 1 => ack_spec(), 1 => skips]
}

/// Adjacent PADDING frames decode as one run.
fn merge_padding(frames: Vec<Frame<'_>>) -> Vec<Frame<'_>> {
    let mut out: Vec<Frame<'_>> = Vec::new();
    for f in frames {
        match (out.last_mut(), &f) {
            (Some(Frame::Padding { len }), Frame::Padding { len: more }) => *len += more,
            _ => out.push(f),
        }
    }
    out
}

proptest! {
    #[test]
    fn every_frame_round_trips_through_encode_and_decode(spec in spec()) {
        let frame = spec.frame();
        let bytes = encode_all(std::slice::from_ref(&frame));
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        let mut r = Reader::new(&bytes);
        prop_assert_eq!(Frame::decode(&mut r), Ok(frame.clone()));
        prop_assert!(r.is_empty());
        prop_assert_eq!(Reader::new(&bytes).varint(), Ok(frame.ty()));

        // One byte short: nothing written, and the shortfall reported.
        let mut short = vec![0xaau8; bytes.len() - 1];
        let mut w = Writer::new(&mut short);
        prop_assert_eq!(frame.encode(&mut w), Err(BufferTooSmall { needed: 1 }));
        prop_assert_eq!(w.position(), 0);
    }

    #[test]
    fn a_payload_of_many_frames_iterates_back_to_the_same_frames(
        specs in proptest::collection::vec(spec(), 1..24),
    ) {
        let frames: Vec<Frame<'_>> = specs.iter().map(Spec::frame).collect();
        let bytes = encode_all(&frames);
        let decoded: Result<Vec<_>, _> = iter(&bytes).collect();
        prop_assert_eq!(decoded, Ok(merge_padding(frames)));
    }

    #[test]
    fn random_bytes_decode_to_frames_or_errors_and_always_end(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        check_hostile_payload(&bytes)?;
    }

    #[test]
    fn random_bodies_behind_known_types_decode_to_frames_or_errors(
        t in prop_oneof![0u8..=0x23, 0x30u8..=0x31],
        body in proptest::collection::vec(
            prop_oneof![3 => any::<u8>(), 1 => 0u8..4, 1 => Just(0xffu8)], 0..64),
    ) {
        let mut bytes = vec![t];
        bytes.extend(body);
        check_hostile_payload(&bytes)?;
    }
}

/// Decoding `bytes` ends within one item per byte; every frame re-encodes to itself; every
/// error maps to FRAME_ENCODING_ERROR; nothing follows an error.
fn check_hostile_payload(bytes: &[u8]) -> Result<(), TestCaseError> {
    let items: Vec<_> = iter(bytes).take(bytes.len() + 1).collect();
    prop_assert!(items.len() <= bytes.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(frame) => {
                let again = encode_all(std::slice::from_ref(frame));
                prop_assert_eq!(&decode_one(&again), &Ok(frame.clone()));
            }
            Err(e) => {
                prop_assert_eq!(i, items.len() - 1, "an error must end the iteration");
                let te = TransportError::from(*e);
                prop_assert_eq!(te.code, TransportErrorCode::FRAME_ENCODING_ERROR);
                prop_assert_eq!(te.frame_type, e.frame_type);
            }
        }
    }
    Ok(())
}

/// One frame of every encodable type, with multi-byte fields and data.
fn samples() -> Vec<Spec> {
    let mut ack = RangeSet::new();
    for r in [3..9, 20..21, 300..400] {
        ack.insert(r);
    }
    let ecn = EcnCounts {
        ect0: 1000,
        ect1: 2,
        ce: 70_000,
    };
    let mut ack_bytes = vec![0u8; ack_encoded_len(&ack, 25, Some(&ecn), 8)];
    encode_ack(&mut Writer::new(&mut ack_bytes), &ack, 25, Some(&ecn), 8).unwrap();
    let id = StreamId(0x1234);
    let d = b"some bytes".to_vec();
    vec![
        plain(Frame::Ping),
        Spec::Ack(ack_bytes),
        plain(Frame::ResetStream {
            id,
            error_code: 300,
            final_size: 1 << 40,
        }),
        plain(Frame::StopSending {
            id,
            error_code: 70_000,
        }),
        Spec::Plain(
            Frame::Crypto {
                offset: 5000,
                data: &[],
            },
            d.clone(),
        ),
        Spec::Plain(Frame::NewToken { token: &[] }, d.clone()),
        Spec::Plain(
            Frame::Stream {
                id,
                offset: 1 << 20,
                fin: true,
                data: &[],
            },
            d.clone(),
        ),
        Spec::Plain(
            Frame::Stream {
                id,
                offset: 0,
                fin: false,
                data: &[],
            },
            d.clone(),
        ),
        plain(Frame::MaxData(1 << 33)),
        plain(Frame::MaxStreamData { id, max: 99_999 }),
        plain(Frame::MaxStreams {
            dir: Dir::Uni,
            count: 1 << 60,
        }),
        plain(Frame::DataBlocked { limit: 1 << 20 }),
        plain(Frame::StreamDataBlocked { id, limit: 400 }),
        plain(Frame::StreamsBlocked {
            dir: Dir::Bi,
            limit: 100,
        }),
        plain(Frame::NewConnectionId {
            sequence: 500,
            retire_prior_to: 70,
            id: ConnectionId::new(&[7; 8]).unwrap(),
            reset_token: [9; 16],
        }),
        plain(Frame::RetireConnectionId { sequence: 1 << 16 }),
        plain(Frame::PathChallenge([1, 2, 3, 4, 5, 6, 7, 8])),
        plain(Frame::PathResponse([8, 7, 6, 5, 4, 3, 2, 1])),
        Spec::Plain(
            Frame::Close(Close {
                kind: CloseKind::Transport { frame_type: 0x0e },
                code: 0x100,
                reason: &[],
            }),
            d.clone(),
        ),
        Spec::Plain(
            Frame::Close(Close {
                kind: CloseKind::Application,
                code: 1 << 35,
                reason: &[],
            }),
            d.clone(),
        ),
        plain(Frame::HandshakeDone),
        Spec::Plain(Frame::SessionTicket { data: &[] }, d.clone()),
        plain(Frame::KeyUpdate { generation: 3000 }),
        Spec::Plain(
            Frame::FecRepair {
                block: 70_000,
                sources: 12,
                symbol: 12,
                data: &[],
            },
            d.clone(),
        ),
        plain(Frame::StreamSkip {
            id: StreamId(4 * 70_000 + 2),
            offset: 1 << 40,
            messages: 1 << 20,
        }),
        Spec::Plain(Frame::Datagram { data: &[] }, d),
    ]
}

#[test]
fn every_frame_cut_short_anywhere_is_a_truncation_error() {
    for spec in samples() {
        let frame = spec.frame();
        let bytes = encode_all(std::slice::from_ref(&frame));
        assert_eq!(decode_one(&bytes).as_ref(), Ok(&frame));
        for cut in 0..bytes.len() {
            let err = decode_one(&bytes[..cut]).expect_err("a cut frame must not decode");
            let expected_type = if cut == 0 { None } else { Some(frame.ty()) };
            assert_eq!(err.frame_type, expected_type, "{frame:?} cut at {cut}");
            let allowed = match (frame.ty(), err.kind) {
                (_, FrameErrorKind::Truncated) => true,
                // A count or length that overruns the payload is reported as a bad value.
                (ty::ACK | ty::ACK_ECN, FrameErrorKind::InvalidValue(why)) => {
                    why == "ACK range count exceeds what the frame can hold"
                }
                (
                    ty::CLOSE_TRANSPORT | ty::CLOSE_APPLICATION,
                    FrameErrorKind::InvalidValue(why),
                ) => why == "CLOSE reason length exceeds the payload",
                _ => false,
            };
            assert!(allowed, "{frame:?} cut at {cut} gave {err:?}");
        }
    }
}

#[test]
fn invalid_fields_are_rejected_with_the_rule_they_break() {
    use FrameErrorKind::{InvalidValue, UnknownType};
    let max = [0xff; 8]; // VARINT_MAX as an eight-byte varint
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (
            vec![0x02, 5, 0, 0, 6],
            FrameError::new(
                Some(0x02),
                InvalidValue("ACK first range exceeds the largest acknowledged"),
            ),
        ),
        (
            vec![0x02, 10, 0, 1, 2, 7, 0],
            FrameError::new(
                Some(0x02),
                InvalidValue("ACK gap goes below packet number 0"),
            ),
        ),
        (
            vec![0x03, 10, 0, 1, 0, 0, 9, 0, 0, 0],
            FrameError::new(
                Some(0x03),
                InvalidValue("ACK range goes below packet number 0"),
            ),
        ),
        (
            vec![0x02, 10, 0, 50, 0, 0, 0, 0, 0],
            FrameError::new(
                Some(0x02),
                InvalidValue("ACK range count exceeds what the frame can hold"),
            ),
        ),
        (
            [&[0x0e, 0][..], &max, &[1, 0xaa]].concat(),
            FrameError::new(
                Some(0x0e),
                InvalidValue("STREAM data would end beyond 2^62-1"),
            ),
        ),
        (
            [&[0x0c, 0][..], &max, &[0xaa]].concat(),
            FrameError::new(
                Some(0x0c),
                InvalidValue("STREAM data would end beyond 2^62-1"),
            ),
        ),
        (
            [&[0x06][..], &max, &[1, 0xaa]].concat(),
            FrameError::new(
                Some(0x06),
                InvalidValue("CRYPTO data would end beyond 2^62-1"),
            ),
        ),
        (
            [&[0x18, 1, 0, 0][..], &[0; 16]].concat(),
            FrameError::new(
                Some(0x18),
                InvalidValue("NEW_CONNECTION_ID length is not 1 to 20"),
            ),
        ),
        (
            [&[0x18, 1, 0, 21][..], &[0; 37]].concat(),
            FrameError::new(
                Some(0x18),
                InvalidValue("NEW_CONNECTION_ID length is not 1 to 20"),
            ),
        ),
        (
            [&[0x18, 1, 2, 4][..], &[0; 20]].concat(),
            FrameError::new(
                Some(0x18),
                InvalidValue("NEW_CONNECTION_ID retire_prior_to exceeds the sequence number"),
            ),
        ),
        (
            vec![0x12, 0xd0, 0, 0, 0, 0, 0, 0, 1],
            FrameError::new(Some(0x12), InvalidValue("MAX_STREAMS count exceeds 2^60")),
        ),
        (
            vec![0x17, 0xd0, 0, 0, 0, 0, 0, 0, 1],
            FrameError::new(
                Some(0x17),
                InvalidValue("STREAMS_BLOCKED limit exceeds 2^60"),
            ),
        ),
        (
            vec![0x1c, 0, 0, 5, b'a', b'b'],
            FrameError::new(
                Some(0x1c),
                InvalidValue("CLOSE reason length exceeds the payload"),
            ),
        ),
        (
            vec![0x1d, 0, 0x80, 0, 0, 9, b'a'],
            FrameError::new(
                Some(0x1d),
                InvalidValue("CLOSE reason length exceeds the payload"),
            ),
        ),
        (
            vec![0x07, 0],
            FrameError::new(Some(0x07), InvalidValue("NEW_TOKEN token is empty")),
        ),
        (vec![0x1f], FrameError::new(Some(0x1f), UnknownType)),
        (vec![0x25, 0, 0], FrameError::new(Some(0x25), UnknownType)),
        (
            vec![0x23, 4, 2, 3],
            FrameError::new(
                Some(0x23),
                InvalidValue("STREAM_SKIP counts more messages than bytes"),
            ),
        ),
        (
            vec![0x22, 7, 0, 0, 1, 9],
            FrameError::new(Some(0x22), InvalidValue("FEC_REPAIR block has no sources")),
        ),
        (
            vec![0x22, 7, 8, 7, 1, 9],
            FrameError::new(
                Some(0x22),
                InvalidValue("FEC_REPAIR symbol ID is a source symbol's"),
            ),
        ),
        (vec![0x2f], FrameError::new(Some(0x2f), UnknownType)),
        (vec![0x40, 0x40], FrameError::new(Some(0x40), UnknownType)),
        (
            vec![0xc0, 0, 0, 0, 0, 0, 0x12, 0x34],
            FrameError::new(Some(0x1234), UnknownType),
        ),
        (
            vec![0x80, 0],
            FrameError::new(None, FrameErrorKind::Truncated),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_one(&bytes), Err(expected), "{bytes:02x?}");
    }
}

#[test]
fn boundary_values_are_still_accepted() {
    let max = [0xff; 8];
    // STREAM ending exactly at 2^62 - 1 with no data, MAX_STREAMS of exactly 2^60, a 20-byte
    // connection ID with retire_prior_to equal to the sequence.
    let stream = [&[0x0c, 0][..], &max].concat();
    assert!(matches!(
        decode_one(&stream),
        Ok(Frame::Stream {
            offset: VARINT_MAX,
            data: &[],
            ..
        })
    ));
    let streams = [0x13, 0xd0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_one(&streams),
        Ok(Frame::MaxStreams {
            dir: Dir::Uni,
            count: 1 << 60
        })
    );
    let ncid = [&[0x18, 3, 3, 20][..], &[5; 36]].concat();
    assert!(matches!(
        decode_one(&ncid),
        Ok(Frame::NewConnectionId {
            retire_prior_to: 3,
            ..
        })
    ));
}

#[test]
fn non_shortest_varints_are_accepted() {
    assert_eq!(decode_one(&[0x40, 0x01]), Ok(Frame::Ping));
    assert_eq!(
        decode_one(&[0x50, 0x00]),
        Err(FrameError::new(Some(0x1000), FrameErrorKind::UnknownType))
    );
    assert_eq!(decode_one(&[0x10, 0x80, 0, 0, 5]), Ok(Frame::MaxData(5)));
}

#[test]
fn a_run_of_zero_bytes_is_one_padding_frame() {
    let payload = [0, 0, 0, 0x01, 0, 0x40, 0x00, 0];
    let frames: Vec<_> = iter(&payload).collect();
    assert_eq!(
        frames,
        [
            Ok(Frame::Padding { len: 3 }),
            Ok(Frame::Ping),
            Ok(Frame::Padding { len: 1 }),
            Ok(Frame::Padding { len: 3 })
        ]
    );
}

#[test]
fn length_less_stream_and_datagram_run_to_the_end_of_the_payload() {
    let frames: Vec<_> = iter(&[0x09, 4, b'h', b'i']).collect();
    assert_eq!(
        frames,
        [Ok(Frame::Stream {
            id: StreamId(4),
            offset: 0,
            fin: true,
            data: b"hi"
        })]
    );
    let frames: Vec<_> = iter(&[0x30, 1, 2, 3]).collect();
    assert_eq!(frames, [Ok(Frame::Datagram { data: &[1, 2, 3] })]);
}

#[test]
fn iteration_stops_after_the_first_error() {
    let mut it = iter(&[0x01, 0x1f, 0x01, 0x01]);
    assert_eq!(it.next(), Some(Ok(Frame::Ping)));
    assert_eq!(
        it.next(),
        Some(Err(FrameError::new(
            Some(0x1f),
            FrameErrorKind::UnknownType
        )))
    );
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
}

#[test]
fn a_frame_error_becomes_a_frame_encoding_error_naming_the_problem() {
    let err = decode_one(&[0x1c, 0, 0, 5]).unwrap_err();
    let te = TransportError::from(err);
    assert_eq!(te.code, TransportErrorCode::FRAME_ENCODING_ERROR);
    assert_eq!(te.frame_type, Some(0x1c));
    assert_eq!(
        te.reason,
        "invalid CLOSE frame: CLOSE reason length exceeds the payload"
    );
    assert_eq!(
        FrameError::new(Some(0x06), FrameErrorKind::Truncated).to_string(),
        "truncated CRYPTO frame"
    );
    assert_eq!(
        FrameError::new(Some(0x2f), FrameErrorKind::UnknownType).to_string(),
        "unknown frame type 0x2f"
    );
    assert_eq!(
        TransportError::from(FrameError::new(None, FrameErrorKind::Truncated)).frame_type,
        None
    );
}

#[test]
fn stream_ids_carry_initiator_direction_and_index() {
    for (raw, side, dir) in [
        (0, Side::Client, Dir::Bi),
        (1, Side::Server, Dir::Bi),
        (2, Side::Client, Dir::Uni),
        (3, Side::Server, Dir::Uni),
    ] {
        let id = StreamId::new(side, dir, 5);
        assert_eq!(id, StreamId(20 + raw));
        assert_eq!((id.initiator(), id.dir(), id.index()), (side, dir, 5));
    }
}

#[test]
fn header_helpers_frame_data_written_after_them() {
    let id = StreamId::new(Side::Server, Dir::Uni, 9);
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    encode_stream_header(&mut w, id, 70_000, 3, true).unwrap();
    assert_eq!(w.position(), stream_header_len(id, 70_000, 3));
    w.bytes(b"abc").unwrap();
    let stream_end = w.position();
    encode_crypto_header(&mut w, 0, 2).unwrap();
    assert_eq!(w.position() - stream_end, crypto_header_len(0, 2));
    w.bytes(b"hs").unwrap();
    let n = w.finish();
    let frames: Vec<_> = iter(&buf[..n]).collect();
    assert_eq!(
        frames,
        [
            Ok(Frame::Stream {
                id,
                offset: 70_000,
                fin: true,
                data: b"abc"
            }),
            Ok(Frame::Crypto {
                offset: 0,
                data: b"hs"
            })
        ]
    );
    let dgram = Frame::Datagram { data: &[0; 100] };
    assert_eq!(datagram_header_len(100), dgram.encoded_len() - 100);
    assert_eq!(stream_header_len(StreamId(0), 0, 10), 3);

    let mut tiny = [0u8; 2];
    let mut w = Writer::new(&mut tiny);
    assert_eq!(
        encode_stream_header(&mut w, StreamId(0), 0, 10, false),
        Err(BufferTooSmall { needed: 1 })
    );
    assert_eq!(w.position(), 0);
}

#[test]
fn which_frames_elicit_acks_and_where_they_may_appear() {
    let transport_close = Frame::Close(Close {
        kind: CloseKind::Transport { frame_type: 0 },
        code: 0,
        reason: b"",
    });
    let app_close = Frame::Close(Close {
        kind: CloseKind::Application,
        code: 0,
        reason: b"",
    });
    let crypto = Frame::Crypto {
        offset: 0,
        data: b"",
    };
    let stream = Frame::Stream {
        id: StreamId(0),
        offset: 0,
        fin: false,
        data: b"",
    };
    let ticket = Frame::SessionTicket { data: b"" };
    // (frame, ack-eliciting, in Initial/Handshake, in 0-RTT)
    let table = [
        (Frame::Padding { len: 1 }, false, true, true),
        (Frame::Ping, true, true, true),
        (transport_close, false, true, true),
        (app_close, false, false, true),
        (crypto, true, true, false),
        (stream, true, false, true),
        (Frame::HandshakeDone, true, false, false),
        (ticket, true, false, false),
        (Frame::KeyUpdate { generation: 1 }, true, false, false),
        (Frame::PathChallenge([0; 8]), true, false, true),
        (Frame::PathResponse([0; 8]), true, false, false),
        (
            Frame::RetireConnectionId { sequence: 0 },
            true,
            false,
            false,
        ),
        (Frame::Datagram { data: b"" }, true, false, true),
    ];
    for (frame, eliciting, handshake, zero_rtt) in table {
        assert_eq!(frame.is_ack_eliciting(), eliciting, "{frame:?}");
        assert_eq!(frame.allowed_in_handshake(), handshake, "{frame:?}");
        assert_eq!(frame.allowed_in_0rtt(), zero_rtt, "{frame:?}");
    }
    let ack = match decode_one(&[0x02, 0, 0, 0, 0]).unwrap() {
        f @ Frame::Ack(_) => f,
        other => panic!("{other:?}"),
    };
    assert!(!ack.is_ack_eliciting() && ack.allowed_in_handshake() && !ack.allowed_in_0rtt());
}
