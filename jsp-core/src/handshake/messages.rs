//! Framed CBOR handshake messages.
//!
//! Every message travels on the CRYPTO stream as `type: u8 ‖ length: u24 (big-endian) ‖ body`,
//! where the body is one CBOR map of at most [`MAX_MESSAGE_LEN`] bytes, with short text keys
//! (listed on each field). Byte fields are CBOR byte strings (major type 2) — never arrays of
//! integers. Decoding:
//! - ignores unknown map keys, so later versions can add fields;
//! - rejects a missing required field, a duplicate key, a wrong CBOR type and any trailing byte
//!   after the map ([`MessageError::BadCbor`]);
//! - then checks each field's limits ([`MessageError::InvalidField`]): lists non-empty with at
//!   most [`MAX_LIST_LEN`] entries, `random` and `mac` exactly 32 bytes, and the byte-length
//!   limits below.
//!
//! Transport parameters inside ClientHello and EncryptedExtensions are only type-checked here;
//! the handshake calls [`TransportParameters::validate`] on them so that bad values close the
//! connection with TRANSPORT_PARAMETER_ERROR.
//!
//! The transcript hashes the framed bytes as received, so the CBOR needs no canonical form.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;

use serde::{Deserialize, Serialize};

use super::cbor;
use super::params::TransportParameters;
use crate::error::TransportError;

/// Largest message body, in bytes (the frame header comes on top).
pub const MAX_MESSAGE_LEN: usize = 16384;
/// Length of the frame header: type (1) and body length (3).
pub const HEADER_LEN: usize = 4;
/// Most entries in a list of suites, key-exchange groups or signature schemes.
pub const MAX_LIST_LEN: usize = 16;
/// Longest key share (the hybrid X25519 + ML-KEM-768 client share is 1216 bytes).
pub const MAX_SHARE_LEN: usize = 2048;
/// Longest session ticket.
pub const MAX_TICKET_LEN: usize = 1024;
/// Longest NewSessionTicket nonce.
pub const MAX_NONCE_LEN: usize = 64;
/// Longest encoded identity public key (Ed25519 + ML-DSA-65 is 1984 bytes plus encoding).
pub const MAX_PUBLIC_KEY_LEN: usize = 4096;
/// Longest identity signature (Ed25519 + ML-DSA-65 is 3373 bytes plus encoding).
pub const MAX_SIGNATURE_LEN: usize = 4096;

/// Wire type codes.
mod code {
    pub(super) const CLIENT_HELLO: u8 = 1;
    pub(super) const SERVER_HELLO: u8 = 2;
    pub(super) const ENCRYPTED_EXTENSIONS: u8 = 3;
    pub(super) const IDENTITY: u8 = 4;
    pub(super) const IDENTITY_VERIFY: u8 = 5;
    pub(super) const FINISHED: u8 = 6;
    pub(super) const NEW_SESSION_TICKET: u8 = 7;
}

