//! Address-validation tokens: what a server hands a client so that the client can later prove
//! it receives packets at its address, without the server keeping state per client.
//!
//! Two kinds, one sealed format (docs/PROTOCOL.md §10.6):
//!
//! ```text
//! token   = kind u8 ‖ key_id u8 ‖ nonce [12] ‖ ChaCha20-Poly1305(plaintext) ‖ tag [16]
//! aad     = "jsp token" ‖ kind ‖ key_id ‖ context
//!
//! Retry (kind 1):      plaintext = issued_ms u64 ‖ odcid_len u8 ‖ odcid
//!                      context   = ip [16] ‖ port u16 ‖ retry_scid_len u8 ‖ retry_scid
//! NEW_TOKEN (kind 2):  plaintext = issued_ms u64
//!                      context   = ip [16]
//! ```
//!
//! `ip` is the client's IPv6 address, or its IPv4 address mapped into IPv6; `issued_ms` counts
//! milliseconds on the endpoint's clock. The client's address is bound through the associated
//! data, never carried, so a token says nothing about who it was issued to, and the random nonce
//! makes two tokens for one client unlinkable. Any change to a token, or its use from another
//! address (or, for Retry, with another connection ID), fails the AEAD: the token is then
//! *unvalidated*, never accepted.
//!
//! Keys: each kind has its own [`KeyRing`] of a current and a previous random key, rotated on
//! the driver's clock (Retry: every 120 s like WireGuard's cookie secret; NEW_TOKEN: every token
//! lifetime). A token opens only under the key its `key_id` names, if that key is still held.
//!
//! NEW_TOKEN tokens are single-use: [`TokenLog`] remembers the used ones (bounded) and refuses
//! a second use.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use crate::cid::ConnectionId;
use crate::coding::Reader;
use crate::rand::Rng;
use crate::time::{Duration, Instant};

/// Token kind: issued in a Retry packet.
pub const KIND_RETRY: u8 = 1;
/// Token kind: issued in a NEW_TOKEN frame.
pub const KIND_NEW_TOKEN: u8 = 2;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"jsp token";
/// Bytes a sealed token adds to its plaintext: kind, key id, nonce, tag.
pub const TOKEN_OVERHEAD: usize = 2 + NONCE_LEN + TAG_LEN;
/// Longest token the endpoint looks at; longer ones are unvalidated without opening them.
pub const MAX_TOKEN_LEN: usize = 256;

/// Why a token did not validate the client's address. Each means "unvalidated", never more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Too short, too long, of an unknown kind or with a plaintext that does not parse.
    Malformed,
    /// The AEAD rejected it: altered, forged, bound to another address or connection ID, or
    /// sealed under a key that was rotated out.
    Unauthentic,
    /// Older than its lifetime (or issued in the future).
    Expired,
    /// A NEW_TOKEN token already used once.
    Replayed,
    /// A NEW_TOKEN token older than the oldest one the bounded log still remembers: it might
    /// have been used, so it is refused (the log's safe failure).
    Stale,
}

impl core::fmt::Display for TokenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed token",
            Self::Unauthentic => "token fails authentication",
            Self::Expired => "token expired",
            Self::Replayed => "token already used",
            Self::Stale => "token older than the replay log remembers",
        })
    }
}

impl std::error::Error for TokenError {}

struct RingKey {
    id: u8,
    aead: ChaCha20Poly1305, // zeroizes its key on drop
}

impl RingKey {
    fn generate(rng: &mut Rng, id: u8) -> Self {
        let key = Zeroizing::new(rng.array::<32>());
        Self {
            id,
            aead: ChaCha20Poly1305::new(Key::from_slice(key.as_slice())),
        }
    }
}

/// A current and a previous random key, rotated every `period` on the driver's clock. The current
/// key seals; both open, so tokens issued just before a rotation stay usable.
pub struct KeyRing {
    current: RingKey,
    previous: Option<RingKey>,
    period: Duration,
    rotated_at: Instant,
}

