//! The same jsp-tokio API on smol (the `smol` feature): endpoints created outside a tokio
//! runtime run on smol, and streams implement futures-io's traits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use jsp_tokio::{generate_identity, server_config, Endpoint};
use smol::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn an_echo_over_loopback_runs_on_smol_with_futures_io_streams() {
    smol::block_on(async {
        let identity = Arc::new(generate_identity().unwrap());
        let server = Endpoint::server(
            server_config(identity.clone()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let addr = server.local_addr();
        let echo = smol::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let mut buf = Vec::new();
            recv.read_to_end(&mut buf).await.unwrap();
            send.write_all(&buf).await.unwrap();
            send.close().await.unwrap();
            conn.closed().await
        });
        let client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let work = async {
            let conn = client
                .connect(addr, identity.public())
                .unwrap()
                .await
                .unwrap();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(b"hello from smol").await.unwrap();
            send.close().await.unwrap();
            let mut back = Vec::new();
            recv.read_to_end(&mut back).await.unwrap();
            conn.close(0, b"");
            back
        };
        let back = smol::future::or(async { Some(work.await) }, async {
            smol::Timer::after(Duration::from_secs(20)).await;
            None
        })
        .await
        .expect("the echo finished in time");
        assert_eq!(back, b"hello from smol");
        drop(echo);
    });
}
