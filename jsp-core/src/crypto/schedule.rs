//! The HKDF-SHA256 key schedule: TLS 1.3's shape (RFC 8446 §7.1) with JSP's own labels.
//!
//! ```text
//!            0 (32 zero bytes)
//!            |
//!  PSK or 0 -> HKDF-Extract = early secret ----> "c e traffic" (ClientHello hash) = 0-RTT secret
//!            |                             `---> "res binder" ("" hash)          = binder key
//!      derive_secret(., "derived", sha256(""))
//!            |
//!  (EC)DHE -> HKDF-Extract = handshake secret --> "c hs traffic" / "s hs traffic" (ServerHello hash)
//!            |
//!      derive_secret(., "derived", sha256(""))
//!            |
//!        0 -> HKDF-Extract = master secret -----> "c ap traffic" / "s ap traffic" (server Finished hash)
//!                                          `---> "res master" (client Finished hash)
//! ```
//!
//! Every label is prefixed with `"jsp1 "` inside the `HkdfLabel` structure, so no key derived here
//! can equal a TLS 1.3 or QUIC key derived from the same secret.
//!
//! The stages are a typestate: [`KeySchedule<Early>`] becomes [`KeySchedule<Handshake>`] only by
//! feeding it the key-exchange output, and [`KeySchedule<Master>`] only after that, so traffic
//! secrets cannot be derived from a stage that lacks the ephemeral secret.

use core::marker::PhantomData;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{Backend, CipherSuite, HeaderKey, PacketKey, HP_KEY_LEN, IV_LEN, KEY_LEN};

/// Output length of the schedule's hash (SHA-256), in bytes.
pub const HASH_LEN: usize = 32;

/// The prefix of every label in an `HkdfLabel`.
const LABEL_PREFIX: &[u8] = b"jsp1 ";

/// The largest `out` [`expand_label`] can fill: 255 hash blocks (RFC 5869 §2.3).
pub const MAX_EXPAND_LEN: usize = 255 * HASH_LEN;

/// A 32-byte secret of the key schedule. Zeroized on drop; its `Debug` output is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret([u8; HASH_LEN]);

