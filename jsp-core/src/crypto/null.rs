//! The null cipher: copies plaintext, writes a zero tag, masks nothing.
//!
//! Only for tests, fuzzing and benchmarks that measure transport cost without crypto cost. It is
//! chosen locally ([`super::Backend::Null`]) and is never negotiated on the wire.

use super::{CipherSuite, CryptoError, HeaderKey, PacketKey, SAMPLE_LEN, TAG_LEN};

/// A key that does nothing but keep the packet layout (a 16-byte tag of zeros).
pub(crate) struct NullKey {
    suite: CipherSuite,
}

impl NullKey {
    pub(crate) fn new(suite: CipherSuite) -> Self {
        Self { suite }
    }
}

impl PacketKey for NullKey {
    fn suite(&self) -> CipherSuite {
        self.suite
    }

    fn seal(&self, _pn: u64, _header: &[u8], payload: &mut [u8]) -> Result<(), CryptoError> {
        let len = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::BufferTooShort)?;
        payload[len..].fill(0);
        Ok(())
    }

    fn open<'a>(
        &self,
        _pn: u64,
        _header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let len = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::DecryptFailed)?;
        let (plain, tag) = payload.split_at_mut(len);
        if tag.iter().any(|&b| b != 0) {
            return Err(CryptoError::DecryptFailed);
        }
        Ok(plain)
    }
}

impl HeaderKey for NullKey {
    fn mask(&self, _sample: &[u8; SAMPLE_LEN]) -> [u8; 5] {
        [0; 5]
    }
}
