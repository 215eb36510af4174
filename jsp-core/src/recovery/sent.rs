//! The record of sent packets of one packet-number space.
//!
//! Owns every packet of a space that is neither acknowledged nor declared lost, plus a bounded
//! history of recently lost packet numbers (for spurious-loss detection). Invariant: the per-space
//! counters `in_flight_bytes` and `ack_eliciting_in_flight` always equal the sums over the
//! outstanding packets, because every packet enters through `SentPackets::push` and leaves
//! through `SentPackets::ack`, `SentPackets::mark_lost` or `SentPackets::drain_outstanding`.
//!
//! Storage choice: a `VecDeque` of slots indexed by `pn - base`. Packet numbers are dense and
//! increasing, and packets mostly leave in send order, so the front is popped as soon as it is
//! resolved: insertion and lookup are O(1), the window spans only from the oldest outstanding
//! packet to the newest, and once the deque has grown to the connection's largest window it never
//! allocates again (a `BTreeMap` would allocate and free nodes as the window slides, and cost
//! O(log n) per operation). The cost: a slot per packet number between the oldest outstanding
//! packet and the newest, including skipped numbers and already acknowledged ones, so an ACK
//! range is walked in O(its overlap with that window), never in O(its length).

use std::collections::VecDeque;

use crate::time::Instant;

/// What the connection records about one sent packet.
///
/// `frames` is the connection's own record of what the packet carried; on loss it is handed back
/// so the frames can be retransmitted (retransmission is of frames, never of packets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPacket<T> {
    /// When the packet was sent.
    pub time_sent: Instant,
    /// Bytes on the wire (header, payload and AEAD tag; not the UDP/IP headers).
    pub size: u16,
    /// Whether the packet carries a frame other than ACK, PADDING or CLOSE, so the peer must
    /// acknowledge it within its `max_ack_delay`.
    pub ack_eliciting: bool,
    /// Whether the packet counts toward bytes in flight (ack-eliciting or padding).
    pub in_flight: bool,
    /// The connection's record of the frames carried.
    pub frames: T,
}

/// The state of one packet number inside the window.
#[derive(Debug)]
pub(crate) enum Slot<T> {
    /// The number was skipped: no packet carried it, so an acknowledgement of it is a violation.
    Unsent,
    /// Acknowledged.
    Acked,
    /// Declared lost (its frames were handed back).
    Lost,
    /// Sent and neither acknowledged nor declared lost.
    Outstanding(SentPacket<T>),
}

/// What acknowledging one packet number found.
#[derive(Debug)]
pub(crate) enum AckResult<T> {
    /// Newly acknowledged.
    Newly(SentPacket<T>),
    /// Already acknowledged, already lost, or older than the window: nothing to do.
    Nothing,
    /// The number was never sent.
    Unsent,
}

/// The sent packets of one space (see the module documentation for the storage choice).
#[derive(Debug)]
pub(crate) struct SentPackets<T> {
    /// Packet number of `slots[0]`; when `slots` is empty, the next number expected.
    base: u64,
    slots: VecDeque<Slot<T>>,
    largest_sent: Option<u64>,
    in_flight_bytes: u64,
    ack_eliciting_in_flight: usize,
}

impl<T> SentPackets<T> {
    pub(crate) fn new() -> Self {
        Self {
            base: 0,
            slots: VecDeque::new(),
            largest_sent: None,
            in_flight_bytes: 0,
            ack_eliciting_in_flight: 0,
        }
    }

    /// Records packet `pn`. Returns `false` (and records nothing) unless `pn` is larger than
    /// every number recorded before; skipped numbers become [`Slot::Unsent`].
    pub(crate) fn push(&mut self, pn: u64, packet: SentPacket<T>) -> bool {
        if self.largest_sent.is_some_and(|largest| pn <= largest) {
            return false;
        }
        if self.slots.is_empty() {
            self.base = pn;
        } else {
            // Skips are small (a number left out now and then against optimistic ACKs).
            let next = self.end();
            debug_assert!(pn - next < 1 << 16, "packet-number jump of {}", pn - next);
            for _ in next..pn {
                self.slots.push_back(Slot::Unsent);
            }
        }
        if packet.in_flight {
            self.in_flight_bytes += u64::from(packet.size);
            if packet.ack_eliciting {
                self.ack_eliciting_in_flight += 1;
            }
        }
        self.slots.push_back(Slot::Outstanding(packet));
        self.largest_sent = Some(pn);
        true
    }

    /// The largest packet number ever recorded.
    pub(crate) fn largest_sent(&self) -> Option<u64> {
        self.largest_sent
    }

    /// The first packet number held in the window.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// One past the last packet number held in the window.
    pub(crate) fn end(&self) -> u64 {
        self.base.saturating_add(self.slots.len() as u64)
    }

    /// Bytes of the outstanding in-flight packets.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }

