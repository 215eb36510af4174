//! `jsp send` and `jsp recv`: file transfer with a ticket, progress bars or JSON lines, and a
//! summary.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jsp_tokio::file::{
    receive_files, send_files, Cancel, FileSource, FileTransferError, ReceiveOptions, SendOptions,
    TransferProgress,
};
use jsp_tokio::jsp_core::file::Compression;
use jsp_tokio::{generate_identity, server_config, ClientConfig, Endpoint, TransportConfig};
use serde_json::json;
use tokio::sync::watch;

use crate::demo::{human_bytes, rate};
use crate::error::CliError;
use crate::ticket::Ticket;
use crate::{RecvArgs, SendArgs};

/// How the command reports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Bars,
    Quiet,
    Json,
}

fn output(json: bool, no_progress: bool) -> Output {
    if json {
        Output::Json
    } else if no_progress {
        Output::Quiet
    } else {
        Output::Bars
    }
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

/// With `--json`, a failure is also reported on standard output as one object:
/// `{"event":"error","kind":…,"message":…,"path":…}` (`kind` as in
/// [`FileTransferError::kind_name`], or "bad_ticket", "connection", "io"; `path` only when the
/// failure concerns a local path). The one-line message on standard error and the exit status
/// (1) are the same with or without `--json`.
fn emit_error(e: &CliError) {
    let (kind, path) = match e {
        CliError::Transfer(t) => (t.kind_name(), t.path().map(|p| p.display().to_string())),
        CliError::Ticket(_) => ("bad_ticket".to_owned(), None),
        CliError::Connect(_) | CliError::Connection(_) | CliError::HandshakeTimeout { .. } => {
            ("connection".to_owned(), None)
        }
        _ => ("io".to_owned(), None),
    };
    emit(json!({"event": "error", "kind": kind, "message": e.to_string(), "path": path}));
}

/// Runs `jsp send`: scans, listens, prints the ticket, and serves until one receiver has every
/// file verified.
pub(crate) async fn send(args: SendArgs) -> Result<(), CliError> {
    let json = args.json;
    let r = send_inner(args).await;
    if let (true, Err(e)) = (json, &r) {
        emit_error(e);
    }
    r
}

async fn send_inner(args: SendArgs) -> Result<(), CliError> {
    let out = output(args.json, args.no_progress);
    let compression = match args.level {
        0 => Compression::OFF,
        l => Compression::zstd(i32::from(l)),
    };
    if out != Output::Json {
        eprintln!("scanning {} path(s)…", args.paths.len());
    }
    let source = FileSource::scan(args.paths.clone(), 0).await?;
    let m = source.manifest();
    let identity = Arc::new(generate_identity()?);
    let endpoint = Endpoint::server(server_config(identity.clone())?, args.listen)?;
    let bound = endpoint.local_addr();
    let addr = match args.addr {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None if bound.ip().is_unspecified() => {
            SocketAddr::new(guess_ip(bound.is_ipv4()), bound.port())
        }
        None => bound,
    };
    let ticket = Ticket {
        addr,
        key: identity.public(),
        id: source.transfer_id(),
    }
    .encode();
    match out {
        Output::Json => emit(json!({
            "event": "ticket", "ticket": ticket, "listen": bound.to_string(),
            "files": m.file_count(), "bytes": m.total_bytes(), "root": source.root().to_string(),
        })),
        _ => {
            eprintln!(
                "offering {} file(s), {} (root {})",
                m.file_count(),
                human_bytes(m.total_bytes()),
                source.root()
            );
            if !args.no_qr {
                if let Some(qr) = qr(&ticket) {
                    eprintln!("{qr}");
                }
            }
            eprintln!("on the other machine, run:\n\n    jsp recv {ticket}\n");
            println!("{ticket}");
            eprintln!("waiting for the receiver on {bound} (UDP); Ctrl-C stops");
        }
    }
    let root = source.root().to_string();
    let cancel = Cancel::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(4);
    let accept = {
        let endpoint = endpoint.clone();
        let cancel = cancel.clone();
        async move {
            while let Some(connecting) = endpoint.accept().await {
                let source = source.clone();
                let cancel = cancel.clone();
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let Ok(conn) = connecting.await else { return };
                    let peer = conn.remote_address();
                    if out == Output::Json {
                        emit(json!({"event": "connected", "peer": peer.to_string()}));
                    } else {
                        eprintln!("{peer} connected");
                    }
                    let (tx, rx) = watch::channel(TransferProgress::default());
                    let show = tokio::spawn(show_progress(rx, out, "sending"));
                    let r = send_files(
                        &conn,
                        &source,
                        SendOptions {
                            compression,
                            ..SendOptions::default()
                        },
                        cancel,
                        Some(tx),
                    )
                    .await;
                    let _ = show.await;
                    let _ = done_tx.send((peer, r)).await;
                });
            }
        }
    };
    tokio::pin!(accept);
    loop {
        tokio::select! {
            () = &mut accept => return Err(CliError::Demo("the endpoint stopped".into())),
            r = tokio::signal::ctrl_c() => {
                r.map_err(|source| CliError::Io { what: "cannot listen for Ctrl-C", source })?;
                cancel.cancel();
                endpoint.close(1, b"sender stopped");
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
                return Err(CliError::Transfer(FileTransferError::Cancelled));
            }
            Some((peer, r)) = done_rx.recv() => match r {
                Ok(s) => {
                    let secs = s.elapsed.as_secs_f64();
                    match out {
                        Output::Json => emit(json!({
                            "event": "done", "peer": peer.to_string(), "bytes": s.bytes_sent,
                            "wire_bytes": s.wire_bytes, "chunks": s.chunks_sent,
                            "chunks_compressed": s.chunks_compressed, "seconds": secs,
                            "root": root.clone(),
                        })),
                        _ => eprintln!(
                            "sent {} to {peer} in {secs:.2} s: {} ({} on the wire, {} of {} chunks compressed)",
                            human_bytes(s.bytes_sent),
                            rate(s.bytes_sent, s.elapsed),
                            human_bytes(s.wire_bytes),
                            s.chunks_compressed,
                            s.chunks_sent,
                        ),
                    }
                    endpoint.close(0, b"done");
                    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
                    return Ok(());
                }
                Err(e) => {
                    if matches!(&e, FileTransferError::Protocol(jsp_tokio::jsp_core::file::FileError::SourceChanged { .. })) {
                        endpoint.close(1, b"source changed");
                        return Err(e.into());
                    }
                    if out == Output::Json {
                        emit(json!({"event": "warning", "peer": peer.to_string(), "kind": e.kind_name(), "message": e.to_string()}));
                    } else {
                        eprintln!("transfer to {peer} failed: {e}; still waiting (the receiver can resume)");
                    }
                }
            }
        }
    }
}