impl Secret {
    /// Wraps raw secret bytes (for example a stored resumption secret).
    pub fn from_bytes(b: [u8; HASH_LEN]) -> Self {
        Self(b)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; HASH_LEN] {
    Sha256::digest(data).into()
}

/// HKDF-Extract(salt, ikm) with SHA-256 (RFC 5869 §2.2).
pub fn extract(salt: &[u8], ikm: &[u8]) -> Secret {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
    Secret(prk.into())
}

/// HKDF-Expand(secret, info, L) with SHA-256 (RFC 5869 §2.3), where `L = out.len()`.
///
/// # Panics
/// If `out` is longer than [`MAX_EXPAND_LEN`] bytes. Output lengths are chosen by our own code
/// (12 or 32 bytes), never by a peer.
fn expand(secret: &Secret, info: &[&[u8]], out: &mut [u8]) {
    // A 32-byte PRK is always accepted (`from_prk` only rejects PRKs shorter than the hash).
    let hk = match Hkdf::<Sha256>::from_prk(secret.as_bytes()) {
        Ok(hk) => hk,
        Err(_) => unreachable!("a 32-byte PRK is valid for HKDF-SHA256"),
    };
    if hk.expand_multi_info(info, out).is_err() {
        panic!(
            "HKDF-Expand output of {} bytes exceeds {MAX_EXPAND_LEN}",
            out.len()
        );
    }
}

/// HKDF-Expand-Label: expands `secret` into `out` with the info
///
/// ```text
/// struct {
///     uint16 length = out.len();
///     opaque label<5..255> = "jsp1 " + label;
///     opaque context<0..255> = context;
/// } HkdfLabel;
/// ```
///
/// (RFC 8446 §7.1, with the prefix `"jsp1 "` in place of `"tls13 "`).
///
/// The function is total for the inputs a peer can influence: a context longer than 255 bytes
/// (for example an oversized ticket nonce that a parser failed to reject) is replaced by its
/// SHA-256 digest, so the output stays a secret function of `secret` and no panic is possible. A
/// label longer than 250 bytes is treated the same way (labels are constants of our own code).
///
/// # Panics
/// If `out` is longer than [`MAX_EXPAND_LEN`] (8160) bytes; lengths are always ours.
pub fn expand_label(secret: &Secret, label: &str, context: &[u8], out: &mut [u8]) {
    let label_hash;
    let label = match label.len() {
        n if n + LABEL_PREFIX.len() <= 255 => label.as_bytes(),
        _ => {
            label_hash = sha256(label.as_bytes());
            &label_hash[..]
        }
    };
    let context_hash;
    let context = match context.len() {
        n if n <= 255 => context,
        _ => {
            context_hash = sha256(context);
            &context_hash[..]
        }
    };
    // Both lengths are at most 255 here; `out.len()` is checked by `expand`.
    let length = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
    let label_len = [(LABEL_PREFIX.len() + label.len()) as u8];
    let context_len = [context.len() as u8];
    expand(
        secret,
        &[
            &length,
            &label_len,
            LABEL_PREFIX,
            label,
            &context_len,
            context,
        ],
        out,
    );
}

/// Derive-Secret: `expand_label(secret, label, transcript_hash, 32)`.
pub fn derive_secret(secret: &Secret, label: &str, transcript_hash: &[u8]) -> Secret {
    let mut out = [0u8; HASH_LEN];
    expand_label(secret, label, transcript_hash, &mut out);
    Secret(out)
}

/// HMAC-SHA256(key, data).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; HASH_LEN] {
    // HMAC accepts keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is HMAC-SHA256(key, data), compared in constant time. A tag of the wrong length
/// is rejected (its length is public).
pub fn verify_hmac_sha256(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let expected = Zeroizing::new(hmac_sha256(key, data));
    tag.len() == HASH_LEN && bool::from(expected.ct_eq(tag))
}

/// A running SHA-256 over the handshake transcript.
#[derive(Clone, Default)]
pub struct Transcript(Sha256);

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Appends `bytes` to the transcript.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything appended so far; the transcript keeps running.
    pub fn hash(&self) -> [u8; HASH_LEN] {
        self.0.clone().finalize().into()
    }
}

impl core::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Transcript").field(&self.hash()).finish()
    }
}

/// One direction's packet and header protection keys.
pub struct DirectionalKeys {
    /// Packet protection (AEAD).
    pub packet: Box<dyn PacketKey>,
    /// Header protection.
    pub header: Box<dyn HeaderKey>,
}

impl core::fmt::Debug for DirectionalKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DirectionalKeys")
            .field("suite", &self.packet.suite())
            .finish_non_exhaustive()
    }
}

/// The packet-protection key of a traffic secret: key = `expand_label(secret, "key", "", 32)`,
/// iv = `expand_label(secret, "iv", "", 12)`.
pub fn packet_key(backend: Backend, suite: CipherSuite, secret: &Secret) -> Box<dyn PacketKey> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut iv = Zeroizing::new([0u8; IV_LEN]);
    expand_label(secret, "key", &[], &mut key[..]);
    expand_label(secret, "iv", &[], &mut iv[..]);
    backend.packet_key(suite, &key, &iv)
}

/// The header-protection key of a traffic secret: `expand_label(secret, "hp", "", 32)`.
pub fn header_key(backend: Backend, suite: CipherSuite, secret: &Secret) -> Box<dyn HeaderKey> {
    let mut hp = Zeroizing::new([0u8; HP_KEY_LEN]);
    expand_label(secret, "hp", &[], &mut hp[..]);
    backend.header_key(suite, &hp)
}

/// Packet and header keys of a traffic secret.
pub fn directional_keys(backend: Backend, suite: CipherSuite, secret: &Secret) -> DirectionalKeys {
    DirectionalKeys {
        packet: packet_key(backend, suite, secret),
        header: header_key(backend, suite, secret),
    }
}

