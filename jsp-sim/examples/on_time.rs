//! Real-time messages with a deadline, JSP against quinn on the simulator (issue 8).
//!
//! ```text
//! cargo run --release -p jsp-sim --example on_time [-- --seconds N] [--seeds N] [--first S]
//! ```
//!
//! The workload: 50 messages/s of 200 B on one unidirectional stream, client → server; a message
//! is on time when the server's application reads it within 150 ms of the instant it was due.
//! Links: 100 Mbit/s, 25 ms each way (50 ms RTT), a 625 kB queue, with 1 %, 5 % and 10 % random
//! loss both ways, and the `bursty` profile (Gilbert–Elliott burst loss, ≈ 3 %) with its delay
//! set to 25 ms each way for the same RTT. Three contenders on identical links and seeds:
//! - `jsp-reliable`: a reliable JSP stream, FEC off (JSP's defaults);
//! - `jsp-pr-fec`: a partially reliable JSP stream with TTL = deadline, and adaptive FEC on both
//!   sides ([`FecConfig::default`]);
//! - `quinn`: a reliable quinn stream, quinn's default configuration (Cubic).
//!
//! Output: one JSON object per line (`bench`, `impl`, `metric`, `value`, `unit`), then a summary
//! table. Metrics: `on_time` (% of messages read within the deadline), `late` (read after it),
//! `missing` (never read: skipped by a partially reliable stream), `p50`/`p99` latency of
//! the messages read (ms), `loss` (the client → server link's measured loss, %), for JSP with FEC
//! `fec_overhead` (bytes of repair packets over all other bytes the client sent, %), and
//! `retransmitted` (bytes: JSP's stream retransmissions, quinn's lost bytes). Each figure is over
//! all seeds together (`--seeds`, default 3, seeds `--first` (default 1) and up, each
//! `--seconds` long, default 60). `--only NAME`
//! runs one link; `--ablation` adds `jsp-pr` (partially reliable, FEC off) and
//! `jsp-reliable-fec` (reliable, FEC on) to the JSON lines.

use jsp_sim::jsp_core::fec::FecConfig;
use jsp_sim::jsp_core::stream::DeliveryMode;
use jsp_sim::jsp_core::Duration;
use jsp_sim::profile::Profile;
use jsp_sim::quinn::{self, Controller};
use jsp_sim::scenario::messages::quantile;
use jsp_sim::scenario::on_time::{self, OnTimePlan, OnTimeReport};
use jsp_sim::scenario::{Scenario, Transfer};