impl core::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current_id", &self.current.id)
            .field("previous_id", &self.previous.as_ref().map(|k| k.id))
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

fn aad(kind: u8, key_id: u8, context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 2 + context.len());
    a.extend_from_slice(AAD_LABEL);
    a.push(kind);
    a.push(key_id);
    a.extend_from_slice(context);
    a
}

impl KeyRing {
    /// A ring with a fresh key, rotating every `period`.
    pub fn new(rng: &mut Rng, now: Instant, period: Duration) -> Self {
        Self {
            current: RingKey::generate(rng, 0),
            previous: None,
            period,
            rotated_at: now,
        }
    }

    /// Rotates when a period has passed since the last rotation; after two periods without a
    /// rotation (an idle endpoint) the previous key is dropped too.
    pub fn rotate_if_due(&mut self, rng: &mut Rng, now: Instant) {
        let since = now.saturating_duration_since(self.rotated_at);
        if since < self.period {
            return;
        }
        let fresh = RingKey::generate(rng, self.current.id.wrapping_add(1));
        let old = core::mem::replace(&mut self.current, fresh);
        self.previous = (since < self.period.saturating_mul(2)).then_some(old);
        self.rotated_at = now;
    }

    /// Seals `plaintext` as a token of `kind` bound to `context`.
    pub fn seal(&self, rng: &mut Rng, kind: u8, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = rng.array::<NONCE_LEN>();
        let mut body = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .current
            .aead
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &aad(kind, self.current.id, context),
                body.as_mut_slice(),
            )
            // Only a plaintext beyond ChaCha20's 256 GiB limit fails.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(TOKEN_OVERHEAD + body.len());
        out.push(kind);
        out.push(self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a token of `kind` bound to `context`; returns its nonce and plaintext.
    pub fn open(
        &self,
        kind: u8,
        context: &[u8],
        token: &[u8],
    ) -> Result<([u8; NONCE_LEN], Zeroizing<Vec<u8>>), TokenError> {
        if token.len() < TOKEN_OVERHEAD || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut r = Reader::new(token);
        let (k, id) = (
            r.u8().map_err(|_| TokenError::Malformed)?,
            r.u8().map_err(|_| TokenError::Malformed)?,
        );
        if k != kind {
            return Err(TokenError::Malformed);
        }
        let nonce = r.array::<NONCE_LEN>().map_err(|_| TokenError::Malformed)?;
        let rest = r.rest();
        let (body, tag) = rest
            .split_at_checked(rest.len().saturating_sub(TAG_LEN))
            .ok_or(TokenError::Malformed)?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or(TokenError::Unauthentic)?;
        let mut plain = Zeroizing::new(body.to_vec());
        key.aead
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &aad(kind, id, context),
                plain.as_mut_slice(),
                Tag::from_slice(tag),
            )
            .map_err(|_| TokenError::Unauthentic)?;
        Ok((nonce, plain))
    }
}

/// The client's IP address as 16 bytes (IPv4 mapped into IPv6).
fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn retry_context(remote: SocketAddr, retry_scid: &ConnectionId) -> Vec<u8> {
    let mut c = Vec::with_capacity(16 + 2 + 1 + retry_scid.len());
    c.extend_from_slice(&ip_bytes(remote.ip()));
    c.extend_from_slice(&remote.port().to_be_bytes());
    c.push(retry_scid.len() as u8);
    c.extend_from_slice(retry_scid);
    c
}

fn millis(t: Instant) -> u64 {
    u64::try_from(t.since_origin().as_millis()).unwrap_or(u64::MAX)
}

/// Whether a token issued at `issued_ms` is still within `lifetime` at `now`.
fn fresh(issued_ms: u64, now: Instant, lifetime: Duration) -> bool {
    let now_ms = millis(now);
    issued_ms <= now_ms && u128::from(now_ms - issued_ms) <= lifetime.as_millis()
}

