//! AEAD cipher suites and their negotiation order.

/// An AEAD cipher suite for packet protection. The wire code is the `u16` discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum CipherSuite {
    /// AES-256 in Galois/Counter Mode, header protection with AES-256-ECB.
    Aes256Gcm = 0x0001,
    /// ChaCha20-Poly1305 (RFC 8439), header protection with ChaCha20.
    ChaCha20Poly1305 = 0x0002,
    /// AES-256-GCM-SIV (RFC 8452, nonce-misuse resistant), header protection with AES-256-ECB.
    Aes256GcmSiv = 0x0003,
}

impl CipherSuite {
    /// Every suite this implementation knows.
    pub const ALL: [Self; 3] = [Self::Aes256Gcm, Self::ChaCha20Poly1305, Self::Aes256GcmSiv];

    /// The suite's wire code.
    pub const fn to_u16(self) -> u16 {
        self as u16
    }

    /// The suite with wire code `code`, if known.
    pub const fn from_u16(code: u16) -> Option<Self> {
        match code {
            0x0001 => Some(Self::Aes256Gcm),
            0x0002 => Some(Self::ChaCha20Poly1305),
            0x0003 => Some(Self::Aes256GcmSiv),
            _ => None,
        }
    }
}

impl core::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Aes256Gcm => "AES-256-GCM",
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Self::Aes256GcmSiv => "AES-256-GCM-SIV",
        })
    }
}
