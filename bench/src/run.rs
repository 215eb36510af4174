//! The benchmark run: both stacks, round by round, then the medians.

use std::time::Duration;

use crate::jsp_stack::Jsp;
use crate::quinn_stack::Quinn;
use crate::report::{Better, Record, Table};
use crate::{ceiling, BenchResult, LiveBytes};

/// Echo round trips made before the measured ones.
pub(crate) const WARMUP: usize = 100;

/// The sizes of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds of each benchmark (each round runs JSP, then quinn); the medians are reported.
    pub rounds: usize,
    /// Bytes of the bulk transfer.
    pub bulk_bytes: u64,
    /// Bytes per `write_all` call in the bulk transfer.
    pub chunk: usize,
    /// How long to measure the AEAD seal rate.
    pub ceiling_time: Duration,
    /// Sequential handshakes.
    pub handshakes: usize,
    /// Handshakes made with `concurrency` in flight.
    pub concurrent_handshakes: usize,
    /// Handshakes in flight in the concurrent test and while opening idle connections.
    pub concurrency: usize,
    /// Idle connections (0 skips the test).
    pub idle_conns: usize,
    /// Echo round trips.
    pub echo_messages: usize,
    /// Bytes per echo message.
    pub echo_size: usize,
    /// Run only this stack (`jsp` or `quinn`), for profiling one of them; `None` runs both.
    pub only: Option<String>,
}

/// How a benchmark's server answers its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read one unidirectional stream to its end and report the byte count.
    Bulk,
    /// Hold the connection until the client closes it.
    Handshake,
    /// Keep the connection in a list, touching nothing.
    Idle,
    /// Echo one bidirectional stream.
    Echo,
}

/// What a bulk transfer took.
#[derive(Clone, Debug)]
pub(crate) struct Bulk {
    pub(crate) elapsed: Duration,
    pub(crate) cpu: Option<Duration>,
    /// The cipher suite the connection used.
    pub(crate) detail: String,
}

/// The memory idle connections hold (both ends of each).
#[derive(Clone, Debug)]
pub(crate) struct Idle {
    pub(crate) heap_per_conn: f64,
    pub(crate) rss_per_conn: Option<f64>,
}

/// One implementation's benchmarks.
pub(crate) trait Stack {
    const NAME: &'static str;
    async fn bulk(bytes: u64, chunk: usize) -> BenchResult<Bulk>;
    async fn handshakes(n: usize, concurrency: usize) -> BenchResult<Duration>;
    async fn idle(n: usize, concurrency: usize, live: LiveBytes) -> BenchResult<Idle>;
    async fn echo(n: usize, size: usize) -> BenchResult<Vec<Duration>>;
}

/// Polls `done` every 10 ms until it holds, failing after `limit`.
pub(crate) async fn wait_for(limit: Duration, done: impl Fn() -> bool) -> BenchResult<()> {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err("timed out waiting for the server".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx.min(samples.len() - 1)].as_secs_f64() * 1e6
}

/// One stack's figures of one round, by metric.
#[derive(Clone, Debug, Default)]
struct Figures {
    goodput: Vec<f64>,
    cpu_per_gb: Vec<f64>,
    seq: Vec<f64>,
    conc: Vec<f64>,
    heap: Vec<f64>,
    rss: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    suite: String,
}

