//! Packet-number truncation and expansion (RFC 9000 §17.1, Appendix A.2/A.3).
//!
//! Packet numbers are 62-bit counters, never reused within a packet-number space. On the wire
//! only the low 1 to 4 bytes travel: enough to cover twice the range of packets the peer has not
//! yet acknowledged, so the receiver can recover the full number as the value nearest to the one
//! it expects next.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

/// How many bytes to encode `pn` with, given the largest packet number the peer acknowledged.
pub fn encoded_len(pn: u64, largest_acked: Option<u64>) -> usize {
    let unacked = match largest_acked {
        Some(acked) => pn.saturating_sub(acked),
        None => pn.saturating_add(1),
    };
    // Twice the unacknowledged range must fit, plus one bit of margin.
    let range = unacked.saturating_mul(2);
    if range < 1 << 8 {
        1
    } else if range < 1 << 16 {
        2
    } else if range < 1 << 24 {
        3
    } else {
        4
    }
}

/// The low `len` bytes of `pn`, big-endian, in the first `len` bytes of the result.
pub fn truncate(pn: u64, len: usize) -> [u8; 4] {
    let be = pn.to_be_bytes();
    let mut out = [0u8; 4];
    let len = len.clamp(1, 4);
    for i in 0..len {
        if let (Some(o), Some(b)) = (out.get_mut(i), be.get(8 - len + i)) {
            *o = *b;
        }
    }
    out
}

/// Recovers a full packet number from its `len`-byte truncation, given the largest packet number
/// successfully processed so far in the space (`None` before the first).
pub fn expand(truncated: u64, len: usize, largest: Option<u64>) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let bits = (len.clamp(1, 4) * 8) as u32;
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_examples() {
        // A.3: largest 0xa82f30ea, truncated 0x9b32 in 2 bytes -> 0xa82f9b32.
        assert_eq!(expand(0x9b32, 2, Some(0xa82f_30ea)), 0xa82f_9b32);
        // A.2: largest acked 0xabe8b3, sending 0xac5c02 needs 2 bytes; 0xace8fe needs 3.
        assert_eq!(encoded_len(0x00ac_5c02, Some(0x00ab_e8b3)), 2);
        assert_eq!(encoded_len(0x00ac_e8fe, Some(0x00ab_e8b3)), 3);
        assert_eq!(encoded_len(0, None), 1);
    }

    proptest! {
        #[test]
        fn truncation_round_trips_within_the_window(largest in 0u64..(1 << 40), ahead in 1u64..(1 << 20), acked_back in 0u64..(1 << 20)) {
            let pn = largest + ahead;
            let acked = largest.saturating_sub(acked_back);
            let len = encoded_len(pn, Some(acked));
            let bytes = truncate(pn, len);
            let mut t = 0u64;
            for b in &bytes[..len] { t = (t << 8) | u64::from(*b); }
            // The receiver has processed at least everything the sender saw acknowledged, and at
            // most everything sent before `pn`.
            prop_assert_eq!(expand(t, len, Some(largest)), pn);
            prop_assert_eq!(expand(t, len, Some(acked)), pn);
        }
    }
}
