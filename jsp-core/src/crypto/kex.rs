//! Key exchange: hybrid X25519 + ML-KEM-768 (the default), or classical X25519 alone.
//!
//! The hybrid group follows X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem): the client's share is
//! the ML-KEM-768 encapsulation key (1184 bytes) followed by an X25519 public key (32 bytes); the
//! server's share is the ML-KEM-768 ciphertext (1088 bytes) followed by its X25519 public key;
//! the shared secret is the ML-KEM shared secret (32 bytes) followed by the X25519 shared secret
//! (32 bytes). It stays secret as long as either component is unbroken.
//!
//! Input checks: share lengths are exact; the server validates the client's encapsulation key
//! (FIPS 203 §7.2 modulus check); both sides reject an all-zero X25519 output (a low-order peer
//! point), compared in constant time. ML-KEM decapsulation uses implicit rejection, so a
//! tampered ciphertext gives a different secret (and a failed handshake), never an error.

use curve25519_dalek::montgomery::MontgomeryPoint;
use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::rand::Rng;

/// ML-KEM-768 encapsulation-key length, in bytes.
pub const MLKEM768_ENCAPSULATION_KEY_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length, in bytes.
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;
/// X25519 public key (and share) length, in bytes.
pub const X25519_SHARE_LEN: usize = 32;
/// Client share of [`KeyExchange::X25519MlKem768`]: encapsulation key 1184 ‖ X25519 32.
pub const HYBRID_CLIENT_SHARE_LEN: usize = MLKEM768_ENCAPSULATION_KEY_LEN + X25519_SHARE_LEN;
/// Server share of [`KeyExchange::X25519MlKem768`]: ciphertext 1088 ‖ X25519 32.
pub const HYBRID_SERVER_SHARE_LEN: usize = MLKEM768_CIPHERTEXT_LEN + X25519_SHARE_LEN;
/// The longest shared secret (hybrid: 64 bytes).
const MAX_SHARED_LEN: usize = 64;

/// A key-exchange group. The wire code is the `u16` discriminant (the TLS NamedGroup codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum KeyExchange {
    /// Hybrid ML-KEM-768 + X25519, as X25519MLKEM768 (the default).
    X25519MlKem768 = 0x11ec,
    /// Classical X25519 alone: only when both sides allow it.
    X25519 = 0x001d,
}

impl KeyExchange {
    /// Every group, most preferred first.
    pub const ALL: [Self; 2] = [Self::X25519MlKem768, Self::X25519];

    /// The group with wire code `code`, if known.
    pub const fn from_u16(code: u16) -> Option<Self> {
        match code {
            0x11ec => Some(Self::X25519MlKem768),
            0x001d => Some(Self::X25519),
            _ => None,
        }
    }

    /// The group's wire code.
    pub const fn to_u16(self) -> u16 {
        self as u16
    }

    /// Whether the group resists a quantum adversary (has a post-quantum component).
    pub const fn is_post_quantum(self) -> bool {
        matches!(self, Self::X25519MlKem768)
    }

    /// Length of the client's share, in bytes.
    pub const fn client_share_len(self) -> usize {
        match self {
            Self::X25519MlKem768 => HYBRID_CLIENT_SHARE_LEN,
            Self::X25519 => X25519_SHARE_LEN,
        }
    }

    /// Length of the server's share, in bytes.
    pub const fn server_share_len(self) -> usize {
        match self {
            Self::X25519MlKem768 => HYBRID_SERVER_SHARE_LEN,
            Self::X25519 => X25519_SHARE_LEN,
        }
    }

    /// Length of the shared secret, in bytes (hybrid 64, classical 32).
    pub const fn shared_secret_len(self) -> usize {
        match self {
            Self::X25519MlKem768 => 64,
            Self::X25519 => 32,
        }
    }
}

impl core::fmt::Display for KeyExchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::X25519MlKem768 => "X25519MLKEM768",
            Self::X25519 => "X25519",
        })
    }
}

