//! CBOR plumbing shared by the handshake codecs: strict byte-string fields, bounded lists and a
//! bounded decoder.
//!
//! Why not plain `serde_bytes` for decoding: its visitors also accept a CBOR *array of integers*
//! where a byte string is expected, which would give every byte field two encodings (and an
//! allocation per element). The helpers here serialize through `serde_bytes` (a CBOR byte
//! string, major type 2) and accept only a byte string when decoding.
//!
//! Allocation bounds, checked against ciborium 0.2.2's deserializer:
//! - a byte or text string is read in scratch-sized chunks and the buffer grows only by bytes
//!   actually present, so a header that claims 2^64 bytes costs nothing before the read fails;
//! - lists go through [`list`], which keeps at most [`LIST_KEEP`] elements and ignores the rest
//!   (serde's `Vec` would otherwise preallocate up to 1 MiB from a hostile length header);
//! - skipped unknown map values allocate only their own strings (bounded by the input);
//! - nesting is capped at [`RECURSION_LIMIT`] levels, so hostile nesting cannot exhaust the stack.
//!
//! A decoded body therefore costs at most a small multiple of its length (≤ `MAX_MESSAGE_LEN`).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Serializer;

/// Deepest nesting of CBOR arrays, maps and tags accepted in a handshake or file-transfer body.
/// Handshake messages nest three levels (message → parameters → byte strings), file manifests
/// four; the rest is room for extensions.
pub(crate) const RECURSION_LIMIT: usize = 16;

/// Elements a decoded list keeps: one more than any list limit, so that an over-long list is
/// still reported as too long (by field validation) without being stored in full.
pub(crate) const LIST_KEEP: usize = 17;

/// Longest error detail kept from the CBOR decoder, in characters.
const MAX_DETAIL_CHARS: usize = 160;

/// Decodes exactly one CBOR item of type `T` from `body`; trailing bytes are an error.
/// The error is a short human-readable detail.
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

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
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

/// `#[serde(with = "cbor::bytes")]` for `Vec<u8>`: a CBOR byte string, nothing else.
pub(crate) mod bytes {
    use super::*;

    /// Serializes as a byte string.
    pub(crate) fn serialize<T, S>(v: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: ?Sized + serde_bytes::Serialize,
        S: Serializer,
    {
        serde_bytes::serialize(v, s)
    }

    /// Accepts only a byte string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(ByteBufVisitor)
    }
}

/// `#[serde(with = "cbor::opt_bytes")]` for `Option<Vec<u8>>`: null or a byte string.
pub(crate) mod opt_bytes {
    use super::*;

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or a byte string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::bytes::deserialize(d).map(Some)
        }
    }

    /// Serializes as null or a byte string.
    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::serialize(v, s)
    }

    /// Accepts null or a byte string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

/// `#[serde(with = "cbor::opt_array")]` for `Option<[u8; N]>`: null or a byte string of exactly
/// `N` bytes.
pub(crate) mod opt_array {
    use super::*;

    struct ArrayVisitor<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a byte string of {N} bytes")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
            <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
        }
    }

    struct OptVisitor<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for OptVisitor<N> {
        type Value = Option<[u8; N]>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "null or a byte string of {N} bytes")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_bytes(ArrayVisitor::<N>).map(Some)
        }
    }

    /// Serializes as null or a byte string.
    pub(crate) fn serialize<S: Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.serialize_some(serde_bytes::Bytes::new(a)),
            None => s.serialize_none(),
        }
    }

    /// Accepts null or a byte string of exactly `N` bytes.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        d.deserialize_option(OptVisitor::<N>)
    }
}

/// `#[serde(deserialize_with = "cbor::list::deserialize")]` for `Vec<T>`: keeps at most
/// [`LIST_KEEP`] elements (never trusting the length header for preallocation) and skips the
/// rest, so that field validation reports the list as too long.
pub(crate) mod list {
    use super::*;

    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T: de::Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(LIST_KEEP));
            while out.len() < LIST_KEEP {
                match seq.next_element()? {
                    Some(v) => out.push(v),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }

    /// Accepts an array, keeping at most [`LIST_KEEP`] elements.
    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: de::Deserialize<'de>,
    {
        d.deserialize_seq(ListVisitor(PhantomData))
    }
}
