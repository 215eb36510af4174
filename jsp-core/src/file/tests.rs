//! Scenario tests: whole transfers between a [`Sender`] and a [`Receiver`] over in-memory
//! streams, with in-memory "disks" on both sides, plus codec tables and hostile-input properties.
#![allow(clippy::single_range_in_vec_init)] // lists of chunk ranges, not ranges of values

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use ciborium::Value;
use proptest::prelude::*;

use super::wire::HEADER_LEN;
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Deterministic pseudo-random bytes (splitmix64).
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

type Files = BTreeMap<String, Vec<u8>>;

fn manifest_for(files: &Files, dirs: &[&str], chunk_size: u32) -> Manifest {
    let mut b = Manifest::builder().chunk_size(chunk_size);
    for (path, bytes) in files {
        let mut h = ChunkHasher::new(chunk_size);
        for piece in bytes.chunks(10_000) {
            h.update(piece);
        }
        let (size, hashes) = h.finish();
        b = b.file(path.clone(), size, 0o644, hashes);
    }
    for d in dirs {
        b = b.dir(*d, 0o755);
    }
    b.build().unwrap()
}

/// The receiver's disk: temporary copies by file index, final files by path, directories.
#[derive(Default, Debug)]
struct Disk {
    temp: BTreeMap<u32, Vec<u8>>,
    done: Files,
    dirs: BTreeSet<String>,
}

#[derive(Clone, Default)]
struct Opts {
    /// Stop (as if killed) once this many verified bytes were written; the write that crosses
    /// the mark lands only half on disk.
    stop_after: Option<u64>,
    /// Flip a byte of this chunk in flight, this many times.
    corrupt: Option<(u32, u64, u32)>,
    /// Fragment size of stream deliveries.
    fragment: usize,
    /// The transfer id the receiver asks for (default: the manifest's).
    id: Option<TransferId>,
    config: ReceiverConfig,
    /// The sender's settings (default: [`SenderConfig::default`]).
    sender: Option<SenderConfig>,
    /// With `config.offload_checks`: hold the handed-out checks until the transfer would stall,
    /// then run and report them in this order.
    check_order: CheckOrder,
    /// Feed chunk bytes with [`Receiver::handle_bytes`] (shared, not copied).
    shared: bool,
}

/// The order in which the harness reports offloaded checks.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
enum CheckOrder {
    /// As they were handed out.
    #[default]
    Fifo,
    /// Newest first.
    Reversed,
    /// Odd positions first, then even ones.
    Interleaved,
}

#[derive(Debug)]
struct Outcome {
    progress: Progress,
    stats: SenderStats,
    receiver_error: Option<FileError>,
    sender_error: Option<FileError>,
    receiver_finished: bool,
    sender_finished: bool,
    stopped: bool,
    /// Chunk bytes fully written to disk.
    written: u64,
}

fn key(ch: Channel) -> StreamKey {
    match ch {
        Channel::Control => StreamKey(0),
        Channel::Data(k) => StreamKey(u64::from(k) + 1),
    }
}

fn channel(k: StreamKey) -> Channel {
    match k.0 {
        0 => Channel::Control,
        n => Channel::Data(u16::try_from(n - 1).unwrap()),
    }
}

/// Runs a transfer of `manifest` from `source` into `disk` until both sides are quiet.
fn transfer(manifest: &Arc<Manifest>, source: &Files, disk: &mut Disk, opts: Opts) -> Outcome {
    let fragment = if opts.fragment == 0 {
        1400
    } else {
        opts.fragment
    };
    let id = opts.id.unwrap_or(manifest.transfer_id());
    let mut r = Receiver::new(id, opts.config.clone()).unwrap();
    let mut s = Sender::new(manifest.clone(), opts.sender.clone().unwrap_or_default()).unwrap();
    let mut corrupt_left = opts.corrupt.map_or(0, |c| c.2);
    let mut written = 0u64;
    let mut receiver_finished = false;
    let mut sender_finished = false;
    let mut checks: Vec<ChunkCheck> = Vec::new();
    loop {
        let mut busy = false;
        while let Some(a) = r.poll_action() {
            busy = true;
            match a {
                Action::CheckChunk(c) => {
                    assert!(opts.config.offload_checks, "CheckChunk without offloading");
                    checks.push(c);
                }
                Action::Send { channel, bytes } => {
                    for piece in bytes.chunks(fragment) {
                        let _ = s.handle_data(key(channel), piece);
                    }
                }
                Action::ManifestReady => {
                    let m = r.manifest().unwrap().clone();
                    for (i, e) in m.entries().iter().enumerate() {
                        let Some(t) = disk.temp.get(&(i as u32)) else {
                            continue;
                        };
                        for c in 0..e.chunk_count() {
                            let (off, len) = e.chunk_span(c).unwrap();
                            let start = (off as usize).min(t.len());
                            let end = (off as usize + len as usize).min(t.len());
                            r.have_chunk(FileId(i as u32), c, &t[start..end]).unwrap();
                        }
                    }
                    r.start().unwrap();
                }
                Action::CreateDir { file } => {
                    let path = r.manifest().unwrap().entry(file).unwrap().path().to_owned();
                    disk.dirs.insert(path);
                }
                Action::WriteChunk {
                    file,
                    offset,
                    bytes,
                    ..
                } => {
                    assert!(!opts.config.offload_checks, "WriteChunk with offloading");
                    let t = disk.temp.entry(file.0).or_default();
                    let end = offset as usize + bytes.len();
                    let torn = opts
                        .stop_after
                        .is_some_and(|stop| written + bytes.len() as u64 > stop);
                    let end = if torn { end - bytes.len() / 2 } else { end };
                    if t.len() < end {
                        t.resize(end, 0);
                    }
                    t[offset as usize..end].copy_from_slice(&bytes[..end - offset as usize]);
                    if torn {
                        return Outcome {
                            progress: r.progress(),
                            stats: s.stats(),
                            receiver_error: r.error().cloned(),
                            sender_error: s.error().cloned(),
                            receiver_finished,
                            sender_finished,
                            stopped: true,
                            written,
                        };
                    }
                    written += bytes.len() as u64;
                }
                Action::FileComplete { file } => {
                    let e = r.manifest().unwrap().entry(file).unwrap().clone();
                    let mut t = disk.temp.remove(&file.0).unwrap_or_default();
                    t.truncate(e.size() as usize);
                    assert_eq!(t.len() as u64, e.size(), "{}", e.path());
                    disk.done.insert(e.path().to_owned(), t);
                }
                Action::Finished => receiver_finished = true,
            }
        }
        while let Some(a) = s.poll_action() {
            busy = true;
            match a {
                SenderAction::Send { stream, bytes } => {
                    for piece in bytes.chunks(fragment) {
                        let _ = r.handle_data(channel(stream), piece);
                    }
                }
                SenderAction::ReadChunk {
                    stream,
                    file,
                    index,
                    offset,
                    len,
                } => {
                    let path = s.manifest().entry(file).unwrap().path().to_owned();
                    let src = &source[&path];
                    let start = (offset as usize).min(src.len());
                    let end = (offset as usize + len as usize).min(src.len());
                    let bytes = Bytes::copy_from_slice(&src[start..end]);
                    let _ = s.chunk_read(stream, file, index, bytes);
                }
                SenderAction::SendChunk {
                    stream,
                    header,
                    payload,
                } => {
                    let ch = channel(stream);
                    let _ = r.handle_data(ch, &header);
                    let mut payload = payload.to_vec();
                    if let Some((f, i, _)) = opts.corrupt {
                        let (hdr, _) = Message::decode(&header, 0).unwrap().unwrap();
                        let Message::ChunkHeader(h) = hdr else {
                            unreachable!()
                        };
                        if corrupt_left > 0 && h.file.0 == f && h.index == i {
                            corrupt_left -= 1;
                            payload[0] ^= 0x40;
                        }
                    }
                    if opts.shared {
                        let payload = Bytes::from(payload);
                        for start in (0..payload.len()).step_by(fragment) {
                            let end = (start + fragment).min(payload.len());
                            let _ = r.handle_bytes(ch, &payload.slice(start..end));
                        }
                    } else {
                        for piece in payload.chunks(fragment) {
                            let _ = r.handle_data(ch, piece);
                        }
                    }
                }
                SenderAction::Finished => sender_finished = true,
            }
        }
        if !busy && !checks.is_empty() {
            // The transfer waits for these results: report them, in the order asked for.
            busy = true;
            let mut batch = std::mem::take(&mut checks);
            match opts.check_order {
                CheckOrder::Fifo => {}
                CheckOrder::Reversed => batch.reverse(),
                CheckOrder::Interleaved => {
                    let (odd, even): (Vec<_>, Vec<_>) =
                        batch.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
                    batch = odd.into_iter().chain(even).map(|(_, c)| c).collect();
                }
            }
            for c in batch {
                let done = c.run();
                if let Some(bytes) = done.verified_bytes() {
                    let t = disk.temp.entry(done.file().0).or_default();
                    let end = done.offset() as usize + bytes.len();
                    if t.len() < end {
                        t.resize(end, 0);
                    }
                    t[done.offset() as usize..end].copy_from_slice(bytes);
                    written += bytes.len() as u64;
                }
                let _ = r.chunk_checked(done);
            }
        }
        if !busy {
            break;
        }
    }
    Outcome {
        progress: r.progress(),
        stats: s.stats(),
        receiver_error: r.error().cloned(),
        sender_error: s.error().cloned(),
        receiver_finished,
        sender_finished,
        stopped: false,
        written,
    }
}

