//! The physical ceilings for loopback goodput on this machine: the AEAD seal rate of JSP's
//! preferred suite on one core, and what the kernel's loopback UDP path carries from one
//! thread to another with GSO/GRO batches and no protocol at all.

use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};

use jsp_core::crypto::{Backend, CipherSuite, IV_LEN, KEY_LEN, TAG_LEN};

/// Plaintext bytes per sealed packet: a full 1472-byte UDP payload (IPv4 loopback) less a short
/// header and the tag.
pub(crate) const PAYLOAD: usize = 1420;

/// The suite JSP prefers on this CPU and how many plaintext bytes per second one core seals with
/// it, sealing `PAYLOAD`-byte packets for at least `duration`.
pub(crate) fn seal_rate(duration: Duration) -> (CipherSuite, f64) {
    let suite = CipherSuite::default_preference()
        .first()
        .copied()
        .unwrap_or(CipherSuite::ChaCha20Poly1305);
    let key = Backend::Auto.packet_key(suite, &[0x42; KEY_LEN], &[0x24; IV_LEN]);
    let header = [0x40u8; 20];
    let mut buf = vec![0x5au8; PAYLOAD + TAG_LEN];
    let mut pn = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..256 {
            // The tag of the previous seal stays in the buffer's tail and is overwritten.
            if key.seal(pn, &header, &mut buf).is_err() {
                return (suite, 0.0);
            }
            pn += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= duration {
            std::hint::black_box(&buf);
            return (suite, (pn as f64 * PAYLOAD as f64) / elapsed.as_secs_f64());
        }
    }
}

/// UDP payload bytes per datagram in the raw UDP ceiling: a packet of `PAYLOAD` plaintext bytes
/// sealed, with a short header.
pub(crate) const DATAGRAM: usize = 1472;

/// The kernel's loopback UDP path, measured with no protocol and no encryption.
pub(crate) struct UdpCeiling {
    /// UDP payload bytes per second the receiving thread got.
    pub(crate) delivered: f64,
    /// UDP payload bytes the sending thread pushed through the socket per second of its own
    /// CPU time (user + system): the send path's cost per byte on one core.
    pub(crate) sent_per_cpu_second: Option<f64>,
}

/// How many UDP payload bytes per second the kernel's loopback path delivers from one sending
/// thread to one receiving thread, for at least `duration`, and what sending costs the sender's
/// core: the sender writes GSO batches of `DATAGRAM`-byte segments as fast as the socket takes
/// them, the receiver reads with GRO; what the receiver gets is counted (what overflows its
/// buffer is lost and not counted). No transport over this loopback can deliver more.
pub(crate) fn udp_rate(duration: Duration) -> std::io::Result<UdpCeiling> {
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let to = receiver.local_addr()?;
    let rx_state = UdpSocketState::new((&receiver).into())?;
    let tx_state = UdpSocketState::new((&sender).into())?;
    for (state, socket) in [(&rx_state, &receiver), (&tx_state, &sender)] {
        // Best effort, as the drivers do; the kernel caps it at net.core.[rw]mem_max.
        let _ = state.set_recv_buffer_size(socket.into(), 4 << 20);
        let _ = state.set_send_buffer_size(socket.into(), 4 << 20);
    }
    receiver.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sending = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let segments = tx_state.max_gso_segments().clamp(1, 64_000 / DATAGRAM);
            let batch = vec![0x5au8; DATAGRAM * segments];
            let cpu0 = crate::sys::thread_cpu_time();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let transmit = Transmit {
                    destination: to,
                    ecn: None,
                    contents: &batch,
                    segment_size: (segments > 1).then_some(DATAGRAM),
                    src_ip: None,
                };
                // A full buffer or a transient error only means this batch is not counted.
                if tx_state.try_send((&sender).into(), &transmit).is_ok() {
                    sent += batch.len() as u64;
                }
            }
            let cpu = crate::sys::thread_cpu_time()
                .zip(cpu0)
                .map(|(b, a)| b.saturating_sub(a).as_secs_f64());
            cpu.filter(|&c| c > 0.0).map(|c| sent as f64 / c)
        })
    };
    let chunk = 64 * 1024;
    let mut buf = vec![0u8; chunk * BATCH_SIZE];
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    let mut received = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut slices: Vec<IoSliceMut<'_>> = buf.chunks_mut(chunk).map(IoSliceMut::new).collect();
        if let Ok(n) = rx_state.recv((&receiver).into(), &mut slices, &mut meta) {
            received += meta[..n].iter().map(|m| m.len as u64).sum::<u64>();
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent_per_cpu_second = sending.join().ok().flatten();
    Ok(UdpCeiling {
        delivered: received as f64 / elapsed.as_secs_f64(),
        sent_per_cpu_second,
    })
}
