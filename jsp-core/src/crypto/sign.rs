//! Identity keys: Ed25519, or the hybrid Ed25519 + ML-DSA-65 (FIPS 204).
//!
//! A hybrid signature is valid only if *both* components verify, so it stays unforgeable as long
//! as either algorithm is unbroken. Both components sign the same domain-separated message
//! `M' = HYBRID_CONTEXT ‖ message`, so neither half of a hybrid signature is a valid Ed25519
//! signature of `message` for an Ed25519-only identity with the same key (no cross-scheme reuse).
//! ML-DSA signs deterministically (FIPS 204's "deterministic variant", empty context string), as
//! Ed25519 does: no randomness is needed at signing time.
//!
//! Encodings (all integers big-endian):
//! - public identity: `u16 scheme ‖ Ed25519 public key (32) ‖ [ML-DSA-65 public key (1952)]`;
//! - private key file: `u16 scheme ‖ Ed25519 seed (32) ‖ [ML-DSA-65 seed ξ (32)]`;
//! - signature: `Ed25519 signature (64) ‖ [ML-DSA-65 signature (3309)]`;
//! - text form ([`PublicIdentity`]'s `Display`/`FromStr`): `"jsp1:"` followed by the lowercase
//!   hex of the public encoding (68 hex digits for Ed25519, 3972 for the hybrid).

use ed25519_dalek::Signer as _;
use ml_dsa::{signature::Signer as _, EncodedVerifyingKey, MlDsa65};
use sha2::{Digest, Sha256};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::rand::Rng;

/// Ed25519 public key length, in bytes.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Ed25519 signature length, in bytes.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// ML-DSA-65 public key length, in bytes (FIPS 204 Table 2).
pub const MLDSA65_PUBLIC_LEN: usize = 1952;
/// ML-DSA-65 signature length, in bytes (FIPS 204 Table 2).
pub const MLDSA65_SIGNATURE_LEN: usize = 3309;
/// Private seed length of either component, in bytes.
pub const SEED_LEN: usize = 32;
/// The prefix of the message both halves of a hybrid signature sign.
pub const HYBRID_CONTEXT: &[u8] = b"JSP1 hybrid signature Ed25519+ML-DSA-65\0";
/// The prefix of the text form of a [`PublicIdentity`].
pub const TEXT_PREFIX: &str = "jsp1:";

/// A signature scheme for identity keys. The wire code is the `u16` discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum SignatureScheme {
    /// Ed25519 (RFC 8032), the TLS code point.
    Ed25519 = 0x0807,
    /// Ed25519 and ML-DSA-65 together; both must verify.
    Ed25519MlDsa65 = 0x0905,
}

impl SignatureScheme {
    /// The scheme with wire code `code`, if known.
    pub const fn from_u16(code: u16) -> Option<Self> {
        match code {
            0x0807 => Some(Self::Ed25519),
            0x0905 => Some(Self::Ed25519MlDsa65),
            _ => None,
        }
    }

    /// The scheme's wire code.
    pub const fn to_u16(self) -> u16 {
        self as u16
    }

    /// Whether the scheme has a post-quantum component.
    pub const fn is_post_quantum(self) -> bool {
        matches!(self, Self::Ed25519MlDsa65)
    }

    /// Length of a signature, in bytes (64, or 64 + 3309).
    pub const fn signature_len(self) -> usize {
        match self {
            Self::Ed25519 => ED25519_SIGNATURE_LEN,
            Self::Ed25519MlDsa65 => ED25519_SIGNATURE_LEN + MLDSA65_SIGNATURE_LEN,
        }
    }

    /// Length of [`PublicIdentity::to_bytes`], in bytes.
    pub const fn public_len(self) -> usize {
        match self {
            Self::Ed25519 => 2 + ED25519_PUBLIC_LEN,
            Self::Ed25519MlDsa65 => 2 + ED25519_PUBLIC_LEN + MLDSA65_PUBLIC_LEN,
        }
    }

