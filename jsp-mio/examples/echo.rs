//! An echo server and a client in one mio event loop, over loopback UDP.
//!
//! The whole driving loop: poll with the endpoints' timeout, `drive` each endpoint, react to
//! their events through the core's connection API, `drive` again to send what was queued.
//!
//! Run with `cargo run -p jsp-mio --example echo`.

use std::sync::Arc;

use jsp_mio::jsp_core::connection::Event;
use jsp_mio::jsp_core::crypto::sign::{IdentityKey, SignatureScheme};
use jsp_mio::jsp_core::stream::{ReadError, StreamEvent};
use jsp_mio::mio::{Events, Poll, Token};
use jsp_mio::Endpoint;

const SERVER: Token = Token(0);
const CLIENT: Token = Token(1);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identity = Arc::new(IdentityKey::generate(
        SignatureScheme::Ed25519,
        &mut jsp_mio::os_rng()?,
    ));
    let mut poll = Poll::new()?;
    let mut server = Endpoint::bind(
        "127.0.0.1:0".parse()?,
        Some(jsp_mio::server_config(identity.clone())?),
    )?;
    let mut client = Endpoint::bind("127.0.0.1:0".parse()?, None)?;
    server.register(poll.registry(), SERVER)?;
    client.register(poll.registry(), CLIENT)?;

    let conn = client.connect(server.local_addr()?, identity.public())?;
    let mut events = Events::with_capacity(64);
    let mut reply = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let timeout = [server.timeout(), client.timeout()]
            .into_iter()
            .flatten()
            .min();
        poll.poll(&mut events, timeout)?;
        server.drive()?;
        client.drive()?;

        // Server: echo every bidirectional stream back, finishing it when the peer does.
        while let Some((h, event)) = server.poll_event() {
            let Some(c) = server.connection(h) else {
                continue;
            };
            match event {
                Event::Stream(StreamEvent::Opened { .. }) => while c.accept_bi().is_some() {},
                Event::Stream(StreamEvent::Readable { id }) => loop {
                    match c.read(id, usize::MAX) {
                        Ok(Some(data)) => {
                            c.write(id, &data)?;
                        }
                        Ok(None) => {
                            c.finish(id)?;
                            break;
                        }
                        Err(ReadError::Blocked) => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                _ => {}
            }
        }

        // Client: once connected, send a message; collect the echo until the stream ends.
        while let Some((h, event)) = client.poll_event() {
            let Some(c) = client.connection(h) else {
                continue;
            };
            match event {
                Event::Connected(info) => {
                    println!("connected: {} with {}", info.suite, info.key_exchange);
                    let id = c.open_bi().ok_or("no stream credit")?;
                    c.write(id, b"hello over mio")?;
                    c.finish(id)?;
                }
                Event::Stream(StreamEvent::Readable { id }) => loop {
                    match c.read(id, usize::MAX) {
                        Ok(Some(data)) => reply.extend_from_slice(&data),
                        Ok(None) => {
                            println!("echo: {}", String::from_utf8_lossy(&reply));
                            c.close(jsp_mio::now(), 0, b"done");
                            break;
                        }
                        Err(ReadError::Blocked) => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                Event::ConnectionLost(e) => {
                    println!("closed: {e}");
                    return Ok(());
                }
                _ => {}
            }
        }
        server.drive()?;
        client.drive()?;
        if client.connection(conn).is_none() || std::time::Instant::now() > deadline {
            return Err("the echo did not complete".into());
        }
    }
}
