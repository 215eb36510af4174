//! Loss-recovery scenarios for the loss-detection timer, the probe timeout and the lifecycle of
//! packet-number spaces (RFC 9002 §6.1.2, §6.2, A.8-A.11).

use super::tests::{ack, at, ms, pns, recovery, send, with_rtt_of_100ms};
use super::*;
use crate::packet::SpaceId::{Data, Handshake, Initial};
use crate::time::Duration;

#[test]
fn packets_older_than_nine_eighths_of_the_rtt_are_lost_by_time() {
    let mut r = with_rtt_of_100ms();
    send(&mut r, Data, 1, at(100));
    send(&mut r, Data, 2, at(105));
    send(&mut r, Data, 3, at(110));
    let out = ack(&mut r, Data, &[3..=3], at(210)).unwrap();
    assert!(out.lost.is_empty(), "1 and 2 are younger than 112.5 ms");
    // loss delay = 9/8 · max(smoothed 100, latest 100) = 112.5 ms after packet 1's send time.
    let deadline = at(100) + Duration::from_micros(112_500);
    assert_eq!(r.earliest_loss_time(), Some((deadline, Data)));
    assert_eq!(r.loss_timer(true, at(210)), Some(deadline));

    let mut out = AckOutcome::default();
    assert_eq!(
        r.on_loss_timeout(true, deadline - Duration::from_nanos(1), &mut out),
        None
    );
    assert!(out.lost.is_empty(), "an early wake-up declares nothing");
    assert_eq!(r.on_loss_timeout(true, deadline, &mut out), None);
    assert_eq!(pns(&out.lost), [1], "packet 2 is 5 ms younger");
    let second = at(105) + Duration::from_micros(112_500);
    assert_eq!(r.loss_timer(true, deadline), Some(second));

    out.clear();
    r.detect_lost(Data, second, &mut out);
    assert_eq!(pns(&out.lost), [2]);
    assert_eq!(r.earliest_loss_time(), None);
    assert_eq!(r.bytes_in_flight(), 0);
}

#[test]
fn probe_timeouts_double_until_an_acknowledgement_resets_them() {
    let mut r = with_rtt_of_100ms();
    send(&mut r, Data, 1, at(1000));
    // PTO = smoothed 100 + 4 · rttvar 50 + max_ack_delay 25 = 325 ms, doubling per expiry.
    let mut out = AckOutcome::default();
    for (count, period) in [(0, 325), (1, 650), (2, 1300), (3, 2600)] {
        assert_eq!(r.pto_count(), count);
        let deadline = at(1000 + period);
        assert_eq!(r.loss_timer(true, at(1000)), Some(deadline));
        assert_eq!(r.on_loss_timeout(true, deadline - ms(1), &mut out), None);
        assert_eq!(r.pto_count(), count, "an early wake-up does not back off");
        assert_eq!(r.on_loss_timeout(true, deadline, &mut out), Some(Data));
    }
    assert_eq!(r.pto_count(), 4);
    assert_eq!(r.stats().ptos, 4);
    assert!(out.is_empty(), "a PTO declares nothing lost");

    ack(&mut r, Data, &[1..=1], at(6000)).unwrap();
    assert_eq!(r.pto_count(), 0);
    assert_eq!(r.loss_timer(true, at(6000)), None, "nothing left in flight");
}

#[test]
fn the_pto_backoff_exponent_is_capped() {
    let config = RecoveryConfig {
        max_pto_backoff: 2,
        ..RecoveryConfig::default()
    };
    let mut r = Recovery::new(config);
    send(&mut r, Handshake, 0, at(0));
    let mut out = AckOutcome::default();
    for _ in 0..40 {
        let deadline = r.loss_timer(false, at(0)).unwrap();
        assert_eq!(
            r.on_loss_timeout(false, deadline, &mut out),
            Some(Handshake)
        );
    }
    // Handshake PTO without a sample: 333 + 4 · 166.5 = 999 ms, times 2^2.
    assert_eq!(r.loss_timer(false, at(0)), Some(at(3996)));
}

