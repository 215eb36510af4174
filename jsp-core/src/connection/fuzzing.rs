//! Hooks for the fuzz targets and their `cargo test` twins (feature `fuzzing` only).
//!
//! [`Connection::seal_1rtt_for_fuzzing`] lets a harness put arbitrary bytes into the payload of
//! a correctly protected 1-RTT packet, so the peer's whole receive path (header protection,
//! packet-number decoding, duplicate filter, AEAD opening, frame decoder, state machine) runs on
//! hostile plaintext that an attacker without the keys could never have made authenticate.
//! [`Connection::footprint_for_fuzzing`] reports the sizes of the queues a peer can fill, so a
//! harness can check that every one stays bounded.

use super::{Connection, SentFrames, Transmit};
use crate::coding::Writer;
use crate::crypto::TAG_LEN;
use crate::packet::{self, header, number, HeaderSpec, PacketKind, SpaceId};
use crate::recovery::SentPacket;
use crate::time::Instant;

/// The sizes of a connection's peer-fillable queues at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Application events not yet polled.
    pub events: usize,
    /// Endpoint events not yet polled.
    pub endpoint_events: usize,
    /// Bytes of received DATAGRAM frames not yet read.
    pub incoming_datagram_bytes: usize,
    /// Received DATAGRAM frames not yet read.
    pub incoming_datagrams: usize,
    /// PATH_RESPONSE frames queued.
    pub path_responses: usize,
    /// Packets held until keys or the handshake allow processing them.
    pub early_buffer: usize,
    /// Session tickets waiting to be sent.
    pub tickets_pending: usize,
    /// Acknowledgement ranges kept, summed over the packet-number spaces.
    pub ack_ranges: usize,
}

impl Connection {
    /// Fuzzing only: writes into `buf` a 1-RTT packet from this side whose plaintext payload is
    /// `payload` (zero-padded to the header-protection minimum), protected with this side's
    /// current 1-RTT keys and the next packet number, as if the peer's AEAD had let hostile
    /// frames through. The packet is recorded as sent (not ack-eliciting, not in flight), so the
    /// peer's acknowledgement of it is valid. `None` before 1-RTT keys exist or when the packet
    /// does not fit in `buf`.
    pub fn seal_1rtt_for_fuzzing(
        &mut self,
        now: Instant,
        payload: &[u8],
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let keys = self.one_rtt.as_ref()?;
        let space = SpaceId::Data;
        let pn = self.spaces[space.index()].next_pn;
        let pn_len = number::encoded_len(pn, self.recovery.largest_acked(space)).max(2);
        let spec = HeaderSpec {
            kind: PacketKind::Short,
            version: crate::VERSION_1,
            dcid: self.remote_cid,
            scid: self.local_cid,
            token: &[],
            pn,
            pn_len,
            key_phase: keys.tx_phase(),
            spin: false,
        };
        let hdr = header::write(&mut Writer::new(&mut *buf), &spec).ok()?;
        let body = payload.len().max(packet::min_payload_len(pn_len));
        let total = hdr.len() + body + TAG_LEN;
        let out = buf.get_mut(..total)?;
        let (plain, rest) = out.get_mut(hdr.len()..)?.split_at_mut(payload.len());
        plain.copy_from_slice(payload);
        rest.fill(0);
        packet::seal(out, &hdr, pn, keys.tx_key(), &*keys.header_tx).ok()?;
        self.spaces[space.index()].next_pn += 1;
        self.stats.packets_sent += 1;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += total as u64;
        if let Some(keys) = &mut self.one_rtt {
            keys.tx_packets += 1;
        }
        self.recovery.on_packet_sent(
            space,
            pn,
            SentPacket {
                time_sent: now,
                size: u16::try_from(total).unwrap_or(u16::MAX),
                ack_eliciting: false,
                in_flight: false,
                frames: SentFrames::default(),
            },
            now,
        );
        Some(Transmit {
            destination: self.remote,
            size: total,
            segment_size: None,
            ecn: None,
        })
    }

    /// Fuzzing only: the sizes of the queues a peer can make this connection fill.
    pub fn footprint_for_fuzzing(&self) -> Footprint {
        Footprint {
            events: self.events.len(),
            endpoint_events: self.endpoint_events.len(),
            incoming_datagram_bytes: self.datagrams.incoming_bytes,
            incoming_datagrams: self.datagrams.incoming.len(),
            path_responses: self.path_responses.len(),
            early_buffer: self.early_buffer.len(),
            tickets_pending: self.tickets_pending.len(),
            ack_ranges: self.spaces.iter().map(|s| s.ack_ranges.len()).sum(),
        }
    }
}
