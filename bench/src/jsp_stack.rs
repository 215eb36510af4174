//! JSP through jsp-tokio.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsp_core::config::{AddressValidation, RateLimit};
use jsp_tokio::{
    generate_identity, server_config, ClientConfig, Connection, Endpoint, EndpointConfig,
    TransportConfig,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::run::{wait_for, Bulk, Idle, Mode, Stack};
use crate::{sys, BenchResult, LiveBytes, IDLE_TIMEOUT};

/// JSP's side of the benchmark.
pub(crate) struct Jsp;

/// A server and a client endpoint on loopback, the server answering as `mode` says.
struct Pair {
    server: Endpoint,
    client: Endpoint,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    /// Bytes the server read from each bulk stream.
    received: mpsc::UnboundedReceiver<u64>,
    /// Connections the server accepted in idle mode.
    held: Arc<Mutex<Vec<Connection>>>,
}

fn transport() -> TransportConfig {
    TransportConfig {
        idle_timeout: IDLE_TIMEOUT,
        ..TransportConfig::default()
    }
}

fn endpoint_config() -> EndpointConfig {
    // Every connection comes from one local address, far faster than the defaults (meant for
    // the open internet) let one source handshake.
    let unlimited = RateLimit {
        rate: 1e9,
        burst: 1e9,
    };
    EndpointConfig {
        max_connections: 1 << 20,
        handshake_rate: unlimited,
        per_source_handshake_rate: unlimited,
        ..EndpointConfig::default()
    }
}

/// A server and a client endpoint on 127.0.0.1 with the benchmark's settings (a fresh server
/// identity, handshake limits raised, no Retry), and the client configuration that pins the
/// server's key.
pub(crate) fn loopback_endpoints() -> BenchResult<(Endpoint, Endpoint, Arc<ClientConfig>)> {
    let identity = Arc::new(generate_identity()?);
    let mut sc = server_config(identity.clone())?;
    sc.transport = Arc::new(transport());
    sc.address_validation = AddressValidation::Never;
    let server = Endpoint::new(endpoint_config(), Some(sc), UdpSocket::bind("127.0.0.1:0")?)?;
    let client = Endpoint::new(endpoint_config(), None, UdpSocket::bind("127.0.0.1:0")?)?;
    let config = Arc::new(ClientConfig {
        transport: Arc::new(transport()),
        ..ClientConfig::pinned(identity.public())
    });
    Ok((server, client, config))
}

impl Pair {
    async fn new(mode: Mode) -> BenchResult<Self> {
        let (server, client, config) = loopback_endpoints()?;
        let (tx, received) = mpsc::unbounded_channel();
        let held = Arc::new(Mutex::new(Vec::new()));
        let addr = server.local_addr();
        let accepting = server.clone();
        let keep = held.clone();
        tokio::spawn(async move {
            while let Some(connecting) = accepting.accept().await {
                let tx = tx.clone();
                match mode {
                    Mode::Idle => {
                        let keep = keep.clone();
                        tokio::spawn(async move {
                            if let Ok(conn) = connecting.await {
                                if let Ok(mut held) = keep.lock() {
                                    held.push(conn);
                                }
                            }
                        });
                    }
                    Mode::Handshake => {
                        tokio::spawn(async move {
                            if let Ok(conn) = connecting.await {
                                conn.closed().await;
                            }
                        });
                    }
                    Mode::Bulk => {
                        tokio::spawn(async move {
                            let conn = connecting.await?;
                            let mut recv = conn.accept_uni().await?;
                            let mut total = 0u64;
                            while let Some(chunk) = recv.read_chunk(1 << 20).await? {
                                total += chunk.len() as u64;
                            }
                            let _ = tx.send(total);
                            conn.closed().await;
                            Ok::<_, crate::BenchError>(())
                        });
                    }
                    Mode::Echo => {
                        tokio::spawn(async move {
                            let conn = connecting.await?;
                            let (mut send, mut recv) = conn.accept_bi().await?;
                            let mut buf = vec![0u8; 64 << 10];
                            while let Some(n) = recv.read(&mut buf).await? {
                                send.write_all(&buf[..n]).await?;
                            }
                            send.finish()?;
                            conn.closed().await;
                            Ok::<_, crate::BenchError>(())
                        });
                    }
                }
            }
        });
        Ok(Self {
            server,
            client,
            addr,
            config,
            received,
            held,
        })
    }

    async fn connect(&self) -> BenchResult<Connection> {
        Ok(self
            .client
            .connect_with(self.config.clone(), self.addr, None)?
            .await?)
    }

    async fn shut_down(self) {
        self.client.close(0, b"done");
        self.server.close(0, b"done");
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
        let idle = async {
            self.client.wait_idle().await;
            self.server.wait_idle().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), idle).await;
    }
}