/// Why a key exchange failed. Every variant means: abort the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KexError {
    /// The peer's share has the wrong length for the group.
    WrongShareLength {
        /// The length the group requires.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The ML-KEM-768 encapsulation key fails the FIPS 203 input check (a coefficient ≥ q).
    InvalidEncapsulationKey,
    /// The X25519 result is all zeros: the peer sent a low-order point.
    NonContributory,
}

impl core::fmt::Display for KexError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongShareLength { expected, got } => {
                write!(f, "key share of {got} bytes, expected {expected}")
            }
            Self::InvalidEncapsulationKey => f.write_str("invalid ML-KEM-768 encapsulation key"),
            Self::NonContributory => f.write_str("X25519 peer share is a low-order point"),
        }
    }
}

impl std::error::Error for KexError {}

/// The output of a key exchange: hybrid ML-KEM secret 32 ‖ X25519 secret 32 (64 bytes),
/// classical X25519 secret (32 bytes). Zeroized on drop; `Debug` is redacted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret {
    bytes: [u8; MAX_SHARED_LEN],
    len: usize,
}

impl SharedSecret {
    fn new(parts: &[&[u8]]) -> Self {
        let mut s = Self {
            bytes: [0; MAX_SHARED_LEN],
            len: 0,
        };
        for part in parts {
            let end = s.len + part.len();
            if let Some(dst) = s.bytes.get_mut(s.len..end) {
                dst.copy_from_slice(part);
                s.len = end;
            }
        }
        s
    }

    /// The secret bytes, to feed [`super::schedule::KeySchedule::into_handshake`].
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

impl core::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedSecret({} bytes, ..)", self.len)
    }
}

/// An ML-KEM-768 decapsulation key that is zeroized on drop (libcrux's type is not).
struct MlKemSecret(MlKem768PrivateKey);

impl Drop for MlKemSecret {
    fn drop(&mut self) {
        self.0[0..].zeroize();
    }
}

/// The client's ephemeral key share: its public bytes to send, and the secrets to finish with.
/// The secrets are zeroized on drop; [`ClientKeyShare::finish`] consumes the share.
pub struct ClientKeyShare {
    kex: KeyExchange,
    public: Vec<u8>,
    x25519: StaticSecret,
    mlkem: Option<MlKemSecret>,
}

impl ZeroizeOnDrop for ClientKeyShare {}

impl core::fmt::Debug for ClientKeyShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientKeyShare")
            .field("kex", &self.kex)
            .finish_non_exhaustive()
    }
}

impl ClientKeyShare {
    /// Fresh ephemeral keys for `kex`.
    pub fn generate(kex: KeyExchange, rng: &mut Rng) -> Self {
        let x25519 = StaticSecret::random_from_rng(&mut *rng);
        let x_public = PublicKey::from(&x25519);
        match kex {
            KeyExchange::X25519 => Self {
                kex,
                public: x_public.as_bytes().to_vec(),
                x25519,
                mlkem: None,
            },
            KeyExchange::X25519MlKem768 => {
                // FIPS 203 ML-KEM.KeyGen_internal(d, z) with d ‖ z from the CSPRNG.
                let mut seed = Zeroizing::new([0u8; 64]);
                rng.fill(&mut seed[..]);
                let (sk, pk) = mlkem768::generate_key_pair(*seed).into_parts();
                let mut public = Vec::with_capacity(HYBRID_CLIENT_SHARE_LEN);
                public.extend_from_slice(pk.as_slice());
                public.extend_from_slice(x_public.as_bytes());
                Self {
                    kex,
                    public,
                    x25519,
                    mlkem: Some(MlKemSecret(sk)),
                }
            }
        }
    }

    /// The group.
    pub fn kex(&self) -> KeyExchange {
        self.kex
    }

