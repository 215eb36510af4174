//! Arbitrary datagrams through header parsing, header-protection removal and AEAD opening; see `jsp_core::fuzzing::packet_header`.
//! The property lives in jsp-core so that the `cargo test` twin (bolero) runs the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| jsp_core::fuzzing::packet_header(data));
