//! The sending half: groups outgoing 1-RTT packets into source blocks and makes repair symbols.

use std::collections::VecDeque;

use super::{oti, FecConfig, LossEstimator, MAX_SYMBOL_SIZE};
use crate::time::Instant;
use core::time::Duration;

/// Fewest resolved packets before the loss estimate may turn FEC on.
const MIN_SAMPLES: u64 = 32;

/// A repair symbol waiting to be sent in a FEC_REPAIR frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairSymbol {
    /// The block's first packet number.
    pub block: u64,
    /// Source packets in the block.
    pub sources: u16,
    /// The encoding symbol ID (`sources` and up for repair symbols).
    pub esi: u32,
    /// The symbol.
    pub data: Vec<u8>,
}

/// Counters of the sending half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FecSenderStats {
    /// Source blocks closed (each got repair symbols).
    pub blocks: u64,
    /// Packets protected (members of a closed block).
    pub packets_protected: u64,
    /// Repair symbols made.
    pub repair_symbols: u64,
    /// Repair-symbol bytes made.
    pub repair_bytes: u64,
    /// Blocks closed early on age with too few packets to deserve a repair symbol.
    pub unprotected_blocks: u64,
}

/// The sending half of FEC for one connection.
#[derive(Debug)]
pub struct FecSender {
    config: FecConfig,
    /// The block limit the peer announced (0: it does not decode FEC; we never send repairs).
    peer_max: u16,
    estimator: LossEstimator,
    active: bool,
    first: u64,
    started: Option<Instant>,
    lens: Vec<u16>,
    buf: Vec<u8>,
    repairs: VecDeque<RepairSymbol>,
    stats: FecSenderStats,
    /// Packets declared lost and acknowledged later since the last repair report: those the
    /// peer rebuilt after we declared them lost are already counted as losses.
    spurious_credit: u64,
}

impl FecSender {
    /// A sender with `config`, for a peer that decodes blocks of at most `peer_max` packets.
    pub fn new(config: FecConfig, peer_max: u16) -> Self {
        let active = config.always_on && peer_max > 0;
        Self {
            config,
            peer_max,
            estimator: LossEstimator::default(),
            active,
            first: 0,
            started: None,
            lens: Vec::new(),
            buf: Vec::new(),
            repairs: VecDeque::new(),
            stats: FecSenderStats::default(),
            spurious_credit: 0,
        }
    }

    /// Whether packets are being protected now.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The loss estimate.
    pub fn estimator(&self) -> &LossEstimator {
        &self.estimator
    }

    /// The counters.
    pub fn stats(&self) -> FecSenderStats {
        self.stats
    }

    /// `delivered` packets were acknowledged and `lost` declared lost.
    pub fn on_outcome(&mut self, delivered: u64, lost: u64) {
        if delivered > 0 {
            self.estimator.on_delivered(delivered);
        }
        if lost > 0 {
            self.estimator.on_lost(lost);
        }
        self.update();
    }

    /// `n` packets declared lost were acknowledged after all (reordered, or rebuilt by the
    /// peer's FEC after we declared them lost).
    pub fn on_spurious(&mut self, n: u64) {
        self.spurious_credit = self.spurious_credit.saturating_add(n);
    }

    /// The peer reported `n` more packets repaired by FEC. Those already counted as lost (see
    /// [`Self::on_spurious`]) are not counted twice.
    pub fn on_repaired(&mut self, n: u64) {
        let fresh = n.saturating_sub(self.spurious_credit);
        self.spurious_credit = 0;
        if fresh > 0 {
            self.estimator.on_repaired(fresh);
        }
        self.update();
    }

    fn update(&mut self) {
        if self.peer_max == 0 {
            return;
        }
        if self.config.always_on {
            self.active = true;
            return;
        }
        let p = self.estimator.rate();
        if !self.active && self.estimator.samples() >= MIN_SAMPLES && p >= self.config.enable_loss {
            self.active = true;
        } else if self.active && p < self.config.enable_loss / 2.0 {
            self.active = false;
            self.lens.clear();
            self.buf.clear();
            self.started = None;
        }
    }

    /// The repair ratio aimed at: the loss estimate (at least the enabling threshold) times
    /// the overhead factor, at most one half.
    fn ratio(&self) -> f64 {
        let p = self.estimator.rate().max(self.config.enable_loss);
        (p * self.config.overhead_factor).min(0.5)
    }

    /// Source packets per block for the current loss estimate.
    pub fn target_block(&self) -> u16 {
        let max = self.config.max_block.min(self.peer_max).max(2);
        let k = (1.0 / self.ratio()).floor();
        if k >= f64::from(max) {
            max
        } else {
            (k as u16).max(2)
        }
    }

    /// Repair symbols for a block of `k` packets: the ratio's share, rounded. A full block gets
    /// at least one; a block closed early on age may get none (too few packets for a repair
    /// symbol to stay within the overhead budget: retransmission covers it), except with the
    /// latency profile ([`FecConfig::max_block_delay`]), where every block gets one.
    fn repairs_for(&self, k: usize) -> u32 {
        let r = (k as f64 * self.ratio()).round() as u32;
        if self.config.max_block_delay.is_some() {
            // The latency profile: every block is protected.
            r.max(1)
        } else {
            r
        }
    }