/// One handshake message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeMessage {
    /// Type 1: the client's first message, sent in Initial packets.
    ClientHello(ClientHello),
    /// Type 2: the server's answer, sent in Initial packets.
    ServerHello(ServerHello),
    /// Type 3: the server's transport parameters, under Handshake keys.
    EncryptedExtensions(EncryptedExtensions),
    /// Type 4: a long-term identity key (the server's, or the client's under client auth).
    Identity(Identity),
    /// Type 5: a signature over the transcript by the identity key just sent.
    IdentityVerify(IdentityVerify),
    /// Type 6: a MAC over the transcript under the sender's finished key.
    Finished(Finished),
    /// Type 7: a resumption ticket, sent after the handshake inside a SESSION_TICKET frame.
    NewSessionTicket(NewSessionTicket),
}

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    /// Key `v`. The protocol version the client speaks in this connection.
    #[serde(rename = "v")]
    pub version: u32,
    /// Key `r`. 32 fresh random bytes.
    #[serde(rename = "r", with = "serde_bytes")]
    pub random: [u8; 32],
    /// Key `cs`. Offered cipher suites (wire codes), most preferred first.
    #[serde(rename = "cs")]
    pub suites: Vec<u16>,
    /// Key `kg`. Offered key-exchange groups, most preferred first.
    #[serde(rename = "kg")]
    pub kex_groups: Vec<u16>,
    /// Key `sg`. The group of `share`; one of `kex_groups`.
    #[serde(rename = "sg")]
    pub share_group: u16,
    /// Key `ks`. The client's key share for `share_group`.
    #[serde(rename = "ks", with = "serde_bytes")]
    pub share: Vec<u8>,
    /// Key `ss`. Accepted identity signature schemes, most preferred first.
    #[serde(rename = "ss")]
    pub sig_schemes: Vec<u16>,
    /// Key `tp`. The client's transport parameters.
    #[serde(rename = "tp")]
    pub params: TransportParameters,
    /// Key `psk` (optional). A session ticket offered for resumption.
    #[serde(rename = "psk", skip_serializing_if = "Option::is_none")]
    pub psk: Option<PskOffer>,
    /// Key `ed` (optional, default false). The client sends 0-RTT data under `psk`.
    #[serde(rename = "ed", skip_serializing_if = "is_false")]
    pub early_data: bool,
}

/// A resumption offer inside ClientHello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PskOffer {
    /// Key `t`. The opaque ticket from NewSessionTicket.
    #[serde(rename = "t", with = "serde_bytes")]
    pub ticket: Vec<u8>,
    /// Key `age`. Ticket age in milliseconds plus the ticket's `age_add`, modulo 2^32.
    #[serde(rename = "age")]
    pub obfuscated_age_ms: u32,
}

/// The server's answer to ClientHello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    /// Key `v`. The negotiated protocol version.
    #[serde(rename = "v")]
    pub version: u32,
    /// Key `r`. 32 fresh random bytes.
    #[serde(rename = "r", with = "serde_bytes")]
    pub random: [u8; 32],
    /// Key `cs`. The chosen cipher suite.
    #[serde(rename = "cs")]
    pub suite: u16,
    /// Key `kg`. The chosen key-exchange group (the client's `share_group`).
    #[serde(rename = "kg")]
    pub kex_group: u16,
    /// Key `ks`. The server's key share.
    #[serde(rename = "ks", with = "serde_bytes")]
    pub share: Vec<u8>,
    /// Key `pa` (optional, default false). The offered PSK was accepted.
    #[serde(rename = "pa", skip_serializing_if = "is_false")]
    pub psk_accepted: bool,
    /// Key `ea` (optional, default false). The client's 0-RTT data will be processed.
    #[serde(rename = "ea", skip_serializing_if = "is_false")]
    pub early_data_accepted: bool,
}

/// The server's transport parameters and requests, sent under Handshake keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncryptedExtensions {
    /// Key `tp`. The server's transport parameters.
    #[serde(rename = "tp")]
    pub params: TransportParameters,
    /// Key `ca` (optional, default false). The client must authenticate with its identity.
    #[serde(rename = "ca", skip_serializing_if = "is_false")]
    pub client_auth_requested: bool,
}

/// A long-term identity public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Key `pk`. The encoded public identity (its signature scheme is inside).
    #[serde(rename = "pk", with = "serde_bytes")]
    pub public_key: Vec<u8>,
}

/// A signature over the transcript by the identity just sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentityVerify {
    /// Key `sig`. The encoded signature.
    #[serde(rename = "sig", with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The MAC that closes each side's flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finished {
    /// Key `mac`. HMAC-SHA256 over the transcript hash under the sender's finished key.
    #[serde(rename = "mac", with = "serde_bytes")]
    pub mac: [u8; 32],
}

