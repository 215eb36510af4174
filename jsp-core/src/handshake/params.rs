//! Transport parameters: the limits each endpoint announces during the handshake.
//!
//! The client sends its parameters in the ClientHello, the server in EncryptedExtensions; both are
//! covered by the transcript, so an on-path attacker cannot change them. They travel as a CBOR map
//! with short text keys (listed on each field). A missing key takes the default documented on the
//! field — except `initial_source_connection_id`, which is required because it authenticates the
//! connection ID the peer chose (RFC 9000 §7.3). Unknown keys are ignored, so later versions can
//! add parameters.
//!
//! Decoding only checks types; [`TransportParameters::validate`] checks values and must be called
//! on every received set (it fails with TRANSPORT_PARAMETER_ERROR).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use serde::{Deserialize, Serialize};

use super::cbor;
use crate::error::{TransportError, TransportErrorCode};

/// Largest value a QUIC variable-length integer carries (2^62 − 1); counts and limits announced
/// here are later exchanged as varints, so none may exceed it.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Longest connection ID, in bytes (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

/// Smallest UDP payload every path must carry (RFC 9000 §14).
pub const MIN_UDP_PAYLOAD: u64 = 1200;

/// Largest UDP payload an IPv4/IPv6 datagram can carry (RFC 9000 §18.2).
pub const MAX_UDP_PAYLOAD: u64 = 65527;

mod defaults {
    pub(super) fn max_idle_timeout_ms() -> u64 {
        30_000
    }
    pub(super) fn max_udp_payload_size() -> u64 {
        1472
    }
    pub(super) fn initial_max_data() -> u64 {
        16 * 1024 * 1024
    }
    pub(super) fn initial_max_stream_data() -> u64 {
        1024 * 1024
    }
    pub(super) fn initial_max_streams() -> u64 {
        100
    }
    pub(super) fn ack_delay_exponent() -> u8 {
        3
    }
    pub(super) fn max_ack_delay_ms() -> u64 {
        25
    }
    pub(super) fn active_connection_id_limit() -> u64 {
        4
    }
    pub(super) fn max_datagram_frame_size() -> u64 {
        1200
    }
}

/// The transport parameters one endpoint announces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportParameters {
    /// Key `idle`. Idle timeout in milliseconds; 0 means none. Default 30 000.
    #[serde(rename = "idle", default = "defaults::max_idle_timeout_ms")]
    pub max_idle_timeout_ms: u64,
    /// Key `mups`. Largest UDP payload the sender is willing to receive; at least 1200.
    /// Default 1472 (a 1500-byte Ethernet MTU minus IPv4 and UDP headers).
    #[serde(rename = "mups", default = "defaults::max_udp_payload_size")]
    pub max_udp_payload_size: u64,
    /// Key `md`. Connection-level flow-control window in bytes. Default 16 MiB.
    #[serde(rename = "md", default = "defaults::initial_max_data")]
    pub initial_max_data: u64,
    /// Key `msdbl`. Window for bidirectional streams this endpoint opens. Default 1 MiB.
    #[serde(rename = "msdbl", default = "defaults::initial_max_stream_data")]
    pub initial_max_stream_data_bidi_local: u64,
    /// Key `msdbr`. Window for bidirectional streams the peer opens. Default 1 MiB.
    #[serde(rename = "msdbr", default = "defaults::initial_max_stream_data")]
    pub initial_max_stream_data_bidi_remote: u64,
    /// Key `msdu`. Window for unidirectional streams the peer opens. Default 1 MiB.
    #[serde(rename = "msdu", default = "defaults::initial_max_stream_data")]
    pub initial_max_stream_data_uni: u64,
    /// Key `msb`. Bidirectional streams the peer may open; at most 2^60. Default 100.
    #[serde(rename = "msb", default = "defaults::initial_max_streams")]
    pub initial_max_streams_bidi: u64,
    /// Key `msu`. Unidirectional streams the peer may open; at most 2^60. Default 100.
    #[serde(rename = "msu", default = "defaults::initial_max_streams")]
    pub initial_max_streams_uni: u64,
    /// Key `ade`. Exponent scaling the ACK delay field; at most 20. Default 3.
    #[serde(rename = "ade", default = "defaults::ack_delay_exponent")]
    pub ack_delay_exponent: u8,
    /// Key `mad`. Longest the sender delays an acknowledgement, in ms; below 2^14. Default 25.
    #[serde(rename = "mad", default = "defaults::max_ack_delay_ms")]
    pub max_ack_delay_ms: u64,
    /// Key `acil`. Connection IDs the sender is willing to store; at least 2. Default 4.
    #[serde(rename = "acil", default = "defaults::active_connection_id_limit")]
    pub active_connection_id_limit: u64,
    /// Key `mdfs`. Largest DATAGRAM frame accepted; 0 disables datagrams. Default 1200.
    #[serde(rename = "mdfs", default = "defaults::max_datagram_frame_size")]
    pub max_datagram_frame_size: u64,
    /// Key `fec`. The most source packets per forward-error-correction block the sender
    /// decodes; 0 (the default) means it does not decode FEC, and the peer then sends no
    /// FEC_REPAIR frames.
    #[serde(rename = "fec", default)]
    pub fec_max_block: u64,
    /// Key `dam`. The sender does not support active connection migration. Default false.
    #[serde(rename = "dam", default)]
    pub disable_active_migration: bool,
    /// Key `srt`. Stateless reset token for the server's handshake connection ID; server only.
    #[serde(
        rename = "srt",
        default,
        with = "cbor::opt_array",
        skip_serializing_if = "Option::is_none"
    )]
    pub stateless_reset_token: Option<[u8; 16]>,
    /// Key `iscid` (required). The source connection ID of the sender's first Initial packet;
    /// at most 20 bytes.
    #[serde(rename = "iscid", with = "cbor::bytes")]
    pub initial_source_connection_id: Vec<u8>,
    /// Key `odcid`. The destination connection ID of the client's first Initial packet, echoed
    /// by the server (so a Retry cannot be spliced in unnoticed); server only, at most 20 bytes.
    #[serde(
        rename = "odcid",
        default,
        with = "cbor::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub original_destination_connection_id: Option<Vec<u8>>,
    /// Key `rscid`. The source connection ID of the Retry packet the server sent, present
    /// exactly when it sent one (so a Retry cannot be injected or removed unnoticed); server
    /// only, at most 20 bytes.
    #[serde(
        rename = "rscid",
        default,
        with = "cbor::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_source_connection_id: Option<Vec<u8>>,
}

