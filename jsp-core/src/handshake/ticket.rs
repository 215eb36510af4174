//! Session tickets: the server's sealed, self-contained resumption state, and what the client
//! keeps.
//!
//! The server keeps no per-ticket state. It seals [`TicketContents`] under a ticket key with
//! ChaCha20-Poly1305 and hands the result to the client; on resumption it opens the ticket, checks
//! its age ([`check_ticket_age`]) and, for 0-RTT, records the ticket's single-use `nonce` in the
//! replay filter.
//!
//! Ticket layout (139 bytes, well under the 256-byte budget and [`MAX_TICKET_LEN`]):
//!
//! ```text
//! key_id u8 ‖ aead_nonce [12] ‖ ChaCha20-Poly1305(plaintext [110]) ‖ tag [16]
//! plaintext = version u32 ‖ suite u16 ‖ psk [32] ‖ issued_at_ns u64 ‖ lifetime_ns u64 ‖
//!             age_add u32 ‖ max_early_data u32 ‖ server_identity_fingerprint [32] ‖ nonce [16]
//! AAD       = "jsp ticket v1" ‖ key_id
//! ```
//! (integers big-endian). The AEAD nonce is random: with at most one rotation interval of tickets
//! per key, a 96-bit random nonce repeats with negligible probability.
//!
//! **Rotation.** [`TicketKeys`] holds the current key and the previous one. A new key becomes
//! current every rotation interval ([`DEFAULT_TICKET_KEY_ROTATION`], 1 hour, as a compromise
//! between resumption rate and forward secrecy of ticket contents: a leaked key exposes at most
//! two intervals of tickets). A ticket therefore opens for one to two intervals after it was
//! sealed; servers should advertise a lifetime no longer than the interval.
//!
//! `issued_at` is the server driver's monotonic [`Instant`], meaningful only to the process that
//! sealed it — which is also the only one holding the key.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::messages::MAX_TICKET_LEN;
use super::params::TransportParameters;
use crate::coding::Reader;
use crate::rand::Rng;
use crate::time::{Duration, Instant};

/// Longest lifetime a ticket may have (RFC 8446 §4.6.1: 7 days).
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Default ticket-key rotation interval: 1 hour.
pub const DEFAULT_TICKET_KEY_ROTATION: Duration = Duration::from_secs(60 * 60);

/// Default freshness window for the ticket age of a 0-RTT attempt: 10 seconds (RFC 8446 §8.3
/// suggests about that; a wider window tolerates worse client clocks but lengthens how long the
/// replay filter must remember).
pub const DEFAULT_FRESHNESS_WINDOW: Duration = Duration::from_secs(10);

const AAD_LABEL: &[u8] = b"jsp ticket v1";
const AEAD_NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const PLAINTEXT_LEN: usize = 4 + 2 + 32 + 8 + 8 + 4 + 4 + 32 + 16;

/// Length of every sealed ticket, in bytes.
pub const SEALED_TICKET_LEN: usize = 1 + AEAD_NONCE_LEN + PLAINTEXT_LEN + TAG_LEN;

const _: () = assert!(SEALED_TICKET_LEN <= 256 && SEALED_TICKET_LEN <= MAX_TICKET_LEN);

/// What a ticket carries: everything the server needs to resume without per-client state.
/// `psk` is zeroized on drop.
#[derive(Clone)]
pub struct TicketContents {
    /// Protocol version of the original connection; resumption requires the same one.
    pub version: u32,
    /// Cipher suite (wire code) of the original connection; resumption requires the same one.
    pub suite: u16,
    /// The resumption pre-shared key.
    pub psk: [u8; 32],
    /// When the server issued the ticket (server driver's clock).
    pub issued_at: Instant,
    /// How long the ticket may be used; capped at [`MAX_TICKET_LIFETIME`] when sealed.
    pub lifetime: Duration,
    /// The value the client adds to the age it reports.
    pub age_add: u32,
    /// Most 0-RTT bytes accepted under this ticket; 0 means none.
    pub max_early_data: u32,
    /// SHA-256 fingerprint of the server identity that authenticated the original connection.
    pub server_identity_fingerprint: [u8; 32],
    /// Unique per ticket: the single-use id recorded by the replay filter.
    pub nonce: [u8; 16],
}