/// A resumption ticket issued by the server after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewSessionTicket {
    /// Key `lt`. Seconds the ticket may be used for (at most 7 days).
    #[serde(rename = "lt")]
    pub lifetime_s: u32,
    /// Key `aa`. Random value the client adds to the ticket age it reports.
    #[serde(rename = "aa")]
    pub age_add: u32,
    /// Key `n`. Per-ticket value mixed into the resumption PSK.
    #[serde(rename = "n", with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Key `t`. The opaque ticket to present in [`PskOffer::ticket`].
    #[serde(rename = "t", with = "serde_bytes")]
    pub ticket: Vec<u8>,
    /// Key `ed`. Most 0-RTT bytes the server accepts under this ticket; 0 means no 0-RTT.
    #[serde(rename = "ed")]
    pub max_early_data: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a handshake message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The type byte names no message.
    UnknownType(u8),
    /// The announced body length exceeds the limit.
    TooLong {
        /// The announced (or, when encoding, actual) body length.
        len: usize,
        /// The limit, [`MAX_MESSAGE_LEN`].
        max: usize,
    },
    /// The body is not the CBOR map the message type requires.
    BadCbor {
        /// The message being decoded.
        message: &'static str,
        /// What the CBOR decoder reported (bounded length).
        detail: String,
    },
    /// A field decoded but breaks its limits.
    InvalidField {
        /// The message being decoded.
        message: &'static str,
        /// The field (Rust name).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType(t) => write!(f, "unknown handshake message type {t}"),
            Self::TooLong { len, max } => {
                write!(f, "handshake message of {len} bytes exceeds {max}")
            }
            Self::BadCbor { message, detail } => write!(f, "malformed {message}: {detail}"),
            Self::InvalidField {
                message,
                field,
                reason,
            } => write!(f, "invalid {message}.{field}: {reason}"),
        }
    }
}

impl std::error::Error for MessageError {}

/// A malformed handshake message closes the connection with PROTOCOL_VIOLATION.
///
/// FRAME_ENCODING_ERROR is not used: it means a *frame* could not be parsed, while here the CRYPTO
/// frame was fine and its content broke the handshake protocol. HANDSHAKE_FAILED stays reserved for
/// negotiation and authentication failures (no common suite, bad signature or MAC, untrusted key),
/// which callers can then tell apart from garbage.
impl From<MessageError> for TransportError {
    fn from(e: MessageError) -> Self {
        TransportError::protocol(e.to_string())
    }
}

type Check = Result<(), MessageError>;

fn invalid(message: &'static str, field: &'static str, reason: &'static str) -> MessageError {
    MessageError::InvalidField {
        message,
        field,
        reason,
    }
}

fn check_list<T>(message: &'static str, field: &'static str, list: &[T]) -> Check {
    if list.is_empty() {
        return Err(invalid(message, field, "must not be empty"));
    }
    if list.len() > MAX_LIST_LEN {
        return Err(invalid(message, field, "more than 16 entries"));
    }
    Ok(())
}

fn check_len(
    message: &'static str,
    field: &'static str,
    bytes: &[u8],
    max: usize,
    reason: &'static str,
) -> Check {
    if bytes.len() > max {
        return Err(invalid(message, field, reason));
    }
    Ok(())
}

fn array32(
    message: &'static str,
    field: &'static str,
    bytes: Vec<u8>,
) -> Result<[u8; 32], MessageError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| invalid(message, field, "must be exactly 32 bytes"))
}

impl ClientHello {
    fn check(&self) -> Check {
        const M: &str = "ClientHello";
        check_list(M, "suites", &self.suites)?;
        check_list(M, "kex_groups", &self.kex_groups)?;
        check_list(M, "sig_schemes", &self.sig_schemes)?;
        check_len(
            M,
            "share",
            &self.share,
            MAX_SHARE_LEN,
            "longer than 2048 bytes",
        )?;
        if let Some(psk) = &self.psk {
            check_len(
                M,
                "psk.ticket",
                &psk.ticket,
                MAX_TICKET_LEN,
                "longer than 1024 bytes",
            )?;
        }
        Ok(())
    }
}

