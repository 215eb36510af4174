use super::*;
use crate::time::Instant;
use proptest::prelude::*;

fn rin(carrier: u64, block: u64, sources: u64, esi: u64, data: &[u8]) -> RepairIn<'_> {
    RepairIn {
        carrier,
        block,
        sources,
        esi,
        data,
    }
}

fn t0() -> Instant {
    Instant::from_duration(Duration::from_secs(1))
}

/// A sender that protects from the first packet, blocks of `k` packets (`overhead_factor` 1,
/// loss floor 1/k: one repair symbol per block).
fn sender(k: u16) -> FecSender {
    let config = FecConfig {
        enable_loss: 1.0 / f64::from(k) - 1e-9,
        overhead_factor: 1.0,
        max_block: k,
        always_on: true,
        ..FecConfig::default()
    };
    FecSender::new(config, MAX_BLOCK_SOURCES)
}

fn payload(pn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (pn as usize * 31 + i * 7) as u8).collect()
}

#[test]
fn off_sender_makes_no_repairs_and_keeps_nothing() {
    let mut s = FecSender::new(FecConfig::default(), MAX_BLOCK_SOURCES);
    for pn in 0..1000 {
        s.on_packet_sent(t0(), pn, &payload(pn, 200), 1200);
        s.on_outcome(1, 0);
    }
    s.close();
    assert!(!s.is_active());
    assert!(!s.has_repairs());
    assert_eq!(s.stats().repair_bytes, 0);
}

#[test]
fn sender_turns_on_with_loss_and_off_without() {
    let mut s = FecSender::new(FecConfig::default(), MAX_BLOCK_SOURCES);
    for i in 0..300 {
        s.on_outcome(1, u64::from(i % 20 == 0));
    }
    assert!(s.is_active(), "5% loss: {}", s.estimator().rate());
    println!(
        "5% loss: estimate {:.4}, block {}",
        s.estimator().rate(),
        s.target_block()
    );
    for _ in 0..600 {
        s.on_outcome(1, 0);
    }
    assert!(!s.is_active());
}

#[test]
fn peer_without_fec_never_gets_repairs() {
    let mut config = FecConfig {
        always_on: true,
        ..FecConfig::default()
    };
    config.validate().unwrap();
    config.max_block = 8;
    let mut s = FecSender::new(config, 0);
    for pn in 0..100 {
        s.on_outcome(0, 1);
        s.on_packet_sent(t0(), pn, &payload(pn, 100), 1200);
    }
    assert!(!s.has_repairs());
}

#[test]
fn one_loss_per_block_is_recovered() {
    let mut s = sender(8);
    let mut r = FecReceiver::new(MAX_BLOCK_SOURCES);
    // The receiver keeps copies once it has seen a repair symbol: prime it with a block that
    // loses nothing.
    let lost = [3u64, 12, 21];
    let mut out = Vec::new();
    let mut carrier = 1000;
    for pn in 0..32u64 {
        let p = payload(pn, 50 + (pn as usize * 13) % 300);
        s.on_packet_sent(t0(), pn, &p, 1200);
        if pn >= 8 && !lost.contains(&pn) {
            r.store(pn, &p);
        }
        while let Some(rep) = s.pop_repair() {
            carrier += 1;
            let _ = r.on_repair(
                rin(
                    pn + 1,
                    rep.block,
                    u64::from(rep.sources),
                    u64::from(rep.esi),
                    &rep.data,
                ),
                |x| x < 8 || (x <= pn && !lost.contains(&x)),
                &mut out,
            );
        }
    }
    let _ = carrier;
    let got: Vec<u64> = out.iter().map(|r| r.pn).collect();
    assert_eq!(got, vec![12, 21]);
    for rec in &out {
        assert_eq!(
            rec.payload,
            payload(rec.pn, 50 + (rec.pn as usize * 13) % 300)
        );
    }
}

