//! File transfer over real loopback sockets: a directory of 1,000 small files, a large file,
//! resume after a transfer stopped at half, a corrupted chunk on disk, a decompression bomb from
//! a hostile sender, a wrong transfer id, a source file that changed, a close that races the
//! last message, a failure told only by the close, a full disk and permission errors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use jsp_tokio::file::{
    receive_files, send_files, Cancel, FileSource, FileTransferError, ReceiveOptions,
    ReceiveSummary, SendOptions, SendSummary, TransferProgress, CLOSE_FAILED,
};
use jsp_tokio::jsp_core::config::RateLimit;
use jsp_tokio::jsp_core::file::{
    ChunkHeader, Codec, ErrorCode, ErrorMessage, Fetch, FileError, FileId, Manifest, Message,
    TransferId, DEFAULT_CHUNK_SIZE,
};
use jsp_tokio::{
    generate_identity, server_config, Connection, Endpoint, EndpointConfig, PublicIdentity,
};
use tokio::sync::watch;

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

struct Pair {
    server: Endpoint,
    key: PublicIdentity,
    client: Endpoint,
}

fn pair() -> Pair {
    let identity = Arc::new(generate_identity().unwrap());
    let server = Endpoint::server(
        server_config(identity.clone()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    Pair {
        server,
        key: identity.public(),
        client,
    }
}

/// A pair whose server takes many handshakes from one address in a row (the default
/// per-source limit is 20/s with a burst of 5).
fn pair_for_many() -> Pair {
    let identity = Arc::new(generate_identity().unwrap());
    let config = EndpointConfig {
        per_source_handshake_rate: RateLimit {
            rate: 1000.0,
            burst: 1000.0,
        },
        ..EndpointConfig::default()
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = Endpoint::new(
        config,
        Some(server_config(identity.clone()).unwrap()),
        socket,
    )
    .unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    Pair {
        server,
        key: identity.public(),
        client,
    }
}

impl Pair {
    async fn connect(&self) -> (Connection, Connection) {
        let connecting = self
            .client
            .connect(self.server.local_addr(), self.key.clone())
            .unwrap();
        let (c, s) = tokio::join!(connecting, async {
            self.server.accept().await.unwrap().await
        });
        (c.unwrap(), s.unwrap())
    }

    /// One transfer: the sender serves `source` on one connection, the receiver fetches `id`.
    async fn transfer(
        &self,
        source: &FileSource,
        id: TransferId,
        out: &Path,
        options: ReceiveOptions,
        cancel: Cancel,
        progress: Option<watch::Sender<TransferProgress>>,
    ) -> (
        Result<ReceiveSummary, FileTransferError>,
        Result<SendSummary, FileTransferError>,
    ) {
        let (c, s) = self.connect().await;
        let sender = spawn_sender(s, source);
        let got = receive_files(&c, id, out, options, cancel, progress).await;
        let sent = sender.await.unwrap();
        (got, sent)
    }
}

fn assert_same_tree(a: &Path, b: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let other = b.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            let (f, n) = assert_same_tree(&entry.path(), &other);
            files += f;
            bytes += n;
        } else {
            let want = std::fs::read(entry.path()).unwrap();
            let got = std::fs::read(&other).unwrap_or_else(|e| panic!("{}: {e}", other.display()));
            assert!(want == got, "{} differs", other.display());
            files += 1;
            bytes += want.len() as u64;
        }
    }
    (files, bytes)
}

fn no_part_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|e| {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        !name.contains(".jsp-part-") && (!e.path().is_dir() || no_part_files(&e.path()))
    })
}

fn rate(bytes: u64, secs: f64) -> String {
    format!("{:.1} MiB/s", bytes as f64 / secs / (1 << 20) as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_1000_small_files_arrives_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    for i in 0..1000u64 {
        let dir = src.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i:04}.bin")),
            data(i, (i * 37 % 4096) as usize),
        )
        .unwrap();
    }
    std::fs::create_dir_all(src.join("empty")).unwrap();
    let source = FileSource::scan(vec![src.clone()], 0).await.unwrap();
    let out = tmp.path().join("out");
    let p = pair();
    let start = Instant::now();
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap();
    sent.unwrap();
    let (files, bytes) = assert_same_tree(&src, &out.join("tree"));
    assert_eq!(files, 1000);
    assert_eq!(got.files, 1000);
    assert_eq!(got.bytes_total, bytes);
    assert_eq!(got.root, source.root());
    assert!(out.join("tree/empty").is_dir());
    assert!(no_part_files(&out));
    println!(
        "1000 files, {bytes} bytes in {:.2} s, root {}",
        start.elapsed().as_secs_f64(),
        got.root
    );
}

