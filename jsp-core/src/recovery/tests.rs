//! Loss-recovery scenarios (RFC 9002 §5–§7), one per behaviour: acknowledgements, loss
//! detection, spurious losses and persistent congestion, with the helpers the other scenario
//! files share.

use core::ops::RangeInclusive;

use super::*;
use crate::packet::SpaceId::{self, Data, Initial};
use crate::time::{Duration, Instant};

pub(super) fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

pub(super) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(super) fn recovery() -> Recovery<u64> {
    Recovery::new(RecoveryConfig::default())
}

pub(super) fn send(r: &mut Recovery<u64>, space: SpaceId, pn: u64, when: Instant) {
    let packet = SentPacket {
        time_sent: when,
        size: 1000,
        ack_eliciting: true,
        in_flight: true,
        frames: pn,
    };
    r.on_packet_sent(space, pn, packet, when);
}

pub(super) fn ack(
    r: &mut Recovery<u64>,
    space: SpaceId,
    ranges: &[RangeInclusive<u64>],
    now: Instant,
) -> Result<AckOutcome<u64>, AckError> {
    let mut out = AckOutcome::default();
    let largest = ranges.first().map_or(0, |r| *r.end());
    r.on_ack_received(
        space,
        largest,
        Duration::ZERO,
        ranges.iter().cloned(),
        true,
        now,
        &mut out,
    )?;
    Ok(out)
}

pub(super) fn pns(list: &[(SpaceId, u64, SentPacket<u64>)]) -> Vec<u64> {
    list.iter().map(|(_, pn, _)| *pn).collect()
}

/// Sends packet 0 in Data at t=0 and acknowledges it at t=100 ms: smoothed 100, rttvar 50.
pub(super) fn with_rtt_of_100ms() -> Recovery<u64> {
    let mut r = recovery();
    send(&mut r, Data, 0, at(0));
    ack(&mut r, Data, &[0..=0], at(100)).unwrap();
    assert_eq!((r.rtt().smoothed(), r.rtt().rttvar()), (ms(100), ms(50)));
    r
}

#[test]
fn packets_three_behind_the_largest_acknowledged_are_lost() {
    let mut r = recovery();
    for pn in 1..=10 {
        send(&mut r, Data, pn, at(100 + pn));
    }
    let out = ack(&mut r, Data, &[5..=5], at(150)).unwrap();
    assert_eq!(pns(&out.acked), [5]);
    assert_eq!(
        pns(&out.lost),
        [1, 2],
        "3 and 4 are fewer than 3 packets behind 5"
    );
    assert_eq!(out.lost_bytes, 2000);
    assert_eq!(out.largest_lost_sent, Some(at(102)));
    assert_eq!(r.bytes_in_flight(), 7000);

    let out = ack(&mut r, Data, &[5..=10], at(151)).unwrap();
    assert_eq!(pns(&out.acked), [6, 7, 8, 9, 10]);
    assert_eq!(pns(&out.lost), [3, 4]);
    assert_eq!(r.bytes_in_flight(), 0);
    assert_eq!(r.stats().packets_lost, 4);
    assert_eq!(r.largest_acked(Data), Some(10));
}

#[test]
fn a_lost_packet_acknowledged_later_counts_as_a_spurious_loss() {
    let mut r = recovery();
    for pn in 1..=5 {
        send(&mut r, Data, pn, at(100 + pn));
    }
    let out = ack(&mut r, Data, &[5..=5], at(150)).unwrap();
    assert_eq!(pns(&out.lost), [1, 2]);

    let out = ack(&mut r, Data, &[5..=5, 1..=1], at(160)).unwrap();
    assert_eq!(out.spurious_losses, 1);
    assert!(
        out.acked.is_empty(),
        "the lost packet's record was already handed back"
    );
    assert_eq!(r.stats().spurious_losses, 1);

    let out = ack(&mut r, Data, &[5..=5, 1..=2], at(170)).unwrap();
    assert_eq!(
        out.spurious_losses, 1,
        "packet 1 is counted once, packet 2 now"
    );
    assert_eq!(r.stats().spurious_losses, 2);
}

#[test]
fn an_rtt_sample_needs_a_newly_acknowledged_largest_and_an_ack_eliciting_packet() {
    let mut r = recovery();
    send(&mut r, Data, 0, at(10));
    send(&mut r, Data, 1, at(10));
    let out = ack(&mut r, Data, &[1..=1], at(60)).unwrap();
    assert_eq!(out.rtt_sample, Some(ms(50)));
    // The largest (1) is not newly acknowledged: no sample from packet 0.
    let out = ack(&mut r, Data, &[0..=1], at(500)).unwrap();
    assert_eq!(pns(&out.acked), [0]);
    assert_eq!(out.rtt_sample, None);
    assert_eq!(r.rtt().latest(), ms(50));

    let ack_only = SentPacket {
        time_sent: at(600),
        size: 50,
        ack_eliciting: false,
        in_flight: false,
        frames: 2,
    };
    r.on_packet_sent(Data, 2, ack_only, at(600));
    let out = ack(&mut r, Data, &[2..=2], at(700)).unwrap();
    assert_eq!(pns(&out.acked), [2]);
    assert_eq!(
        out.rtt_sample, None,
        "only non-ack-eliciting packets were acknowledged"
    );
}

