//! Server-side resumption state shared by all connections of an endpoint: the session-ticket keys
//! and the 0-RTT replay filter.
//!
//! Connections are independent state machines that a driver may move to other threads, yet a
//! ticket must be accepted for 0-RTT at most once across all of them. This is the one piece of
//! state they share; it sits behind a `Mutex` held only for a table lookup (never across I/O,
//! which the core has none of). A poisoned lock refuses 0-RTT rather than panicking: the safe
//! failure is a 1-RTT handshake, never a second acceptance.

use std::sync::Mutex;

use crate::handshake::{
    ReplayFilter, TicketContents, TicketKeys, TicketRejection, DEFAULT_FRESHNESS_WINDOW,
    DEFAULT_REPLAY_CAPACITY, DEFAULT_TICKET_KEY_ROTATION,
};
use crate::rand::Rng;
use crate::time::{Duration, Instant};

/// Session-ticket keys and the 0-RTT replay filter of one server endpoint.
pub struct ServerResumption {
    tickets: Mutex<TicketKeys>,
    replay: Mutex<ReplayFilter>,
}

impl core::fmt::Debug for ServerResumption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ServerResumption(..)")
    }
}

impl ServerResumption {
    /// Fresh ticket keys (rotated hourly) and a replay filter of 65,536 entries.
    pub fn new(rng: &mut Rng, now: Instant) -> Self {
        Self::with_limits(
            rng,
            now,
            DEFAULT_TICKET_KEY_ROTATION,
            DEFAULT_REPLAY_CAPACITY,
        )
    }

    /// Like [`Self::new`] with an explicit rotation interval and replay-filter capacity.
    pub fn with_limits(
        rng: &mut Rng,
        now: Instant,
        rotation: Duration,
        replay_capacity: usize,
    ) -> Self {
        Self {
            tickets: Mutex::new(TicketKeys::new(rng, now, rotation)),
            replay: Mutex::new(ReplayFilter::new(replay_capacity, DEFAULT_FRESHNESS_WINDOW)),
        }
    }

    /// Seals a ticket (rotating keys first when due).
    pub fn seal(&self, rng: &mut Rng, now: Instant, contents: &TicketContents) -> Option<Vec<u8>> {
        let mut keys = self.tickets.lock().ok()?;
        Some(keys.seal(rng, now, contents))
    }

    /// Opens a ticket sealed by this endpoint, or `None`.
    pub fn open(&self, ticket: &[u8]) -> Option<TicketContents> {
        self.tickets.lock().ok()?.open(ticket)
    }

    /// Records a 0-RTT attempt with ticket nonce `id`; succeeds at most once per ticket.
    pub fn check_replay(
        &self,
        id: &[u8; 16],
        now: Instant,
        expires: Instant,
    ) -> Result<(), TicketRejection> {
        match self.replay.lock() {
            Ok(mut filter) => filter.check_and_insert(id, now, expires),
            Err(_) => Err(TicketRejection::FilterFull),
        }
    }
}
