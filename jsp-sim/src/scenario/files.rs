//! A file transfer in the simulator: the server serves one file with [`jsp_core::file::Sender`]
//! and the client fetches it with [`jsp_core::file::Receiver`], as `jsp send` and `jsp recv` do
//! through `jsp-tokio`, over the scenario's links. The file exists only as a pattern
//! ([`super::pattern`], keyed by the seed): the server reads chunks by generating them and the
//! client checks every written chunk against the pattern at its offset, on top of the receiver's
//! own BLAKE3 verification against the manifest. Everything is deterministic from the seed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use jsp_core::connection::{Connection, Event};
use jsp_core::endpoint::ConnectionHandle;
use jsp_core::file::{
    Action, Channel, ChunkHasher, Compression, Manifest, Receiver, ReceiverConfig, Sender,
    SenderAction, SenderConfig, StreamKey, TransferId, DEFAULT_CHUNK_SIZE,
};
use jsp_core::frame::StreamId;
use jsp_core::stream::{ReadError, StreamEvent};
use jsp_core::{Duration, Instant};

use super::pattern;
use crate::jsp::{JspApp, JspNode};
use crate::link::LinkStats;
use crate::trace::TraceHash;

/// The pattern direction tag of the file's contents.
const FILE_DIR: u64 = 3;

/// What to transfer: one file of `bytes` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePlan {
    /// The file's size.
    pub bytes: u64,
    /// Chunk size of the manifest. Default [`DEFAULT_CHUNK_SIZE`] (1 MiB), as `jsp send`.
    pub chunk_size: u32,
    /// The receiver's settings. Default as `jsp recv`: four lanes, four chunks ahead each.
    pub receiver: ReceiverConfig,
    /// The sender's compression. Default as `jsp send` (zstd 3, adaptive; the pattern does not
    /// compress, so chunks go raw after the sample).
    pub compression: Compression,
}

impl FilePlan {
    /// One file of `bytes` with the defaults of `jsp send` / `jsp recv`.
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            chunk_size: DEFAULT_CHUNK_SIZE,
            receiver: ReceiverConfig::default(),
            compression: Compression::default(),
        }
    }

    /// The manifest of the plan's file (`file.bin`, mode 0644) keyed by `seed`: the chunk
    /// hashes of the pattern.
    pub fn manifest(&self, seed: u64) -> Result<Manifest, String> {
        let key = file_key(seed);
        let mut hasher = ChunkHasher::new(self.chunk_size);
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < self.bytes {
            let n = (self.bytes - at).min(buf.len() as u64) as usize;
            pattern::fill(key, at, &mut buf[..n]);
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        let (_, hashes) = hasher.finish();
        Manifest::builder()
            .chunk_size(self.chunk_size)
            .file("file.bin", self.bytes, 0o644, hashes)
            .build()
            .map_err(|e| e.to_string())
    }
}

fn file_key(seed: u64) -> u64 {
    pattern::key(seed, 0, FILE_DIR)
}

/// Outgoing bytes of one stream that the connection has not taken yet.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
}

impl Outbox {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queue.push_back(b);
        }
    }

    /// Hands the connection as much as it takes.
    fn pump(&mut self, conn: &mut Connection, id: StreamId) -> Result<(), String> {
        while let Some(front) = self.queue.front_mut() {
            let n = conn
                .write(id, front)
                .map_err(|e| format!("write on stream {} failed: {e}", id.0))?;
            if n < front.len() {
                *front = front.slice(n..);
                return Ok(());
            }
            self.queue.pop_front();
        }
        Ok(())
    }
}

/// Reads everything readable on `id`: the bytes, and whether the stream ended.
fn drain(conn: &mut Connection, id: StreamId, mut each: impl FnMut(&[u8])) -> Result<bool, String> {
    loop {
        match conn.read(id, usize::MAX) {
            Ok(Some(b)) => each(&b),
            Ok(None) => return Ok(true),
            Err(ReadError::Blocked) => return Ok(false),
            Err(e) => return Err(format!("read on stream {} failed: {e:?}", id.0)),
        }
    }
}

/// The server: serves the file to the connection that fetches it.
#[derive(Debug)]
pub struct FileServer {
    seed: u64,
    sender: Sender,
    outboxes: BTreeMap<StreamId, Outbox>,
    /// When the sender saw `Done`.
    pub finished_at: Option<Instant>,
    /// Problems seen.
    pub errors: Vec<String>,
    progress: u64,
}

