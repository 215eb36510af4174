//! Path-MTU discovery: datagram packetization-layer PMTUD (RFC 8899), as RFC 9000 §14.3 applies
//! it to QUIC, sans-IO.
//!
//! Every path starts at [`MIN_UDP_PAYLOAD`] (1200 bytes), which every path must carry. Once the
//! handshake is confirmed and the path validated, the connection sends probe packets (PING and
//! PADDING to the probe size) on their own in a datagram: first at the upper bound (the smallest
//! of the configured link MTU less the path's IP and UDP headers, our `max_udp_payload_size` and
//! the peer's), then, if that size fails
//! [`MAX_PROBES`] times in a row, by binary search between the largest size acknowledged and the
//! smallest failed one, until the interval is below [`MIN_STEP`] bytes. An acknowledged probe
//! raises the path's maximum datagram size at once. Probes carry nothing to retransmit, and their
//! loss is not a congestion signal (the connection keeps it from the controller).
//!
//! Black holes: a path whose MTU shrinks drops every full-size packet. A loss event (one ACK or
//! loss timeout declaring packets lost) is suspicious when a lost packet is larger than the base
//! size and was sent after the last acknowledged packet larger than the base (so only smaller
//! packets, such as the PTO probes that are limited to the base size, got through since).
//! [`BLACK_HOLE_THRESHOLD`] suspicious events in a row, with no large packet acknowledged in
//! between, put the path back to the base size; the search starts again after the configured
//! interval. A path change (migration) resets the state to the base size and searches again once
//! the new path is validated.
//!
//! Invariant: `current` is always a size the path acknowledged (or the base), at most `upper`.

use crate::config::{MtuDiscoveryConfig, MIN_UDP_PAYLOAD};
use crate::time::{Duration, Instant};
use std::net::SocketAddr;

/// Attempts at one probe size before it is taken as too large (RFC 8899 MAX_PROBES).
pub(crate) const MAX_PROBES: u8 = 3;
/// The search stops when the largest good and smallest failed sizes are closer than this.
pub(crate) const MIN_STEP: u16 = 20;
/// Suspicious loss events in a row that declare a black hole.
pub(crate) const BLACK_HOLE_THRESHOLD: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Off, or the handshake is not confirmed yet.
    Idle,
    /// Probing: `probe_size` is the next (or in-flight) probe.
    Search,
    /// Done until `next_search`.
    Complete,
}

/// The discovery state of one path.
#[derive(Debug)]
pub(crate) struct Mtud {
    config: Option<MtuDiscoveryConfig>,
    phase: Phase,
    /// The largest size known to work on the path (starts at the base).
    current: u16,
    /// The largest size to try: set when the search starts.
    upper: u16,
    /// The largest size not known to fail.
    hi: u16,
    probe_size: u16,
    /// Packet number of the probe in flight.
    in_flight: Option<u64>,
    failures: u8,
    next_search: Option<Instant>,
    /// Largest packet number of an acknowledged packet larger than the base.
    large_acked: Option<u64>,
    suspicious: u8,
    /// Probes sent, probes lost, black holes detected.
    pub(crate) probes_sent: u64,
    pub(crate) probes_lost: u64,
    pub(crate) black_holes: u64,
}

impl Mtud {
    pub(crate) fn new(config: Option<MtuDiscoveryConfig>) -> Self {
        Self {
            config,
            phase: Phase::Idle,
            current: MIN_UDP_PAYLOAD,
            upper: MIN_UDP_PAYLOAD,
            hi: MIN_UDP_PAYLOAD,
            probe_size: MIN_UDP_PAYLOAD,
            in_flight: None,
            failures: 0,
            next_search: None,
            large_acked: None,
            suspicious: 0,
            probes_sent: 0,
            probes_lost: 0,
            black_holes: 0,
        }
    }

    /// The largest datagram the path carries as far as we know.
    pub(crate) fn current(&self) -> u16 {
        self.current
    }

    /// Starts the search if it has not started (handshake confirmed, path validated), with the
    /// local and the peer's `max_udp_payload_size`, on the path to `remote`.
    pub(crate) fn start(&mut self, local_max: u16, peer_max: u64, remote: SocketAddr) {
        let Some(config) = &self.config else { return };
        if self.phase != Phase::Idle {
            return;
        }
        let peer = u16::try_from(peer_max).unwrap_or(u16::MAX);
        self.upper = config
            .upper_bound(remote)
            .min(local_max)
            .min(peer)
            .max(MIN_UDP_PAYLOAD);
        self.begin_search();
    }

