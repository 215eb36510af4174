//! The send scheduler: which stream's data goes into the next STREAM frame.
//!
//! Rules, in order (docs/PROTOCOL.md, "Scheduling"):
//! 1. **Strict priority.** Streams are grouped by priority level (`i32`, higher first); a level
//!    is served only while every higher level has nothing to send.
//! 2. **Earliest deadline first.** Inside a level, streams whose next data to send belongs to a
//!    message with a deadline (a partially reliable stream's TTL, or a deadline given with the
//!    message) go before the others, earliest deadline first (ties by stream ID).
//! 3. **Weighted fair queuing.** The level's other streams share what is left in proportion to
//!    their weights, byte-accurately, by virtual finish times (self-clocked fair queuing): each
//!    stream carries a tag; the stream with the smallest tag sends one frame, then its tag grows
//!    by the frame's bytes on the wire (header included, retransmissions included) divided by
//!    its weight. Two backlogged streams of weights 3 and 1 thus get 75 % and 25 % of the bytes.
//!
//! A stream leaving the scheduler (nothing left to send) keeps its tag relative to the level's
//! virtual time (its *lag*), and gets it back when it returns, so a stream cannot gain by
//! draining and refilling, and a level's virtual time may start over when it empties. A stream
//! that starts (or starts again) to have data joins behind the streams already waiting, as in
//! round-robin, so streams opened later do not delay the completion of earlier ones.
//!
//! Cost: every operation is O(log n) in the streams of a level (ordered sets), and the per-frame
//! path moves one entry inside a set, which allocates nothing once the sets have their size.

use std::collections::{BTreeMap, BTreeSet};

use crate::frame::StreamId;
use crate::time::Instant;

/// The weight a stream has until the application sets one.
pub const DEFAULT_WEIGHT: u16 = 16;

/// Virtual time units per byte at weight 1; the scale keeps rounding error below one byte per
/// frame for every weight.
const SCALE: u128 = 1 << 16;

/// A stream's place in the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The priority level.
    pub(super) level: i32,
    /// Its key inside the level.
    pub(super) key: Key,
}

/// The ordering key of a stream inside its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// Earliest-deadline-first: the deadline of the stream's next message to send.
    Deadline(Instant),
    /// Fair queuing: the stream's virtual finish tag.
    Fair(u128),
}

/// One priority level.
#[derive(Debug, Default)]
struct Level {
    edf: BTreeSet<(Instant, StreamId)>,
    fair: BTreeSet<(u128, StreamId)>,
    /// The tag of the fair stream served last.
    vtime: u128,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.edf.is_empty() && self.fair.is_empty()
    }
}

/// Streams with data to send, by level.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    levels: BTreeMap<i32, Level>,
}

impl Scheduler {
    /// Whether no stream has data to send.
    pub(super) fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Adds `id` at `level`: by `deadline` if it has one, else fairly with `lag` (what it kept
    /// when it left, see the module notes). A `fresh` stream (one that was not waiting: new, or
    /// with data again after running dry) joins behind the streams already waiting, as in
    /// round-robin; a stream put back right after sending keeps its exact tag. Returns its slot.
    pub(super) fn insert(
        &mut self,
        id: StreamId,
        level: i32,
        deadline: Option<Instant>,
        lag: u128,
        fresh: bool,
    ) -> Slot {
        let l = self.levels.entry(level).or_default();
        let key = match deadline {
            Some(d) => {
                l.edf.insert((d, id));
                Key::Deadline(d)
            }
            None => {
                let mut tag = l.vtime.saturating_add(lag);
                if fresh {
                    if let Some(&(back, _)) = l.fair.last() {
                        tag = tag.max(back);
                    }
                }
                l.fair.insert((tag, id));
                Key::Fair(tag)
            }
        };
        Slot { level, key }
    }

    /// Removes `id` from `slot`; returns its lag if the slot was a fair one.
    pub(super) fn remove(&mut self, id: StreamId, slot: Slot) -> Option<u128> {
        let l = self.levels.get_mut(&slot.level)?;
        let lag = match slot.key {
            Key::Deadline(d) => {
                l.edf.remove(&(d, id));
                None
            }
            Key::Fair(tag) => {
                l.fair.remove(&(tag, id));
                Some(tag.saturating_sub(l.vtime))
            }
        };
        if l.is_empty() {
            self.levels.remove(&slot.level);
        }
        lag
    }

    /// `id` in `slot` sent a frame of `cost` bytes: moves it out of the scheduler and returns
    /// its lag after the charge if the slot was a fair one (the caller puts the stream back if it
    /// still has data, then calls [`Self::tidy`]). A fair stream advances its level's virtual
    /// time to its tag and is charged `cost / weight`.
    pub(super) fn served(
        &mut self,
        id: StreamId,
        slot: Slot,
        cost: usize,
        weight: u16,
    ) -> Option<u128> {
        if let (Key::Fair(tag), Some(l)) = (slot.key, self.levels.get_mut(&slot.level)) {
            l.vtime = l.vtime.max(tag);
            let charge = cost as u128 * SCALE / u128::from(weight.max(1));
            // Move the entry in place rather than through `remove`, which would drop (and free)
            // a level that empties for the instant it takes to put the stream back.
            l.fair.remove(&(tag, id));
            return Some(tag.saturating_add(charge).saturating_sub(l.vtime));
        }
        if let (Key::Deadline(d), Some(l)) = (slot.key, self.levels.get_mut(&slot.level)) {
            l.edf.remove(&(d, id));
        }
        None
    }

    /// Drops the level of `slot` if it is empty (after [`Self::served`] and no reinsertion).
    pub(super) fn tidy(&mut self, level: i32) {
        if self.levels.get(&level).is_some_and(Level::is_empty) {
            self.levels.remove(&level);
        }
    }

    /// Whether another stream of `slot`'s level waits with a deadline (so a frame of a deadline
    /// stream should stop at its message's end and let the next deadline compete).
    pub(super) fn deadline_contended(&self, slot: Slot) -> bool {
        matches!(slot.key, Key::Deadline(_))
            && self
                .levels
                .get(&slot.level)
                .is_some_and(|l| l.edf.len() > 1)
    }

    /// The stream to serve next: the highest level, its earliest deadline, else its smallest
    /// tag. O(log n).
    pub(super) fn first(&self) -> Option<(Slot, StreamId)> {
        let (&level, l) = self.levels.iter().next_back()?;
        Self::first_of(level, l, |_| true)
    }

    /// The first stream in scheduling order that satisfies `ok` (a scan: used for 0-RTT data,
    /// where only replay-safe streams may go).
    pub(super) fn first_where(&self, ok: impl Fn(StreamId) -> bool) -> Option<(Slot, StreamId)> {
        self.levels
            .iter()
            .rev()
            .find_map(|(&level, l)| Self::first_of(level, l, &ok))
    }

    fn first_of(level: i32, l: &Level, ok: impl Fn(StreamId) -> bool) -> Option<(Slot, StreamId)> {
        let edf = l.edf.iter().find(|(_, id)| ok(*id)).map(|&(d, id)| {
            let key = Key::Deadline(d);
            (Slot { level, key }, id)
        });
        edf.or_else(|| {
            l.fair.iter().find(|(_, id)| ok(*id)).map(|&(tag, id)| {
                let key = Key::Fair(tag);
                (Slot { level, key }, id)
            })
        })
    }
}