impl ServerHello {
    fn check(&self) -> Check {
        check_len(
            "ServerHello",
            "share",
            &self.share,
            MAX_SHARE_LEN,
            "longer than 2048 bytes",
        )
    }
}

impl Identity {
    fn check(&self) -> Check {
        check_len(
            "Identity",
            "public_key",
            &self.public_key,
            MAX_PUBLIC_KEY_LEN,
            "longer than 4096 bytes",
        )
    }
}

impl IdentityVerify {
    fn check(&self) -> Check {
        check_len(
            "IdentityVerify",
            "signature",
            &self.signature,
            MAX_SIGNATURE_LEN,
            "longer than 4096 bytes",
        )
    }
}

impl NewSessionTicket {
    fn check(&self) -> Check {
        const M: &str = "NewSessionTicket";
        check_len(
            M,
            "nonce",
            &self.nonce,
            MAX_NONCE_LEN,
            "longer than 64 bytes",
        )?;
        check_len(
            M,
            "ticket",
            &self.ticket,
            MAX_TICKET_LEN,
            "longer than 1024 bytes",
        )
    }
}

/// Decoding mirrors of the public structs: the same keys, byte fields as vectors (so a wrong
/// length is an [`MessageError::InvalidField`], not a CBOR error) and bounded lists.
mod de {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct ClientHello {
        #[serde(rename = "v")]
        pub(super) version: u32,
        #[serde(rename = "r", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) random: Vec<u8>,
        #[serde(rename = "cs", deserialize_with = "cbor::list::deserialize")]
        pub(super) suites: Vec<u16>,
        #[serde(rename = "kg", deserialize_with = "cbor::list::deserialize")]
        pub(super) kex_groups: Vec<u16>,
        #[serde(rename = "sg")]
        pub(super) share_group: u16,
        #[serde(rename = "ks", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) share: Vec<u8>,
        #[serde(rename = "ss", deserialize_with = "cbor::list::deserialize")]
        pub(super) sig_schemes: Vec<u16>,
        #[serde(rename = "tp")]
        pub(super) params: TransportParameters,
        #[serde(rename = "psk", default)]
        pub(super) psk: Option<PskOffer>,
        #[serde(rename = "ed", default)]
        pub(super) early_data: bool,
    }

    #[derive(Deserialize)]
    pub(super) struct PskOffer {
        #[serde(rename = "t", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) ticket: Vec<u8>,
        #[serde(rename = "age")]
        pub(super) obfuscated_age_ms: u32,
    }

    #[derive(Deserialize)]
    pub(super) struct ServerHello {
        #[serde(rename = "v")]
        pub(super) version: u32,
        #[serde(rename = "r", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) random: Vec<u8>,
        #[serde(rename = "cs")]
        pub(super) suite: u16,
        #[serde(rename = "kg")]
        pub(super) kex_group: u16,
        #[serde(rename = "ks", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) share: Vec<u8>,
        #[serde(rename = "pa", default)]
        pub(super) psk_accepted: bool,
        #[serde(rename = "ea", default)]
        pub(super) early_data_accepted: bool,
    }

    #[derive(Deserialize)]
    pub(super) struct EncryptedExtensions {
        #[serde(rename = "tp")]
        pub(super) params: TransportParameters,
        #[serde(rename = "ca", default)]
        pub(super) client_auth_requested: bool,
    }

    #[derive(Deserialize)]
    pub(super) struct Identity {
        #[serde(rename = "pk", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) public_key: Vec<u8>,
    }

    #[derive(Deserialize)]
    pub(super) struct IdentityVerify {
        #[serde(rename = "sig", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) signature: Vec<u8>,
    }

    #[derive(Deserialize)]
    pub(super) struct Finished {
        #[serde(rename = "mac", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) mac: Vec<u8>,
    }