    /// The share to send in the ClientHello ([`KeyExchange::client_share_len`] bytes).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Combines the server's share with our secrets. Consumes the share, so the ephemeral secrets
    /// are erased when this returns.
    pub fn finish(self, server_share: &[u8]) -> Result<SharedSecret, KexError> {
        check_len(server_share, self.kex.server_share_len())?;
        match self.kex {
            KeyExchange::X25519 => {
                let x = x25519_agree(&self.x25519, server_share)?;
                Ok(SharedSecret::new(&[&x[..]]))
            }
            KeyExchange::X25519MlKem768 => {
                let wrong = || KexError::WrongShareLength {
                    expected: HYBRID_SERVER_SHARE_LEN,
                    got: server_share.len(),
                };
                let (Some(sk), Some((ct, x_share))) = (
                    &self.mlkem,
                    server_share.split_at_checked(MLKEM768_CIPHERTEXT_LEN),
                ) else {
                    return Err(wrong());
                };
                let x = x25519_agree(&self.x25519, x_share)?;
                let ct = MlKem768Ciphertext::try_from(ct).map_err(|_| wrong())?;
                let k = Zeroizing::new(mlkem768::decapsulate(&sk.0, &ct));
                Ok(SharedSecret::new(&[&k[..], &x[..]]))
            }
        }
    }
}

impl ClientKeyShare {
    /// Like [`Self::finish`], for the group the server chose. A hybrid share carries an X25519
    /// share in its last 32 bytes, so a server that may only use classical X25519 (both configs
    /// allow it) can answer a hybrid share with an X25519 share; the ML-KEM secret is then
    /// discarded unused. Any other mismatch is an error.
    pub fn finish_as(
        mut self,
        chosen: KeyExchange,
        server_share: &[u8],
    ) -> Result<SharedSecret, KexError> {
        if chosen == self.kex {
            return self.finish(server_share);
        }
        if chosen == KeyExchange::X25519 && self.kex == KeyExchange::X25519MlKem768 {
            self.mlkem = None;
            self.kex = KeyExchange::X25519;
            return self.finish(server_share);
        }
        Err(KexError::WrongShareLength {
            expected: self.kex.server_share_len(),
            got: server_share.len(),
        })
    }
}

/// An ephemeral X25519 key pair for the server's side of one handshake, generated ahead of it
/// (off the event loop: [`crate::endpoint::Endpoint::key_share_demand`]). The secret is
/// zeroized on drop and used at most once ([`server_share`] consumes the pair).
pub struct X25519KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl ZeroizeOnDrop for X25519KeyPair {}

impl core::fmt::Debug for X25519KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("X25519KeyPair")
            .field("public", self.public.as_bytes())
            .finish_non_exhaustive()
    }
}

impl X25519KeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut Rng) -> Self {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public share.
    pub fn public(&self) -> &[u8; X25519_SHARE_LEN] {
        self.public.as_bytes()
    }
}

/// The server's side: checks the client's share, answers with its own share and returns the
/// shared secret. Returns `(server_share, secret)`.
pub fn server_respond(
    kex: KeyExchange,
    client_share: &[u8],
    rng: &mut Rng,
) -> Result<(Vec<u8>, SharedSecret), KexError> {
    server_respond_with(kex, client_share, None, rng)
}

/// [`server_respond`] with the server's X25519 key pair generated ahead (`None`: a fresh one
/// now). The pair is consumed: an ephemeral key answers one handshake only.
pub fn server_respond_with(
    kex: KeyExchange,
    client_share: &[u8],
    pair: Option<X25519KeyPair>,
    rng: &mut Rng,
) -> Result<(Vec<u8>, SharedSecret), KexError> {
    let (share, pending) = server_share(kex, client_share, pair, rng)?;
    Ok((share, pending.agree()?))
}

