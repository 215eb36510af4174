//! Tests of the handshake message codec: round trips, limits, malformed input.
use super::*;
use crate::handshake::params::tests::arb_params;
use ciborium::Value;
use proptest::collection::vec;
use proptest::prelude::*;

fn u16_list() -> impl Strategy<Value = Vec<u16>> {
    vec(any::<u16>(), 1..=MAX_LIST_LEN)
}

fn arb_client_hello() -> impl Strategy<Value = ClientHello> {
    (
        (
            any::<u32>(),
            any::<[u8; 32]>(),
            u16_list(),
            u16_list(),
            any::<u16>(),
        ),
        (
            vec(any::<u8>(), 0..=MAX_SHARE_LEN),
            u16_list(),
            arb_params(false),
            proptest::option::of((vec(any::<u8>(), 0..=MAX_TICKET_LEN), any::<u32>())),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (version, random, suites, kex_groups, share_group),
                (share, sig_schemes, params, psk, early_data),
            )| {
                ClientHello {
                    version,
                    random,
                    suites,
                    kex_groups,
                    share_group,
                    share,
                    sig_schemes,
                    params,
                    psk: psk.map(|(ticket, obfuscated_age_ms)| PskOffer {
                        ticket,
                        obfuscated_age_ms,
                    }),
                    early_data,
                }
            },
        )
}

