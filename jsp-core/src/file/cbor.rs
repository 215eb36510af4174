//! Strict, bounded CBOR decoding for file-transfer messages. Decoding and encoding of whole
//! items are the handshake's ([`crate::handshake::cbor`]); this module adds the field helpers the
//! file messages use:
//! - byte fields accept only a CBOR byte string (major type 2), never an array of integers;
//! - lists go through [`list`], which never preallocates from the length header and keeps at most
//!   `MAX + 1` elements, skipping the rest, so validation reports "too many" without the list
//!   being stored in full;
//! - nesting is capped at `handshake::cbor::RECURSION_LIMIT` (16);
//! - ciborium 0.2.2 reads byte and text strings in scratch-sized pieces and grows a buffer only by
//!   bytes actually present, so a header claiming 2^64 bytes costs nothing.
//!
//! Invariant: decoding a body of `n` bytes allocates at most a small multiple of `n`.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

pub(crate) use crate::handshake::cbor::{from_slice, to_vec_into};

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