    fn begin_search(&mut self) {
        self.hi = self.upper;
        self.failures = 0;
        self.in_flight = None;
        if self.hi <= self.current {
            self.phase = Phase::Complete;
            self.next_search = None;
        } else {
            self.phase = Phase::Search;
            self.probe_size = self.hi;
        }
    }

    /// The size of the probe to send now, if one is due.
    pub(crate) fn probe_due(&mut self, now: Instant) -> Option<u16> {
        if self.phase == Phase::Complete && self.next_search.is_some_and(|t| now >= t) {
            self.next_search = None;
            self.begin_search();
        }
        (self.phase == Phase::Search && self.in_flight.is_none()).then_some(self.probe_size)
    }

    /// A probe of [`Self::probe_due`]'s size left as packet `pn`.
    pub(crate) fn on_probe_sent(&mut self, pn: u64) {
        self.in_flight = Some(pn);
        self.probes_sent += 1;
    }

    /// The probe `pn` of `size` bytes was acknowledged: returns the new current size if it grew.
    pub(crate) fn on_probe_acked(&mut self, now: Instant, pn: u64, size: u16) -> Option<u16> {
        if self.in_flight == Some(pn) {
            self.in_flight = None;
            self.failures = 0;
        }
        if self.phase != Phase::Search || size <= self.current {
            return None;
        }
        self.current = size;
        self.large_acked = self.large_acked.max(Some(pn));
        self.suspicious = 0;
        self.next_step(now);
        Some(size)
    }

    /// The probe `pn` was declared lost.
    pub(crate) fn on_probe_lost(&mut self, now: Instant, pn: u64) {
        self.probes_lost += 1;
        if self.in_flight != Some(pn) || self.phase != Phase::Search {
            return;
        }
        self.in_flight = None;
        self.failures += 1;
        if self.failures >= MAX_PROBES {
            self.failures = 0;
            self.hi = self.probe_size.saturating_sub(1);
            self.next_step(now);
        }
    }

    /// After a probe's outcome: the next size, or the end of the search.
    fn next_step(&mut self, now: Instant) {
        if self.hi.saturating_sub(self.current) < MIN_STEP {
            self.phase = Phase::Complete;
            self.next_search = (self.current < self.upper)
                .then(|| now + self.config.as_ref().map_or(Duration::ZERO, |c| c.interval));
        } else {
            self.probe_size = self.current + (self.hi - self.current).div_ceil(2);
        }
    }

    /// A (non-probe) packet `pn` of `size` bytes was acknowledged.
    pub(crate) fn on_acked(&mut self, pn: u64, size: u16) {
        if size > MIN_UDP_PAYLOAD {
            self.large_acked = self.large_acked.max(Some(pn));
            self.suspicious = 0;
        }
    }

    /// One loss event: `largest_large_lost` is the largest packet number of the non-probe
    /// packets larger than the base it declared lost. Returns true when it reveals a black hole
    /// (the current size is then back to the base).
    pub(crate) fn on_loss_event(&mut self, now: Instant, largest_large_lost: Option<u64>) -> bool {
        let Some(lost) = largest_large_lost else {
            return false;
        };
        if self.current <= MIN_UDP_PAYLOAD || self.large_acked.is_some_and(|a| a > lost) {
            return false;
        }
        self.suspicious += 1;
        if self.suspicious < BLACK_HOLE_THRESHOLD {
            return false;
        }
        self.suspicious = 0;
        self.black_holes += 1;
        self.current = MIN_UDP_PAYLOAD;
        self.in_flight = None;
        self.phase = Phase::Complete;
        self.next_search = Some(now + self.config.as_ref().map_or(Duration::ZERO, |c| c.interval));
        true
    }

