//! Pair tests of the security defences: header-protection tampering, packet replay, 0-RTT
//! ticket-age validation and the bounded replay filter, and the padding policy.

use super::*;
use crate::config::{PaddingPolicy, TransportConfig};
use crate::handshake::DEFAULT_TICKET_KEY_ROTATION;

/// Delivers `data` to the server now, as if it had just arrived from the client.
fn deliver_to_server(pair: &mut Pair, data: Vec<u8>) {
    let d = InFlight {
        at: pair.now,
        from: client_addr(),
        to: server_addr(),
        data,
        ecn: None,
    };
    pair.deliver(d);
}

/// Handshakes, lets everything settle, then makes the client send a datagram `payload` that the
/// link loses; returns the protected 1-RTT datagram that carried it, as captured on the wire.
fn capture_one_rtt_datagram(pair: &mut Pair, payload: &'static [u8]) -> Vec<u8> {
    pair.handshake();
    pair.run_for(Duration::from_millis(500));
    pair.cut = true;
    let sent_before = pair.client_sent.len();
    pair.client()
        .send_datagram(Bytes::from_static(payload))
        .unwrap();
    pair.flush();
    pair.cut = false;
    let captured: Vec<Vec<u8>> = pair.client_sent[sent_before..].to_vec();
    assert_eq!(captured.len(), 1, "one datagram carries the payload");
    let d = captured.into_iter().next().unwrap();
    assert_eq!(d[0] & 0x80, 0, "a short-header (1-RTT) packet");
    d
}

#[test]
fn flipping_any_bit_of_a_protected_packet_gets_it_rejected_and_the_connection_survives() {
    let setup = Setup::new(40);
    let mut pair = Pair::new(&setup);
    let original = capture_one_rtt_datagram(&mut pair, b"tamper target");
    let before = pair.server().stats();
    let cid_len = pair.server().local_cid().len();
    // Regions of a short-header packet: first byte, destination ID, packet number (2 bytes:
    // this connection sends at least 2), then payload whose first 16 bytes after the packet
    // number's 4-byte window are the header-protection sample, and the AEAD tag at the end.
    let pn_start = 1 + cid_len;
    let region = |i: usize| match i {
        0 => "first byte",
        i if i < pn_start => "connection ID",
        i if i < pn_start + 2 => "packet number",
        i if i >= pn_start + 4 && i < pn_start + 20 => "sample",
        i if i + 16 >= original.len() => "tag",
        _ => "payload",
    };
    let mut per_region = std::collections::BTreeMap::<&str, usize>::new();
    for byte in 0..original.len() {
        for bit in 0..8 {
            let mut tampered = original.clone();
            tampered[byte] ^= 1 << bit;
            deliver_to_server(&mut pair, tampered);
            *per_region.entry(region(byte)).or_default() += 1;
            let s = pair.server();
            assert!(
                s.recv_datagram().is_none(),
                "bit {bit} of byte {byte} ({}) flipped: the packet was processed",
                region(byte)
            );
            assert_eq!(s.stats().packets_received, before.packets_received);
            assert!(!s.is_closed(), "tampering closed the connection");
        }
    }
    assert!(
        pair.extra_servers.is_empty(),
        "no tampered copy opened a connection"
    );
    let after = pair.server().stats();
    println!(
        "header-protection tamper: {} single-bit flips of a {}-byte datagram ({per_region:?}): \
         0 processed, {} packets dropped, {} AEAD failures counted as drops",
        original.len() * 8,
        original.len(),
        after.packets_dropped - before.packets_dropped,
        pair.server().decrypt_failures,
    );
    // The untampered original is accepted (so the rejections above were not for another
    // reason), exactly once.
    let before = pair.server().stats();
    deliver_to_server(&mut pair, original.clone());
    assert_eq!(
        pair.server().recv_datagram().unwrap(),
        &b"tamper target"[..]
    );
    deliver_to_server(&mut pair, original);
    assert!(
        pair.server().recv_datagram().is_none(),
        "a replay is refused"
    );
    assert_eq!(
        pair.server().stats().packets_replayed,
        before.packets_replayed + 1
    );
    exchange_datagrams(&mut pair);
}

