//! The file-transfer benchmark (`--bin file_transfer`): one file over loopback with
//! `jsp_tokio::file` against a plain quinn stream copy, the same transfer in `jsp-sim` on a
//! lossy profile, and chunk compression of a text corpus.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jsp_sim::profile::Profile;
use jsp_sim::scenario::files::{run_files, FilePlan};
use jsp_sim::scenario::{Scenario, Transfer};

use crate::corpus::{self, Corpus};
use crate::file_loopback::{hash_file, jsp_once, make_source, quinn_once};
use crate::report::{Better, Record, Table};
use crate::run::median;
use crate::BenchResult;

/// The sizes of a run.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// Rounds of the loopback comparison (each runs both, alternating which goes first).
    pub rounds: usize,
    /// Bytes of the loopback file (0 skips the loopback part).
    pub file_bytes: u64,
    /// Directory under which the temporary directory is made.
    pub temp_parent: PathBuf,
    /// Bytes of the simulated transfer (0 skips it).
    pub sim_bytes: u64,
    /// The simulator's profile.
    pub sim_profile: String,
    /// The simulator's seed.
    pub seed: u64,
    /// Most bytes of the text corpus (0 skips the compression part).
    pub corpus_bytes: usize,
    /// Directories the corpus is read from.
    pub corpus_dirs: Vec<PathBuf>,
    /// zstd levels to measure.
    pub levels: Vec<i32>,
}

/// What a run measured: the JSON records and the Markdown report.
#[derive(Clone, Debug, Default)]
pub struct FileRun {
    /// Every figure.
    pub records: Vec<Record>,
    /// The tables and notes, as Markdown.
    pub report: String,
}