fn free_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(path)
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()))
        .map_or(0, |k| k * 1024)
}

/// Writes `len` pseudo-random bytes to `path` in 1 MiB pieces.
fn write_big(path: &Path, len: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut left = len;
    let mut i = 0;
    while left > 0 {
        let n = left.min(1 << 20);
        f.write_all(&data(i, n as usize)).unwrap();
        left -= n;
        i += 1;
    }
    f.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_arrives_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let big =
        std::env::var("JSP_BIG_TESTS").is_ok_and(|v| v == "1") || free_bytes(tmp.path()) > 8 << 30;
    let len: u64 = if big { 1 << 30 } else { 64 << 20 };
    println!(
        "large-file test: {} MiB ({})",
        len >> 20,
        if big {
            "1 GiB: JSP_BIG_TESTS=1 or more than 8 GiB free"
        } else {
            "64 MiB: set JSP_BIG_TESTS=1 for 1 GiB"
        }
    );
    let path = tmp.path().join("big.bin");
    write_big(&path, len);
    let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
    let out = tmp.path().join("out");
    let p = pair();
    let start = Instant::now();
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap();
    let sent = sent.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got.bytes_total, len);
    assert_eq!(sent.bytes_sent, len);
    assert_same_tree(&tmp.path().join("out"), tmp.path());
    assert!(no_part_files(&out));
    println!(
        "{} MiB in {secs:.2} s: {} (wire {} bytes, {} chunks compressed)",
        len >> 20,
        rate(len, secs),
        got.wire_bytes,
        sent.chunks_compressed
    );
}