/// The next generation's traffic secret for a key update: `expand_label(secret, "ku", "", 32)`.
/// One-way, so old keys cannot be recomputed from new ones. The header-protection key is not
/// updated: keep the [`HeaderKey`] of the first generation.
pub fn next_secret(secret: &Secret) -> Secret {
    derive_secret(secret, "ku", &[])
}

/// The suite that protects Initial packets.
pub const INITIAL_SUITE: CipherSuite = CipherSuite::ChaCha20Poly1305;

/// The salt of Initial secrets for [`crate::VERSION_1`]: `sha256(b"JetStreamProto v1 initial salt")`.
pub const INITIAL_SALT_V1: [u8; HASH_LEN] = [
    0x22, 0x2e, 0x70, 0xd4, 0x98, 0x7d, 0x07, 0x41, 0x25, 0xfa, 0xc4, 0x7a, 0x70, 0xb3, 0xef, 0x22,
    0x86, 0x3f, 0xfd, 0x3c, 0xa5, 0x8c, 0xa4, 0x83, 0x81, 0x6a, 0xc8, 0x69, 0xac, 0x7f, 0x9b, 0x1f,
];

/// The secrets of Initial packets, `(client, server)`: `initial = extract(INITIAL_SALT_V1,
/// client_dcid)`, then `expand_label(initial, "client in" / "server in", "", 32)`.
///
/// Like QUIC Initial protection this is obfuscation and integrity against off-path corruption,
/// not secrecy: anyone who sees the client's first packet can compute these keys.
///
/// Every version currently uses [`INITIAL_SALT_V1`], including versions this implementation does
/// not know; `version` is here so that a future version can change the salt (and so that the
/// caller cannot forget to decide).
pub fn initial_secrets(version: u32, client_dcid: &[u8]) -> (Secret, Secret) {
    let salt = match version {
        crate::VERSION_1 => &INITIAL_SALT_V1,
        _ => &INITIAL_SALT_V1,
    };
    let initial = extract(salt, client_dcid);
    (
        derive_secret(&initial, "client in", &[]),
        derive_secret(&initial, "server in", &[]),
    )
}

/// The stage markers of [`KeySchedule`].
pub mod stage {
    /// A stage of the key schedule (sealed).
    pub trait Stage: private::Sealed {}

    /// Before the key exchange: the early secret (from the PSK, or zeros).
    #[derive(Debug)]
    pub struct Early;
    /// After the key exchange: the handshake secret.
    #[derive(Debug)]
    pub struct Handshake;
    /// After the handshake: the master secret.
    #[derive(Debug)]
    pub struct Master;

    impl Stage for Early {}
    impl Stage for Handshake {}
    impl Stage for Master {}

    mod private {
        pub trait Sealed {}
        impl Sealed for super::Early {}
        impl Sealed for super::Handshake {}
        impl Sealed for super::Master {}
    }
}

pub use stage::{Early, Handshake, Master};

/// The TLS-1.3-shaped key schedule, one stage at a time; see the module documentation.
///
/// `KeySchedule::new(psk)` gives the early stage, [`KeySchedule::into_handshake`] the handshake
/// stage and [`KeySchedule::into_master`] the master stage. Each method is defined only on the
/// stage where it is meaningful, and moving on consumes (and zeroizes) the previous secret.
pub struct KeySchedule<S: stage::Stage = Early> {
    secret: Secret,
    stage: PhantomData<S>,
}

impl<S: stage::Stage> core::fmt::Debug for KeySchedule<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeySchedule")
            .field("stage", &core::any::type_name::<S>())
            .finish_non_exhaustive()
    }
}

impl<S: stage::Stage> KeySchedule<S> {
    /// `extract(derive_secret(current, "derived", sha256("")), ikm)`: the next stage's secret.
    fn next<T: stage::Stage>(self, ikm: &[u8]) -> KeySchedule<T> {
        let salt = derive_secret(&self.secret, "derived", &sha256(&[]));
        KeySchedule {
            secret: extract(salt.as_bytes(), ikm),
            stage: PhantomData,
        }
    }
}