/// A `'static` label made at run time (a handful per run, for the records' fields).
fn label(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn emit(run: &mut FileRun, r: Record) {
    println!("{}", r.to_json());
    run.records.push(r);
}

/// Checks the copy `dst` against the source's hash and length, then deletes it.
fn check_copy(dst: &Path, expect: &(blake3::Hash, u64)) -> BenchResult<()> {
    let got = hash_file(dst)?;
    if got != *expect {
        return Err(format!("{} differs from the source", dst.display()).into());
    }
    std::fs::remove_file(dst)?;
    Ok(())
}

async fn loopback(opts: &FileOptions, run: &mut FileRun) -> BenchResult<()> {
    let tmp = tempfile::Builder::new()
        .prefix("jsp-file-bench-")
        .tempdir_in(&opts.temp_parent)?;
    let src = tmp.path().join("source.bin");
    eprintln!(
        "loopback: writing a {} byte source file under {}",
        opts.file_bytes,
        tmp.path().display()
    );
    make_source(&src, opts.file_bytes, opts.seed)?;
    let expect = hash_file(&src)?;
    let (mut jsp, mut jsp_total, mut scan, mut quinn) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut jsp_cpu, mut quinn_cpu) = (Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        for turn in 0..2 {
            // Round 0 runs JSP first, round 1 quinn first, and so on.
            if (round + turn) % 2 == 0 {
                let out = tmp.path().join("jsp-out");
                let cpu0 = process_cpu_seconds();
                let t = jsp_once(&src, &out).await?;
                let cpu = process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
                check_copy(&out.join("source.bin"), &expect)?;
                std::fs::remove_dir_all(&out)?;
                eprintln!(
                    "round {round}: jsp {:.3} s (+ scan {:.3} s), {:.2} CPU s",
                    t.transfer.as_secs_f64(),
                    t.scan.as_secs_f64(),
                    cpu.unwrap_or(f64::NAN)
                );
                jsp_cpu.extend(cpu);
                jsp.push(t.transfer.as_secs_f64());
                scan.push(t.scan.as_secs_f64());
                jsp_total.push((t.transfer + t.scan).as_secs_f64());
            } else {
                let out = tmp.path().join("quinn-out.bin");
                let cpu0 = process_cpu_seconds();
                let t = quinn_once(&src, &out).await?;
                let cpu = process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
                check_copy(&out, &expect)?;
                eprintln!(
                    "round {round}: quinn {:.3} s, {:.2} CPU s",
                    t.as_secs_f64(),
                    cpu.unwrap_or(f64::NAN)
                );
                quinn_cpu.extend(cpu);
                quinn.push(t.as_secs_f64());
            }
        }
    }
    drop(tmp);
    let (j, jt, s, q) = (median(jsp), median(jsp_total), median(scan), median(quinn));
    let (jc, qc) = (median(jsp_cpu), median(quinn_cpu));
    let mb = opts.file_bytes as f64 / 1e6;
    let rec = |implementation, metric, value: Option<f64>, unit| Record {
        bench: "file-loopback",
        implementation,
        metric,
        value: value.unwrap_or(f64::NAN),
        unit,
    };
    emit(run, rec("jsp", "time", j, "s"));
    emit(run, rec("jsp", "scan-time", s, "s"));
    emit(run, rec("jsp", "time-with-scan", jt, "s"));
    emit(run, rec("quinn", "time", q, "s"));
    emit(run, rec("jsp", "goodput", j.map(|t| mb / t), "MB/s"));
    emit(run, rec("quinn", "goodput", q.map(|t| mb / t), "MB/s"));
    let ratio = j.zip(q).map(|(j, q)| j / q);
    emit(run, rec("jsp", "time-ratio-vs-quinn", ratio, "x"));
    emit(run, rec("jsp", "cpu-time", jc, "s"));
    emit(run, rec("quinn", "cpu-time", qc, "s"));
    let mut table = Table::default();
    table.row("file-loopback", "time", "s", j, q, Better::Lower, "≤ 0.8");
    table.row(
        "file-loopback",
        "time incl. sender scan",
        "s",
        jt,
        q,
        Better::Lower,
        "–",
    );
    table.row(
        "file-loopback",
        "CPU time (user + system, both ends)",
        "s",
        jc,
        qc,
        Better::Lower,
        "–",
    );
    table.row(
        "file-loopback",
        "goodput",
        "MB/s",
        j.map(|t| mb / t),
        q.map(|t| mb / t),
        Better::Higher,
        "≥ 1.25",
    );
    table.note(format!(
        "{} bytes of pseudo-random (incompressible) data, {} rounds (order alternating), medians. \
         JSP: `jsp_tokio::file::send_files` / `receive_files` with `jsp send` / `jsp recv`'s \
         defaults (zstd 3 adaptive, so the sample check sends these chunks raw; 4 lanes × 4 \
         chunks), timed from connect until `receive_files` returned: per-chunk BLAKE3 \
         verification on both ends, writes, fsync and rename included. The sender's scan \
         (reading and hashing the source before the ticket exists) is timed apart (median \
         {:.3} s). quinn: one unidirectional stream, a reader thread feeding 1 MiB blocks and a \
         writer thread writing them and fsyncing, timed from connect until the fsync; no \
         hashing in the timed part. Both copies are BLAKE3-checked against the source after \
         the clock stops. The source stays in the page cache for both.",
        opts.file_bytes,
        opts.rounds,
        s.unwrap_or(f64::NAN)
    ));
    let _ = writeln!(run.report, "{}", table.render());
    let _ = writeln!(
        run.report,
        "JSP ÷ quinn time: {}\n",
        ratio.map_or("–".to_string(), |r| format!("{r:.2} (target ≤ 0.80)"))
    );
    Ok(())
}

/// User plus system CPU seconds this process used so far (both ends of a loopback run live
/// in it), from `/proc/self/stat`; `None` where that is not available.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // Clock ticks: 100 per second on Linux for every supported architecture.
    Some((utime + stime) / 100.0)
}

