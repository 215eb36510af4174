//! `jsp` — the JetStreamProto command-line tool.
//!
//! `jsp demo` shows the protocol end to end in one process; `jsp keygen`, `jsp serve` and
//! `jsp connect` run it between two terminals or machines; `jsp send` and `jsp recv` move files. Every failure ends with one line on
//! standard error and a non-zero exit status.
#![forbid(unsafe_code)]

mod connect;
mod demo;
mod error;
mod keyfile;
mod serve;
mod ticket;
mod transfer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use jsp_tokio::PublicIdentity;

use crate::error::CliError;

/// JetStreamProto: a secure, multiplexed transport over UDP with a post-quantum hybrid handshake.
///
/// Start with `jsp demo`. To talk between two terminals: `jsp keygen`, then `jsp serve`, then
/// `jsp connect` with the public key that keygen printed.
#[derive(Parser, Debug)]
#[command(name = "jsp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a server and a client in this process on loopback: a hybrid post-quantum handshake,
    /// a bulk transfer on several streams with a progress bar, then a 0-RTT resumption, and a
    /// table of what was negotiated and measured.
    Demo(DemoArgs),
    /// Create a server identity key: writes the private key to a file and prints the public key
    /// that clients pass to `jsp connect --server-key`.
    Keygen(KeygenArgs),
    /// Run an echo server: echoes every bidirectional stream and datagram, and swallows
    /// unidirectional streams (for `jsp connect --bytes`). Stops on Ctrl-C.
    Serve(ServeArgs),
    /// Connect to a `jsp serve` server. Without --bytes, each line typed is sent and echoed
    /// back; with --bytes, measures throughput.
    Connect(ConnectArgs),
    /// Offer files and directories: prints a ticket (and its QR code) for `jsp recv`, then
    /// waits until a receiver has every file verified. Stops on Ctrl-C.
    Send(SendArgs),
    /// Fetch the files a `jsp send` ticket names into --out: resumable, verified chunk by chunk,
    /// each file renamed into place only once complete.
    Recv(RecvArgs),
}

/// Options of `jsp send`.
#[derive(clap::Args, Debug)]
struct SendArgs {
    /// Files and directories to send.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// UDP address to listen on.
    #[arg(long, short, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// The IP address to put in the ticket (default: the listen address, or this machine's
    /// first non-loopback address when listening on all interfaces).
    #[arg(long)]
    addr: Option<std::net::IpAddr>,
    /// zstd level 1-22 for chunks that compress (sampled per chunk); 0 turns compression off.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=22))]
    level: u8,
    /// Do not print the QR code.
    #[arg(long)]
    no_qr: bool,
    /// One JSON object per line on stdout instead of text and bars.
    #[arg(long)]
    json: bool,
    /// Hide the progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Options of `jsp recv`.
#[derive(clap::Args, Debug)]
struct RecvArgs {
    /// The ticket printed by `jsp send` ("jspt1…").
    ticket: String,
    /// Directory to write into (created if needed).
    #[arg(long, short, default_value = ".")]
    out: PathBuf,
    /// Parallel streams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    streams: u16,
    /// Start over instead of keeping verified chunks of an earlier attempt.
    #[arg(long)]
    no_resume: bool,
    /// Replace existing files that differ from the ones received.
    #[arg(long)]
    force: bool,
    /// One JSON object per line on stdout instead of text and bars.
    #[arg(long)]
    json: bool,
    /// Hide the progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// Options of `jsp demo`.
#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Bytes to transfer (suffixes K, M, G for KiB, MiB, GiB).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    bytes: u64,
    /// Streams to spread the transfer over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    streams: u32,
    /// Hide the progress bar (for logs and scripts).
    #[arg(long)]
    no_progress: bool,
}

/// Which kind of identity key to generate.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Scheme {
    /// Ed25519 (small, fast; the default).
    Ed25519,
    /// Ed25519 together with ML-DSA-65 (post-quantum signatures; larger handshakes).
    Hybrid,
}

/// Options of `jsp keygen`.
#[derive(clap::Args, Debug)]
struct KeygenArgs {
    /// Where to write the private key (created with owner-only permissions).
    #[arg(long, short, default_value = "jsp-server.key")]
    out: PathBuf,
    /// Signature scheme of the key.
    #[arg(long, value_enum, default_value_t = Scheme::Ed25519)]
    scheme: Scheme,
    /// Overwrite the file if it exists.
    #[arg(long)]
    force: bool,
}

/// Options of `jsp serve`.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// UDP address to listen on, e.g. 127.0.0.1:4433 or [::]:4433.
    #[arg(long, short, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// The private key file written by `jsp keygen`.
    #[arg(long, short)]
    key: PathBuf,
}

/// Options of `jsp connect`.
#[derive(clap::Args, Debug)]
struct ConnectArgs {
    /// The server's UDP address, e.g. 127.0.0.1:4433.
    addr: SocketAddr,
    /// The server's public key as printed by `jsp keygen` or `jsp serve` ("jsp1:…"). The
    /// connection fails unless the server proves it holds the matching private key.
    #[arg(long, short = 's')]
    server_key: PublicIdentity,
    /// Throughput mode: send this many bytes (suffixes K, M, G) and report the goodput.
    #[arg(long, value_parser = parse_size)]
    bytes: Option<u64>,
    /// Streams to use in throughput mode.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    streams: u32,
    /// Give up if the handshake has not completed after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

impl ConnectArgs {
    fn timeout(&self) -> Result<Duration, CliError> {
        Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(CliError::Usage(
                "--timeout must be a positive number of seconds",
            ))
    }
}

/// Parses "1024", "64K", "256M", "1G" (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: use a number with an optional K, M or G"))?;
    n.checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JSP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Keygen(args) => keyfile::keygen(&args),
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Send(args) => transfer::send(args).await,
            Command::Recv(args) => transfer::recv(args).await,
        }
    });
    // Do not wait for background tasks (a server's connections) to wind down.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_accept_binary_suffixes_and_reject_nonsense() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256m"), Ok(256 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
