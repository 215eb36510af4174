//! The RustCrypto backend: pure Rust, builds everywhere (WebAssembly included), and the only
//! backend for AES-256-GCM-SIV.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use chacha20::cipher::{consts::U10, KeyIvInit, StreamCipherCore, StreamCipherSeekCore};

use zeroize::{Zeroize, Zeroizing};

use super::{
    nonce_for, CipherSuite, CryptoError, HeaderKey, PacketKey, HP_KEY_LEN, IV_LEN, KEY_LEN,
    SAMPLE_LEN, TAG_LEN,
};

enum Aead {
    Gcm(Box<aes_gcm::Aes256Gcm>),
    ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
    Siv(Box<aes_gcm_siv::Aes256GcmSiv>),
}

struct Key {
    suite: CipherSuite,
    aead: Aead,
    iv: [u8; IV_LEN],
}

pub(super) fn packet_key(
    suite: CipherSuite,
    key: &[u8; KEY_LEN],
    iv: &[u8; IV_LEN],
) -> Box<dyn PacketKey> {
    let aead = match suite {
        CipherSuite::Aes256Gcm => Aead::Gcm(Box::new(aes_gcm::Aes256Gcm::new(key.into()))),
        CipherSuite::ChaCha20Poly1305 => Aead::ChaCha(Box::new(
            chacha20poly1305::ChaCha20Poly1305::new(key.into()),
        )),
        CipherSuite::Aes256GcmSiv => {
            Aead::Siv(Box::new(aes_gcm_siv::Aes256GcmSiv::new(key.into())))
        }
    };
    Box::new(Key {
        suite,
        aead,
        iv: *iv,
    })
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
        let nonce = nonce_for(&self.iv, packet_number);
        let (plain, tag_out) = payload.split_at_mut(len);
        let tag = match &self.aead {
            Aead::Gcm(c) => c.encrypt_in_place_detached((&nonce).into(), header, plain),
            Aead::ChaCha(c) => c.encrypt_in_place_detached((&nonce).into(), header, plain),
            Aead::Siv(c) => c.encrypt_in_place_detached((&nonce).into(), header, plain),
        }
        .map_err(|_| CryptoError::BufferTooShort)?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    fn open<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let len = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::DecryptFailed)?;
        let nonce = nonce_for(&self.iv, packet_number);
        let (plain, tag) = payload.split_at_mut(len);
        let tag: &[u8] = tag;
        match &self.aead {
            Aead::Gcm(c) => c.decrypt_in_place_detached((&nonce).into(), header, plain, tag.into()),
            Aead::ChaCha(c) => {
                c.decrypt_in_place_detached((&nonce).into(), header, plain, tag.into())
            }
            Aead::Siv(c) => c.decrypt_in_place_detached((&nonce).into(), header, plain, tag.into()),
        }
        .map_err(|_| CryptoError::DecryptFailed)?;
        Ok(plain)
    }
}

enum Hp {
    Aes(Box<aes::Aes256>),
    ChaCha(Zeroizing<[u8; HP_KEY_LEN]>),
}

impl HeaderKey for Hp {
    fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 5] {
        let mut out = [0u8; 5];
        match self {
            Self::Aes(cipher) => {
                let mut block = aes::Block::clone_from_slice(sample);
                cipher.encrypt_block(&mut block);
                out.copy_from_slice(&block[..5]);
            }
            Self::ChaCha(key) => {
                // RFC 9001 §5.4.4: counter = first 4 sample bytes (little-endian), nonce = the rest.
                // The sample is ciphertext a peer chooses, so the counter may be u32::MAX, the last
                // block of the keystream. The buffered `ChaCha20` wrapper panics there ("end of
                // keystream"); the core writes one block at any position without that check.
                let counter = u32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]]);
                let mut nonce = [0u8; 12];
                nonce.copy_from_slice(&sample[4..]);
                let mut core = chacha20::ChaChaCore::<U10>::new((&**key).into(), (&nonce).into());
                core.set_block_pos(counter);
                let mut block = chacha20::cipher::Block::<chacha20::ChaChaCore<U10>>::default();
                core.write_keystream_block(&mut block);
                out.copy_from_slice(&block[..5]);
                block.zeroize();
            }
        }
        out
    }
}

pub(super) fn header_key(suite: CipherSuite, key: &[u8; HP_KEY_LEN]) -> Box<dyn HeaderKey> {
    match suite {
        CipherSuite::ChaCha20Poly1305 => Box::new(Hp::ChaCha(Zeroizing::new(*key))),
        CipherSuite::Aes256Gcm | CipherSuite::Aes256GcmSiv => {
            Box::new(Hp::Aes(Box::new(aes::Aes256::new(key.into()))))
        }
    }
}