/// The server's side in two steps, so that its share can leave before the slower half of the
/// work: checks the client's share, encapsulates to its ML-KEM key (hybrid) and returns the
/// server's share with a [`PendingServerSecret`] whose [`PendingServerSecret::agree`] does the
/// X25519 agreement. The X25519 input is only length-checked here: a low-order point fails in
/// `agree`. `pair` as in [`server_respond_with`].
pub fn server_share(
    kex: KeyExchange,
    client_share: &[u8],
    pair: Option<X25519KeyPair>,
    rng: &mut Rng,
) -> Result<(Vec<u8>, PendingServerSecret), KexError> {
    check_len(client_share, kex.client_share_len())?;
    let pair = pair.unwrap_or_else(|| X25519KeyPair::generate(rng));
    match kex {
        KeyExchange::X25519 => {
            let peer = x25519_share(client_share)?;
            let share = pair.public.as_bytes().to_vec();
            Ok((
                share,
                PendingServerSecret {
                    pair,
                    peer,
                    kem: None,
                },
            ))
        }
        KeyExchange::X25519MlKem768 => {
            let wrong = || KexError::WrongShareLength {
                expected: HYBRID_CLIENT_SHARE_LEN,
                got: client_share.len(),
            };
            let (ek, x_share) = client_share
                .split_at_checked(MLKEM768_ENCAPSULATION_KEY_LEN)
                .ok_or_else(wrong)?;
            let peer = x25519_share(x_share)?;
            let ek = MlKem768PublicKey::try_from(ek).map_err(|_| wrong())?;
            if !mlkem768::validate_public_key(&ek) {
                return Err(KexError::InvalidEncapsulationKey);
            }
            let randomness = Zeroizing::new(rng.array::<32>());
            let (ct, k) = mlkem768::encapsulate(&ek, *randomness);
            let mut share = Vec::with_capacity(HYBRID_SERVER_SHARE_LEN);
            share.extend_from_slice(ct.as_slice());
            share.extend_from_slice(pair.public.as_bytes());
            Ok((
                share,
                PendingServerSecret {
                    pair,
                    peer,
                    kem: Some(Zeroizing::new(k)),
                },
            ))
        }
    }
}

/// The server's half-finished key exchange from [`server_share`]: the ML-KEM secret (hybrid),
/// the server's X25519 key pair and the client's X25519 share. Secrets are zeroized on drop;
/// [`Self::agree`] consumes it.
pub struct PendingServerSecret {
    pair: X25519KeyPair,
    peer: [u8; X25519_SHARE_LEN],
    kem: Option<Zeroizing<[u8; 32]>>,
}

impl ZeroizeOnDrop for PendingServerSecret {}

impl core::fmt::Debug for PendingServerSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingServerSecret")
            .field("hybrid", &self.kem.is_some())
            .finish_non_exhaustive()
    }
}

impl PendingServerSecret {
    /// The X25519 agreement (an all-zero result, from a low-order client point, is an error)
    /// and the shared secret: ML-KEM secret ‖ X25519 secret (hybrid) or the X25519 secret.
    pub fn agree(self) -> Result<SharedSecret, KexError> {
        let x = x25519_agree(&self.pair.secret, &self.peer)?;
        Ok(match &self.kem {
            Some(k) => SharedSecret::new(&[&k[..], &x[..]]),
            None => SharedSecret::new(&[&x[..]]),
        })
    }
}

fn x25519_share(share: &[u8]) -> Result<[u8; X25519_SHARE_LEN], KexError> {
    share.try_into().map_err(|_| KexError::WrongShareLength {
        expected: X25519_SHARE_LEN,
        got: share.len(),
    })
}

fn check_len(share: &[u8], expected: usize) -> Result<(), KexError> {
    if share.len() == expected {
        Ok(())
    } else {
        Err(KexError::WrongShareLength {
            expected,
            got: share.len(),
        })
    }
}

/// X25519 (RFC 7748) of `secret` and the peer's u-coordinate `peer`, with the same result as
/// x25519-dalek's Montgomery ladder, computed on the Edwards form when `peer` is on the curve:
/// curve25519-dalek's variable-base Edwards multiplication (constant time in the scalar) runs on
/// its AVX2 backend where the CPU has one, which here takes 43–48 µs against the ladder's 55–78
/// (the ladder has no vector backend). Why the results agree: decompressing u to an Edwards
/// point P (either sign: u(−Q) = u(Q)), `mul_clamped` multiplies by the clamped scalar itself,
/// unreduced (a multiple of 8 below 2^255), so small-order components vanish exactly as in the
/// ladder, and the identity maps to u = 0 (what the ladder gives for a low-order point); u values
/// of 2^255 − 19 and above and the top bit are reduced and ignored alike. A u on the twist, or
/// u = −1, has no Edwards point: the ladder computes those. The choice depends on the peer's
/// public share only. `x25519_matches_the_ladder` checks random, low-order, twist and
/// non-canonical inputs.
fn x25519(secret: &StaticSecret, peer: [u8; X25519_SHARE_LEN]) -> Zeroizing<[u8; 32]> {
    match MontgomeryPoint(peer).to_edwards(0) {
        Some(point) => {
            let scalar = Zeroizing::new(secret.to_bytes());
            Zeroizing::new(point.mul_clamped(*scalar).to_montgomery().to_bytes())
        }
        None => Zeroizing::new(secret.diffie_hellman(&PublicKey::from(peer)).to_bytes()),
    }
}