impl Default for TransportParameters {
    fn default() -> Self {
        Self {
            max_idle_timeout_ms: defaults::max_idle_timeout_ms(),
            max_udp_payload_size: defaults::max_udp_payload_size(),
            initial_max_data: defaults::initial_max_data(),
            initial_max_stream_data_bidi_local: defaults::initial_max_stream_data(),
            initial_max_stream_data_bidi_remote: defaults::initial_max_stream_data(),
            initial_max_stream_data_uni: defaults::initial_max_stream_data(),
            initial_max_streams_bidi: defaults::initial_max_streams(),
            initial_max_streams_uni: defaults::initial_max_streams(),
            ack_delay_exponent: defaults::ack_delay_exponent(),
            max_ack_delay_ms: defaults::max_ack_delay_ms(),
            active_connection_id_limit: defaults::active_connection_id_limit(),
            max_datagram_frame_size: defaults::max_datagram_frame_size(),
            fec_max_block: 0,
            disable_active_migration: false,
            stateless_reset_token: None,
            initial_source_connection_id: Vec::new(),
            original_destination_connection_id: None,
            retry_source_connection_id: None,
        }
    }
}

fn param_error(reason: &str) -> TransportError {
    TransportError::new(TransportErrorCode::TRANSPORT_PARAMETER_ERROR, reason)
}

