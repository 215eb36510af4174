use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn pseudo(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn state_json(n: u32, changed: u32) -> Vec<u8> {
    let mut s = String::from("{\"players\":[");
    for i in 0..n {
        let hp = if i == changed { 17 } else { 100 };
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"player-{i}\",\"x\":{},\"y\":{},\"hp\":{hp}}},",
            i * 7,
            i * 3
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

#[test]
fn rolling_checksum_matches_a_fresh_one_after_every_slide() {
    let data = pseudo(1, 300);
    let w = 32;
    let mut r = Rolling::new(&data[..w]);
    for pos in 1..=data.len() - w {
        r.roll(data[pos - 1], data[pos + w - 1]);
        assert_eq!(r, Rolling::new(&data[pos..pos + w]), "at {pos}");
    }
}

#[test]
fn a_state_update_with_one_field_changed_is_a_small_delta() {
    let base = state_json(500, u32::MAX);
    let target = state_json(500, 250);
    let delta = encode(&base, &target);
    println!(
        "state update: base {} B, target {} B, delta {} B ({:.2}% of the target)",
        base.len(),
        target.len(),
        delta.len(),
        delta.len() as f64 * 100.0 / target.len() as f64
    );
    assert!(delta.len() < 200, "{}", delta.len());
    assert_eq!(apply(&base, &delta, target.len()).unwrap(), target);
}

#[test]
fn inserted_and_deleted_regions_cost_about_their_size() {
    let base = pseudo(2, 1 << 20);
    let mut target = base.clone();
    let ins = pseudo(3, 1000);
    target.splice(300_000..300_000, ins.iter().copied());
    target.drain(700_000..705_000);
    let delta = encode(&base, &target);
    println!(
        "1 MiB with 1000 bytes inserted and 5000 deleted: delta {} B",
        delta.len()
    );
    assert!(delta.len() < 1000 + 2 * block_size_for(base.len()) + 100);
    assert_eq!(apply(&base, &delta, target.len()).unwrap(), target);
}

#[test]
fn hostile_deltas_are_typed_errors() {
    let base = pseudo(4, 4000);
    let target = pseudo(5, 100);
    let good = encode(&base, &target);
    assert_eq!(apply(&base, &good, 100).unwrap(), target);
    assert_eq!(
        apply(&base, &good, 99),
        Err(DeltaError::TooLarge {
            len: 100,
            limit: 99
        })
    );
    assert_eq!(apply(&base[1..], &good, 100), Err(DeltaError::BaseMismatch));
    assert_eq!(apply(&base, b"XY\x01", 100), Err(DeltaError::BadMagic));
    assert_eq!(
        apply(&base, &good[..good.len() - 1], 100),
        Err(DeltaError::Truncated)
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(apply(&base, &trailing, 100), Err(DeltaError::TrailingBytes));

    // Hand-made: a header for a 1 GiB target, then a COPY beyond the base.
    let mut head = MAGIC.to_vec();
    put_varint(&mut head, base.len() as u64);
    head.extend_from_slice(&hash_prefix(&base));
    put_varint(&mut head, 1 << 30);
    head.extend_from_slice(&[0; 8]);
    let mut copy = head.clone();
    copy.push(OP_COPY);
    put_varint(&mut copy, 3990);
    put_varint(&mut copy, 20);
    assert_eq!(
        apply(&base, &copy, 1 << 30),
        Err(DeltaError::CopyOutOfRange {
            offset: 3990,
            len: 20
        })
    );
    let mut wrap = head.clone();
    wrap.push(OP_COPY);
    put_varint(&mut wrap, u64::MAX);
    put_varint(&mut wrap, 2);
    assert!(matches!(
        apply(&base, &wrap, 1 << 30),
        Err(DeltaError::CopyOutOfRange { .. })
    ));
    let mut empty = head.clone();
    empty.extend_from_slice(&[OP_INSERT, 0]);
    assert_eq!(apply(&base, &empty, 1 << 30), Err(DeltaError::EmptyOp));
    let mut unknown = head.clone();
    unknown.push(7);
    assert_eq!(
        apply(&base, &unknown, 1 << 30),
        Err(DeltaError::UnknownOp(7))
    );
    // An INSERT claiming more than the delta holds.
    let mut short = head.clone();
    short.push(OP_INSERT);
    put_varint(&mut short, 1 << 29);
    assert_eq!(apply(&base, &short, 1 << 30), Err(DeltaError::Truncated));
    // Right length, wrong bytes.
    let mut wrong = MAGIC.to_vec();
    put_varint(&mut wrong, base.len() as u64);
    wrong.extend_from_slice(&hash_prefix(&base));
    put_varint(&mut wrong, 4);
    wrong.extend_from_slice(&hash_prefix(b"abcd"));
    wrong.extend_from_slice(&[OP_INSERT, 4, b'a', b'b', b'c', b'X']);
    assert_eq!(apply(&base, &wrong, 100), Err(DeltaError::TargetMismatch));
    // A varint that does not end, or is not minimal.
    let mut bad = MAGIC.to_vec();
    bad.extend_from_slice(&[0xff; 11]);
    assert_eq!(apply(&base, &bad, 100), Err(DeltaError::BadVarint));
    let mut nonmin = MAGIC.to_vec();
    nonmin.extend_from_slice(&[0x80, 0x00]);
    assert_eq!(apply(&base, &nonmin, 100), Err(DeltaError::BadVarint));
}

#[test]
fn find_blocks_locates_shifted_blocks_of_a_new_version_in_the_old_one() {
    let old = pseudo(6, 64 * 1024);
    let mut new = old.clone();
    new.splice(10_000..10_000, pseudo(7, 333));
    let bs = 4096;
    let mut wanted: HashMap<u32, Vec<u64>> = HashMap::new();
    let blocks: Vec<&[u8]> = new.chunks(bs).collect();
    for (i, b) in blocks.iter().enumerate() {
        if b.len() == bs {
            wanted.entry(weak_hash(b)).or_default().push(i as u64);
        }
    }
    let found = find_blocks(&old, bs, &wanted, |i, bytes| blocks[i as usize] == bytes);
    // Blocks 0 and 1 are unchanged, block 2 holds the insertion, blocks 3.. are shifted by 333.
    let idx: Vec<u64> = found.iter().map(|&(_, i)| i).collect();
    println!("found {} of {} blocks", idx.len(), blocks.len());
    assert!(idx.contains(&0) && idx.contains(&1) && !idx.contains(&2));
    for &(off, i) in &found {
        assert_eq!(&old[off as usize..off as usize + bs], blocks[i as usize]);
    }
    assert_eq!(
        found.len(),
        blocks.len() - 2,
        "all but the changed and the short last block"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_apply_round_trips(
        base in proptest::collection::vec(any::<u8>(), 0..3000),
        edits in proptest::collection::vec((any::<u16>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
    ) {
        let mut target = base.clone();
        for (at, del, ins) in edits {
            let at = usize::from(at) % (target.len() + 1);
            let end = (at + usize::from(del) % 64).min(target.len());
            target.splice(at..end, ins);
        }
        let delta = encode(&base, &target);
        prop_assert_eq!(apply(&base, &delta, target.len()).unwrap(), target);
    }

    #[test]
    fn arbitrary_deltas_never_panic_and_never_exceed_the_limit(
        base in proptest::collection::vec(any::<u8>(), 0..512),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        limit in 0usize..4096,
    ) {
        let mut delta = MAGIC.to_vec();
        delta.extend_from_slice(&body);
        if let Ok(out) = apply(&base, &delta, limit) {
            prop_assert!(out.len() <= limit);
        }
        // And with a valid header for this base, so the ops themselves are exercised.
        let mut framed = MAGIC.to_vec();
        put_varint(&mut framed, base.len() as u64);
        framed.extend_from_slice(&hash_prefix(&base));
        framed.extend_from_slice(&body);
        if let Ok(out) = apply(&base, &framed, limit) {
            prop_assert!(out.len() <= limit);
        }
    }

    #[test]
    fn mutated_valid_deltas_are_refused_or_rebuild_the_target(
        base in proptest::collection::vec(any::<u8>(), 64..1024),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut target = base.clone();
        target.rotate_left(base.len() / 3);
        let mut delta = encode(&base, &target);
        let i = flip.index(delta.len());
        delta[i] ^= 1 << bit;
        if let Ok(out) = apply(&base, &delta, 1 << 16) {
            prop_assert_eq!(out, target);
        }
    }
}

#[test]
fn weak_hasher_fed_in_pieces_equals_the_rolling_checksum() {
    let data = pseudo(8, 200_000);
    for cut in [0, 1, 17, 2500, 65_535, 65_536, 131_073, 199_999, 200_000] {
        let mut h = WeakHasher::new();
        h.update(&data[..cut]);
        h.update(&data[cut..]);
        assert_eq!(h.finish(), weak_hash(&data), "cut at {cut}");
    }
}

#[test]
fn hostile_weak_checksums_cannot_force_a_strong_check_at_every_offset() {
    let old = vec![7u8; 1 << 16];
    // Every window of the old data has this checksum; the peer claims 100 blocks have it.
    let mut wanted = HashMap::new();
    wanted.insert(weak_hash(&old[..64]), (0..100).collect::<Vec<u64>>());
    let mut calls = 0;
    let found = find_blocks(&old, 64, &wanted, |_, _| {
        calls += 1;
        false
    });
    println!("verify calls: {calls} for {} bytes", old.len());
    assert!(found.is_empty());
    assert!(calls <= 2 * (old.len() / 64) + 64);
}