impl KeySchedule<Early> {
    /// The early stage: `early = extract(zeros32, psk or zeros32)`.
    pub fn new(psk: Option<&Secret>) -> Self {
        let zeros = [0u8; HASH_LEN];
        let ikm = psk.map_or(&zeros, Secret::as_bytes);
        Self {
            secret: extract(&zeros, ikm),
            stage: PhantomData,
        }
    }

    /// The client's 0-RTT traffic secret: `derive_secret(early, "c e traffic", ClientHello hash)`.
    pub fn client_early_traffic(&self, client_hello_hash: &[u8]) -> Secret {
        derive_secret(&self.secret, "c e traffic", client_hello_hash)
    }

    /// The PSK binder key: `derive_secret(early, "res binder", sha256(""))`. Reserved: JSP's
    /// handshake needs no binder (the 0-RTT key is bound to the whole ClientHello hash and every
    /// handshake is signed; see `docs/PROTOCOL.md`), so nothing uses it today.
    pub fn binder_key(&self) -> Secret {
        derive_secret(&self.secret, "res binder", &sha256(&[]))
    }

    /// Moves to the handshake stage: `hs = extract(derive_secret(early, "derived", sha256("")),
    /// shared_secret)`.
    pub fn into_handshake(self, shared_secret: &[u8]) -> KeySchedule<Handshake> {
        self.next(shared_secret)
    }
}

impl KeySchedule<Handshake> {
    /// The handshake traffic secrets `(client, server)`: `derive_secret(hs, "c hs traffic" /
    /// "s hs traffic", hash of ClientHello..ServerHello)`.
    pub fn handshake_traffic(&self, hello_hash: &[u8]) -> (Secret, Secret) {
        (
            derive_secret(&self.secret, "c hs traffic", hello_hash),
            derive_secret(&self.secret, "s hs traffic", hello_hash),
        )
    }

    /// Moves to the master stage: `master = extract(derive_secret(hs, "derived", sha256("")),
    /// zeros32)`.
    pub fn into_master(self) -> KeySchedule<Master> {
        self.next(&[0u8; HASH_LEN])
    }
}

impl KeySchedule<Master> {
    /// The application traffic secrets `(client, server)`: `derive_secret(master, "c ap traffic" /
    /// "s ap traffic", hash of ClientHello..server Finished)`.
    pub fn application_traffic(&self, server_finished_hash: &[u8]) -> (Secret, Secret) {
        (
            derive_secret(&self.secret, "c ap traffic", server_finished_hash),
            derive_secret(&self.secret, "s ap traffic", server_finished_hash),
        )
    }

    /// The resumption master secret: `derive_secret(master, "res master", hash of
    /// ClientHello..client Finished)`.
    pub fn resumption(&self, client_finished_hash: &[u8]) -> Secret {
        derive_secret(&self.secret, "res master", client_finished_hash)
    }
}

/// The key of a Finished MAC: `expand_label(traffic_secret, "finished", "", 32)`; the Finished
/// value is `hmac_sha256(finished_key, transcript_hash)`, checked with [`verify_hmac_sha256`].
pub fn finished_key(traffic_secret: &Secret) -> Secret {
    derive_secret(traffic_secret, "finished", &[])
}

