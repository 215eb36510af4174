//! Known-answer, cross-backend and property tests of packet and header protection.

use proptest::prelude::*;

use super::{Backend, CipherSuite, IV_LEN, KEY_LEN, SAMPLE_LEN, TAG_LEN};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    h(s).try_into().unwrap()
}

/// The real (non-null) backends available on this target.
fn backends() -> Vec<Backend> {
    vec![
        #[cfg(not(target_arch = "wasm32"))]
        Backend::Ring,
        Backend::RustCrypto,
    ]
}

struct AeadVector {
    suite: CipherSuite,
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plaintext: Vec<u8>,
    ciphertext_and_tag: &'static str,
}

fn check_vector(v: &AeadVector, backend: Backend) {
    let key: [u8; KEY_LEN] = arr(v.key);
    let iv: [u8; IV_LEN] = arr(v.nonce);
    let aad = h(v.aad);
    let pk = backend.packet_key(v.suite, &key, &iv);
    assert_eq!(pk.suite(), v.suite);
    // Packet number 0: nonce_for(iv, 0) is the vector's nonce.
    let mut buf = v.plaintext.clone();
    buf.extend_from_slice(&[0; TAG_LEN]);
    pk.seal(0, &aad, &mut buf).unwrap();
    assert_eq!(
        buf,
        h(v.ciphertext_and_tag),
        "{} seal via {backend:?}",
        v.suite
    );
    let plain = pk.open(0, &aad, &mut buf).unwrap();
    assert_eq!(plain, &v.plaintext[..], "{} open via {backend:?}", v.suite);
}

/// RFC 8439 §2.8.2 (ChaCha20-Poly1305 AEAD).
fn rfc8439_vector() -> AeadVector {
    AeadVector {
        suite: CipherSuite::ChaCha20Poly1305,
        key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
        nonce: "070000004041424344454647",
        aad: "50515253c0c1c2c3c4c5c6c7",
        plaintext: b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                     for the future, sunscreen would be it."
            .to_vec(),
        ciphertext_and_tag: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
            3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803
            aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116
            1ae10b594f09e26a7e902ecbd0600691",
    }
}

/// The GCM specification's (McGrew & Viega) test case 16: AES-256, 96-bit IV, with AAD; also in
/// NIST's gcmEncryptExtIV256 set.
fn gcm_case16_vector() -> AeadVector {
    AeadVector {
        suite: CipherSuite::Aes256Gcm,
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        nonce: "cafebabefacedbaddecaf888",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        plaintext: h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
            1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ),
        ciphertext_and_tag: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
            8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662
            76fc6ece0f4e1768cddf8853bb2d551b",
    }
}

/// RFC 8452 Appendix C.2 (AEAD_AES_256_GCM_SIV): two vectors, without and with AAD.
fn rfc8452_vectors() -> [AeadVector; 2] {
    [
        AeadVector {
            suite: CipherSuite::Aes256GcmSiv,
            key: "0100000000000000000000000000000000000000000000000000000000000000",
            nonce: "030000000000000000000000",
            aad: "",
            plaintext: h("0100000000000000"),
            ciphertext_and_tag: "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28",
        },
        AeadVector {
            suite: CipherSuite::Aes256GcmSiv,
            key: "0100000000000000000000000000000000000000000000000000000000000000",
            nonce: "030000000000000000000000",
            aad: "01",
            plaintext: h("020000000000000000000000"),
            ciphertext_and_tag: "163d6f9cc1b346cd453a2e4cc1a4a19ae800941ccdc57cc8413c277f",
        },
    ]
}

#[test]
fn rfc8439_chacha20poly1305_both_backends() {
    for backend in backends() {
        check_vector(&rfc8439_vector(), backend);
    }
}

#[test]
fn aes256gcm_case16_both_backends() {
    for backend in backends() {
        check_vector(&gcm_case16_vector(), backend);
    }
}

#[test]
fn rfc8452_aes256gcmsiv_rustcrypto() {
    for v in rfc8452_vectors() {
        check_vector(&v, Backend::RustCrypto);
        // Backend::Ring and Auto fall back to RustCrypto for GCM-SIV.
        check_vector(&v, Backend::Auto);
    }
}

/// RFC 9001 Appendix A.5: ChaCha20 header protection.
#[test]
fn rfc9001_a5_chacha20_header_mask_both_backends() {
    let hp: [u8; 32] = arr("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4");
    let sample: [u8; SAMPLE_LEN] = arr("5e5cd55c41f69080575d7999c25a5bfb");
    for backend in backends() {
        let key = backend.header_key(CipherSuite::ChaCha20Poly1305, &hp);
        assert_eq!(key.mask(&sample).to_vec(), h("aefefe7d03"), "{backend:?}");
    }
}

