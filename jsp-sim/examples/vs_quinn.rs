//! JSP against quinn on the simulator: the same links, the same seed, side by side.
//!
//! ```text
//! cargo run --release -p jsp-sim --example vs_quinn [-- --seed N] [--mib N] [--only NAME,…]
//! ```
//!
//! Every scenario runs JSP (its default configuration, except `messages`, below) and quinn-proto with each controller it
//! ships (Cubic, NewReno, BBR; quinn's default transport with JSP's flow-control windows, see
//! `jsp_sim::quinn`), each over an identical simulated network built from the same seed. Output:
//! one JSON object per line (`bench`, `impl`, `metric`, `value`, `unit`; `impl` is `jsp`,
//! `quinn-cubic`, `quinn-newreno`, `quinn-bbr`, or `link` for the scenario's bottleneck rate),
//! then a summary table with JSP ÷ the best quinn controller per scenario.
//!
//! Scenarios (client → server bulk uploads of `--mib` MiB, default 64, on 4 streams of a quarter
//! each; the link rate is the upload direction's):
//! - `lan`, `wifi`, `lte`, `satellite`: the named profiles' rates, delays, jitter and queues with
//!   their random loss, reordering, duplication and corruption taken out ("clean");
//! - `wifi-lossy`, `lte-lossy`, `satellite-lossy`: the same profiles as they are (0.2 % loss with
//!   reordering and duplication; 0.1 %; 0.5 %);
//! - `lte-steps`: clean `lte` whose bottleneck steps every 10 s through 10, 3, 10, 5 Mbit/s (the
//!   link row is the 7 Mbit/s mean);
//! - `loss-1%`, `loss-3%`: 100 Mbit/s, 25 ms each way (50 ms RTT), a 1-BDP queue (625 kB), random
//!   loss both ways;
//! - `bursty`: the profile as it is (Gilbert–Elliott burst loss, ≈ 3.2 %);
//! - `bufferbloat`: the profile (10 Mbit/s, 2 MiB queue ≈ 1.7 s), with the queueing delay each
//!   datagram meets at the bottleneck — its RTT minus the base RTT — as mean and p99;
//! - `messages`: 1,000 requests of 200 B, one every 10 ms, each answered with 200 B on its own
//!   bidirectional stream, over the `loss-1%` link; p50/p99 of request → complete answer. JSP
//!   runs here with its documented setting for latency-sensitive small messages, the latency
//!   FEC profile on both sides (`TransportConfig::fec = Some(FecConfig::latency())`: a block
//!   closes at most 30 ms after its first packet, with a repair symbol; PROTOCOL §12.18), and
//!   reports its `fec_overhead` (repair-packet bytes ÷ all other bytes, both directions); the
//!   JSON lines also give `jsp-defaults` (FEC off) for comparison. quinn keeps its defaults.
//!
//! Goodput is payload bytes verified at the receiver over the time from the first packet to the
//! last acknowledgement (handshake included), in Mbit/s; the link rate counts IP packets (payload
//! plus 28 bytes of headers), so even a perfect sender stays a few percent below it.

use std::time::Instant as WallClock;

use jsp_sim::jsp_core::fec::FecConfig;
use jsp_sim::jsp_core::Duration;
use jsp_sim::link::LinkStats;
use jsp_sim::profile::{Profile, LTE_STEPS};
use jsp_sim::quinn::{self, Controller};
use jsp_sim::scenario::messages::{self, Messages};
use jsp_sim::scenario::{Scenario, Transfer};

const STREAMS: usize = 4;

