//! JSP (through jsp-tokio) against quinn (through its tokio API) over loopback UDP, in one
//! process run: JSON lines on stdout, progress on stderr, and the summary table at the end.
//! See the `jsp_bench` crate documentation for what each figure means.

use std::alloc::System;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jsp_bench::{run, Options};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes currently allocated by the whole process.
fn live_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64
}

/// Loopback benchmark: JetStreamProto vs quinn, same process, alternating.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Rounds of bulk, handshake and echo tests (JSP then quinn in each); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Bytes of the bulk transfer (0 skips it).
    #[arg(long, default_value_t = 1 << 30)]
    bulk_bytes: u64,
    /// Bytes per write in the bulk transfer.
    #[arg(long, default_value_t = 1 << 20)]
    chunk: usize,
    /// Milliseconds spent measuring the AEAD seal ceiling.
    #[arg(long, default_value_t = 1000)]
    ceiling_ms: u64,
    /// Sequential handshakes (0 skips them).
    #[arg(long, default_value_t = 1000)]
    handshakes: usize,
    /// Handshakes with `--concurrency` in flight (0 skips them).
    #[arg(long, default_value_t = 2000)]
    concurrent_handshakes: usize,
    /// Handshakes in flight in the concurrent test and while opening idle connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Idle connections held at once per stack (0 skips the test).
    #[arg(long, default_value_t = 10_000)]
    idle_conns: usize,
    /// Echo round trips (0 skips them).
    #[arg(long, default_value_t = 10_000)]
    echo_messages: usize,
    /// Bytes per echo message.
    #[arg(long, default_value_t = 64)]
    echo_size: usize,
    /// Tokio worker threads; 0 runs everything on one thread (current-thread runtime).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run only one stack (`jsp` or `quinn`), e.g. under a profiler; ratios need both.
    #[arg(long, value_parser = ["jsp", "quinn"])]
    only: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        rounds: args.rounds,
        bulk_bytes: args.bulk_bytes,
        chunk: args.chunk.max(1),
        ceiling_time: Duration::from_millis(args.ceiling_ms),
        handshakes: args.handshakes,
        concurrent_handshakes: args.concurrent_handshakes,
        concurrency: args.concurrency.max(1),
        idle_conns: args.idle_conns,
        echo_messages: args.echo_messages,
        echo_size: args.echo_size.max(1),
        only: args.only,
    };
    let runtime = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&opts, live_bytes)) {
        Ok((_, table)) => {
            println!("\n{}", table.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
