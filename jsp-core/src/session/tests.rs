//! Handshake tests at the message level: both state machines wired directly, so that an
//! attacker who can rewrite any message (Initial packets are only obfuscated) can be modelled.

use std::sync::Arc;

use super::*;
use crate::config::{ClientAuth, ClientConfig, ServerConfig};
use crate::crypto::sign::IdentityKey;
use crate::handshake::TransportParameters;

struct Sides {
    client: Session,
    server: Session,
    client_out: SessionOutput,
    server_out: SessionOutput,
    rng: Rng,
}

fn params(cid: &[u8]) -> TransportParameters {
    TransportParameters {
        initial_source_connection_id: cid.to_vec(),
        ..TransportParameters::default()
    }
}

fn setup(tweak: impl FnOnce(&mut ServerConfig, &mut ClientConfig)) -> Sides {
    let mut rng = Rng::from_seed([42; 32]);
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    let mut client_config = ClientConfig::pinned(identity.public());
    tweak(&mut server_config, &mut client_config);
    let mut client_out = SessionOutput::default();
    let client = ClientSession::new(
        Arc::new(client_config),
        params(&[1; 8]),
        None,
        &mut rng,
        Instant::ZERO,
        &mut client_out,
    );
    let mut server_params = params(&[2; 8]);
    server_params.original_destination_connection_id = Some(vec![3; 16]);
    let server = ServerSession::new(Arc::new(server_config), server_params);
    Sides {
        client: Session::Client(Box::new(client)),
        server: Session::Server(Box::new(server)),
        client_out,
        server_out: SessionOutput::default(),
        rng,
    }
}

/// Splits a flight into its framed messages.
fn split(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some((_, n))) = HandshakeMessage::decode(bytes) {
        out.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    out
}

/// Carries the flights between the sides, letting `tamper` rewrite message number `i` (counted
/// over the whole handshake). Returns the first error, or whether both sides completed.
fn run(
    sides: &mut Sides,
    mut tamper: impl FnMut(usize, &mut Vec<u8>),
) -> Result<bool, TransportError> {
    let mut index = 0;
    for _round in 0..4 {
        let mut moved = false;
        for to_server in [true, false] {
            let (from_out, to) = if to_server {
                (&mut sides.client_out, &mut sides.server)
            } else {
                (&mut sides.server_out, &mut sides.client)
            };
            let flights: Vec<(SpaceId, Vec<u8>)> = SpaceId::ALL
                .iter()
                .map(|s| (*s, core::mem::take(&mut from_out.crypto[s.index()])))
                .collect();
            let mut out = SessionOutput::default();
            for (space, bytes) in flights {
                for mut raw in split(&bytes) {
                    tamper(index, &mut raw);
                    index += 1;
                    moved = true;
                    let Some((msg, n)) = HandshakeMessage::decode(&raw)? else {
                        return Ok(false);
                    };
                    to.handle(
                        space,
                        msg,
                        &raw[..n],
                        Instant::ZERO,
                        &mut sides.rng,
                        &mut out,
                    )?;
                    // The server's flight after its ServerHello (sent on its own first).
                    to.finish_pending(&mut out)?;
                }
            }
            let target = if to_server {
                &mut sides.server_out
            } else {
                &mut sides.client_out
            };
            for (t, o) in target.crypto.iter_mut().zip(out.crypto.iter()) {
                t.extend_from_slice(o);
            }
        }
        if !moved {
            break;
        }
    }
    Ok(sides.client.is_complete() && sides.server.is_complete())
}

#[test]
fn an_untampered_handshake_completes() {
    let mut sides = setup(|_, _| {});
    assert_eq!(run(&mut sides, |_, _| {}), Ok(true));
    assert_eq!(
        sides.client.info().unwrap().key_exchange,
        KeyExchange::X25519MlKem768
    );
}

