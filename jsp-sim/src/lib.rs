//! # jsp-sim — a deterministic network simulator for sans-IO stacks
//!
//! Every run happens on a virtual clock, reproducibly from one `u64` seed, many times faster
//! than real time. The pieces, one module each:
//! - [`sim`]: the [`Simulator`] — virtual clock, event queue, hosts with addresses, links,
//!   scheduled changes and NAT rebinding, and hang/stall detection;
//! - [`node`]: the [`Node`] trait, the sans-IO contract a hosted stack implements;
//! - [`jsp`]: [`JspNode`], hosting a JetStreamProto endpoint and its connections;
//! - [`link`]: one link direction — delay, jitter, bandwidth and a drop-tail queue, random and
//!   burst loss, duplication, reordering, corruption, MTU;
//! - [`profile`]: named networks (`lan`, `wifi`, `lte`, `3g`, `satellite`, `lossy`, `bursty`,
//!   `bufferbloat`, `flaky`) and faults;
//! - [`trace`]: the running hash of everything that happened;
//! - [`rng`]: the seeded generator everything random comes from;
//! - [`scenario`]: transfer scenarios with exact-delivery checks, used by the CLI runner and the
//!   end-to-end suite, and request/response message runs for latency;
//! - `quinn` (feature `quinn`): quinn-proto hosted as a node, running the same scenarios, for
//!   side-by-side comparisons (`cargo run --release -p jsp-sim --example vs_quinn`).
//!
//! ```
//! use jsp_sim::profile::Profile;
//! use jsp_sim::scenario::{Scenario, Transfer};
//!
//! let lan = Profile::named("lan").unwrap();
//! let report = Scenario::new(lan, 7, Transfer::large(64 << 10)).run();
//! report.check().unwrap();
//! println!("seed {} trace {}", report.seed, report.trace_hash);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod jsp;
pub mod link;
pub mod node;
pub mod profile;
#[cfg(feature = "quinn")]
pub mod quinn;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod trace;

pub use jsp::{JspApp, JspNode};
pub use jsp_core;
pub use node::{Node, Transmit};
pub use sim::{RunLimits, SimError, Simulator};
pub use trace::TraceHash;