impl Drop for TicketContents {
    fn drop(&mut self) {
        self.psk.zeroize();
    }
}

impl fmt::Debug for TicketContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketContents")
            .field("version", &self.version)
            .field("suite", &self.suite)
            .field("psk", &"<redacted>")
            .field("issued_at", &self.issued_at)
            .field("lifetime", &self.lifetime)
            .field("age_add", &self.age_add)
            .field("max_early_data", &self.max_early_data)
            .field(
                "server_identity_fingerprint",
                &self.server_identity_fingerprint,
            )
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// Compares the PSK in constant time.
impl PartialEq for TicketContents {
    fn eq(&self, other: &Self) -> bool {
        let psk_eq: bool = self.psk.ct_eq(&other.psk).into();
        psk_eq
            && self.version == other.version
            && self.suite == other.suite
            && self.issued_at == other.issued_at
            && self.lifetime == other.lifetime
            && self.age_add == other.age_add
            && self.max_early_data == other.max_early_data
            && self.server_identity_fingerprint == other.server_identity_fingerprint
            && self.nonce == other.nonce
    }
}

impl Eq for TicketContents {}

/// Why the server refuses a resumption or 0-RTT attempt. Each is a soft failure: the server falls
/// back to a full handshake (or to 1-RTT), it does not close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRejection {
    /// The ticket's lifetime has passed.
    Expired,
    /// The age the client reports differs from the server's view by more than the window.
    AgeOutsideWindow,
    /// The ticket was already used for 0-RTT.
    Replayed,
    /// The replay filter has no room; 0-RTT is refused rather than risked.
    FilterFull,
    /// The ticket did not open (unknown or retired key, tampered, malformed).
    Undecryptable,
}

impl fmt::Display for TicketRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "ticket expired",
            Self::AgeOutsideWindow => "ticket age outside the freshness window",
            Self::Replayed => "ticket already used for 0-RTT",
            Self::FilterFull => "replay filter full",
            Self::Undecryptable => "ticket could not be opened",
        })
    }
}

impl std::error::Error for TicketRejection {}

struct TicketKey {
    id: u8,
    aead: ChaCha20Poly1305, // zeroizes its key on drop
}

impl TicketKey {
    fn generate(rng: &mut Rng, id: u8) -> Self {
        let key = Zeroizing::new(rng.array::<32>());
        Self {
            id,
            aead: ChaCha20Poly1305::new(Key::from_slice(key.as_slice())),
        }
    }
}

/// The server's ticket keys: the current one seals, the current and previous ones open.
pub struct TicketKeys {
    current: TicketKey,
    previous: Option<TicketKey>,
    rotation: Duration,
    rotated_at: Instant,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("current_id", &self.current.id)
            .field("previous_id", &self.previous.as_ref().map(|k| k.id))
            .field("rotation", &self.rotation)
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

fn aad(key_id: u8) -> [u8; AAD_LABEL.len() + 1] {
    let mut out = [key_id; AAD_LABEL.len() + 1];
    out.iter_mut().zip(AAD_LABEL).for_each(|(o, l)| *o = *l);
    out
}

impl TicketKeys {
    /// Fresh keys; the next rotation is due `rotation` after `now`
    /// (see [`DEFAULT_TICKET_KEY_ROTATION`]).
    pub fn new(rng: &mut Rng, now: Instant, rotation: Duration) -> Self {
        let [id] = rng.array::<1>();
        Self {
            current: TicketKey::generate(rng, id),
            previous: None,
            rotation,
            rotated_at: now,
        }
    }

