//! `jsp-sim`: run a JSP transfer over a simulated network, or soak many random ones.
//!
//! ```text
//! jsp-sim run  --profile lte --seed 7 --bytes 4194304 --streams 4 [--response B]
//!              [--datagrams N --datagram-size B] [--clients C] [--idle-timeout S]
//!              [--outage AT:DUR] [--rebind AT] [--trace N]
//! jsp-sim soak --seeds 1000 [--start 0] [--verbose]
//! jsp-sim replay --seed 42 [--trace 200]
//! jsp-sim profiles
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant as WallClock;

use jsp_sim::jsp_core::Duration;
use jsp_sim::profile::{Fault, Profile, PROFILE_NAMES};
use jsp_sim::scenario::{random_scenario, Report, Scenario, Transfer};

const USAGE: &str = "usage:
  jsp-sim run --profile NAME --seed N [--bytes B] [--streams K] [--response B]
              [--datagrams N] [--datagram-size B] [--clients C] [--idle-timeout SECS]
              [--outage AT:DUR] [--rebind AT] [--trace LINES]
  jsp-sim soak --seeds N [--start S] [--verbose]
  jsp-sim replay --seed N [--trace LINES]      (one soak scenario, with its trace)
  jsp-sim profiles";

struct Args(Vec<String>);

impl Args {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == name)?;
        if i + 1 >= self.0.len() {
            return None;
        }
        let v = self.0.remove(i + 1);
        self.0.remove(i);
        Some(v)
    }

    fn flag(&mut self, name: &str) -> bool {
        match self.0.iter().position(|a| a == name) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.take(name) {
            Some(v) => v.parse().map_err(|_| format!("{name}: cannot parse {v:?}")),
            None => Ok(default),
        }
    }

    fn all(&mut self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(v) = self.take(name) {
            out.push(v);
        }
        out
    }

    fn finish(self) -> Result<(), String> {
        match self.0.first() {
            Some(a) => Err(format!("unexpected argument {a:?}")),
            None => Ok(()),
        }
    }
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a number of seconds: {s:?}"))
}

fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn print_report(r: &Report, wall: std::time::Duration) {
    let sim = r.sim_time.as_secs_f64();
    let rows: Vec<(&str, String)> = vec![
        ("scenario", r.scenario.clone()),
        ("seed", r.seed.to_string()),
        (
            "trace hash",
            format!("{} ({} events)", r.trace_hash, r.trace_events),
        ),
        (
            "outcome",
            if r.completed {
                "completed: every byte delivered exactly once, in order".into()
            } else if r.losses.is_empty() {
                "incomplete".into()
            } else {
                format!("connection ended: {}", r.losses.join("; "))
            },
        ),
        (
            "completion time",
            r.completion_time
                .map_or("-".into(), |t| format!("{:.3} s", t.as_secs_f64())),
        ),
        ("goodput", format!("{:.2} Mbit/s", r.goodput_bps() / 1e6)),
        (
            "delivered",
            format!(
                "{} up, {} down",
                fmt_bytes(r.bytes_up),
                fmt_bytes(r.bytes_down)
            ),
        ),
        (
            "rtt (smoothed)",
            format!("{:.2} ms", r.rtt.as_secs_f64() * 1e3),
        ),
        (
            "network loss",
            format!(
                "up {} of {} ({:.2}%), down {} of {} ({:.2}%); queue drops {}/{}",
                r.up.dropped(),
                r.up.offered,
                100.0 * r.up.dropped() as f64 / r.up.offered.max(1) as f64,
                r.down.dropped(),
                r.down.offered,
                100.0 * r.down.dropped() as f64 / r.down.offered.max(1) as f64,
                r.up.queue_drops,
                r.down.queue_drops
            ),
        ),
        (
            "retransmissions",
            format!(
                "{} packets declared lost by clients, {} by server (of {} / {} sent)",
                r.client_stats.packets_lost,
                r.server_stats.packets_lost,
                r.client_stats.packets_sent,
                r.server_stats.packets_sent
            ),
        ),
        (
            "datagrams",
            format!(
                "{} sent, {} received",
                r.datagrams_sent, r.datagrams_received
            ),
        ),
        (
            "simulated time",
            format!("{sim:.3} s in {:.3} s wall", wall.as_secs_f64()),
        ),
        (
            "sim s / wall s",
            format!("{:.2}", sim / wall.as_secs_f64().max(1e-9)),
        ),
    ];
    for (k, v) in rows {
        println!("{k:>16}  {v}");
    }
    for v in &r.violations {
        println!("{:>16}  {v}", "VIOLATION");
    }
}