fn emit(bench: &str, imp: &str, metric: &str, value: f64, unit: &str) {
    let v = if value.is_finite() {
        let s = format!("{value:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        "null".to_owned()
    };
    println!(
        "{{\"bench\":\"{bench}\",\"impl\":\"{imp}\",\"metric\":\"{metric}\",\"value\":{v},\"unit\":\"{unit}\"}}"
    );
}

fn bursty() -> Profile {
    let mut p = Profile::named("bursty").unwrap_or_else(|| panic!("no bursty profile"));
    p.up.delay = Duration::from_millis(25);
    p.down.delay = Duration::from_millis(25);
    p
}

/// Sums of several seeds' reports.
#[derive(Default)]
struct Total {
    sent: usize,
    on_time: usize,
    late: usize,
    missing: usize,
    latencies: Vec<Duration>,
    up_lost: u64,
    up_offered: u64,
    bytes: u64,
    repair: u64,
    retransmitted: u64,
    recovered: u64,
    violations: Vec<String>,
}

impl Total {
    fn add(&mut self, r: OnTimeReport) {
        self.sent += r.sent;
        self.on_time += r.on_time;
        self.late += r.late;
        self.missing += r.missing;
        self.latencies.extend(r.latencies);
        self.up_lost += r.up_lost;
        self.up_offered += r.up_offered;
        self.bytes += r.client_bytes_sent;
        self.repair += r.repair_bytes_sent;
        self.retransmitted += r.retransmitted_bytes;
        self.recovered += r.recovered;
        self.violations.extend(r.violations);
    }

    fn on_time(&self) -> f64 {
        100.0 * self.on_time as f64 / self.sent.max(1) as f64
    }

    fn loss(&self) -> f64 {
        100.0 * self.up_lost as f64 / self.up_offered.max(1) as f64
    }

    fn overhead(&self) -> f64 {
        100.0 * self.repair as f64 / self.bytes.saturating_sub(self.repair).max(1) as f64
    }
}

/// Real-time messages with a deadline: JSP (reliable; partially reliable with FEC) against
/// quinn on the simulator.
#[derive(clap::Parser, Debug)]
struct Args {
    /// Simulated seconds of messages per seed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Seeds per link (the figures are over all of them together).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Run one link only: loss-1%, loss-5%, loss-10% or bursty (another name is refused).
    #[arg(long)]
    only: Option<String>,
    /// Also run `jsp-pr` (partially reliable, FEC off) and `jsp-reliable-fec` (reliable, FEC on).
    #[arg(long)]
    ablation: bool,
}

fn main() {
    let Args {
        seconds,
        seeds,
        first,
        only,
        ablation,
    } = clap::Parser::parse();
    let plan = OnTimePlan::realtime(seconds);
    let profiles = [
        ("loss-1%", Profile::random_loss("loss-1%", 0.01)),
        ("loss-5%", Profile::random_loss("loss-5%", 0.05)),
        ("loss-10%", Profile::random_loss("loss-10%", 0.10)),
        ("bursty", bursty()),
    ];
    if let Some(bad) = only
        .as_ref()
        .filter(|o| profiles.iter().all(|(n, _)| n != o))
    {
        use clap::CommandFactory;
        let names: Vec<&str> = profiles.iter().map(|(n, _)| *n).collect();
        Args::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                format!(
                    "unknown link '{bad}' for '--only'; one of: {}",
                    names.join(", ")
                ),
            )
            .exit();
    }
    let mut rows = Vec::new();
    for (name, profile) in &profiles {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let bench = format!("on_time/{name}");
        let mut totals: [Total; 5] = Default::default();
        for seed in first..first + seeds {
            let mut s = Scenario::new(profile.clone(), seed, Transfer::many(0, 0));
            s.time_limit = Duration::from_secs(u64::from(seconds) + 120);
            totals[0].add(on_time::run_jsp(&s, plan, DeliveryMode::Reliable));
            let mut f = s.clone();
            f.fec = Some(FecConfig::default());
            totals[1].add(on_time::run_jsp(
                &f,
                plan,
                DeliveryMode::PartiallyReliable { ttl: plan.deadline },
            ));
            totals[2].add(quinn::run_on_time(&s, plan, Controller::Cubic));
            if ablation {
                let pr = DeliveryMode::PartiallyReliable { ttl: plan.deadline };
                totals[3].add(on_time::run_jsp(&s, plan, pr));
                totals[4].add(on_time::run_jsp(&f, plan, DeliveryMode::Reliable));
            }
        }
        let names = [
            "jsp-reliable",
            "jsp-pr-fec",
            "quinn",
            "jsp-pr",
            "jsp-reliable-fec",
        ];
        for (imp, t) in names.iter().zip(&totals).take(if ablation { 5 } else { 3 }) {
            emit(&bench, imp, "on_time", t.on_time(), "%");
            emit(&bench, imp, "late", t.late as f64, "messages");
            emit(&bench, imp, "missing", t.missing as f64, "messages");
            emit(
                &bench,
                imp,
                "p50",
                quantile(&t.latencies, 0.5).as_secs_f64() * 1e3,
                "ms",
            );
            emit(
                &bench,
                imp,
                "p99",
                quantile(&t.latencies, 0.99).as_secs_f64() * 1e3,
                "ms",
            );
            emit(&bench, imp, "loss", t.loss(), "%");
            emit(&bench, imp, "retransmitted", t.retransmitted as f64, "B");
            if imp.ends_with("-fec") {
                emit(&bench, imp, "fec_overhead", t.overhead(), "%");
                emit(&bench, imp, "fec_recovered", t.recovered as f64, "packets");
            }
            for v in &t.violations {
                eprintln!("{bench} {imp}: {v}");
            }
        }
        rows.push((name.to_string(), totals));
    }
    println!();
    println!(
        "{} messages per run ({} s at 50/s, 200 B, deadline 150 ms, RTT 50 ms), {} seeds",
        plan.count, seconds, seeds
    );
    println!(
        "| link | loss measured | JSP reliable | JSP PR+FEC | quinn | FEC overhead | overhead / loss | PR+FEC ≥ 99 % | JSP ≥ quinn |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, t) in &rows {
        let loss = t[1].loss();
        let ratio = if loss > 0.0 {
            t[1].overhead() / loss
        } else {
            0.0
        };
        println!(
            "| {name} | {loss:.2} % | {:.2} % | {:.2} % | {:.2} % | {:.2} % | {ratio:.2}× | {} | {} |",
            t[0].on_time(),
            t[1].on_time(),
            t[2].on_time(),
            t[1].overhead(),
            if t[1].on_time() >= 99.0 { "yes" } else { "no" },
            match (
                t[0].on_time() >= t[2].on_time(),
                t[1].on_time() >= t[2].on_time(),
            ) {
                (true, true) => "both",
                (false, true) => "PR+FEC",
                (true, false) => "reliable",
                (false, false) => "neither",
            },
        );
    }
}
