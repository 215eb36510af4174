//! Delivery modes end to end: two connections over the pair harness's lossy link (virtual time,
//! 10 ms each way), the application submitting a 200-byte message every 20 ms, each carrying
//! its index and submission time so the receiver can check it. What a run observed is printed.

use bytes::Bytes;

use super::tests::{Impairment, Pair, Setup};
use crate::frame::StreamId;
use crate::stream::{Delivery, DeliveryMode};
use crate::time::{Duration, Instant};

const MESSAGES: u64 = 1000;
const SIZE: usize = 200;
const INTERVAL: Duration = Duration::from_millis(20);
/// Link seeds of the partially reliable runs.
const SEEDS: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

/// What the receiver saw.
#[derive(Debug, Default)]
struct Seen {
    delivered: u64,
    skipped: u64,
    skip_reports: u64,
    /// Messages delivered later than the TTL after their submission.
    late: u64,
    /// The largest submission-to-delivery time.
    max_age: Duration,
    ended: bool,
}

fn payload(index: u64, at: Instant) -> Bytes {
    let mut v = vec![0u8; SIZE];
    v[..8].copy_from_slice(&index.to_be_bytes());
    v[8..16].copy_from_slice(&at.as_nanos().to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(16) {
        *b = (index as usize + i) as u8;
    }
    Bytes::from(v)
}

/// Reads everything the server has on its stream; checks order, content and age.
fn drain(pair: &mut Pair, stream: &mut Option<StreamId>, ttl: Option<Duration>, seen: &mut Seen) {
    let now = pair.now;
    let server = pair.server();
    if stream.is_none() {
        *stream = server.accept_uni();
    }
    let Some(id) = *stream else {
        return;
    };
    loop {
        match server.recv_message(id) {
            Ok(Some(Delivery::Message(m))) => {
                let next = seen.delivered + seen.skipped;
                let index = u64::from_be_bytes(m[..8].try_into().unwrap());
                let at = Instant::from_nanos(u64::from_be_bytes(m[8..16].try_into().unwrap()));
                assert_eq!(index, next, "messages arrive in order, none twice");
                assert_eq!(m, payload(index, at), "message {index} intact");
                let age = now - at;
                seen.max_age = seen.max_age.max(age);
                if ttl.is_some_and(|ttl| age > ttl) {
                    seen.late += 1;
                }
                seen.delivered += 1;
            }
            Ok(Some(Delivery::Skipped(s))) => {
                assert_eq!(
                    s.first,
                    seen.delivered + seen.skipped,
                    "skips are contiguous"
                );
                assert!(s.count > 0);
                seen.skipped += s.count;
                seen.skip_reports += 1;
            }
            Ok(None) => {
                seen.ended = true;
                return;
            }
            Err(_) => return,
        }
    }
}

/// Runs `MESSAGES` messages through a stream of `mode` with `loss`; returns what the receiver
/// saw, the stream's send stats and the connection's packets lost.
fn run(mode: DeliveryMode, loss: f64, seed: u8) -> (Seen, crate::stream::SendStats, u64) {
    let setup = Setup::new(seed);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    pair.impair = Impairment::new(loss, 0.0, 0.0, seed);
    let id = pair.client().open_uni_with(mode).unwrap();
    let ttl = match mode {
        DeliveryMode::PartiallyReliable { ttl } => Some(ttl),
        _ => None,
    };
    let (mut seen, mut server_stream) = (Seen::default(), None);
    let start = pair.now;
    for i in 0..MESSAGES {
        let at = start + INTERVAL * i as u32;
        pair.run_for(at - pair.now);
        drain(&mut pair, &mut server_stream, ttl, &mut seen);
        pair.now = pair.now.max(at);
        // The connection learns the time from its inputs; a timer fire with nothing due is one.
        let now = pair.now;
        pair.client().handle_timeout(now);
        pair.client()
            .send_message(id, payload(i, now))
            .expect("the windows are far from full");
    }
    pair.client().finish(id).unwrap();
    for _ in 0..200_000 {
        drain(&mut pair, &mut server_stream, ttl, &mut seen);
        if seen.ended || !pair.step() {
            break;
        }
    }
    assert!(
        seen.ended,
        "the stream did not end: {seen:?}, sender {:?}, wants to send {}\nclient {}\nserver {}",
        pair.client().stream_send_stats(id),
        pair.client().streams.wants_to_send(),
        pair.client().streams.debug_state(id),
        pair.server().streams.debug_state(id),
    );
    let stats = pair.client().stream_send_stats(id).unwrap_or_default();
    let lost = pair.client().stats().packets_lost;
    (seen, stats, lost)
}

#[test]
fn partially_reliable_under_five_percent_loss_is_never_late_and_reports_every_skip() {
    let ttl = Duration::from_millis(60);
    let mut total = Seen::default();
    for seed in SEEDS {
        let (seen, stats, lost) = run(DeliveryMode::PartiallyReliable { ttl }, 0.05, seed);
        println!(
            "partially reliable, ttl 60 ms, rtt 20 ms, 5% loss, seed {seed}: {} delivered, {} \
             skipped in {} reports, {} late, max age {:?}; sender: {stats:?}; packets lost \
             {lost}",
            seen.delivered, seen.skipped, seen.skip_reports, seen.late, seen.max_age
        );
        assert_eq!(
            seen.delivered + seen.skipped,
            MESSAGES,
            "every message accounted for"
        );
        assert!(lost > 20, "the link lost packets");
        assert!(
            stats.retransmitted_bytes > 0,
            "losses within the TTL were repaired"
        );
        total.late += seen.late;
        total.skipped += seen.skipped;
        total.max_age = total.max_age.max(seen.max_age);
    }
    println!(
        "over {} runs: {} skipped, {} late, max age {:?}",
        SEEDS.len(),
        total.skipped,
        total.late,
        total.max_age
    );
    assert_eq!(total.late, 0, "no message delivered past its TTL");
}

#[test]
fn best_effort_under_five_percent_loss_never_retransmits_and_reports_every_skip() {
    let (seen, stats, lost) = run(DeliveryMode::BestEffort, 0.05, 4);
    println!(
        "best effort, 5% loss: {} delivered, {} skipped in {} reports, max age {:?}; sender: \
         {stats:?}; packets lost {lost}",
        seen.delivered, seen.skipped, seen.skip_reports, seen.max_age
    );
    assert_eq!(
        seen.delivered + seen.skipped,
        MESSAGES,
        "every message accounted for"
    );
    assert_eq!(
        stats.retransmitted_bytes, 0,
        "best effort never retransmits"
    );
    assert!(seen.skipped > 0 && lost > 20, "the link lost packets");
    assert_eq!(seen.skipped, stats.abandoned_messages);
}

#[test]
fn reliable_messages_under_five_percent_loss_all_arrive_in_order() {
    let (seen, stats, lost) = run(DeliveryMode::Reliable, 0.05, 5);
    println!(
        "reliable, 5% loss: {} delivered, max age {:?}; sender: {stats:?}; packets lost {lost}",
        seen.delivered, seen.max_age
    );
    assert_eq!((seen.delivered, seen.skipped), (MESSAGES, 0));
    assert!(stats.retransmitted_bytes > 0 && lost > 20);
    assert_eq!(stats.abandoned_messages, 0);
}

#[test]
fn an_expiring_message_sets_the_connection_timer_and_is_abandoned_on_time() {
    let setup = Setup::new(9);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let ttl = Duration::from_millis(200);
    let id = pair
        .client()
        .open_uni_with(DeliveryMode::PartiallyReliable { ttl })
        .unwrap();
    let now = pair.now;
    pair.client().handle_timeout(now);
    pair.client().send_message(id, payload(0, now)).unwrap();
    let srtt = pair.client().stats().rtt;
    let due = now + ttl - srtt / 2;
    assert!(pair.client().poll_timeout().is_some_and(|t| t <= due));
    // Every datagram is dropped from now on: only timers drive the client.
    pair.cut = true;
    let mut abandoned_at = None;
    for _ in 0..10_000 {
        if pair
            .client()
            .stream_send_stats(id)
            .unwrap()
            .abandoned_messages
            == 1
        {
            abandoned_at = Some(pair.now);
            break;
        }
        if !pair.step() {
            break;
        }
    }
    let at = abandoned_at.expect("the message was abandoned");
    println!(
        "submitted at {:?}, ttl {ttl:?}, srtt {srtt:?}: abandoned at {:?} (due {:?})",
        now.since_origin(),
        at.since_origin(),
        due.since_origin()
    );
    assert_eq!(at, due, "abandoned by the expiry timer, not later");
}

/// A partially reliable message whose loss the sender cannot detect in time (its packet is
/// lost, then every ACK for a while, as in a loss burst on the return path: no later packet
/// is acknowledged, and the probe timeout keeps moving with each new message) is sent again
/// at its last chance, `deadline − srtt/2 − guard`, and still arrives within its TTL.
#[test]
fn a_partially_reliable_message_is_sent_again_at_its_last_chance_and_arrives_in_time() {
    let setup = Setup::new(21);
    let mut pair = Pair::new(&setup);
    pair.handshake();
    let ttl = Duration::from_millis(150);
    let id = pair
        .client()
        .open_uni_with(DeliveryMode::PartiallyReliable { ttl })
        .unwrap();
    let (mut seen, mut server_stream) = (Seen::default(), None);
    let start = pair.now;
    let count = 40u64;
    for i in 0..count {
        let at = start + INTERVAL * i as u32;
        // Read every millisecond, so that a message's age is its arrival time's.
        let mut t = pair.now;
        while t < at {
            t = (t + Duration::from_millis(1)).min(at);
            pair.run_for(t - pair.now);
            pair.now = pair.now.max(t);
            drain(&mut pair, &mut server_stream, Some(ttl), &mut seen);
        }
        let now = pair.now;
        if i == 0 {
            // Message 0's packet is lost...
            pair.blackhole = Some(super::tests::server_addr());
        }
        pair.client().handle_timeout(now);
        pair.client().send_message(id, payload(i, now)).unwrap();
        if i == 0 {
            pair.run_for(Duration::from_millis(1));
            // ...then the server's packets (its ACKs) for 160 ms.
            pair.blackhole = Some(super::tests::client_addr());
        }
        if i == 8 {
            pair.blackhole = None;
        }
    }
    pair.client().finish(id).unwrap();
    for _ in 0..100_000 {
        drain(&mut pair, &mut server_stream, Some(ttl), &mut seen);
        if seen.ended || !pair.step() {
            break;
        }
    }
    let stats = pair.client().stream_send_stats(id).unwrap();
    let conn = pair.client().stats();
    println!(
        "ttl {ttl:?}, rtt {:?}: {} delivered, {} skipped, {} late, max age {:?}; sender: \
         {stats:?}; last-chance bytes {}, packets declared lost {}",
        conn.rtt,
        seen.delivered,
        seen.skipped,
        seen.late,
        seen.max_age,
        conn.last_chance_bytes,
        conn.packets_lost
    );
    assert!(seen.ended);
    assert_eq!(
        (seen.delivered, seen.skipped, seen.late),
        (count, 0, 0),
        "every message delivered within its TTL, message 0 included"
    );
    assert!(stats.last_chance_messages >= 1 && conn.last_chance_bytes >= SIZE as u64);
}