    /// The rotation interval.
    pub fn rotation(&self) -> Duration {
        self.rotation
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + self.rotation
    }

    /// Rotates now: a new current key, the current one becomes previous, the previous one is
    /// dropped (and zeroized).
    pub fn rotate(&mut self, rng: &mut Rng, now: Instant) {
        let next = TicketKey::generate(rng, self.current.id.wrapping_add(1));
        self.previous = Some(core::mem::replace(&mut self.current, next));
        self.rotated_at = now;
    }

    /// Rotates if the interval has passed; returns whether it did. Call it from a timer too, so
    /// that old keys retire even when no tickets are being issued.
    pub fn rotate_if_due(&mut self, rng: &mut Rng, now: Instant) -> bool {
        if now >= self.next_rotation() {
            self.rotate(rng, now);
            true
        } else {
            false
        }
    }

    /// Seals `contents` under the current key, rotating first if due. The lifetime is capped at
    /// [`MAX_TICKET_LIFETIME`]. The result is [`SEALED_TICKET_LEN`] bytes.
    pub fn seal(&mut self, rng: &mut Rng, now: Instant, contents: &TicketContents) -> Vec<u8> {
        self.rotate_if_due(rng, now);
        let lifetime = contents.lifetime.min(MAX_TICKET_LIFETIME);
        let lifetime_ns = u64::try_from(lifetime.as_nanos()).unwrap_or(u64::MAX);

        let mut buf = Zeroizing::new(Vec::with_capacity(PLAINTEXT_LEN));
        buf.extend_from_slice(&contents.version.to_be_bytes());
        buf.extend_from_slice(&contents.suite.to_be_bytes());
        buf.extend_from_slice(&contents.psk);
        buf.extend_from_slice(&contents.issued_at.as_nanos().to_be_bytes());
        buf.extend_from_slice(&lifetime_ns.to_be_bytes());
        buf.extend_from_slice(&contents.age_add.to_be_bytes());
        buf.extend_from_slice(&contents.max_early_data.to_be_bytes());
        buf.extend_from_slice(&contents.server_identity_fingerprint);
        buf.extend_from_slice(&contents.nonce);
        debug_assert_eq!(buf.len(), PLAINTEXT_LEN);

        let nonce = rng.array::<AEAD_NONCE_LEN>();
        let key = &self.current;
        let Ok(tag) =
            key.aead
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad(key.id), &mut buf)
        else {
            // Only a plaintext beyond ChaCha20's 256 GiB limit fails; the plaintext is zeroized
            // on drop either way.
            return Vec::new();
        };
        let mut out = Vec::with_capacity(SEALED_TICKET_LEN);
        out.push(key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a ticket sealed by [`TicketKeys::seal`] under the current or the previous key.
    /// `None` for a wrong length, an unknown or retired key id, or any modification.
    pub fn open(&self, ticket: &[u8]) -> Option<TicketContents> {
        if ticket.len() != SEALED_TICKET_LEN {
            return None;
        }
        let mut r = Reader::new(ticket);
        let key_id = r.u8().ok()?;
        let nonce = r.bytes(AEAD_NONCE_LEN).ok()?;
        let ciphertext = r.bytes(PLAINTEXT_LEN).ok()?;
        let tag = r.bytes(TAG_LEN).ok()?;

        let key = if self.current.id == key_id {
            &self.current
        } else {
            self.previous.as_ref().filter(|k| k.id == key_id)?
        };
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        key.aead
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &aad(key_id),
                &mut buf,
                Tag::from_slice(tag),
            )
            .ok()?;

        let mut p = Reader::new(&buf);
        let contents = TicketContents {
            version: p.u32().ok()?,
            suite: p.u16().ok()?,
            psk: p.array().ok()?,
            issued_at: Instant::from_nanos(p.u64().ok()?),
            lifetime: Duration::from_nanos(p.u64().ok()?),
            age_add: p.u32().ok()?,
            max_early_data: p.u32().ok()?,
            server_identity_fingerprint: p.array().ok()?,
            nonce: p.array().ok()?,
        };
        if contents.lifetime > MAX_TICKET_LIFETIME {
            return None;
        }
        Some(contents)
    }
}

/// Server-side freshness check for a resumption attempt: the ticket is younger than its lifetime
/// (by the server's clock) and the age the client reports (`obfuscated_age_ms − age_add`) is
/// within `window` of the server's view (`now − issued_at`). A replayed ClientHello carries a
/// frozen age, so it falls outside the window soon after the original.
pub fn check_ticket_age(
    contents: &TicketContents,
    obfuscated_age_ms: u32,
    now: Instant,
    window: Duration,
) -> Result<(), TicketRejection> {
    let server_age = now.saturating_duration_since(contents.issued_at);
    if server_age >= contents.lifetime.min(MAX_TICKET_LIFETIME) {
        return Err(TicketRejection::Expired);
    }
    let client_age =
        Duration::from_millis(u64::from(obfuscated_age_ms.wrapping_sub(contents.age_add)));
    let skew = client_age.abs_diff(server_age);
    if skew > window {
        return Err(TicketRejection::AgeOutsideWindow);
    }
    Ok(())
}

/// What the client keeps after receiving NewSessionTicket (for resumption and 0-RTT).
/// `psk` is zeroized on drop and redacted from `Debug`.
#[derive(Clone)]
pub struct ClientTicket {
    /// The opaque ticket to present.
    pub ticket: Vec<u8>,
    /// The resumption PSK derived for this ticket.
    pub psk: [u8; 32],
    /// Cipher suite (wire code) of the connection that received the ticket.
    pub suite: u16,
    /// When the client received the ticket (client driver's clock).
    pub received_at: Instant,
    /// Lifetime the server announced (capped at [`MAX_TICKET_LIFETIME`] when used).
    pub lifetime: Duration,
    /// The server's `age_add`.
    pub age_add: u32,
    /// Most 0-RTT bytes the server accepts under this ticket.
    pub max_early_data: u32,
    /// SHA-256 fingerprint of the server identity the original connection authenticated.
    pub server_identity_fingerprint: [u8; 32],
    /// Protocol version of the original connection.
    pub version: u32,
    /// The server's transport parameters, to size 0-RTT before the new ones arrive.
    pub params: TransportParameters,
}

impl Drop for ClientTicket {
    fn drop(&mut self) {
        self.psk.zeroize();
    }
}

impl fmt::Debug for ClientTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTicket")
            .field("ticket_len", &self.ticket.len())
            .field("psk", &"<redacted>")
            .field("suite", &self.suite)
            .field("received_at", &self.received_at)
            .field("lifetime", &self.lifetime)
            .field("age_add", &self.age_add)
            .field("max_early_data", &self.max_early_data)
            .field(
                "server_identity_fingerprint",
                &self.server_identity_fingerprint,
            )
            .field("version", &self.version)
            .field("params", &self.params)
            .finish()
    }
}

