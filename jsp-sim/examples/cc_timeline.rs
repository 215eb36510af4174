//! Where the time of a bulk upload goes: the client's BBR state and the bottleneck's idle time
//! over a run of `vs_quinn`'s `loss-1%` scenario (or another random-loss rate).
//!
//! ```text
//! cargo run --release -p jsp-sim --example cc_timeline [-- --seed N] [--loss P | --profile NAME [--clean]] [--bin MS] [-v]
//! ```
//!
//! The network is `vs_quinn`'s `loss-P` link (100 Mbit/s, 25 ms each way, a 625 kB queue,
//! random loss `P` both ways, default 0.01), or with `--profile NAME` a named profile as it is
//! (for example `bufferbloat`, to watch `max_bw` against the link; `--clean` without its random
//! loss, as `vs_quinn`'s clean scenarios; `lte-steps`, `vs_quinn`'s stepping link, with its
//! bandwidth steps), carrying 64 MiB on 4 streams, built as
//! `jsp_sim::scenario::build_jsp` does (same seed, same random draws), except that the client's
//! controller is a default [`Bbr`] wrapped to record every call. Output:
//! - the completion time and when each stream's data was all acknowledged; the client's and the
//!   link's loss counters;
//! - `DECOMP`: the completion time split into the bottleneck's idle time during the handshake,
//!   STARTUP, the steady state and the tail (after new data ran out: waiting for the last
//!   losses to be detected and repaired), its busy time (every datagram sent, headers included),
//!   and the last flight (the last departure to the client's completion: one RTT plus the
//!   peer's ACK delay);
//! - every BBR state change, with the model at that moment;
//! - one line per `--bin` ms (default 50): the bottleneck's idle time (replayed from the
//!   client's sends through a FIFO of the link's rate and queue), its cumulative sum, the
//!   rates offered to and sent on the link, queue drops, and BBR's state, window, bytes in
//!   flight (datagrams of 1472 bytes), pacing rate, `bw`, `max_bw`, `inflight_hi`/`_lo`
//!   (−1: unset), datagrams declared lost and the largest RTT sample;
//! - with `-v`: every rate sample, the sends of the last 150 ms and every congestion event.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use jsp_sim::jsp::JspNode;
use jsp_sim::jsp_core::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use jsp_sim::jsp_core::congestion::{
    Bbr, BbrConfig, BbrState, Controller, ControllerFactory, RateSample,
};
use jsp_sim::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_sim::jsp_core::recovery::RttEstimator;
use jsp_sim::jsp_core::session::ServerResumption;
use jsp_sim::jsp_core::{Duration, Instant};
use jsp_sim::profile::{Fault, Profile};
use jsp_sim::scenario::{ClientApp, Scenario, ServerApp, Transfer};

#[derive(Clone, Debug)]
struct Rec {
    t: f64,
    state: BbrState,
    cwnd: u64,
    pacing: u64,
    bw: u64,
    max_bw: u64,
    ihi: u64,
    ilo: u64,
    round: u64,
    inflight: u64,
    lost: u64,
    rtt: f64,
}

#[derive(Default, Debug)]
struct Log {
    recs: Vec<Rec>,
    sent: Vec<(f64, u64, u64)>,
    cong: Vec<(f64, f64, bool, u64)>,
}

struct Logged {
    inner: Bbr,
    log: Arc<Mutex<Log>>,
}

impl Controller for Logged {
    fn on_sent(&mut self, now: Instant, bytes: u64, bif: u64) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sent
            .push((now.since_origin().as_secs_f64(), bytes, bif));
        self.inner.on_sent(now, bytes, bif)
    }
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, rtt: &RttEstimator, al: bool) {
        self.inner.on_ack(now, sent, bytes, rtt, al)
    }
    fn on_congestion_event(&mut self, now: Instant, sent: Instant, p: bool, lost: u64) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cong
            .push((
                now.since_origin().as_secs_f64(),
                sent.since_origin().as_secs_f64(),
                p,
                lost,
            ));
        self.inner.on_congestion_event(now, sent, p, lost)
    }
    fn on_spurious_loss(&mut self) {
        self.inner.on_spurious_loss()
    }
    fn on_rate_sample(&mut self, rs: &RateSample) {
        self.inner.on_rate_sample(rs);
        let b = &self.inner;
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recs
            .push(Rec {
                t: rs.now.since_origin().as_secs_f64(),
                state: b.state(),
                cwnd: b.window(),
                pacing: b.pacing_rate().unwrap_or(0),
                bw: b.bw(),
                max_bw: b.max_bw(),
                ihi: b.inflight_hi(),
                ilo: b.inflight_lo(),
                round: b.round_count(),
                inflight: rs.bytes_in_flight,
                lost: rs.newly_lost,
                rtt: rs.rtt.map_or(-1.0, |r| r.as_secs_f64() * 1e3),
            });
    }
    fn on_mtu_change(&mut self, m: u16) {
        self.inner.on_mtu_change(m)
    }
    fn window(&self) -> u64 {
        self.inner.window()
    }
    fn pacing_rate(&self) -> Option<u64> {
        self.inner.pacing_rate()
    }
    fn name(&self) -> &'static str {
        "logged-bbr"
    }
}