    /// Length of [`IdentityKey::to_bytes`], in bytes.
    pub const fn private_len(self) -> usize {
        match self {
            Self::Ed25519 => 2 + SEED_LEN,
            Self::Ed25519MlDsa65 => 2 + 2 * SEED_LEN,
        }
    }

    fn parse(b: &[u8]) -> Result<(Self, &[u8]), SignatureError> {
        let (code, rest) = b
            .split_first_chunk::<2>()
            .ok_or(SignatureError::Malformed("missing scheme"))?;
        let code = u16::from_be_bytes(*code);
        let scheme = Self::from_u16(code).ok_or(SignatureError::UnknownScheme(code))?;
        Ok((scheme, rest))
    }
}

impl core::fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Ed25519 => "Ed25519",
            Self::Ed25519MlDsa65 => "Ed25519+ML-DSA-65",
        })
    }
}

/// Why a key could not be parsed or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The encoding is wrong (length, point, hex); the text says which part.
    Malformed(&'static str),
    /// The scheme code is not one we know.
    UnknownScheme(u16),
    /// The signature does not verify.
    BadSignature,
    /// Signing failed (ML-DSA's rejection sampling gave up; probability far below 2^-128).
    SigningFailed,
}

impl core::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed {what}"),
            Self::UnknownScheme(code) => write!(f, "unknown signature scheme {code:#06x}"),
            Self::BadSignature => f.write_str("signature verification failed"),
            Self::SigningFailed => f.write_str("signing failed"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// A private identity key. Zeroized on drop; `Debug` shows only the public fingerprint.
pub struct IdentityKey {
    scheme: SignatureScheme,
    ed25519: ed25519_dalek::SigningKey,
    mldsa: Option<Box<ml_dsa::SigningKey<MlDsa65>>>,
}

// Both component keys zeroize themselves on drop (ed25519-dalek and ml-dsa `zeroize` features).
impl ZeroizeOnDrop for IdentityKey {}

impl core::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentityKey")
            .field("scheme", &self.scheme)
            .field("fingerprint", &Hex(&self.public().fingerprint()))
            .finish_non_exhaustive()
    }
}

impl IdentityKey {
    /// A fresh key for `scheme`.
    pub fn generate(scheme: SignatureScheme, rng: &mut Rng) -> Self {
        let ed = Zeroizing::new(rng.array::<SEED_LEN>());
        let pq = Zeroizing::new(rng.array::<SEED_LEN>());
        Self::from_seeds(scheme, &ed, &pq)
    }

    fn from_seeds(scheme: SignatureScheme, ed: &[u8; SEED_LEN], pq: &[u8; SEED_LEN]) -> Self {
        let mldsa = match scheme {
            SignatureScheme::Ed25519 => None,
            SignatureScheme::Ed25519MlDsa65 => {
                let seed = Zeroizing::new(ml_dsa::Seed::from(*pq));
                Some(Box::new(ml_dsa::SigningKey::<MlDsa65>::from_seed(&seed)))
            }
        };
        Self {
            scheme,
            ed25519: ed25519_dalek::SigningKey::from_bytes(ed),
            mldsa,
        }
    }

