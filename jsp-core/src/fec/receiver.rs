//! The receiving half: keeps recent packet payloads and repair symbols, and decodes blocks.

use std::collections::VecDeque;

use super::{
    oti, FecError, MAX_BLOCK_SOURCES, MAX_PENDING_BLOCKS, MAX_REPAIR_BYTES, MAX_REPAIR_ESI,
    MAX_SYMBOL_SIZE, RING_SLOTS,
};

/// A packet rebuilt from a block's symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Its packet number.
    pub pn: u64,
    /// Its plaintext payload: the frames it carried.
    pub payload: Vec<u8>,
}

/// A received FEC_REPAIR frame, with the number of the packet that carried it.
#[derive(Clone, Copy, Debug)]
pub struct RepairIn<'a> {
    /// The carrying packet's number.
    pub carrier: u64,
    /// The block's first packet number.
    pub block: u64,
    /// Packets in the block.
    pub sources: u64,
    /// The encoding symbol ID.
    pub esi: u64,
    /// The symbol.
    pub data: &'a [u8],
}

/// Counters of the receiving half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FecReceiverStats {
    /// Repair symbols received.
    pub repair_symbols: u64,
    /// Packets recovered.
    pub recovered: u64,
    /// Blocks that could not be decoded because they were too old (their packets left the
    /// ring) or evicted by newer ones.
    pub stale_blocks: u64,
}

#[derive(Debug)]
struct Slot {
    pn: Option<u64>,
    data: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct Pending {
    first: u64,
    sources: u16,
    symbol_size: u16,
    repairs: Vec<(u32, Vec<u8>)>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.repairs.iter().map(|(_, d)| d.len()).sum()
    }
}

/// The receiving half of FEC for one connection.
#[derive(Debug)]
pub struct FecReceiver {
    max_block: u16,
    ring: Vec<Slot>,
    /// Payloads are kept for packets up to this number (set by each repair symbol received).
    store_until: Option<u64>,
    pub(super) blocks: VecDeque<Pending>,
    pub(super) repair_bytes: usize,
    largest_recovered: Option<u64>,
    stats: FecReceiverStats,
}