fn assert_success(out: &Outcome, source: &Files, disk: &Disk) {
    assert_eq!(out.receiver_error, None);
    assert_eq!(out.sender_error, None);
    assert!(out.receiver_finished && out.sender_finished, "{out:?}");
    assert_eq!(disk.done.len(), source.len());
    for (path, bytes) in source {
        let got = &disk.done[path];
        assert!(got == bytes, "{path} differs");
        assert_eq!(chunk_hash(got), chunk_hash(bytes));
    }
    assert!(disk.temp.is_empty(), "no temporary file is left over");
}

// ---------------------------------------------------------------------------------------------
// Whole transfers

#[test]
fn a_directory_of_1000_small_files_arrives_byte_exact_with_empty_dirs_created() {
    let mut source = Files::new();
    for i in 0..1000u64 {
        let size = (i * 37 % 5000) as usize; // includes empty files
        source.insert(
            format!("d{}/sub{}/f{i:04}.bin", i % 7, i % 3),
            data(i, size),
        );
    }
    let manifest = Arc::new(manifest_for(
        &source,
        &["empty", "d0/also-empty"],
        DEFAULT_CHUNK_SIZE,
    ));
    let mut disk = Disk::default();
    let out = transfer(&manifest, &source, &mut disk, Opts::default());
    assert_success(&out, &source, &disk);
    assert_eq!(out.progress.files_total, 1000);
    assert_eq!(out.progress.files_done, 1000);
    assert_eq!(out.progress.bytes_done, manifest.total_bytes());
    assert_eq!(out.progress.bytes_received, manifest.total_bytes());
    assert_eq!(
        disk.dirs,
        BTreeSet::from(["d0/also-empty".to_owned(), "empty".to_owned()])
    );
}

#[test]
fn a_64_mib_file_arrives_byte_exact_over_four_lanes() {
    let mut source = Files::new();
    source.insert("big.bin".into(), data(64, 64 << 20));
    let manifest = Arc::new(manifest_for(&source, &[], DEFAULT_CHUNK_SIZE));
    assert_eq!(manifest.total_chunks(), 64);
    let mut disk = Disk::default();
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            fragment: 64 * 1024,
            ..Opts::default()
        },
    );
    assert_success(&out, &source, &disk);
    assert_eq!(out.progress.bytes_received, 64 << 20);
    assert_eq!(out.progress.chunks_requested, 64);
    assert_eq!(out.stats.bytes_sent, 64 << 20);
}

#[test]
fn multi_chunk_files_with_a_short_last_chunk_arrive_over_one_lane_and_many() {
    let mut source = Files::new();
    source.insert("a".into(), data(1, 10 * 1024 + 17));
    source.insert("b/c".into(), data(2, 3 * 1024));
    source.insert("b/d".into(), data(3, 1));
    for lanes in [1, 3, 64] {
        let manifest = Arc::new(manifest_for(&source, &[], MIN_CHUNK_SIZE));
        let mut disk = Disk::default();
        let config = ReceiverConfig {
            lanes,
            window: 2,
            ..ReceiverConfig::default()
        };
        let out = transfer(
            &manifest,
            &source,
            &mut disk,
            Opts {
                fragment: 100,
                config,
                ..Opts::default()
            },
        );
        assert_success(&out, &source, &disk);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn transfers_succeed_for_any_lane_count_window_and_fragmentation(
        lanes in 1u16..8,
        window in 1u32..8,
        fragment in 1usize..3000,
        sizes in prop::collection::vec(0usize..9000, 1..6),
        offload_checks in any::<bool>(),
        order in prop::sample::select(vec![CheckOrder::Fifo, CheckOrder::Reversed, CheckOrder::Interleaved]),
        shared in any::<bool>(),
    ) {
        let source: Files = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("dir{}/f{i}", i % 2), data(i as u64, n)))
            .collect();
        let manifest = Arc::new(manifest_for(&source, &[], MIN_CHUNK_SIZE));
        let mut disk = Disk::default();
        let config = ReceiverConfig { lanes, window, offload_checks, ..ReceiverConfig::default() };
        let opts = Opts { fragment, config, check_order: order, shared, ..Opts::default() };
        let out = transfer(&manifest, &source, &mut disk, opts);
        assert_success(&out, &source, &disk);
        prop_assert_eq!(out.progress.bytes_received, manifest.total_bytes());
        prop_assert_eq!(out.progress.chunks_requested, manifest.total_chunks());
    }
}

fn resume_source() -> (Files, Arc<Manifest>, u32) {
    let chunk = 64 * 1024;
    let mut source = Files::new();
    source.insert("one.bin".into(), data(10, 3 << 20));
    source.insert("two/three.bin".into(), data(11, (2 << 20) + 12345));
    source.insert("two/four.bin".into(), data(12, 700_000));
    let manifest = Arc::new(manifest_for(&source, &[], chunk));
    (source, manifest, chunk)
}

#[test]
fn a_transfer_stopped_at_half_and_restarted_fetches_only_the_missing_chunks_plus_at_most_one() {
    let (source, manifest, chunk) = resume_source();
    let total = manifest.total_bytes();
    let mut disk = Disk::default();
    let first = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            stop_after: Some(total / 2),
            ..Opts::default()
        },
    );
    assert!(first.stopped);
    assert!(disk.done.len() < source.len());
    let written = first.written;
    assert!(written >= total / 2 - u64::from(chunk) && written <= total / 2 + u64::from(chunk));

    let second = transfer(&manifest, &source, &mut disk, Opts::default());
    assert_success(&second, &source, &disk);
    // Everything fully written in the first run verified at resume and was not fetched again;
    // the torn chunk (half on disk) was.
    assert_eq!(second.progress.bytes_resumed, written);
    assert_eq!(second.progress.bytes_received, total - written);
    assert!(second.progress.bytes_received <= total - written + u64::from(chunk));
    assert!(second.progress.bytes_received <= total / 2 + 2 * u64::from(chunk));
}

#[test]
fn a_corrupted_chunk_on_disk_is_detected_at_resume_and_fetched_again() {
    let (source, manifest, chunk) = resume_source();
    let total = manifest.total_bytes();
    let mut disk = Disk::default();
    let first = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            stop_after: Some(total / 2),
            ..Opts::default()
        },
    );
    assert!(first.stopped);
    // Flip one byte in the second chunk of a file that was (at least partly) written.
    let (&file, t) = disk.temp.iter_mut().next().unwrap();
    assert!(t.len() > 2 * chunk as usize);
    t[chunk as usize + 5] ^= 1;
    let second = transfer(&manifest, &source, &mut disk, Opts::default());
    assert_success(&second, &source, &disk);
    let _ = file;
    assert_eq!(
        second.progress.bytes_resumed,
        first.written - u64::from(chunk)
    );
    assert_eq!(
        second.progress.bytes_received,
        total - second.progress.bytes_resumed
    );
}

#[test]
fn a_chunk_corrupted_in_flight_is_fetched_again() {
    let (source, manifest, chunk) = resume_source();
    let mut disk = Disk::default();
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            corrupt: Some((1, 3, 2)),
            ..Opts::default()
        },
    );
    assert_success(&out, &source, &disk);
    assert_eq!(out.progress.chunks_refetched, 2);
    assert_eq!(
        out.progress.bytes_received,
        manifest.total_bytes() + 2 * u64::from(chunk)
    );
}

