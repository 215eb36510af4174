//! Delivery-rate sampling (draft-cheng-iccrg-delivery-rate-estimation, as used by BBR).
//!
//! Owns the connection-wide delivery counters: bytes `delivered` so far, when the last delivery
//! happened (`delivered_time`), the send time of the packet that started the current send
//! interval (`first_sent_time`), bytes declared `lost`, and the application-limited marker. Each
//! in-flight packet takes a [`PacketDelivery`] snapshot of them when it is sent; when packets are
//! acknowledged, the snapshot of the most recently sent of them gives the interval over which
//! the newly delivered bytes were sent and acknowledged, and so a [`RateSample`].
//!
//! Invariants: the counters only grow; a sample's interval is the longer of its send and ACK
//! intervals, and a sample whose interval is shorter than the minimum RTT is marked invalid
//! (`delivery_rate` 0), so ACK compression never inflates the estimate. Nothing here allocates.

use crate::time::{Duration, Instant};

/// The delivery state a packet records when it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketDelivery {
    /// The connection's `delivered` count when the packet was sent.
    pub delivered: u64,
    /// The connection's `delivered_time` when the packet was sent.
    pub delivered_time: Instant,
    /// The connection's `first_sent_time` when the packet was sent.
    pub first_sent_time: Instant,
    /// Whether the connection was application-limited when the packet was sent.
    pub app_limited: bool,
    /// Bytes in flight just after the packet was sent, including it.
    pub tx_in_flight: u64,
    /// The connection's `lost` count when the packet was sent.
    pub lost: u64,
}

/// What one acknowledgement event (an ACK frame) says about delivery on the path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateSample {
    /// When the ACK was processed.
    pub now: Instant,
    /// Delivery rate in bytes per second over the sample's interval; 0 when the sample is
    /// invalid (no packet acknowledged, or an interval shorter than the minimum RTT).
    pub delivery_rate: u64,
    /// Bytes delivered over the sample's interval.
    pub delivered: u64,
    /// The interval the rate is measured over (the longer of the send and ACK intervals).
    pub interval: Duration,
    /// The connection's `delivered` count when the most recently sent acknowledged packet was sent:
    /// BBR's round-trip counter compares it with the count at the start of a round.
    pub prior_delivered: u64,
    /// The connection's total `delivered` count after this ACK.
    pub total_delivered: u64,
    /// Whether the most recently sent acknowledged packet was sent while application-limited:
    /// such a rate is a lower bound on the path's capacity, not an estimate of it.
    pub is_app_limited: bool,
    /// Bytes in flight when the most recently sent acknowledged packet was sent.
    pub tx_in_flight: u64,
    /// Bytes declared lost since that packet was sent.
    pub lost: u64,
    /// Bytes newly acknowledged by this ACK.
    pub newly_acked: u64,
    /// Bytes newly declared lost while processing this ACK.
    pub newly_lost: u64,
    /// Bytes in flight after this ACK.
    pub bytes_in_flight: u64,
    /// The RTT sample this ACK produced, if any.
    pub rtt: Option<Duration>,
    /// The ACK Delay the peer reported with that RTT sample, bounded as for the RTT's
    /// adjustment (RFC 9002 §5.3: at most the peer's `max_ack_delay`, never taking the sample
    /// below the minimum RTT); zero without an RTT sample. `rtt − ack_delay` is the round trip
    /// of the network alone.
    pub ack_delay: Duration,
    /// Whether the peer reported new ECN-CE marks.
    pub ecn_ce: bool,
}

/// The per-connection delivery-rate sampler (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct DeliveryRate {
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    lost: u64,
    /// Non-zero while application-limited: the `delivered` count at which the limited period ends.
    app_limited_until: u64,
    /// The sample being assembled from the current ACK's packets.
    pending: Pending,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    /// The snapshot and send time of the most recently sent packet acknowledged so far.
    newest: Option<(PacketDelivery, Instant)>,
    newly_acked: u64,
    newly_lost: u64,
}