#[test]
fn a_tampered_byte_in_any_handshake_message_fails_the_handshake() {
    // Messages: 0 ClientHello, 1 ServerHello, 2 EncryptedExtensions, 3 Identity,
    // 4 IdentityVerify, 5 server Finished, 6 client Finished.
    let mut lengths = Vec::new();
    run(&mut setup(|_, _| {}), |_, raw| lengths.push(raw.len())).unwrap();
    assert_eq!(lengths.len(), 7);
    for (message, len) in lengths.iter().enumerate() {
        // Every byte of the small messages; a spread of positions in the large ones.
        let step = (len / 64).max(1);
        for byte in (0..*len).step_by(step).chain([len - 1]) {
            let mut sides = setup(|_, _| {});
            let result = run(&mut sides, |i, raw| {
                if i == message {
                    raw[byte] ^= 0x01;
                }
            });
            assert_ne!(
                result,
                Ok(true),
                "flipping byte {byte} of message {message} went unnoticed"
            );
        }
    }
}

#[test]
fn stripping_the_post_quantum_group_from_the_client_hello_is_detected() {
    // The client allows classical fallback; an attacker removes the hybrid group from the
    // ClientHello so that a server preferring it must pick X25519. The server's signature covers
    // the transcript with the altered ClientHello, which the client's transcript does not match.
    let mut sides = setup(|server, client| {
        client.key_exchanges = vec![KeyExchange::X25519MlKem768, KeyExchange::X25519];
        server.key_exchanges = vec![KeyExchange::X25519MlKem768, KeyExchange::X25519];
    });
    let result = run(&mut sides, |i, raw| {
        if i == 0 {
            let Ok(Some((HandshakeMessage::ClientHello(mut ch), _))) =
                HandshakeMessage::decode(raw)
            else {
                panic!("first message is the ClientHello");
            };
            ch.kex_groups = vec![KeyExchange::X25519.to_u16()];
            *raw = HandshakeMessage::ClientHello(ch).encode();
        }
    });
    let err = result.unwrap_err();
    assert_eq!(err.code, crate::error::TransportErrorCode::HANDSHAKE_FAILED);
    assert!(err.reason.contains("signature"), "{}", err.reason);
}

#[test]
fn required_client_authentication_accepts_trusted_keys_only() {
    let mut rng = Rng::from_seed([9; 32]);
    let client_key = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let trusted = client_key.public();
    // A trusted client completes, and the server learns who it is.
    let mut sides = setup(|server, client| {
        server.client_auth = ClientAuth::Required(vec![trusted.clone()]);
        client.identity = Some(client_key.clone());
    });
    assert_eq!(run(&mut sides, |_, _| {}), Ok(true));
    assert_eq!(
        sides.server.info().unwrap().peer_identity.as_ref(),
        Some(&client_key.public())
    );
    // A client without an identity is refused.
    let mut sides =
        setup(|server, _| server.client_auth = ClientAuth::Required(vec![trusted.clone()]));
    let err = run(&mut sides, |_, _| {}).unwrap_err();
    assert!(
        err.reason.contains("client authentication required"),
        "{}",
        err.reason
    );
    // An untrusted identity is refused.
    let stranger = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let mut sides = setup(|server, client| {
        server.client_auth = ClientAuth::Required(vec![trusted.clone()]);
        client.identity = Some(stranger.clone());
    });
    let err = run(&mut sides, |_, _| {}).unwrap_err();
    assert!(err.reason.contains("not trusted"), "{}", err.reason);
}

#[test]
fn a_hybrid_ml_dsa_server_identity_authenticates() {
    let mut rng = Rng::from_seed([10; 32]);
    let identity = Arc::new(IdentityKey::generate(
        SignatureScheme::Ed25519MlDsa65,
        &mut rng,
    ));
    let mut sides = setup(|server, client| {
        server.identity = identity.clone();
        *client = ClientConfig::pinned(identity.public());
    });
    assert_eq!(run(&mut sides, |_, _| {}), Ok(true));
    assert_eq!(
        sides.client.info().unwrap().signature_scheme,
        SignatureScheme::Ed25519MlDsa65
    );
}
