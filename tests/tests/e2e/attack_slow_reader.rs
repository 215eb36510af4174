//! Attack: a peer that never reads. The client asks for a large answer and then never reads
//! its stream (it keeps acknowledging, as a real but malicious or stuck peer would), while the
//! server application writes as fast as the connection accepts. Flow control stops the
//! server's sending at the client's stream window, and the connection's send buffer stops the
//! application's writes: what the server holds for this peer stays bounded by configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use jsp_sim::jsp_core::config::TransportConfig;
use jsp_sim::jsp_core::{Duration, Instant};

use super::attack_harness::{Configs, Net};

#[test]
fn a_peer_that_never_reads_leaves_the_server_holding_a_bounded_amount() {
    let transport = TransportConfig::default();
    let send_buffer = transport.send_buffer;
    let stream_window = transport.stream_receive_window;
    let configs = Configs::new(51, transport);
    let mut n = Net::new(&configs, 51, None, Instant::from_millis(1));
    n.handshake();
    let id = n.client.open_bi().unwrap();
    n.client.write(id, b"GET /everything").unwrap();
    n.run_for(Duration::from_millis(100));
    let sid = n.server().accept_bi().expect("the request stream");
    let chunk = vec![0x5au8; 64 << 10];
    let mut accepted: u64 = 0;
    let mut samples = Vec::new();
    // Ten seconds of virtual time: the server writes whenever it can, the client never reads.
    let end = n.now + Duration::from_secs(10);
    while n.now < end {
        loop {
            match n.server().write(sid, &chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => accepted += k as u64,
            }
        }
        n.run_for(Duration::from_millis(5));
        if samples
            .last()
            .is_none_or(|(t, _)| n.now >= *t + Duration::from_secs(1))
        {
            samples.push((n.now, accepted));
        }
    }
    let stats = n.server().stats();
    let on_wire = n.server_bytes_sent;
    println!(
        "peer never reads: server application writes accepted {accepted} bytes (stream flow \
         credit {stream_window}, send buffer {send_buffer}); server sent {on_wire} bytes on the wire for a {stream_window}-byte \
         stream window; bytes in flight {}; held for the peer at most {} bytes; accepted over \
         time {:?}",
        stats.bytes_in_flight,
        accepted,
        samples.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
    );
    assert!(
        !n.server().is_closed(),
        "a slow reader is not an error by itself"
    );
    assert!(
        accepted <= send_buffer + stream_window,
        "the send buffer bounds what the application can queue: {accepted}"
    );
    assert!(
        on_wire <= stream_window + stream_window / 4 + (64 << 10),
        "flow control bounds what is sent: {on_wire}"
    );
    // Writes stopped well before the end: the last seconds accepted nothing.
    let (_, at_5s) = samples.get(5).copied().unwrap_or((n.now, accepted));
    assert_eq!(at_5s, accepted, "writes blocked once the buffer filled");
}