    /// The key's scheme.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            scheme: self.scheme,
            ed25519: self.ed25519.verifying_key().to_bytes(),
            mldsa: self.mldsa.as_ref().map(|sk| {
                let vk: &ml_dsa::VerifyingKey<MlDsa65> = sk.as_ref().as_ref();
                vk.encode().to_vec().into_boxed_slice()
            }),
        }
    }

    /// Signs `message`: an Ed25519 signature (64 bytes), or for the hybrid scheme an Ed25519
    /// signature followed by an ML-DSA-65 signature (3309 bytes), both over
    /// `HYBRID_CONTEXT ‖ message`.
    ///
    /// If ML-DSA signing fails (a probability far below 2^-128), the ML-DSA part is left as
    /// zeros, which never verifies; use [`IdentityKey::try_sign`] to see the error instead.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self.try_sign(message) {
            Ok(sig) => sig,
            Err(_) => {
                let m = hybrid_message(message);
                let mut sig = self.ed25519.sign(&m).to_bytes().to_vec();
                sig.resize(self.scheme.signature_len(), 0);
                sig
            }
        }
    }

    /// Signs `message` like [`IdentityKey::sign`], reporting an ML-DSA signing failure.
    pub fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, SignatureError> {
        match &self.mldsa {
            None => Ok(self.ed25519.sign(message).to_bytes().to_vec()),
            Some(sk) => {
                let m = hybrid_message(message);
                let pq = sk.try_sign(&m).map_err(|_| SignatureError::SigningFailed)?;
                let mut sig = Vec::with_capacity(self.scheme.signature_len());
                sig.extend_from_slice(&self.ed25519.sign(&m).to_bytes());
                sig.extend_from_slice(pq.encode().as_slice());
                Ok(sig)
            }
        }
    }

    /// The private key encoding for key files: `u16 scheme ‖ Ed25519 seed ‖ [ML-DSA-65 seed]`.
    /// This is secret material: wrap it in [`zeroize::Zeroizing`] and store it carefully.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.scheme.private_len());
        out.extend_from_slice(&self.scheme.to_u16().to_be_bytes());
        out.extend_from_slice(self.ed25519.as_bytes());
        if let Some(sk) = &self.mldsa {
            out.extend_from_slice(sk.as_seed().as_slice());
        }
        out
    }

    /// Parses [`IdentityKey::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, SignatureError> {
        let (scheme, rest) = SignatureScheme::parse(b)?;
        if b.len() != scheme.private_len() {
            return Err(SignatureError::Malformed("private key length"));
        }
        let (ed, pq) = rest
            .split_first_chunk::<SEED_LEN>()
            .ok_or(SignatureError::Malformed("private key length"))?;
        let ed = Zeroizing::new(*ed);
        let pq = Zeroizing::new(match scheme {
            SignatureScheme::Ed25519 => [0u8; SEED_LEN],
            SignatureScheme::Ed25519MlDsa65 => <[u8; SEED_LEN]>::try_from(pq)
                .map_err(|_| SignatureError::Malformed("private key length"))?,
        });
        Ok(Self::from_seeds(scheme, &ed, &pq))
    }
}

/// `HYBRID_CONTEXT ‖ message`.
fn hybrid_message(message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HYBRID_CONTEXT.len() + message.len());
    m.extend_from_slice(HYBRID_CONTEXT);
    m.extend_from_slice(message);
    m
}

/// A public identity key: what a client pins, and what verifies the server's signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    scheme: SignatureScheme,
    ed25519: [u8; ED25519_PUBLIC_LEN],
    mldsa: Option<Box<[u8]>>,
}

impl core::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PublicIdentity")
            .field("scheme", &self.scheme)
            .field("fingerprint", &Hex(&self.fingerprint()))
            .finish()
    }
}

