//! `jsp demo`: server and client in one process over loopback UDP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use jsp_tokio::{
    generate_identity, server_config, ClientConfig, EarlyData, Endpoint, HandshakeInfo,
};
use tokio::io::AsyncWriteExt;

use crate::connect::{handshake, send_bulk};
use crate::error::CliError;
use crate::DemoArgs;

/// What the server side saw.
#[derive(Default)]
struct ServerSide {
    received: AtomicU64,
    early_request: AtomicBool,
}

/// Runs the demo and prints its table.
pub(crate) async fn run(args: DemoArgs) -> Result<(), CliError> {
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let identity = Arc::new(generate_identity()?);
    let server = Endpoint::server(server_config(identity.clone())?, loopback)?;
    let addr = server.local_addr();
    let seen = Arc::new(ServerSide::default());
    spawn_server(server.clone(), seen.clone());

    // 1. A full hybrid handshake.
    let client = Endpoint::client(loopback)?;
    let started = Instant::now();
    let conn = handshake(
        client.connect(addr, identity.public())?,
        addr,
        Duration::from_secs(10),
    )
    .await?;
    let handshake_time = started.elapsed();
    let info = conn
        .handshake_info()
        .ok_or_else(|| CliError::Demo("no handshake information".into()))?;
    let ticket = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.session_ticket().await })
    };

    // 2. The bulk transfer, on several streams at once.
    let bar = progress_bar(args.bytes, args.no_progress);
    let ticker = {
        let (bar, seen) = (bar.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(seen.received.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    send_bulk(&conn, args.bytes, args.streams, None).await?;
    let transfer_time = started.elapsed();
    ticker.abort();
    bar.set_position(seen.received.load(Ordering::Relaxed));
    bar.finish_and_clear();
    let stats = conn.stats();

    // 3. Resumption with 0-RTT: a request in the client's first flight.
    let ticket = tokio::time::timeout(Duration::from_secs(5), ticket)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .ok_or_else(|| CliError::Demo("the server sent no session ticket".into()))?;
    conn.close(0, b"demo transfer done");
    let key = identity.public();
    let (reply, reply_time, resumed_info) =
        tokio::task::spawn_blocking(move || resume_with_0rtt(addr, key, ticket))
            .await
            .map_err(|e| CliError::Demo(format!("the resumption task failed: {e}")))??;
    if reply != REQUEST {
        return Err(CliError::Demo("the 0-RTT request was not echoed".into()));
    }
    client.close(0, b"demo done");
    let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_idle()).await;

    let received = seen.received.load(Ordering::Relaxed);
    if received != args.bytes {
        return Err(CliError::Demo(format!(
            "the server received {received} of {} bytes",
            args.bytes
        )));
    }
    print_table(&Report {
        args: &args,
        info: &info,
        handshake_time,
        transfer_time,
        stats,
        resumed: &resumed_info,
        early_seen: seen.early_request.load(Ordering::Relaxed),
        reply_time,
    });
    Ok(())
}

/// The request sent as 0-RTT data on resumption.
const REQUEST: &[u8] = b"GET /hello (replay-safe, sent as 0-RTT)";

/// Resumes with `ticket` on a fresh client endpoint and sends [`REQUEST`] as 0-RTT data;
/// returns the echo, the time to it, and the resumed handshake's outcome.
///
/// It runs on its own single-threaded runtime so that the request is queued before the
/// endpoint's driver task first runs: the request then leaves in the client's first flight,
/// together with the ClientHello, instead of racing a handshake that takes a millisecond on
/// loopback.
fn resume_with_0rtt(
    addr: SocketAddr,
    key: jsp_tokio::PublicIdentity,
    ticket: jsp_tokio::ClientTicket,
) -> Result<(Vec<u8>, Duration, HandshakeInfo), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "cannot start a runtime for the resumption",
            source,
        })?;
    runtime.block_on(async move {
        let client = Endpoint::client(([127, 0, 0, 1], 0).into())?;
        let started = Instant::now();
        let config = Arc::new(ClientConfig::pinned(key));
        let conn = client
            .connect_with(config, addr, Some(ticket))?
            .into_0rtt()
            .map_err(|_| CliError::Demo("the ticket did not allow 0-RTT".into()))?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.set_replay_safe(true);
        send.write_all(REQUEST).await?;
        send.finish()?;
        let reply = recv.read_all(1 << 10).await?;
        let reply_time = started.elapsed();
        let info = conn.handshake().await?;
        conn.close(0, b"demo done");
        let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_idle()).await;
        Ok((reply, reply_time, info))
    })
}