/// One JSON line.
fn emit(bench: &str, imp: &str, metric: &str, value: f64, unit: &str) {
    println!(
        "{{\"bench\":\"{bench}\",\"impl\":\"{imp}\",\"metric\":\"{metric}\",\"value\":{},\"unit\":\"{unit}\"}}",
        fmt_num(value)
    );
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "null".into();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_owned()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn clean(name: &str) -> Profile {
    named(name).clean()
}

fn named(name: &str) -> Profile {
    Profile::named(name).unwrap_or_else(|| panic!("no profile {name}"))
}

/// `lte` without random loss, its bottleneck stepping every 10 s through 10, 3, 10 and
/// 5 Mbit/s (both directions), repeating, with its mean rate up in Mbit/s (7).
fn lte_steps() -> (Profile, f64) {
    (
        Profile::lte_steps(),
        LTE_STEPS.iter().sum::<u64>() as f64 / LTE_STEPS.len() as f64 / 1e6,
    )
}

/// Which way a metric is better.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// The issue's target for a row, as JSP's value against the link rate or the best quinn.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    None,
    /// Goodput ≥ this fraction of the link rate.
    Link(f64),
    /// Goodput ≥ min(`mult` × best quinn, `frac` × link rate).
    Loss {
        mult: f64,
        frac: f64,
    },
    /// A delay ≤ this fraction of the best quinn's.
    Quinn(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Self::None => String::new(),
            Self::Link(f) => format!("≥ {f}× link"),
            Self::Loss { mult, frac } => format!("≥ min({mult}× quinn, {frac}× link)"),
            Self::Quinn(f) => format!("≤ {f}× quinn"),
        }
    }

    /// `met`, or by how much JSP missed (the factor it must still gain), or nothing.
    fn verdict(self, jsp: Option<f64>, best: Option<f64>, link: Option<f64>) -> String {
        let need = match (self, best, link) {
            (Self::None, _, _) => return String::new(),
            (Self::Link(f), _, Some(l)) => f * l,
            (Self::Loss { mult, frac }, Some(b), Some(l)) => (mult * b).min(frac * l),
            (Self::Quinn(f), Some(b), _) => f * b,
            _ => return "-".into(),
        };
        let Some(j) = jsp else {
            return "MISSED (failed)".into();
        };
        match self {
            Self::Quinn(_) if j <= need => "met".into(),
            Self::Quinn(_) => format!("MISSED: {:.2}× too high", j / need.max(1e-9)),
            _ if j >= need => "met".into(),
            _ => format!("MISSED: needs {:.2}× more", need / j.max(1e-9)),
        }
    }
}

/// One row of the summary: a metric of a scenario for every implementation.
struct Row {
    bench: String,
    metric: &'static str,
    unit: &'static str,
    better: Better,
    link: Option<f64>,
    jsp: Option<f64>,
    quinn: Vec<(Controller, Option<f64>)>,
    target: Target,
}

impl Row {
    fn new(bench: &str, metric: &'static str, unit: &'static str, better: Better) -> Self {
        Self {
            bench: bench.to_owned(),
            metric,
            unit,
            better,
            link: None,
            jsp: None,
            quinn: Vec::new(),
            target: Target::None,
        }
    }

    fn best_quinn(&self) -> Option<(Controller, f64)> {
        self.quinn
            .iter()
            .filter_map(|(c, v)| v.map(|v| (*c, v)))
            .fold(None, |best, (c, v)| match best {
                None => Some((c, v)),
                Some((_, b))
                    if (self.better == Better::Higher && v > b)
                        || (self.better == Better::Lower && v < b) =>
                {
                    Some((c, v))
                }
                keep => keep,
            })
    }
}

struct Bulk {
    name: &'static str,
    profile: Profile,
    target: Target,
    /// The link rate to report when it changes during the run (its mean), in Mbit/s.
    mean_rate: Option<f64>,
}

