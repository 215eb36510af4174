//! Cryptography: cipher suites, packet and header protection, the key schedule, the hybrid
//! post-quantum key exchange and identity signatures.
//!
//! Packet protection is the hot path, so it sits behind two small object-safe traits,
//! [`PacketKey`] (AEAD seal/open in place) and [`HeaderKey`] (header-protection mask), built by a
//! [`Backend`]. Native builds use `ring` for AES-256-GCM and ChaCha20-Poly1305 (several times faster
//! than the pure-Rust crates here); WebAssembly and pure-Rust builds, and AES-256-GCM-SIV (which
//! `ring` lacks), use the RustCrypto crates. Both backends produce identical bytes.
//!
//! The [`Backend::Null`] cipher exists for tests, fuzzing and benchmarks that separate transport
//! cost from crypto cost. It is a local setting that both sides must choose; it is never negotiated
//! on the wire.

pub mod kex;
pub mod schedule;
pub mod sign;
mod suite;

mod null;
#[cfg(not(target_arch = "wasm32"))]
mod ring_backend;
mod rustcrypto;

pub use suite::CipherSuite;

/// AEAD key length of every suite, in bytes.
pub const KEY_LEN: usize = 32;
/// AEAD nonce (IV) length of every suite, in bytes.
pub const IV_LEN: usize = 12;
/// AEAD tag length of every suite, in bytes.
pub const TAG_LEN: usize = 16;
/// Header-protection key length, in bytes.
pub const HP_KEY_LEN: usize = 32;
/// Header-protection sample length, in bytes.
pub const SAMPLE_LEN: usize = 16;

/// A failure of a cryptographic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext did not authenticate (tampered, wrong key, or not a packet of ours).
    DecryptFailed,
    /// The buffer is too short to hold the tag.
    BufferTooShort,
}

impl core::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DecryptFailed => f.write_str("packet failed authentication"),
            Self::BufferTooShort => f.write_str("buffer too short for the AEAD tag"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// One direction's packet-protection key: AEAD with nonce = IV XOR packet number.
pub trait PacketKey: Send + Sync {
    /// The suite this key belongs to.
    fn suite(&self) -> CipherSuite;

    /// Seals in place. `payload` holds the plaintext followed by [`TAG_LEN`] spare bytes, which
    /// receive the tag; `header` is the associated data.
    fn seal(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<(), CryptoError>;

    /// Opens in place. `payload` holds ciphertext and tag; on success returns the plaintext prefix.
    fn open<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError>;
}

/// One direction's header-protection key.
pub trait HeaderKey: Send + Sync {
    /// The 5-byte mask for a 16-byte sample of the ciphertext: byte 0 masks the low flag bits,
    /// bytes 1..5 mask the packet number.
    fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 5];
}

/// Which implementation builds packet and header keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `ring` where it is available and supports the suite, RustCrypto otherwise.
    #[default]
    Auto,
    /// `ring` (native builds only; AES-256-GCM-SIV falls back to RustCrypto).
    #[cfg(not(target_arch = "wasm32"))]
    Ring,
    /// The pure-Rust RustCrypto crates.
    RustCrypto,
    /// No confidentiality or integrity: for tests and benchmarks only, chosen locally by both sides.
    Null,
}

impl Backend {
    /// A packet key for `suite`.
    pub fn packet_key(
        self,
        suite: CipherSuite,
        key: &[u8; KEY_LEN],
        iv: &[u8; IV_LEN],
    ) -> Box<dyn PacketKey> {
        match self {
            Self::Null => Box::new(null::NullKey::new(suite)),
            Self::RustCrypto => rustcrypto::packet_key(suite, key, iv),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Ring | Self::Auto => ring_backend::packet_key(suite, key, iv)
                .unwrap_or_else(|| rustcrypto::packet_key(suite, key, iv)),
            #[cfg(target_arch = "wasm32")]
            Self::Auto => rustcrypto::packet_key(suite, key, iv),
        }
    }

    /// A header-protection key for `suite`.
    pub fn header_key(self, suite: CipherSuite, key: &[u8; HP_KEY_LEN]) -> Box<dyn HeaderKey> {
        match self {
            Self::Null => Box::new(null::NullKey::new(suite)),
            Self::RustCrypto => rustcrypto::header_key(suite, key),
            #[cfg(not(target_arch = "wasm32"))]
            Self::Ring | Self::Auto => ring_backend::header_key(suite, key)
                .unwrap_or_else(|| rustcrypto::header_key(suite, key)),
            #[cfg(target_arch = "wasm32")]
            Self::Auto => rustcrypto::header_key(suite, key),
        }
    }
}

/// Builds the nonce for `packet_number`: the IV with the packet number XORed into its last 8 bytes.
pub fn nonce_for(iv: &[u8; IV_LEN], packet_number: u64) -> [u8; IV_LEN] {
    let mut nonce = *iv;
    for (n, p) in nonce[IV_LEN - 8..]
        .iter_mut()
        .zip(packet_number.to_be_bytes())
    {
        *n ^= p;
    }
    nonce
}

#[cfg(test)]
mod tests;