#[test]
fn an_unsent_packet_leaves_the_block() {
    let mut s = sender(4);
    s.on_packet_sent(t0(), 10, &payload(10, 50), 1200);
    s.on_packet_sent(t0(), 11, &payload(11, 60), 1200);
    s.unsend(11);
    // Number 11 is reused by the next packet: the block stays contiguous.
    s.on_packet_sent(t0(), 11, &payload(99, 70), 1200);
    s.on_packet_sent(t0(), 12, &payload(12, 80), 1200);
    s.on_packet_sent(t0(), 13, &payload(13, 90), 1200);
    let rep = s.pop_repair().unwrap();
    assert_eq!((rep.block, rep.sources), (10, 4));
    let mut r = FecReceiver::new(MAX_BLOCK_SOURCES);
    r.store(10, &payload(10, 50));
    r.store(12, &payload(12, 80));
    r.store(13, &payload(13, 90));
    let mut out = Vec::new();
    r.on_repair(
        rin(14, 10, 4, u64::from(rep.esi), &rep.data),
        |pn| pn != 11,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].pn, &out[0].payload), (11, &payload(99, 70)));
}

#[test]
fn hostile_repair_frames_get_typed_errors() {
    let mut r = FecReceiver::new(16);
    let mut out = Vec::new();
    let sym = [0u8; 64];
    type Case<'a> = (u64, u64, u64, u64, &'a [u8], FecError);
    let cases: [Case<'_>; 8] = [
        (100, 0, 0, 5, &sym, FecError::Sources(0)),
        (100, 0, 17, 20, &sym, FecError::Sources(17)),
        (
            100,
            0,
            1u64 << 62,
            1 << 62,
            &sym,
            FecError::Sources(1 << 62),
        ),
        (100, 0, 8, 9, &[1, 2], FecError::SymbolSize(2)),
        (100, 0, 8, 3, &sym, FecError::SymbolId(3)),
        (
            100,
            0,
            8,
            8 + MAX_REPAIR_ESI,
            &sym,
            FecError::SymbolId(8 + MAX_REPAIR_ESI),
        ),
        (100, 95, 8, 8, &sym, FecError::BlockInFuture),
        (100, u64::MAX - 2, 8, 8, &sym, FecError::BlockInFuture),
    ];
    for (carrier, block, sources, esi, data, want) in cases {
        let got = r.on_repair(rin(carrier, block, sources, esi, data), |_| false, &mut out);
        assert_eq!(got, Err(want));
        assert!(want.is_fatal());
        println!("hostile repair -> {want}");
    }
    let big = vec![0u8; MAX_SYMBOL_SIZE + 1];
    assert_eq!(
        r.on_repair(rin(100, 0, 8, 8, &big), |_| false, &mut out),
        Err(FecError::SymbolSize(MAX_SYMBOL_SIZE + 1))
    );
    // A block far behind: ignored, not fatal.
    assert_eq!(
        r.on_repair(rin(10_000, 0, 8, 8, &sym), |_| false, &mut out),
        Err(FecError::Stale)
    );
    assert!(!FecError::Stale.is_fatal());
    // Same block, another symbol size: inconsistent.
    assert_eq!(
        r.on_repair(rin(200, 150, 8, 8, &sym), |_| false, &mut out),
        Ok(())
    );
    assert_eq!(
        r.on_repair(rin(200, 150, 8, 9, &sym[..40]), |_| false, &mut out),
        Err(FecError::Inconsistent)
    );
    assert!(out.is_empty());
}

