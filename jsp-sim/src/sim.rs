//! The simulator: a virtual clock, an event queue, hosts with addresses, and links between them.
//!
//! Time only moves when the simulator jumps it to the next event: the earliest of a scheduled
//! event (a datagram arriving, a link change, a NAT rebinding), ordered by `(time, sequence)`
//! in a binary heap, and the nodes' own deadlines from [`Node::poll_timeout`]. At one instant,
//! queued events run first in scheduling order, then due timers in node order; after each input
//! the node's transmits are drained onto its links at that same instant. Nothing depends on
//! hash-map order or the wall clock, so a seed replays a run exactly.
//!
//! A run fails — with the seed in its error — when it hangs (no node makes progress for
//! [`RunLimits::hang_after`] of simulated time), stalls (nothing left to happen, work not done),
//! exceeds its time limit, or livelocks (time stops advancing).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;

use bytes::BytesMut;
use jsp_core::{Duration, Instant};

use crate::link::{Fate, LinkChange, LinkConfig, LinkDirection, LinkStats};
use crate::node::Node;
use crate::rng::SimRng;
use crate::trace::{DropReason, Trace, TraceHash};

/// Identifies a node in a simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// Identifies a link in a simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub usize);

/// Which direction(s) of a link a change applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// From the link's first node to its second.
    AtoB,
    /// From the second node to the first.
    BtoA,
    /// Both directions.
    Both,
}

/// Bounds on a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLimits {
    /// Fail when simulated time passes this instant.
    pub max_time: Instant,
    /// Fail when no node makes progress for this long.
    pub hang_after: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_time: Instant::from_millis(3_600_000),
            hang_after: Duration::from_secs(120),
        }
    }
}

/// Steps at one instant after which time is considered stuck.
const LIVELOCK_STEPS: u64 = 1_000_000;

/// How a run failed. Each variant names the seed that replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// No node made progress for `hang_after`.
    Hang {
        /// The run's seed.
        seed: u64,
        /// When the hang was detected.
        at: Instant,
        /// The last progress.
        last_progress: Instant,
    },
    /// Nothing was left to happen, but the nodes were not done.
    Stalled {
        /// The run's seed.
        seed: u64,
        /// When the last event ran.
        at: Instant,
    },
    /// Simulated time passed the limit.
    TimeLimit {
        /// The run's seed.
        seed: u64,
        /// The limit.
        limit: Instant,
    },
    /// Time stopped advancing: too many steps at one instant.
    Livelock {
        /// The run's seed.
        seed: u64,
        /// The instant time stuck at.
        at: Instant,
    },
}

fn secs(t: Instant) -> f64 {
    t.since_origin().as_secs_f64()
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Hang {
                seed,
                at,
                last_progress,
            } => write!(
                f,
                "hang: no progress from {:.3}s to {:.3}s (seed {seed})",
                secs(*last_progress),
                secs(*at)
            ),
            Self::Stalled { seed, at } => write!(
                f,
                "stalled: nothing left to happen at {:.3}s but work not done (seed {seed})",
                secs(*at)
            ),
            Self::TimeLimit { seed, limit } => write!(
                f,
                "not done within the time limit of {:.3}s (seed {seed})",
                secs(*limit)
            ),
            Self::Livelock { seed, at } => write!(
                f,
                "livelock: time stopped advancing at {:.3}s (seed {seed})",
                secs(*at)
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// Counters of the simulator itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Steps taken.
    pub steps: u64,
    /// Datagrams handed to nodes.
    pub deliveries: u64,
    /// Node timers fired.
    pub timers: u64,
    /// Datagrams sent to an address without a host or link.
    pub no_route: u64,
    /// Datagrams addressed to a NAT binding that had changed.
    pub stale_bindings: u64,
    /// The most events queued at once (datagrams in flight and scheduled changes).
    pub max_pending: u64,
}

struct Slot {
    name: String,
    node: Box<dyn Node>,
    addr: SocketAddr,
    deadline: Option<Instant>,
    dirty: bool,
}

struct Link {
    a: NodeId,
    b: NodeId,
    dirs: [LinkDirection; 2],
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: NodeId,
        to_addr: SocketAddr,
        from: SocketAddr,
        data: BytesMut,
    },
    Change {
        link: LinkId,
        which: Which,
        change: LinkChange,
    },
    Rebind {
        node: NodeId,
        addr: SocketAddr,
    },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A simulated network and the nodes on it.
pub struct Simulator {
    seed: u64,
    now: Instant,
    rng: SimRng,
    nodes: Vec<Slot>,
    links: Vec<Link>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    routes: BTreeMap<(NodeId, NodeId), (LinkId, usize)>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    trace: Trace,
    buf: Vec<u8>,
    stats: SimStats,
    same_instant: u64,
    record_queue_delays: bool,
}

impl core::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Simulator")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("links", &self.links.len())
            .field("pending", &self.queue.len())
            .finish()
    }
}