    /// The path changed: back to the base size; the search starts again once
    /// [`Self::start`] is called for the new path.
    pub(crate) fn reset(&mut self) {
        let config = self.config.take();
        let (sent, lost, holes) = (self.probes_sent, self.probes_lost, self.black_holes);
        *self = Self::new(config);
        self.probes_sent = sent;
        self.probes_lost = lost;
        self.black_holes = holes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a path carrying at most `limit` bytes; returns the result and
    /// the probes sent.
    fn search(limit: u16, upper: u16) -> (u16, u64) {
        let mut m = Mtud::new(Some(MtuDiscoveryConfig {
            link_mtu: upper + 28,
            ..MtuDiscoveryConfig::default()
        }));
        m.start(1452, 1472, "192.0.2.1:443".parse().unwrap());
        let now = Instant::ZERO;
        let mut pn = 0;
        while let Some(size) = m.probe_due(now) {
            m.on_probe_sent(pn);
            if size <= limit {
                m.on_probe_acked(now, pn, size);
            } else {
                m.on_probe_lost(now, pn);
            }
            pn += 1;
            assert!(pn < 100, "the search ends");
        }
        (m.current(), m.probes_sent)
    }

    #[test]
    fn binary_search_ends_within_the_step_below_the_path_limit() {
        for limit in [1200, 1250, 1300, 1350, 1400, 1420, 1451, 1452, 9000] {
            let (found, probes) = search(limit, 1452);
            println!("path {limit}: found {found} after {probes} probes");
            let expect = limit.min(1452);
            assert!(found <= expect, "{found} > {expect}");
            assert!(expect - found < MIN_STEP, "{found} too far below {expect}");
        }
        assert_eq!(search(1500, 1452), (1452, 1));
    }

    const V4: &str = "192.0.2.1:443";
    const V6: &str = "[2001:db8::1]:443";
    const V4_MAPPED: &str = "[::ffff:192.0.2.1]:443";

    fn first_probe(local_max: u16, peer_max: u64, remote: &str) -> Option<u16> {
        let mut m = Mtud::new(Some(MtuDiscoveryConfig::default()));
        m.start(local_max, peer_max, remote.parse().unwrap());
        m.probe_due(Instant::ZERO)
    }

    #[test]
    fn the_bound_is_the_smallest_of_config_local_and_peer() {
        assert_eq!(first_probe(1452, 1300, V4), Some(1300));
        assert_eq!(first_probe(1200, 9000, V4), None);
        let mut m = Mtud::new(None);
        m.start(1452, 1452, V4.parse().unwrap());
        assert_eq!(m.probe_due(Instant::ZERO), None);
    }

    #[test]
    fn the_configured_link_mtu_less_the_address_familys_headers_bounds_the_search() {
        assert_eq!(first_probe(16_383, 65_527, V4), Some(1472));
        assert_eq!(first_probe(16_383, 65_527, V4_MAPPED), Some(1472));
        assert_eq!(first_probe(16_383, 65_527, V6), Some(1452));
        let jumbo = MtuDiscoveryConfig {
            link_mtu: 9000,
            ..MtuDiscoveryConfig::default()
        };
        assert_eq!(jumbo.upper_bound(V4.parse().unwrap()), 8972);
        assert_eq!(jumbo.upper_bound(V6.parse().unwrap()), 8952);
    }

    #[test]
    fn black_hole_needs_consecutive_suspicious_events_and_searches_again_later() {
        let mut m = Mtud::new(Some(MtuDiscoveryConfig::default()));
        m.start(1452, 1452, V4.parse().unwrap());
        let now = Instant::ZERO;
        m.probe_due(now);
        m.on_probe_sent(1);
        assert_eq!(m.on_probe_acked(now, 1, 1452), Some(1452));
        m.on_acked(10, 1452);
        // Losses of packets sent before the last acknowledged large one: random loss.
        for _ in 0..10 {
            assert!(!m.on_loss_event(now, Some(9)));
        }
        assert!(!m.on_loss_event(now, Some(11)));
        assert!(!m.on_loss_event(now, Some(12)));
        // A large packet got through: the count starts over.
        m.on_acked(13, 1452);
        assert!(!m.on_loss_event(now, Some(14)));
        assert!(!m.on_loss_event(now, Some(15)));
        assert!(m.on_loss_event(now, Some(16)));
        assert_eq!(m.current(), MIN_UDP_PAYLOAD);
        assert_eq!(m.probe_due(now + Duration::from_secs(599)), None);
        assert_eq!(m.probe_due(now + Duration::from_secs(600)), Some(1452));
    }
}