impl PublicIdentity {
    /// The key's scheme.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The encoding `u16 scheme ‖ Ed25519 public key ‖ [ML-DSA-65 public key]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.scheme.public_len());
        out.extend_from_slice(&self.scheme.to_u16().to_be_bytes());
        out.extend_from_slice(&self.ed25519);
        if let Some(pq) = &self.mldsa {
            out.extend_from_slice(pq);
        }
        out
    }

    /// Whether `b` is this key's encoding ([`PublicIdentity::to_bytes`]), without parsing it.
    pub fn is_encoded_by(&self, b: &[u8]) -> bool {
        let Some((code, rest)) = b.split_first_chunk::<2>() else {
            return false;
        };
        let Some((ed, pq)) = rest.split_first_chunk::<ED25519_PUBLIC_LEN>() else {
            return false;
        };
        u16::from_be_bytes(*code) == self.scheme.to_u16()
            && ed == &self.ed25519
            && self.mldsa.as_deref().unwrap_or(&[]) == pq
    }

    /// Parses [`PublicIdentity::to_bytes`]. The Ed25519 key must be a valid point that is not of
    /// small order; any 1952 bytes are a well-formed ML-DSA-65 key.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SignatureError> {
        let (scheme, rest) = SignatureScheme::parse(b)?;
        if b.len() != scheme.public_len() {
            return Err(SignatureError::Malformed("public key length"));
        }
        let (ed, pq) = rest
            .split_first_chunk::<ED25519_PUBLIC_LEN>()
            .ok_or(SignatureError::Malformed("public key length"))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(ed)
            .map_err(|_| SignatureError::Malformed("Ed25519 public key"))?;
        if vk.is_weak() {
            return Err(SignatureError::Malformed("Ed25519 public key"));
        }
        let mldsa = match scheme {
            SignatureScheme::Ed25519 => None,
            SignatureScheme::Ed25519MlDsa65 => Some(pq.to_vec().into_boxed_slice()),
        };
        Ok(Self {
            scheme,
            ed25519: *ed,
            mldsa,
        })
    }

    /// SHA-256 of [`PublicIdentity::to_bytes`]: a short, collision-resistant name for pinning.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Verifies `signature` over `message`. Ed25519 uses `verify_strict` (no small-order keys or
    /// R, canonical S); for the hybrid scheme both components must verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        if signature.len() != self.scheme.signature_len() {
            return Err(SignatureError::Malformed("signature length"));
        }
        let (ed_sig, pq_sig) = signature
            .split_first_chunk::<ED25519_SIGNATURE_LEN>()
            .ok_or(SignatureError::Malformed("signature length"))?;
        let ed_sig = ed25519_dalek::Signature::from_bytes(ed_sig);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.ed25519)
            .map_err(|_| SignatureError::Malformed("Ed25519 public key"))?;
        match (&self.mldsa, self.scheme) {
            (None, SignatureScheme::Ed25519) => vk
                .verify_strict(message, &ed_sig)
                .map_err(|_| SignatureError::BadSignature),
            (Some(pq_key), SignatureScheme::Ed25519MlDsa65) => {
                let m = hybrid_message(message);
                let ed_ok = vk.verify_strict(&m, &ed_sig).is_ok();
                let enc = EncodedVerifyingKey::<MlDsa65>::try_from(&pq_key[..])
                    .map_err(|_| SignatureError::Malformed("ML-DSA-65 public key"))?;
                let pq_vk = ml_dsa::VerifyingKey::<MlDsa65>::decode(&enc);
                let pq_ok = ml_dsa::Signature::<MlDsa65>::try_from(pq_sig)
                    .is_ok_and(|sig| pq_vk.verify_with_context(&m, &[], &sig));
                if ed_ok && pq_ok {
                    Ok(())
                } else {
                    Err(SignatureError::BadSignature)
                }
            }
            _ => Err(SignatureError::Malformed("public key")),
        }
    }
}

impl core::fmt::Display for PublicIdentity {
    /// `"jsp1:"` and the lowercase hex of [`PublicIdentity::to_bytes`].
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(TEXT_PREFIX)?;
        Hex(&self.to_bytes()).fmt(f)
    }
}

impl core::str::FromStr for PublicIdentity {
    type Err = SignatureError;

    /// Parses the `Display` form (hex digits in either case; surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .trim()
            .strip_prefix(TEXT_PREFIX)
            .ok_or(SignatureError::Malformed(
                "identity prefix (expected \"jsp1:\")",
            ))?;
        Self::from_bytes(&decode_hex(hex)?)
    }
}

