//! JetStreamProto's end-to-end tests, linked into one test binary.
//!
//! Each module is one suite (`cargo test -p jsp-tests -- sim_matrix::` runs only that one). They
//! share a binary because every suite links the whole stack, the simulator and the drivers: one
//! link instead of nine keeps the build small and fast.

mod attack_amplification;
mod attack_bitflips;
mod attack_cbor;
mod attack_cid;
mod attack_flood;
mod attack_harness;
mod attack_replay;
mod attack_slow_reader;
mod attack_tokens;
mod loopback_mio;
mod loopback_smol;
mod loopback_tokio;
mod relay;
mod sim_faults;
mod sim_matrix;
mod sim_replay;