/// Remembers used NEW_TOKEN tokens so each validates an address at most once.
///
/// Entries are `(issued_ms, nonce)`, ordered by issue time. An entry leaves when its token has
/// expired (it could not be accepted anyway) or, when the log is full, the oldest leaves and
/// raises a *floor*: every token issued at or before the floor is refused as
/// [`TokenError::Stale`]. So memory stays bounded by `capacity` and a token is never accepted
/// twice; a full log only costs clients with old tokens one Retry round trip.
#[derive(Debug)]
pub struct TokenLog {
    used: BTreeSet<(u64, [u8; NONCE_LEN])>,
    capacity: usize,
    floor: Option<u64>,
}

impl TokenLog {
    /// An empty log holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            used: BTreeSet::new(),
            capacity: capacity.max(1),
            floor: None,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// Records the use of the token `(issued_ms, nonce)`: `Ok` the first time, an error when
    /// it was used before or may have been.
    pub fn use_once(
        &mut self,
        issued_ms: u64,
        nonce: [u8; NONCE_LEN],
        now: Instant,
        lifetime: Duration,
    ) -> Result<(), TokenError> {
        let now_ms = millis(now);
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        while let Some(first) = self.used.first().copied() {
            if first.0.saturating_add(lifetime_ms) < now_ms {
                self.used.pop_first();
            } else {
                break;
            }
        }
        if self.floor.is_some_and(|f| issued_ms <= f) {
            return Err(TokenError::Stale);
        }
        if !self.used.insert((issued_ms, nonce)) {
            return Err(TokenError::Replayed);
        }
        while self.used.len() > self.capacity {
            if let Some((oldest, _)) = self.used.pop_first() {
                self.floor = Some(self.floor.map_or(oldest, |f| f.max(oldest)));
            }
        }
        if self.floor.is_some_and(|f| issued_ms <= f) {
            // Our own entry was the oldest: it is gone, and so refused like any older token.
            return Err(TokenError::Stale);
        }
        Ok(())
    }
}

/// Everything an endpoint needs to issue and check address-validation tokens.
#[derive(Debug)]
pub struct AddressTokens {
    retry: KeyRing,
    new_token: KeyRing,
    log: TokenLog,
    retry_lifetime: Duration,
    new_token_lifetime: Duration,
}

impl AddressTokens {
    /// Fresh keys; Retry keys rotate every `rotation`, NEW_TOKEN keys every
    /// `new_token_lifetime` (at least one second).
    pub fn new(
        rng: &mut Rng,
        now: Instant,
        rotation: Duration,
        retry_lifetime: Duration,
        new_token_lifetime: Duration,
        log_capacity: usize,
    ) -> Self {
        Self {
            retry: KeyRing::new(rng, now, rotation),
            new_token: KeyRing::new(rng, now, new_token_lifetime.max(Duration::from_secs(1))),
            log: TokenLog::new(log_capacity),
            retry_lifetime,
            new_token_lifetime,
        }
    }

    /// Rotates keys that are due.
    pub fn rotate_if_due(&mut self, rng: &mut Rng, now: Instant) {
        self.retry.rotate_if_due(rng, now);
        self.new_token.rotate_if_due(rng, now);
    }

    /// NEW_TOKEN tokens remembered as used.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// A Retry token for a client at `remote` whose first Initial went to `original_dcid`, told
    /// to come back to `retry_scid`.
    pub fn retry_token(
        &self,
        rng: &mut Rng,
        now: Instant,
        remote: SocketAddr,
        retry_scid: &ConnectionId,
        original_dcid: &ConnectionId,
    ) -> Vec<u8> {
        let mut plain = Vec::with_capacity(8 + 1 + original_dcid.len());
        plain.extend_from_slice(&millis(now).to_be_bytes());
        plain.push(original_dcid.len() as u8);
        plain.extend_from_slice(original_dcid);
        self.retry
            .seal(rng, KIND_RETRY, &retry_context(remote, retry_scid), &plain)
    }

