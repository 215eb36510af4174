//! Feeds arbitrary bytes to the frame decoder: it must return frames or typed errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = jsp_core::coding::Reader::new(data);
    while reader.varint().is_ok() {}
});
