//! Faults: outages longer than the idle timeout end connections with a clear error on both
//! sides, shorter ones are ridden out, NAT rebinding is followed, and the simulator turns a run
//! that makes no progress into a failure that names its seed.

use std::net::SocketAddr;

use jsp_sim::jsp_core::connection::ConnectionError;
use jsp_sim::jsp_core::{Duration, Instant};
use jsp_sim::link::LinkConfig;
use jsp_sim::node::{Node, Transmit};
use jsp_sim::profile::Fault;
use jsp_sim::scenario::{ClientApp, Scenario, ServerApp, Transfer};
use jsp_sim::{JspNode, RunLimits, SimError, Simulator};
use jsp_tests::{assert_delivers, profile};

#[test]
fn a_cut_longer_than_the_idle_timeout_ends_both_sides_with_a_timeout() {
    let mut s = Scenario::new(profile("lte"), 3, Transfer::large(8 << 20));
    s.idle_timeout = Duration::from_secs(5);
    s.faults.push(Fault::Outage {
        at: Duration::from_secs(1),
        duration: Duration::from_secs(60),
    });
    let r = s.run();
    r.check().unwrap();
    assert!(!r.completed, "{}", r.scenario);
    assert_eq!(r.losses.len(), 2, "both sides end: {:?}", r.losses);
    assert!(
        r.losses.iter().all(|l| l.contains("timed out")),
        "{:?}",
        r.losses
    );
    // Within the idle timeout (plus the last flight in the air) of the cut, not at its end.
    assert!(r.sim_time < Duration::from_secs(8), "{:?}", r.sim_time);
}

#[test]
fn a_cut_shorter_than_a_third_of_the_idle_timeout_is_ridden_out() {
    let mut s = Scenario::new(profile("lte"), 4, Transfer::large(2 << 20));
    s.idle_timeout = Duration::from_secs(30);
    s.faults.push(Fault::Outage {
        at: Duration::from_millis(500),
        duration: Duration::from_secs(8),
    });
    let r = assert_delivers(&s);
    assert!(r.completion_time.unwrap() > Duration::from_secs(8));
}

#[test]
fn a_nat_rebinding_mid_transfer_is_followed_by_the_server() {
    // The client keeps sending, so the server sees its new address and moves there.
    let mut s = Scenario::new(profile("wifi"), 5, Transfer::large(4 << 20));
    s.faults.push(Fault::Rebind {
        at: Duration::from_millis(400),
    });
    let r = assert_delivers(&s);
    assert!(
        r.sim_stats.stale_bindings + r.sim_stats.no_route > 0,
        "the server used the old binding after the change, then moved"
    );
}

#[test]
fn a_receiving_client_with_keep_alive_survives_a_rebinding() {
    let mut s = Scenario::new(profile("lte"), 6, Transfer::bidirectional(1, 1024, 2 << 20));
    s.keep_alive = Some(Duration::from_secs(1));
    s.faults.push(Fault::Rebind {
        at: Duration::from_millis(600),
    });
    assert_delivers(&s);
}

#[test]
fn bandwidth_steps_and_delay_changes_keep_delivery_exact() {
    let mut s = Scenario::new(profile("lte"), 8, Transfer::many(10, 200 << 10));
    s.faults = vec![
        Fault::Bandwidth {
            at: Duration::from_millis(300),
            bps: Some(1_000_000),
        },
        Fault::Delay {
            at: Duration::from_millis(700),
            delay: Duration::from_millis(150),
        },
        Fault::Bandwidth {
            at: Duration::from_secs(3),
            bps: Some(50_000_000),
        },
    ];
    assert_delivers(&s);
}

#[test]
fn many_clients_share_one_server_endpoint() {
    let mut s = Scenario::new(
        profile("lte"),
        9,
        Transfer::bidirectional(3, 32 << 10, 64 << 10),
    );
    s.clients = 12;
    let r = assert_delivers(&s);
    assert_eq!(r.bytes_up, 12 * 3 * (32 << 10));
}

#[test]
fn heavy_reordering_duplication_and_corruption_keep_delivery_exact() {
    let mut p = profile("lossy");
    for l in [&mut p.up, &mut p.down] {
        l.loss = 0.02;
        l.reorder = 0.1;
        l.reorder_delay = Duration::from_millis(15);
        l.duplicate = 0.05;
        l.corrupt = 0.02;
    }
    p.name = "lossy+reorder+dup+corrupt".into();
    let r = assert_delivers(&Scenario::new(p, 10, Transfer::many(4, 256 << 10)));
    assert!(r.up.corrupted > 0 && r.up.duplicated > 0 && r.up.reordered > 0);
    assert!(
        r.server_stats.packets_dropped > 0,
        "corrupted packets are dropped, not delivered"
    );
}

#[test]
fn a_path_below_the_minimum_datagram_size_fails_with_a_clear_timeout() {
    let mut p = profile("lan");
    p.up.mtu = 1000;
    p.down.mtu = 1000;
    p.name = "lan with a 1000-byte MTU".into();
    let mut s = Scenario::new(p, 11, Transfer::large(1024));
    s.idle_timeout = Duration::from_secs(3);
    let r = s.run();
    assert!(r.up.too_big > 0);
    assert!(!r.completed);
    assert!(
        r.losses.iter().any(|l| l.contains("timed out")),
        "{:?}",
        r.losses
    );
}

/// A node that wants to be woken every 100 ms forever and never makes progress.
struct Spinner;

impl Node for Spinner {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: bytes::BytesMut) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn is_done(&self) -> bool {
        false
    }
}

struct Ticker(Instant);

impl Node for Ticker {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: bytes::BytesMut) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.0)
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0 = now + Duration::from_millis(100);
    }
    fn is_done(&self) -> bool {
        false
    }
}

#[test]
fn no_progress_is_a_hang_and_nothing_to_do_is_a_stall_each_naming_the_seed() {
    let mut sim = Simulator::new(42);
    sim.add_node(
        "ticker",
        "10.0.0.1:1".parse().unwrap(),
        Box::new(Ticker(Instant::ZERO)),
    );
    let err = sim
        .run(RunLimits {
            max_time: Instant::from_millis(3_600_000),
            hang_after: Duration::from_secs(5),
        })
        .unwrap_err();
    assert!(matches!(err, SimError::Hang { seed: 42, .. }), "{err}");
    assert!(err.to_string().contains("seed 42"));

    let mut sim = Simulator::new(43);
    sim.add_node("spinner", "10.0.0.1:1".parse().unwrap(), Box::new(Spinner));
    let err = sim.run(RunLimits::default()).unwrap_err();
    assert!(matches!(err, SimError::Stalled { seed: 43, .. }), "{err}");
}

#[test]
fn the_simulator_hosts_jsp_nodes_directly() {
    // The lower-level API: build the network by hand, run it, inspect the apps.
    let r = Scenario::new(profile("lan"), 12, Transfer::large(64 << 10)).run();
    r.check().unwrap();
    let mut sim = Simulator::new(12);
    let a = sim.add_node("a", "10.0.0.1:1".parse().unwrap(), Box::new(Spinner));
    let b = sim.add_node("b", "10.0.0.2:1".parse().unwrap(), Box::new(Spinner));
    let link = sim.connect(a, b, LinkConfig::default(), LinkConfig::default());
    assert_eq!(sim.link_ends(link), Some((a, b)));
    assert!(
        sim.node::<JspNode>(a).is_none(),
        "downcasts check the node type"
    );
    let _ = (
        ClientApp::new(1, Transfer::large(1)),
        ServerApp::new(1, Transfer::large(1)),
    );
    let _ = ConnectionError::TimedOut;
}
