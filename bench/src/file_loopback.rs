//! One file over loopback: `jsp_tokio::file` (what `jsp send` / `jsp recv` run) against a plain
//! quinn stream copy of the same file, disk to disk.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jsp_tokio::file::{receive_files, send_files, Cancel, FileSource, ReceiveOptions, SendOptions};
use jsp_tokio::jsp_core::file::DEFAULT_CHUNK_SIZE;
use tokio::sync::mpsc;

use crate::{jsp_stack, quinn_stack, BenchResult};

/// Bytes per read and write of the quinn copy (the same as JSP's chunk).
const BLOCK: usize = DEFAULT_CHUNK_SIZE as usize;

/// What one JSP transfer took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JspTimes {
    /// `FileSource::scan` of the source (reading and hashing every chunk): what `jsp send` does
    /// before it prints the ticket.
    pub(crate) scan: Duration,
    /// From `connect` until `receive_files` returned: handshake, transfer, per-chunk
    /// verification, writes, fsync and rename.
    pub(crate) transfer: Duration,
}

/// Writes `len` bytes of deterministic pseudo-random (incompressible) data to `path`.
pub(crate) fn make_source(path: &Path, len: u64, seed: u64) -> BenchResult<()> {
    let mut f = std::io::BufWriter::with_capacity(BLOCK, File::create(path)?);
    let mut state = seed ^ 0xD1B5_4A32_D192_ED03;
    let mut block = vec![0u8; BLOCK];
    let mut left = len;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let n = left.min(BLOCK as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// BLAKE3 of a whole file (read in 1 MiB blocks), and its length.
pub(crate) fn hash_file(path: &Path) -> BenchResult<(blake3::Hash, u64)> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((h.finalize(), len))
}

/// Sends `src` with `jsp_tokio::file` into `out_dir` (which must not hold the file yet), with
/// `jsp send` / `jsp recv`'s default settings: zstd level 3, adaptive (random data is sampled and
/// sent raw); four lanes with four chunks ahead each; resume on.
pub(crate) async fn jsp_once(src: &Path, out_dir: &Path) -> BenchResult<JspTimes> {
    let t = Instant::now();
    let source = FileSource::scan(vec![src.to_path_buf()], 0).await?;
    let scan = t.elapsed();
    let (server, client, config) = jsp_stack::loopback_endpoints()?;
    let addr = server.local_addr();
    let start = Instant::now();
    let serve = {
        let server = server.clone();
        let source = source.clone();
        tokio::spawn(async move {
            let conn = server.accept().await.ok_or("server closed")?.await?;
            let r = send_files(&conn, &source, SendOptions::default(), Cancel::new(), None).await;
            // The receiver closes the connection once it has everything; a send that sees the
            // close before `Done` still counts only if the receive succeeded (checked below).
            Ok::<_, crate::BenchError>(r.is_ok())
        })
    };
    let conn = client.connect_with(config, addr, None)?.await?;
    let got = receive_files(
        &conn,
        source.transfer_id(),
        out_dir,
        ReceiveOptions::default(),
        Cancel::new(),
        None,
    )
    .await?;
    let transfer = start.elapsed();
    let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
    if got.bytes_total != source.manifest().total_bytes() {
        return Err(format!("received {} bytes", got.bytes_total).into());
    }
    drop(conn);
    client.close(0, b"done");
    server.close(0, b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        client.wait_idle().await;
        server.wait_idle().await;
    })
    .await;
    Ok(JspTimes { scan, transfer })
}

/// Copies `src` to `dst` over one quinn unidirectional stream: a reader thread feeds 1 MiB
/// blocks to the stream (`write_chunk`), the server's stream reader hands what arrives to a
/// writer thread, which writes it and fsyncs the file at the end. Disk and network overlap on
/// both sides. Timed from `connect` until the file is written and fsynced; no hashing.
pub(crate) async fn quinn_once(src: &Path, dst: &Path) -> BenchResult<Duration> {
    let (server, client) = quinn_stack::loopback_endpoints()?;
    let addr = server.local_addr()?;
    let start = Instant::now();
    let dst_path: PathBuf = dst.to_path_buf();
    let serve = {
        let server = server.clone();
        tokio::spawn(async move {
            let conn = server.accept().await.ok_or("server closed")?.await?;
            let mut recv = conn.accept_uni().await?;
            let (tx, mut rx) = mpsc::channel::<Bytes>(16);
            let writer = std::thread::spawn(move || -> std::io::Result<u64> {
                let mut f = File::create(&dst_path)?;
                let mut n = 0u64;
                while let Some(b) = rx.blocking_recv() {
                    f.write_all(&b)?;
                    n += b.len() as u64;
                }
                f.sync_all()?;
                Ok(n)
            });
            while let Some(chunk) = recv.read_chunk(BLOCK, true).await? {
                if tx.send(chunk.bytes).await.is_err() {
                    break;
                }
            }
            drop(tx);
            let n = tokio::task::spawn_blocking(move || writer.join())
                .await?
                .map_err(|_| "the writer thread panicked")??;
            conn.close(quinn::VarInt::from_u32(0), b"done");
            Ok::<_, crate::BenchError>(n)
        })
    };
    let conn = client.connect(addr, "localhost")?.await?;
    let mut send = conn.open_uni().await?;
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    let src_path = src.to_path_buf();
    let reader = std::thread::spawn(move || {
        let mut f = match File::open(&src_path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; BLOCK];
            let mut got = 0;
            while got < BLOCK {
                match f.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if got == 0 {
                return;
            }
            buf.truncate(got);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    let mut sent = 0u64;
    while let Some(block) = rx.recv().await {
        let block = block?;
        sent += block.len() as u64;
        send.write_chunk(block).await?;
    }
    send.finish()?;
    let written = serve.await??;
    let elapsed = start.elapsed();
    let _ = reader.join();
    if written != sent {
        return Err(format!("quinn copy wrote {written} of {sent} bytes").into());
    }
    conn.close(quinn::VarInt::from_u32(0), b"done");
    client.close(quinn::VarInt::from_u32(0), b"done");
    server.close(quinn::VarInt::from_u32(0), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        client.wait_idle().await;
        server.wait_idle().await;
    })
    .await;
    Ok(elapsed)
}
