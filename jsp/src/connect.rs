//! `jsp connect`: interactive line echo, or a throughput measurement with `--bytes`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsp_tokio::{ClientConfig, Connecting, Connection, Endpoint, TransportConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::error::CliError;
use crate::ConnectArgs;

/// Runs `jsp connect`.
pub(crate) async fn run(args: ConnectArgs) -> Result<(), CliError> {
    let timeout = args.timeout()?;
    let local: SocketAddr = if args.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = Endpoint::client(local)?;
    let config = ClientConfig {
        // The handshake gives up after --timeout of silence, and so does the core.
        transport: Arc::new(TransportConfig {
            idle_timeout: timeout.max(Duration::from_secs(10)),
            ..TransportConfig::default()
        }),
        ..ClientConfig::pinned(args.server_key.clone())
    };
    let connecting = endpoint.connect_with(Arc::new(config), args.addr, None)?;
    let conn = handshake(connecting, args.addr, timeout).await?;
    if let Some(info) = conn.handshake_info() {
        eprintln!(
            "connected to {} ({}, {})",
            args.addr, info.suite, info.key_exchange
        );
    }
    let result = match args.bytes {
        Some(bytes) => throughput(&conn, bytes, args.streams).await,
        None => interactive(&conn).await,
    };
    conn.close(0, b"bye");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

/// Awaits a handshake for at most `timeout`.
pub(crate) async fn handshake(
    connecting: Connecting,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Connection, CliError> {
    match tokio::time::timeout(timeout, connecting).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(CliError::HandshakeTimeout {
            addr,
            secs: timeout.as_secs_f64(),
        }),
    }
}

async fn interactive(conn: &Connection) -> Result<(), CliError> {
    eprintln!("type lines to send; each comes back from the server's echo. Ctrl-D ends.");
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut echo = BufReader::new(&mut recv).lines();
    let mut stdout = tokio::io::stdout();
    let io = |what| move |source| CliError::Io { what, source };
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(io("cannot read the terminal"))?
    {
        send.write_all(line.as_bytes()).await?;
        send.write_all(b"\n").await?;
        let Some(back) = echo
            .next_line()
            .await
            .map_err(io("the echo stream failed"))?
        else {
            return Err(CliError::Demo("the server ended the echo stream".into()));
        };
        stdout
            .write_all(format!("{back}\n").as_bytes())
            .await
            .map_err(io("cannot write to the terminal"))?;
    }
    send.finished().await?;
    Ok(())
}

async fn throughput(conn: &Connection, bytes: u64, streams: u32) -> Result<(), CliError> {
    let start = Instant::now();
    send_bulk(conn, bytes, streams, None).await?;
    let elapsed = start.elapsed();
    let stats = conn.stats();
    println!(
        "sent {} in {:.2} s: {} ({} packets lost, {} bytes retransmitted, RTT {:.2} ms)",
        crate::demo::human_bytes(bytes),
        elapsed.as_secs_f64(),
        crate::demo::rate(bytes, elapsed),
        stats.packets_lost,
        stats.retransmitted_bytes,
        conn.rtt().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Sends `bytes` spread over `streams` unidirectional streams and waits until the peer has
/// acknowledged all of it. `progress` counts bytes as they are written.
pub(crate) async fn send_bulk(
    conn: &Connection,
    bytes: u64,
    streams: u32,
    progress: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> Result<(), CliError> {
    const CHUNK: usize = 64 << 10;
    let chunk: Arc<[u8]> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut tasks = Vec::new();
    for i in 0..u64::from(streams) {
        let share = bytes / u64::from(streams) + u64::from(i < bytes % u64::from(streams));
        let conn = conn.clone();
        let chunk = chunk.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut send = conn.open_uni().await?;
            let mut left = share;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                send.write_all(&chunk[..n]).await?;
                left -= n as u64;
                if let Some(p) = &progress {
                    p.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
            send.finished().await?;
            Ok::<(), CliError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| CliError::Demo(format!("a sender task failed: {e}")))??;
    }
    Ok(())
}
