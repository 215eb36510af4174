//! Recovery over real sockets: jsp-tokio endpoints talk through a small userspace UDP relay that
//! drops and delays datagrams (deterministically, by count), so retransmission, reordering and
//! loss detection run on the real driver. No timings are asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsp_tokio::{generate_identity, server_config, Endpoint};
use tokio::net::UdpSocket;

/// What the relay did.
#[derive(Default)]
struct RelayStats {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
}

/// Forwards datagrams between one client (learnt from its first datagram) and `server`,
/// dropping every `drop_every`-th and delaying every `delay_every`-th by a few milliseconds
/// (which also reorders them). Returns the address clients should use.
async fn spawn_relay(
    server: SocketAddr,
    drop_every: u64,
    delay_every: u64,
) -> (SocketAddr, Arc<RelayStats>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let stats = Arc::new(RelayStats::default());
    let s = stats.clone();
    tokio::spawn(async move {
        let mut client: Option<SocketAddr> = None;
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        let mut count = 0u64;
        loop {
            let (data, out, to) = tokio::select! {
                r = front.recv_from(&mut a) => {
                    let (n, from) = r.unwrap();
                    client = Some(from);
                    (a[..n].to_vec(), back.clone(), server)
                }
                r = back.recv_from(&mut b) => {
                    let (n, _) = r.unwrap();
                    let Some(c) = client else { continue };
                    (b[..n].to_vec(), front.clone(), c)
                }
            };
            count += 1;
            if count.is_multiple_of(drop_every) {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            s.forwarded.fetch_add(1, Ordering::Relaxed);
            if count.is_multiple_of(delay_every) {
                s.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = out.send_to(&data, to).await;
                });
            } else {
                let _ = out.send_to(&data, to).await;
            }
        }
    });
    (addr, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_through_a_lossy_reordering_relay_arrives_intact() {
    let identity = Arc::new(generate_identity().unwrap());
    let server = Endpoint::server(
        server_config(identity.clone()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (relay, relay_stats) = spawn_relay(server.local_addr(), 13, 7).await;
    let server_task = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let mut recv = conn.accept_uni().await.unwrap();
            let data = recv.read_all(8 << 20).await.unwrap();
            // Answer on a datagram-free path: a bidirectional stream back.
            let (mut send, _) = conn.open_bi().await.unwrap();
            send.write_all(&(data.len() as u64).to_be_bytes())
                .await
                .unwrap();
            // Not `finished()`: the client closes as soon as it has read the answer, possibly
            // before our FIN's acknowledgement arrives.
            send.finish().unwrap();
            conn.closed().await;
            data
        }
    });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let work = async {
        let conn = client
            .connect(relay, identity.public())
            .unwrap()
            .await
            .unwrap();
        let msg: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&msg).await.unwrap();
        send.finished().await.unwrap();
        let (_, mut recv) = conn.accept_bi().await.unwrap();
        let len = recv.read_all(8).await.unwrap();
        assert_eq!(len, (msg.len() as u64).to_be_bytes());
        let stats = conn.stats();
        conn.close(0, b"done");
        (msg, stats)
    };
    let (msg, stats) = tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("the transfer finished");
    let data = tokio::time::timeout(Duration::from_secs(10), server_task)
        .await
        .unwrap()
        .unwrap();
    assert!(data == msg, "2 MB arrived intact through the relay");
    assert!(relay_stats.dropped.load(Ordering::Relaxed) > 0);
    assert!(relay_stats.delayed.load(Ordering::Relaxed) > 0);
    assert!(
        stats.packets_lost > 0 && stats.retransmitted_bytes > 0,
        "the sender detected the relay's drops and resent: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_completes_through_a_relay_that_drops_the_first_flights() {
    let identity = Arc::new(generate_identity().unwrap());
    let server = Endpoint::server(
        server_config(identity.clone()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    // Every second datagram is dropped: the handshake needs its probe timeouts.
    let (relay, stats) = spawn_relay(server.local_addr(), 2, 1_000_000).await;
    let accept = tokio::spawn(async move { server.accept().await.unwrap().await.map(|_| ()) });
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = tokio::time::timeout(
        Duration::from_secs(30),
        client.connect(relay, identity.public()).unwrap(),
    )
    .await
    .expect("the handshake finished")
    .unwrap();
    assert!(conn.handshake_info().is_some());
    assert!(stats.dropped.load(Ordering::Relaxed) > 0);
    conn.close(0, b"");
    let _ = tokio::time::timeout(Duration::from_secs(10), accept).await;
}