    #[derive(Deserialize)]
    pub(super) struct NewSessionTicket {
        #[serde(rename = "lt")]
        pub(super) lifetime_s: u32,
        #[serde(rename = "aa")]
        pub(super) age_add: u32,
        #[serde(rename = "n", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) nonce: Vec<u8>,
        #[serde(rename = "t", deserialize_with = "cbor::bytes::deserialize")]
        pub(super) ticket: Vec<u8>,
        #[serde(rename = "ed")]
        pub(super) max_early_data: u32,
    }
}

fn body<T: serde::de::DeserializeOwned>(
    message: &'static str,
    bytes: &[u8],
) -> Result<T, MessageError> {
    cbor::from_slice(bytes).map_err(|detail| MessageError::BadCbor { message, detail })
}

fn decode_body(ty: u8, name: &'static str, bytes: &[u8]) -> Result<HandshakeMessage, MessageError> {
    let msg = match ty {
        code::CLIENT_HELLO => {
            let w: de::ClientHello = body(name, bytes)?;
            HandshakeMessage::ClientHello(ClientHello {
                version: w.version,
                random: array32(name, "random", w.random)?,
                suites: w.suites,
                kex_groups: w.kex_groups,
                share_group: w.share_group,
                share: w.share,
                sig_schemes: w.sig_schemes,
                params: w.params,
                psk: w.psk.map(|p| PskOffer {
                    ticket: p.ticket,
                    obfuscated_age_ms: p.obfuscated_age_ms,
                }),
                early_data: w.early_data,
            })
        }
        code::SERVER_HELLO => {
            let w: de::ServerHello = body(name, bytes)?;
            HandshakeMessage::ServerHello(ServerHello {
                version: w.version,
                random: array32(name, "random", w.random)?,
                suite: w.suite,
                kex_group: w.kex_group,
                share: w.share,
                psk_accepted: w.psk_accepted,
                early_data_accepted: w.early_data_accepted,
            })
        }
        code::ENCRYPTED_EXTENSIONS => {
            let w: de::EncryptedExtensions = body(name, bytes)?;
            HandshakeMessage::EncryptedExtensions(EncryptedExtensions {
                params: w.params,
                client_auth_requested: w.client_auth_requested,
            })
        }
        code::IDENTITY => {
            let w: de::Identity = body(name, bytes)?;
            HandshakeMessage::Identity(Identity {
                public_key: w.public_key,
            })
        }
        code::IDENTITY_VERIFY => {
            let w: de::IdentityVerify = body(name, bytes)?;
            HandshakeMessage::IdentityVerify(IdentityVerify {
                signature: w.signature,
            })
        }
        code::FINISHED => {
            let w: de::Finished = body(name, bytes)?;
            HandshakeMessage::Finished(Finished {
                mac: array32(name, "mac", w.mac)?,
            })
        }
        code::NEW_SESSION_TICKET => {
            let w: de::NewSessionTicket = body(name, bytes)?;
            HandshakeMessage::NewSessionTicket(NewSessionTicket {
                lifetime_s: w.lifetime_s,
                age_add: w.age_add,
                nonce: w.nonce,
                ticket: w.ticket,
                max_early_data: w.max_early_data,
            })
        }
        other => return Err(MessageError::UnknownType(other)),
    };
    msg.check()?;
    Ok(msg)
}

/// The message name for a type code, if the code is known.
fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        code::CLIENT_HELLO => "ClientHello",
        code::SERVER_HELLO => "ServerHello",
        code::ENCRYPTED_EXTENSIONS => "EncryptedExtensions",
        code::IDENTITY => "Identity",
        code::IDENTITY_VERIFY => "IdentityVerify",
        code::FINISHED => "Finished",
        code::NEW_SESSION_TICKET => "NewSessionTicket",
        _ => return None,
    })
}

impl HandshakeMessage {
    /// The wire type code (1–7).
    pub fn type_code(&self) -> u8 {
        match self {
            Self::ClientHello(_) => code::CLIENT_HELLO,
            Self::ServerHello(_) => code::SERVER_HELLO,
            Self::EncryptedExtensions(_) => code::ENCRYPTED_EXTENSIONS,
            Self::Identity(_) => code::IDENTITY,
            Self::IdentityVerify(_) => code::IDENTITY_VERIFY,
            Self::Finished(_) => code::FINISHED,
            Self::NewSessionTicket(_) => code::NEW_SESSION_TICKET,
        }
    }