    /// Number of outstanding packets that are both ack-eliciting and in flight.
    pub(crate) fn ack_eliciting_in_flight(&self) -> usize {
        self.ack_eliciting_in_flight
    }

    fn index(&self, pn: u64) -> Option<usize> {
        let offset = usize::try_from(pn.checked_sub(self.base)?).ok()?;
        (offset < self.slots.len()).then_some(offset)
    }

    /// The slot of `pn`, if it lies in the window.
    pub(crate) fn get(&self, pn: u64) -> Option<&Slot<T>> {
        self.slots.get(self.index(pn)?)
    }

    /// Marks `pn` acknowledged.
    pub(crate) fn ack(&mut self, pn: u64) -> AckResult<T> {
        let Some(slot) = self.index(pn).and_then(|i| self.slots.get_mut(i)) else {
            return AckResult::Nothing;
        };
        match slot {
            Slot::Unsent => AckResult::Unsent,
            Slot::Acked => AckResult::Nothing,
            Slot::Lost => {
                *slot = Slot::Acked;
                AckResult::Nothing
            }
            Slot::Outstanding(_) => match core::mem::replace(slot, Slot::Acked) {
                Slot::Outstanding(packet) => {
                    self.leave(&packet);
                    AckResult::Newly(packet)
                }
                _ => AckResult::Nothing,
            },
        }
    }

    /// Declares `pn` lost, returning the packet if it was outstanding.
    pub(crate) fn mark_lost(&mut self, pn: u64) -> Option<SentPacket<T>> {
        let slot = self.index(pn).and_then(|i| self.slots.get_mut(i))?;
        if !matches!(slot, Slot::Outstanding(_)) {
            return None;
        }
        match core::mem::replace(slot, Slot::Lost) {
            Slot::Outstanding(packet) => {
                self.leave(&packet);
                Some(packet)
            }
            _ => None,
        }
    }

    /// Removes every outstanding packet, oldest first, and empties the window.
    pub(crate) fn drain_outstanding(&mut self, mut f: impl FnMut(u64, SentPacket<T>)) {
        let base = self.base;
        for (offset, slot) in self.slots.drain(..).enumerate() {
            if let Slot::Outstanding(packet) = slot {
                f(base.saturating_add(offset as u64), packet);
            }
        }
        self.base = self.largest_sent.map_or(0, |l| l.saturating_add(1));
        self.in_flight_bytes = 0;
        self.ack_eliciting_in_flight = 0;
    }

    /// Forgets everything, as if the space had never been used (keeps the allocation).
    pub(crate) fn reset(&mut self) {
        self.slots.clear();
        self.base = 0;
        self.largest_sent = None;
        self.in_flight_bytes = 0;
        self.ack_eliciting_in_flight = 0;
    }

    /// Forgets everything and frees the storage (the space was discarded for good).
    pub(crate) fn release(&mut self) {
        self.reset();
        self.slots = VecDeque::new();
    }

    /// Pops resolved slots off the front so the window starts at the oldest outstanding packet.
    pub(crate) fn compact(&mut self) {
        while matches!(self.slots.front(), Some(slot) if !matches!(slot, Slot::Outstanding(_))) {
            self.slots.pop_front();
            self.base = self.base.saturating_add(1);
        }
    }

    fn leave(&mut self, packet: &SentPacket<T>) {
        if packet.in_flight {
            debug_assert!(self.in_flight_bytes >= u64::from(packet.size));
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(u64::from(packet.size));
            if packet.ack_eliciting {
                self.ack_eliciting_in_flight = self.ack_eliciting_in_flight.saturating_sub(1);
            }
        }
    }
}

/// How many recently lost packet numbers a space remembers for spurious-loss detection.
pub const LOST_HISTORY_LEN: usize = 256;

/// The last [`LOST_HISTORY_LEN`] packet numbers declared lost in a space, in ascending order.
#[derive(Debug)]
pub(crate) struct LostHistory {
    pns: VecDeque<u64>,
}

impl LostHistory {
    pub(crate) fn new() -> Self {
        Self {
            pns: VecDeque::new(),
        }
    }

    /// Remembers `pn`, forgetting the oldest entry when full.
    pub(crate) fn push(&mut self, pn: u64) {
        if self.pns.len() == LOST_HISTORY_LEN {
            self.pns.pop_front();
        }
        // Losses within a space are declared in ascending order; keep the order regardless.
        let at = self.pns.partition_point(|&p| p < pn);
        if self.pns.get(at) != Some(&pn) {
            self.pns.insert(at, pn);
        }
    }

    /// Forgets and counts the remembered numbers within `lo..=hi`.
    pub(crate) fn take_range(&mut self, lo: u64, hi: u64) -> u64 {
        let from = self.pns.partition_point(|&p| p < lo);
        let to = self.pns.partition_point(|&p| p <= hi);
        if from >= to {
            return 0;
        }
        self.pns.drain(from..to);
        (to - from) as u64
    }

    pub(crate) fn clear(&mut self) {
        self.pns.clear();
    }
}