impl ClientTicket {
    /// The age to report in [`super::messages::PskOffer::obfuscated_age_ms`]: milliseconds since
    /// the ticket arrived (saturating at 2^32 − 1) plus `age_add`, modulo 2^32.
    pub fn obfuscated_age_ms(&self, now: Instant) -> u32 {
        let age_ms = now.saturating_duration_since(self.received_at).as_millis();
        u32::try_from(age_ms)
            .unwrap_or(u32::MAX)
            .wrapping_add(self.age_add)
    }

    /// Whether the ticket's lifetime (capped at [`MAX_TICKET_LIFETIME`]) has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.received_at) >= self.lifetime.min(MAX_TICKET_LIFETIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rand::Rng;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn contents(issued_at: Instant) -> TicketContents {
        TicketContents {
            version: crate::VERSION_1,
            suite: 2,
            psk: [0x42; 32],
            issued_at,
            lifetime: Duration::from_secs(7200),
            age_add: 0xdead_beef,
            max_early_data: 16_384,
            server_identity_fingerprint: [0x17; 32],
            nonce: [0x99; 16],
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let mut rng = Rng::from_seed([1; 32]);
        let now = Instant::from_millis(10);
        let mut keys = TicketKeys::new(&mut rng, now, DEFAULT_TICKET_KEY_ROTATION);
        let c = contents(now);
        let t = keys.seal(&mut rng, now, &c);
        assert_eq!(t.len(), SEALED_TICKET_LEN);
        assert!(t.len() <= 256);
        assert_eq!(keys.open(&t), Some(c.clone()));
        // Two seals of the same contents differ (random AEAD nonce) and both open.
        let t2 = keys.seal(&mut rng, now, &c);
        assert_ne!(t, t2);
        assert_eq!(keys.open(&t2), Some(c.clone()));
        // Lifetime is capped.
        let long = TicketContents {
            lifetime: Duration::from_secs(30 * 86_400),
            ..c.clone()
        };
        let sealed = keys.seal(&mut rng, now, &long);
        let opened = keys.open(&sealed).unwrap();
        assert_eq!(opened.lifetime, MAX_TICKET_LIFETIME);
        // Wrong lengths and garbage.
        assert_eq!(keys.open(&[]), None);
        assert_eq!(keys.open(&t[..t.len() - 1]), None);
        let mut longer = t.clone();
        longer.push(0);
        assert_eq!(keys.open(&longer), None);
        // Debug never shows the PSK.
        assert!(!format!("{c:?}").contains("66, 66"));
    }

