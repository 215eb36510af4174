//! Connection IDs.
//!
//! A connection ID names a connection independently of the addresses it runs over, so that a
//! connection survives NAT rebinding and migration. Each endpoint picks the IDs its peer puts in
//! the destination field; the length is fixed per endpoint ([`crate::config::EndpointConfig`]),
//! which lets the short header omit a length byte. Long headers carry explicit lengths.

use crate::rand::Rng;

/// The longest connection ID the wire format allows, in bytes.
pub const MAX_CID_LEN: usize = 20;

/// A connection ID of 0 to [`MAX_CID_LEN`] bytes, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl ConnectionId {
    /// The empty connection ID.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MAX_CID_LEN],
    };

    /// A connection ID with the given bytes, or `None` when longer than [`MAX_CID_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_CID_LEN {
            return None;
        }
        let mut out = Self::EMPTY;
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        out.len = bytes.len() as u8;
        Some(out)
    }

    /// A random connection ID of `len` bytes (clamped to [`MAX_CID_LEN`]).
    pub fn random(rng: &mut Rng, len: usize) -> Self {
        let len = len.min(MAX_CID_LEN);
        let mut out = Self::EMPTY;
        rng.fill(&mut out.bytes[..len]);
        out.len = len as u8;
        out
    }

    /// The ID's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The ID's length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the ID is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl core::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl core::fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl core::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_longer_than_twenty_bytes_are_refused() {
        assert!(ConnectionId::new(&[0; 21]).is_none());
        let id = ConnectionId::new(&[1, 2, 3]).unwrap();
        assert_eq!(id.as_bytes(), &[1, 2, 3]);
        assert_eq!(format!("{id}"), "010203");
        let mut rng = Rng::from_seed([0; 32]);
        assert_eq!(ConnectionId::random(&mut rng, 8).len(), 8);
    }
}