impl TransportParameters {
    /// Checks every value against its documented bounds. `sent_by_server` says who announced
    /// them: a client may not send the server-only fields (`stateless_reset_token`,
    /// `original_destination_connection_id`, `retry_source_connection_id`). Fails with TRANSPORT_PARAMETER_ERROR and a reason
    /// naming the field.
    pub fn validate(&self, sent_by_server: bool) -> Result<(), TransportError> {
        let varints = [
            ("max_idle_timeout_ms", self.max_idle_timeout_ms),
            ("max_udp_payload_size", self.max_udp_payload_size),
            ("initial_max_data", self.initial_max_data),
            (
                "initial_max_stream_data_bidi_local",
                self.initial_max_stream_data_bidi_local,
            ),
            (
                "initial_max_stream_data_bidi_remote",
                self.initial_max_stream_data_bidi_remote,
            ),
            (
                "initial_max_stream_data_uni",
                self.initial_max_stream_data_uni,
            ),
            (
                "active_connection_id_limit",
                self.active_connection_id_limit,
            ),
            ("max_datagram_frame_size", self.max_datagram_frame_size),
            ("fec_max_block", self.fec_max_block),
        ];
        for (name, value) in varints {
            if value > MAX_VARINT {
                return Err(param_error(&format!("{name} exceeds 2^62-1")));
            }
        }
        if self.max_udp_payload_size < MIN_UDP_PAYLOAD {
            return Err(param_error("max_udp_payload_size is below 1200"));
        }
        if self.initial_max_streams_bidi > 1 << 60 {
            return Err(param_error("initial_max_streams_bidi exceeds 2^60"));
        }
        if self.initial_max_streams_uni > 1 << 60 {
            return Err(param_error("initial_max_streams_uni exceeds 2^60"));
        }
        if self.ack_delay_exponent > 20 {
            return Err(param_error("ack_delay_exponent exceeds 20"));
        }
        if self.max_ack_delay_ms >= 1 << 14 {
            return Err(param_error("max_ack_delay_ms is not below 2^14"));
        }
        if self.active_connection_id_limit < 2 {
            return Err(param_error("active_connection_id_limit is below 2"));
        }
        if self.initial_source_connection_id.len() > MAX_CID_LEN {
            return Err(param_error(
                "initial_source_connection_id is longer than 20 bytes",
            ));
        }
        if let Some(odcid) = &self.original_destination_connection_id {
            if odcid.len() > MAX_CID_LEN {
                return Err(param_error(
                    "original_destination_connection_id is longer than 20 bytes",
                ));
            }
        }
        if let Some(rscid) = &self.retry_source_connection_id {
            if rscid.len() > MAX_CID_LEN {
                return Err(param_error(
                    "retry_source_connection_id is longer than 20 bytes",
                ));
            }
        }
        if !sent_by_server {
            if self.retry_source_connection_id.is_some() {
                return Err(param_error(
                    "retry_source_connection_id is server-only but the client sent it",
                ));
            }
            if self.stateless_reset_token.is_some() {
                return Err(param_error(
                    "stateless_reset_token is server-only but the client sent it",
                ));
            }
            if self.original_destination_connection_id.is_some() {
                return Err(param_error(
                    "original_destination_connection_id is server-only but the client sent it",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any parameter set within the validation bounds (server-only fields included when
    /// `server`).
    pub(crate) fn arb_params(server: bool) -> impl Strategy<Value = TransportParameters> {
        (
            (
                0..=MAX_VARINT,
                MIN_UDP_PAYLOAD..=MAX_UDP_PAYLOAD,
                0..=MAX_VARINT,
                0..=MAX_VARINT,
                0..=MAX_VARINT,
                0..=MAX_VARINT,
            ),
            (
                0..=(1u64 << 60),
                0..=(1u64 << 60),
                0..=20u8,
                0..(1u64 << 14),
                2..=MAX_VARINT,
                0..=MAX_VARINT,
                any::<bool>(),
            ),
            (
                proptest::option::of(any::<[u8; 16]>()),
                proptest::collection::vec(any::<u8>(), 0..=MAX_CID_LEN),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=MAX_CID_LEN)),
            ),
        )
            .prop_map(
                move |((a, b, c, d, e, f), (g, h, i, j, k, l, m), (n, o, p))| TransportParameters {
                    max_idle_timeout_ms: a,
                    max_udp_payload_size: b,
                    initial_max_data: c,
                    initial_max_stream_data_bidi_local: d,
                    initial_max_stream_data_bidi_remote: e,
                    initial_max_stream_data_uni: f,
                    initial_max_streams_bidi: g,
                    initial_max_streams_uni: h,
                    ack_delay_exponent: i,
                    max_ack_delay_ms: j,
                    active_connection_id_limit: k,
                    max_datagram_frame_size: l,
                    fec_max_block: l % 100,
                    disable_active_migration: m,
                    stateless_reset_token: if server { n } else { None },
                    initial_source_connection_id: o,
                    retry_source_connection_id: if server {
                        p.clone().map(|mut v| {
                            v.reverse();
                            v
                        })
                    } else {
                        None
                    },
                    original_destination_connection_id: if server { p } else { None },
                },
            )
    }

    fn encode(p: &TransportParameters) -> Vec<u8> {
        let mut out = Vec::new();
        cbor::to_vec_into(p, &mut out).unwrap();
        out
    }

    proptest! {
        #[test]
        fn params_round_trip_and_validate(server in any::<bool>(), p in any::<bool>().prop_flat_map(arb_params)) {
            let bytes = encode(&p);
            let back: TransportParameters = cbor::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &p);
            // Parameters generated for a client are valid from either side.
            let has_server_fields = p.stateless_reset_token.is_some()
                || p.original_destination_connection_id.is_some()
                || p.retry_source_connection_id.is_some();
            prop_assert_eq!(p.validate(server).is_ok(), server || !has_server_fields);
        }
    }

    #[test]
    fn defaults_are_valid_and_missing_keys_take_them() {
        let d = TransportParameters {
            initial_source_connection_id: vec![1, 2, 3],
            ..TransportParameters::default()
        };
        d.validate(false).unwrap();
        d.validate(true).unwrap();
        // A map with only the required key decodes to the defaults.
        #[derive(Serialize)]
        struct Only {
            #[serde(with = "serde_bytes")]
            iscid: Vec<u8>,
            future_param: u32,
        }
        let mut bytes = Vec::new();
        cbor::to_vec_into(
            &Only {
                iscid: vec![1, 2, 3],
                future_param: 7,
            },
            &mut bytes,
        )
        .unwrap();
        let back: TransportParameters = cbor::from_slice(&bytes).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn missing_initial_source_connection_id_is_an_error() {
        let mut bytes = Vec::new();
        cbor::to_vec_into(
            &std::collections::BTreeMap::from([("idle", 5u64)]),
            &mut bytes,
        )
        .unwrap();
        let err = cbor::from_slice::<TransportParameters>(&bytes).unwrap_err();
        assert!(err.contains("iscid"), "{err}");
    }

    #[test]
    fn validation_names_the_offending_field() {
        let base = TransportParameters::default();
        let cases: Vec<(TransportParameters, bool, &str)> = vec![
            (
                TransportParameters {
                    max_udp_payload_size: 1199,
                    ..base.clone()
                },
                true,
                "max_udp_payload_size",
            ),
            (
                TransportParameters {
                    initial_max_data: MAX_VARINT + 1,
                    ..base.clone()
                },
                true,
                "initial_max_data",
            ),
            (
                TransportParameters {
                    initial_max_streams_bidi: (1 << 60) + 1,
                    ..base.clone()
                },
                true,
                "initial_max_streams_bidi",
            ),
            (
                TransportParameters {
                    initial_max_streams_uni: u64::MAX,
                    ..base.clone()
                },
                true,
                "initial_max_streams_uni",
            ),
            (
                TransportParameters {
                    ack_delay_exponent: 21,
                    ..base.clone()
                },
                true,
                "ack_delay_exponent",
            ),
            (
                TransportParameters {
                    max_ack_delay_ms: 1 << 14,
                    ..base.clone()
                },
                true,
                "max_ack_delay_ms",
            ),
            (
                TransportParameters {
                    active_connection_id_limit: 1,
                    ..base.clone()
                },
                true,
                "active_connection_id_limit",
            ),
            (
                TransportParameters {
                    initial_source_connection_id: vec![0; 21],
                    ..base.clone()
                },
                true,
                "initial_source_connection_id",
            ),
            (
                TransportParameters {
                    original_destination_connection_id: Some(vec![0; 21]),
                    ..base.clone()
                },
                true,
                "original_destination_connection_id",
            ),
            (
                TransportParameters {
                    stateless_reset_token: Some([0; 16]),
                    ..base.clone()
                },
                false,
                "stateless_reset_token",
            ),
            (
                TransportParameters {
                    original_destination_connection_id: Some(vec![1]),
                    ..base.clone()
                },
                false,
                "original_destination_connection_id",
            ),
        ];
        for (p, server, field) in cases {
            let err = p.validate(server).unwrap_err();
            assert_eq!(err.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
            assert!(err.reason.starts_with(field), "{field}: {}", err.reason);
        }
    }

    #[test]
    fn wrong_length_reset_token_is_rejected() {
        #[derive(Serialize)]
        struct Bad {
            #[serde(with = "serde_bytes")]
            iscid: Vec<u8>,
            #[serde(with = "serde_bytes")]
            srt: Vec<u8>,
        }
        let mut bytes = Vec::new();
        cbor::to_vec_into(
            &Bad {
                iscid: vec![],
                srt: vec![0; 15],
            },
            &mut bytes,
        )
        .unwrap();
        assert!(cbor::from_slice::<TransportParameters>(&bytes).is_err());
    }
}