    /// Checks a Retry token arriving from `remote` in an Initial sent to `dcid`; returns the
    /// client's original destination connection ID.
    pub fn check_retry(
        &self,
        now: Instant,
        remote: SocketAddr,
        dcid: &ConnectionId,
        token: &[u8],
    ) -> Result<ConnectionId, TokenError> {
        let (_, plain) = self
            .retry
            .open(KIND_RETRY, &retry_context(remote, dcid), token)?;
        let mut r = Reader::new(&plain);
        let issued = r.u64().map_err(|_| TokenError::Malformed)?;
        let len = usize::from(r.u8().map_err(|_| TokenError::Malformed)?);
        let odcid = r
            .bytes(len)
            .ok()
            .and_then(ConnectionId::new)
            .ok_or(TokenError::Malformed)?;
        if !r.is_empty() {
            return Err(TokenError::Malformed);
        }
        if !fresh(issued, now, self.retry_lifetime) {
            return Err(TokenError::Expired);
        }
        Ok(odcid)
    }

    /// A NEW_TOKEN token for a client at `ip`.
    pub fn new_token(&self, rng: &mut Rng, now: Instant, ip: IpAddr) -> Vec<u8> {
        self.new_token.seal(
            rng,
            KIND_NEW_TOKEN,
            &ip_bytes(ip),
            &millis(now).to_be_bytes(),
        )
    }