    #[test]
    fn every_flipped_bit_fails() {
        let mut rng = Rng::from_seed([2; 32]);
        let now = Instant::ZERO;
        let mut keys = TicketKeys::new(&mut rng, now, HOUR);
        let t = keys.seal(&mut rng, now, &contents(now));
        for i in 0..t.len() * 8 {
            let mut bad = t.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(keys.open(&bad), None, "bit {i}");
        }
    }

    #[test]
    fn previous_key_opens_after_one_rotation_not_two() {
        let mut rng = Rng::from_seed([3; 32]);
        let t0 = Instant::from_millis(1);
        let mut keys = TicketKeys::new(&mut rng, t0, HOUR);
        let old = keys.seal(&mut rng, t0, &contents(t0));
        // Not yet due: same key.
        assert!(!keys.rotate_if_due(&mut rng, t0 + HOUR - Duration::from_nanos(1)));
        // Sealing after the interval rotates first; the old ticket still opens.
        let t1 = t0 + HOUR;
        let newer = keys.seal(&mut rng, t1, &contents(t1));
        assert_ne!(old[0], newer[0], "new key id");
        assert!(keys.open(&old).is_some());
        assert!(keys.open(&newer).is_some());
        // Second rotation retires the first key.
        assert!(keys.rotate_if_due(&mut rng, t1 + HOUR));
        assert_eq!(keys.open(&old), None);
        assert!(keys.open(&newer).is_some());
        // A ticket from an unrelated key set never opens.
        let mut other = TicketKeys::new(&mut Rng::from_seed([4; 32]), t0, HOUR);
        let foreign = other.seal(&mut rng, t0, &contents(t0));
        assert_eq!(keys.open(&foreign), None);
    }

