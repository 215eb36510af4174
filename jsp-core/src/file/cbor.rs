//! Strict, bounded CBOR decoding for file-transfer messages, built the way
//! `handshake::cbor` is (which stays private to the handshake):
//! - byte fields accept only a CBOR byte string (major type 2), never an array of integers;
//! - lists go through [`list`], which never preallocates from the length header and keeps at most
//!   `MAX + 1` elements, skipping the rest, so validation reports "too many" without the list
//!   being stored in full;
//! - nesting is capped at [`RECURSION_LIMIT`];
//! - ciborium 0.2.2 reads byte and text strings in scratch-sized pieces and grows a buffer only by
//!   bytes actually present, so a header claiming 2^64 bytes costs nothing.
//!
//! Invariant: decoding a body of `n` bytes allocates at most a small multiple of `n`.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Deepest nesting accepted: a manifest nests four levels (map → entry list → entry → bytes).
pub(crate) const RECURSION_LIMIT: usize = 16;

/// Longest error detail kept from the CBOR decoder, in characters.
const MAX_DETAIL_CHARS: usize = 160;

/// Decodes exactly one CBOR item from `body`; trailing bytes are an error.
pub(crate) fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut rest = body;
    let value: T = ciborium::de::from_reader_with_recursion_limit(&mut rest, RECURSION_LIMIT)
        .map_err(|e| {
            let text = match e {
                ciborium::de::Error::Io(io) => format!("truncated: {io}"),
                ciborium::de::Error::Syntax(offset) => format!("syntax error at byte {offset}"),
                ciborium::de::Error::Semantic(offset, msg) => match offset {
                    Some(o) => format!("at byte {o}: {msg}"),
                    None => msg,
                },
                ciborium::de::Error::RecursionLimitExceeded => {
                    format!("nested deeper than {RECURSION_LIMIT} levels")
                }
            };
            text.chars().take(MAX_DETAIL_CHARS).collect::<String>()
        })?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// Encodes `value` as CBOR, appending to `out`.
pub(crate) fn to_vec_into<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    ciborium::ser::into_writer(value, out).map_err(|e| format!("{e:?}"))
}

/// `deserialize_with = "cbor::bytes"`: a CBOR byte string, nothing else.
pub(crate) fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct ByteBufVisitor;

    impl Visitor<'_> for ByteBufVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }

    d.deserialize_byte_buf(ByteBufVisitor)
}

/// `deserialize_with = "cbor::list::<_, _, MAX>"`: an array, keeping at most `MAX + 1` elements.
pub(crate) fn list<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    struct ListVisitor<T, const MAX: usize>(PhantomData<T>);

    impl<'de, T: de::Deserialize<'de>, const MAX: usize> Visitor<'de> for ListVisitor<T, MAX> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let keep = MAX.saturating_add(1);
            // Grow by what is present, never by the (hostile) length header.
            let mut out = Vec::new();
            while out.len() < keep {
                match seq.next_element()? {
                    Some(v) => out.push(v),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }

    d.deserialize_seq(ListVisitor::<T, MAX>(PhantomData))
}