#[test]
fn garbage_repair_symbols_never_panic_and_memory_stays_bounded() {
    let mut r = FecReceiver::new(MAX_BLOCK_SOURCES);
    let mut out = Vec::new();
    let mut x = 0x1234_5678u64;
    for carrier in 1000..6000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let sources = 1 + x % 64;
        let block = carrier - sources - x % 200;
        let len = 3 + (x >> 20) as usize % 1500;
        let data: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        if carrier % 3 == 0 {
            r.store(carrier, &data[..len.min(100)]);
        }
        let res = r.on_repair(
            rin(carrier, block, sources, sources + x % 8, &data),
            |pn| pn % 3 == 0,
            &mut out,
        );
        assert!(
            matches!(
                res,
                Ok(()) | Err(FecError::Stale | FecError::Inconsistent | FecError::RecoveredLength)
            ),
            "{res:?}"
        );
        assert!(r.blocks.len() <= MAX_PENDING_BLOCKS);
        assert!(r.repair_bytes <= MAX_REPAIR_BYTES);
    }
    println!(
        "5000 garbage repair symbols: {} rebuilt packets (garbage in, garbage out, never a panic), {} stale blocks",
        out.len(),
        r.stats().stale_blocks
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any block of 1 to 64 packets of 1 to 400 bytes, any set of them lost: with two repair
    /// symbols more than the losses, the receiver rebuilds exactly the lost packets.
    #[test]
    fn round_trip_with_random_losses(
        k in 1u16..=64,
        lens in proptest::collection::vec(1usize..400, 64),
        loss_bits in any::<u64>(),
        first in 0u64..1_000_000,
    ) {
        // Blocks of 64 packets (a ratio of 1/64), smaller ones closed by hand with one repair
        // symbol.
        let config = FecConfig {
            always_on: true,
            max_block: 64,
            overhead_factor: 1.0,
            enable_loss: 1.0 / 64.0,
            ..FecConfig::default()
        };
        let mut s = FecSender::new(config, 64);
        let pns: Vec<u64> = (first..first + u64::from(k)).collect();
        let lost: Vec<u64> = pns.iter().copied().filter(|pn| loss_bits >> (pn - first) & 1 == 1).collect();
        // Close by hand after `k` packets (the target block may be larger).
        let mut sent = Vec::new();
        for (i, pn) in pns.iter().enumerate() {
            let p = payload(*pn, lens[i]);
            s.on_packet_sent(t0(), *pn, &p, 1200);
            sent.push(p);
        }
        s.close_with(Some(1));
        let mut repairs: Vec<RepairSymbol> = Vec::new();
        while let Some(rep) = s.pop_repair() { repairs.push(rep); }
        prop_assert_eq!(repairs.len(), 1);
        prop_assert_eq!((repairs[0].block, repairs[0].sources, repairs[0].esi), (first, k, u32::from(k)));
        let symbol_size = repairs[0].data.len();
        let mut data = vec![0u8; usize::from(k) * symbol_size];
        for (i, p) in sent.iter().enumerate() {
            let sym = &mut data[i * symbol_size..(i + 1) * symbol_size];
            sym[..2].copy_from_slice(&(p.len() as u16).to_be_bytes());
            sym[2..2 + p.len()].copy_from_slice(p);
        }
        let enc = raptorq::SourceBlockEncoder::new(0, &oti(k, symbol_size as u16), &data);
        let extra = enc.repair_packets(0, lost.len() as u32 + 2);
        let mut r = FecReceiver::new(64);
        for (i, pn) in pns.iter().enumerate() {
            if !lost.contains(pn) { r.store(*pn, &sent[i]); }
        }
        let carrier = first + u64::from(k) + 5;
        let mut out = Vec::new();
        for p in extra {
            let (id, d) = p.split();
            r.on_repair(rin(carrier, first, u64::from(k), u64::from(id.encoding_symbol_id()), &d), |pn| !lost.contains(&pn) && pn < carrier, &mut out).unwrap();
        }
        let got: Vec<u64> = out.iter().map(|r| r.pn).collect();
        prop_assert_eq!(&got, &lost);
        for rec in &out {
            let i = (rec.pn - first) as usize;
            prop_assert_eq!(&rec.payload, &sent[i]);
        }
        // The sender's own repair symbols agree with a fresh encoder's.
        let again = enc.repair_packets(0, 1);
        prop_assert_eq!(again[0].data(), &repairs[0].data[..]);
    }
}

#[test]
fn the_latency_profile_closes_a_lone_packet_block_on_its_delay_with_a_repair_symbol() {
    let config = FecConfig {
        always_on: true,
        ..FecConfig::latency()
    };
    config.validate().unwrap();
    let delay = config.max_block_delay.unwrap();
    let srtt = Duration::from_millis(50);
    let mut s = FecSender::new(config, MAX_BLOCK_SOURCES);
    s.on_packet_sent(t0(), 7, &[1, 2, 3, 4], 1200);
    assert_eq!(s.close_deadline(srtt), Some(t0() + delay));
    s.poll_close(t0() + delay - Duration::from_millis(1), srtt);
    assert!(!s.has_repairs(), "not before the delay");
    s.poll_close(t0() + delay, srtt);
    let rep = s
        .pop_repair()
        .expect("a one-packet block gets a repair symbol");
    assert_eq!((rep.block, rep.sources), (7, 1));
    // The default profile leaves such a block to retransmission (too small for its budget).
    let mut d = FecSender::new(
        FecConfig {
            always_on: true,
            ..FecConfig::default()
        },
        MAX_BLOCK_SOURCES,
    );
    d.on_packet_sent(t0(), 7, &[1, 2, 3, 4], 1200);
    d.poll_close(t0() + srtt * 6, srtt);
    assert!(!d.has_repairs());
    assert_eq!(d.stats().unprotected_blocks, 1);
}