#[test]
fn the_data_space_is_not_probed_before_the_handshake_is_confirmed() {
    let mut r = recovery();
    send(&mut r, Handshake, 0, at(10));
    send(&mut r, Data, 0, at(0));
    // Only the Handshake packet arms the PTO (no max_ack_delay there): 10 + 999 ms.
    assert_eq!(r.pto_deadline(false, at(20)), Some((at(1009), Handshake)));
    // Confirmed: Data's deadline is earlier (0 + 999 + 25 ms).
    assert_eq!(
        r.pto_deadline(true, at(20)),
        Some((at(1009), Handshake)),
        "Data: 0 + 1024 ms"
    );
    let mut discarded = Vec::new();
    r.discard_space(Handshake, &mut discarded);
    assert_eq!(r.loss_timer(false, at(20)), None);
    assert_eq!(r.loss_timer(true, at(20)), Some(at(1024)));
}

#[test]
fn a_client_awaiting_address_validation_keeps_an_anti_deadlock_probe_armed() {
    let mut r = recovery();
    send(&mut r, Initial, 0, at(0));
    ack(&mut r, Initial, &[0..=0], at(100)).unwrap();
    assert_eq!(
        r.loss_timer(false, at(100)),
        None,
        "nothing in flight, peer validated"
    );

    let mut r = recovery();
    r.set_anti_deadlock(Some(Initial));
    send(&mut r, Initial, 0, at(0));
    ack(&mut r, Initial, &[0..=0], at(100)).unwrap();
    // PTO base = 100 + max(4 · 50, 1) = 300 ms from the ACK, whenever the driver asks.
    assert_eq!(r.loss_timer(false, at(100)), Some(at(400)));
    assert_eq!(r.loss_timer(false, at(350)), Some(at(400)));
    let mut out = AckOutcome::default();
    r.set_anti_deadlock(Some(Handshake));
    assert_eq!(r.on_loss_timeout(false, at(400), &mut out), Some(Handshake));
    assert_eq!(
        r.loss_timer(false, at(400)),
        Some(at(1000)),
        "backed off from the expiry"
    );
    // An ACK does not reset the backoff while the server may not have validated the client.
    send(&mut r, Handshake, 0, at(1000));
    ack(&mut r, Handshake, &[0..=0], at(1100)).unwrap();
    assert_eq!(r.pto_count(), 1);
}

#[test]
fn discarding_a_space_removes_its_bytes_from_flight() {
    let mut r = recovery();
    for pn in 0..3 {
        send(&mut r, Initial, pn, at(pn));
    }
    send(&mut r, Handshake, 0, at(5));
    assert_eq!(r.bytes_in_flight(), 4000);
    let mut out = Vec::new();
    r.discard_space(Initial, &mut out);
    assert_eq!(out.iter().map(|p| p.frames).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(r.bytes_in_flight(), 1000);
    assert_eq!(r.ack_eliciting_in_flight(Initial), 0);
    assert_eq!(r.largest_acked(Initial), None);
    assert_eq!(
        r.pto_deadline(false, at(5)).map(|(_, s)| s),
        Some(Handshake)
    );
}

#[test]
fn rejected_zero_rtt_packets_are_taken_back_for_requeueing() {
    let mut r = recovery();
    for pn in 0..4 {
        send(&mut r, Data, pn, at(pn));
    }
    let mut taken = Vec::new();
    r.take_all(Data, &mut taken);
    assert_eq!(
        taken.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(r.bytes_in_flight(), 0);
    assert_eq!(r.ack_eliciting_in_flight(Data), 0);
    // 1-RTT continues with later numbers; a stale ACK of a taken number changes nothing.
    send(&mut r, Data, 4, at(10));
    let out = ack(&mut r, Data, &[4..=4, 1..=2], at(50)).unwrap();
    assert_eq!(pns(&out.acked), [4]);
    assert_eq!(r.bytes_in_flight(), 0);
}

#[test]
fn an_ecn_ce_increase_is_reported_once() {
    let mut r = recovery();
    let mut out = AckOutcome::default();
    r.on_ecn_ce_count(Data, 0, &mut out);
    assert!(!out.ecn_ce_increase);
    r.on_ecn_ce_count(Data, 2, &mut out);
    assert!(out.ecn_ce_increase);
    out.clear();
    r.on_ecn_ce_count(Data, 2, &mut out);
    assert!(!out.ecn_ce_increase);
}
