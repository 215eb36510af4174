//! quinn through its tokio API.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ClientConfig, Connection, Endpoint, EndpointConfig, IdleTimeout, ServerConfig, TokioRuntime,
    TransportConfig, VarInt,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::run::{wait_for, Bulk, Idle, Mode, Stack};
use crate::{sys, BenchResult, LiveBytes, IDLE_TIMEOUT};

/// quinn's side of the benchmark.
pub(crate) struct Quinn;

/// A server and a client endpoint on loopback, the server answering as `mode` says.
struct Pair {
    server: Endpoint,
    client: Endpoint,
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<u64>,
    held: Arc<Mutex<Vec<Connection>>>,
}

/// quinn's defaults except the windows, stream limits and idle timeout, which match JSP's.
fn transport() -> BenchResult<Arc<TransportConfig>> {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(16 << 20))
        .send_window(16 << 20)
        .max_concurrent_bidi_streams(VarInt::from_u32(100))
        .max_concurrent_uni_streams(VarInt::from_u32(100))
        .max_idle_timeout(Some(IdleTimeout::try_from(IDLE_TIMEOUT)?));
    Ok(Arc::new(t))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn configs() -> BenchResult<(ServerConfig, ClientConfig)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());

    let server_tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())?;
    let mut server = ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
    server.transport_config(transport()?);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Full handshakes every time, as JSP's clients here (which hold no ticket) do.
    client_tls.resumption = rustls::client::Resumption::disabled();
    let mut client = ClientConfig::new(Arc::new(QuicClientConfig::try_from(client_tls)?));
    client.transport_config(transport()?);
    Ok((server, client))
}

/// A server and a client endpoint on 127.0.0.1 with the benchmark's settings (a fresh
/// self-signed certificate for `localhost`, which the client trusts, and the windows above).
pub(crate) fn loopback_endpoints() -> BenchResult<(Endpoint, Endpoint)> {
    let (server_config, client_config) = configs()?;
    let server = Endpoint::new(
        EndpointConfig::default(),
        Some(server_config),
        UdpSocket::bind("127.0.0.1:0")?,
        Arc::new(TokioRuntime),
    )?;
    let mut client = Endpoint::new(
        EndpointConfig::default(),
        None,
        UdpSocket::bind("127.0.0.1:0")?,
        Arc::new(TokioRuntime),
    )?;
    client.set_default_client_config(client_config);
    Ok((server, client))
}

impl Pair {
    async fn new(mode: Mode) -> BenchResult<Self> {
        let (server, client) = loopback_endpoints()?;
        let addr = server.local_addr()?;
        let (tx, received) = mpsc::unbounded_channel();
        let held = Arc::new(Mutex::new(Vec::new()));
        let accepting = server.clone();
        let keep = held.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let tx = tx.clone();
                match mode {
                    Mode::Idle => {
                        let keep = keep.clone();
                        tokio::spawn(async move {
                            if let Ok(conn) = incoming.await {
                                if let Ok(mut held) = keep.lock() {
                                    held.push(conn);
                                }
                            }
                        });
                    }
                    Mode::Handshake => {
                        tokio::spawn(async move {
                            if let Ok(conn) = incoming.await {
                                conn.closed().await;
                            }
                        });
                    }
                    Mode::Bulk => {
                        tokio::spawn(async move {
                            let conn = incoming.await?;
                            let mut recv = conn.accept_uni().await?;
                            let mut total = 0u64;
                            while let Some(chunk) = recv.read_chunk(1 << 20, true).await? {
                                total += chunk.bytes.len() as u64;
                            }
                            let _ = tx.send(total);
                            conn.closed().await;
                            Ok::<_, crate::BenchError>(())
                        });
                    }
                    Mode::Echo => {
                        tokio::spawn(async move {
                            let conn = incoming.await?;
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
            received,
            held,
        })
    }

    async fn connect(&self) -> BenchResult<Connection> {
        Ok(self.client.connect(self.addr, "localhost")?.await?)
    }

    async fn shut_down(self) {
        self.client.close(VarInt::from_u32(0), b"done");
        self.server.close(VarInt::from_u32(0), b"done");
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

impl Stack for Quinn {
    const NAME: &'static str = "quinn";

    async fn bulk(bytes: u64, chunk: usize) -> BenchResult<Bulk> {
        let mut pair = Pair::new(Mode::Bulk).await?;
        let conn = pair.connect().await?;
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
        conn.close(VarInt::from_u32(0), b"done");
        drop(conn);
        pair.shut_down().await;
        Ok(Bulk {
            elapsed,
            cpu,
            detail: "TLS13_AES_256_GCM_SHA384 (rustls default)".to_string(),
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
                conn.close(VarInt::from_u32(0), b"done");
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
        conn.close(VarInt::from_u32(0), b"done");
        drop((send, recv, conn));
        pair.shut_down().await;
        Ok(samples)
    }
}