/// A non-loopback address of this machine for the ticket, or loopback if there is none.
fn guess_ip(v4: bool) -> IpAddr {
    if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| !ip.is_loopback() && ip.is_ipv4() == v4)
        })
        .unwrap_or(if v4 {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        })
}

/// The ticket as a terminal QR code (two modules per character cell).
fn qr(ticket: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code =
        qrcode::QrCode::with_error_correction_level(ticket.to_uppercase(), qrcode::EcLevel::L)
            .ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Runs `jsp recv`.
pub(crate) async fn recv(args: RecvArgs) -> Result<(), CliError> {
    let json = args.json;
    let r = recv_inner(args).await;
    if let (true, Err(e)) = (json, &r) {
        emit_error(e);
    }
    r
}

async fn recv_inner(args: RecvArgs) -> Result<(), CliError> {
    let out = output(args.json, args.no_progress);
    let ticket = Ticket::parse(&args.ticket).map_err(CliError::Ticket)?;
    let local: SocketAddr = if ticket.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = Endpoint::client(local)?;
    let config = ClientConfig {
        transport: Arc::new(TransportConfig {
            idle_timeout: Duration::from_secs(30),
            ..TransportConfig::default()
        }),
        ..ClientConfig::pinned(ticket.key.clone())
    };
    let connecting = endpoint.connect_with(Arc::new(config), ticket.addr, None)?;
    let conn = crate::connect::handshake(connecting, ticket.addr, Duration::from_secs(15)).await?;
    if out == Output::Json {
        emit(json!({"event": "connected", "peer": ticket.addr.to_string()}));
    } else {
        eprintln!("connected to {} (key pinned from the ticket)", ticket.addr);
    }
    let (tx, rx) = watch::channel(TransferProgress::default());
    let show = tokio::spawn(show_progress(rx, out, "receiving"));
    let cancel = Cancel::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let options = ReceiveOptions {
        lanes: args.streams,
        resume: !args.no_resume,
        overwrite: args.force,
        ..ReceiveOptions::default()
    };
    let started = Instant::now();
    let r = receive_files(&conn, ticket.id, &args.out, options, cancel, Some(tx)).await;
    ctrl_c.abort();
    let _ = show.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    let s = r?;
    let secs = started.elapsed().as_secs_f64();
    let moved = s.bytes_total - s.bytes_resumed;
    match out {
        Output::Json => emit(json!({
            "event": "done", "files": s.files, "bytes": s.bytes_total,
            "resumed_bytes": s.bytes_resumed, "wire_bytes": s.wire_bytes,
            "refetched_chunks": s.chunks_refetched, "seconds": secs,
            "root": s.root.to_string(), "out": args.out.display().to_string(),
        })),
        _ => {
            let resumed = if s.bytes_resumed > 0 {
                format!(", {} resumed from disk", human_bytes(s.bytes_resumed))
            } else {
                String::new()
            };
            println!(
                "received {} file(s), {} in {secs:.2} s: {}{resumed}; {} on the wire; root {} verified",
                s.files,
                human_bytes(s.bytes_total),
                rate(moved, started.elapsed()),
                human_bytes(s.wire_bytes),
                s.root
            );
        }
    }
    Ok(())
}

/// Shows progress until the transfer reports itself finished or the channel closes.
async fn show_progress(mut rx: watch::Receiver<TransferProgress>, out: Output, verb: &str) {
    if out == Output::Quiet {
        while rx.changed().await.is_ok() {}
        return;
    }
    if out == Output::Json {
        let mut last = Instant::now();
        while rx.changed().await.is_ok() {
            let p = rx.borrow_and_update().clone();
            if last.elapsed() < Duration::from_millis(500) && !p.finished {
                continue;
            }
            last = Instant::now();
            emit(json!({
                "event": "progress", "bytes": p.bytes_done, "total": p.bytes_total,
                "resumed": p.bytes_resumed, "wire_bytes": p.wire_bytes,
                "files_done": p.files_done, "files_total": p.files_total,
                "rate": p.rate.round(), "eta_seconds": p.eta.map(|d| d.as_secs_f64()),
                "active": p.active.iter().map(|f| json!({"path": f.path, "bytes": f.done, "size": f.size})).collect::<Vec<_>>(),
            }));
            if p.finished {
                return;
            }
        }
        return;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let total = multi.add(ProgressBar::new(0));
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{verb} [{{bar:32}}] {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} eta {{eta}} {{msg}}"
    )) {
        total.set_style(style.progress_chars("=> "));
    }
    let file_style =
        ProgressStyle::with_template("  {wide_msg} [{bar:20}] {binary_bytes}/{binary_total_bytes}")
            .ok()
            .map(|s| s.progress_chars("=> "));
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        total.set_length(p.bytes_total);
        total.set_position(p.bytes_done);
        if verb == "receiving" {
            total.set_message(format!("{}/{} files", p.files_done, p.files_total));
        }
        bars.retain(|path, bar| {
            let keep = p.active.iter().any(|f| &f.path == path);
            if !keep {
                bar.finish_and_clear();
                multi.remove(bar);
            }
            keep
        });
        for f in p.active.iter().take(8) {
            let bar = bars.entry(f.path.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(f.size));
                if let Some(s) = &file_style {
                    b.set_style(s.clone());
                }
                b.set_message(f.path.clone());
                b
            });
            bar.set_position(f.done);
        }
        if p.finished {
            break;
        }
    }
    for bar in bars.values() {
        bar.finish_and_clear();
    }
    // Leave the bar where the transfer stopped (a cancelled one is not shown as complete).
    total.abandon();
}