impl FecReceiver {
    /// A receiver that accepts blocks of up to `max_block` packets (at most
    /// [`MAX_BLOCK_SOURCES`]).
    pub fn new(max_block: u16) -> Self {
        Self {
            max_block: max_block.min(MAX_BLOCK_SOURCES),
            ring: Vec::new(),
            store_until: None,
            blocks: VecDeque::new(),
            repair_bytes: 0,
            largest_recovered: None,
            stats: FecReceiverStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> FecReceiverStats {
        self.stats
    }

    /// The largest packet number recovered so far.
    pub fn largest_recovered(&self) -> Option<u64> {
        self.largest_recovered
    }

    /// Whether the payload of packet `pn` should be kept ([`Self::store`]): only while the peer
    /// sends repair symbols (from the first one, for the next `4 × RING_SLOTS` packets after
    /// each), so a clean link costs no copies.
    pub fn wants(&self, pn: u64) -> bool {
        self.store_until.is_some_and(|until| pn <= until)
    }

    /// Keeps the payload of received packet `pn` (its frames, no trailing padding).
    pub fn store(&mut self, pn: u64, payload: &[u8]) {
        if self.ring.is_empty() {
            self.ring = (0..RING_SLOTS)
                .map(|_| Slot {
                    pn: None,
                    data: Vec::new(),
                })
                .collect();
        }
        let i = (pn % RING_SLOTS as u64) as usize;
        if let Some(slot) = self.ring.get_mut(i) {
            slot.pn = Some(pn);
            slot.data.clear();
            slot.data.extend_from_slice(payload);
        }
    }

    fn stored(&self, pn: u64) -> Option<&[u8]> {
        let slot = self.ring.get((pn % RING_SLOTS as u64) as usize)?;
        (slot.pn == Some(pn)).then_some(slot.data.as_slice())
    }

    /// A repair symbol (`data`, with ID `esi`) of the block of `sources` packets from `block`,
    /// carried by packet `carrier`. `received(pn)` says whether packet `pn` was received (by
    /// any means). Packets the block rebuilds are appended to `out` (and kept in the ring).
    ///
    /// Errors: a fatal [`FecError`] for a repair symbol no honest peer sends;
    /// [`FecError::Stale`] (ignore it) when the block can no longer be decoded.
    pub fn on_repair(
        &mut self,
        repair: RepairIn<'_>,
        received: impl Fn(u64) -> bool,
        out: &mut Vec<Recovered>,
    ) -> Result<(), FecError> {
        let RepairIn {
            carrier,
            block,
            sources,
            esi,
            data,
        } = repair;
        if sources == 0 || sources > u64::from(self.max_block) {
            return Err(FecError::Sources(sources));
        }
        let sources16 = sources as u16;
        if data.len() < 3 || data.len() > MAX_SYMBOL_SIZE {
            return Err(FecError::SymbolSize(data.len()));
        }
        let symbol_size = data.len() as u16;
        if esi < sources || esi - sources >= MAX_REPAIR_ESI {
            return Err(FecError::SymbolId(esi));
        }
        let end = block.checked_add(sources).ok_or(FecError::BlockInFuture)?;
        if end > carrier {
            return Err(FecError::BlockInFuture);
        }
        self.stats.repair_symbols += 1;
        self.store_until = Some(carrier.saturating_add(4 * RING_SLOTS as u64));
        if carrier - block >= RING_SLOTS as u64 {
            self.stats.stale_blocks += 1;
            return Err(FecError::Stale);
        }
        let mut missing = 0u16;
        for pn in block..end {
            if self.stored(pn).is_some() {
                continue;
            }
            if received(pn) {
                // Received before we kept copies: this block cannot be decoded.
                self.drop_block(block);
                self.stats.stale_blocks += 1;
                return Err(FecError::Stale);
            }
            missing += 1;
        }
        if missing == 0 {
            self.drop_block(block);
            return Ok(());
        }
        let idx = match self.blocks.iter().position(|b| b.first == block) {
            Some(i) => {
                let b = self.blocks.get(i).ok_or(FecError::Inconsistent)?;
                if b.sources != sources16 || b.symbol_size != symbol_size {
                    return Err(FecError::Inconsistent);
                }
                i
            }
            None => {
                if self.blocks.len() >= MAX_PENDING_BLOCKS {
                    self.evict_oldest();
                }
                self.blocks.push_back(Pending {
                    first: block,
                    sources: sources16,
                    symbol_size,
                    repairs: Vec::new(),
                });
                self.blocks.len() - 1
            }
        };
        let esi32 = esi as u32;
        let Some(b) = self.blocks.get_mut(idx) else {
            return Ok(());
        };
        if b.repairs.iter().any(|(e, _)| *e == esi32) || b.repairs.len() >= usize::from(sources16) {
            return Ok(());
        }
        b.repairs.push((esi32, data.to_vec()));
        self.repair_bytes += data.len();
        let ready = usize::from(sources16 - missing) + b.repairs.len() >= usize::from(sources16);
        self.enforce_memory_cap(block);
        if ready {
            self.try_decode(block, out)?;
        }
        Ok(())
    }

    fn drop_block(&mut self, block: u64) {
        if let Some(i) = self.blocks.iter().position(|b| b.first == block) {
            if let Some(b) = self.blocks.remove(i) {
                self.repair_bytes -= b.bytes();
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(b) = self.blocks.pop_front() {
            self.repair_bytes -= b.bytes();
            self.stats.stale_blocks += 1;
        }
    }

    /// Evicts the oldest blocks other than `keep` while over [`MAX_REPAIR_BYTES`]; if `keep`
    /// alone is over, it goes too.
    fn enforce_memory_cap(&mut self, keep: u64) {
        while self.repair_bytes > MAX_REPAIR_BYTES {
            match self.blocks.iter().position(|b| b.first != keep) {
                Some(i) => {
                    if let Some(b) = self.blocks.remove(i) {
                        self.repair_bytes -= b.bytes();
                        self.stats.stale_blocks += 1;
                    }
                }
                None => {
                    self.drop_block(keep);
                    self.stats.stale_blocks += 1;
                }
            }
        }
    }

    fn try_decode(&mut self, block: u64, out: &mut Vec<Recovered>) -> Result<(), FecError> {
        let Some(i) = self.blocks.iter().position(|b| b.first == block) else {
            return Ok(());
        };
        let Some(b) = self.blocks.get(i) else {
            return Ok(());
        };
        let t = usize::from(b.symbol_size);
        let k = usize::from(b.sources);
        let mut packets = Vec::with_capacity(k + b.repairs.len());
        let mut missing = Vec::new();
        for (esi, pn) in (block..block + u64::from(b.sources)).enumerate() {
            match self.stored(pn) {
                Some(payload) => {
                    if payload.len() + 2 > t {
                        // Not what the peer encoded: the block cannot be decoded.
                        self.drop_block(block);
                        self.stats.stale_blocks += 1;
                        return Err(FecError::Stale);
                    }
                    let mut sym = vec![0u8; t];
                    let (head, body) = sym.split_at_mut(2);
                    head.copy_from_slice(&(payload.len() as u16).to_be_bytes());
                    if let Some(dst) = body.get_mut(..payload.len()) {
                        dst.copy_from_slice(payload);
                    }
                    packets.push(raptorq::EncodingPacket::new(
                        raptorq::PayloadId::new(0, esi as u32),
                        sym,
                    ));
                }
                None => missing.push((esi, pn)),
            }
        }
        for (esi, data) in &b.repairs {
            packets.push(raptorq::EncodingPacket::new(
                raptorq::PayloadId::new(0, *esi),
                data.clone(),
            ));
        }
        let config = oti(b.sources, b.symbol_size);
        let mut decoder = raptorq::SourceBlockDecoder::new(0, &config, (k * t) as u64);
        let Some(decoded) = decoder.decode(packets) else {
            // Not enough independent symbols yet: wait for more repair symbols.
            return Ok(());
        };
        self.drop_block(block);
        for (esi, pn) in missing {
            let sym = decoded
                .get(esi * t..(esi + 1) * t)
                .ok_or(FecError::RecoveredLength)?;
            let (head, body) = sym.split_at(2);
            let len = usize::from(u16::from_be_bytes([
                head.first().copied().unwrap_or(0),
                head.get(1).copied().unwrap_or(0),
            ]));
            let payload = body.get(..len).ok_or(FecError::RecoveredLength)?.to_vec();
            self.store(pn, &payload);
            self.stats.recovered += 1;
            self.largest_recovered = self.largest_recovered.max(Some(pn));
            out.push(Recovered { pn, payload });
        }
        Ok(())
    }
}