/// Receives until `fraction` of the bytes are verified, then stops as if cancelled; returns the
/// verified bytes at the stop.
async fn receive_until(p: &Pair, source: &FileSource, out: &Path, fraction: f64) -> u64 {
    let (tx, rx) = watch::channel(TransferProgress::default());
    let total = source.manifest().total_bytes();
    let options = ReceiveOptions {
        stop_after_bytes: Some((total as f64 * fraction) as u64),
        ..ReceiveOptions::default()
    };
    let (got, sent) = p
        .transfer(
            source,
            source.transfer_id(),
            out,
            options,
            Cancel::new(),
            Some(tx),
        )
        .await;
    assert!(matches!(got, Err(FileTransferError::Cancelled)), "{got:?}");
    assert!(sent.is_err(), "the sender saw the cancel: {sent:?}");
    let done = rx.borrow().bytes_done;
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_stopped_at_half_resumes_with_at_most_the_rest_plus_one_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("resume.bin");
    let len = 48u64 << 20;
    write_big(&path, len);
    let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
    let out = tmp.path().join("out");
    let p = pair();
    let done_at_stop = receive_until(&p, &source, &out, 0.5).await;
    assert!(
        !out.join("resume.bin").exists(),
        "no file under the final name yet"
    );
    assert!(done_at_stop >= len / 2 && done_at_stop < len);
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap();
    sent.unwrap();
    assert_eq!(
        std::fs::read(out.join("resume.bin")).unwrap(),
        std::fs::read(&path).unwrap()
    );
    let chunk = u64::from(DEFAULT_CHUNK_SIZE);
    println!(
        "stopped at {} of {} bytes; the restart kept {} and moved {} (bound {})",
        done_at_stop,
        len,
        got.bytes_resumed,
        got.wire_bytes,
        len - done_at_stop + chunk
    );
    assert!(got.wire_bytes <= len - done_at_stop + chunk);
    assert_eq!(got.wire_bytes + got.bytes_resumed, len);
    assert!(no_part_files(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_on_disk_is_detected_and_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.bin");
    let len = 24u64 << 20;
    write_big(&path, len);
    let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
    let out = tmp.path().join("out");
    let p = pair();
    receive_until(&p, &source, &out, 0.5).await;
    let part = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".jsp-part-"))
        .expect("a temporary file");
    // Flip one byte in chunk 1 of the temporary file.
    let mut bytes = std::fs::read(&part).unwrap();
    let on_disk = bytes.len() as u64;
    let at = (DEFAULT_CHUNK_SIZE + 12_345) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(&part, &bytes).unwrap();
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap();
    sent.unwrap();
    assert_eq!(
        std::fs::read(out.join("c.bin")).unwrap(),
        std::fs::read(&path).unwrap()
    );
    println!(
        "{on_disk} bytes on disk with one flipped byte: kept {}, fetched {}",
        got.bytes_resumed, got.wire_bytes
    );
    // The corrupted chunk was not kept: at most the chunks fully on disk minus that one.
    assert!(got.bytes_resumed <= (on_disk / u64::from(DEFAULT_CHUNK_SIZE) - 1) << 20);
    assert_eq!(got.wire_bytes + got.bytes_resumed, len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_transfer_id_is_refused_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.bin");
    std::fs::write(&path, data(1, 5000)).unwrap();
    let source = FileSource::scan(vec![path], 0).await.unwrap();
    let p = pair();
    let mut wrong = source.transfer_id();
    wrong.0[0] ^= 1;
    let (got, sent) = p
        .transfer(
            &source,
            wrong,
            &tmp.path().join("out"),
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap_err();
    println!("receiver: {got}\nsender: {}", sent.as_ref().unwrap_err());
    assert!(
        matches!(got, FileTransferError::Protocol(FileError::Peer { code, .. }) if code.0 == 2),
        "{got:?}"
    );
    assert!(matches!(
        sent,
        Err(FileTransferError::Protocol(FileError::UnknownTransfer))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_file_changed_during_the_transfer_fails_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("moving.bin");
    std::fs::write(&path, data(3, 3 << 20)).unwrap();
    let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
    std::fs::write(&path, data(4, 3 << 20)).unwrap();
    let p = pair();
    let out = tmp.path().join("out");
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions::default(),
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap_err();
    let sent = sent.unwrap_err();
    println!("receiver: {got}\nsender: {sent}");
    assert!(got.to_string().contains("changed"), "{got}");
    assert!(matches!(
        sent,
        FileTransferError::Protocol(FileError::SourceChanged { .. })
    ));
    assert!(!out.join("moving.bin").exists());
}

/// A hostile sender that answers the first request with a zstd bomb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_refused_and_ends_the_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bomb.bin");
    std::fs::write(&path, data(5, 100_000)).unwrap();
    let source = FileSource::scan(vec![path], 128 << 10).await.unwrap();
    let manifest = source.manifest().clone();
    let p = pair();
    let (c, s) = p.connect().await;
    let hostile = tokio::spawn(async move {
        let (mut ctl_send, mut ctl_recv) = s.accept_bi().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = ctl_recv.read(&mut buf).await.unwrap();
        ctl_send
            .write_all(&Message::Offer(Box::new(Manifest::clone(&manifest))).encode())
            .await
            .unwrap();
        let (mut send, mut recv) = s.accept_bi().await.unwrap();
        let _ = recv.read(&mut buf).await.unwrap();
        let mut z = zstd::bulk::Compressor::new(19).unwrap();
        z.include_contentsize(false).unwrap();
        // 128 KiB of zeros claimed as the 100,000-byte chunk.
        let bomb = z.compress(&vec![0u8; 131_072]).unwrap();
        let mut wire = Message::ChunkHeader(ChunkHeader {
            file: FileId(0),
            index: 0,
            len: bomb.len() as u32,
            codec: Codec::Zstd,
            dict: None,
        })
        .encode();
        wire.extend_from_slice(&bomb);
        send.write_all(&wire).await.unwrap();
        // What the receiver says back on the control stream.
        let mut reply = Vec::new();
        while let Ok(Some(n)) = ctl_recv.read(&mut buf).await {
            reply.extend_from_slice(&buf[..n]);
        }
        reply
    });
    let got = receive_default(&c, &source, &tmp.path().join("out"))
        .await
        .unwrap_err();
    println!("receiver: {got}");
    assert!(
        matches!(
            got,
            FileTransferError::Protocol(FileError::Decompression {
                file: 0,
                index: 0,
                ..
            })
        ),
        "{got:?}"
    );
    let reply = hostile.await.unwrap();
    let (Message::Error(e), _) = Message::decode(&reply, 0).unwrap().unwrap() else {
        panic!("no Error message: {reply:?}");
    };
    assert_eq!(e.code.0, 10, "COMPRESSION");
    assert!(!tmp.path().join("out/bomb.bin").exists());
}

/// A hand-written receiver's first steps on `c`: `Fetch` for `id` on a new control stream, then
/// the `Offer` read whole. Returns the control stream's send half.
async fn fetch_offer(c: &Connection, id: TransferId) -> jsp_tokio::SendStream {
    let (mut send, mut recv) = c.open_bi().await.unwrap();
    let fetch = Message::Fetch(Fetch {
        id,
        codecs: 0,
        dicts: Vec::new(),
    });
    send.write_all(&fetch.encode()).await.unwrap();
    let mut got = Vec::new();
    loop {
        if let Some((Message::Offer(_), _)) = Message::decode(&got, 1 << 24).unwrap() {
            return send;
        }
        let piece = recv
            .read_chunk(usize::MAX)
            .await
            .unwrap()
            .expect("no Offer");
        got.extend_from_slice(&piece);
    }
}

/// What a peer sent just before closing the connection is read before the close is reported:
/// a `Done` (as `receive_files` closes once its `Done` is acknowledged), or an `Error` from
/// either side while the close itself carries no reason (as an older peer's does). Each is
/// written, acknowledged, and the connection closed at once, so the close reaches the other
/// side's tasks together with the message it has not yet read. Deciding on the close alone
/// (without draining the stream readers first) failed 4 of 20 runs of this test under CPU
/// load, and the full-disk test below 3 of 100 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_arrived_before_the_close_is_read_before_the_close_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("one.bin");
    std::fs::write(&path, data(3, 1000)).unwrap();
    let source = FileSource::scan(vec![path], 0).await.unwrap();
    let p = pair_for_many();
    let rounds = 40;
    let error = |code, reason: &str| {
        Message::Error(ErrorMessage {
            code,
            reason: reason.into(),
        })
        .encode()
    };
    for round in 0..rounds {
        let (c, s) = p.connect().await;
        let sender = spawn_sender(s, &source);
        let mut ctl = fetch_offer(&c, source.transfer_id()).await;
        let last = if round % 2 == 0 {
            Message::Done.encode()
        } else {
            error(ErrorCode::WRITE_FAILED, "one.bin: no space left on device")
        };
        ctl.write_all(&last).await.unwrap();
        ctl.finish().unwrap();
        ctl.finished().await.unwrap();
        c.close(CLOSE_FAILED, b"file transfer over");
        let sent = sender.await.unwrap();
        if round % 2 == 0 {
            assert!(sent.is_ok(), "the sender missed the Done: {sent:?}");
        } else {
            assert_eq!(
                sent.as_ref()
                    .map_err(FileTransferError::kind_name)
                    .unwrap_err(),
                "peer_write_failed",
                "the sender missed the Error: {sent:?}"
            );
        }
    }
    for _ in 0..rounds {
        let (c, s) = p.connect().await;
        let told = error(ErrorCode::READ_FAILED, "one.bin: permission denied");
        let hostile = tokio::spawn(async move {
            let (mut send, mut recv) = s.accept_bi().await.unwrap();
            let _ = recv.read_chunk(usize::MAX).await.unwrap();
            send.write_all(&told).await.unwrap();
            send.finish().unwrap();
            send.finished().await.unwrap();
            s.close(CLOSE_FAILED, b"file transfer failed");
            s.closed().await;
        });
        let got = receive_default(&c, &source, &tmp.path().join("out")).await;
        hostile.await.unwrap();
        assert_eq!(
            got.as_ref()
                .map_err(FileTransferError::kind_name)
                .unwrap_err(),
            "peer_read_failed",
            "the receiver missed the Error: {got:?}"
        );
    }
    println!(
        "{rounds} Done/Error messages to a sender and {rounds} Error messages to a receiver, each \
         followed at once by a close: every one was read before the close"
    );
}

/// A failure report that only travels in the close (the close overtook the `Error` message, or
/// no stream was open): both sides still learn the code and the reason. A close from an older
/// peer, whose reason carries no error, stays a connection error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_told_only_by_the_close_still_reaches_the_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("one.bin");
    std::fs::write(&path, data(4, 1000)).unwrap();
    let source = FileSource::scan(vec![path], 0).await.unwrap();
    let p = pair();
    let report = ErrorMessage {
        code: ErrorCode::WRITE_FAILED,
        reason: "cannot write file 0: one.bin: no space left on device".into(),
    };

    // A receiver that fails without an `Error` message: the sender reads the close.
    let (c, s) = p.connect().await;
    let sender = spawn_sender(s, &source);
    let _ctl = fetch_offer(&c, source.transfer_id()).await;
    c.close(CLOSE_FAILED, &report.to_close_reason());
    let sent = sender.await.unwrap().unwrap_err();
    println!("sender told by the close only: {sent}");
    match &sent {
        FileTransferError::Protocol(FileError::Peer { code, reason }) => {
            assert_eq!(*code, ErrorCode::WRITE_FAILED);
            assert_eq!(reason, &report.reason);
        }
        other => panic!("the sender was not told: {other:?}"),
    }
    assert_eq!(sent.kind_name(), "peer_write_failed");

    // A sender that fails before any stream answer: the receiver reads the close.
    let (c, s) = p.connect().await;
    let gone = ErrorMessage {
        code: ErrorCode::READ_FAILED,
        reason: "cannot read file 0: one.bin: permission denied".into(),
    };
    let reason = gone.to_close_reason();
    let hostile = tokio::spawn(async move {
        let (_send, mut recv) = s.accept_bi().await.unwrap();
        let _ = recv.read_chunk(usize::MAX).await.unwrap();
        s.close(CLOSE_FAILED, &reason);
        s.closed().await;
    });
    let got = receive_default(&c, &source, &tmp.path().join("out"))
        .await
        .unwrap_err();
    hostile.await.unwrap();
    println!("receiver told by the close only: {got}");
    assert_eq!(got.kind_name(), "peer_read_failed");
    assert!(got.to_string().contains(&gone.reason), "{got}");

    // An older peer's close: no error in the reason, the connection error is kept.
    let (c, s) = p.connect().await;
    let sender = spawn_sender(s, &source);
    let _ctl = fetch_offer(&c, source.transfer_id()).await;
    c.close(CLOSE_FAILED, b"file transfer over");
    let sent = sender.await.unwrap().unwrap_err();
    println!("sender after an older peer's close: {sent}");
    assert_eq!(sent.kind_name(), "connection");
}

/// Runs `send_files` with its defaults on `s` for `source`, on a task of its own.
fn spawn_sender(
    s: Connection,
    source: &FileSource,
) -> tokio::task::JoinHandle<Result<SendSummary, FileTransferError>> {
    let src = source.clone();
    tokio::spawn(
        async move { send_files(&s, &src, SendOptions::default(), Cancel::new(), None).await },
    )
}

/// Runs `receive_files` with its defaults on `c` for `source`'s transfer into `out`.
async fn receive_default(
    c: &Connection,
    source: &FileSource,
    out: &Path,
) -> Result<ReceiveSummary, FileTransferError> {
    receive_files(
        c,
        source.transfer_id(),
        out,
        ReceiveOptions::default(),
        Cancel::new(),
        None,
    )
    .await
}

/// The environment variable that tells a re-run of this test binary that it is the child.
const CHILD_ENV: &str = "JSP_FILE_TEST_CHILD";

/// Runs test `name` again in a child process started by `wrapper` (a namespace or uid change),
/// with [`CHILD_ENV`] set, and asserts that it passed; prints what it printed. A wrapper that
/// cannot run fails the test, unless `JSP_SKIP_NS_TESTS=1` says to skip it (and it says so).
fn rerun_in(name: &str, wrapper: &[&str]) {
    if std::env::var_os("JSP_SKIP_NS_TESTS").is_some() {
        println!("SKIPPED {name}: JSP_SKIP_NS_TESTS is set");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let (prog, args) = wrapper.split_first().unwrap();
    let out = std::process::Command::new(prog)
        .args(args)
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {prog}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- child ({}) ---\n{stdout}{stderr}", wrapper.join(" "));
    assert!(out.status.success(), "the child failed: {}", out.status);
    assert!(stdout.contains("1 passed"), "the child ran no test");
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

fn run_async<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn sh(cmd: &str, args: &[&str]) {
    let st = std::process::Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}: {st}");
}

fn part_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".jsp-part-"))
        .collect()
}

