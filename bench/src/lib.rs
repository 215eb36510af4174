//! # jsp-bench — JetStreamProto against quinn over loopback UDP
//!
//! The loopback half of the side-by-side benchmark (the simulated half is `jsp-sim`'s
//! `vs_quinn` example): JSP through [`jsp_tokio`] and quinn through its tokio API, in the same
//! process run, one after the other, round by round. Both client and server of each stack live in
//! this one process, on one tokio runtime, talking over real UDP sockets on 127.0.0.1.
//!
//! Run it with `cargo run --release -p jsp-bench --bin vs_quinn_loopback` (see `--help` for the
//! sizes). Every figure is printed as one JSON object per line
//! (`{"bench":…,"impl":…,"metric":…,"value":…,"unit":…}`), the median over the rounds, followed
//! by a table with the JSP ÷ quinn ratios.
//!
//! ## What is measured
//! - **bulk**: one unidirectional stream carrying `--bulk-bytes` (1 GiB by default), written in
//!   `--chunk` pieces with `write_all`; goodput from opening the stream until the server has read
//!   the last byte. CPU seconds per GB: user + system time of the whole process (so client *and*
//!   server, which share it) over the transfer, from `/proc/self/stat`, divided by the gigabytes
//!   (10⁹ bytes) moved. The physical ceiling (`impl` = `ceiling`): how fast one core seals
//!   full-size packets with JSP's preferred cipher suite on this CPU, through the same packet-key
//!   code the connections use (`aead_seal`); and how many bytes the kernel's loopback UDP path
//!   moves from one thread to another in GSO/GRO batches of full-size datagrams with no protocol
//!   at all (`loopback_udp`): no transport over this loopback can exceed it; and the bytes the
//!   sending thread pushes per second of its own CPU time (`udp_send_per_cpu_second`), from
//!   which the table derives what one core that only sealed and sent could move.
//! - **handshake**: full handshakes per second, `--handshakes` of them one after the other, and
//!   `--concurrent-handshakes` of them with `--concurrency` in flight. JSP uses its default
//!   hybrid X25519 + ML-KEM-768 key exchange and an Ed25519 identity; quinn its default rustls
//!   (*ring*) configuration with an ECDSA P-256 certificate made by rcgen. Session resumption is
//!   off on quinn's client (JSP's clients here hold no ticket either), so both do full handshakes.
//!   Each client closes its connection once established.
//! - **idle**: `--idle-conns` connections established and left idle; heap bytes still allocated
//!   per connection (a counting global allocator) and resident-memory growth per connection
//!   (`/proc/self/statm`), each covering *both* ends (client and server) of a connection.
//! - **echo**: one bidirectional stream; `--echo-messages` messages of `--echo-size` bytes, each
//!   sent and read back from the server before the next; p50 and p99 round-trip latency.
//!
//! ## File transfer (`--bin file_transfer`)
//! One file (1 GiB by default) over loopback with `jsp_tokio::file` (what `jsp send` / `jsp recv`
//! run) against a plain quinn stream copy of the same file, disk to disk; the same transfer in
//! `jsp-sim` on its `lossy` profile; and the chunk compressor on a text corpus at zstd levels 1, 3
//! and 19. See [`run_file_transfer`] and the notes the binary prints under its tables.
//!
//! ## Configuration
//! Both stacks use the same flow-control windows (JSP's defaults, which quinn is given: 1 MiB per
//! stream, 16 MiB per connection, 16 MiB of send buffer), 100 concurrent streams each way and the
//! same idle timeout (300 s, so that the idle connections outlive the time it takes to open them).
//! Congestion control and everything else are each stack's defaults (JSP: BBR; quinn: Cubic).
//! JSP's server has its handshake rate limits raised and its Retry-under-load turned off
//! (quinn has neither by default): every connection here comes from one client address, faster
//! than the limits meant for the open internet allow.

use std::error::Error;
use std::time::Duration;

mod ceiling;
pub mod corpus;
mod file_loopback;
mod file_transfer;
mod jsp_stack;
mod quinn_stack;
mod report;
mod run;
mod sys;

pub use file_transfer::{run_file_transfer, FileOptions, FileRun};
pub use report::{Record, Table};
pub use run::{run, Options};

/// The error type of the benchmark: anything that stops a run.
pub type BenchError = Box<dyn Error + Send + Sync>;

/// Shorthand for the benchmark's results.
pub type BenchResult<T> = Result<T, BenchError>;

/// The idle timeout both stacks are configured with.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads how many bytes of heap are currently allocated (the binary's counting allocator).
pub type LiveBytes = fn() -> i64;
