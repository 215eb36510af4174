//! Attack: amplification through migration. An on-path attacker rewrites the source address of
//! one of a client's packets to a victim's address in the middle of a large download, so the
//! server sees the connection "move" to the victim. The server follows only with path
//! validation, and until the victim's address is validated (it never will be: the victim does
//! not answer) sends it at most 3× what arrived from it — PATH_CHALLENGE included. The real
//! client's next packet moves the connection back and the download completes.
//!
//! (Spoofed first flights are covered by `attack_flood`, which reports the same ratio per
//! spoofed address for 100,000 ClientHellos, handshake retransmissions included.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use jsp_sim::jsp_core::config::TransportConfig;
use jsp_sim::jsp_core::{Duration, Instant};

use super::attack_harness::{client_addr, Configs, Net};

#[test]
fn a_rewritten_source_address_gets_at_most_three_times_what_it_sent() {
    let configs = Configs::new(81, TransportConfig::default());
    let mut n = Net::new(&configs, 81, None, Instant::from_millis(1));
    n.handshake();
    let victim = "192.0.2.77:9999".parse().unwrap();
    n.victim = Some(victim);
    let id = n.client.open_bi().unwrap();
    n.client.write(id, b"GET /big").unwrap();
    n.run_for(Duration::from_millis(100));
    let sid = n.server().accept_bi().unwrap();
    let total = 8 << 20;
    let chunk = vec![0x33u8; 64 << 10];
    let (mut written, mut read) = (0usize, 0usize);
    let mut rewrites = 0;
    let mut max_ratio = 0f64;
    let mut step = 0u64;
    let deadline = n.now + Duration::from_secs(30);
    while read < total && n.now < deadline {
        while written < total {
            match n
                .server()
                .write(sid, &chunk[..chunk.len().min(total - written)])
            {
                Ok(0) | Err(_) => break,
                Ok(k) => written += k,
            }
        }
        while let Ok(Some(b)) = n.client.read(id, 1 << 20) {
            read += b.len();
        }
        // Every 50 ms of the download, the attacker rewrites the source of what the client
        // sends during the next 3 ms.
        step += 1;
        let rewrite = (20..23).contains(&(step % 50)) && read < total * 3 / 4;
        n.client_from = if rewrite { victim } else { client_addr() };
        if rewrite {
            rewrites += 1;
        }
        n.run_for(Duration::from_millis(1));
        if n.victim_received > 0 {
            max_ratio = max_ratio.max(n.victim_sent as f64 / n.victim_received as f64);
        }
        assert!(
            n.victim_sent <= 3 * n.victim_received,
            "sent {} to the victim for {} received",
            n.victim_sent,
            n.victim_received
        );
    }
    n.client_from = client_addr();
    n.run_for(Duration::from_secs(1));
    println!(
        "migration to a spoofed address: {} bytes arrived from the victim's address over {} \
         rewrite steps; the server sent it {} bytes (ratio {:.3}, worst during the run {:.3}); \
         download {} of {} bytes in {:?}",
        n.victim_received,
        rewrites,
        n.victim_sent,
        n.victim_sent as f64 / n.victim_received.max(1) as f64,
        max_ratio,
        read,
        total,
        n.now.since_origin(),
    );
    assert!(n.victim_received > 0, "the rewrite happened");
    assert!(n.victim_sent > 0, "the server did try the new path");
    assert!(max_ratio <= 3.0);
    assert_eq!(read, total, "the download completes over the real path");
    assert!(!n.server().is_closed());
}