/// A receiver whose disk fills up: a 2 MiB tmpfs, mounted in a private mount namespace, for an
/// 8 MiB file. The write fails with ENOSPC for real; the error names the path and says "no
/// space left", the sender is told (WRITE_FAILED with the same words), the temporary file is
/// kept, and once the file system grows the same receive resumes from what was verified.
#[test]
fn a_full_disk_fails_clearly_tells_the_sender_and_resumes_after_space_is_freed() {
    const NAME: &str =
        "a_full_disk_fails_clearly_tells_the_sender_and_resumes_after_space_is_freed";
    if !is_child(NAME) {
        return rerun_in(NAME, &["unshare", "-rm", "--propagation", "private"]);
    }
    run_async(async {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("big.bin");
        std::fs::write(&path, data(11, 8 << 20)).unwrap();
        let out = tmp.path().join("small-disk");
        std::fs::create_dir_all(&out).unwrap();
        let out_s = out.to_str().unwrap();
        sh("mount", &["-t", "tmpfs", "-o", "size=2m", "tmpfs", out_s]);
        let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
        let p = pair();
        let (got, sent) = p
            .transfer(
                &source,
                source.transfer_id(),
                &out,
                ReceiveOptions::default(),
                Cancel::new(),
                None,
            )
            .await;
        let got = got.unwrap_err();
        let sent = sent.unwrap_err();
        println!("receiver: {got}\nsender: {sent}");
        let msg = got.to_string();
        assert!(msg.contains("no space left on device"), "{msg}");
        assert!(msg.contains(out_s), "{msg}");
        assert_eq!(got.kind_name(), "no_space");
        match &got {
            FileTransferError::Write {
                kind,
                partial: Some(partial),
                ..
            } => {
                assert_eq!(*kind, std::io::ErrorKind::StorageFull);
                assert!(partial.exists());
            }
            other => panic!("not a write error with a kept part: {other:?}"),
        }
        match &sent {
            FileTransferError::Protocol(FileError::Peer { code, reason }) => {
                assert_eq!(code.name(), Some("WRITE_FAILED"));
                assert!(
                    reason.contains("big.bin: no space left on device"),
                    "{reason}"
                );
            }
            other => panic!("the sender was not told: {other:?}"),
        }
        assert!(!out.join("big.bin").exists());
        let parts = part_files(&out);
        assert_eq!(parts.len(), 1, "{parts:?}");
        let kept = std::fs::metadata(&parts[0]).unwrap().len();
        println!("kept after ENOSPC: {kept} bytes in {}", parts[0].display());

        // More space (the tmpfs grows in place), the same receive again: it resumes.
        sh("mount", &["-o", "remount,size=32m", out_s]);
        let (got, sent) = p
            .transfer(
                &source,
                source.transfer_id(),
                &out,
                ReceiveOptions::default(),
                Cancel::new(),
                None,
            )
            .await;
        let got = got.unwrap();
        sent.unwrap();
        println!(
            "resumed: {} of {} bytes kept, {} on the wire",
            got.bytes_resumed, got.bytes_total, got.wire_bytes
        );
        assert!(got.bytes_resumed > 0);
        assert!(got.wire_bytes <= got.bytes_total - got.bytes_resumed);
        assert_eq!(
            std::fs::read(out.join("big.bin")).unwrap(),
            std::fs::read(&path).unwrap()
        );
        assert!(no_part_files(&out));
        sh("umount", &[out_s]);
    });
}