#[test]
fn a_chunk_corrupted_on_every_delivery_fails_with_a_clear_error_after_the_retries() {
    let (source, manifest, _) = resume_source();
    let mut disk = Disk::default();
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            corrupt: Some((0, 0, u32::MAX)),
            ..Opts::default()
        },
    );
    assert_eq!(
        out.receiver_error,
        Some(FileError::ChunkCorrupt {
            file: 0,
            index: 0,
            attempts: 4
        })
    );
    assert!(matches!(
        out.sender_error,
        Some(FileError::Peer {
            code: ErrorCode::CORRUPT,
            ..
        })
    ));
    assert!(!disk.done.contains_key(manifest.entries()[0].path()));
}

fn offloaded(order: CheckOrder) -> Opts {
    Opts {
        config: ReceiverConfig {
            offload_checks: true,
            ..ReceiverConfig::default()
        },
        check_order: order,
        shared: true,
        fragment: 1400,
        ..Opts::default()
    }
}

#[test]
fn offloaded_checks_reported_out_of_order_give_a_byte_exact_transfer() {
    let (source, manifest, _) = resume_source();
    for order in [
        CheckOrder::Fifo,
        CheckOrder::Reversed,
        CheckOrder::Interleaved,
    ] {
        let mut disk = Disk::default();
        let out = transfer(&manifest, &source, &mut disk, offloaded(order));
        assert_success(&out, &source, &disk);
        assert_eq!(out.progress.bytes_received, manifest.total_bytes());
        assert_eq!(out.progress.bytes_done, manifest.total_bytes());
        assert_eq!(out.progress.chunks_requested, manifest.total_chunks());
        assert_eq!(out.written, manifest.total_bytes(), "{order:?}");
    }
}

#[test]
fn a_chunk_corrupted_in_flight_is_fetched_again_through_offloaded_checks() {
    let (source, manifest, chunk) = resume_source();
    for order in [CheckOrder::Fifo, CheckOrder::Reversed] {
        let mut disk = Disk::default();
        let out = transfer(
            &manifest,
            &source,
            &mut disk,
            Opts {
                corrupt: Some((1, 3, 2)),
                ..offloaded(order)
            },
        );
        assert_success(&out, &source, &disk);
        assert_eq!(out.progress.chunks_refetched, 2);
        assert_eq!(
            out.progress.bytes_received,
            manifest.total_bytes() + 2 * u64::from(chunk)
        );
        // Nothing of the bad deliveries was written: only verified bytes reach the disk.
        assert_eq!(out.written, manifest.total_bytes());
    }
}

#[test]
fn a_chunk_corrupted_on_every_delivery_fails_after_the_retries_through_offloaded_checks() {
    let (source, manifest, _) = resume_source();
    let mut disk = Disk::default();
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            corrupt: Some((0, 0, u32::MAX)),
            ..offloaded(CheckOrder::Reversed)
        },
    );
    assert_eq!(
        out.receiver_error,
        Some(FileError::ChunkCorrupt {
            file: 0,
            index: 0,
            attempts: 4
        })
    );
    assert!(matches!(
        out.sender_error,
        Some(FileError::Peer {
            code: ErrorCode::CORRUPT,
            ..
        })
    ));
    assert!(!disk.done.contains_key(manifest.entries()[0].path()));
}

/// Feeds one raw chunk (header and bytes) to `r` on data lane `lane`.
fn deliver(r: &mut Receiver, lane: u16, file: u32, index: u64, bytes: &[u8]) {
    let header = Message::ChunkHeader(ChunkHeader {
        file: FileId(file),
        index,
        len: bytes.len() as u32,
        codec: Codec::Raw,
        dict: None,
    })
    .encode();
    r.handle_data(Channel::Data(lane), &header).unwrap();
    r.handle_bytes(Channel::Data(lane), &Bytes::copy_from_slice(bytes))
        .unwrap();
}