fn run_bulk(b: &Bulk, seed: u64, bytes: u64, rows: &mut Vec<Row>) {
    let link_mbps = b
        .mean_rate
        .or(b.profile.up.bandwidth_bps.map(|v| v as f64 / 1e6));
    if let Some(l) = link_mbps {
        emit(b.name, "link", "rate", l, "Mbit/s");
    }
    let mut s = Scenario::new(
        b.profile.clone(),
        seed,
        Transfer::many(STREAMS, bytes / STREAMS as u64),
    );
    s.record_queue_delays = true;
    let mut goodput = Row::new(b.name, "goodput", "Mbit/s", Better::Higher);
    goodput.link = link_mbps;
    goodput.target = b.target;
    let mut qmean = Row::new(b.name, "queue delay mean", "ms", Better::Lower);
    let mut qp99 = Row::new(b.name, "queue delay p99", "ms", Better::Lower);
    if b.name == "bufferbloat" {
        qmean.target = Target::Quinn(0.5);
        qp99.target = Target::Quinn(0.5);
    }
    let one = |imp: &str,
               ok: Result<(), String>,
               goodput_bps: Option<f64>,
               completion: Option<Duration>,
               delays: &[Duration],
               lost: u64,
               sent: u64,
               up: &LinkStats,
               wall: f64|
     -> (Option<f64>, f64, f64) {
        if let Err(e) = &ok {
            eprintln!("{}: {imp} FAILED: {e}", b.name);
        }
        let g = goodput_bps.map(|v| v / 1e6);
        if let Some(g) = g {
            emit(b.name, imp, "goodput", g, "Mbit/s");
        }
        if let Some(t) = completion {
            emit(b.name, imp, "completion_time", t.as_secs_f64(), "s");
        }
        let (mean, p99) = (
            ms(messages::mean(delays)),
            ms(messages::quantile(delays, 0.99)),
        );
        emit(b.name, imp, "queue_delay_mean", mean, "ms");
        emit(b.name, imp, "queue_delay_p99", p99, "ms");
        emit(b.name, imp, "packets_lost", lost as f64, "packets");
        emit(b.name, imp, "packets_sent", sent as f64, "packets");
        emit(
            b.name,
            imp,
            "up_datagram_size_mean",
            up.bytes_delivered as f64 / up.delivered.max(1) as f64,
            "B",
        );
        emit(
            b.name,
            imp,
            "up_queue_drops",
            up.queue_drops as f64,
            "datagrams",
        );
        emit(b.name, imp, "wall_time", wall, "s");
        (g, mean, p99)
    };
    let t = WallClock::now();
    let r = s.run();
    let (g, mean, p99) = one(
        "jsp",
        r.check(),
        r.completed.then(|| r.goodput_bps()),
        r.completion_time,
        &r.up_queue_delays,
        r.client_stats.packets_lost,
        r.client_stats.packets_sent,
        &r.up,
        t.elapsed().as_secs_f64(),
    );
    goodput.jsp = g;
    qmean.jsp = Some(mean);
    qp99.jsp = Some(p99);
    for c in Controller::ALL {
        let imp = format!("quinn-{}", c.name());
        let t = WallClock::now();
        let r = quinn::run_transfer(&s, c);
        let (g, mean, p99) = one(
            &imp,
            r.check(),
            r.completed.then(|| r.goodput_bps()),
            r.completion_time,
            &r.up_queue_delays,
            r.packets_lost,
            r.packets_sent,
            &r.up,
            t.elapsed().as_secs_f64(),
        );
        goodput.quinn.push((c, g));
        qmean.quinn.push((c, Some(mean)));
        qp99.quinn.push((c, Some(p99)));
    }
    rows.push(goodput);
    if b.name == "bufferbloat" {
        rows.push(qmean);
        rows.push(qp99);
    }
}

