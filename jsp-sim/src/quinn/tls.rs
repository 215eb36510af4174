//! The deterministic pieces quinn-proto and rustls need: a seeded `SecureRandom`, an X25519 key
//! exchange that draws its secrets from it, a virtual wall clock, a connection-ID generator, and
//! a self-signed certificate whose key comes from the run's seed.
//!
//! rustls's `CryptoProvider` takes its random source and key-exchange groups as `&'static`
//! references, so each node's are leaked: a few hundred bytes per node and run, bounded by the
//! number of runs a process makes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use jsp_core::rand::Rng;
use quinn_proto::{ConnectionId, ConnectionIdGenerator};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::NamedGroup;

/// A CSPRNG seeded from the run, behind the `SecureRandom` interface rustls draws from.
pub(crate) struct SeededRandom(Mutex<Rng>);

impl core::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl SeededRandom {
    pub(crate) fn leak(rng: Rng) -> &'static Self {
        Box::leak(Box::new(Self(Mutex::new(rng))))
    }

    fn draw<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill_bytes(&mut out);
        out
    }

    fn fill_bytes(&self, buf: &mut [u8]) {
        match self.0.lock() {
            Ok(mut g) => g.fill(buf),
            Err(poisoned) => poisoned.into_inner().fill(buf),
        }
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        self.fill_bytes(buf);
        Ok(())
    }
}

/// X25519 whose ephemeral secrets come from a [`SeededRandom`] (rustls's own groups draw from
/// the operating system, which would make every handshake, and so every trace, different).
#[derive(Debug)]
pub(crate) struct SeededX25519(&'static SeededRandom);

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let secret = x25519_dalek::StaticSecret::from(self.0.draw::<32>());
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(rustls::PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// rustls's *ring* provider with its randomness and key exchange replaced by seeded ones.
pub(crate) fn provider(rng: Rng) -> Arc<CryptoProvider> {
    let random = SeededRandom::leak(rng);
    let kx: &'static SeededX25519 = Box::leak(Box::new(SeededX25519(random)));
    Arc::new(CryptoProvider {
        secure_random: random,
        kx_groups: vec![kx],
        ..rustls::crypto::ring::default_provider()
    })
}

/// Wall-clock time for the pieces that want one (quinn's address-validation tokens, rustls's
/// certificate and ticket checks): a fixed date plus the simulator's virtual time, which the
/// node advances on every call.
#[derive(Clone, Debug)]
pub(crate) struct VirtualWallClock(Arc<AtomicU64>);

/// The virtual wall clock's origin: 2025-01-01T00:00:00Z.
const WALL_ORIGIN_SECS: u64 = 1_735_689_600;

impl VirtualWallClock {
    pub(crate) fn new() -> Self {
        Self(Arc::new(AtomicU64::new(0)))
    }

    pub(crate) fn set(&self, since_origin_nanos: u64) {
        self.0.store(since_origin_nanos, Ordering::Relaxed);
    }

    fn now(&self) -> SystemTime {
        UNIX_EPOCH
            + StdDuration::from_secs(WALL_ORIGIN_SECS)
            + StdDuration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

impl quinn_proto::TimeSource for VirtualWallClock {
    fn now(&self) -> SystemTime {
        VirtualWallClock::now(self)
    }
}

impl rustls::time_provider::TimeProvider for VirtualWallClock {
    fn current_time(&self) -> Option<UnixTime> {
        let since = VirtualWallClock::now(self)
            .duration_since(UNIX_EPOCH)
            .ok()?;
        Some(UnixTime::since_unix_epoch(since))
    }
}

/// 8-byte connection IDs from a seeded generator (quinn's own draw from the thread's RNG).
pub(crate) struct SeededCids(Rng);

impl SeededCids {
    pub(crate) fn new(rng: Rng) -> Self {
        Self(rng)
    }
}

impl ConnectionIdGenerator for SeededCids {
    fn generate_cid(&mut self) -> ConnectionId {
        ConnectionId::new(&self.0.array::<8>())
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<StdDuration> {
        None
    }
}

/// A self-signed certificate for `localhost` with an Ed25519 key made from `seed` (Ed25519
/// signatures are deterministic, so the handshake is too), and its key.
pub(crate) fn certificate(
    seed: [u8; 32],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    // PKCS#8 v1 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed.
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(&seed);
    let pkcs8 = PrivatePkcs8KeyDer::from(der);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .map_err(|e| format!("key: {e}"))?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .and_then(|p| p.self_signed(&key))
        .map_err(|e| format!("certificate: {e}"))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}