#[test]
fn offloaded_check_results_are_matched_to_their_chunks_and_never_taken_twice() {
    // One file of four 1 KiB chunks over one lane with a window of four.
    let mut source = Files::new();
    source.insert("f".into(), data(7, 4096));
    let m = manifest_for(&source, &[], 1024);
    let config = ReceiverConfig {
        lanes: 1,
        window: 4,
        offload_checks: true,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(m.transfer_id(), config.clone()).unwrap();
    r.handle_data(
        Channel::Control,
        &Message::Offer(Box::new(m.clone())).encode(),
    )
    .unwrap();
    r.start().unwrap();
    while r.poll_action().is_some() {}
    let bytes = &source["f"];
    let mut bad = bytes[1024..2048].to_vec();
    bad[10] ^= 1;
    deliver(&mut r, 0, 0, 0, &bytes[..1024]);
    deliver(&mut r, 0, 0, 1, &bad);
    deliver(&mut r, 0, 0, 2, &bytes[2048..3072]);
    deliver(&mut r, 0, 0, 3, &bytes[3072..]);
    let mut checks = Vec::new();
    while let Some(a) = r.poll_action() {
        match a {
            Action::CheckChunk(c) => checks.push(c),
            other => panic!("only checks are due, got {other:?}"),
        }
    }
    assert_eq!(checks.len(), 4);
    assert_eq!(r.checks_outstanding(), 4);
    assert_eq!(
        r.progress().bytes_done,
        0,
        "nothing counts before its check"
    );
    // A result of another receiver with the same numbering is refused and changes nothing.
    let mut other = Receiver::new(m.transfer_id(), config).unwrap();
    other
        .handle_data(
            Channel::Control,
            &Message::Offer(Box::new(m.clone())).encode(),
        )
        .unwrap();
    other.start().unwrap();
    while other.poll_action().is_some() {}
    deliver(&mut other, 0, 0, 0, &bytes[..1024]);
    let Some(Action::CheckChunk(foreign)) = other.poll_action() else {
        panic!("a check")
    };
    // `foreign` has the same number (0) and chunk as this receiver's first check: it is refused
    // below because that number was reported already.
    let results: Vec<ChunkChecked> = checks.into_iter().rev().map(ChunkCheck::run).collect();
    assert_eq!(
        results
            .iter()
            .map(ChunkChecked::is_verified)
            .collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert!(results[2].verified_bytes().is_none());
    assert_eq!(results[0].verified_bytes().unwrap()[..], bytes[3072..]);
    // Newest first: chunk 3, 2, then the bad chunk 1, then chunk 0.
    for c in results.iter().take(3) {
        r.chunk_checked(c.clone()).unwrap();
    }
    // The bad chunk 1 is requested again right away, alone.
    let Some(Action::Send {
        channel,
        bytes: req,
    }) = r.poll_action()
    else {
        panic!("a request again")
    };
    assert_eq!(channel, Channel::Data(0));
    assert_eq!(
        req,
        Message::Request(Request {
            file: FileId(0),
            chunks: vec![1..2]
        })
        .encode()
    );
    assert_eq!(r.progress().chunks_refetched, 1);
    // Reporting a result twice is refused without effect.
    assert!(matches!(
        r.chunk_checked(results[0].clone()),
        Err(FileError::Misuse { .. })
    ));
    r.chunk_checked(results[3].clone()).unwrap();
    assert!(matches!(
        r.chunk_checked(foreign.run()),
        Err(FileError::Misuse { .. })
    ));
    assert_eq!(r.error(), None);
    assert_eq!(r.progress().bytes_done, 3072);
    assert!(
        r.poll_action().is_none(),
        "no FileComplete while chunk 1 is missing"
    );
    // The refetched chunk verifies, and only then is the file complete.
    deliver(&mut r, 0, 0, 1, &bytes[1024..2048]);
    let Some(Action::CheckChunk(c)) = r.poll_action() else {
        panic!("a check")
    };
    assert_eq!(
        (c.file(), c.index(), c.offset(), c.chunk_len()),
        (FileId(0), 1, 1024, 1024)
    );
    r.chunk_checked(c.run()).unwrap();
    assert_eq!(
        r.poll_action(),
        Some(Action::FileComplete { file: FileId(0) })
    );
    assert!(matches!(
        r.poll_action(),
        Some(Action::Send {
            channel: Channel::Control,
            ..
        })
    ));
    assert_eq!(r.poll_action(), Some(Action::Finished));
    assert!(r.is_finished());
    assert_eq!(r.checks_outstanding(), 0);
}

#[test]
fn unreported_offloaded_checks_hold_back_new_requests() {
    let mut source = Files::new();
    source.insert("f".into(), data(8, 64 * 1024));
    let m = Arc::new(manifest_for(&source, &[], 1024));
    let config = ReceiverConfig {
        lanes: 2,
        window: 3,
        offload_checks: true,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(m.transfer_id(), config).unwrap();
    let mut s = Sender::new(m.clone(), SenderConfig::default()).unwrap();
    let mut held = Vec::new();
    // Run the pair, keeping every check and reporting none.
    loop {
        let mut busy = false;
        while let Some(a) = r.poll_action() {
            busy = true;
            match a {
                Action::Send { channel, bytes } => s.handle_data(key(channel), &bytes).unwrap(),
                Action::ManifestReady => r.start().unwrap(),
                Action::CheckChunk(c) => held.push(c),
                other => panic!("{other:?}"),
            }
        }
        while let Some(a) = s.poll_action() {
            busy = true;
            match a {
                SenderAction::Send { stream, bytes } => {
                    r.handle_data(channel(stream), &bytes).unwrap()
                }
                SenderAction::ReadChunk {
                    stream,
                    file,
                    index,
                    offset,
                    len,
                } => {
                    let b = &source["f"][offset as usize..(offset + u64::from(len)) as usize];
                    s.chunk_read(stream, file, index, Bytes::copy_from_slice(b))
                        .unwrap();
                }
                SenderAction::SendChunk {
                    stream,
                    header,
                    payload,
                } => {
                    r.handle_data(channel(stream), &header).unwrap();
                    r.handle_bytes(channel(stream), &payload).unwrap();
                }
                SenderAction::Finished => {}
            }
        }
        if !busy {
            break;
        }
    }
    // lanes × window checks out with the caller, and as many requested behind them at most.
    assert_eq!(held.len(), 6);
    assert_eq!(r.checks_outstanding(), 6);
    assert!(r.progress().chunks_requested <= 12, "{:?}", r.progress());
    // Reporting them lets the transfer go on.
    for c in held.drain(..) {
        r.chunk_checked(c.run()).unwrap();
    }
    assert!(r.poll_action().is_some());
    assert_eq!(r.progress().bytes_done, 6 * 1024);
}

#[test]
fn a_source_file_changed_after_the_offer_gives_a_clear_error_on_both_sides() {
    let (mut source, manifest, _) = resume_source();
    source.get_mut("two/four.bin").unwrap()[100_000] ^= 0xff;
    let mut disk = Disk::default();
    let out = transfer(&manifest, &source, &mut disk, Opts::default());
    let Some(FileError::SourceChanged { path, index, .. }) = &out.sender_error else {
        panic!("{out:?}");
    };
    assert_eq!((path.as_str(), *index), ("two/four.bin", 1));
    let Some(FileError::Peer { code, reason }) = &out.receiver_error else {
        panic!("{out:?}");
    };
    assert_eq!(*code, ErrorCode::SOURCE_CHANGED);
    assert!(
        reason.contains("two/four.bin") && reason.contains("changed"),
        "{reason}"
    );
    assert!(!disk.done.contains_key("two/four.bin"));
    assert!(!out.receiver_finished);

    // A file that shrank is a changed source too.
    let (mut source, manifest, _) = resume_source();
    source.get_mut("one.bin").unwrap().truncate(1000);
    let mut disk = Disk::default();
    let out = transfer(&manifest, &source, &mut disk, Opts::default());
    assert!(matches!(
        out.sender_error,
        Some(FileError::SourceChanged { .. })
    ));
}

#[test]
fn a_receiver_asking_for_another_transfer_id_is_refused() {
    let (source, manifest, _) = resume_source();
    let mut disk = Disk::default();
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            id: Some(TransferId([7; 16])),
            ..Opts::default()
        },
    );
    assert_eq!(out.sender_error, Some(FileError::UnknownTransfer));
    assert!(matches!(
        out.receiver_error,
        Some(FileError::Peer {
            code: ErrorCode::UNKNOWN_TRANSFER,
            ..
        })
    ));
    assert!(disk.temp.is_empty() && disk.done.is_empty());
}

#[test]
fn receiver_settings_out_of_range_and_calls_out_of_order_are_refused_without_failing() {
    let id = TransferId([1; 16]);
    for (lanes, window) in [(0, 4), (65, 4), (4, 0), (4, 257)] {
        let config = ReceiverConfig {
            lanes,
            window,
            ..ReceiverConfig::default()
        };
        assert!(matches!(
            Receiver::new(id, config),
            Err(FileError::Misuse { .. })
        ));
    }
    let m = small_manifest();
    let mut r = Receiver::new(m.transfer_id(), ReceiverConfig::default()).unwrap();
    assert!(matches!(r.start(), Err(FileError::Misuse { .. })));
    assert!(matches!(
        r.have_chunk(FileId(0), 0, b""),
        Err(FileError::Misuse { .. })
    ));
    r.handle_data(
        Channel::Control,
        &Message::Offer(Box::new(Manifest::clone(&m))).encode(),
    )
    .unwrap();
    assert!(matches!(
        r.have_chunk(FileId(0), 99, b""),
        Err(FileError::Misuse { .. })
    ));
    assert_eq!(r.have_chunk(FileId(0), 0, b"short"), Ok(false));
    r.start().unwrap();
    assert!(matches!(r.start(), Err(FileError::Misuse { .. })));
    assert_eq!(r.error(), None);
    assert_eq!(r.file_progress(FileId(0)), Some((0, 5000)));
}

#[test]
fn an_offer_that_does_not_hash_to_the_ticket_id_is_refused_by_the_receiver() {
    let (_, manifest, _) = resume_source();
    let other = manifest_for(
        &Files::from([("x".to_owned(), b"x".to_vec())]),
        &[],
        DEFAULT_CHUNK_SIZE,
    );
    let mut r = Receiver::new(manifest.transfer_id(), ReceiverConfig::default()).unwrap();
    let offer = Message::Offer(Box::new(other)).encode();
    assert_eq!(
        r.handle_data(Channel::Control, &offer),
        Err(FileError::UnknownTransfer)
    );
    assert_eq!(
        r.handle_data(Channel::Control, b"x"),
        Err(FileError::Failed)
    );
}

// ---------------------------------------------------------------------------------------------
// Manifest codec

fn entry_value(p: &str, k: u8, m: u32, s: u64, c: u32, h: Vec<u8>) -> Value {
    Value::Map(vec![
        (Value::Text("p".into()), Value::Text(p.into())),
        (Value::Text("k".into()), Value::Integer(k.into())),
        (Value::Text("m".into()), Value::Integer(m.into())),
        (Value::Text("s".into()), Value::Integer(s.into())),
        (Value::Text("c".into()), Value::Integer(c.into())),
        (Value::Text("h".into()), Value::Bytes(h)),
    ])
}

fn manifest_value(v: u32, entries: Vec<Value>) -> Vec<u8> {
    let m = Value::Map(vec![
        (Value::Text("v".into()), Value::Integer(v.into())),
        (Value::Text("e".into()), Value::Array(entries)),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&m, &mut out).unwrap();
    out
}

fn file_value(p: &str) -> Value {
    entry_value(p, 0, 0o644, 5, 1024, vec![1; 32])
}

#[test]
fn a_built_manifest_is_sorted_and_its_root_follows_the_documented_construction() {
    // 2048 bytes at 1 MiB chunks is one chunk, so two hashes are refused.
    let err = Manifest::builder()
        .file(
            "b",
            2048,
            0o600,
            vec![ChunkHash([1; 32]), ChunkHash([2; 32])],
        )
        .build();
    assert!(matches!(err, Err(ManifestError::BadHashes { .. })));
    let m = Manifest::builder()
        .chunk_size(1024)
        .file(
            "b",
            2048,
            0o600,
            vec![ChunkHash([1; 32]), ChunkHash([2; 32])],
        )
        .dir("a", 0o755)
        .build()
        .unwrap();
    let mut h = blake3::Hasher::new_derive_key("JetStreamProto file-transfer manifest v1");
    h.update(&1u32.to_be_bytes());
    h.update(&2u64.to_be_bytes());
    h.update(&[1]);
    h.update(&0o755u32.to_be_bytes());
    h.update(&0u64.to_be_bytes());
    h.update(&0u32.to_be_bytes());
    h.update(&1u32.to_be_bytes());
    h.update(b"a");
    h.update(&0u64.to_be_bytes());
    h.update(&[0]);
    h.update(&0o600u32.to_be_bytes());
    h.update(&2048u64.to_be_bytes());
    h.update(&1024u32.to_be_bytes());
    h.update(&1u32.to_be_bytes());
    h.update(b"b");
    h.update(&2u64.to_be_bytes());
    h.update(&[1; 32]);
    h.update(&[2; 32]);
    assert_eq!(
        m.entries().iter().map(Entry::path).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(m.root().0, *h.finalize().as_bytes());
    assert_eq!(m.transfer_id().0, m.root().0[..16]);
}

#[test]
fn malformed_manifests_are_refused_with_the_rule_they_break() {
    use ManifestError as E;
    use PathError as P;
    let ok = manifest_value(1, vec![file_value("a")]);
    assert!(Manifest::decode(&ok, MAX_MANIFEST_LEN).is_ok());

    let bad_path = |p: &str| manifest_value(1, vec![file_value(p)]);
    let long = "x".repeat(300);
    let mut trailing = ok.clone();
    trailing.push(0);
    // "h" as an array of integers instead of a byte string.
    let mut ints = file_value("a");
    if let Value::Map(fields) = &mut ints {
        fields[5].1 = Value::Array(vec![Value::Integer(1.into()); 32]);
    }
    // An array header that claims 2^40 entries over a few bytes.
    let mut absurd = vec![0xa2, 0x61, b'v', 0x01, 0x61, b'e', 0x9b];
    absurd.extend_from_slice(&(1u64 << 40).to_be_bytes());
    absurd.extend_from_slice(&manifest_value(1, vec![file_value("a")])[6..]);

    type Check = Box<dyn Fn(&E) -> bool>;
    let cases: Vec<(&str, Vec<u8>, usize, Check)> = vec![
        (
            "absolute path",
            bad_path("/etc/passwd"),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::Absolute,
                }
            }),
        ),
        (
            "dot-dot",
            bad_path("a/../../x"),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::DotComponent,
                }
            }),
        ),
        (
            "empty component",
            bad_path("a//b"),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::EmptyComponent,
                }
            }),
        ),
        (
            "NUL",
            bad_path("a\0b"),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::Nul,
                }
            }),
        ),
        (
            "control",
            bad_path("a\x1bb"),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::ControlCharacter,
                }
            }),
        ),
        (
            "long component",
            bad_path(&long),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::ComponentTooLong,
                }
            }),
        ),
        (
            "empty path",
            bad_path(""),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                *e == E::BadPath {
                    entry: 0,
                    reason: P::Empty,
                }
            }),
        ),
        (
            "oversized",
            ok.clone(),
            10,
            Box::new(|e| matches!(e, E::TooLong { max: 10, .. })),
        ),
        (
            "garbage",
            vec![0xff, 0x00, 0x13],
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadCbor { .. })),
        ),
        (
            "empty input",
            vec![],
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadCbor { .. })),
        ),
        (
            "trailing byte",
            trailing,
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadCbor { .. })),
        ),
        (
            "hashes as integers",
            manifest_value(1, vec![ints]),
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadCbor { .. })),
        ),
        (
            "absurd array length",
            absurd,
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadCbor { .. })),
        ),
        (
            "31-byte hash",
            manifest_value(1, vec![entry_value("a", 0, 0, 5, 1024, vec![1; 31])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                matches!(
                    e,
                    E::BadHashes {
                        entry: 0,
                        expected: 32,
                        got: 31
                    }
                )
            }),
        ),
        (
            "missing hash",
            manifest_value(1, vec![entry_value("a", 0, 0, 2000, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                matches!(
                    e,
                    E::BadHashes {
                        entry: 0,
                        expected: 64,
                        got: 32
                    }
                )
            }),
        ),
        (
            "extra hash",
            manifest_value(1, vec![entry_value("a", 0, 0, 0, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                matches!(
                    e,
                    E::BadHashes {
                        entry: 0,
                        expected: 0,
                        got: 32
                    }
                )
            }),
        ),
        (
            "huge size",
            manifest_value(1, vec![entry_value("a", 0, 0, u64::MAX, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| matches!(e, E::BadHashes { entry: 0, .. })),
        ),
        (
            "tiny chunks",
            manifest_value(1, vec![entry_value("a", 0, 0, 5, 512, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| {
                matches!(
                    e,
                    E::BadChunkSize {
                        entry: 0,
                        chunk_size: 512
                    }
                )
            }),
        ),
        (
            "directory with data",
            manifest_value(1, vec![entry_value("a", 1, 0, 5, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::DirectoryWithData { entry: 0 }),
        ),
        (
            "unknown kind",
            manifest_value(1, vec![entry_value("a", 2, 0, 5, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::BadKind { entry: 0, kind: 2 }),
        ),
        (
            "setuid-and-more mode",
            manifest_value(1, vec![entry_value("a", 0, 0o17777, 5, 1024, vec![1; 32])]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::BadMode { entry: 0 }),
        ),
        (
            "unsorted",
            manifest_value(1, vec![file_value("b"), file_value("a")]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::NotSorted { entry: 1 }),
        ),
        (
            "duplicate",
            manifest_value(1, vec![file_value("a"), file_value("a")]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::Duplicate { entry: 1 }),
        ),
        (
            "below a file",
            manifest_value(1, vec![file_value("a"), file_value("a/b")]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::PathConflict { entry: 1 }),
        ),
        (
            "version 2",
            manifest_value(2, vec![file_value("a")]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::UnsupportedVersion(2)),
        ),
        (
            "no entries",
            manifest_value(1, vec![]),
            MAX_MANIFEST_LEN,
            Box::new(|e| *e == E::Empty),
        ),
    ];
    for (name, bytes, max, check) in cases {
        match Manifest::decode(&bytes, max) {
            Err(e) => assert!(check(&e), "{name}: {e:?}"),
            Ok(m) => panic!("{name}: accepted {m:?}"),
        }
    }
}

#[test]
fn a_manifest_with_more_entries_than_the_limit_is_refused_without_storing_them_all() {
    // Minimal directory entries, far more than MAX_ENTRIES, in well under the size limit.
    let n = MAX_ENTRIES + 10;
    let mut body = vec![0xa2, 0x61, b'v', 0x01, 0x61, b'e', 0x9a];
    body.extend_from_slice(&(n as u32).to_be_bytes());
    for _ in 0..n {
        // {"p": "a", "k": 1, "m": 0}
        body.extend_from_slice(&[
            0xa3, 0x61, b'p', 0x61, b'a', 0x61, b'k', 0x01, 0x61, b'm', 0x00,
        ]);
    }
    assert!(body.len() < MAX_MANIFEST_LEN);
    assert_eq!(
        Manifest::decode(&body, MAX_MANIFEST_LEN),
        Err(ManifestError::TooManyEntries)
    );
}

fn arb_entries() -> impl Strategy<Value = Vec<(String, bool, u64, u32)>> {
    let component = prop::sample::select(vec!["a", "b", "ab", "a b", "ü", "x.txt", "-", "Z"]);
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    prop::collection::vec((path, any::<bool>(), 0u64..5000, 0u32..=0o7777), 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_manifest_survives_an_encode_decode_round_trip(entries in arb_entries(), cs in 1024u32..3000) {
        let mut b = Manifest::builder().chunk_size(cs);
        let mut seen = BTreeSet::new();
        for (i, (path, is_dir, size, mode)) in entries.into_iter().enumerate() {
            if !seen.insert(path.clone()) {
                continue;
            }
            b = if is_dir {
                b.dir(path, mode)
            } else {
                b.file(path, size, mode, chunk_hashes(&data(i as u64, size as usize), cs))
            };
        }
        // Random paths may put an entry below a file; such sets are refused, which is right.
        let m = match b.build() {
            Ok(m) => m,
            Err(e) => {
                prop_assert!(matches!(e, ManifestError::PathConflict { .. }), "{e:?}");
                return Ok(());
            }
        };
        let decoded = Manifest::decode(&m.encode(), MAX_MANIFEST_LEN).unwrap();
        prop_assert_eq!(decoded.root(), m.root());
        prop_assert_eq!(&decoded, &m);
        let framed = Message::Offer(Box::new(m.clone())).try_encode().unwrap();
        prop_assert_eq!(&super::wire::encode_offer(&m).unwrap(), &framed);
        let (msg, used) = Message::decode(&framed, MAX_MANIFEST_LEN).unwrap().unwrap();
        prop_assert_eq!(used, framed.len());
        prop_assert_eq!(msg, Message::Offer(Box::new(m)));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile peers

fn small_manifest() -> Arc<Manifest> {
    let mut source = Files::new();
    source.insert("a".into(), data(1, 5000));
    source.insert("d/b".into(), data(2, 100));
    Arc::new(manifest_for(&source, &["e"], 1024))
}

/// A receiver that got the offer and started, with requests out on every lane.
fn started_receiver(m: &Manifest) -> Receiver {
    let mut r = Receiver::new(m.transfer_id(), ReceiverConfig::default()).unwrap();
    r.handle_data(
        Channel::Control,
        &Message::Offer(Box::new(m.clone())).encode(),
    )
    .unwrap();
    r.start().unwrap();
    while r.poll_action().is_some() {}
    r
}

/// A sender that answered a Fetch on stream 0.
fn serving_sender(m: &Arc<Manifest>) -> Sender {
    let mut s = Sender::new(m.clone(), SenderConfig::default()).unwrap();
    s.handle_data(
        StreamKey(0),
        &Message::Fetch(Fetch {
            id: m.transfer_id(),
            codecs: 1,
            dicts: Vec::new(),
        })
        .encode(),
    )
    .unwrap();
    while s.poll_action().is_some() {}
    s
}

fn request(file: u32, chunks: Vec<std::ops::Range<u64>>) -> Vec<u8> {
    Message::Request(Request {
        file: FileId(file),
        chunks,
    })
    .encode()
}

#[test]
fn requests_for_unknown_files_or_chunks_get_typed_errors() {
    let m = small_manifest();
    // Entries: a (5 chunks), d/b (1 chunk), e (directory).
    let cases: Vec<(Vec<u8>, FileError)> = vec![
        (request(9, vec![0..1]), FileError::UnknownFile { file: 9 }),
        (request(2, vec![0..1]), FileError::UnknownFile { file: 2 }),
        (
            request(0, vec![0..6]),
            FileError::UnknownChunk { file: 0, index: 5 },
        ),
        (
            request(0, vec![u64::MAX - 1..u64::MAX]),
            FileError::UnknownChunk {
                file: 0,
                index: u64::MAX - 1,
            },
        ),
        (
            // The sender accepts no Offer body at all.
            Message::Offer(Box::new(Manifest::clone(&m))).encode(),
            FileError::Message(MessageError::TooLong {
                message: "Offer",
                len: 267,
                max: 0,
            }),
        ),
        (
            Message::ChunkHeader(ChunkHeader {
                file: FileId(0),
                index: 0,
                len: 1,
                codec: Codec::Raw,
                dict: None,
            })
            .encode(),
            FileError::UnexpectedMessage {
                message: "ChunkHeader",
                context: "sent to the sender",
            },
        ),
        (
            request(0, vec![0..1])
                .into_iter()
                .chain(request(0, vec![1..2]))
                .collect(),
            FileError::Failed,
        ),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        let mut s = serving_sender(&m);
        let got = s.handle_data(StreamKey(1), &bytes);
        if want == FileError::Failed {
            assert_eq!(got, Ok(()), "case {i}");
            continue;
        }
        assert_eq!(got, Err(want.clone()), "case {i}");
        // The receiver is told, with the matching code.
        let Some(SenderAction::Send { stream, bytes }) = s.poll_action() else {
            panic!("case {i}: no error message");
        };
        assert_eq!(stream, StreamKey(0));
        let (Message::Error(e), _) = Message::decode(&bytes, 0).unwrap().unwrap() else {
            panic!("case {i}");
        };
        assert_eq!(e.code, want.code(), "case {i}");
    }

    // Requests before the offer, and on the control stream.
    let mut s = Sender::new(m.clone(), SenderConfig::default()).unwrap();
    assert!(matches!(
        s.handle_data(StreamKey(1), &request(0, vec![0..1])),
        Err(FileError::UnexpectedMessage {
            message: "Request",
            ..
        })
    ));
    let mut s = serving_sender(&m);
    assert!(matches!(
        s.handle_data(StreamKey(0), &request(0, vec![0..1])),
        Err(FileError::UnexpectedMessage {
            message: "Request",
            ..
        })
    ));
    // A flood of ranges on one stream hits the queue limit.
    let mut s = serving_sender(&m);
    let flood: Vec<u8> = (0..300)
        .flat_map(|_| request(0, vec![0..1, 2..3]))
        .collect();
    assert_eq!(
        s.handle_data(StreamKey(1), &flood),
        Err(FileError::Limit {
            what: "too many queued requests on one stream"
        })
    );
    // More streams than allowed.
    let mut s = serving_sender(&m);
    let mut result = Ok(());
    for k in 1..=100u64 {
        result = s.handle_data(StreamKey(k), &[3]);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        result,
        Err(FileError::Limit {
            what: "too many streams"
        })
    );
}

#[test]
fn a_hostile_sender_cannot_push_unrequested_or_misnamed_chunks() {
    let m = small_manifest();
    let header = |f: u32, i: u64, n: u32| {
        Message::ChunkHeader(ChunkHeader {
            file: FileId(f),
            index: i,
            len: n,
            codec: Codec::Raw,
            dict: None,
        })
        .encode()
    };
    // Lane 0 asked for chunks of file 0 from index 0; lane 3 asked for something else.
    let cases = [
        (
            Channel::Data(0),
            header(0, 1, 1024),
            FileError::UnexpectedChunk { file: 0, index: 1 },
        ),
        (
            Channel::Data(0),
            header(0, 0, 1000),
            FileError::UnexpectedChunk { file: 0, index: 0 },
        ),
        (
            Channel::Data(0),
            header(7, 0, 10),
            FileError::UnexpectedChunk { file: 7, index: 0 },
        ),
        (
            Channel::Data(9),
            header(0, 0, 1024),
            FileError::Misuse {
                what: "data for a channel the receiver does not use",
            },
        ),
        (
            Channel::Control,
            header(0, 0, 1024),
            FileError::UnexpectedMessage {
                message: "ChunkHeader",
                context: "on the receiver's control stream",
            },
        ),
        (
            Channel::Data(0),
            Message::Done.encode(),
            FileError::UnexpectedMessage {
                message: "Done",
                context: "on a data stream of the receiver",
            },
        ),
        (
            Channel::Data(0),
            vec![4, 0xff, 0xff, 0xff],
            FileError::Message(MessageError::TooLong {
                message: "ChunkHeader",
                len: 0xff_ffff,
                max: 2048,
            }),
        ),
        (
            Channel::Control,
            vec![6, 0xff, 0xff, 0xff],
            FileError::Message(MessageError::TooLong {
                message: "Error",
                len: 0xff_ffff,
                max: 2048,
            }),
        ),
        (
            Channel::Control,
            vec![0x99],
            FileError::Message(MessageError::UnknownType(0x99)),
        ),
    ];
    for (i, (ch, bytes, want)) in cases.into_iter().enumerate() {
        let mut r = started_receiver(&m);
        assert_eq!(r.handle_data(ch, &bytes), Err(want), "case {i}");
        assert_eq!(
            r.handle_data(ch, &bytes),
            Err(FileError::Failed),
            "case {i}"
        );
    }
    // An offer above the receiver's manifest limit is refused from its header.
    let config = ReceiverConfig {
        max_manifest_len: 1 << 20,
        ..ReceiverConfig::default()
    };
    let mut r = Receiver::new(m.transfer_id(), config).unwrap();
    assert_eq!(
        r.handle_data(Channel::Control, &[2, 0xff, 0xff, 0xff]),
        Err(FileError::Message(MessageError::TooLong {
            message: "Offer",
            len: 0xff_ffff,
            max: 1 << 20
        }))
    );
    // Chunks before the offer: nothing was requested.
    let mut r = Receiver::new(m.transfer_id(), ReceiverConfig::default()).unwrap();
    assert_eq!(
        r.handle_data(Channel::Data(0), &header(0, 0, 1024)),
        Err(FileError::UnexpectedChunk { file: 0, index: 0 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_from_a_hostile_sender_give_typed_errors_never_panics(
        started in any::<bool>(),
        pieces in prop::collection::vec((0u16..6, prop::collection::vec(any::<u8>(), 0..300)), 1..8),
    ) {
        let m = small_manifest();
        let mut r = if started {
            started_receiver(&m)
        } else {
            Receiver::new(m.transfer_id(), ReceiverConfig::default()).unwrap()
        };
        for (ch, bytes) in pieces {
            let ch = if ch == 5 { Channel::Control } else { Channel::Data(ch) };
            let _ = r.handle_data(ch, &bytes);
            while r.poll_action().is_some() {}
        }
    }

    #[test]
    fn arbitrary_bytes_from_a_hostile_receiver_give_typed_errors_never_panics(
        serving in any::<bool>(),
        pieces in prop::collection::vec((0u64..4, prop::collection::vec(any::<u8>(), 0..300)), 1..8),
    ) {
        let m = small_manifest();
        let mut s = if serving {
            serving_sender(&m)
        } else {
            Sender::new(m.clone(), SenderConfig::default()).unwrap()
        };
        for (k, bytes) in pieces {
            let _ = s.handle_data(StreamKey(k), &bytes);
            while let Some(a) = s.poll_action() {
                if let SenderAction::ReadChunk { stream, file, index, len, .. } = a {
                    let _ = s.chunk_read(stream, file, index, Bytes::from(vec![0; len as usize]));
                }
            }
        }
    }

    #[test]
    fn well_framed_messages_with_random_fields_give_typed_errors_never_panics(
        ty in 1u8..=6,
        body in prop::collection::vec(any::<u8>(), 0..200),
        to_sender in any::<bool>(),
    ) {
        let m = small_manifest();
        let mut frame = vec![ty];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        if to_sender {
            let mut s = serving_sender(&m);
            let _ = s.handle_data(StreamKey(1), &frame);
        } else {
            let mut r = started_receiver(&m);
            let _ = r.handle_data(Channel::Data(0), &frame);
            let _ = r.handle_data(Channel::Control, &frame);
        }
        let _ = Message::decode(&frame, MAX_MANIFEST_LEN);
        assert!(frame.len() >= HEADER_LEN);
    }
}

// ---------------------------------------------------------------------------------------------
// Compression

/// Text-like bytes that compress well but not absurdly.
#[cfg(feature = "zstd")]
fn text(len: usize) -> Vec<u8> {
    let words = [
        "stream ",
        "packet ",
        "frame ",
        "chunk ",
        "the ",
        "of ",
        "and ",
        "JetStream ",
    ];
    let noise = data(77, len);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[(noise[i % len] % 8) as usize].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[cfg(feature = "zstd")]
#[test]
fn compressible_files_travel_compressed_and_random_ones_raw_both_byte_exact() {
    let mut source = Files::new();
    source.insert("text.txt".into(), text(3 << 20));
    source.insert("random.bin".into(), data(5, 2 << 20));
    let manifest = Arc::new(manifest_for(&source, &[], DEFAULT_CHUNK_SIZE));
    let mut disk = Disk::default();
    let out = transfer(&manifest, &source, &mut disk, Opts::default());
    assert_success(&out, &source, &disk);
    assert_eq!(out.stats.bytes_sent, 5 << 20);
    // The three text chunks are compressed, the two random ones skipped by the sample.
    assert_eq!(out.stats.chunks_compressed, 3);
    assert!(out.progress.bytes_received < (2 << 20) + (3 << 20) / 2);
    assert_eq!(out.progress.bytes_received, out.stats.wire_bytes);
    println!(
        "5 MiB (3 text, 2 random) sent as {} wire bytes",
        out.stats.wire_bytes
    );
}

#[cfg(feature = "zstd")]
#[test]
fn a_receiver_that_does_not_offer_zstd_gets_raw_chunks() {
    let mut source = Files::new();
    source.insert("text.txt".into(), text(100_000));
    let manifest = Arc::new(manifest_for(&source, &[], 16 << 10));
    let mut disk = Disk::default();
    let config = ReceiverConfig {
        accept_zstd: false,
        ..ReceiverConfig::default()
    };
    let out = transfer(
        &manifest,
        &source,
        &mut disk,
        Opts {
            config,
            ..Opts::default()
        },
    );
    assert_success(&out, &source, &disk);
    assert_eq!(out.stats.chunks_compressed, 0);
    assert_eq!(out.progress.bytes_received, 100_000);
}

/// A zstd frame of `len` zero bytes without a content size in its header.
#[cfg(feature = "zstd")]
fn bomb(len: usize) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(19).unwrap();
    c.include_contentsize(false).unwrap();
    c.compress(&vec![0u8; len]).unwrap()
}

#[cfg(feature = "zstd")]
#[test]
fn decompression_bombs_are_refused_by_both_decoders_within_the_chunk_length() {
    // 131,072 zeros in a frame whose window fits a 100,000-byte chunk: only the output cap stops it.
    let b = bomb(131_072);
    assert!(b.len() < 100);
    let want = FileError::Decompression {
        file: 0,
        index: 0,
        reason: "corrupt zstd frame, or it decompresses beyond the chunk's length",
    };
    assert_eq!(
        compress::decompress_chunk(Codec::Zstd, b.clone(), 100_000, 0, 0),
        Err(want)
    );
    assert_eq!(
        compress::ruzstd_decompress(&b, 100_000),
        Err("zstd frame decompresses beyond the chunk's length")
    );
    // A 1 GiB window or a content size above the chunk is refused from the header alone.
    let huge = bomb(4 << 20);
    assert!(matches!(
        compress::decompress_chunk(Codec::Zstd, huge, 1 << 20, 0, 0),
        Err(FileError::Decompression {
            reason: "zstd frame window larger than the chunk",
            ..
        })
    ));
    let sized = zstd::bulk::compress(&[0u8; 5000], 3).unwrap();
    assert!(matches!(
        compress::decompress_chunk(Codec::Zstd, sized, 4000, 0, 0),
        Err(FileError::Decompression {
            reason: "zstd frame declares a size other than the chunk's length",
            ..
        })
    ));
    // Both decoders agree on a good frame.
    let raw = text(200_000);
    let z = zstd::bulk::compress(&raw, 3).unwrap();
    assert_eq!(compress::ruzstd_decompress(&z, 200_000).unwrap(), raw);
    assert_eq!(
        compress::decompress_chunk(Codec::Zstd, z, 200_000, 0, 0).unwrap(),
        raw
    );
    assert!(compress::decompress_chunk(Codec::Zstd, b"garbage!".to_vec(), 1000, 0, 0).is_err());
}

#[cfg(feature = "zstd")]
#[test]
fn a_bomb_from_a_hostile_sender_ends_the_transfer_with_code_compression() {
    let mut source = Files::new();
    source.insert("a".into(), data(9, 100_000));
    let m = Arc::new(manifest_for(&source, &[], 128 << 10));
    let mut r = started_receiver(&m);
    let b = bomb(131_072);
    let mut wire = Message::ChunkHeader(ChunkHeader {
        file: FileId(0),
        index: 0,
        len: b.len() as u32,
        codec: Codec::Zstd,
        dict: None,
    })
    .encode();
    wire.extend_from_slice(&b);
    let got = r.handle_data(Channel::Data(0), &wire);
    assert!(
        matches!(
            got,
            Err(FileError::Decompression {
                file: 0,
                index: 0,
                ..
            })
        ),
        "{got:?}"
    );
    let Some(Action::Send { channel, bytes }) = r.poll_action() else {
        panic!("no error message");
    };
    assert_eq!(channel, Channel::Control);
    let (Message::Error(e), _) = Message::decode(&bytes, 0).unwrap().unwrap() else {
        panic!("not an error");
    };
    assert_eq!(e.code, ErrorCode::COMPRESSION);
    assert_eq!(
        r.handle_data(Channel::Data(0), b"x"),
        Err(FileError::Failed)
    );
    // A "compressed" chunk not shorter than the chunk is refused at its header.
    let mut r = started_receiver(&m);
    let header = Message::ChunkHeader(ChunkHeader {
        file: FileId(0),
        index: 0,
        len: 100_000,
        codec: Codec::Zstd,
        dict: None,
    })
    .encode();
    assert_eq!(
        r.handle_data(Channel::Data(0), &header),
        Err(FileError::UnexpectedChunk { file: 0, index: 0 })
    );
}

/// A hand-made 10-byte zstd frame: no content size, a 128 KiB window, one RLE block of 131,072
/// zero bytes. Decodable by any build, with or without the C library.
fn rle_bomb() -> Vec<u8> {
    let block = 1u32 | (1 << 1) | (131_072 << 3); // last block, RLE, 131,072 repeats
    let mut f = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3];
    f.extend_from_slice(&block.to_le_bytes()[..3]);
    f.push(0);
    f
}

#[test]
fn the_build_s_decoder_refuses_an_rle_bomb_and_decodes_the_same_frame_when_it_fits() {
    let f = rle_bomb();
    assert_eq!(f.len(), 10);
    let got = compress::decompress_chunk(Codec::Zstd, f.clone(), 100_000, 3, 4);
    assert!(
        matches!(
            got,
            Err(FileError::Decompression {
                file: 3,
                index: 4,
                ..
            })
        ),
        "{got:?}"
    );
    assert_eq!(got.unwrap_err().code(), ErrorCode::COMPRESSION);
    assert_eq!(
        compress::ruzstd_decompress(&f, 100_000),
        Err("zstd frame decompresses beyond the chunk's length")
    );
    assert_eq!(
        compress::decompress_chunk(Codec::Zstd, f.clone(), 131_072, 0, 0).unwrap(),
        vec![0u8; 131_072]
    );
    assert_eq!(
        compress::ruzstd_decompress(&f, 131_072).unwrap(),
        vec![0u8; 131_072]
    );
    // A window far above the chunk is refused before decoding.
    let mut wide = f.clone();
    wide[5] = 20 << 3; // 1 GiB window
    assert!(matches!(
        compress::decompress_chunk(Codec::Zstd, wide, 131_072, 0, 0),
        Err(FileError::Decompression {
            reason: "zstd frame window larger than the chunk",
            ..
        })
    ));
}

#[test]
fn a_failed_write_of_the_last_file_withdraws_the_queued_done() {
    let mut source = Files::new();
    let bytes = data(9, 700);
    source.insert("only".into(), bytes.clone());
    let m = manifest_for(&source, &[], 1024);
    let mut r = started_receiver(&m);
    let mut wire = Message::ChunkHeader(ChunkHeader {
        file: FileId(0),
        index: 0,
        len: 700,
        codec: Codec::Raw,
        dict: None,
    })
    .encode();
    wire.extend_from_slice(&bytes);
    r.handle_data(Channel::Data(0), &wire).unwrap();
    assert!(matches!(r.poll_action(), Some(Action::WriteChunk { .. })));
    assert!(matches!(
        r.poll_action(),
        Some(Action::FileComplete { file: FileId(0) })
    ));
    assert!(r.is_finished());
    // The caller could not rename the file into place: no Done may leave.
    r.write_failed(FileId(0), "only: no space left on device");
    assert!(!r.is_finished());
    assert!(matches!(r.error(), Some(FileError::WriteFailed { .. })));
    let mut sent = Vec::new();
    while let Some(a) = r.poll_action() {
        match a {
            Action::Send { channel, bytes } => {
                assert_eq!(channel, Channel::Control);
                sent.push(
                    Message::decode(&bytes, MAX_MANIFEST_LEN)
                        .unwrap()
                        .unwrap()
                        .0,
                );
            }
            Action::Finished => panic!("Finished after a failed write"),
            _ => {}
        }
    }
    assert_eq!(sent.len(), 1, "{sent:?}");
    match &sent[0] {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::WRITE_FAILED);
            assert!(e.reason.contains("no space left on device"), "{}", e.reason);
        }
        other => panic!("{other:?}"),
    }
    // Once Done has been taken, a late failure changes nothing.
    let mut r = started_receiver(&m);
    r.handle_data(Channel::Data(0), &wire).unwrap();
    while r.poll_action().is_some() {}
    r.write_failed(FileId(0), "too late");
    assert!(r.is_finished());
    assert!(r.poll_action().is_none());
}

/// Small JSON documents of one shape (an API's records, say), `n` of them from `seed`.
#[cfg(feature = "zstd")]
fn json_docs(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let noise = data(seed, n * 16);
    (0..n)
        .map(|i| {
            let r = &noise[i * 16..i * 16 + 16];
            format!(
                "{{\"id\":{},\"user\":{{\"name\":\"user-{}\",\"email\":\"user{}@example.org\",\"verified\":{}}},\"status\":\"{}\",\"tags\":[\"alpha\",\"beta\"],\"score\":{}.{},\"created_at\":\"2026-0{}-1{}T0{}:3{}:00Z\",\"settings\":{{\"theme\":\"{}\",\"notifications\":true,\"language\":\"en-US\"}}}}\n",
                u32::from_le_bytes([r[0], r[1], r[2], 0]),
                r[3],
                r[4],
                r[5].is_multiple_of(2),
                ["active", "suspended", "pending"][usize::from(r[6] % 3)],
                r[7],
                r[8] % 100,
                1 + r[9] % 9,
                r[10] % 10,
                r[11] % 10,
                r[12] % 10,
                ["dark", "light"][usize::from(r[13] % 2)],
            )
            .into_bytes()
        })
        .collect()
}

#[cfg(feature = "zstd")]
#[test]
fn many_small_similar_json_files_compress_far_better_with_a_trained_dictionary() {
    let training = json_docs(100, 2000);
    let dict = Dictionary::train(&training, 16 << 10).unwrap();
    println!("dictionary {} ({} bytes)", dict.id(), dict.bytes().len());
    let mut source = Files::new();
    for (i, doc) in json_docs(200, 500).into_iter().enumerate() {
        source.insert(format!("records/{i:04}.json"), doc);
    }
    let raw: u64 = source.values().map(|v| v.len() as u64).sum();
    let manifest = Arc::new(manifest_for(&source, &[], DEFAULT_CHUNK_SIZE));
    let sender = SenderConfig {
        dictionaries: vec![dict.clone()],
        ..SenderConfig::default()
    };
    let run = |receiver_dicts: Vec<Dictionary>| {
        let mut disk = Disk::default();
        let out = transfer(
            &manifest,
            &source,
            &mut disk,
            Opts {
                config: ReceiverConfig {
                    dictionaries: receiver_dicts,
                    ..ReceiverConfig::default()
                },
                sender: Some(sender.clone()),
                ..Opts::default()
            },
        );
        assert_success(&out, &source, &disk);
        out
    };
    let plain = run(Vec::new());
    let with_dict = run(vec![dict.clone()]);
    let ratio = |o: &Outcome| raw as f64 / o.stats.wire_bytes as f64;
    println!(
        "500 JSON files, {raw} bytes: zstd 3 without a dictionary {} wire bytes (ratio {:.2}), \
         with the trained dictionary {} wire bytes (ratio {:.2})",
        plain.stats.wire_bytes,
        ratio(&plain),
        with_dict.stats.wire_bytes,
        ratio(&with_dict)
    );
    assert!(ratio(&with_dict) > 2.0 * ratio(&plain));
    // The pure-Rust decoder reads the same frames with the same dictionary.
    let doc = &json_docs(300, 1)[0];
    let frame = compress_chunk_with_dict(&Compression::zstd(3), &dict, doc).unwrap();
    let got = super::compress::ruzstd_decompress_dict(&frame, doc.len(), &dict).unwrap();
    assert_eq!(&got, doc);
    // Decoding is bounded like the plain path: a frame claiming more than the chunk is refused.
    assert!(decompress_chunk_with_dict(&frame, &dict, doc.len() as u32 - 1, 0, 0).is_err());
    assert!(super::compress::ruzstd_decompress_dict(&frame, doc.len() - 1, &dict).is_err());
    // Another dictionary (another zstd id in the frame) is refused before decoding.
    let other = Dictionary::train(&json_docs(999, 2000), 8 << 10).unwrap();
    assert!(decompress_chunk_with_dict(&frame, &other, doc.len() as u32, 0, 0).is_err());
    // Not a dictionary at all.
    assert_eq!(
        Dictionary::new(b"hello".to_vec()),
        Err(DictError::NotADictionary)
    );
}
