//! `jsp serve`: an echo server for `jsp connect`.

use std::sync::Arc;

use jsp_tokio::{server_config, Connection, Endpoint};
use tokio::io::AsyncWriteExt;

use crate::error::CliError;
use crate::ServeArgs;

/// Runs until Ctrl-C.
pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let identity = Arc::new(crate::keyfile::load(&args.key)?);
    let endpoint = Endpoint::server(server_config(identity.clone())?, args.listen)?;
    eprintln!("listening on {} (UDP)", endpoint.local_addr());
    eprintln!("server key: {}", identity.public());
    eprintln!(
        "try: jsp connect {} --server-key {}",
        endpoint.local_addr(),
        identity.public()
    );
    let accept = {
        let endpoint = endpoint.clone();
        async move {
            while let Some(connecting) = endpoint.accept().await {
                tokio::spawn(async move {
                    let remote = connecting.remote_address();
                    match connecting.await {
                        Ok(conn) => {
                            eprintln!("{} connected", conn.remote_address());
                            serve_connection(conn.clone()).await;
                            eprintln!("{} left: {}", conn.remote_address(), conn.closed().await);
                        }
                        Err(e) => {
                            let who = remote.map_or_else(|| "a client".into(), |r| r.to_string());
                            eprintln!("{who} failed to connect: {e}");
                        }
                    }
                });
            }
        }
    };
    tokio::select! {
        () = accept => {}
        r = tokio::signal::ctrl_c() => {
            r.map_err(|source| CliError::Io { what: "cannot listen for Ctrl-C", source })?;
            eprintln!("shutting down");
        }
    }
    endpoint.close(0, b"server shutting down");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(())
}

/// Echoes bidirectional streams and datagrams; swallows unidirectional streams.
pub(crate) async fn serve_connection(conn: Connection) {
    let datagrams = conn.clone();
    tokio::spawn(async move {
        while let Ok(d) = datagrams.read_datagram().await {
            let _ = datagrams.send_datagram(d);
        }
    });
    let uni = conn.clone();
    tokio::spawn(async move {
        while let Ok(mut recv) = uni.accept_uni().await {
            tokio::spawn(
                async move { while let Ok(Some(_)) = recv.read_chunk(usize::MAX).await {} },
            );
        }
    });
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            if tokio::io::copy(&mut recv, &mut send).await.is_ok() {
                let _ = send.shutdown().await;
            }
        });
    }
}
