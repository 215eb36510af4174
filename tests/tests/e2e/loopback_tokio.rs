//! The core's pair scenarios over real loopback UDP, through jsp-tokio: handshake, 0-RTT, many
//! streams, datagrams, close codes, idle timeout, wrong keys and drop semantics. No timings are
//! asserted; every wait is bounded so a hang fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jsp_tokio::jsp_core::crypto::kex::KeyExchange;
use jsp_tokio::{
    generate_identity, server_config, ClientConfig, ConnectionError, EarlyData, Endpoint,
    IdentityKey, ReadError, ServerConfig, TransportConfig,
};
use tokio::io::AsyncWriteExt;

/// Bounds every wait: a test that hangs fails instead.
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the scenario did not finish in time")
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Setup {
    identity: Arc<IdentityKey>,
    server: Endpoint,
    client: Endpoint,
}

fn setup_with(tweak: impl FnOnce(&mut ServerConfig)) -> Setup {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let identity = Arc::new(generate_identity().unwrap());
    let mut config = server_config(identity.clone()).unwrap();
    tweak(&mut config);
    Setup {
        server: Endpoint::server(config, loopback()).unwrap(),
        client: Endpoint::client(loopback()).unwrap(),
        identity,
    }
}

fn setup() -> Setup {
    setup_with(|_| {})
}

/// A server that echoes every bidirectional stream and every datagram, on every connection.
fn spawn_echo(server: Endpoint) {
    tokio::spawn(async move {
        while let Some(connecting) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = connecting.await else { return };
                let dconn = conn.clone();
                tokio::spawn(async move {
                    while let Ok(d) = dconn.read_datagram().await {
                        let _ = dconn.send_datagram(d);
                    }
                });
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if tokio::io::copy(&mut recv, &mut send).await.is_ok() {
                            let _ = send.shutdown().await;
                        }
                    });
                }
            });
        }
    });
}

/// Starts the echo server of `s` and connects its client to it.
async fn connect_to_echo(s: &Setup) -> jsp_tokio::Connection {
    let addr = s.server.local_addr();
    spawn_echo(s.server.clone());
    bounded(s.client.connect(addr, s.identity.public()).unwrap())
        .await
        .unwrap()
}