    /// The message's name, as used in errors ("ClientHello", ...).
    pub fn name(&self) -> &'static str {
        type_name(self.type_code()).unwrap_or("unknown")
    }

    /// Checks the field limits that decoding enforces.
    pub fn check(&self) -> Result<(), MessageError> {
        match self {
            Self::ClientHello(m) => m.check(),
            Self::ServerHello(m) => m.check(),
            Self::Identity(m) => m.check(),
            Self::IdentityVerify(m) => m.check(),
            Self::NewSessionTicket(m) => m.check(),
            Self::EncryptedExtensions(_) | Self::Finished(_) => Ok(()),
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Self::ClientHello(m) => cbor::to_vec_into(m, out),
            Self::ServerHello(m) => cbor::to_vec_into(m, out),
            Self::EncryptedExtensions(m) => cbor::to_vec_into(m, out),
            Self::Identity(m) => cbor::to_vec_into(m, out),
            Self::IdentityVerify(m) => cbor::to_vec_into(m, out),
            Self::Finished(m) => cbor::to_vec_into(m, out),
            Self::NewSessionTicket(m) => cbor::to_vec_into(m, out),
        }
    }

    /// The framed message: type, 24-bit length, CBOR body.
    ///
    /// Messages that obey the field limits (see [`HandshakeMessage::check`]) always fit in
    /// [`MAX_MESSAGE_LEN`]. This function does not check: a message beyond the limits is still
    /// framed and the peer rejects it (a body longer than 2^24 − 1 bytes gets the length
    /// 0xFFFFFF, which every receiver rejects as too long, so framing never desynchronizes).
    /// Use [`HandshakeMessage::try_encode`] to check first.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[self.type_code(), 0, 0, 0]);
        if self.write_body(&mut out).is_err() {
            // Unreachable with a Vec writer and these types; send an empty body, which every
            // receiver rejects as malformed, rather than half a map.
            out.truncate(HEADER_LEN);
        }
        crate::coding::patch_u24_frame_len(&mut out);
        out
    }

    /// Like [`HandshakeMessage::encode`], but first checks the field limits and afterwards the
    /// body length, failing instead of producing a frame the peer would reject.
    pub fn try_encode(&self) -> Result<Vec<u8>, MessageError> {
        self.check()?;
        let out = self.encode();
        let body_len = out.len().saturating_sub(HEADER_LEN);
        if body_len > MAX_MESSAGE_LEN {
            return Err(MessageError::TooLong {
                len: body_len,
                max: MAX_MESSAGE_LEN,
            });
        }
        Ok(out)
    }

    /// Parses one framed message from the front of `buf`: `Ok(None)` if more bytes are needed,
    /// `Ok(Some((msg, consumed)))` otherwise.
    ///
    /// An unknown type or an over-long length is reported as soon as the header shows it, without
    /// waiting for the body.
    pub fn decode(buf: &[u8]) -> Result<Option<(HandshakeMessage, usize)>, MessageError> {
        let Some(&ty) = buf.first() else {
            return Ok(None);
        };
        let name = type_name(ty).ok_or(MessageError::UnknownType(ty))?;
        let Some(&[a, b, c]) = buf.get(1..HEADER_LEN) else {
            return Ok(None);
        };
        let len = crate::coding::u24([a, b, c]);
        if len > MAX_MESSAGE_LEN {
            return Err(MessageError::TooLong {
                len,
                max: MAX_MESSAGE_LEN,
            });
        }
        let total = HEADER_LEN + len;
        let Some(body) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let msg = decode_body(ty, name, body)?;
        Ok(Some((msg, total)))
    }
}

#[cfg(test)]
mod tests;