    /// Checks a NEW_TOKEN token arriving from `ip` and, when it is valid, records its use.
    pub fn check_new_token(
        &mut self,
        now: Instant,
        ip: IpAddr,
        token: &[u8],
    ) -> Result<(), TokenError> {
        let (nonce, plain) = self.new_token.open(KIND_NEW_TOKEN, &ip_bytes(ip), token)?;
        let issued = <[u8; 8]>::try_from(plain.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| TokenError::Malformed)?;
        if !fresh(issued, now, self.new_token_lifetime) {
            return Err(TokenError::Expired);
        }
        self.log
            .use_once(issued, nonce, now, self.new_token_lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> Rng {
        Rng::from_seed([5; 32])
    }

    fn cid(b: u8, len: usize) -> ConnectionId {
        ConnectionId::new(&vec![b; len]).unwrap()
    }

    fn tokens(now: Instant) -> AddressTokens {
        AddressTokens::new(
            &mut rng(),
            now,
            Duration::from_secs(120),
            Duration::from_secs(10),
            Duration::from_secs(86_400),
            4,
        )
    }

    const A: &str = "192.0.2.1:4433";
    const B: &str = "192.0.2.2:4433";

    #[test]
    fn a_retry_token_validates_only_its_address_port_and_cid_within_its_lifetime() {
        let t0 = Instant::from_millis(1_000);
        let t = tokens(t0);
        let mut r = rng();
        let a: SocketAddr = A.parse().unwrap();
        let (scid, odcid) = (cid(1, 8), cid(2, 16));
        let tok = t.retry_token(&mut r, t0, a, &scid, &odcid);
        assert_eq!(t.check_retry(t0, a, &scid, &tok), Ok(odcid));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.check_retry(later, a, &scid, &tok), Ok(odcid));
        let too_late = later + Duration::from_millis(1);
        assert_eq!(
            t.check_retry(too_late, a, &scid, &tok),
            Err(TokenError::Expired)
        );
        let b: SocketAddr = B.parse().unwrap();
        assert_eq!(
            t.check_retry(t0, b, &scid, &tok),
            Err(TokenError::Unauthentic)
        );
        let other_port = SocketAddr::new(a.ip(), 4434);
        assert_eq!(
            t.check_retry(t0, other_port, &scid, &tok),
            Err(TokenError::Unauthentic)
        );
        assert_eq!(
            t.check_retry(t0, a, &cid(3, 8), &tok),
            Err(TokenError::Unauthentic)
        );
        // Every single flipped bit: never accepted.
        for i in 0..tok.len() {
            for bit in 0..8 {
                let mut bad = tok.clone();
                bad[i] ^= 1 << bit;
                assert!(t.check_retry(t0, a, &scid, &bad).is_err(), "{i}/{bit}");
            }
        }
        // A NEW_TOKEN key does not open it, nor does the other kind's check.
        let mut t = t;
        assert!(t.check_new_token(t0, a.ip(), &tok).is_err());
    }

    #[test]
    fn retry_keys_rotate_and_the_previous_one_still_opens() {
        let t0 = Instant::from_millis(0);
        let mut t = tokens(t0);
        let mut r = rng();
        let a: SocketAddr = A.parse().unwrap();
        let (scid, odcid) = (cid(1, 8), cid(2, 16));
        let t1 = t0 + Duration::from_secs(119);
        let tok = t.retry_token(&mut r, t1, a, &scid, &odcid);
        let t2 = t0 + Duration::from_secs(121);
        t.rotate_if_due(&mut r, t2);
        assert_eq!(t.check_retry(t2, a, &scid, &tok), Ok(odcid));
        let fresh_tok = t.retry_token(&mut r, t2, a, &scid, &odcid);
        assert_ne!(fresh_tok[1], tok[1], "new key id");
        // Two rotations later the old key is gone: unauthentic even if the clock allowed it.
        t.rotate_if_due(&mut r, t2 + Duration::from_secs(120));
        assert_eq!(
            t.check_retry(t2, a, &scid, &tok),
            Err(TokenError::Unauthentic)
        );
    }

    #[test]
    fn a_new_token_is_single_use_bound_to_the_ip_and_unlinkable() {
        let t0 = Instant::from_millis(5);
        let mut t = tokens(t0);
        let mut r = rng();
        let a: SocketAddr = A.parse().unwrap();
        let b: SocketAddr = B.parse().unwrap();
        let tok1 = t.new_token(&mut r, t0, a.ip());
        let tok2 = t.new_token(&mut r, t0, a.ip());
        assert_ne!(
            tok1, tok2,
            "random nonce: two tokens share nothing but length and kind"
        );
        assert_eq!(
            t.check_new_token(t0, b.ip(), &tok1),
            Err(TokenError::Unauthentic)
        );
        assert_eq!(t.check_new_token(t0, a.ip(), &tok1), Ok(()));
        assert_eq!(
            t.check_new_token(t0, a.ip(), &tok1),
            Err(TokenError::Replayed)
        );
        let expired = t0 + Duration::from_secs(86_401);
        assert_eq!(
            t.check_new_token(expired, a.ip(), &tok2),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_full_token_log_refuses_old_tokens_instead_of_forgetting_them() {
        let t0 = Instant::from_millis(0);
        let mut t = tokens(t0);
        let mut r = rng();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let toks: Vec<Vec<u8>> = (0..6)
            .map(|i| t.new_token(&mut r, t0 + Duration::from_millis(i), ip))
            .collect();
        let now = t0 + Duration::from_secs(1);
        // Use tokens 1..=5 into a log of 4: token 1 is evicted, raising the floor.
        for tok in &toks[1..] {
            assert_eq!(t.check_new_token(now, ip, tok), Ok(()));
        }
        assert_eq!(t.log_len(), 4);
        assert_eq!(
            t.check_new_token(now, ip, &toks[1]),
            Err(TokenError::Stale),
            "evicted, never accepted twice"
        );
        assert_eq!(
            t.check_new_token(now, ip, &toks[0]),
            Err(TokenError::Stale),
            "older than the floor"
        );
        assert_eq!(
            t.check_new_token(now, ip, &toks[5]),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn garbage_never_validates_and_never_panics() {
        let t0 = Instant::from_millis(0);
        let mut t = tokens(t0);
        let a: SocketAddr = A.parse().unwrap();
        let mut r = rng();
        for len in 0..300 {
            let mut g = vec![0u8; len];
            r.fill(&mut g);
            for kind in [KIND_RETRY, KIND_NEW_TOKEN, 0, 0xff] {
                if let Some(k) = g.first_mut() {
                    *k = kind;
                }
                assert!(t.check_retry(t0, a, &cid(1, 8), &g).is_err());
                assert!(t.check_new_token(t0, a.ip(), &g).is_err());
            }
        }
    }
}
