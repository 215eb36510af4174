//! Path-MTU discovery over the pair harness with an MTU-limited link.

use super::{transfer, Pair, Setup};
use std::sync::Arc;

use crate::config::{MtuDiscoveryConfig, MIN_UDP_PAYLOAD};
use crate::connection::ConnectionStats;

/// A setup with path-MTU discovery on both sides (it is off by default).
fn setup(seed: u8) -> Setup {
    let mut setup = Setup::new(seed);
    let mut transport = (*setup.client_config.transport).clone();
    transport.mtu_discovery = Some(MtuDiscoveryConfig::default());
    let transport = Arc::new(transport);
    setup.client_config.transport = transport.clone();
    setup.server_config.transport = transport;
    setup
}

fn show(label: &str, s: &ConnectionStats) {
    println!(
        "{label}: path_mtu {} probes sent {} lost {} black holes {} packets lost {} congestion events {} datagrams {} bytes {}",
        s.path_mtu,
        s.mtu_probes_sent,
        s.mtu_probes_lost,
        s.mtu_black_holes,
        s.packets_lost,
        s.congestion_events,
        s.datagrams_sent,
        s.bytes_sent
    );
}

#[test]
fn discovers_1472_bytes_on_a_1500_byte_ipv4_path() {
    let mut pair = Pair::new(&setup(60));
    pair.max_size = Some(1472);
    pair.handshake();
    assert_eq!(pair.client().stats().path_mtu, MIN_UDP_PAYLOAD);
    transfer(&mut pair, 1, 1 << 20, 100_000);
    let (c, s) = (pair.client().stats(), pair.server().stats());
    show("client", &c);
    show("server", &s);
    assert_eq!(c.path_mtu, 1472, "{c:?}");
    assert_eq!(s.path_mtu, 1472, "{s:?}");
    assert_eq!(c.mtu_probes_lost, 0);
    assert_eq!(c.packets_lost, 0);
    assert!(pair.impair.dropped == 0, "nothing was too big for the path");
}

#[test]
fn stays_at_1200_bytes_when_the_path_drops_anything_larger_and_probe_losses_are_no_congestion() {
    let mut pair = Pair::new(&setup(61));
    pair.max_size = Some(usize::from(MIN_UDP_PAYLOAD));
    pair.handshake();
    transfer(&mut pair, 1, 4 << 20, 200_000);
    // The search goes on after the transfer (one probe in flight at a time) until it ends.
    pair.drive_until(100_000, |p| p.client().stats().mtu_probes_lost >= 15);
    let c = pair.client().stats();
    show("client", &c);
    assert_eq!(c.path_mtu, MIN_UDP_PAYLOAD);
    // 1472, 1336, 1268, 1234 and 1217 bytes, three attempts each.
    assert_eq!(c.mtu_probes_lost, 15, "{c:?}");
    assert_eq!(c.mtu_probes_sent, 15, "{c:?}");
    // Every loss was a probe, and none reached the congestion controller.
    assert_eq!(c.packets_lost, c.mtu_probes_lost, "{c:?}");
    assert_eq!(c.congestion_events, 0, "{c:?}");
}

#[test]
fn falls_back_to_1200_bytes_when_the_path_mtu_shrinks_mid_connection() {
    let mut pair = Pair::new(&setup(62));
    pair.max_size = Some(1472);
    pair.handshake();
    transfer(&mut pair, 1, 1 << 20, 100_000);
    let before = pair.client().stats();
    show("before", &before);
    assert_eq!(before.path_mtu, 1472);
    // A tunnel appears on the path: full-size packets vanish from now on.
    pair.max_size = Some(1280);
    transfer(&mut pair, 1, 4 << 20, 400_000);
    let after = pair.client().stats();
    show("after", &after);
    assert_eq!(after.mtu_black_holes, 1, "{after:?}");
    // The next search is 600 s away.
    assert_eq!(after.path_mtu, MIN_UDP_PAYLOAD);
}

#[test]
fn a_config_without_discovery_keeps_1200_bytes() {
    let mut setup = setup(63);
    let mut transport = (*setup.client_config.transport).clone();
    transport.mtu_discovery = None;
    setup.client_config.transport = Arc::new(transport);
    let mut pair = Pair::new(&setup);
    pair.max_size = Some(1472);
    pair.handshake();
    transfer(&mut pair, 1, 1 << 20, 100_000);
    let (c, s) = (pair.client().stats(), pair.server().stats());
    show("client", &c);
    show("server", &s);
    assert_eq!(c.path_mtu, MIN_UDP_PAYLOAD);
    assert_eq!(c.mtu_probes_sent, 0);
    // The server still discovers its direction.
    assert_eq!(s.path_mtu, 1472);
}