    /// A 1-RTT packet `pn` with plaintext `payload` (its frames, no trailing padding) was sent.
    /// `cap` is the largest payload whose repair symbol still fits in a packet: larger ones are
    /// not protected.
    pub fn on_packet_sent(&mut self, now: Instant, pn: u64, payload: &[u8], cap: usize) {
        if !self.active {
            return;
        }
        let contiguous = self.first.checked_add(self.lens.len() as u64) == Some(pn);
        if !self.lens.is_empty() && !contiguous {
            self.close();
        }
        let Ok(len) = u16::try_from(payload.len()) else {
            self.close();
            return;
        };
        if payload.len() > cap.min(MAX_SYMBOL_SIZE - 2) {
            self.close();
            return;
        }
        if self.lens.is_empty() {
            self.first = pn;
            self.started = Some(now);
            self.buf.clear();
        }
        self.buf.extend_from_slice(payload);
        self.lens.push(len);
        if self.lens.len() >= usize::from(self.target_block()) {
            self.close();
        }
    }

    /// Packet `pn`, just given to [`Self::on_packet_sent`], was not sent after all (sealing
    /// failed and its number will be reused): it leaves the open block.
    pub fn unsend(&mut self, pn: u64) {
        let last = self
            .first
            .checked_add(self.lens.len() as u64)
            .and_then(|end| end.checked_sub(1));
        if self.lens.is_empty() || last != Some(pn) {
            return;
        }
        if let Some(len) = self.lens.pop() {
            self.buf
                .truncate(self.buf.len().saturating_sub(usize::from(len)));
        }
        if self.lens.is_empty() {
            self.started = None;
        }
    }

    /// Closes the open block if its oldest packet is older than the configured number of
    /// round trips.
    pub fn poll_close(&mut self, now: Instant, srtt: Duration) {
        if let Some(started) = self.started {
            if now.saturating_duration_since(started) >= self.config.max_block_age(srtt) {
                self.close();
            }
        }
    }

    /// When the open block closes on age, if one is open.
    pub fn close_deadline(&self, srtt: Duration) -> Option<Instant> {
        self.started
            .and_then(|s| s.checked_add(self.config.max_block_age(srtt)))
    }

    /// Closes the open block: makes its repair symbols.
    pub fn close(&mut self) {
        self.close_with(None);
    }

    /// Closes the open block with `repairs` repair symbols, or as many as the ratio gives.
    pub(crate) fn close_with(&mut self, repairs: Option<u32>) {
        let k = self.lens.len();
        self.started = None;
        if k == 0 {
            return;
        }
        let max_len = self.lens.iter().copied().max().unwrap_or(0);
        let symbol_size = usize::from(max_len) + 2;
        let (Ok(sources), Ok(t)) = (u16::try_from(k), u16::try_from(symbol_size)) else {
            self.lens.clear();
            return;
        };
        let mut data = vec![0u8; k * symbol_size];
        let mut at = 0usize;
        for (i, len) in self.lens.iter().enumerate() {
            let len = usize::from(*len);
            let (Some(sym), Some(src)) = (
                data.get_mut(i * symbol_size..(i + 1) * symbol_size),
                self.buf.get(at..at + len),
            ) else {
                break;
            };
            let (head, body) = sym.split_at_mut(2);
            head.copy_from_slice(&(len as u16).to_be_bytes());
            if let Some(dst) = body.get_mut(..len) {
                dst.copy_from_slice(src);
            }
            at += len;
        }
        let r = repairs.unwrap_or_else(|| self.repairs_for(k));
        if r == 0 {
            self.stats.unprotected_blocks += 1;
            self.lens.clear();
            self.buf.clear();
            return;
        }
        let encoder = raptorq::SourceBlockEncoder::new(0, &oti(sources, t), &data);
        for packet in encoder.repair_packets(0, r) {
            let (id, data) = packet.split();
            self.stats.repair_symbols += 1;
            self.stats.repair_bytes += data.len() as u64;
            self.repairs.push_back(RepairSymbol {
                block: self.first,
                sources,
                esi: id.encoding_symbol_id(),
                data,
            });
        }
        self.stats.blocks += 1;
        self.stats.packets_protected += k as u64;
        self.lens.clear();
        self.buf.clear();
    }

    /// The next repair symbol to send.
    pub fn next_repair(&self) -> Option<&RepairSymbol> {
        self.repairs.front()
    }

    /// Removes the next repair symbol (sent, or too large to send).
    pub fn pop_repair(&mut self) -> Option<RepairSymbol> {
        self.repairs.pop_front()
    }

    /// Whether repair symbols wait to be sent.
    pub fn has_repairs(&self) -> bool {
        !self.repairs.is_empty()
    }
}
