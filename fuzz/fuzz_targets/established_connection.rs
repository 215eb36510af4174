//! An established connection fed arbitrary decrypted 1-RTT frame sequences; see `jsp_core::fuzzing::established_connection`.
//! The property lives in jsp-core so that the `cargo test` twin (bolero) runs the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| jsp_core::fuzzing::established_connection(data));