async fn echo_once(conn: &jsp_tokio::Connection, msg: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(msg).await.unwrap();
    send.finish().unwrap();
    recv.read_all(1 << 20).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_handshake_completes_over_loopback_and_reports_the_server_identity() {
    let s = setup();
    let conn = connect_to_echo(&s).await;
    let info = conn.handshake_info().unwrap();
    assert_eq!(info.key_exchange, KeyExchange::X25519MlKem768);
    assert_eq!(info.peer_identity, Some(s.identity.public()));
    assert!(!info.resumed);
    assert_eq!(bounded(echo_once(&conn, b"hello")).await, b"hello");
    assert!(conn.rtt() > Duration::ZERO);
    assert!(conn.stats().packets_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_handshakes_use_keys_generated_ahead_on_both_sides() {
    let s = setup();
    let addr = s.server.local_addr();
    spawn_echo(s.server.clone());
    // The first connection on each side generates its keys while the peer waits; the driver
    // then makes the next ones (a client between its passes, a server on a blocking thread).
    // Keep connecting (each connection echoes once, so the handshake really is used) until
    // both endpoints report using such keys.
    for round in 0.. {
        let conn = bounded(s.client.connect(addr, s.identity.public()).unwrap())
            .await
            .unwrap();
        assert_eq!(bounded(echo_once(&conn, b"ahead")).await, b"ahead");
        conn.close(0, b"done");
        let (client, server) = (s.client.stats(), s.server.stats());
        if client.keys_generated_ahead_used > 0 && server.keys_generated_ahead_used > 0 {
            println!(
                "after {} connections: client used {}, server {}",
                round + 1,
                client.keys_generated_ahead_used,
                server.keys_generated_ahead_used
            );
            break;
        }
        assert!(
            round < 50,
            "keys generated ahead were never used: {client:?} {server:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_server_key_fails_the_handshake_with_a_clear_error() {
    let s = setup();
    let other = generate_identity().unwrap();
    let err = bounded(
        s.client
            .connect(s.server.local_addr(), other.public())
            .unwrap(),
    )
    .await
    .unwrap_err();
    match &err {
        ConnectionError::HandshakeFailed { reason, .. } => {
            assert!(reason.contains("pinned"), "{reason}")
        }
        other => panic!("expected a handshake failure, got {other:?}"),
    }
    assert!(err.to_string().contains("handshake"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_over_its_handshake_rate_refuses_and_the_client_fails_fast() {
    let identity = Arc::new(generate_identity().unwrap());
    let config = server_config(identity.clone()).unwrap();
    let limit = jsp_tokio::jsp_core::config::RateLimit {
        rate: 0.001,
        burst: 1.0,
    };
    let server = Endpoint::new(
        jsp_tokio::EndpointConfig {
            per_source_handshake_rate: limit,
            ..jsp_tokio::EndpointConfig::default()
        },
        Some(config),
        std::net::UdpSocket::bind(loopback()).unwrap(),
    )
    .unwrap();
    spawn_echo(server.clone());
    let client = Endpoint::client(loopback()).unwrap();
    let addr = server.local_addr();
    let first = bounded(client.connect(addr, identity.public()).unwrap()).await;
    assert!(first.is_ok(), "{first:?}");
    let started = std::time::Instant::now();
    let second = bounded(client.connect(addr, identity.public()).unwrap()).await;
    println!("refused after {:?}: {second:?}", started.elapsed());
    assert!(second.is_err(), "the second handshake was refused");
    assert!(server.stats().refused >= 1, "{:?}", server.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_where_nothing_listens_times_out_with_a_clear_error() {
    let client = Endpoint::client(loopback()).unwrap();
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let transport = Arc::new(TransportConfig {
        idle_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    });
    let key = generate_identity().unwrap().public();
    let config = ClientConfig {
        transport,
        ..ClientConfig::pinned(key)
    };
    let err = bounded(
        client
            .connect_with(Arc::new(config), silent.local_addr().unwrap(), None)
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ConnectionError::HandshakeTimedOut { .. }),
        "{err:?}"
    );
}

// One thread: the request is queued before the driver task first runs, so it leaves in the
// client's first flight (on loopback a 1-RTT handshake would otherwise win the race).
#[tokio::test(flavor = "current_thread")]
async fn zero_rtt_data_arrives_before_the_handshake_completes_on_resumption() {
    let s = setup();
    let addr = s.server.local_addr();
    let server = s.server.clone();
    let server_task = tokio::spawn(async move {
        // First connection: just complete it.
        let first = server.accept().await.unwrap().await.unwrap();
        // Second: read the early stream before the handshake completes.
        let conn = server.accept().await.unwrap().into_0rtt().unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let early = recv.received_early();
        let msg = recv.read_all(1024).await.unwrap();
        send.write_all(&msg).await.unwrap();
        send.finished().await.unwrap();
        drop(first);
        (early, msg)
    });
    let conn = bounded(s.client.connect(addr, s.identity.public()).unwrap())
        .await
        .unwrap();
    let ticket = bounded(conn.session_ticket()).await.expect("a ticket");
    conn.close(0, b"");
    let config = Arc::new(ClientConfig::pinned(s.identity.public()));
    let conn = s
        .client
        .connect_with(config, addr, Some(ticket))
        .unwrap()
        .into_0rtt()
        .expect("0-RTT is available with a ticket");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.set_replay_safe(true);
    send.write_all(b"GET /early").await.unwrap();
    send.finish().unwrap();
    let reply = bounded(recv.read_all(1024)).await.unwrap();
    assert_eq!(reply, b"GET /early");
    let info = bounded(conn.handshake()).await.unwrap();
    assert!(info.resumed);
    assert_eq!(info.early_data, EarlyData::Accepted);
    let (early, msg) = bounded(server_task).await.unwrap();
    assert!(early, "the server saw the request as 0-RTT data");
    assert_eq!(msg, b"GET /early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_each_deliver_their_own_bytes() {
    let s = setup();
    let conn = connect_to_echo(&s).await;
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let msg: Vec<u8> = (0..20_000u32).map(|j| (j as u8) ^ i).collect();
            let echoed = echo_once(&conn, &msg).await;
            assert_eq!(echoed, msg, "stream {i}");
        }));
    }
    for t in tasks {
        bounded(t).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transfer_on_one_stream_arrives_intact() {
    let s = setup();
    let conn = connect_to_echo(&s).await;
    echo_bulk(&conn, 4_000_000, 251).await;
}

/// Sends `len` bytes (`j % modulus` for byte `j`) on a bidirectional stream of `conn` to the
/// echo server and checks that they come back intact.
async fn echo_bulk(conn: &jsp_tokio::Connection, len: u32, modulus: u32) {
    let msg: Vec<u8> = (0..len).map(|j| (j % modulus) as u8).collect();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let writer = tokio::spawn({
        let msg = msg.clone();
        async move {
            send.write_all(&msg).await.unwrap();
            send.shutdown().await.unwrap();
        }
    });
    let mut echoed = Vec::new();
    bounded(tokio::io::AsyncReadExt::read_to_end(&mut recv, &mut echoed))
        .await
        .unwrap();
    bounded(writer).await.unwrap();
    assert!(echoed == msg, "{len} bytes echoed intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_travel_both_ways_within_the_advertised_size() {
    let s = setup();
    let conn = connect_to_echo(&s).await;
    let max = conn.max_datagram_size();
    assert!(max >= 1000, "{max}");
    assert!(matches!(
        conn.send_datagram(Bytes::from(vec![0u8; max + 1])),
        Err(jsp_tokio::SendDatagramError::TooLarge { .. })
    ));
    // Datagrams are unreliable: resend until an echo comes back.
    let echoed = bounded(async {
        loop {
            conn.send_datagram(Bytes::from_static(b"ping")).unwrap();
            if let Ok(Ok(d)) =
                tokio::time::timeout(Duration::from_millis(200), conn.read_datagram()).await
            {
                return d;
            }
        }
    })
    .await;
    assert_eq!(&echoed[..], b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_close_code_and_reason_reach_the_peer() {
    let s = setup();
    let addr = s.server.local_addr();
    let server = s.server.clone();
    let server_task = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        conn.closed().await
    });
    let conn = bounded(s.client.connect(addr, s.identity.public()).unwrap())
        .await
        .unwrap();
    conn.close(42, b"bye now");
    let seen = bounded(server_task).await.unwrap();
    assert_eq!(
        seen,
        ConnectionError::ApplicationClosed {
            code: 42,
            reason: "bye now".into()
        }
    );
    assert_eq!(bounded(conn.closed()).await, ConnectionError::LocallyClosed);
    bounded(s.client.wait_idle()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_times_out_on_both_sides() {
    let transport = Arc::new(TransportConfig {
        idle_timeout: Duration::from_millis(600),
        ..TransportConfig::default()
    });
    let s = setup_with(|c| c.transport = transport.clone());
    let addr = s.server.local_addr();
    let server = s.server.clone();
    let server_task = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        conn.closed().await
    });
    let config = ClientConfig {
        transport: transport.clone(),
        ..ClientConfig::pinned(s.identity.public())
    };
    let conn = bounded(s.client.connect_with(Arc::new(config), addr, None).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        bounded(conn.closed()).await,
        ConnectionError::TimedOut { .. }
    ));
    assert!(matches!(
        bounded(server_task).await.unwrap(),
        ConnectionError::TimedOut { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_stream_dropped_without_finish_is_seen_as_reset_not_complete() {
    let s = setup();
    let addr = s.server.local_addr();
    let server = s.server.clone();
    let server_task = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let r = recv.read_all(1 << 20).await;
        drop(conn);
        r
    });
    let conn = bounded(s.client.connect(addr, s.identity.public()).unwrap())
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(b"half a mess").await.unwrap();
    drop(send);
    let r = bounded(server_task).await.unwrap();
    assert_eq!(r, Err(ReadError::Reset(jsp_tokio::DROPPED_CODE)));
    // And a finished stream dropped at once still delivers everything.
    let server = s.server.clone();
    let server_task = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        recv.read_all(1 << 20).await
    });
    let conn2 = bounded(s.client.connect(addr, s.identity.public()).unwrap())
        .await
        .unwrap();
    let mut send = conn2.open_uni().await.unwrap();
    send.write_all(b"a whole message").await.unwrap();
    send.finish().unwrap();
    drop(send);
    assert_eq!(
        bounded(server_task).await.unwrap().unwrap(),
        b"a whole message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opt_in_key_log_writes_the_same_secrets_on_both_sides() {
    let s = setup();
    let dir = std::env::temp_dir().join(format!("jsp-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (client_log, server_log) = (dir.join("client.keys"), dir.join("server.keys"));
    s.client.enable_key_log(&client_log).unwrap();
    s.server.enable_key_log(&server_log).unwrap();
    let conn = connect_to_echo(&s).await;
    assert_eq!(bounded(echo_once(&conn, b"hello")).await, b"hello");
    let read = |p: &std::path::Path| -> Vec<String> {
        let mut lines: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let client = read(&client_log);
    assert_eq!(
        client.len(),
        4,
        "handshake and 1-RTT secrets of both directions: {client:?}"
    );
    assert!(client
        .iter()
        .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")));
    assert_eq!(client, read(&server_log), "both sides log the same secrets");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&client_log).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key log is readable by its owner only");
    }
    // A directory that does not exist is a clear error, not a panic.
    assert!(s
        .client
        .enable_key_log(&dir.join("missing").join("x.keys"))
        .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_with_ecn_on_arrives_intact_and_sees_no_congestion_on_loopback() {
    // Both ends mark ECT(0) while they test the path (TransportConfig::ecn defaults on) and
    // jsp-tokio hands the codepoints to and from quinn-udp. On this kernel, datagrams sent in
    // a GSO batch arrive over loopback without their ECN bits (single datagrams keep them), so
    // validation fails at the first batch and both ends stop marking: whichever way it goes,
    // the data arrives and nothing on loopback reads as congestion.
    let s = setup();
    let conn = connect_to_echo(&s).await;
    echo_bulk(&conn, 1_000_000, 253).await;
    let stats = conn.stats();
    assert_eq!(
        stats.ecn_ce_reported, 0,
        "nothing on loopback sets CE: {stats:?}"
    );
    assert_eq!(stats.congestion_events, 0, "{stats:?}");
    assert_eq!(stats.packets_lost, 0, "{stats:?}");
}