/// X25519(secret, peer) with the all-zero (non-contributory) result rejected in constant time.
fn x25519_agree(secret: &StaticSecret, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>, KexError> {
    let peer: [u8; X25519_SHARE_LEN] = peer.try_into().map_err(|_| KexError::WrongShareLength {
        expected: X25519_SHARE_LEN,
        got: peer.len(),
    })?;
    let out = x25519(secret, peer);
    if bool::from(out.ct_eq(&[0u8; 32])) {
        return Err(KexError::NonContributory);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn rng(seed: u8) -> Rng {
        Rng::from_seed([seed; 32])
    }

    /// RFC 7748 §5.2, both X25519 test vectors, through the key-exchange code path.
    #[test]
    fn rfc7748_x25519_vectors() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (scalar, u, out) in cases {
            let secret = StaticSecret::from(hex32(scalar));
            assert_eq!(*x25519_agree(&secret, &hex32(u)).unwrap(), hex32(out));
        }
        // RFC 7748 §6.1: Alice and Bob.
        let alice = StaticSecret::from(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob_pub = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        assert_eq!(
            *x25519_agree(&alice, &bob_pub).unwrap(),
            hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    /// ML-KEM-768 key generation known answer: NIST ACVP-Server ML-KEM keyGen (FIPS203) vector
    /// set, test group 2 (ML-KEM-768), tcId 26 (as mirrored in pq-code-package/mlkem-native
    /// `test/acvp_data/acvp_v1.1.0.40_keyGen_{prompt,expectedResults}.json`). The expected
    /// `dk` ends with H(ek) ‖ z, where H = SHA3-256; we check SHA3-256 of our encapsulation key
    /// against that H(ek) (which covers all 1184 bytes of ek), its last 32 bytes (rho) against
    /// the vector's ek, and the whole dk tail.
    #[test]
    fn mlkem768_acvp_keygen_tc26() {
        let d = hex32("A2B4BCA315A6EA4600B4A316E09A2578AA1E8BCE919C8DF3A96C71C843F5B38B");
        let z = hex32("D6BF055CB7B375E3271ED131F1BA31F83FEF533A239878A71074578B891265D1");
        let h_ek = hex32("7CA0C2CBBF4FBF28DE8C479D4473C339D96B89C34A4E5FCBCF7728BDFB43B945");
        let rho = hex32("E2212400769DE8E1915F26BA198AF8E53DACB598711738DA8C583A388E027A59");
        let mut seed = [0u8; 64];
        seed[..32].copy_from_slice(&d);
        seed[32..].copy_from_slice(&z);
        let kp = mlkem768::generate_key_pair(seed);
        let ek = kp.pk();
        let dk = kp.sk();
        assert_eq!(ek.len(), MLKEM768_ENCAPSULATION_KEY_LEN);
        assert_eq!(ek[MLKEM768_ENCAPSULATION_KEY_LEN - 32..], rho);
        assert_eq!(libcrux_sha3::sha256(ek), h_ek);
        assert_eq!(dk[2400 - 64..2400 - 32], h_ek);
        assert_eq!(dk[2400 - 32..], z);
        assert_eq!(dk[1152..1152 + 1184], ek[..]);
    }

    #[test]
    fn both_groups_agree() {
        for kex in KeyExchange::ALL {
            let mut crng = rng(1);
            let mut srng = rng(2);
            let client = ClientKeyShare::generate(kex, &mut crng);
            assert_eq!(client.kex(), kex);
            assert_eq!(client.public().len(), kex.client_share_len());
            let (server_share, server_secret) =
                server_respond(kex, client.public(), &mut srng).unwrap();
            assert_eq!(server_share.len(), kex.server_share_len());
            let client_secret = client.finish(&server_share).unwrap();
            assert_eq!(client_secret.as_bytes(), server_secret.as_bytes());
            assert_eq!(client_secret.as_bytes().len(), kex.shared_secret_len());
        }
        assert_eq!(HYBRID_CLIENT_SHARE_LEN, 1216);
        assert_eq!(HYBRID_SERVER_SHARE_LEN, 1120);
    }

    #[test]
    fn hybrid_secret_is_kem_then_x25519_and_each_part_matters() {
        let kex = KeyExchange::X25519MlKem768;
        let client = ClientKeyShare::generate(kex, &mut rng(3));
        let public = client.public().to_vec();
        let (share, server_secret) = server_respond(kex, &public, &mut rng(4)).unwrap();
        assert_eq!(server_secret.as_bytes().len(), 64);

        // Corrupt the ML-KEM ciphertext: implicit rejection changes the first half only.
        let client_a = ClientKeyShare::generate(kex, &mut rng(3));
        let mut bad = share.clone();
        bad[17] ^= 0x01;
        let a = client_a.finish(&bad).unwrap();
        assert_ne!(a.as_bytes()[..32], server_secret.as_bytes()[..32]);
        assert_eq!(a.as_bytes()[32..], server_secret.as_bytes()[32..]);

        // Replace the X25519 share with another valid point: the second half changes only.
        let client_b = ClientKeyShare::generate(kex, &mut rng(3));
        let mut bad = share.clone();
        let other = PublicKey::from(&StaticSecret::from([9u8; 32]));
        bad[MLKEM768_CIPHERTEXT_LEN..].copy_from_slice(other.as_bytes());
        let b = client_b.finish(&bad).unwrap();
        assert_eq!(b.as_bytes()[..32], server_secret.as_bytes()[..32]);
        assert_ne!(b.as_bytes()[32..], server_secret.as_bytes()[32..]);
    }

    #[test]
    fn a_hybrid_share_can_finish_as_classical_x25519() {
        let mut rng = Rng::from_seed([5; 32]);
        let client = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng);
        let x_part = &client.public()[HYBRID_CLIENT_SHARE_LEN - X25519_SHARE_LEN..];
        let (server_share, server_secret) =
            server_respond(KeyExchange::X25519, x_part, &mut rng).unwrap();
        let client_secret = client
            .finish_as(KeyExchange::X25519, &server_share)
            .unwrap();
        assert_eq!(client_secret.as_bytes(), server_secret.as_bytes());
        assert_eq!(client_secret.as_bytes().len(), 32);
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for kex in KeyExchange::ALL {
            let client = ClientKeyShare::generate(kex, &mut rng(5));
            let mut long = client.public().to_vec();
            long.push(0);
            assert_eq!(
                server_respond(kex, &long, &mut rng(6)).unwrap_err(),
                KexError::WrongShareLength {
                    expected: kex.client_share_len(),
                    got: kex.client_share_len() + 1
                }
            );
            assert_eq!(
                server_respond(kex, &[], &mut rng(6)).unwrap_err(),
                KexError::WrongShareLength {
                    expected: kex.client_share_len(),
                    got: 0
                }
            );
            assert_eq!(
                client.finish(&[1; 31]).unwrap_err(),
                KexError::WrongShareLength {
                    expected: kex.server_share_len(),
                    got: 31
                }
            );
        }
        // A hybrid client given a classical server share (and vice versa).
        let hybrid = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng(7));
        let classical = ClientKeyShare::generate(KeyExchange::X25519, &mut rng(7));
        let (x_share, _) =
            server_respond(KeyExchange::X25519, classical.public(), &mut rng(8)).unwrap();
        assert!(matches!(
            hybrid.finish(&x_share),
            Err(KexError::WrongShareLength { .. })
        ));
        assert!(matches!(
            server_respond(KeyExchange::X25519MlKem768, classical.public(), &mut rng(8)),
            Err(KexError::WrongShareLength { .. })
        ));
    }

    #[test]
    fn invalid_encapsulation_key_is_rejected() {
        let client = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng(9));
        let mut share = client.public().to_vec();
        share[..MLKEM768_ENCAPSULATION_KEY_LEN].fill(0xff);
        assert_eq!(
            server_respond(KeyExchange::X25519MlKem768, &share, &mut rng(10)).unwrap_err(),
            KexError::InvalidEncapsulationKey
        );
    }

    #[test]
    fn low_order_x25519_point_is_rejected() {
        // Server side, classical and hybrid.
        assert_eq!(
            server_respond(KeyExchange::X25519, &[0; 32], &mut rng(11)).unwrap_err(),
            KexError::NonContributory
        );
        let client = ClientKeyShare::generate(KeyExchange::X25519MlKem768, &mut rng(12));
        let mut share = client.public().to_vec();
        share[MLKEM768_ENCAPSULATION_KEY_LEN..].fill(0);
        assert_eq!(
            server_respond(KeyExchange::X25519MlKem768, &share, &mut rng(13)).unwrap_err(),
            KexError::NonContributory
        );
        // Client side.
        let client = ClientKeyShare::generate(KeyExchange::X25519, &mut rng(14));
        assert_eq!(
            client.finish(&[0; 32]).unwrap_err(),
            KexError::NonContributory
        );
        // Another small-order point: u = 1 (order 4); clamped scalars are multiples of 8.
        let client = ClientKeyShare::generate(KeyExchange::X25519, &mut rng(15));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(client.finish(&one).unwrap_err(), KexError::NonContributory);
    }

    #[test]
    fn x25519_matches_the_ladder() {
        let mut rng = rng(40);
        // p − 19 + k for k in 0..=27: p − 1 (u = −1, no Edwards point), p, p + 1 and p + 9
        // (non-canonical encodings of 0, 1 and the base point) among them.
        let near_p = |k: u8| {
            let mut u = [0xffu8; 32];
            u[0] = 0xda + k;
            u[31] = 0x7f;
            u
        };
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut nine = [0u8; 32];
        nine[0] = 9;
        let mut inputs = vec![
            [0u8; 32],
            one,
            nine,
            // The small-order points of order 8 (RFC 7748 implementations' blocklists).
            hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        ];
        inputs.extend((0..=27).map(near_p));
        inputs.extend((0..400).map(|_| rng.array::<32>()));
        inputs.extend((0..100).map(|_| *X25519KeyPair::generate(&mut rng).public()));
        let top_bit: Vec<[u8; 32]> = inputs
            .iter()
            .map(|u| {
                let mut v = *u;
                v[31] |= 0x80;
                v
            })
            .collect();
        inputs.extend(top_bit);
        let mut edwards = 0;
        for (i, u) in inputs.iter().enumerate() {
            let secret = StaticSecret::random_from_rng(&mut rng);
            let ladder = secret.diffie_hellman(&PublicKey::from(*u)).to_bytes();
            assert_eq!(*x25519(&secret, *u), ladder, "input {i}: {u:02x?}");
            edwards += usize::from(MontgomeryPoint(*u).to_edwards(0).is_some());
        }
        println!(
            "{} inputs agree with the ladder, {edwards} of them computed on the Edwards form",
            inputs.len()
        );
        assert!(edwards > inputs.len() / 3 && edwards < inputs.len() * 3 / 4);
    }

    #[test]
    fn wire_codes_and_names() {
        for kex in KeyExchange::ALL {
            assert_eq!(KeyExchange::from_u16(kex.to_u16()), Some(kex));
        }
        assert_eq!(
            KeyExchange::from_u16(0x11ec),
            Some(KeyExchange::X25519MlKem768)
        );
        assert_eq!(KeyExchange::from_u16(0x001d), Some(KeyExchange::X25519));
        assert_eq!(KeyExchange::from_u16(0x0017), None);
        assert_eq!(KeyExchange::X25519MlKem768.to_string(), "X25519MLKEM768");
        assert_eq!(KeyExchange::X25519.to_string(), "X25519");
        assert!(KeyExchange::X25519MlKem768.is_post_quantum());
        assert!(!KeyExchange::X25519.is_post_quantum());
        let s = ClientKeyShare::generate(KeyExchange::X25519, &mut rng(1));
        assert!(!format!("{s:?}").contains("x25519:"));
    }
}
