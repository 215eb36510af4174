//! Arbitrary datagrams through header parsing, header-protection removal and AEAD opening: every
//! input ends in a packet, a typed error, or an authentication failure — never a panic.
#![no_main]

use jsp_core::crypto::{Backend, CipherSuite};
use jsp_core::packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cid_len, rest)) = data.split_first() else { return };
    let cid_len = usize::from(cid_len % 21);
    let mut buf = rest.to_vec();
    let key = Backend::Auto.packet_key(CipherSuite::ChaCha20Poly1305, &[1; 32], &[2; 12]);
    let hp = Backend::Auto.header_key(CipherSuite::ChaCha20Poly1305, &[3; 32]);
    let mut offset = 0;
    while offset < buf.len() {
        let Ok(partial) = packet::decode(&buf[offset..], cid_len) else { break };
        assert!(partial.len <= buf.len() - offset);
        let end = (offset + partial.len.max(1)).min(buf.len());
        let pkt = &mut buf[offset..end];
        if let Ok(un) = packet::unprotect_header(pkt, &partial, &*hp, None) {
            let _ = packet::open(pkt, &un, &*key);
        }
        offset = end;
    }
});
