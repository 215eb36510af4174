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

    /// The suites in this host's order of preference: AES-256-GCM first when the CPU has AES and
    /// carry-less multiplication instructions (x86-64 AES-NI + PCLMULQDQ, ARMv8 AES + PMULL),
    /// ChaCha20-Poly1305 first otherwise (WebAssembly and other targets included), and
    /// AES-256-GCM-SIV last (it is the misuse-resistant, slower suite, chosen only on request).
    pub fn default_preference() -> Vec<CipherSuite> {
        if has_hardware_aes() {
            vec![Self::Aes256Gcm, Self::ChaCha20Poly1305, Self::Aes256GcmSiv]
        } else {
            vec![Self::ChaCha20Poly1305, Self::Aes256Gcm, Self::Aes256GcmSiv]
        }
    }

    /// Confidentiality limit: the most packets one key may seal before a key update (RFC 9001
    /// §6.6). AES-256-GCM: 2^23 for full-size packets; AES-256-GCM-SIV: the same figure, kept
    /// conservative; ChaCha20-Poly1305: no practical limit (the packet-number space ends first).
    pub const fn confidentiality_limit(self) -> u64 {
        match self {
            Self::Aes256Gcm | Self::Aes256GcmSiv => 1 << 23,
            Self::ChaCha20Poly1305 => u64::MAX,
        }
    }

    /// Integrity limit: the most packets that may fail authentication under one key before the
    /// connection is closed (RFC 9001 §6.6): ChaCha20-Poly1305 2^36, AES-256-GCM 2^52,
    /// AES-256-GCM-SIV 2^52.
    pub const fn integrity_limit(self) -> u64 {
        match self {
            Self::ChaCha20Poly1305 => 1 << 36,
            Self::Aes256Gcm | Self::Aes256GcmSiv => 1 << 52,
        }
    }
}

#[cfg(target_arch = "x86_64")]
cpufeatures::new!(cpu_aes_clmul, "aes", "pclmulqdq");

// On aarch64, cpufeatures' "aes" covers both the AES and PMULL instructions (Linux: HWCAP_AES |
// HWCAP_PMULL; Apple silicon has both).
#[cfg(target_arch = "aarch64")]
cpufeatures::new!(cpu_aes_clmul, "aes");

/// Whether the CPU has the instructions that make AES-GCM fast and constant-time.
fn has_hardware_aes() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        cpu_aes_clmul::get()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_lists_every_suite_once() {
        let pref = CipherSuite::default_preference();
        assert_eq!(pref.len(), CipherSuite::ALL.len());
        for s in CipherSuite::ALL {
            assert!(pref.contains(&s));
        }
        assert_eq!(pref.last(), Some(&CipherSuite::Aes256GcmSiv));
        let first = if has_hardware_aes() {
            CipherSuite::Aes256Gcm
        } else {
            CipherSuite::ChaCha20Poly1305
        };
        assert_eq!(pref[0], first);
    }

    #[test]
    fn limits_follow_rfc9001() {
        assert_eq!(CipherSuite::Aes256Gcm.confidentiality_limit(), 1 << 23);
        assert_eq!(CipherSuite::Aes256GcmSiv.confidentiality_limit(), 1 << 23);
        assert_eq!(
            CipherSuite::ChaCha20Poly1305.confidentiality_limit(),
            u64::MAX
        );
        assert_eq!(CipherSuite::ChaCha20Poly1305.integrity_limit(), 1 << 36);
        assert_eq!(CipherSuite::Aes256Gcm.integrity_limit(), 1 << 52);
        assert_eq!(CipherSuite::Aes256GcmSiv.integrity_limit(), 1 << 52);
    }

    #[test]
    fn wire_codes_round_trip() {
        for s in CipherSuite::ALL {
            assert_eq!(CipherSuite::from_u16(s.to_u16()), Some(s));
        }
        assert_eq!(CipherSuite::from_u16(0), None);
    }
}