/// Lowercase hex formatting without an allocation.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl core::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, SignatureError> {
    fn nibble(c: u8) -> Result<u8, SignatureError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(SignatureError::Malformed("hex digit")),
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(SignatureError::Malformed("hex length"));
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Ok(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => Err(SignatureError::Malformed("hex length")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u8) -> Rng {
        Rng::from_seed([seed; 32])
    }

    #[test]
    fn a_key_recognises_its_own_encoding_only() {
        for scheme in [SignatureScheme::Ed25519, SignatureScheme::Ed25519MlDsa65] {
            let key = IdentityKey::generate(scheme, &mut rng(70)).public();
            let other = IdentityKey::generate(scheme, &mut rng(71)).public();
            let bytes = key.to_bytes();
            assert!(key.is_encoded_by(&bytes));
            assert!(!other.is_encoded_by(&bytes));
            assert!(!key.is_encoded_by(&bytes[..bytes.len() - 1]), "truncated");
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(!key.is_encoded_by(&longer), "trailing byte");
            let mut flipped = bytes.clone();
            *flipped.last_mut().unwrap() ^= 1;
            assert!(!key.is_encoded_by(&flipped));
            assert!(!key.is_encoded_by(&[]));
            // The parsed key equals the original and verifies its signatures.
            let parsed = PublicIdentity::from_bytes(&bytes).unwrap();
            assert_eq!(parsed, key);
            let sig = IdentityKey::generate(scheme, &mut rng(70)).sign(b"m");
            assert!(parsed.verify(b"m", &sig).is_ok() && key.verify(b"m", &sig).is_ok());
        }
    }

    /// RFC 8032 §7.1 TEST 1 (empty message), through the key-file encoding and `sign`.
    #[test]
    fn rfc8032_test1() {
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let mut file = vec![0x08, 0x07];
        file.extend_from_slice(&seed);
        let key = IdentityKey::from_bytes(&file).unwrap();
        assert_eq!(key.scheme(), SignatureScheme::Ed25519);
        let public = key.public();
        assert_eq!(
            public.to_bytes()[2..],
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap()
        );
        let sig = key.sign(b"");
        assert_eq!(
            sig,
            hex::decode(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6\
                 1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
            .unwrap()
        );
        public.verify(b"", &sig).unwrap();
        assert_eq!(key.to_bytes(), file);
    }

    #[test]
    fn sign_verify_both_schemes_and_tamper() {
        for scheme in [SignatureScheme::Ed25519, SignatureScheme::Ed25519MlDsa65] {
            let key = IdentityKey::generate(scheme, &mut rng(1));
            let public = key.public();
            assert_eq!(public.scheme(), scheme);
            assert_eq!(public.to_bytes().len(), scheme.public_len());
            let msg = b"transcript hash goes here";
            let sig = key.sign(msg);
            assert_eq!(sig.len(), scheme.signature_len());
            public.verify(msg, &sig).unwrap();

            let mut bad_msg = *msg;
            bad_msg[3] ^= 0x04;
            assert_eq!(
                public.verify(&bad_msg, &sig),
                Err(SignatureError::BadSignature)
            );
            // A flipped bit anywhere in each component (sampled positions for the long one).
            for pos in [0, 31, 32, 63, 64, 100, 2000, sig.len() - 1] {
                if pos >= sig.len() {
                    continue;
                }
                let mut bad = sig.clone();
                bad[pos] ^= 0x80;
                assert!(public.verify(msg, &bad).is_err(), "{scheme} bit at {pos}");
            }
            assert!(public.verify(msg, &sig[..sig.len() - 1]).is_err());
            assert!(public.verify(msg, &[]).is_err());
            // Another key does not verify it.
            let other = IdentityKey::generate(scheme, &mut rng(2)).public();
            assert_eq!(other.verify(msg, &sig), Err(SignatureError::BadSignature));
        }
    }

    #[test]
    fn hybrid_needs_both_halves() {
        let key = IdentityKey::generate(SignatureScheme::Ed25519MlDsa65, &mut rng(3));
        let public = key.public();
        let msg = b"server finished";
        let sig = key.sign(msg);
        assert_eq!(sig.len(), 64 + 3309);

        // Valid Ed25519 half, corrupted ML-DSA half.
        let mut bad = sig.clone();
        bad[64 + 1000] ^= 1;
        assert_eq!(public.verify(msg, &bad), Err(SignatureError::BadSignature));
        // Valid ML-DSA half, corrupted Ed25519 half.
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert_eq!(public.verify(msg, &bad), Err(SignatureError::BadSignature));
        // ML-DSA half stripped.
        assert!(public.verify(msg, &sig[..64]).is_err());
        // ML-DSA half replaced by a valid ML-DSA signature of another message.
        let other = key.sign(b"another message");
        let mut spliced = sig[..64].to_vec();
        spliced.extend_from_slice(&other[64..]);
        assert_eq!(
            public.verify(msg, &spliced),
            Err(SignatureError::BadSignature)
        );

        // The Ed25519 half does not verify for an Ed25519-only identity with the same key.
        let mut file = key.to_bytes();
        file.truncate(2 + 32);
        file[..2].copy_from_slice(&SignatureScheme::Ed25519.to_u16().to_be_bytes());
        let ed_only = IdentityKey::from_bytes(&file).unwrap().public();
        assert!(ed_only.verify(msg, &sig[..64]).is_err());
    }

    #[test]
    fn encodings_round_trip() {
        for scheme in [SignatureScheme::Ed25519, SignatureScheme::Ed25519MlDsa65] {
            let key = IdentityKey::generate(scheme, &mut rng(4));
            let bytes = key.to_bytes();
            assert_eq!(bytes.len(), scheme.private_len());
            let again = IdentityKey::from_bytes(&bytes).unwrap();
            assert_eq!(again.to_bytes(), bytes);
            assert_eq!(again.public(), key.public());
            // Deterministic signatures: same key, same message, same bytes.
            assert_eq!(again.sign(b"m"), key.sign(b"m"));

            let public = key.public();
            let pb = public.to_bytes();
            assert_eq!(PublicIdentity::from_bytes(&pb).unwrap(), public);
            assert_eq!(public.fingerprint(), <[u8; 32]>::from(Sha256::digest(&pb)));
            let text = public.to_string();
            assert!(text.starts_with("jsp1:"));
            assert_eq!(text.len(), 5 + 2 * scheme.public_len());
            assert_eq!(text.parse::<PublicIdentity>().unwrap(), public);
            assert_eq!(
                text.to_uppercase()
                    .replacen("JSP1:", "jsp1:", 1)
                    .parse::<PublicIdentity>()
                    .unwrap(),
                public
            );

            // Truncated, extended, unknown scheme.
            assert!(IdentityKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
            assert!(PublicIdentity::from_bytes(&pb[..pb.len() - 1]).is_err());
            let mut long = pb.clone();
            long.push(0);
            assert!(PublicIdentity::from_bytes(&long).is_err());
        }
        assert_eq!(
            PublicIdentity::from_bytes(&[0x12, 0x34, 0]),
            Err(SignatureError::UnknownScheme(0x1234))
        );
        assert!(PublicIdentity::from_bytes(&[]).is_err());
        assert!(IdentityKey::from_bytes(&[0x08]).is_err());
        assert!("jsp1:zz".parse::<PublicIdentity>().is_err());
        assert!("jsp2:0807".parse::<PublicIdentity>().is_err());
        assert!("jsp1:080".parse::<PublicIdentity>().is_err());
        // A small-order Ed25519 key (the identity point) is refused.
        let mut weak = vec![0x08, 0x07, 1];
        weak.extend_from_slice(&[0; 31]);
        assert!(PublicIdentity::from_bytes(&weak).is_err());
    }

    #[test]
    fn scheme_codes_sizes_and_redaction() {
        for s in [SignatureScheme::Ed25519, SignatureScheme::Ed25519MlDsa65] {
            assert_eq!(SignatureScheme::from_u16(s.to_u16()), Some(s));
        }
        assert_eq!(SignatureScheme::Ed25519.to_u16(), 0x0807);
        assert_eq!(SignatureScheme::Ed25519MlDsa65.to_u16(), 0x0905);
        assert_eq!(SignatureScheme::from_u16(0), None);
        assert_eq!(
            SignatureScheme::Ed25519MlDsa65.to_string(),
            "Ed25519+ML-DSA-65"
        );
        let key = IdentityKey::generate(SignatureScheme::Ed25519MlDsa65, &mut rng(5));
        let pk = key.public().to_bytes();
        assert_eq!(pk.len(), 2 + 32 + 1952);
        let dbg = format!("{key:?}");
        let seed_hex = hex::encode(&key.to_bytes()[2..34]);
        assert!(!dbg.contains(&seed_hex));
        assert!(dbg.contains(&hex::encode(key.public().fingerprint())));
    }
}