impl Simulator {
    /// An empty network at time zero whose randomness all derives from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            now: Instant::ZERO,
            rng: SimRng::new(seed),
            nodes: Vec::new(),
            links: Vec::new(),
            by_addr: BTreeMap::new(),
            routes: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            trace: Trace::new(),
            buf: vec![0; 1 << 16],
            stats: SimStats::default(),
            same_instant: 0,
            record_queue_delays: false,
        }
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The run's generator: fork it to seed nodes (`fork_core`) or scenario choices.
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The trace, to set its log limit.
    pub fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> TraceHash {
        self.trace.hash()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Adds a host at `addr` running `node`.
    ///
    /// # Panics
    /// When another host already has `addr` (a mistake in the scenario, not a run outcome).
    pub fn add_node(&mut self, name: &str, addr: SocketAddr, node: Box<dyn Node>) -> NodeId {
        let id = NodeId(self.nodes.len());
        assert!(
            self.by_addr.insert(addr, id).is_none(),
            "address {addr} is already in use"
        );
        self.nodes.push(Slot {
            name: name.to_owned(),
            node,
            addr,
            deadline: None,
            dirty: true,
        });
        id
    }

    /// Connects two hosts with a link: `ab` carries `a → b`, `ba` carries `b → a`.
    pub fn connect(&mut self, a: NodeId, b: NodeId, ab: LinkConfig, ba: LinkConfig) -> LinkId {
        let id = LinkId(self.links.len());
        let mut dirs = [
            LinkDirection::new(ab, self.rng.fork()),
            LinkDirection::new(ba, self.rng.fork()),
        ];
        if self.record_queue_delays {
            dirs.iter_mut().for_each(LinkDirection::record_queue_delays);
        }
        self.links.push(Link { a, b, dirs });
        self.routes.insert((a, b), (id, 0));
        self.routes.insert((b, a), (id, 1));
        id
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
        self.stats.max_pending = self.stats.max_pending.max(self.queue.len() as u64);
    }

    /// Schedules a change to a link at `at`.
    pub fn schedule(&mut self, at: Instant, link: LinkId, which: Which, change: LinkChange) {
        self.push(
            at,
            Event::Change {
                link,
                which,
                change,
            },
        );
    }

    /// Schedules a NAT rebinding: from `at`, the node's datagrams appear from `addr`, and
    /// datagrams to its old address are dropped.
    pub fn schedule_rebind(&mut self, at: Instant, node: NodeId, addr: SocketAddr) {
        self.push(at, Event::Rebind { node, addr });
    }

    /// The node's address as the network sees it now.
    pub fn node_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.nodes.get(id.0).map(|s| s.addr)
    }

    /// The node's name.
    pub fn node_name(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(id.0).map(|s| s.name.as_str())
    }

    /// Nodes on the network.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A hosted node, when it is a `T`.
    pub fn node<T: Node>(&self, id: NodeId) -> Option<&T> {
        let node: &dyn std::any::Any = self.nodes.get(id.0)?.node.as_ref();
        node.downcast_ref::<T>()
    }

    /// A hosted node, mutably, when it is a `T`. Its transmits are drained at the next step.
    pub fn node_mut<T: Node>(&mut self, id: NodeId) -> Option<&mut T> {
        let slot = self.nodes.get_mut(id.0)?;
        slot.dirty = true;
        let node: &mut dyn std::any::Any = slot.node.as_mut();
        node.downcast_mut::<T>()
    }

    /// Both directions' counters of a link (`[a → b, b → a]`).
    pub fn link_stats(&self, link: LinkId) -> Option<[LinkStats; 2]> {
        let l = self.links.get(link.0)?;
        Some([l.dirs[0].stats(), l.dirs[1].stats()])
    }

    /// Makes every link, present and future, keep the queueing delay of each datagram (see
    /// [`LinkDirection::queue_delays`]); for measuring bufferbloat. Off by default.
    pub fn record_queue_delays(&mut self) {
        self.record_queue_delays = true;
        for l in &mut self.links {
            l.dirs
                .iter_mut()
                .for_each(LinkDirection::record_queue_delays);
        }
    }

    /// Both directions' queueing delays of a link (`[a → b, b → a]`), as recorded.
    pub fn queue_delays(&self, link: LinkId) -> Option<[&[Duration]; 2]> {
        let l = self.links.get(link.0)?;
        Some([l.dirs[0].queue_delays(), l.dirs[1].queue_delays()])
    }

    /// Both directions' current settings of a link (`[a → b, b → a]`), with whether each is up.
    pub fn link_config(&self, link: LinkId) -> Option<[(&LinkConfig, bool); 2]> {
        let l = self.links.get(link.0)?;
        Some([
            (l.dirs[0].config(), l.dirs[0].is_up()),
            (l.dirs[1].config(), l.dirs[1].is_up()),
        ])
    }

    /// The two nodes a link connects (`a`, `b`).
    pub fn link_ends(&self, link: LinkId) -> Option<(NodeId, NodeId)> {
        self.links.get(link.0).map(|l| (l.a, l.b))
    }

    /// The links' ids.
    pub fn links(&self) -> impl Iterator<Item = LinkId> {
        (0..self.links.len()).map(LinkId)
    }

    /// The sum of all nodes' progress counters.
    pub fn progress(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.node.progress()))
    }

    /// Whether every node is done.
    pub fn all_done(&self) -> bool {
        self.nodes.iter().all(|s| s.node.is_done())
    }

    fn next_instant(&self) -> Option<Instant> {
        let event = self.queue.peek().map(|Reverse(s)| s.at);
        let timer = self.nodes.iter().filter_map(|s| s.deadline).min();
        match (event, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drains a node's transmits onto the network and refreshes its deadline.
    fn flush(&mut self, id: NodeId) {
        let mut buf = core::mem::take(&mut self.buf);
        let mut out: Vec<(SocketAddr, BytesMut)> = Vec::new();
        let now = self.now;
        let slot = &mut self.nodes[id.0];
        while let Some(t) = slot.node.poll_transmit(now, &mut buf) {
            let bytes = &buf[..t.size.min(buf.len())];
            match t.segment_size {
                Some(seg) if seg > 0 => {
                    for chunk in bytes.chunks(seg) {
                        out.push((t.destination, BytesMut::from(chunk)));
                    }
                }
                _ => out.push((t.destination, BytesMut::from(bytes))),
            }
        }
        slot.deadline = slot.node.poll_timeout();
        slot.dirty = false;
        self.buf = buf;
        for (to, data) in out {
            self.send(id, to, data);
        }
    }

    fn send(&mut self, from: NodeId, to_addr: SocketAddr, mut data: BytesMut) {
        let now = self.now;
        let src = self.nodes[from.0].addr;
        let route = self
            .by_addr
            .get(&to_addr)
            .and_then(|to| self.routes.get(&(from, *to)).map(|r| (*to, *r)));
        let Some((to, (link, dir))) = route else {
            self.stats.no_route += 1;
            self.trace
                .dropped(now, src, to_addr, data.len(), DropReason::NoRoute);
            return;
        };
        match self.links[link.0].dirs[dir].transmit(now, &mut data) {
            Fate::Dropped(why) => self.trace.dropped(now, src, to_addr, data.len(), why),
            Fate::Arrives(at, dup) => {
                if let Some(dup_at) = dup {
                    let copy = data.clone();
                    self.push(
                        dup_at,
                        Event::Deliver {
                            to,
                            to_addr,
                            from: src,
                            data: copy,
                        },
                    );
                }
                self.push(
                    at,
                    Event::Deliver {
                        to,
                        to_addr,
                        from: src,
                        data,
                    },
                );
            }
        }
    }

    fn flush_dirty(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].dirty {
                self.flush(NodeId(i));
            }
        }
    }

    fn process(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Deliver {
                to,
                to_addr,
                from,
                data,
            } => {
                if self.nodes[to.0].addr != to_addr {
                    self.stats.stale_bindings += 1;
                    self.trace
                        .dropped(now, from, to_addr, data.len(), DropReason::StaleBinding);
                    return;
                }
                self.stats.deliveries += 1;
                self.trace.delivered(now, from, to_addr, &data);
                self.nodes[to.0].node.handle_datagram(now, from, data);
                self.flush(to);
            }
            Event::Change {
                link,
                which,
                change,
            } => {
                let Some(l) = self.links.get_mut(link.0) else {
                    return;
                };
                let text = format!("link {} {:?} {change}", link.0, which);
                match which {
                    Which::AtoB => l.dirs[0].apply(&change),
                    Which::BtoA => l.dirs[1].apply(&change),
                    Which::Both => {
                        l.dirs[0].apply(&change);
                        l.dirs[1].apply(&change);
                    }
                }
                self.trace.change(now, &text);
            }
            Event::Rebind { node, addr } => {
                let Some(slot) = self.nodes.get_mut(node.0) else {
                    return;
                };
                if self.by_addr.contains_key(&addr) {
                    return;
                }
                self.by_addr.remove(&slot.addr);
                let text = format!("node {} rebound {} -> {addr}", node.0, slot.addr);
                slot.addr = addr;
                self.by_addr.insert(addr, node);
                self.trace.change(now, &text);
            }
        }
    }

    /// Advances to the next instant with something to do and does all of it. Returns
    /// `Ok(false)` when nothing is left to happen.
    pub fn step(&mut self) -> Result<bool, SimError> {
        self.flush_dirty();
        let Some(next) = self.next_instant() else {
            return Ok(false);
        };
        let next = next.max(self.now);
        if next == self.now {
            self.same_instant += 1;
            if self.same_instant > LIVELOCK_STEPS {
                return Err(SimError::Livelock {
                    seed: self.seed,
                    at: self.now,
                });
            }
        } else {
            self.same_instant = 0;
        }
        self.now = next;
        self.stats.steps += 1;
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= self.now) {
            if let Some(Reverse(s)) = self.queue.pop() {
                self.process(s.event);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].deadline.is_some_and(|d| d <= self.now) {
                self.stats.timers += 1;
                self.trace.timer(self.now, i);
                self.nodes[i].node.handle_timeout(self.now);
                self.flush(NodeId(i));
            }
        }
        Ok(true)
    }

    /// Runs until every node is done, failing on a hang, a stall, the time limit or a livelock.
    pub fn run(&mut self, limits: RunLimits) -> Result<(), SimError> {
        let mut progress = self.progress();
        let mut progress_at = self.now;
        loop {
            self.flush_dirty();
            if self.all_done() {
                return Ok(());
            }
            if !self.step()? {
                return Err(SimError::Stalled {
                    seed: self.seed,
                    at: self.now,
                });
            }
            let p = self.progress();
            if p != progress {
                progress = p;
                progress_at = self.now;
            } else if self.now.saturating_duration_since(progress_at) > limits.hang_after {
                return Err(SimError::Hang {
                    seed: self.seed,
                    at: self.now,
                    last_progress: progress_at,
                });
            }
            if self.now > limits.max_time {
                return Err(SimError::TimeLimit {
                    seed: self.seed,
                    limit: limits.max_time,
                });
            }
        }
    }

    /// Runs everything due up to `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) -> Result<(), SimError> {
        loop {
            self.flush_dirty();
            match self.next_instant() {
                Some(t) if t <= until => {
                    self.step()?;
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }
}