impl FileServer {
    /// A server offering `manifest`, whose contents are the pattern of `seed`.
    pub fn new(
        seed: u64,
        manifest: Arc<Manifest>,
        compression: Compression,
    ) -> Result<Self, String> {
        let config = SenderConfig {
            compression,
            ..SenderConfig::default()
        };
        Ok(Self {
            seed,
            sender: Sender::new(manifest, config).map_err(|e| e.to_string())?,
            outboxes: BTreeMap::new(),
            finished_at: None,
            errors: Vec::new(),
            progress: 0,
        })
    }

    /// The sender's figures.
    pub fn stats(&self) -> jsp_core::file::SenderStats {
        self.sender.stats()
    }

    fn act(&mut self, now: Instant, conn: &mut Connection) {
        while let Some(a) = self.sender.poll_action() {
            match a {
                SenderAction::Send { stream, bytes } => {
                    self.outboxes
                        .entry(StreamId(stream.0))
                        .or_default()
                        .push(Bytes::from(bytes));
                }
                SenderAction::ReadChunk {
                    stream,
                    file,
                    index,
                    offset,
                    len,
                } => {
                    let mut buf = vec![0u8; len as usize];
                    pattern::fill(file_key(self.seed), offset, &mut buf);
                    if let Err(e) = self
                        .sender
                        .chunk_read(stream, file, index, Bytes::from(buf))
                    {
                        self.errors.push(format!("sender: {e}"));
                    }
                }
                SenderAction::SendChunk {
                    stream,
                    header,
                    payload,
                } => {
                    let out = self.outboxes.entry(StreamId(stream.0)).or_default();
                    out.push(Bytes::from(header));
                    out.push(payload);
                    self.progress += 1;
                }
                SenderAction::Finished => {
                    self.finished_at.get_or_insert(now);
                    self.progress += 1;
                }
            }
        }
        for (id, out) in &mut self.outboxes {
            if let Err(e) = out.pump(conn, *id) {
                self.errors.push(e);
            }
        }
    }
}

impl JspApp for FileServer {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Stream(StreamEvent::Opened { .. }) => while conn.accept_bi().is_some() {},
                Event::Stream(StreamEvent::Readable { id }) => {
                    let sender = &mut self.sender;
                    let mut failed = None;
                    let r = drain(conn, id, |b| {
                        if failed.is_none() {
                            failed = sender.handle_data(StreamKey(id.0), b).err();
                        }
                    });
                    if let Some(e) = failed {
                        self.errors.push(format!("sender: {e}"));
                    }
                    if let Err(e) = r {
                        self.errors.push(e);
                    }
                }
                Event::ConnectionLost(e) => {
                    if self.finished_at.is_none() {
                        self.errors.push(format!("connection lost: {e}"));
                    }
                    self.progress += 1;
                }
                _ => {}
            }
            // Writable and the rest: the pump below covers them.
        }
        self.act(now, conn);
    }

    fn progress(&self) -> u64 {
        self.progress
    }

    fn is_done(&self) -> bool {
        self.finished_at.is_some() || !self.errors.is_empty()
    }
}

/// The client: fetches the transfer and checks every chunk written.
#[derive(Debug)]
pub struct FileClient {
    seed: u64,
    receiver: Receiver,
    channels: BTreeMap<Channel, StreamId>,
    by_stream: BTreeMap<StreamId, Channel>,
    outboxes: BTreeMap<StreamId, Outbox>,
    scratch: Vec<u8>,
    /// Bytes written and found equal to the file's contents at their offset.
    pub verified: u64,
    /// Files completed (renamed into place, for a real driver).
    pub files_complete: u64,
    /// When the handshake completed.
    pub connected_at: Option<Instant>,
    /// When the receiver reported the transfer finished.
    pub finished_at: Option<Instant>,
    /// Problems seen.
    pub errors: Vec<String>,
}

impl FileClient {
    /// A client fetching `id`, whose contents must be the pattern of `seed`.
    pub fn new(seed: u64, id: TransferId, config: ReceiverConfig) -> Result<Self, String> {
        Ok(Self {
            seed,
            receiver: Receiver::new(id, config).map_err(|e| e.to_string())?,
            channels: BTreeMap::new(),
            by_stream: BTreeMap::new(),
            outboxes: BTreeMap::new(),
            scratch: Vec::new(),
            verified: 0,
            files_complete: 0,
            connected_at: None,
            finished_at: None,
            errors: Vec::new(),
        })
    }

