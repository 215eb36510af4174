//! The sender's loss-rate estimate over a recent window of packets.

/// Packets per half-window: the estimate covers the current half-window and the previous one,
/// so between [`HALF_WINDOW`] and twice that many of the most recently resolved packets.
const HALF_WINDOW: u64 = 128;

/// Estimates the fraction of packets lost over roughly the last 128 to 256 resolved
/// (acknowledged or lost) packets. Losses repaired by the peer's FEC count as losses: they
/// happened on the path, and counting them keeps FEC on while it is what hides them.
#[derive(Clone, Debug, Default)]
pub struct LossEstimator {
    cur_total: u64,
    cur_lost: u64,
    prev_total: u64,
    prev_lost: u64,
}

impl LossEstimator {
    /// `n` packets were acknowledged.
    pub fn on_delivered(&mut self, n: u64) {
        self.cur_total += n;
        self.rotate();
    }

    /// `n` packets were declared lost.
    pub fn on_lost(&mut self, n: u64) {
        self.cur_total += n;
        self.cur_lost += n;
        self.rotate();
    }

    /// `n` packets already counted as delivered were in fact lost and repaired by FEC.
    pub fn on_repaired(&mut self, n: u64) {
        self.cur_lost = (self.cur_lost + n).min(self.cur_total.max(n));
        self.cur_total = self.cur_total.max(self.cur_lost);
        self.rotate();
    }

    fn rotate(&mut self) {
        if self.cur_total >= HALF_WINDOW {
            self.prev_total = self.cur_total;
            self.prev_lost = self.cur_lost;
            self.cur_total = 0;
            self.cur_lost = 0;
        }
    }

    /// Packets the estimate is based on.
    pub fn samples(&self) -> u64 {
        self.prev_total + self.cur_total
    }

    /// The estimated loss rate, 0 before any packet resolved.
    pub fn rate(&self) -> f64 {
        let total = self.samples();
        if total == 0 {
            return 0.0;
        }
        (self.prev_lost + self.cur_lost) as f64 / total as f64
    }
}