fn run_messages(seed: u64, rows: &mut Vec<Row>) {
    let name = "messages";
    let plan = Messages {
        count: 1000,
        size: 200,
        interval: Duration::from_millis(10),
    };
    let s = Scenario::new(
        Profile::random_loss("messages", 0.01),
        seed,
        Transfer::large(0),
    );
    emit(name, "link", "rate", 100.0, "Mbit/s");
    emit(name, "link", "base_rtt", 50.0, "ms");
    let mut p50 = Row::new(name, "latency p50", "ms", Better::Lower);
    p50.link = Some(50.0);
    let mut p99 = Row::new(name, "latency p99", "ms", Better::Lower);
    p99.link = Some(50.0);
    p99.target = Target::Quinn(0.8);
    let one = |imp: &str, r: &messages::MessageReport, wall: f64| -> (Option<f64>, Option<f64>) {
        if let Err(e) = r.check() {
            eprintln!("{name}: {imp} FAILED: {e}");
            return (None, None);
        }
        let (a, b) = (
            ms(messages::quantile(&r.latencies, 0.5)),
            ms(messages::quantile(&r.latencies, 0.99)),
        );
        emit(name, imp, "latency_p50", a, "ms");
        emit(name, imp, "latency_p99", b, "ms");
        emit(
            name,
            imp,
            "latency_max",
            ms(messages::quantile(&r.latencies, 1.0)),
            "ms",
        );
        emit(
            name,
            imp,
            "latency_mean",
            ms(messages::mean(&r.latencies)),
            "ms",
        );
        emit(name, imp, "wall_time", wall, "s");
        (Some(a), Some(b))
    };
    // JSP with its documented setting for latency-sensitive small messages: the latency FEC
    // profile on both sides (quinn keeps its defaults).
    let mut f = s.clone();
    f.fec = Some(FecConfig::latency());
    let t = WallClock::now();
    let r = messages::run_jsp(&f, plan);
    (p50.jsp, p99.jsp) = one("jsp", &r, t.elapsed().as_secs_f64());
    let other = r.bytes_sent.saturating_sub(r.repair_bytes_sent).max(1);
    emit(
        name,
        "jsp",
        "fec_overhead",
        100.0 * r.repair_bytes_sent as f64 / other as f64,
        "%",
    );
    emit(name, "jsp", "bytes_sent", r.bytes_sent as f64, "B");
    // For comparison (JSON lines only): JSP with its defaults (FEC off).
    let t = WallClock::now();
    let r = messages::run_jsp(&s, plan);
    one("jsp-defaults", &r, t.elapsed().as_secs_f64());
    emit(name, "jsp-defaults", "bytes_sent", r.bytes_sent as f64, "B");
    for c in Controller::ALL {
        let t = WallClock::now();
        let r = quinn::run_messages(&s, plan, c);
        let (a, b) = one(
            &format!("quinn-{}", c.name()),
            &r,
            t.elapsed().as_secs_f64(),
        );
        p50.quinn.push((c, a));
        p99.quinn.push((c, b));
    }
    rows.push(p50);
    rows.push(p99);
}

fn cell(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "FAIL".into(),
    }
}

fn summary(rows: &[Row], seed: u64, bytes: u64, wall: f64) {
    println!();
    println!(
        "JSP vs quinn on jsp-sim — seed {seed}, bulk {} MiB on {STREAMS} streams, {wall:.1} s wall",
        bytes >> 20
    );
    println!(
        "{:<16} {:<22} {:>6} {:>8} {:>8} {:>9} {:>8}  {:<13} {:>8} {:>8}  {:<30} verdict",
        "scenario",
        "metric",
        "link",
        "jsp",
        "q-cubic",
        "q-newreno",
        "q-bbr",
        "best quinn",
        "jsp÷best",
        "jsp÷link",
        "target"
    );
    for r in rows {
        let q = |c: Controller| r.quinn.iter().find(|(k, _)| *k == c).and_then(|(_, v)| *v);
        let best = r.best_quinn();
        let ratio = match (r.jsp, best) {
            (Some(j), Some((_, b))) if b > 0.0 => format!("{:.2}×", j / b),
            _ => "-".into(),
        };
        let vs_link = match (r.jsp, r.link, r.metric) {
            (Some(j), Some(l), "goodput") if l > 0.0 => format!("{:.2}×", j / l),
            _ => "-".into(),
        };
        println!(
            "{:<16} {:<22} {:>6} {:>8} {:>8} {:>9} {:>8}  {:<13} {:>8} {:>8}  {:<30} {}",
            r.bench,
            format!("{} ({})", r.metric, r.unit),
            r.link.map_or("-".into(), |l| format!("{l:.0}")),
            cell(r.jsp),
            cell(q(Controller::Cubic)),
            cell(q(Controller::NewReno)),
            cell(q(Controller::Bbr)),
            best.map_or("-".into(), |(c, v)| format!(
                "{} {}",
                c.name(),
                cell(Some(v))
            )),
            ratio,
            vs_link,
            r.target.text(),
            r.target.verdict(r.jsp, best.map(|(_, v)| v), r.link)
        );
    }
    println!(
        "goodput: higher is better; queue delay and latency: lower. Link rates count IP bytes \
         (payload + 28 B headers). quinn-bbr seeds its gain cycle from the OS, so its numbers \
         vary slightly between runs; everything else replays exactly from the seed."
    );
}