    #[test]
    fn age_check_window_and_expiry() {
        let issued = Instant::from_millis(1_000_000);
        let c = contents(issued);
        let w = DEFAULT_FRESHNESS_WINDOW;
        let obf = |age_ms: u32| age_ms.wrapping_add(c.age_add);
        let at = |ms: u64| issued + Duration::from_millis(ms);
        // Client reports 60 s, server sees 60.5 s (the client received it half an RTT later).
        assert_eq!(check_ticket_age(&c, obf(60_000), at(60_500), w), Ok(()));
        assert_eq!(check_ticket_age(&c, obf(60_000), at(70_000), w), Ok(()));
        assert_eq!(check_ticket_age(&c, obf(60_000), at(50_000), w), Ok(()));
        assert_eq!(
            check_ticket_age(&c, obf(60_000), at(70_001), w),
            Err(TicketRejection::AgeOutsideWindow)
        );
        assert_eq!(
            check_ticket_age(&c, obf(60_000), at(49_999), w),
            Err(TicketRejection::AgeOutsideWindow)
        );
        // A raw (unobfuscated) age is far off.
        assert_eq!(
            check_ticket_age(&c, 60_000, at(60_000), w),
            Err(TicketRejection::AgeOutsideWindow)
        );
        // Expiry by the server's clock.
        assert_eq!(
            check_ticket_age(&c, obf(7_199_999), at(7_199_999), w),
            Ok(())
        );
        assert_eq!(
            check_ticket_age(&c, obf(7_200_000), at(7_200_000), w),
            Err(TicketRejection::Expired)
        );
        let forever = TicketContents {
            lifetime: Duration::MAX,
            ..c.clone()
        };
        assert_eq!(
            check_ticket_age(&forever, 0, issued + MAX_TICKET_LIFETIME, w),
            Err(TicketRejection::Expired)
        );
    }

    #[test]
    fn client_ticket_age_and_expiry() {
        let received = Instant::from_millis(500);
        let t = ClientTicket {
            ticket: vec![1; 139],
            psk: [0x42; 32],
            suite: 2,
            received_at: received,
            lifetime: Duration::from_secs(10),
            age_add: u32::MAX - 5,
            max_early_data: 1000,
            server_identity_fingerprint: [0; 32],
            version: crate::VERSION_1,
            params: TransportParameters::default(),
        };
        assert_eq!(t.obfuscated_age_ms(received), u32::MAX - 5);
        assert_eq!(t.obfuscated_age_ms(received + Duration::from_millis(10)), 4);
        assert!(!t.is_expired(received + Duration::from_millis(9_999)));
        assert!(t.is_expired(received + Duration::from_secs(10)));
        assert!(!format!("{t:?}").contains("66"));
        // Client and server agree on the age.
        let c = TicketContents {
            age_add: t.age_add,
            lifetime: t.lifetime,
            ..contents(received)
        };
        let now = received + Duration::from_millis(3_000);
        assert_eq!(
            check_ticket_age(&c, t.obfuscated_age_ms(now), now, DEFAULT_FRESHNESS_WINDOW),
            Ok(())
        );
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let keys = TicketKeys::new(&mut Rng::from_seed([5; 32]), Instant::ZERO, HOUR);
            let mut ticket = bytes.clone();
            ticket.resize(SEALED_TICKET_LEN, 0);
            prop_assert_eq!(keys.open(&bytes), None);
            prop_assert_eq!(keys.open(&ticket), None);
        }

        #[test]
        fn round_trip_any_contents(
            version in any::<u32>(), suite in any::<u16>(), psk in any::<[u8; 32]>(),
            issued in any::<u64>(), lifetime_ms in 0..=MAX_TICKET_LIFETIME.as_millis() as u64,
            age_add in any::<u32>(), max_early_data in any::<u32>(),
            fp in any::<[u8; 32]>(), nonce in any::<[u8; 16]>(),
        ) {
            let mut rng = Rng::from_seed([6; 32]);
            let mut keys = TicketKeys::new(&mut rng, Instant::ZERO, HOUR);
            let c = TicketContents {
                version, suite, psk, issued_at: Instant::from_nanos(issued),
                lifetime: Duration::from_millis(lifetime_ms), age_add, max_early_data,
                server_identity_fingerprint: fp, nonce,
            };
            let t = keys.seal(&mut rng, Instant::ZERO, &c);
            prop_assert_eq!(keys.open(&t), Some(c));
        }
    }
}
