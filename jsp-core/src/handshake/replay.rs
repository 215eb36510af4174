//! A bounded 0-RTT replay filter: each ticket's early data is accepted at most once.
//!
//! The filter remembers the single-use id of every ticket used for 0-RTT (the
//! [`super::ticket::TicketContents::nonce`]) until that ticket can no longer be accepted: its
//! expiry plus the freshness window as a margin. An entry is never dropped before then — so a
//! replay can never pass — and when the table is full of live entries, the filter answers
//! [`TicketRejection::FilterFull`]: the server then refuses 0-RTT (falling back to 1-RTT), the
//! safe failure.
//!
//! Memory is bounded by `capacity` (defaults: [`DEFAULT_REPLAY_CAPACITY`] entries, about 64 bytes
//! each across the set and the expiry heap, so roughly 4 MiB when full, and
//! [`super::ticket::DEFAULT_FRESHNESS_WINDOW`]). Ids are server-chosen random values inside
//! authenticated tickets, so the peer cannot pick colliding hash keys.
//!
//! The filter is per server process; a cluster sharing ticket keys needs a shared filter (or
//! single-server ticket keys) for "at most once" to hold across machines.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use super::ticket::TicketRejection;
use crate::time::{Duration, Instant};

/// Default number of ticket ids remembered.
pub const DEFAULT_REPLAY_CAPACITY: usize = 65_536;

/// Remembers the ids of tickets already used for 0-RTT.
#[derive(Debug)]
pub struct ReplayFilter {
    seen: HashSet<[u8; 16]>,
    by_expiry: BinaryHeap<Reverse<(Instant, [u8; 16])>>,
    capacity: usize,
    window: Duration,
}

impl ReplayFilter {
    /// An empty filter holding at most `capacity` ids, each kept until its ticket's expiry plus
    /// `window` (the freshness window, as a margin for the age check's tolerance).
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            seen: HashSet::new(),
            by_expiry: BinaryHeap::new(),
            capacity,
            window,
        }
    }

    /// Records `id` seen at `now`; `expires` is when its ticket expires. Fresh → `Ok(())`; seen
    /// before and still remembered → `Err(Replayed)`; a ticket already expired → `Err(Expired)`;
    /// no room even after evicting expired entries → `Err(FilterFull)` (refuse 0-RTT, never
    /// accept twice).
    pub fn check_and_insert(
        &mut self,
        id: &[u8; 16],
        now: Instant,
        expires: Instant,
    ) -> Result<(), TicketRejection> {
        self.evict_expired(now);
        if self.seen.contains(id) {
            return Err(TicketRejection::Replayed);
        }
        if expires <= now {
            return Err(TicketRejection::Expired);
        }
        if self.seen.len() >= self.capacity {
            return Err(TicketRejection::FilterFull);
        }
        self.seen.insert(*id);
        self.by_expiry.push(Reverse((expires + self.window, *id)));
        Ok(())
    }

    /// Forgets every id whose retention ended at or before `now`.
    pub fn evict_expired(&mut self, now: Instant) {
        while let Some(Reverse((forget_at, id))) = self.by_expiry.peek() {
            if *forget_at > now {
                break;
            }
            self.seen.remove(id);
            self.by_expiry.pop();
        }
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The most ids the filter holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// When the next entry may be forgotten (a timer hint), if any is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_expiry.peek().map(|Reverse((t, _))| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: Duration = Duration::from_secs(10);

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn second_use_is_replayed() {
        let mut f = ReplayFilter::new(4, W);
        let now = Instant::from_millis(1_000);
        let exp = now + Duration::from_secs(60);
        assert_eq!(f.check_and_insert(&id(1), now, exp), Ok(()));
        assert_eq!(
            f.check_and_insert(&id(1), now + Duration::from_secs(30), exp),
            Err(TicketRejection::Replayed)
        );
        // Still remembered just before expiry + window, even when the caller lies about expiry.
        assert_eq!(
            f.check_and_insert(&id(1), exp + W - Duration::from_nanos(1), Instant::MAX),
            Err(TicketRejection::Replayed)
        );
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn full_filter_refuses_and_room_is_reused_after_expiry() {
        let mut f = ReplayFilter::new(3, W);
        let now = Instant::from_millis(0);
        let exp = now + Duration::from_secs(60);
        for n in 0..3 {
            f.check_and_insert(&id(n), now, exp).unwrap();
        }
        assert_eq!(
            f.check_and_insert(&id(9), now + Duration::from_secs(1), exp),
            Err(TicketRejection::FilterFull)
        );
        assert_eq!(f.len(), 3);
        // After expiry + window the entries go and the room is reused.
        let later = exp + W;
        assert_eq!(
            f.check_and_insert(&id(9), later, later + Duration::from_secs(5)),
            Ok(())
        );
        assert_eq!(f.len(), 1);
        // An old id is accepted again only because its ticket is dead: the caller rejects it first.
        assert_eq!(
            f.check_and_insert(&id(0), later, exp),
            Err(TicketRejection::Expired)
        );
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let mut f = ReplayFilter::new(0, W);
        assert_eq!(
            f.check_and_insert(&id(1), Instant::ZERO, Instant::from_millis(5)),
            Err(TicketRejection::FilterFull)
        );
    }

    proptest! {
        /// Under any sequence: memory never exceeds capacity, and an id accepted once is never
        /// accepted again while its retention lasts.
        #[test]
        fn bounded_and_never_accepts_twice(
            cap in 0usize..8,
            ops in proptest::collection::vec((0u8..12, 0u64..500, 1u64..300), 0..200),
        ) {
            let mut f = ReplayFilter::new(cap, Duration::from_millis(20));
            let mut accepted: std::collections::HashMap<u8, Instant> = Default::default();
            let mut now = Instant::ZERO;
            for (n, step, life) in ops {
                now += Duration::from_millis(step % 50);
                let expires = now + Duration::from_millis(life);
                let r = f.check_and_insert(&id(n), now, expires);
                if let Some(&keep_until) = accepted.get(&n) {
                    if now < keep_until {
                        prop_assert_eq!(r, Err(TicketRejection::Replayed));
                    }
                }
                if r.is_ok() {
                    accepted.insert(n, expires + Duration::from_millis(20));
                }
                prop_assert!(f.len() <= cap);
                prop_assert_eq!(f.by_expiry.len(), f.len());
            }
        }
    }
}