fn run(mut a: Args) -> Result<bool, String> {
    let name = a.take("--profile").unwrap_or_else(|| "lan".into());
    let profile = Profile::named(&name).ok_or_else(|| {
        format!(
            "unknown profile {name:?}; one of {}",
            PROFILE_NAMES.join(", ")
        )
    })?;
    let seed = a.num("--seed", 1u64)?;
    let bytes = a.num("--bytes", 1u64 << 20)?;
    let streams = a.num("--streams", 1usize)?;
    let mut transfer = Transfer::many(streams, bytes / streams.max(1) as u64);
    transfer.response_bytes = a.num("--response", 0u64)?;
    transfer.datagrams = a.num("--datagrams", 0usize)?;
    transfer.datagram_size = a.num("--datagram-size", 1000usize)?;
    let mut s = Scenario::new(profile, seed, transfer);
    s.clients = a.num("--clients", 1usize)?;
    if let Some(t) = a.take("--idle-timeout") {
        s.idle_timeout = secs(&t)?;
    }
    for o in a.all("--outage") {
        let (at, dur) = o
            .split_once(':')
            .ok_or("--outage wants AT:DURATION in seconds")?;
        s.faults.push(Fault::Outage {
            at: secs(at)?,
            duration: secs(dur)?,
        });
    }
    for r in a.all("--rebind") {
        s.faults.push(Fault::Rebind { at: secs(&r)? });
    }
    s.trace_log = a.num("--trace", 0usize)?;
    a.finish()?;
    let start = WallClock::now();
    let report = s.run();
    let wall = start.elapsed();
    for line in &report.trace_log {
        println!("{line}");
    }
    print_report(&report, wall);
    Ok(report.is_ok())
}

fn soak(mut a: Args) -> Result<bool, String> {
    let seeds = a.num("--seeds", 100u64)?;
    let start_seed = a.num("--start", 0u64)?;
    let verbose = a.flag("--verbose");
    a.finish()?;
    let start = WallClock::now();
    let (mut failed, mut completed, mut ended, mut sim_total) = (0u64, 0u64, 0u64, 0.0f64);
    for seed in start_seed..start_seed + seeds {
        let s = random_scenario(seed);
        let t = WallClock::now();
        let r = s.run();
        sim_total += r.sim_time.as_secs_f64();
        if r.completed {
            completed += 1;
        } else if !r.losses.is_empty() {
            ended += 1;
        }
        if verbose {
            println!(
                "seed {seed}: {} in {:.2}s wall, sim {:.1}s, trace {}: {}",
                if r.is_ok() { "ok" } else { "FAIL" },
                t.elapsed().as_secs_f64(),
                r.sim_time.as_secs_f64(),
                r.trace_hash,
                r.scenario
            );
        }
        if let Err(e) = r.check() {
            failed += 1;
            println!("FAILED seed {seed}: {e}");
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "soak: {seeds} seeds from {start_seed}: {} passed ({completed} completed, {ended} ended with a clear error after a long cut or a rebinding), {failed} failed; {sim_total:.0} simulated s in {wall:.1} s wall ({:.0} sim s / wall s)",
        seeds - failed,
        sim_total / wall.max(1e-9)
    );
    Ok(failed == 0)
}

fn replay(mut a: Args) -> Result<bool, String> {
    let seed = a.num("--seed", 0u64)?;
    let mut s = random_scenario(seed);
    s.trace_log = a.num("--trace", 0usize)?;
    a.finish()?;
    let start = WallClock::now();
    let report = s.run();
    let wall = start.elapsed();
    for line in &report.trace_log {
        println!("{line}");
    }
    print_report(&report, wall);
    Ok(report.is_ok())
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let cmd = argv.remove(0);
    let args = Args(argv);
    let result = match cmd.as_str() {
        "run" => run(args),
        "soak" => soak(args),
        "replay" => replay(args),
        "profiles" => {
            for p in Profile::all() {
                println!("{:<12} up {:?}\n{:<12} down {:?}", p.name, p.up, "", p.down);
            }
            Ok(true)
        }
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