    /// The receiver's figures.
    pub fn receiver_progress(&self) -> jsp_core::file::Progress {
        self.receiver.progress()
    }

    fn act(&mut self, now: Instant, conn: &mut Connection) {
        // Streams open once the handshake is done.
        if self.connected_at.is_none() {
            return;
        }
        while let Some(a) = self.receiver.poll_action() {
            match a {
                Action::Send { channel, bytes } => {
                    let id = match self.channels.get(&channel) {
                        Some(id) => *id,
                        None => {
                            let Some(id) = conn.open_bi() else {
                                self.errors.push(format!("no stream left for {channel:?}"));
                                return;
                            };
                            self.channels.insert(channel, id);
                            self.by_stream.insert(id, channel);
                            id
                        }
                    };
                    self.outboxes
                        .entry(id)
                        .or_default()
                        .push(Bytes::from(bytes));
                }
                Action::ManifestReady => {
                    if let Err(e) = self.receiver.start() {
                        self.errors.push(format!("receiver: {e}"));
                    }
                }
                Action::CreateDir { .. } => {}
                // Only with `offload_checks`, which this app leaves off: checks run inline.
                Action::CheckChunk(c) => {
                    if let Err(e) = self.receiver.chunk_checked(c.run()) {
                        self.errors.push(format!("receiver: {e}"));
                    }
                }
                Action::WriteChunk { offset, bytes, .. } => {
                    self.scratch.resize(bytes.len(), 0);
                    pattern::fill(file_key(self.seed), offset, &mut self.scratch);
                    if self.scratch[..] == bytes[..] {
                        self.verified += bytes.len() as u64;
                    } else {
                        self.errors
                            .push(format!("chunk at {offset} differs from the file"));
                    }
                }
                Action::FileComplete { .. } => self.files_complete += 1,
                Action::Finished => {
                    self.finished_at.get_or_insert(now);
                }
            }
        }
        for (id, out) in &mut self.outboxes {
            if let Err(e) = out.pump(conn, *id) {
                self.errors.push(e);
            }
        }
    }
}

impl JspApp for FileClient {
    fn on_connection(&mut self, now: Instant, _handle: ConnectionHandle, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(_) => {
                    self.connected_at.get_or_insert(now);
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    let Some(channel) = self.by_stream.get(&id).copied() else {
                        continue;
                    };
                    let receiver = &mut self.receiver;
                    let mut failed = None;
                    let r = drain(conn, id, |b| {
                        if failed.is_none() {
                            failed = receiver.handle_data(channel, b).err();
                        }
                    });
                    if let Some(e) = failed {
                        self.errors.push(format!("receiver: {e}"));
                    }
                    match r {
                        Ok(true) if self.finished_at.is_none() => self
                            .errors
                            .push(format!("the sender ended stream {} early", id.0)),
                        Ok(_) => {}
                        Err(e) => self.errors.push(e),
                    }
                }
                Event::ConnectionLost(e) if self.finished_at.is_none() => {
                    self.errors.push(format!("connection lost: {e}"));
                }
                _ => {}
            }
        }
        self.act(now, conn);
    }

    fn progress(&self) -> u64 {
        self.receiver.progress().bytes_received + self.errors.len() as u64
    }

    fn is_done(&self) -> bool {
        self.finished_at.is_some() || !self.errors.is_empty()
    }
}

/// What a simulated file transfer measured.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// The profile's name.
    pub profile: String,
    /// The seed.
    pub seed: u64,
    /// The trace hash: equal for equal seeds.
    pub trace_hash: TraceHash,
    /// The file's size.
    pub bytes: u64,
    /// Bytes written at the client and found equal to the file.
    pub verified: u64,
    /// The transfer finished and every byte was verified.
    pub completed: bool,
    /// From the start (the client's first packet) until the receiver finished.
    pub completion_time: Option<Duration>,
    /// Chunk bytes on the wire (sender side, after compression).
    pub wire_bytes: u64,
    /// Chunks fetched again after failing verification.
    pub chunks_refetched: u64,
    /// Server → client link counters.
    pub down: LinkStats,
    /// What went wrong.
    pub violations: Vec<String>,
    /// Simulated time of the whole run.
    pub sim_time: Duration,
}

