//! The fuzz targets' properties as tests: each runs the same function as its libFuzzer target
//! in `fuzz/` (from `jsp_core::fuzzing`), first on every file of the target's committed seed
//! corpus (`fuzz/corpus/<target>/`), then on random inputs from bolero. Under `cargo test` bolero
//! generates inputs itself (no coverage guidance); the iteration counts keep each harness to a
//! few seconds in the test profile.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::time::Instant;

use jsp_core::coding::Writer;
use jsp_core::frame::{Close, CloseKind, Frame};
use jsp_core::fuzzing::{self, EstablishedPair};

/// Runs `property` on every corpus file of `target`; returns how many there were.
fn replay_corpus(target: &str, property: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        property(&data);
    }
    files.len()
}

fn run(target: &str, property: fn(&[u8]), iterations: usize, max_len: usize) {
    let start = Instant::now();
    let corpus = replay_corpus(target, property);
    let corpus_time = start.elapsed();
    let start = Instant::now();
    bolero::check!()
        .with_iterations(iterations)
        .with_max_len(max_len)
        .for_each(|input: &[u8]| property(input));
    println!(
        "{target}: {corpus} corpus inputs in {corpus_time:?}, {iterations} random inputs in {:?}",
        start.elapsed()
    );
}

#[test]
fn frame_decode() {
    run("frame_decode", fuzzing::frame_decode, 200_000, 1500);
}

#[test]
fn packet_header() {
    run("packet_header", fuzzing::packet_header, 200_000, 1500);
}

#[test]
fn handshake_message() {
    run(
        "handshake_message",
        fuzzing::handshake_message,
        200_000,
        4096,
    );
}

#[test]
fn server_endpoint() {
    run("server_endpoint", fuzzing::server_endpoint, 3_000, 4096);
}

#[test]
fn established_connection() {
    run(
        "established_connection",
        fuzzing::established_connection,
        1_500,
        4096,
    );
}

/// The injection path is live: a PING injected into the server is processed (and acknowledged),
/// and an injected CLOSE closes it, so the `established_connection` target reaches the state
/// machine rather than a decryption failure.
#[test]
fn injected_frames_reach_the_state_machine() {
    let mut pair = EstablishedPair::new(1, false);
    let server = pair.server().unwrap();
    let before = server.stats().packets_received;
    assert!(pair.inject(true, &[0x01]), "the client has 1-RTT keys");
    pair.flush();
    let server = pair.server().unwrap();
    assert_eq!(server.stats().packets_received, before + 1);
    assert!(!server.is_closed());

    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    Frame::Close(Close {
        kind: CloseKind::Application,
        code: 42,
        reason: b"injected",
    })
    .encode(&mut w)
    .unwrap();
    let len = w.position();
    assert!(pair.inject(true, &buf[..len]));
    assert!(
        pair.server().unwrap().is_closed(),
        "an injected CLOSE closes the server"
    );
    pair.settle(16);
    println!(
        "server after the injected CLOSE: {:?}",
        pair.server().unwrap().stats()
    );
}