/// The PSK of a session ticket: `expand_label(resumption, "resumption", ticket_nonce, 32)`.
pub fn ticket_psk(resumption: &Secret, nonce: &[u8]) -> Secret {
    derive_secret(resumption, "resumption", nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// RFC 5869 Appendix A.1 (test case 1), through `extract` and the `expand` path used by
    /// `expand_label`.
    #[test]
    fn rfc5869_case1() {
        let ikm = [0x0bu8; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let prk = extract(&salt, &ikm);
        assert_eq!(
            prk.as_bytes().to_vec(),
            hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        );
        let mut okm = [0u8; 42];
        expand(&prk, &[&info[..5], &info[5..]], &mut okm);
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    /// RFC 4231 test case 2 for HMAC-SHA256, and the constant-time verifier.
    #[test]
    fn hmac_sha256_rfc4231_case2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            tag.to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert!(verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &tag
        ));
        let mut bad = tag;
        bad[31] ^= 1;
        assert!(!verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &bad
        ));
        assert!(!verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &tag[..31]
        ));
        assert!(!verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &[]
        ));
    }

    /// Pins the HkdfLabel layout against a hand-built info string through the raw `hkdf` crate.
    #[test]
    fn expand_label_layout() {
        let secret = Secret::from_bytes([0x42; 32]);
        let context = [1u8, 2, 3];
        let mut info = Vec::new();
        info.extend_from_slice(&12u16.to_be_bytes());
        info.push(5 + 3);
        info.extend_from_slice(b"jsp1 key");
        info.push(3);
        info.extend_from_slice(&context);
        let mut want = [0u8; 12];
        Hkdf::<Sha256>::from_prk(&[0x42; 32])
            .unwrap()
            .expand(&info, &mut want)
            .unwrap();
        let mut got = [0u8; 12];
        expand_label(&secret, "key", &context, &mut got);
        assert_eq!(got, want);

        // derive_secret is expand_label with 32 bytes of output.
        let mut info = Vec::new();
        info.extend_from_slice(&32u16.to_be_bytes());
        info.push(5 + 7);
        info.extend_from_slice(b"jsp1 derived");
        info.push(0);
        let mut want = [0u8; 32];
        Hkdf::<Sha256>::from_prk(&[0x42; 32])
            .unwrap()
            .expand(&info, &mut want)
            .unwrap();
        assert_eq!(derive_secret(&secret, "derived", &[]).as_bytes(), &want);
    }

    #[test]
    fn oversized_context_does_not_panic_and_differs() {
        let secret = Secret::from_bytes([7; 32]);
        let long = [9u8; 300];
        let a = ticket_psk(&secret, &long);
        let b = ticket_psk(&secret, &long[..255]);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let label = "x".repeat(400);
        let _ = derive_secret(&secret, &label, &[]);
    }

    #[test]
    fn transcript_hash_is_sha256_of_concatenation() {
        let mut t = Transcript::new();
        assert_eq!(t.hash(), sha256(b""));
        t.update(b"client hello");
        let mid = t.hash();
        assert_eq!(mid, sha256(b"client hello"));
        t.update(b"server hello");
        assert_eq!(t.hash(), sha256(b"client helloserver hello"));
        // hash() does not consume or reset.
        assert_eq!(t.hash(), sha256(b"client helloserver hello"));
        let fork = t.clone();
        t.update(b"!");
        assert_eq!(fork.hash(), sha256(b"client helloserver hello"));
    }

    #[test]
    fn initial_salt_is_documented_hash() {
        assert_eq!(INITIAL_SALT_V1, sha256(b"JetStreamProto v1 initial salt"));
    }

    #[test]
    fn initial_secrets_differ_by_direction_and_dcid() {
        let (c1, s1) = initial_secrets(crate::VERSION_1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (c2, s2) = initial_secrets(crate::VERSION_1, &[1, 2, 3, 4, 5, 6, 7, 9]);
        assert_ne!(c1.as_bytes(), s1.as_bytes());
        assert_ne!(c1.as_bytes(), c2.as_bytes());
        assert_ne!(s1.as_bytes(), s2.as_bytes());
        let (c3, s3) = initial_secrets(crate::VERSION_1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(c1.as_bytes(), c3.as_bytes());
        assert_eq!(s1.as_bytes(), s3.as_bytes());
        // Spelled out: extract then expand_label with empty context.
        let initial = extract(&INITIAL_SALT_V1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut want = [0u8; 32];
        expand_label(&initial, "client in", &[], &mut want);
        assert_eq!(c1.as_bytes(), &want);
    }

    #[test]
    fn schedule_follows_the_documented_derivations() {
        let psk = Secret::from_bytes([3; 32]);
        let shared = [5u8; 64];
        let h1 = sha256(b"ch");
        let h2 = sha256(b"ch sh");
        let h3 = sha256(b"ch .. sfin");
        let h4 = sha256(b"ch .. cfin");

        let early = extract(&[0; 32], psk.as_bytes());
        let hs = extract(
            derive_secret(&early, "derived", &sha256(b"")).as_bytes(),
            &shared,
        );
        let master = extract(
            derive_secret(&hs, "derived", &sha256(b"")).as_bytes(),
            &[0; 32],
        );

        let ks = KeySchedule::new(Some(&psk));
        assert_eq!(
            ks.client_early_traffic(&h1).as_bytes(),
            derive_secret(&early, "c e traffic", &h1).as_bytes()
        );
        assert_eq!(
            ks.binder_key().as_bytes(),
            derive_secret(&early, "res binder", &sha256(b"")).as_bytes()
        );
        let ks = ks.into_handshake(&shared);
        let (c, s) = ks.handshake_traffic(&h2);
        assert_eq!(
            c.as_bytes(),
            derive_secret(&hs, "c hs traffic", &h2).as_bytes()
        );
        assert_eq!(
            s.as_bytes(),
            derive_secret(&hs, "s hs traffic", &h2).as_bytes()
        );
        let ks = ks.into_master();
        let (c, s) = ks.application_traffic(&h3);
        assert_eq!(
            c.as_bytes(),
            derive_secret(&master, "c ap traffic", &h3).as_bytes()
        );
        assert_eq!(
            s.as_bytes(),
            derive_secret(&master, "s ap traffic", &h3).as_bytes()
        );
        let res = ks.resumption(&h4);
        assert_eq!(
            res.as_bytes(),
            derive_secret(&master, "res master", &h4).as_bytes()
        );
        let mut want = [0u8; 32];
        expand_label(&res, "resumption", b"nonce", &mut want);
        assert_eq!(ticket_psk(&res, b"nonce").as_bytes(), &want);
        expand_label(&c, "finished", &[], &mut want);
        assert_eq!(finished_key(&c).as_bytes(), &want);

        // Without a PSK the early secret is extract(0, 0), and the outputs change.
        let no_psk = KeySchedule::new(None);
        assert_eq!(
            no_psk.client_early_traffic(&h1).as_bytes(),
            derive_secret(&extract(&[0; 32], &[0; 32]), "c e traffic", &h1).as_bytes()
        );
        let (c2, _) = no_psk
            .into_handshake(&shared)
            .into_master()
            .application_traffic(&h3);
        assert_ne!(c.as_bytes(), c2.as_bytes());
    }

    #[test]
    fn keys_from_secret_round_trip_and_update() {
        let secret = Secret::from_bytes([11; 32]);
        for suite in CipherSuite::ALL {
            let tx = directional_keys(Backend::RustCrypto, suite, &secret);
            let rx = directional_keys(Backend::Auto, suite, &secret);
            let mut buf = *b"hello, world\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            tx.packet.seal(9, b"hdr", &mut buf).unwrap();
            assert_eq!(
                rx.packet.open(9, b"hdr", &mut buf).unwrap(),
                b"hello, world"
            );
            assert_eq!(tx.header.mask(&[4; 16]), rx.header.mask(&[4; 16]));

            // After a key update, old and new keys do not interoperate.
            let next = next_secret(&secret);
            assert_ne!(next.as_bytes(), secret.as_bytes());
            let rx2 = packet_key(Backend::Auto, suite, &next);
            let mut buf = *b"hello, world\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            tx.packet.seal(10, b"hdr", &mut buf).unwrap();
            assert!(rx2.open(10, b"hdr", &mut buf).is_err());
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::from_bytes([0xab; 32]);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "Secret(..)");
        assert!(!format!("{:?}", KeySchedule::new(Some(&s))).contains("ab"));
    }
}