async fn round<S: Stack>(opts: &Options, f: &mut Figures) -> BenchResult<()> {
    let name = S::NAME;
    if opts.bulk_bytes > 0 {
        let b = S::bulk(opts.bulk_bytes, opts.chunk).await?;
        let secs = b.elapsed.as_secs_f64();
        f.goodput.push(opts.bulk_bytes as f64 / secs / 1e6);
        if let Some(cpu) = b.cpu {
            f.cpu_per_gb
                .push(cpu.as_secs_f64() / (opts.bulk_bytes as f64 / 1e9));
        }
        f.suite = b.detail;
        eprintln!(
            "{name}: bulk {:.0} MB/s",
            opts.bulk_bytes as f64 / secs / 1e6
        );
    }
    if opts.handshakes > 0 {
        let t = S::handshakes(opts.handshakes, 1).await?;
        f.seq.push(opts.handshakes as f64 / t.as_secs_f64());
        eprintln!(
            "{name}: sequential handshakes {:.0}/s",
            f.seq[f.seq.len() - 1]
        );
    }
    if opts.concurrent_handshakes > 0 {
        let t = S::handshakes(opts.concurrent_handshakes, opts.concurrency).await?;
        f.conc
            .push(opts.concurrent_handshakes as f64 / t.as_secs_f64());
        eprintln!(
            "{name}: concurrent handshakes {:.0}/s",
            f.conc[f.conc.len() - 1]
        );
    }
    if opts.echo_messages > 0 {
        let mut s = S::echo(opts.echo_messages, opts.echo_size).await?;
        f.p50.push(percentile(&mut s, 0.50));
        f.p99.push(percentile(&mut s, 0.99));
        eprintln!(
            "{name}: echo p50 {:.1} µs p99 {:.1} µs",
            f.p50[f.p50.len() - 1],
            f.p99[f.p99.len() - 1]
        );
    }
    Ok(())
}