fn simulated(opts: &FileOptions, run: &mut FileRun) -> BenchResult<()> {
    let profile = Profile::named(&opts.sim_profile)
        .ok_or_else(|| format!("no profile named {}", opts.sim_profile))?;
    let s = Scenario::new(profile, opts.seed, Transfer::many(0, 0));
    eprintln!(
        "sim: {} bytes on {} seed {}",
        opts.sim_bytes, opts.sim_profile, opts.seed
    );
    let wall = Instant::now();
    let r = run_files(&s, &FilePlan::new(opts.sim_bytes));
    let wall = wall.elapsed().as_secs_f64();
    r.check()?;
    let t = r.completion_time.map(|t| t.as_secs_f64());
    let bench = label(format!("file-sim-{}", opts.sim_profile));
    let rec = |metric, value: Option<f64>, unit| Record {
        bench,
        implementation: "jsp",
        metric,
        value: value.unwrap_or(f64::NAN),
        unit,
    };
    emit(run, rec("time", t, "s"));
    emit(run, rec("goodput", Some(r.goodput_bps() / 1e6), "Mbit/s"));
    emit(
        run,
        rec("packets-lost", Some(r.down.lost as f64), "packets"),
    );
    emit(
        run,
        rec(
            "chunks-refetched",
            Some(r.chunks_refetched as f64),
            "chunks",
        ),
    );
    emit(run, rec("wall-time", Some(wall), "s"));
    let _ = writeln!(
        run.report,
        "| profile | seed | bytes | simulated time (s) | goodput (Mbit/s) | packets lost (down) | \
         trace | wall time (s) |\n|---|---:|---:|---:|---:|---:|---|---:|\n\
         | {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.1} |\n",
        opts.sim_profile,
        opts.seed,
        opts.sim_bytes,
        t.unwrap_or(f64::NAN),
        r.goodput_bps() / 1e6,
        r.down.lost,
        r.trace_hash,
        wall
    );
    Ok(())
}

fn compression(opts: &FileOptions, run: &mut FileRun) -> BenchResult<()> {
    let c = Corpus::from_dirs(&opts.corpus_dirs, opts.corpus_bytes);
    if c.bytes.is_empty() {
        return Err("the corpus is empty (no text files under the corpus directories)".into());
    }
    eprintln!("compression: {} bytes, {}", c.bytes.len(), c.source);
    let _ = writeln!(
        run.report,
        "| zstd level | ratio | compress (MB/s) | decode (MB/s) | chunks compressed |\n\
         |---:|---:|---:|---:|---:|"
    );
    for &level in &opts.levels {
        let m = corpus::measure(&c.bytes, level)?;
        let bench = label(format!("compress-l{level}"));
        let rec = |metric, value, unit| Record {
            bench,
            implementation: "jsp",
            metric,
            value,
            unit,
        };
        emit(run, rec("ratio", m.ratio, "x"));
        emit(run, rec("compress-rate", m.compress_mb_s, "MB/s"));
        emit(run, rec("decode-rate", m.decompress_mb_s, "MB/s"));
        let _ = writeln!(
            run.report,
            "| {} | {:.2} | {:.1} | {:.0} | {}/{} |",
            m.level, m.ratio, m.compress_mb_s, m.decompress_mb_s, m.compressed_chunks, m.chunks
        );
    }
    let _ = writeln!(
        run.report,
        "\nCorpus: {} bytes, {} (in path order, cut at {} bytes), in 1 MiB chunks through \
         `jsp_core::file::compress::compress_chunk` (adaptive) and back through \
         `decompress_chunk`, one thread.",
        c.bytes.len(),
        c.source,
        opts.corpus_bytes
    );
    Ok(())
}

/// Runs every part that has a non-zero size and returns the records and the report.
pub async fn run_file_transfer(opts: &FileOptions) -> BenchResult<FileRun> {
    let mut run = FileRun::default();
    if opts.file_bytes > 0 && opts.rounds > 0 {
        loopback(opts, &mut run).await?;
    }
    if opts.sim_bytes > 0 {
        simulated(opts, &mut run)?;
    }
    if opts.corpus_bytes > 0 && !opts.levels.is_empty() {
        compression(opts, &mut run)?;
    }
    Ok(run)
}