/// Permission problems, checked as an unprivileged uid (root ignores permission bits, so as
/// root the test re-runs itself under `setpriv` as uid/gid 65534): a source file that cannot be
/// read at scan time, one that becomes unreadable after the offer (the receiver is told
/// READ_FAILED with the path), and an output directory the receiver may not write to (the
/// sender is told WRITE_FAILED).
#[test]
fn unreadable_sources_and_unwritable_output_dirs_fail_clearly_on_both_sides() {
    const NAME: &str = "unreadable_sources_and_unwritable_output_dirs_fail_clearly_on_both_sides";
    if !is_child(NAME) && is_root() {
        return rerun_in(
            NAME,
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
        );
    }
    assert!(!is_root(), "must run unprivileged");
    run_async(async {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secret.bin");
        std::fs::write(&path, data(12, 3 << 20)).unwrap();
        let mode = |p: &Path, m: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };

        // Unreadable at scan time.
        mode(&path, 0o000);
        let e = FileSource::scan(vec![path.clone()], 0).await.unwrap_err();
        println!("scan: {e}");
        assert!(e.to_string().contains("secret.bin"), "{e}");
        assert!(e.to_string().contains("Permission denied"), "{e}");
        assert_eq!(e.kind_name(), "permission_denied");

        // Readable when offered, unreadable when the sender reads it.
        mode(&path, 0o600);
        let source = FileSource::scan(vec![path.clone()], 0).await.unwrap();
        mode(&path, 0o000);
        let p = pair();
        let out = tmp.path().join("out");
        let (got, sent) = p
            .transfer(
                &source,
                source.transfer_id(),
                &out,
                ReceiveOptions::default(),
                Cancel::new(),
                None,
            )
            .await;
        let (got, sent) = (got.unwrap_err(), sent.unwrap_err());
        println!("receiver: {got}\nsender: {sent}");
        assert!(matches!(
            sent,
            FileTransferError::Protocol(FileError::ReadFailed { .. })
        ));
        assert!(sent.to_string().contains("permission denied"), "{sent}");
        assert_eq!(got.kind_name(), "peer_read_failed");
        assert!(
            got.to_string().contains("secret.bin: permission denied"),
            "{got}"
        );

        // An output directory without write permission.
        mode(&path, 0o600);
        let locked = tmp.path().join("locked");
        std::fs::create_dir_all(&locked).unwrap();
        mode(&locked, 0o555);
        let (got, sent) = p
            .transfer(
                &source,
                source.transfer_id(),
                &locked,
                ReceiveOptions::default(),
                Cancel::new(),
                None,
            )
            .await;
        let (got, sent) = (got.unwrap_err(), sent.unwrap_err());
        println!("receiver: {got}\nsender: {sent}");
        assert_eq!(got.kind_name(), "permission_denied");
        assert!(got.to_string().contains("locked"), "{got}");
        assert!(got.to_string().contains("permission denied"), "{got}");
        match &sent {
            FileTransferError::Protocol(FileError::Peer { code, reason }) => {
                assert_eq!(code.name(), Some("WRITE_FAILED"));
                assert!(reason.contains("secret.bin: permission denied"), "{reason}");
            }
            other => panic!("the sender was not told: {other:?}"),
        }
        assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
        mode(&locked, 0o755);
    });
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The receiver holds an older version of the file (the new one has 1,000 bytes inserted in
/// the middle): with overwriting allowed, resume finds the new file's chunks in the old one by
/// their rolling checksums (`jsp_core::delta`), also those shifted by the insertion, so only
/// the chunk holding the insertion and the short last chunk travel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_on_disk_means_only_the_changed_region_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let old = data(21, 8 << 20);
    let mut new = old.clone();
    let insert_at = 3_000_000;
    new.splice(insert_at..insert_at, data(22, 1000));
    let src_dir = tmp.path().join("src");
    std::fs::create_dir_all(&src_dir).unwrap();
    let path = src_dir.join("state.db");
    std::fs::write(&path, &new).unwrap();
    let chunk: u32 = 64 << 10;
    let source = FileSource::scan(vec![path.clone()], chunk).await.unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("state.db"), &old).unwrap();
    let p = pair();
    let (got, sent) = p
        .transfer(
            &source,
            source.transfer_id(),
            &out,
            ReceiveOptions {
                overwrite: true,
                ..ReceiveOptions::default()
            },
            Cancel::new(),
            None,
        )
        .await;
    let got = got.unwrap();
    sent.unwrap();
    assert!(std::fs::read(out.join("state.db")).unwrap() == new);
    let moved = got.bytes_total - got.bytes_resumed;
    println!(
        "new version {} bytes (1000 inserted at {insert_at}), chunks of {chunk}: {} found in the \
         old version, {moved} bytes moved ({} on the wire)",
        got.bytes_total, got.bytes_resumed, got.wire_bytes
    );
    // The chunk holding the insertion and the short last chunk (its content shifted too).
    let last = got.bytes_total % u64::from(chunk);
    assert!(moved <= u64::from(chunk) * 2 + last, "{moved}");
    assert_eq!(got.wire_bytes, moved);
    assert!(no_part_files(&out));
}