/// A sample whose first four bytes (the ChaCha20 block counter) are all ones: the last block of
/// the keystream. The sample is ciphertext, so a peer controls it; no backend may panic. The
/// expected mask was computed with OpenSSL's ChaCha20 (Python `cryptography`).
#[test]
fn chacha20_header_mask_at_last_counter() {
    let hp: [u8; 32] = arr("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4");
    let sample: [u8; SAMPLE_LEN] = arr("ffffffff41f69080575d7999c25a5bfb");
    for backend in backends() {
        let key = backend.header_key(CipherSuite::ChaCha20Poly1305, &hp);
        assert_eq!(key.mask(&sample).to_vec(), h("4db433a80a"), "{backend:?}");
    }
}

#[test]
fn header_masks_identical_across_backends() {
    let hp = [0x5a; 32];
    for suite in CipherSuite::ALL {
        for sample in [[0u8; 16], [0xff; 16], [0x13; 16]] {
            let masks: Vec<_> = backends()
                .into_iter()
                .map(|b| b.header_key(suite, &hp).mask(&sample))
                .collect();
            assert!(masks.windows(2).all(|w| w[0] == w[1]), "{suite}");
        }
    }
}

#[test]
fn short_buffers_are_errors_not_panics() {
    for backend in backends().into_iter().chain([Backend::Null]) {
        for suite in CipherSuite::ALL {
            let pk = backend.packet_key(suite, &[1; 32], &[2; 12]);
            let mut short = [0u8; TAG_LEN - 1];
            assert!(pk.seal(0, b"", &mut short).is_err());
            assert!(pk.open(0, b"", &mut short).is_err());
            let mut empty = [0u8; 0];
            assert!(pk.open(0, b"", &mut empty).is_err());
        }
    }
}

fn suite_strategy() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(CipherSuite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sealing with one backend and opening with another gives the same bytes and the plaintext;
    /// every backend produces identical ciphertext.
    #[test]
    fn cross_backend_round_trip(
        suite in suite_strategy(),
        key in any::<[u8; 32]>(),
        iv in any::<[u8; 12]>(),
        pn in any::<u64>(),
        header in prop::collection::vec(any::<u8>(), 0..64),
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut sealed: Vec<Vec<u8>> = Vec::new();
        for backend in backends() {
            let pk = backend.packet_key(suite, &key, &iv);
            let mut buf = payload.clone();
            buf.extend_from_slice(&[0; TAG_LEN]);
            pk.seal(pn, &header, &mut buf).unwrap();
            sealed.push(buf);
        }
        for w in sealed.windows(2) {
            prop_assert_eq!(&w[0], &w[1]);
        }
        for backend in backends() {
            let pk = backend.packet_key(suite, &key, &iv);
            let mut buf = sealed[0].clone();
            let plain = pk.open(pn, &header, &mut buf).unwrap();
            prop_assert_eq!(&plain[..], &payload[..]);
        }
    }

    /// Any single flipped bit in the header, the ciphertext or the tag makes `open` fail, as do
    /// a wrong packet number.
    #[test]
    fn any_flipped_bit_fails(
        suite in suite_strategy(),
        key in any::<[u8; 32]>(),
        iv in any::<[u8; 12]>(),
        pn in any::<u64>(),
        header in prop::collection::vec(any::<u8>(), 1..48),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        which in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let total_bits_len = header.len() + payload.len() + TAG_LEN;
        let pos = which.index(total_bits_len);
        for sealer in backends() {
            let mut buf = payload.clone();
            buf.extend_from_slice(&[0; TAG_LEN]);
            sealer.packet_key(suite, &key, &iv).seal(pn, &header, &mut buf).unwrap();
            for opener in backends() {
                let pk = opener.packet_key(suite, &key, &iv);
                let mut hdr = header.clone();
                let mut body = buf.clone();
                if pos < hdr.len() {
                    hdr[pos] ^= 1 << bit;
                } else {
                    body[pos - hdr.len()] ^= 1 << bit;
                }
                prop_assert!(pk.open(pn, &hdr, &mut body).is_err());
                let mut body = buf.clone();
                prop_assert!(pk.open(pn ^ 1, &header, &mut body).is_err());
            }
        }
    }

    /// Header masks agree across backends for random keys and samples.
    #[test]
    fn cross_backend_masks(
        suite in suite_strategy(),
        hp in any::<[u8; 32]>(),
        sample in any::<[u8; 16]>(),
    ) {
        let masks: Vec<_> = backends()
            .into_iter()
            .map(|b| b.header_key(suite, &hp).mask(&sample))
            .collect();
        for w in masks.windows(2) {
            prop_assert_eq!(w[0], w[1]);
        }
    }
}