#[test]
fn every_replayed_datagram_of_a_session_is_dropped_unprocessed() {
    let setup = Setup::new(41);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    for i in 0..20u8 {
        pair.client()
            .send_datagram(Bytes::from(vec![i; 100]))
            .unwrap();
        pair.run_for(Duration::from_millis(5));
    }
    pair.run_for(Duration::from_millis(500));
    let received: Vec<Bytes> = std::iter::from_fn(|| pair.server().recv_datagram()).collect();
    assert_eq!(received.len(), 20);
    let before = pair.server().stats();
    let captured = pair.client_sent.clone();
    for d in &captured {
        deliver_to_server(&mut pair, d.clone());
    }
    pair.run_for(Duration::from_millis(500));
    let after = pair.server().stats();
    assert!(pair.server().recv_datagram().is_none());
    assert_eq!(after.packets_received, before.packets_received);
    assert!(!pair.server().is_closed());
    println!(
        "session replay: {} datagrams replayed, 0 processed, {} refused by the replay window",
        captured.len(),
        after.packets_replayed - before.packets_replayed
    );
    exchange_datagrams(&mut pair);
}

/// The tickets a first connection to `setup`'s server receives, and when it received them.
fn tickets(setup: &Setup) -> Vec<ClientTicket> {
    // Not at the clock's origin, so that a test can move the receive time back.
    let mut pair = Pair::with_ticket_at(setup, None, Instant::from_millis(100_000));
    pair.handshake();
    pair.run_for(Duration::from_millis(200));
    let tickets: Vec<ClientTicket> = Pair::events(pair.client())
        .into_iter()
        .filter_map(|e| match e {
            Event::NewTicket(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert!(!tickets.is_empty());
    tickets
}

/// Resumes with `ticket` at `at`, offering one 0-RTT datagram; returns the handshake outcome
/// and whether the server delivered the early datagram before its handshake completed.
fn resume(setup: &Setup, ticket: ClientTicket, at: Instant) -> (HandshakeInfo, bool, Pair) {
    let mut pair = Pair::with_ticket_at(setup, Some(ticket), at);
    pair.client()
        .send_datagram_early(Bytes::from_static(b"early"))
        .unwrap();
    pair.handshake();
    let info = pair.client().handshake_info().unwrap().clone();
    let early_delivered = info.early_data == EarlyData::Accepted;
    if early_delivered {
        assert_eq!(pair.server().recv_datagram().unwrap(), &b"early"[..]);
    } else {
        // Datagrams sent as rejected 0-RTT are not resent: the server has none.
        assert!(Pair::events(pair.client())
            .iter()
            .any(|e| matches!(e, Event::ZeroRttRejected)));
    }
    exchange_datagrams(&mut pair);
    (info, early_delivered, pair)
}

#[test]
fn zero_rtt_with_a_consistent_ticket_age_is_accepted_a_minute_later() {
    let setup = Setup::new(42);
    let ticket = tickets(&setup).remove(0);
    let at = ticket.received_at + Duration::from_secs(60);
    let (info, early, _) = resume(&setup, ticket, at);
    assert!(info.resumed && early);
}

#[test]
fn a_ticket_age_skewed_beyond_the_window_refuses_zero_rtt_but_resumes() {
    let setup = Setup::new(43);
    for (name, shift_ms) in [("claims older", -20_000i64), ("future-dated", 20_000)] {
        let mut ticket = tickets(&setup).remove(0);
        let at = ticket.received_at + Duration::from_secs(60);
        // The client's clock disagrees with the server's by 20 s: beyond the 10 s window.
        ticket.received_at = if shift_ms < 0 {
            ticket.received_at - Duration::from_millis(shift_ms.unsigned_abs())
        } else {
            ticket.received_at + Duration::from_millis(shift_ms as u64)
        };
        let (info, early, _) = resume(&setup, ticket, at);
        println!(
            "ticket age {name} by 20 s: resumed {}, 0-RTT {:?}",
            info.resumed, info.early_data
        );
        assert!(info.resumed, "{name}: the ticket still resumes (1-RTT)");
        assert!(!early, "{name}: 0-RTT refused");
        assert_eq!(info.early_data, EarlyData::Rejected);
    }
}

#[test]
fn the_freshness_window_is_configurable() {
    let mut setup = Setup::new(44);
    setup.server_config.freshness_window = Duration::from_secs(30);
    let mut ticket = tickets(&setup).remove(0);
    let at = ticket.received_at + Duration::from_secs(60);
    ticket.received_at = ticket.received_at - Duration::from_secs(20);
    let (info, early, _) = resume(&setup, ticket, at);
    assert!(
        info.resumed && early,
        "20 s of skew is within a 30 s window"
    );
}

#[test]
fn a_ticket_expired_by_the_servers_clock_gets_a_full_handshake() {
    let mut setup = Setup::new(45);
    // Ten minutes, well inside the ticket keys' rotation, so the ticket still opens.
    let lifetime = Duration::from_secs(600);
    setup.server_config.ticket_lifetime = lifetime;
    let mut ticket = tickets(&setup).remove(0);
    assert_eq!(ticket.lifetime, lifetime);
    let at = ticket.received_at + lifetime + Duration::from_secs(1);
    // The client believes the ticket lives longer (a lying or confused client): the server's
    // own notion of age, from the authenticated issue time, decides.
    ticket.lifetime = lifetime * 2;
    // Consistent age, so only expiry can refuse it.
    let (info, early, _) = resume(&setup, ticket, at);
    assert!(!info.resumed, "an expired ticket does not resume");
    assert!(!early);
    assert_eq!(info.early_data, EarlyData::Rejected);
}

#[test]
fn a_full_replay_filter_refuses_zero_rtt_and_never_accepts_twice() {
    let mut setup = Setup::new(46);
    let mut rng = Rng::from_seed([46; 32]);
    // Room for one ticket id.
    setup.server_config.resumption = Arc::new(ServerResumption::with_limits(
        &mut rng,
        Instant::ZERO,
        DEFAULT_TICKET_KEY_ROTATION,
        1,
    ));
    let mut tickets = tickets(&setup);
    assert!(tickets.len() >= 2, "two tickets per connection by default");
    let second = tickets.remove(1);
    let first = tickets.remove(0);
    let at = first.received_at + Duration::from_secs(1);
    let (info, early, _) = resume(&setup, first.clone(), at);
    assert!(info.resumed && early, "the first ticket fills the filter");
    let (info, early, _) = resume(&setup, second, at + Duration::from_millis(100));
    assert!(info.resumed, "a full filter still resumes");
    assert!(!early, "a full filter refuses 0-RTT");
    let (info, early, _) = resume(&setup, first, at + Duration::from_millis(200));
    assert!(
        info.resumed && !early,
        "and the remembered ticket is never accepted twice"
    );
    println!("replay filter of capacity 1: first ticket 0-RTT accepted, second refused (full), first again refused (replay)");
}

/// Runs datagrams of many sizes and a stream transfer under `policy` and returns the sizes of
/// every datagram the client sent that carried a 1-RTT packet, and the maximum size.
fn one_rtt_datagram_sizes(policy: PaddingPolicy) -> (Vec<usize>, usize) {
    let mut setup = Setup::new(47);
    let transport = Arc::new(TransportConfig {
        padding: policy,
        mtu_discovery: Some(crate::config::MtuDiscoveryConfig::default()),
        ..TransportConfig::default()
    });
    setup.server_config.transport = transport.clone();
    setup.client_config.transport = transport;
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let start = pair.client_sent.len();
    for n in [1usize, 10, 50, 100, 150, 300, 600, 1000] {
        pair.client()
            .send_datagram(Bytes::from(vec![7; n]))
            .unwrap();
        pair.server()
            .send_datagram(Bytes::from(vec![8; n]))
            .unwrap();
        pair.run_for(Duration::from_millis(30));
    }
    let id = pair.client().open_bi().unwrap();
    let data = vec![5u8; 100_000];
    let mut off = 0;
    pair.drive_until(2000, |p| {
        if off < data.len() {
            off += p.client().write(id, &data[off..]).unwrap_or(0);
        }
        off == data.len() && p.client().stats().bytes_in_flight == 0
    });
    pair.run_for(Duration::from_millis(500));
    // Path-MTU discovery raised the maximum from 1200 bytes during the run.
    let mtu = usize::from(pair.client().mtu);
    assert_eq!(mtu, 1472);
    let sizes: Vec<usize> = pair.client_sent[start..]
        .iter()
        .filter(|d| d[0] & 0x80 == 0)
        .map(Vec::len)
        .collect();
    (sizes, mtu)
}

#[test]
fn every_one_rtt_datagram_size_falls_in_the_padding_policys_set() {
    let (plain, mtu) = one_rtt_datagram_sizes(PaddingPolicy::None);
    let distinct = |v: &[usize]| v.iter().collect::<std::collections::BTreeSet<_>>().len();
    println!(
        "padding None: {} datagrams, {} distinct sizes, {} bytes",
        plain.len(),
        distinct(&plain),
        plain.iter().sum::<usize>()
    );
    assert!(distinct(&plain) > 5, "without padding sizes vary");

    // The maximum is 1200 bytes until path-MTU discovery raises it (and for PTO probes).
    let base = usize::from(crate::config::MIN_UDP_PAYLOAD);
    let buckets = vec![128u16, 256, 512, 1024];
    let (sizes, _) = one_rtt_datagram_sizes(PaddingPolicy::Buckets(buckets.clone()));
    println!(
        "padding Buckets{buckets:?}: {} datagrams, sizes {:?}, {} bytes",
        sizes.len(),
        sizes.iter().collect::<std::collections::BTreeSet<_>>(),
        sizes.iter().sum::<usize>()
    );
    for s in &sizes {
        assert!(
            buckets.iter().any(|b| usize::from(*b) == *s) || *s == mtu || *s == base,
            "datagram of {s} bytes is in no bucket (mtu {mtu})"
        );
    }
    let (full, _) = one_rtt_datagram_sizes(PaddingPolicy::FullMtu);
    println!(
        "padding FullMtu: {} datagrams, all {base} or {mtu} bytes: {}, {} of them {mtu}, {} bytes",
        full.len(),
        full.iter().all(|s| *s == mtu || *s == base),
        full.iter().filter(|s| **s == mtu).count(),
        full.iter().sum::<usize>()
    );
    assert!(full.iter().all(|s| *s == mtu || *s == base), "{full:?}");
}

#[test]
fn invalid_padding_buckets_are_refused_by_validation() {
    for bad in [vec![], vec![32], vec![256, 128], vec![128, 128]] {
        let t = TransportConfig {
            padding: PaddingPolicy::Buckets(bad.clone()),
            ..TransportConfig::default()
        };
        assert!(t.validate().is_err(), "{bad:?}");
    }
    let t = TransportConfig {
        padding: PaddingPolicy::default_buckets(),
        ..TransportConfig::default()
    };
    assert!(t.validate().is_ok());
    assert_eq!(PaddingPolicy::default_buckets().target(100, 1452), 128);
    assert_eq!(PaddingPolicy::default_buckets().target(1100, 1452), 1452);
    assert_eq!(PaddingPolicy::default_buckets().target(200, 180), 200);
    assert_eq!(PaddingPolicy::FullMtu.target(200, 1452), 1452);
    assert_eq!(PaddingPolicy::None.target(200, 1452), 200);
}