impl Stack for Jsp {
    const NAME: &'static str = "jsp";

    async fn bulk(bytes: u64, chunk: usize) -> BenchResult<Bulk> {
        let mut pair = Pair::new(Mode::Bulk).await?;
        let conn = pair.connect().await?;
        let suite = conn
            .handshake_info()
            .map(|i| format!("{:?}", i.suite))
            .unwrap_or_default();
        let data = vec![0xa5u8; chunk];
        let cpu0 = sys::cpu_time();
        let start = Instant::now();
        let mut send = conn.open_uni().await?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk as u64) as usize;
            send.write_all(&data[..n]).await?;
            left -= n as u64;
        }
        send.finish()?;
        let got = pair.received.recv().await.ok_or("server gone")?;
        let elapsed = start.elapsed();
        let cpu = sys::cpu_time().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
        if got != bytes {
            return Err(format!("server read {got} bytes of {bytes}").into());
        }
        conn.close(0, b"done");
        drop(conn);
        pair.shut_down().await;
        Ok(Bulk {
            elapsed,
            cpu,
            detail: suite,
        })
    }

    async fn handshakes(n: usize, concurrency: usize) -> BenchResult<Duration> {
        let pair = Arc::new(Pair::new(Mode::Handshake).await?);
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let permit = limit.clone().acquire_owned().await?;
            let pair = pair.clone();
            tasks.spawn(async move {
                let conn = pair.connect().await?;
                conn.close(0, b"done");
                drop(permit);
                Ok::<_, crate::BenchError>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let elapsed = start.elapsed();
        if let Ok(pair) = Arc::try_unwrap(pair) {
            pair.shut_down().await;
        }
        Ok(elapsed)
    }

    async fn idle(n: usize, concurrency: usize, live: LiveBytes) -> BenchResult<Idle> {
        let pair = Arc::new(Pair::new(Mode::Idle).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let heap0 = live();
        let rss0 = sys::rss_bytes();
        let conns = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let permit = limit.clone().acquire_owned().await?;
            let (pair, conns) = (pair.clone(), conns.clone());
            tasks.spawn(async move {
                let conn = pair.connect().await?;
                conns.lock().map_err(|_| "poisoned")?.push(conn);
                drop(permit);
                Ok::<_, crate::BenchError>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let held = pair.held.clone();
        wait_for(Duration::from_secs(60), || {
            held.lock().map(|h| h.len() >= n).unwrap_or(true)
        })
        .await?;
        // Let the last acknowledgements, tickets and handshake clean-up happen.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let heap = live() - heap0;
        let rss = sys::rss_bytes().zip(rss0).map(|(a, b)| a as f64 - b as f64);
        drop(conns);
        if let Ok(pair) = Arc::try_unwrap(pair) {
            pair.shut_down().await;
        }
        Ok(Idle {
            heap_per_conn: heap as f64 / n as f64,
            rss_per_conn: rss.map(|r| r / n as f64),
        })
    }

    async fn echo(n: usize, size: usize) -> BenchResult<Vec<Duration>> {
        let pair = Pair::new(Mode::Echo).await?;
        let conn = pair.connect().await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let msg = vec![0x3cu8; size];
        let mut back = vec![0u8; size];
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + crate::run::WARMUP {
            let start = Instant::now();
            send.write_all(&msg).await?;
            recv.read_exact(&mut back).await?;
            if i >= crate::run::WARMUP {
                samples.push(start.elapsed());
            }
        }
        send.finish()?;
        conn.close(0, b"done");
        drop((send, recv, conn));
        pair.shut_down().await;
        Ok(samples)
    }
}
