//! File-transfer benchmark: a file over loopback with `jsp_tokio::file` (as `jsp send` /
//! `jsp recv`) against a plain quinn stream copy, the same transfer in `jsp-sim` on a lossy
//! profile, and chunk compression of a text corpus. JSON lines on stdout, progress on stderr, and
//! the Markdown tables at the end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jsp_bench::corpus::DEFAULT_CORPUS_DIRS;
use jsp_bench::{run_file_transfer, FileOptions};

/// File-transfer benchmark: JSP vs quinn on loopback, JSP in the simulator, zstd on text.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Rounds of the loopback comparison (JSP and quinn in each, order alternating); medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Bytes of the loopback file (0 skips the loopback comparison).
    #[arg(long, default_value_t = 1 << 30)]
    file_bytes: u64,
    /// Directory for the temporary files (a fresh subdirectory, removed at the end).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    tmp: PathBuf,
    /// Bytes of the simulated transfer (0 skips it).
    #[arg(long, default_value_t = 1 << 30)]
    sim_bytes: u64,
    /// The simulator's network profile.
    #[arg(long, default_value = "lossy")]
    sim_profile: String,
    /// Seed of the simulated run and of the loopback file's contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most bytes of the text corpus (0 skips the compression part).
    #[arg(long, default_value_t = 64 << 20)]
    corpus_bytes: usize,
    /// Directories whose text files make the corpus (default: the licences and documentation
    /// under /usr/share).
    #[arg(long = "corpus-dir")]
    corpus_dirs: Vec<PathBuf>,
    /// zstd levels to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 3, 19])]
    levels: Vec<i32>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let corpus_dirs = if args.corpus_dirs.is_empty() {
        DEFAULT_CORPUS_DIRS.iter().map(PathBuf::from).collect()
    } else {
        args.corpus_dirs
    };
    let opts = FileOptions {
        rounds: args.rounds,
        file_bytes: args.file_bytes,
        temp_parent: args.tmp,
        sim_bytes: args.sim_bytes,
        sim_profile: args.sim_profile,
        seed: args.seed,
        corpus_bytes: args.corpus_bytes,
        corpus_dirs,
        levels: args.levels,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_file_transfer(&opts)) {
        Ok(run) => {
            println!("\n{}", run.report);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
