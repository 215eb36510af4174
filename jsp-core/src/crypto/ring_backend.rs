//! The `ring` backend for native builds: AES-256-GCM and ChaCha20-Poly1305 with assembly
//! implementations. `ring` has no AES-GCM-SIV; for that suite the caller falls back to RustCrypto.

use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};

use super::{
    nonce_for, CipherSuite, CryptoError, HeaderKey, PacketKey, HP_KEY_LEN, IV_LEN, KEY_LEN,
    SAMPLE_LEN, TAG_LEN,
};

struct Key {
    suite: CipherSuite,
    key: LessSafeKey,
    iv: [u8; IV_LEN],
}

pub(super) fn packet_key(
    suite: CipherSuite,
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
) -> Option<Box<dyn PacketKey>> {
    let alg = match suite {
        CipherSuite::Aes256Gcm => &aead::AES_256_GCM,
        CipherSuite::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        CipherSuite::Aes256GcmSiv => return None,
    };
    let key = LessSafeKey::new(UnboundKey::new(alg, key).ok()?);
    Some(Box::new(Key {
        suite,
        key,
        iv: *iv,
    }))
}

impl PacketKey for Key {
    fn suite(&self) -> CipherSuite {
        self.suite
    }

    fn seal(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<(), CryptoError> {
        let len = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::BufferTooShort)?;
        let nonce = Nonce::assume_unique_for_key(nonce_for(&self.iv, packet_number));
        let (plain, tag_out) = payload.split_at_mut(len);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), plain)
            .map_err(|_| CryptoError::BufferTooShort)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    fn open<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let nonce = Nonce::assume_unique_for_key(nonce_for(&self.iv, packet_number));
        self.key
            .open_in_place(nonce, Aad::from(header), payload)
            .map_err(|_| CryptoError::DecryptFailed)
    }
}

struct Hp(quic::HeaderProtectionKey);

impl HeaderKey for Hp {
    fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 5] {
        // `new_mask` only fails for a sample of the wrong length, which the type rules out.
        self.0.new_mask(sample).unwrap_or([0; 5])
    }
}

pub(super) fn header_key(suite: CipherSuite, key: &[u8; HP_KEY_LEN]) -> Option<Box<dyn HeaderKey>> {
    let alg = match suite {
        CipherSuite::Aes256Gcm => &quic::AES_256,
        CipherSuite::ChaCha20Poly1305 => &quic::CHACHA20,
        CipherSuite::Aes256GcmSiv => return None,
    };
    Some(Box::new(Hp(quic::HeaderProtectionKey::new(alg, key).ok()?)))
}
