//! The run's trace: every delivered, dropped and timer event feeds a running SHA-256.
//!
//! Two runs of one scenario with one seed produce the same [`TraceHash`]; any difference in what
//! happened on the network (a byte, a drop, a timer firing at another instant) changes it. An
//! optional bounded text log keeps the first events for debugging a replay.

use core::fmt;
use std::net::SocketAddr;

use jsp_core::Instant;
use sha2::{Digest, Sha256};

/// Why the network dropped a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// Gilbert–Elliott burst loss.
    BurstLoss,
    /// The bottleneck queue was full (drop-tail).
    QueueFull,
    /// Larger than the link's MTU.
    TooBig,
    /// The link was down (outage or partition).
    LinkDown,
    /// No host at the destination address, or no link to it.
    NoRoute,
    /// Addressed to a NAT binding that no longer exists (the peer was rebound).
    StaleBinding,
}

impl DropReason {
    fn tag(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loss => "loss",
            Self::BurstLoss => "burst loss",
            Self::QueueFull => "queue full",
            Self::TooBig => "too big for MTU",
            Self::LinkDown => "link down",
            Self::NoRoute => "no route",
            Self::StaleBinding => "stale NAT binding",
        })
    }
}

/// The final trace hash of a run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceHash(pub [u8; 32]);

impl fmt::Display for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..16] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceHash({self})")
    }
}

/// The running hash and counters of a run.
#[derive(Clone)]
pub struct Trace {
    hasher: Sha256,
    events: u64,
    log: Vec<String>,
    log_limit: usize,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("events", &self.events)
            .field("hash", &self.hash())
            .finish()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

fn addr_bytes(a: SocketAddr) -> [u8; 18] {
    let mut out = [0u8; 18];
    match a {
        SocketAddr::V4(v4) => out[..4].copy_from_slice(&v4.ip().octets()),
        SocketAddr::V6(v6) => out[..16].copy_from_slice(&v6.ip().octets()),
    }
    out[16..].copy_from_slice(&a.port().to_be_bytes());
    out
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            events: 0,
            log: Vec::new(),
            log_limit: 0,
        }
    }

    /// Also keeps a text line for each of the first `limit` events.
    pub fn set_log_limit(&mut self, limit: usize) {
        self.log_limit = limit;
    }

    /// The text lines kept so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> TraceHash {
        TraceHash(self.hasher.clone().finalize().into())
    }

    fn head(&mut self, tag: u8, now: Instant) {
        self.events += 1;
        self.hasher.update([tag]);
        self.hasher.update(now.as_nanos().to_le_bytes());
    }

    fn line(&mut self, f: impl FnOnce() -> String) {
        if self.log.len() < self.log_limit {
            self.log.push(f());
        }
    }

    /// A datagram was delivered to a node.
    pub fn delivered(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.head(1, now);
        self.hasher.update(addr_bytes(from));
        self.hasher.update(addr_bytes(to));
        self.hasher.update((data.len() as u64).to_le_bytes());
        self.hasher.update(data);
        self.line(|| format!("{now:?} deliver {from} -> {to} {} B", data.len()));
    }

    /// The network dropped a datagram.
    pub fn dropped(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        len: usize,
        why: DropReason,
    ) {
        self.head(2, now);
        self.hasher.update([why.tag()]);
        self.hasher.update(addr_bytes(from));
        self.hasher.update(addr_bytes(to));
        self.hasher.update((len as u64).to_le_bytes());
        self.line(|| format!("{now:?} drop {from} -> {to} {len} B: {why}"));
    }

    /// A node's timer fired.
    pub fn timer(&mut self, now: Instant, node: usize) {
        self.head(3, now);
        self.hasher.update((node as u64).to_le_bytes());
        self.line(|| format!("{now:?} timer node {node}"));
    }

    /// A scheduled change to the network took effect (`what` describes it).
    pub fn change(&mut self, now: Instant, what: &str) {
        self.head(4, now);
        self.hasher.update(what.as_bytes());
        self.line(|| format!("{now:?} change {what}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_every_field() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let mut t1 = Trace::new();
        let mut t2 = Trace::new();
        t1.delivered(Instant::from_millis(1), a, b, b"xy");
        t2.delivered(Instant::from_millis(1), a, b, b"xy");
        assert_eq!(t1.hash(), t2.hash());
        t2.timer(Instant::from_millis(2), 0);
        assert_ne!(t1.hash(), t2.hash());
        let mut t3 = Trace::new();
        t3.delivered(Instant::from_millis(1), a, b, b"xz");
        assert_ne!(t1.hash(), t3.hash());
    }
}