#[derive(Debug)]
struct Factory(Arc<Mutex<Log>>);

impl ControllerFactory for Factory {
    fn build(&self, now: Instant, mtu: u16) -> Box<dyn Controller> {
        Box::new(Logged {
            inner: Bbr::new(BbrConfig::default(), now, mtu),
            log: self.0.clone(),
        })
    }
}

/// Where the time of a bulk upload goes: the client's BBR state and the bottleneck's idle time.
#[derive(clap::Parser, Debug)]
struct Args {
    /// Simulator seed: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random loss rate of the `loss` link, both ways, as a fraction (0.01 is 1 %).
    #[arg(long, default_value_t = 0.01, value_parser = loss_rate, conflicts_with = "profile")]
    loss: f64,
    /// A named profile as it is instead of the loss link (`jsp-sim profiles` lists them), or
    /// `lte-steps` (vs_quinn's bandwidth steps).
    #[arg(long, value_parser = profile_named)]
    profile: Option<Profile>,
    /// With `--profile`: without its random loss, duplication, reordering and corruption, as
    /// vs_quinn's clean scenarios (`lan`, `wifi`, `lte`, `satellite`).
    #[arg(long, requires = "profile")]
    clean: bool,
    /// Width of a timeline row, in milliseconds.
    #[arg(long = "bin", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    bin_ms: u64,
    /// Also print every rate sample, the last 150 ms of sends and every congestion event.
    #[arg(short)]
    verbose: bool,
}

/// A loss rate in `[0, 1)`.
fn loss_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err("a fraction below 1 (0.01 for 1 %)".into()),
    }
}

/// The profile [`Profile::named`] `v`.
fn profile_named(v: &str) -> Result<Profile, String> {
    Profile::named(v).ok_or_else(|| {
        "no such profile (`cargo run -p jsp-sim -- profiles` lists them; also lte-steps)".into()
    })
}

fn mbit(b: u64) -> f64 {
    if b == u64::MAX {
        -1.0
    } else {
        b as f64 * 8.0 / 1e6
    }
}