/// JSP against quinn (Cubic, NewReno, BBR) on identical simulated links and seeds.
#[derive(clap::Parser, Debug)]
struct Args {
    /// Simulator seed: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// MiB of each bulk upload (on 4 streams of a quarter each).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    mib: u64,
    /// Run only these scenarios (comma-separated names, as in the summary table; an unknown
    /// name is refused with the list).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
}

/// Exits with a usage error unless every name of `only` is one of `known`.
fn check_names(only: Option<&Vec<String>>, known: &[&str]) {
    if let Some(bad) = only
        .into_iter()
        .flatten()
        .find(|n| !known.contains(&n.as_str()))
    {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                format!(
                    "unknown scenario '{bad}' for '--only'; one of: {}",
                    known.join(", ")
                ),
            )
            .exit();
    }
}

fn main() {
    let Args { seed, mib, only } = clap::Parser::parse();
    let bytes = mib << 20;
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let bulk_of = |name, profile, target| Bulk {
        name,
        profile,
        target,
        mean_rate: None,
    };
    let (steps, steps_rate) = lte_steps();
    let bulk = [
        bulk_of("lan", clean("lan"), Target::Link(0.95)),
        bulk_of("wifi", clean("wifi"), Target::Link(0.95)),
        bulk_of("lte", clean("lte"), Target::Link(0.95)),
        bulk_of("satellite", clean("satellite"), Target::Link(0.95)),
        bulk_of("wifi-lossy", named("wifi"), Target::None),
        bulk_of("lte-lossy", named("lte"), Target::None),
        bulk_of("satellite-lossy", named("satellite"), Target::None),
        Bulk {
            mean_rate: Some(steps_rate),
            ..bulk_of("lte-steps", steps, Target::None)
        },
        bulk_of(
            "loss-1%",
            Profile::random_loss("loss-1%", 0.01),
            Target::Loss {
                mult: 1.5,
                frac: 0.9,
            },
        ),
        bulk_of(
            "loss-3%",
            Profile::random_loss("loss-3%", 0.03),
            Target::Loss {
                mult: 3.0,
                frac: 0.85,
            },
        ),
        bulk_of("bursty", named("bursty"), Target::None),
        bulk_of("bufferbloat", named("bufferbloat"), Target::Link(0.9)),
    ];
    let names: Vec<&str> = bulk.iter().map(|b| b.name).chain(["messages"]).collect();
    check_names(only.as_ref(), &names);
    let start = WallClock::now();
    let mut rows = Vec::new();
    for b in &bulk {
        if wanted(b.name) {
            run_bulk(b, seed, bytes, &mut rows);
        }
    }
    if wanted("messages") {
        run_messages(seed, &mut rows);
    }
    summary(&rows, seed, bytes, start.elapsed().as_secs_f64());
}
