//! The AEAD seal rate of JSP's preferred suite on this CPU: the ceiling for goodput.

use std::time::{Duration, Instant};

use jsp_core::crypto::{Backend, CipherSuite, IV_LEN, KEY_LEN, TAG_LEN};

/// Plaintext bytes per sealed packet: a full 1452-byte UDP payload less a short header and the tag.
pub(crate) const PAYLOAD: usize = 1400;

/// The suite JSP prefers on this CPU and how many plaintext bytes per second one core seals with
/// it, sealing `PAYLOAD`-byte packets for at least `duration`.
pub(crate) fn seal_rate(duration: Duration) -> (CipherSuite, f64) {
    let suite = CipherSuite::default_preference()
        .first()
        .copied()
        .unwrap_or(CipherSuite::ChaCha20Poly1305);
    let key = Backend::Auto.packet_key(suite, &[0x42; KEY_LEN], &[0x24; IV_LEN]);
    let header = [0x40u8; 20];
    let mut buf = vec![0x5au8; PAYLOAD + TAG_LEN];
    let mut pn = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..256 {
            // The tag of the previous seal stays in the buffer's tail and is overwritten.
            if key.seal(pn, &header, &mut buf).is_err() {
                return (suite, 0.0);
            }
            pn += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            std::hint::black_box(&buf);
            return (suite, (pn as f64 * PAYLOAD as f64) / elapsed.as_secs_f64());
        }
    }
}