fn main() {
    let Args {
        seed,
        loss,
        profile,
        bin_ms,
        verbose,
        clean,
    } = clap::Parser::parse();
    let bytes = 64u64 << 20;
    let s = Scenario::new(
        profile.map_or_else(
            || Profile::random_loss("loss", loss),
            |p| if clean { p.clean() } else { p },
        ),
        seed,
        Transfer::many(4, bytes / 4),
    );
    let log = Arc::new(Mutex::new(Log::default()));
    // As scenario::build_jsp, with the client's controller logged.
    let mut sim = jsp_sim::sim::Simulator::new(s.seed);
    let mut rng = sim.rng().fork_core();
    let identity = Arc::new(IdentityKey::generate(SignatureScheme::Ed25519, &mut rng));
    let resumption = Arc::new(ServerResumption::new(&mut rng, Instant::ZERO));
    let transport = TransportConfig {
        idle_timeout: s.idle_timeout,
        ..TransportConfig::default()
    };
    let mut server_config = ServerConfig::new(identity.clone(), resumption);
    server_config.transport = Arc::new(transport.clone());
    let mut client_config = ClientConfig::pinned(identity.public());
    client_config.transport = Arc::new(TransportConfig {
        congestion_controller: Arc::new(Factory(log.clone())),
        ..transport
    });
    let client_config = Arc::new(client_config);
    let endpoint = Arc::new(EndpointConfig::default());
    let server_addr: SocketAddr = jsp_sim::scenario::SERVER_ADDR
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let server_node = JspNode::server(
        endpoint.clone(),
        Arc::new(server_config),
        sim.rng().fork_core(),
        Instant::ZERO,
        Box::new(ServerApp::new(s.seed, s.transfer.clone())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let server = sim.add_node("server", server_addr, Box::new(server_node));
    let mut node = JspNode::client(
        endpoint,
        sim.rng().fork_core(),
        Instant::ZERO,
        Box::new(ClientApp::new(s.seed, s.transfer.clone())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    node.connect(Instant::ZERO, client_config, server_addr, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let client_addr = SocketAddr::from(([10, 1, 0, 1], 50_000));
    let id = sim.add_node("client 0", client_addr, Box::new(node));
    let link = sim.connect(id, server, s.profile.up.clone(), s.profile.down.clone());
    let faults: Vec<Fault> = s.all_faults().cloned().collect();
    jsp_sim::scenario::schedule_faults(&mut sim, link, id, 0, &faults);
    let _ = server;

    let mut acked_at = [None::<f64>; 4];
    let mut link_bins: Vec<(u64, u64, u64)> = Vec::new();
    let mut next_bin = Duration::from_millis(bin_ms);
    let mut done_at = None;
    loop {
        if !sim.step().unwrap_or_else(|e| panic!("{e}")) {
            break;
        }
        let now = sim.now().since_origin();
        while now >= next_bin {
            let st = sim.link_stats(link).unwrap_or_default();
            link_bins.push((st[0].bytes_delivered, st[0].delivered, st[0].queue_drops));
            next_bin += Duration::from_millis(bin_ms);
        }
        let app = sim
            .node::<JspNode>(id)
            .and_then(|n| n.app::<ClientApp>())
            .unwrap_or_else(|| panic!("no client app"));
        for (i, st) in app.streams.iter().enumerate() {
            if st.acked && acked_at[i].is_none() {
                acked_at[i] = Some(now.as_secs_f64());
            }
        }
        if let Some(t) = app.completed_at {
            done_at = Some(t.since_origin().as_secs_f64());
            break;
        }
    }
    let log = log.lock().unwrap_or_else(PoisonError::into_inner);
    println!("completed at {done_at:?}; streams acked at {acked_at:?}");
    let cs = sim
        .node::<JspNode>(id)
        .and_then(|n| n.app::<ClientApp>())
        .unwrap_or_else(|| panic!("no client app"))
        .stats;
    println!(
        "client: packets sent {} lost {} retransmitted bytes {} congestion events {}",
        cs.packets_sent, cs.packets_lost, cs.retransmitted_bytes, cs.congestion_events
    );
    let st = sim.link_stats(link).unwrap_or_default();
    println!(
        "link up: lost {} queue drops {} offered {}; down: lost {} offered {}",
        st[0].lost, st[0].queue_drops, st[0].offered, st[1].lost, st[1].offered
    );
    // State changes.
    let mut prev: Option<BbrState> = None;
    for r in &log.recs {
        if prev != Some(r.state) {
            println!(
                "{:9.4} -> {:?} round {} cwnd {} pacing {:.2} bw {:.2} max_bw {:.2} ihi {} ilo {} inflight {}",
                r.t,
                r.state,
                r.round,
                r.cwnd,
                mbit(r.pacing),
                mbit(r.bw),
                mbit(r.max_bw),
                r.ihi as i64,
                r.ilo as i64,
                r.inflight
            );
            prev = Some(r.state);
        }
    }
    // Bins.
    println!("bin_end  idle_ms cum_idle link_Mbit  sent_Mbit drops | state cwnd_pk inflight_pk pacing bw max_bw ihi_pk ilo_pk lost_pk rtt_max");
    // The bottleneck's idle time per bin, from the client's sends (a FIFO at the link's rate).
    let nbins = link_bins.len() + 1;
    let mut idle = vec![0.0f64; nbins];
    let mut busy_until = 0.0f64;
    let queue_limit = s.profile.up.queue_bytes as u64;
    // The bottleneck's rate at time `t` (seconds), its bandwidth steps included.
    let base_bps = s.profile.up.bandwidth_bps.unwrap_or(u64::MAX) as f64;
    let rate_at = |t: f64| -> f64 {
        faults
            .iter()
            .filter_map(|f| match f {
                Fault::Bandwidth { at, bps } if at.as_secs_f64() <= t => Some((*at, *bps)),
                _ => None,
            })
            .max_by_key(|&(at, _)| at)
            .map_or(base_bps, |(_, bps)| bps.map_or(f64::MAX, |b| b as f64))
    };
    let mut busy_total = 0.0f64;
    let mut qbytes: std::collections::VecDeque<(f64, u64)> = Default::default();
    let mut queued = 0u64;
    for &(t, b, _) in &log.sent {
        while qbytes.front().is_some_and(|x| x.0 <= t) {
            queued -= qbytes.pop_front().map_or(0, |x| x.1);
        }
        let ip = b + 28;
        if queued + ip > queue_limit {
            continue;
        }
        if t > busy_until {
            // idle from busy_until to t, split over bins
            let mut a = busy_until;
            while a < t {
                let k = (a * 1e3 / bin_ms as f64) as usize;
                let end = ((k + 1) as f64 * bin_ms as f64 / 1e3).min(t);
                if k < nbins {
                    idle[k] += end - a;
                }
                a = end;
            }
            busy_until = t;
        }
        let service = ip as f64 * 8.0 / rate_at(busy_until);
        busy_until += service;
        busy_total += service;
        qbytes.push_back((busy_until, ip));
        queued += ip;
    }
    let idle_before = |t: f64| -> f64 {
        idle.iter()
            .enumerate()
            .map(|(k, v)| {
                let a = k as f64 * bin_ms as f64 / 1e3;
                let b = a + bin_ms as f64 / 1e3;
                if b <= t {
                    *v
                } else if a >= t {
                    0.0
                } else {
                    v * (t - a) / (b - a)
                }
            })
            .sum()
    };
    let startup_end = log
        .recs
        .iter()
        .find(|r| r.state != BbrState::Startup)
        .map_or(0.0, |r| r.t);
    // Decomposition: the handshake ends with the first rate sample; new data ends at the first
    // gap between sends in the last 5 % of the run longer than 3 ms and four datagrams' time
    // at the link's rate then (from there on only retransmissions leave), or with the last send.
    let handshake_end = log.recs.first().map_or(0.0, |r| r.t);
    let gap = |t: f64| (4.0 * 1500.0 * 8.0 / rate_at(t)).max(0.003);
    let t_new_end = log
        .sent
        .windows(2)
        .find(|w| w[0].0 > done_at.unwrap_or(0.0) * 0.95 && w[1].0 - w[0].0 > gap(w[0].0))
        .map(|w| w[0].0)
        .or_else(|| log.sent.last().map(|x| x.0))
        .unwrap_or(0.0);
    let last_dep = busy_until;
    let done = done_at.unwrap_or(0.0);
    println!(
        "DECOMP total {:.1} ms = handshake idle {:.1} + startup idle {:.1} (to {:.3}) + steady idle {:.1} + tail idle {:.1} + busy {:.1} + last flight {:.1}; new data ends {:.4}, last departure {:.4}",
        done * 1e3,
        idle_before(handshake_end) * 1e3,
        (idle_before(startup_end) - idle_before(handshake_end)) * 1e3,
        startup_end,
        (idle_before(t_new_end) - idle_before(startup_end)) * 1e3,
        (idle_before(last_dep) - idle_before(t_new_end)) * 1e3,
        busy_total * 1e3,
        (done - last_dep) * 1e3,
        t_new_end,
        last_dep,
    );
    let mut cum = 0.0;
    let mut prev_bytes = 0;
    let mut prev_drops = 0;
    let mut ri = 0;
    let mut si = 0;
    for (k, (bytes, _n, drops)) in link_bins.iter().enumerate() {
        let end = (k as f64 + 1.0) * bin_ms as f64 / 1e3;
        let db = bytes - prev_bytes;
        prev_bytes = *bytes;
        let mut sentb = 0;
        while si < log.sent.len() && log.sent[si].0 < end {
            sentb += log.sent[si].1;
            si += 1;
        }
        let mut last = None;
        let mut lost = 0;
        let mut rtt_max: f64 = 0.0;
        while ri < log.recs.len() && log.recs[ri].t < end {
            lost += log.recs[ri].lost;
            rtt_max = rtt_max.max(log.recs[ri].rtt);
            last = Some(&log.recs[ri]);
            ri += 1;
        }
        let mss = 1472.0;
        let st = last.map_or(String::new(), |r| {
            format!(
                "{:?} {:.0} {:.0} {:.2} {:.2} {:.2} {:.0} {:.0} {:.0} {:.1}",
                r.state,
                r.cwnd as f64 / mss,
                r.inflight as f64 / mss,
                mbit(r.pacing),
                mbit(r.bw),
                mbit(r.max_bw),
                if r.ihi == u64::MAX {
                    -1.0
                } else {
                    r.ihi as f64 / mss
                },
                if r.ilo == u64::MAX {
                    -1.0
                } else {
                    r.ilo as f64 / mss
                },
                lost as f64 / mss,
                rtt_max
            )
        });
        println!(
            "{end:7.3} {:6.1} {:7.1} {:8.2} {:8.2} {:4} | {st}",
            idle[k] * 1e3,
            {
                cum += idle[k];
                cum * 1e3
            },
            (db + 28 * (_n - link_bins.get(k.wrapping_sub(1)).map_or(0, |x| x.1))) as f64 * 8.0
                / (bin_ms as f64 / 1e3)
                / 1e6,
            sentb as f64 * 8.0 / (bin_ms as f64 / 1e3) / 1e6,
            drops - prev_drops
        );
        prev_drops = *drops;
    }
    if verbose {
        for r in &log.recs {
            println!("{r:?}");
        }
        for x in &log.sent {
            if x.0 > done_at.unwrap_or(0.0) - 0.15 {
                println!("sent {x:?}");
            }
        }
        for c in &log.cong {
            println!("cong {c:?}");
        }
    }
}
