//! Feeds arbitrary bytes to the frame decoder as a packet payload: it must return frames or typed
//! errors, never panic, stop after the first error, and every frame it returns must re-encode to
//! exactly `encoded_len` bytes that decode back to the same frame.
#![no_main]

use jsp_core::coding::{Reader, Writer};
use jsp_core::frame::{self, Frame};
use jsp_core::TransportError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; data.len() + 64];
    let mut items = 0usize;
    for item in frame::iter(data) {
        items += 1;
        assert!(items <= data.len(), "more frames than bytes");
        match item {
            Ok(f) => {
                let len = f.encoded_len();
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                let mut w = Writer::new(&mut buf);
                f.encode(&mut w).expect("encoded_len bytes fit");
                assert_eq!(w.position(), len, "encoded_len disagrees with encode");
                let again = Frame::decode(&mut Reader::new(&buf[..len])).expect("re-decodes");
                assert_eq!(again, f, "frame does not round-trip");
            }
            Err(e) => {
                let te = TransportError::from(e);
                assert_eq!(te.frame_type, e.frame_type);
            }
        }
    }
});
