//! Arbitrary bytes through the handshake message decoder: a message, "need more bytes", or a
//! typed error — never a panic, and a decoded message re-encodes to a decodable one.
#![no_main]

use jsp_core::handshake::HandshakeMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, n))) = HandshakeMessage::decode(data) {
        assert!(n <= data.len());
        let again = msg.encode();
        let decoded = HandshakeMessage::decode(&again).expect("re-encoded message decodes");
        assert_eq!(decoded.map(|(m, _)| m), Some(msg));
    }
});