fn spawn_server(server: Endpoint, seen: Arc<ServerSide>) {
    tokio::spawn(async move {
        while let Some(connecting) = server.accept().await {
            // The server may read 0-RTT requests before its handshake completes.
            let Ok(conn) = connecting.into_0rtt() else {
                continue;
            };
            let seen = seen.clone();
            let uni = conn.clone();
            let counted = seen.clone();
            tokio::spawn(async move {
                while let Ok(mut recv) = uni.accept_uni().await {
                    let counted = counted.clone();
                    tokio::spawn(async move {
                        while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX).await {
                            counted
                                .received
                                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                    });
                }
            });
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    if recv.received_early() {
                        seen.early_request.store(true, Ordering::Relaxed);
                    }
                    tokio::spawn(async move {
                        if tokio::io::copy(&mut recv, &mut send).await.is_ok() {
                            let _ = send.shutdown().await;
                        }
                    });
                }
            });
        }
    });
}

fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} transferring [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

struct Report<'a> {
    args: &'a DemoArgs,
    info: &'a HandshakeInfo,
    handshake_time: Duration,
    transfer_time: Duration,
    stats: jsp_tokio::ConnectionStats,
    resumed: &'a HandshakeInfo,
    early_seen: bool,
    reply_time: Duration,
}

fn print_table(r: &Report<'_>) {
    let kex = r.info.key_exchange;
    let pq = if kex.is_post_quantum() {
        "hybrid, post-quantum"
    } else {
        "classical"
    };
    let early = match (r.resumed.early_data, r.early_seen) {
        (EarlyData::Accepted, true) => "accepted: the request travelled in the first flight",
        (EarlyData::Accepted, false) => "accepted (the request itself went after the handshake)",
        (EarlyData::Rejected, _) => "rejected by the server; the request was resent",
        _ => "not attempted",
    };
    let rows = [
        ("cipher suite", r.info.suite.to_string()),
        ("key exchange", format!("{kex} ({pq})")),
        ("server identity", r.info.signature_scheme.to_string()),
        ("handshake (1-RTT, full)", ms(r.handshake_time)),
        (
            "transfer",
            format!(
                "{} on {} streams in {:.2} s",
                human_bytes(r.args.bytes),
                r.args.streams,
                r.transfer_time.as_secs_f64()
            ),
        ),
        ("goodput", rate(r.args.bytes, r.transfer_time)),
        (
            "RTT (smoothed / min)",
            format!("{} / {}", ms(r.stats.rtt), ms(r.stats.min_rtt)),
        ),
        (
            "packets sent / lost",
            format!("{} / {}", r.stats.packets_sent, r.stats.packets_lost),
        ),
        (
            "bytes retransmitted",
            r.stats.retransmitted_bytes.to_string(),
        ),
        (
            "resumption",
            format!(
                "{}, 0-RTT {}",
                if r.resumed.resumed {
                    "resumed with a ticket"
                } else {
                    "full handshake"
                },
                early
            ),
        ),
        ("0-RTT request answered in", ms(r.reply_time)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!(
        "JetStreamProto demo: loopback UDP, one process (jsp demo --bytes {} --streams {})",
        r.args.bytes, r.args.streams
    );
    println!();
    println!("| {:width$} | result |", "what");
    println!("|{}|--------|", "-".repeat(width + 2));
    for (k, v) in rows {
        println!("| {k:width$} | {v} |");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// "256 MiB", "1.50 GiB", "512 KiB", "100 B".
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{v:.2} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// "1.23 Gbit/s (146.6 MiB/s)".
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let bits = bytes as f64 * 8.0 / secs;
    let mib = bytes as f64 / secs / f64::from(1u32 << 20);
    if bits >= 1e9 {
        format!("{:.2} Gbit/s ({mib:.1} MiB/s)", bits / 1e9)
    } else {
        format!("{:.1} Mbit/s ({mib:.1} MiB/s)", bits / 1e6)
    }
}