#[test]
fn the_peers_ack_delay_is_subtracted_except_in_the_initial_space() {
    let mut r = recovery();
    for space in [Initial, Data] {
        send(&mut r, space, 0, at(0));
        send(&mut r, space, 1, at(100));
    }
    let mut out = AckOutcome::default();
    r.on_ack_received(Data, 0, ms(5), [0..=0], true, at(100), &mut out)
        .unwrap();
    assert_eq!(r.rtt().smoothed(), ms(100));
    r.on_ack_received(Data, 1, ms(20), [1..=1], true, at(220), &mut out)
        .unwrap();
    // 120 ms sample, 20 ms delay: adjusted 100 ms.
    assert_eq!(r.rtt().smoothed(), ms(100));
    r.on_ack_received(Initial, 1, ms(20), [1..=1], true, at(220), &mut out)
        .unwrap();
    assert_eq!(
        r.rtt().smoothed(),
        Duration::from_micros(102_500),
        "Initial ignores it"
    );
}

#[test]
fn an_ack_of_a_packet_never_sent_is_a_protocol_violation() {
    let mut r = recovery();
    let mut out = AckOutcome::default();
    let err = r.on_ack_received(Data, 0, ms(0), [0..=0], true, at(1), &mut out);
    assert_eq!(err, Err(AckError::UnsentPacketAcked { space: Data, pn: 0 }));

    send(&mut r, Data, 0, at(0));
    send(&mut r, Data, 2, at(0)); // 1 is skipped
    let err = ack(&mut r, Data, &[7..=7], at(1));
    assert_eq!(
        err.unwrap_err(),
        AckError::UnsentPacketAcked { space: Data, pn: 7 }
    );
    let err = ack(&mut r, Data, &[0..=2], at(1));
    assert_eq!(
        err.unwrap_err(),
        AckError::UnsentPacketAcked { space: Data, pn: 1 }
    );
    assert_eq!(
        r.bytes_in_flight(),
        1000,
        "packet 0 was acknowledged before the violation"
    );
}

#[test]
fn malformed_ranges_are_rejected_without_touching_state() {
    let mut r = recovery();
    for pn in 0..10 {
        send(&mut r, Data, pn, at(0));
    }
    let mut out = AckOutcome::default();
    #[allow(clippy::reversed_empty_ranges)]
    let cases: [(u64, Vec<RangeInclusive<u64>>); 5] = [
        (5, vec![]),
        (5, vec![4..=4]),               // first range does not end at the largest
        (3, vec![5..=3]),               // inverted
        (9, vec![9..=9, 2..=4, 3..=3]), // overlapping
        (5, vec![5..=5, 7..=8]),        // ascending
    ];
    for (largest, ranges) in cases {
        let result = r.on_ack_received(Data, largest, ms(0), ranges, true, at(1), &mut out);
        assert_eq!(result, Err(AckError::InvalidRanges));
    }
    assert!(out.is_empty());
    assert_eq!(r.bytes_in_flight(), 10_000);
    let huge = r.on_ack_received(
        Data,
        u64::MAX,
        Duration::MAX,
        [0..=u64::MAX],
        true,
        at(1),
        &mut out,
    );
    assert_eq!(
        huge,
        Err(AckError::UnsentPacketAcked {
            space: Data,
            pn: u64::MAX
        })
    );
}

#[test]
fn a_long_span_of_losses_is_persistent_congestion_and_a_short_one_is_not() {
    // Long: 1 at 1000 ms and 3 at 2000 ms are lost; the period is about 833 ms after the sample.
    let mut r = with_rtt_of_100ms();
    for (pn, t) in [
        (1, 1000),
        (2, 1500),
        (3, 2000),
        (4, 2001),
        (5, 2002),
        (6, 2003),
    ] {
        send(&mut r, Data, pn, at(t));
    }
    let out = ack(&mut r, Data, &[6..=6], at(2100)).unwrap();
    assert_eq!(pns(&out.lost), [1, 2, 3]);
    assert!(r.persistent_congestion_duration() < ms(1000));
    assert!(out.persistent_congestion);
    assert_eq!(r.stats().persistent_congestion, 1);

    // Short: the same shape within 400 ms.
    let mut r = with_rtt_of_100ms();
    for (pn, t) in [
        (1, 1000),
        (2, 1200),
        (3, 1400),
        (4, 1401),
        (5, 1402),
        (6, 1403),
    ] {
        send(&mut r, Data, pn, at(t));
    }
    let out = ack(&mut r, Data, &[6..=6], at(1500)).unwrap();
    assert_eq!(pns(&out.lost), [1, 2, 3]);
    assert!(!out.persistent_congestion);
}

#[test]
fn an_acknowledgement_inside_the_loss_span_prevents_persistent_congestion() {
    let mut r = with_rtt_of_100ms();
    for (pn, t) in [
        (1, 1000),
        (2, 1500),
        (3, 2000),
        (4, 2001),
        (5, 2002),
        (6, 2003),
    ] {
        send(&mut r, Data, pn, at(t));
    }
    let out = ack(&mut r, Data, &[6..=6, 2..=2], at(2100)).unwrap();
    assert_eq!(pns(&out.lost), [1, 3]);
    assert!(!out.persistent_congestion);
}

#[test]
fn losses_before_the_first_rtt_sample_are_not_persistent_congestion() {
    let mut r = recovery();
    for (pn, t) in [
        (1, 0),
        (2, 5000),
        (3, 10_000),
        (4, 10_001),
        (5, 10_002),
        (6, 10_003),
    ] {
        send(&mut r, Data, pn, at(t));
    }
    let out = ack(&mut r, Data, &[6..=6], at(10_100)).unwrap();
    assert_eq!(pns(&out.lost), [1, 2, 3]);
    assert!(!out.persistent_congestion);
}