/// Runs every benchmark, JSP then quinn in each round, prints the JSON lines to stdout and
/// returns the records and the summary table.
pub async fn run(opts: &Options, live: LiveBytes) -> BenchResult<(Vec<Record>, Table)> {
    let mut jsp = Figures::default();
    let mut quinn = Figures::default();
    let wants = |name: &str| opts.only.as_deref().is_none_or(|o| o == name);
    if opts.bulk_bytes > 0 {
        // One unmeasured transfer per stack first: the first bulk transfer in a process pays
        // for growing the heap and the page tables, and JSP, which runs first in each round,
        // would otherwise pay it alone.
        let warmup = (opts.bulk_bytes / 8).max(1);
        if wants(Jsp::NAME) {
            Jsp::bulk(warmup, opts.chunk).await?;
        }
        if wants(Quinn::NAME) {
            Quinn::bulk(warmup, opts.chunk).await?;
        }
    }
    for r in 0..opts.rounds.max(1) {
        eprintln!("round {}/{}", r + 1, opts.rounds.max(1));
        if wants(Jsp::NAME) {
            round::<Jsp>(opts, &mut jsp).await?;
        }
        if wants(Quinn::NAME) {
            round::<Quinn>(opts, &mut quinn).await?;
        }
    }
    // Idle connections once per stack (the slowest test), JSP first.
    if opts.idle_conns > 0 {
        let mut held = Vec::new();
        if wants(Jsp::NAME) {
            held.push((
                &mut jsp,
                Jsp::idle(opts.idle_conns, opts.concurrency, live).await?,
            ));
        }
        if wants(Quinn::NAME) {
            held.push((
                &mut quinn,
                Quinn::idle(opts.idle_conns, opts.concurrency, live).await?,
            ));
        }
        for (f, idle) in held {
            f.heap.push(idle.heap_per_conn);
            if let Some(rss) = idle.rss_per_conn {
                f.rss.push(rss);
            }
        }
    }
    let ceiling = if opts.bulk_bytes > 0 {
        Some(ceiling::seal_rate(opts.ceiling_time))
    } else {
        None
    };
    let udp_ceiling = if opts.bulk_bytes > 0 && !opts.ceiling_time.is_zero() {
        ceiling::udp_rate(opts.ceiling_time).ok()
    } else {
        None
    };

    let mut records = Vec::new();
    let mut table = Table::default();
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&Figures) -> &Vec<f64>,
        Better,
        &'static str,
    );
    let metrics: [Metric; 8] = [
        (
            "bulk",
            "goodput",
            "MB/s",
            |f| &f.goodput,
            Better::Higher,
            "≥ 1.3",
        ),
        (
            "bulk",
            "cpu_per_gb",
            "s/GB",
            |f| &f.cpu_per_gb,
            Better::Lower,
            "≤ 0.75",
        ),
        (
            "handshake",
            "sequential",
            "1/s",
            |f| &f.seq,
            Better::Higher,
            "≥ 1.5",
        ),
        (
            "handshake",
            "concurrent",
            "1/s",
            |f| &f.conc,
            Better::Higher,
            "≥ 1.5",
        ),
        (
            "idle",
            "heap_per_conn",
            "B",
            |f| &f.heap,
            Better::Lower,
            "≤ 0.5",
        ),
        (
            "idle",
            "rss_per_conn",
            "B",
            |f| &f.rss,
            Better::Lower,
            "≤ 0.5",
        ),
        ("echo", "p50", "µs", |f| &f.p50, Better::Lower, "–"),
        ("echo", "p99", "µs", |f| &f.p99, Better::Lower, "–"),
    ];
    for (bench, metric, unit, get, better, target) in metrics {
        let j = median(get(&jsp).clone());
        let q = median(get(&quinn).clone());
        for (implementation, v) in [("jsp", j), ("quinn", q)] {
            if let Some(value) = v {
                records.push(Record {
                    bench,
                    implementation,
                    metric,
                    value,
                    unit,
                });
            }
        }
        if j.is_some() || q.is_some() {
            table.row(bench, metric, unit, j, q, better, target);
        }
    }
    if let Some((suite, rate)) = ceiling {
        let rate = rate / 1e6;
        records.push(Record {
            bench: "bulk",
            implementation: "ceiling",
            metric: "aead_seal",
            value: rate,
            unit: "MB/s",
        });
        let share = median(jsp.goodput.clone()).map(|g| g / rate);
        table.note(format!(
            "AEAD seal ceiling ({suite:?}, {} B packets, one core): {rate:.0} MB/s; JSP goodput is {} \
             of it (target ≥ 0.70). JSP's connection used {}; quinn {}.",
            ceiling::PAYLOAD,
            share.map_or("–".to_string(), |s| format!("{s:.2}")),
            jsp.suite,
            quinn.suite,
        ));
        if let Some(udp) = udp_ceiling {
            let delivered = udp.delivered / 1e6;
            records.push(Record {
                bench: "bulk",
                implementation: "ceiling",
                metric: "loopback_udp",
                value: delivered,
                unit: "MB/s",
            });
            // Plaintext per UDP payload byte.
            let payload = ceiling::PAYLOAD as f64 / ceiling::DATAGRAM as f64;
            let goodput = median(jsp.goodput.clone());
            table.note(format!(
                "Loopback UDP ceiling (one thread to another, GSO/GRO batches of {} B \
                 datagrams, no protocol): {delivered:.0} MB/s delivered ({:.0} MB/s of {} B \
                 payloads); JSP's goodput is {} of it.",
                ceiling::DATAGRAM,
                delivered * payload,
                ceiling::PAYLOAD,
                goodput.map_or("–".to_string(), |g| format!(
                    "{:.2}",
                    g / (delivered * payload)
                )),
            ));
            if let Some(per_cpu) = udp.sent_per_cpu_second {
                let per_cpu = per_cpu / 1e6 * payload;
                records.push(Record {
                    bench: "bulk",
                    implementation: "ceiling",
                    metric: "udp_send_per_cpu_second",
                    value: per_cpu,
                    unit: "MB/s",
                });
                // One core that only seals and sends, nothing else (no packetization, ACKs,
                // recovery, copies): its time per byte is the sum of the two.
                let seal_and_send = 1.0 / (1.0 / rate + 1.0 / per_cpu);
                table.note(format!(
                    "Sending alone costs the sender's core {:.2} s per GB of payload (GSO, \
                     loopback); a core that only sealed and sent would move at most \
                     {seal_and_send:.0} MB/s = {:.2} of the AEAD ceiling, before any protocol \
                     work.",
                    1e3 / per_cpu,
                    seal_and_send / rate,
                ));
            }
        }
    }
    table.note(format!(
        "{} round(s), medians, after one unmeasured bulk transfer of 1/8 the size per stack; JSP \
         then quinn in each round. CPU and memory cover client and \
         server together (one process). Idle memory from {} connections per stack.",
        opts.rounds.max(1),
        opts.idle_conns
    ));
    for r in &records {
        println!("{}", r.to_json());
    }
    Ok((records, table))
}