impl FileReport {
    /// Goodput in bits per second: file bytes over the completion time.
    pub fn goodput_bps(&self) -> f64 {
        let t = self
            .completion_time
            .unwrap_or(self.sim_time)
            .as_secs_f64()
            .max(1e-9);
        self.verified as f64 * 8.0 / t
    }

    /// `Ok` or the problems.
    pub fn check(&self) -> Result<(), String> {
        if self.violations.is_empty() && self.completed {
            Ok(())
        } else {
            Err(format!(
                "file transfer on {} seed {} incomplete (trace {}): {}",
                self.profile,
                self.seed,
                self.trace_hash,
                self.violations.join("; ")
            ))
        }
    }
}

/// Runs the file transfer `plan` over the network of `s` (its profile, faults and seed; its
/// transfer and client count are ignored: one client) with JSP.
pub fn run_files(s: &super::Scenario, plan: &FilePlan) -> FileReport {
    let mut report = FileReport {
        profile: s.profile.name.clone(),
        seed: s.seed,
        trace_hash: TraceHash([0; 32]),
        bytes: plan.bytes,
        verified: 0,
        completed: false,
        completion_time: None,
        wire_bytes: 0,
        chunks_refetched: 0,
        down: LinkStats::default(),
        violations: Vec::new(),
        sim_time: Duration::ZERO,
    };
    let one = super::Scenario {
        clients: 1,
        ..s.clone()
    };
    let built = plan.manifest(s.seed).and_then(|m| {
        let m = Arc::new(m);
        let id = m.transfer_id();
        let server = FileServer::new(s.seed, m, plan.compression)?;
        let client = FileClient::new(s.seed, id, plan.receiver.clone())?;
        let mut client = Some(client);
        super::build_jsp(&one, Box::new(server), |_| match client.take() {
            Some(c) => Box::new(c),
            None => Box::new(super::ClientApp::new(s.seed, super::Transfer::many(0, 0))),
        })
    });
    let mut setup = match built {
        Ok(setup) => setup,
        Err(e) => {
            report.violations.push(format!("setup failed: {e}"));
            return report;
        }
    };
    if let Err(e) = setup.sim.run(super::run_limits(&one)) {
        report.violations.push(e.to_string());
    }
    let sim = &setup.sim;
    report.trace_hash = sim.trace_hash();
    report.sim_time = sim.now().since_origin();
    match sim
        .node::<JspNode>(setup.server)
        .and_then(|n| n.app::<FileServer>())
    {
        Some(server) => {
            report.wire_bytes = server.stats().wire_bytes;
            report
                .violations
                .extend(server.errors.iter().map(|e| format!("server: {e}")));
        }
        None => report.violations.push("server node missing".into()),
    }
    for (id, link) in &setup.clients {
        if let Some([_, down]) = sim.link_stats(*link) {
            report.down.add(&down);
        }
        match sim.node::<JspNode>(*id).and_then(|n| n.app::<FileClient>()) {
            Some(client) => {
                report.verified = client.verified;
                report.chunks_refetched = client.receiver_progress().chunks_refetched;
                report
                    .violations
                    .extend(client.errors.iter().map(|e| format!("client: {e}")));
                report.completion_time = client.finished_at.map(|t| t.since_origin());
                report.completed = client.finished_at.is_some()
                    && client.verified == plan.bytes
                    && client.files_complete == 1;
            }
            None => report.violations.push("client node missing".into()),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::scenario::{Scenario, Transfer};

    fn run(profile: &str, seed: u64, bytes: u64) -> FileReport {
        let p = Profile::named(profile).unwrap();
        let s = Scenario::new(p, seed, Transfer::many(0, 0));
        run_files(&s, &FilePlan::new(bytes))
    }

    #[test]
    fn lossy_file_transfer_completes_verified_and_repeats() {
        let a = run("lossy", 5, 3 << 20 | 12345);
        a.check().unwrap();
        assert_eq!(a.verified, 3 << 20 | 12345);
        assert!(a.down.lost > 0, "the lossy profile lost nothing");
        println!(
            "lossy: {} bytes in {:?}, {:.2} Mbit/s, {} lost, trace {}",
            a.bytes,
            a.completion_time,
            a.goodput_bps() / 1e6,
            a.down.lost,
            a.trace_hash
        );
        let b = run("lossy", 5, 3 << 20 | 12345);
        assert_eq!(a.trace_hash, b.trace_hash);
        let c = run("lossy", 6, 3 << 20 | 12345);
        assert_ne!(a.trace_hash, c.trace_hash);
    }
}