impl DeliveryRate {
    /// A sampler with nothing delivered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes delivered (acknowledged) so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Total bytes declared lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Whether the connection is currently marked application-limited.
    pub fn is_app_limited(&self) -> bool {
        self.app_limited_until != 0
    }

    /// An in-flight packet is being sent at `now`; `bytes_in_flight` is the amount in flight
    /// before it and `size` its size. Returns the snapshot to keep with the packet.
    pub fn on_sent(&mut self, now: Instant, bytes_in_flight: u64, size: u64) -> PacketDelivery {
        if bytes_in_flight == 0 {
            // Nothing in flight: a new send interval starts here, and nothing was delivered
            // during the idle period that preceded it.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        PacketDelivery {
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited_until != 0,
            tx_in_flight: bytes_in_flight.saturating_add(size),
            lost: self.lost,
        }
    }

    /// The sender has nothing more to send although the window would let it: the samples of
    /// packets sent until what is in flight now has been delivered are application-limited.
    pub fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = self.delivered.saturating_add(bytes_in_flight).max(1);
    }

    /// A packet of `size` bytes sent at `sent` with snapshot `p` was newly acknowledged at `now`.
    /// The delivery time is set once per ACK, by [`Self::take_sample`].
    pub fn on_ack(&mut self, _now: Instant, sent: Instant, size: u64, p: &PacketDelivery) {
        self.delivered = self.delivered.saturating_add(size);
        self.pending.newly_acked = self.pending.newly_acked.saturating_add(size);
        let newer = match &self.pending.newest {
            None => true,
            Some((q, q_sent)) => {
                p.delivered > q.delivered || (p.delivered == q.delivered && sent > *q_sent)
            }
        };
        if newer {
            self.pending.newest = Some((*p, sent));
            // The next send interval starts at this packet's send time.
            self.first_sent_time = sent;
        }
    }

    /// In-flight packets totalling `bytes` were declared lost.
    pub fn on_lost(&mut self, bytes: u64) {
        self.lost = self.lost.saturating_add(bytes);
        self.pending.newly_lost = self.pending.newly_lost.saturating_add(bytes);
    }

    /// Completes the sample of the current ACK event and starts the next one. `min_rtt` guards
    /// against ACK compression; `rtt` and `ecn_ce` are passed through to the sample.
    ///
    /// `ack_delay` is how long the peer held this ACK after receiving the largest packet it
    /// acknowledges (already bounded by the caller; zero when unknown): the data counts as
    /// delivered at `now − ack_delay`, never before the previous ACK's delivery time. A receiver
    /// that acknowledges every few packets or on a timer holds its ACKs for varying times; timed
    /// by their arrival, one held long followed by one sent at once made the ACK interval of a
    /// sample a millisecond short, and the bandwidth sample a few percent high (on a 10 Mbit/s
    /// path, 3.6 %, which the max filter then kept, and cruising at it built a queue).
    pub fn take_sample(
        &mut self,
        now: Instant,
        ack_delay: Duration,
        min_rtt: Duration,
        bytes_in_flight: u64,
        rtt: Option<Duration>,
        ecn_ce: bool,
    ) -> RateSample {
        let pending = core::mem::take(&mut self.pending);
        if pending.newly_acked > 0 {
            self.delivered_time = (now - ack_delay).max(self.delivered_time).min(now);
        }
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let mut sample = RateSample {
            now,
            total_delivered: self.delivered,
            newly_acked: pending.newly_acked,
            newly_lost: pending.newly_lost,
            bytes_in_flight,
            rtt,
            ack_delay: if rtt.is_some() {
                ack_delay
            } else {
                Duration::ZERO
            },
            ecn_ce,
            ..RateSample::default()
        };
        let Some((p, sent)) = pending.newest else {
            return sample;
        };
        let send_elapsed = sent.saturating_duration_since(p.first_sent_time);
        let ack_elapsed = self
            .delivered_time
            .saturating_duration_since(p.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        sample.prior_delivered = p.delivered;
        sample.delivered = self.delivered.saturating_sub(p.delivered);
        sample.interval = interval;
        sample.is_app_limited = p.app_limited;
        sample.tx_in_flight = p.tx_in_flight;
        sample.lost = self.lost.saturating_sub(p.lost);
        if interval.is_zero() || interval < min_rtt {
            return sample;
        }
        let rate = u128::from(sample.delivered) * 1_000_000_000 / interval.as_nanos().max(1);
        sample.delivery_rate = u64::try_from(rate).unwrap_or(u64::MAX);
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_steady_flight_samples_its_sending_rate() {
        let mut d = DeliveryRate::new();
        // Ten 1000-byte packets, one per ms, acknowledged 100 ms later, one per ms.
        let snaps: Vec<_> = (0..10).map(|i| d.on_sent(at(i), i * 1000, 1000)).collect();
        let mut last = RateSample::default();
        for (i, s) in snaps.iter().enumerate() {
            let i = i as u64;
            d.on_ack(at(100 + i), at(i), 1000, s);
            last = d.take_sample(
                at(100 + i),
                Duration::ZERO,
                Duration::from_millis(100),
                0,
                None,
                false,
            );
        }
        // The last packet: 10 000 bytes delivered since the first was sent, over max(9 ms
        // send, 109 ms ack) -> ~91 743 B/s.
        assert_eq!(last.delivered, 10_000);
        assert_eq!(d.delivered(), 10_000);
        assert!(last.delivery_rate > 0);
        assert!(!last.is_app_limited);
    }

    #[test]
    fn rate_over_a_window_of_acks() {
        let mut d = DeliveryRate::new();
        // Round 1: 10 packets at t=0..9 ms, acked at 100..109 ms.
        let first: Vec<_> = (0..10).map(|i| d.on_sent(at(i), i * 1000, 1000)).collect();
        for (i, s) in first.iter().enumerate() {
            let i = i as u64;
            d.on_ack(at(100 + i), at(i), 1000, s);
            d.take_sample(
                at(100 + i),
                Duration::ZERO,
                Duration::from_millis(50),
                0,
                None,
                false,
            );
        }
        // Round 2: sent at 110..119 ms (delivered = 10 000 at 109 ms), acked at 210..219 ms.
        let second: Vec<_> = (0..10)
            .map(|i| d.on_sent(at(110 + i), i * 1000, 1000))
            .collect();
        let mut rate = 0;
        for (i, s) in second.iter().enumerate() {
            let i = i as u64;
            d.on_ack(at(210 + i), at(110 + i), 1000, s);
            rate = d
                .take_sample(
                    at(210 + i),
                    Duration::ZERO,
                    Duration::from_millis(50),
                    0,
                    None,
                    false,
                )
                .delivery_rate;
        }
        // The last sample covers (10 000 bytes at delivered 19 000 -> 20 000): from delivered
        // 10 000 at 109 ms? No: the newest packet's snapshot was delivered = 10 000 + 9 000 ...
        // whatever the exact window, a 10-packets-per-100 ms flow samples ~100 kB/s.
        assert!((90_000..=110_000).contains(&rate), "rate {rate}");
    }

    #[test]
    fn samples_shorter_than_the_minimum_rtt_are_invalid() {
        let mut d = DeliveryRate::new();
        let s = d.on_sent(at(0), 0, 1000);
        d.on_ack(at(1), at(0), 1000, &s);
        let sample = d.take_sample(
            at(1),
            Duration::ZERO,
            Duration::from_millis(10),
            0,
            None,
            false,
        );
        assert_eq!(sample.delivery_rate, 0);
        assert_eq!(sample.delivered, 1000);
    }

    #[test]
    fn application_limited_marking_lasts_until_the_flight_is_delivered() {
        let mut d = DeliveryRate::new();
        let a = d.on_sent(at(0), 0, 1000);
        d.on_app_limited(1000);
        assert!(d.is_app_limited());
        let b = d.on_sent(at(1), 1000, 1000);
        assert!(!a.app_limited && b.app_limited);
        d.on_ack(at(50), at(0), 1000, &a);
        let s = d.take_sample(at(50), Duration::ZERO, Duration::ZERO, 1000, None, false);
        assert!(!s.is_app_limited);
        assert!(d.is_app_limited(), "delivered == the marker: still limited");
        d.on_ack(at(51), at(1), 1000, &b);
        let s = d.take_sample(at(51), Duration::ZERO, Duration::ZERO, 0, None, false);
        assert!(s.is_app_limited);
        assert!(
            !d.is_app_limited(),
            "everything in flight at the mark is delivered"
        );
    }

    #[test]
    fn losses_are_counted_per_sample_and_since_send() {
        let mut d = DeliveryRate::new();
        let a = d.on_sent(at(0), 0, 1000);
        let _b = d.on_sent(at(1), 1000, 1000);
        let c = d.on_sent(at(2), 2000, 1000);
        d.on_ack(at(50), at(0), 1000, &a);
        d.take_sample(at(50), Duration::ZERO, Duration::ZERO, 2000, None, false);
        d.on_ack(at(52), at(2), 1000, &c);
        d.on_lost(1000);
        let s = d.take_sample(at(52), Duration::ZERO, Duration::ZERO, 0, None, false);
        assert_eq!(s.newly_lost, 1000);
        assert_eq!(s.lost, 1000);
        assert_eq!(s.tx_in_flight, 3000);
        assert_eq!(d.lost(), 1000);
    }

    /// 300 packets of 1000 bytes sent one every 0.8 ms into a 1000 B/ms bottleneck (a probe
    /// above the path's rate) with 50 ms of delay, ACKs coming back at once; the receiver
    /// acknowledges every fifth packet and holds every other ACK 3 ms. Returns the largest
    /// delivery-rate sample, with the ACK delay given to the sampler or not.
    fn largest_sample_with_held_acks(use_ack_delay: bool) -> u64 {
        let us = Instant::from_micros;
        let mut d = DeliveryRate::new();
        let mut snaps = Vec::new();
        // Packet `n` leaves the bottleneck at 50 ms + (n + 1) ms (the queue never empties).
        let received = |n: u64| 51_000 + n * 1000;
        // ACK `k` covers packets 5k..5k+4.
        let ack = |k: u64| {
            let hold = if k.is_multiple_of(2) { 3000 } else { 0 };
            (received(5 * k + 4) + hold, hold)
        };
        let (mut in_flight, mut next, mut largest) = (0u64, 0u64, 0u64);
        for t in (0..400_000u64).step_by(100) {
            while ack(next).0 <= t && 5 * next + 5 <= snaps.len() as u64 {
                let (arrival, hold) = ack(next);
                for n in 5 * next..5 * next + 5 {
                    d.on_ack(us(arrival), us(n * 800), 1000, &snaps[n as usize]);
                    in_flight -= 1000;
                }
                let delay = Duration::from_micros(if use_ack_delay { hold } else { 0 });
                let s = d.take_sample(
                    us(arrival),
                    delay,
                    Duration::from_millis(50),
                    in_flight,
                    None,
                    false,
                );
                largest = largest.max(s.delivery_rate);
                next += 1;
            }
            if t % 800 == 0 && snaps.len() < 300 {
                snaps.push(d.on_sent(us(t), in_flight, 1000));
                in_flight += 1000;
            }
        }
        largest
    }

    #[test]
    fn the_peers_ack_delay_is_taken_off_the_delivery_time() {
        let corrected = largest_sample_with_held_acks(true);
        let raw = largest_sample_with_held_acks(false);
        println!("largest sample of a 1 000 000 B/s flow: {corrected} B/s with the ACK delay, {raw} B/s without");
        assert!(corrected <= 1_005_000, "{corrected}");
        assert!(raw >= 1_030_000, "{raw}");
    }
}