fn arb_message() -> impl Strategy<Value = HandshakeMessage> {
    prop_oneof![
        arb_client_hello().prop_map(HandshakeMessage::ClientHello),
        (
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<u16>(),
            any::<u16>(),
            vec(any::<u8>(), 0..=MAX_SHARE_LEN),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(version, random, suite, kex_group, share, psk_accepted, early_data_accepted)| {
                    HandshakeMessage::ServerHello(ServerHello {
                        version,
                        random,
                        suite,
                        kex_group,
                        share,
                        psk_accepted,
                        early_data_accepted,
                    })
                }
            ),
        (arb_params(true), any::<bool>()).prop_map(|(params, client_auth_requested)| {
            HandshakeMessage::EncryptedExtensions(EncryptedExtensions {
                params,
                client_auth_requested,
            })
        }),
        vec(any::<u8>(), 0..=MAX_PUBLIC_KEY_LEN)
            .prop_map(|public_key| HandshakeMessage::Identity(Identity { public_key })),
        vec(any::<u8>(), 0..=MAX_SIGNATURE_LEN).prop_map(|signature| {
            HandshakeMessage::IdentityVerify(IdentityVerify { signature })
        }),
        any::<[u8; 32]>().prop_map(|mac| HandshakeMessage::Finished(Finished { mac })),
        (
            any::<u32>(),
            any::<u32>(),
            vec(any::<u8>(), 0..=MAX_NONCE_LEN),
            vec(any::<u8>(), 0..=MAX_TICKET_LEN),
            any::<u32>()
        )
            .prop_map(|(lifetime_s, age_add, nonce, ticket, max_early_data)| {
                HandshakeMessage::NewSessionTicket(NewSessionTicket {
                    lifetime_s,
                    age_add,
                    nonce,
                    ticket,
                    max_early_data,
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every message round-trips; every strict prefix needs more bytes; the whole frame is
    /// consumed exactly, even with the next message's bytes behind it.
    #[test]
    fn message_round_trip_and_prefixes(msg in arb_message()) {
        let bytes = msg.try_encode().unwrap();
        prop_assert_eq!(&bytes, &msg.encode());
        prop_assert!(bytes.len() - HEADER_LEN <= MAX_MESSAGE_LEN);
        prop_assert_eq!(bytes.first().copied(), Some(msg.type_code()));
        for cut in 0..bytes.len() {
            prop_assert_eq!(HandshakeMessage::decode(&bytes[..cut]), Ok(None), "prefix {}", cut);
        }
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let (back, used) = HandshakeMessage::decode(&two).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, msg);
    }

    /// Arbitrary bytes, with or without a plausible header, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(ty in 0u8..=8, body in vec(any::<u8>(), 0..600), raw in vec(any::<u8>(), 0..64)) {
        let _ = HandshakeMessage::decode(&raw);
        let _ = HandshakeMessage::decode(&frame(ty, &body));
    }

    /// Corrupting valid messages never panics, and what still decodes obeys the limits.
    #[test]
    fn mutated_messages_never_panic(msg in arb_message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = msg.encode();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(Some((m, used))) = HandshakeMessage::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(m.check(), Ok(()));
        }
    }
}

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut out = vec![ty, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    out.extend_from_slice(body);
    out
}

fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn sample_client_hello() -> HandshakeMessage {
    HandshakeMessage::ClientHello(ClientHello {
        version: crate::VERSION_1,
        random: [7; 32],
        suites: vec![1, 2],
        kex_groups: vec![0x11ec],
        share_group: 0x11ec,
        share: vec![1; 1216],
        sig_schemes: vec![0x0807],
        params: TransportParameters {
            initial_source_connection_id: vec![1, 2, 3, 4],
            ..TransportParameters::default()
        },
        psk: Some(PskOffer {
            ticket: vec![9; 139],
            obfuscated_age_ms: 5,
        }),
        early_data: true,
    })
}

fn sample(ty: u8) -> HandshakeMessage {
    match ty {
        1 => sample_client_hello(),
        2 => HandshakeMessage::ServerHello(ServerHello {
            version: crate::VERSION_1,
            random: [8; 32],
            suite: 1,
            kex_group: 0x11ec,
            share: vec![2; 1120],
            psk_accepted: true,
            early_data_accepted: false,
        }),
        4 => HandshakeMessage::Identity(Identity {
            public_key: vec![3; 32],
        }),
        5 => HandshakeMessage::IdentityVerify(IdentityVerify {
            signature: vec![4; 64],
        }),
        6 => HandshakeMessage::Finished(Finished { mac: [5; 32] }),
        7 => HandshakeMessage::NewSessionTicket(NewSessionTicket {
            lifetime_s: 3600,
            age_add: 77,
            nonce: vec![6; 8],
            ticket: vec![7; 139],
            max_early_data: 16384,
        }),
        _ => unreachable!(),
    }
}

/// The framed bytes of message type `ty` after `f` edits its CBOR map.
fn mutated(ty: u8, f: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let bytes = sample(ty).encode();
    let mut v: Value = ciborium::de::from_reader(&bytes[HEADER_LEN..]).unwrap();
    let Value::Map(map) = &mut v else {
        panic!("not a map")
    };
    f(map);
    frame(ty, &cbor(&v))
}

fn set(map: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    map.retain(|(k, _)| k.as_text() != Some(key));
    map.push((Value::Text(key.into()), value));
}

fn remove(map: &mut Vec<(Value, Value)>, key: &str) {
    map.retain(|(k, _)| k.as_text() != Some(key));
}

fn int_list(n: usize) -> Value {
    Value::Array((0..n).map(|i| Value::Integer((i as u16).into())).collect())
}

fn bad_cbor(
    message: &'static str,
    detail_contains: &'static str,
) -> impl Fn(&MessageError) -> bool {
    move |e| matches!(e, MessageError::BadCbor { message: m, detail } if *m == message && detail.contains(detail_contains))
}

fn invalid_field(message: &'static str, field: &'static str) -> impl Fn(&MessageError) -> bool {
    move |e| matches!(e, MessageError::InvalidField { message: m, field: f, .. } if *m == message && *f == field)
}

#[test]
fn malformed_input_table() {
    type Pred = Box<dyn Fn(&MessageError) -> bool>;
    let nested = (0..40).fold(Value::Integer(0.into()), |v, _| Value::Array(vec![v]));
    let cases: Vec<(&str, Vec<u8>, Pred)> = vec![
        (
            "length over MAX",
            vec![1, 0x00, 0x40, 0x01],
            Box::new(|e| {
                *e == MessageError::TooLong {
                    len: MAX_MESSAGE_LEN + 1,
                    max: MAX_MESSAGE_LEN,
                }
            }),
        ),
        (
            "length 2^24-1",
            vec![6, 0xff, 0xff, 0xff],
            Box::new(|e| matches!(e, MessageError::TooLong { len: 0xff_ffff, .. })),
        ),
        (
            "type 0",
            vec![0, 0, 0, 0],
            Box::new(|e| *e == MessageError::UnknownType(0)),
        ),
        (
            "type 8, header only",
            vec![8],
            Box::new(|e| *e == MessageError::UnknownType(8)),
        ),
        (
            "type 255",
            frame(255, &[0xa0]),
            Box::new(|e| *e == MessageError::UnknownType(255)),
        ),
        (
            "empty body",
            frame(6, &[]),
            Box::new(bad_cbor("Finished", "truncated")),
        ),
        (
            "random bytes",
            frame(1, &[0xff, 0x13, 0x37, 0x00]),
            Box::new(bad_cbor("ClientHello", "")),
        ),
        (
            "truncated CBOR",
            {
                let b = sample(7).encode();
                frame(7, &b[HEADER_LEN..b.len() - 1])
            },
            Box::new(bad_cbor("NewSessionTicket", "truncated")),
        ),
        (
            "array instead of map",
            frame(6, &cbor(&Value::Array(vec![Value::Bytes(vec![0; 32])]))),
            Box::new(bad_cbor("Finished", "map")),
        ),
        (
            "integer instead of map",
            frame(4, &cbor(&Value::Integer(5.into()))),
            Box::new(bad_cbor("Identity", "map")),
        ),
        (
            "trailing bytes",
            {
                let b = sample(6).encode();
                let mut body = b[HEADER_LEN..].to_vec();
                body.push(0);
                frame(6, &body)
            },
            Box::new(bad_cbor("Finished", "trailing")),
        ),
        (
            "byte field as array",
            mutated(6, |m| {
                set(m, "mac", Value::Array(vec![Value::Integer(1.into()); 32]))
            }),
            Box::new(bad_cbor("Finished", "byte string")),
        ),
        (
            "share as array",
            mutated(1, |m| set(m, "ks", int_list(4))),
            Box::new(bad_cbor("ClientHello", "byte string")),
        ),
        (
            "text instead of bytes",
            mutated(4, |m| set(m, "pk", Value::Text("key".into()))),
            Box::new(bad_cbor("Identity", "expected byte")),
        ),
        (
            "version as text",
            mutated(2, |m| set(m, "v", Value::Text("1".into()))),
            Box::new(bad_cbor("ServerHello", "")),
        ),
        (
            "suite code over u16",
            mutated(2, |m| set(m, "cs", Value::Integer(70_000.into()))),
            Box::new(bad_cbor("ServerHello", "")),
        ),
        (
            "negative lifetime",
            mutated(7, |m| set(m, "lt", Value::Integer((-1).into()))),
            Box::new(bad_cbor("NewSessionTicket", "")),
        ),
        (
            "duplicate key",
            mutated(6, |m| {
                m.push((Value::Text("mac".into()), Value::Bytes(vec![0; 32])))
            }),
            Box::new(bad_cbor("Finished", "duplicate")),
        ),
        (
            "missing mac",
            mutated(6, |m| remove(m, "mac")),
            Box::new(bad_cbor("Finished", "mac")),
        ),
        (
            "missing random",
            mutated(1, |m| remove(m, "r")),
            Box::new(bad_cbor("ClientHello", "`r`")),
        ),
        (
            "missing params",
            mutated(1, |m| remove(m, "tp")),
            Box::new(bad_cbor("ClientHello", "`tp`")),
        ),
        (
            "missing iscid in params",
            mutated(1, |m| set(m, "tp", Value::Map(vec![]))),
            Box::new(bad_cbor("ClientHello", "iscid")),
        ),
        (
            "missing ticket nonce",
            mutated(7, |m| remove(m, "n")),
            Box::new(bad_cbor("NewSessionTicket", "`n`")),
        ),
        (
            "too deeply nested unknown key",
            mutated(6, |m| set(m, "x", nested.clone())),
            Box::new(bad_cbor("Finished", "nested")),
        ),
        (
            "huge byte-string length",
            frame(
                4,
                &[
                    0xa1, 0x62, b'p', b'k', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    1, 2,
                ],
            ),
            Box::new(bad_cbor("Identity", "truncated")),
        ),
        (
            "huge array length",
            frame(
                1,
                &[
                    0xa1, 0x62, b'c', b's', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    1, 2,
                ],
            ),
            Box::new(bad_cbor("ClientHello", "")),
        ),
        (
            "random 31 bytes",
            mutated(1, |m| set(m, "r", Value::Bytes(vec![0; 31]))),
            Box::new(invalid_field("ClientHello", "random")),
        ),
        (
            "random 33 bytes",
            mutated(2, |m| set(m, "r", Value::Bytes(vec![0; 33]))),
            Box::new(invalid_field("ServerHello", "random")),
        ),
        (
            "mac 31 bytes",
            mutated(6, |m| set(m, "mac", Value::Bytes(vec![0; 31]))),
            Box::new(invalid_field("Finished", "mac")),
        ),
        (
            "mac empty",
            mutated(6, |m| set(m, "mac", Value::Bytes(vec![]))),
            Box::new(invalid_field("Finished", "mac")),
        ),
        (
            "no suites",
            mutated(1, |m| set(m, "cs", int_list(0))),
            Box::new(invalid_field("ClientHello", "suites")),
        ),
        (
            "17 suites",
            mutated(1, |m| set(m, "cs", int_list(17))),
            Box::new(invalid_field("ClientHello", "suites")),
        ),
        (
            "1000 groups",
            mutated(1, |m| set(m, "kg", int_list(1000))),
            Box::new(invalid_field("ClientHello", "kex_groups")),
        ),
        (
            "no sig schemes",
            mutated(1, |m| set(m, "ss", int_list(0))),
            Box::new(invalid_field("ClientHello", "sig_schemes")),
        ),
        (
            "client share 2049",
            mutated(1, |m| set(m, "ks", Value::Bytes(vec![0; 2049]))),
            Box::new(invalid_field("ClientHello", "share")),
        ),
        (
            "server share 2049",
            mutated(2, |m| set(m, "ks", Value::Bytes(vec![0; 2049]))),
            Box::new(invalid_field("ServerHello", "share")),
        ),
        (
            "psk ticket 1025",
            mutated(1, |m| {
                set(
                    m,
                    "psk",
                    Value::Map(vec![
                        (Value::Text("t".into()), Value::Bytes(vec![0; 1025])),
                        (Value::Text("age".into()), Value::Integer(0.into())),
                    ]),
                )
            }),
            Box::new(invalid_field("ClientHello", "psk.ticket")),
        ),
        (
            "ticket 1025",
            mutated(7, |m| set(m, "t", Value::Bytes(vec![0; 1025]))),
            Box::new(invalid_field("NewSessionTicket", "ticket")),
        ),
        (
            "nonce 65",
            mutated(7, |m| set(m, "n", Value::Bytes(vec![0; 65]))),
            Box::new(invalid_field("NewSessionTicket", "nonce")),
        ),
        (
            "public key 4097",
            mutated(4, |m| set(m, "pk", Value::Bytes(vec![0; 4097]))),
            Box::new(invalid_field("Identity", "public_key")),
        ),
        (
            "signature 4097",
            mutated(5, |m| set(m, "sig", Value::Bytes(vec![0; 4097]))),
            Box::new(invalid_field("IdentityVerify", "signature")),
        ),
    ];
    for (name, bytes, pred) in cases {
        match HandshakeMessage::decode(&bytes) {
            Err(e) => assert!(pred(&e), "{name}: unexpected error {e:?}"),
            Ok(r) => panic!("{name}: decoded {r:?}"),
        }
    }
}

#[test]
fn incomplete_frames_need_more_bytes() {
    assert_eq!(HandshakeMessage::decode(&[]), Ok(None));
    assert_eq!(HandshakeMessage::decode(&[1]), Ok(None));
    assert_eq!(HandshakeMessage::decode(&[1, 0]), Ok(None));
    assert_eq!(HandshakeMessage::decode(&[1, 0, 0]), Ok(None));
    assert_eq!(HandshakeMessage::decode(&[1, 0, 0, 9, 0xa0]), Ok(None));
    assert_eq!(HandshakeMessage::decode(&[6, 0x00, 0x40, 0x00]), Ok(None));
}

#[test]
fn unknown_keys_ignored_and_optional_fields_default() {
    let bytes = mutated(1, |m| {
        set(
            m,
            "future",
            Value::Map(vec![(
                Value::Integer(1.into()),
                Value::Array(vec![Value::Text("x".repeat(5000))]),
            )]),
        );
        remove(m, "psk");
        remove(m, "ed");
    });
    let (msg, used) = HandshakeMessage::decode(&bytes).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    let HandshakeMessage::ClientHello(ch) = msg else {
        panic!()
    };
    assert_eq!(ch.psk, None);
    assert!(!ch.early_data);
    let HandshakeMessage::ClientHello(orig) = sample_client_hello() else {
        panic!()
    };
    assert_eq!(ch.random, orig.random);
    assert_eq!(ch.params, orig.params);

    // Unknown keys inside the transport parameters too.
    let bytes = mutated(2, |m| remove(m, "pa"));
    let (HandshakeMessage::ServerHello(sh), _) = HandshakeMessage::decode(&bytes).unwrap().unwrap()
    else {
        panic!()
    };
    assert!(!sh.psk_accepted);
}

#[test]
fn over_limit_messages_do_not_encode() {
    let m = HandshakeMessage::Identity(Identity {
        public_key: vec![0; 4097],
    });
    assert!(matches!(
        m.try_encode(),
        Err(MessageError::InvalidField {
            field: "public_key",
            ..
        })
    ));
    // Plain encode still frames it, and the receiver rejects it.
    assert!(matches!(
        HandshakeMessage::decode(&m.encode()),
        Err(MessageError::InvalidField { .. })
    ));
    let huge = HandshakeMessage::Identity(Identity {
        public_key: vec![0; 20_000],
    });
    assert!(matches!(
        HandshakeMessage::decode(&huge.encode()),
        Err(MessageError::TooLong { .. })
    ));
}

#[test]
fn errors_map_to_protocol_violation() {
    let e: TransportError = MessageError::UnknownType(9).into();
    assert_eq!(e.code, crate::error::TransportErrorCode::PROTOCOL_VIOLATION);
    assert!(e.reason.contains("unknown handshake message type 9"));
}

#[test]
fn byte_fields_are_cbor_byte_strings() {
    // Finished: a one-entry map whose value is a 32-byte byte string (major type 2).
    let bytes = sample(6).encode();
    assert_eq!(&bytes[..HEADER_LEN], &[6, 0, 0, 39]);
    assert_eq!(
        &bytes[HEADER_LEN..HEADER_LEN + 6],
        &[0xa1, 0x63, b'm', b'a', b'c', 0x58]
    );
    assert_eq!(bytes[HEADER_LEN + 6], 32);
}
