//! The client side of the handshake.

use std::sync::Arc;

use super::{
    unexpected, EarlyData, HandshakeInfo, KeyInstall, SessionOutput, CLIENT_SIGNATURE_CONTEXT,
    SERVER_SIGNATURE_CONTEXT,
};
use crate::config::{ClientConfig, ServerTrust};
use crate::crypto::kex::{ClientKeyShare, KeyExchange};
use crate::crypto::schedule::stage::Handshake;
use crate::crypto::schedule::{
    finished_key, hmac_sha256, ticket_psk, verify_hmac_sha256, KeySchedule, Secret, Transcript,
};
use crate::crypto::sign::{PublicIdentity, SignatureScheme};
use crate::crypto::CipherSuite;
use crate::error::TransportError;
use crate::handshake::{
    ClientHello, ClientTicket, Finished, HandshakeMessage, Identity, IdentityVerify, PskOffer,
    TransportParameters, MAX_TICKET_LIFETIME,
};
use crate::packet::SpaceId;
use crate::rand::Rng;
use crate::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitServerHello,
    WaitEncryptedExtensions,
    WaitIdentity,
    WaitIdentityVerify,
    WaitFinished,
    Complete,
}

/// The client's handshake state machine.
pub struct ClientSession {
    config: Arc<ClientConfig>,
    state: State,
    transcript: Transcript,
    /// Boxed (2.4 KiB with ML-KEM) and dropped once used, so a connection does not carry it.
    share: Option<Box<ClientKeyShare>>,
    schedule: Option<KeySchedule<Handshake>>,
    handshake_secrets: Option<(Secret, Secret)>,
    ticket: Option<ClientTicket>,
    early_offered: bool,
    suite: Option<CipherSuite>,
    kex: Option<KeyExchange>,
    psk_accepted: bool,
    early_data: EarlyData,
    client_auth_requested: bool,
    server_identity: Option<PublicIdentity>,
    peer_params: Option<TransportParameters>,
    resumption: Option<Secret>,
    info: Option<HandshakeInfo>,
}

/// Signature schemes a client accepts from servers.
const ACCEPTED_SCHEMES: [SignatureScheme; 2] =
    [SignatureScheme::Ed25519MlDsa65, SignatureScheme::Ed25519];

impl ClientSession {
    /// Starts a handshake: builds the ClientHello (and the 0-RTT keys when resuming with a ticket
    /// that allows early data) into `out`.
    pub fn new(
        config: Arc<ClientConfig>,
        params: TransportParameters,
        ticket: Option<ClientTicket>,
        rng: &mut Rng,
        now: Instant,
        out: &mut SessionOutput,
    ) -> Self {
        Self::with_share(config, params, ticket, None, rng, now, out)
    }

    /// The group a new session of `config` offers a share for.
    pub fn share_kex(config: &ClientConfig) -> KeyExchange {
        config
            .key_exchanges
            .first()
            .copied()
            .unwrap_or(KeyExchange::X25519MlKem768)
    }

    /// [`Self::new`] with the key share generated ahead; it is used when its group is the one
    /// [`Self::share_kex`] names, else a fresh share is generated.
    pub fn with_share(
        config: Arc<ClientConfig>,
        params: TransportParameters,
        ticket: Option<ClientTicket>,
        share: Option<ClientKeyShare>,
        rng: &mut Rng,
        now: Instant,
        out: &mut SessionOutput,
    ) -> Self {
        let ticket = ticket.filter(|t| {
            !t.is_expired(now)
                && t.version == crate::VERSION_1
                && CipherSuite::from_u16(t.suite).is_some_and(|s| config.cipher_suites.contains(&s))
        });
        let share_kex = Self::share_kex(&config);
        let share = share
            .filter(|s| s.kex() == share_kex)
            .unwrap_or_else(|| ClientKeyShare::generate(share_kex, rng));
        let early_offered =
            config.zero_rtt && ticket.as_ref().is_some_and(|t| t.max_early_data > 0);
        let hello = ClientHello {
            version: crate::VERSION_1,
            random: rng.array(),
            suites: config.cipher_suites.iter().map(|s| s.to_u16()).collect(),
            kex_groups: config.key_exchanges.iter().map(|k| k.to_u16()).collect(),
            share_group: share_kex.to_u16(),
            share: share.public().to_vec(),
            sig_schemes: ACCEPTED_SCHEMES.iter().map(|s| s.to_u16()).collect(),
            params,
            psk: ticket.as_ref().map(|t| PskOffer {
                ticket: t.ticket.clone(),
                obfuscated_age_ms: t.obfuscated_age_ms(now),
            }),
            early_data: early_offered,
        };
        let raw = HandshakeMessage::ClientHello(hello).encode();
        let mut transcript = Transcript::new();
        transcript.update(&raw);
        out.crypto[SpaceId::Initial.index()].extend_from_slice(&raw);
        if let (true, Some(t)) = (early_offered, &ticket) {
            if let Some(suite) = CipherSuite::from_u16(t.suite) {
                let psk = Secret::from_bytes(t.psk);
                let secret = KeySchedule::new(Some(&psk)).client_early_traffic(&transcript.hash());
                out.keys.push(KeyInstall::ZeroRtt { suite, secret });
            }
        }
        tracing::debug!(kex = %share_kex, early = early_offered, resuming = ticket.is_some(), "sent ClientHello");
        Self {
            config,
            state: State::WaitServerHello,
            transcript,
            share: Some(Box::new(share)),
            schedule: None,
            handshake_secrets: None,
            ticket,
            early_offered,
            suite: None,
            kex: None,
            psk_accepted: false,
            early_data: if early_offered {
                EarlyData::Rejected
            } else {
                EarlyData::NotOffered
            },
            client_auth_requested: false,
            server_identity: None,
            peer_params: None,
            resumption: None,
            info: None,
        }
    }

    /// Whether 0-RTT data was offered in the ClientHello.
    pub fn early_data_offered(&self) -> bool {
        self.early_offered
    }

    pub(super) fn info(&self) -> Option<&HandshakeInfo> {
        self.info.as_ref()
    }

    pub(super) fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    pub(super) fn peer_params(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    pub(super) fn handle(
        &mut self,
        space: SpaceId,
        msg: HandshakeMessage,
        raw: &[u8],
        _now: Instant,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        match (self.state, space, msg) {
            (State::WaitServerHello, SpaceId::Initial, HandshakeMessage::ServerHello(sh)) => {
                if sh.version != crate::VERSION_1 {
                    return Err(TransportError::handshake(format!(
                        "server chose unknown version {:#x}",
                        sh.version
                    )));
                }
                let suite = CipherSuite::from_u16(sh.suite)
                    .filter(|s| self.config.cipher_suites.contains(s))
                    .ok_or_else(|| {
                        TransportError::handshake(format!(
                            "server chose cipher suite {:#06x}, which we did not offer",
                            sh.suite
                        ))
                    })?;
                let kex = KeyExchange::from_u16(sh.kex_group)
                    .filter(|k| self.config.key_exchanges.contains(k))
                    .ok_or_else(|| {
                        TransportError::handshake(format!(
                            "server chose key exchange {:#06x}, which we did not offer",
                            sh.kex_group
                        ))
                    })?;
                if sh.psk_accepted && self.ticket.is_none() {
                    return Err(TransportError::handshake(
                        "server accepted a ticket we did not offer",
                    ));
                }
                if sh.early_data_accepted && !self.early_offered {
                    return Err(TransportError::handshake(
                        "server accepted 0-RTT we did not offer",
                    ));
                }
                let psk = match (&self.ticket, sh.psk_accepted) {
                    (Some(t), true) => {
                        if t.suite != sh.suite {
                            return Err(TransportError::handshake(
                                "server resumed a ticket under another cipher suite",
                            ));
                        }
                        Some(Secret::from_bytes(t.psk))
                    }
                    _ => None,
                };
                let share = self
                    .share
                    .take()
                    .ok_or_else(|| TransportError::handshake("key share already used"))?;
                let shared = share.finish_as(kex, &sh.share).map_err(|e| {
                    TransportError::handshake(format!("server key share rejected: {e}"))
                })?;
                self.transcript.update(raw);
                let schedule = KeySchedule::new(psk.as_ref()).into_handshake(shared.as_bytes());
                let (client_hs, server_hs) = schedule.handshake_traffic(&self.transcript.hash());
                out.keys.push(KeyInstall::Handshake {
                    suite,
                    rx: server_hs.clone(),
                    tx: client_hs.clone(),
                });
                self.handshake_secrets = Some((client_hs, server_hs));
                self.schedule = Some(schedule);
                self.suite = Some(suite);
                self.kex = Some(kex);
                self.psk_accepted = sh.psk_accepted;
                if self.early_offered {
                    self.early_data = if sh.early_data_accepted {
                        EarlyData::Accepted
                    } else {
                        EarlyData::Rejected
                    };
                    out.early_data = Some(self.early_data);
                }
                self.state = State::WaitEncryptedExtensions;
                tracing::debug!(%suite, %kex, resumed = self.psk_accepted, "received ServerHello");
                Ok(())
            }
            (
                State::WaitEncryptedExtensions,
                SpaceId::Handshake,
                HandshakeMessage::EncryptedExtensions(ee),
            ) => {
                ee.params.validate(true)?;
                self.peer_params = Some(ee.params);
                self.client_auth_requested = ee.client_auth_requested;
                self.transcript.update(raw);
                self.state = State::WaitIdentity;
                Ok(())
            }
            (State::WaitIdentity, SpaceId::Handshake, HandshakeMessage::Identity(id)) => {
                // A pinned key is already parsed (its point decompressed): reuse it.
                let pinned = match &self.config.trust {
                    ServerTrust::Pinned(keys) => keys
                        .iter()
                        .find(|k| k.is_encoded_by(&id.public_key))
                        .cloned(),
                    _ => None,
                };
                let identity = match pinned {
                    Some(k) => k,
                    None => PublicIdentity::from_bytes(&id.public_key).map_err(|e| {
                        TransportError::handshake(format!("server identity malformed: {e}"))
                    })?,
                };
                if !ACCEPTED_SCHEMES.contains(&identity.scheme()) {
                    return Err(TransportError::handshake(
                        "server identity uses a scheme we did not accept",
                    ));
                }
                match &self.config.trust {
                    ServerTrust::Pinned(keys) => {
                        if !keys.contains(&identity) {
                            return Err(TransportError::handshake(format!(
                                "server key {identity} does not match the pinned key"
                            )));
                        }
                    }
                    ServerTrust::AcceptAny => {}
                    ServerTrust::Custom(verifier) => {
                        verifier.verify(&identity).map_err(|reason| {
                            TransportError::handshake(format!(
                                "server key {identity} refused: {reason}"
                            ))
                        })?
                    }
                }
                self.server_identity = Some(identity);
                self.transcript.update(raw);
                self.state = State::WaitIdentityVerify;
                Ok(())
            }
            (
                State::WaitIdentityVerify,
                SpaceId::Handshake,
                HandshakeMessage::IdentityVerify(v),
            ) => {
                let identity = self
                    .server_identity
                    .as_ref()
                    .ok_or_else(|| TransportError::handshake("signature before identity"))?;
                let signed = [SERVER_SIGNATURE_CONTEXT, &self.transcript.hash()].concat();
                identity.verify(&signed, &v.signature).map_err(|e| {
                    TransportError::handshake(format!(
                        "server signature over the transcript is invalid: {e}"
                    ))
                })?;
                self.transcript.update(raw);
                self.state = State::WaitFinished;
                Ok(())
            }
            (State::WaitFinished, SpaceId::Handshake, HandshakeMessage::Finished(fin)) => {
                self.on_server_finished(&fin, raw, out)
            }
            (state, space, msg) => Err(unexpected(&msg, space, &format!("{state:?}"))),
        }
    }

    fn on_server_finished(
        &mut self,
        fin: &Finished,
        raw: &[u8],
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        let (client_hs, server_hs) = self
            .handshake_secrets
            .as_ref()
            .ok_or_else(|| TransportError::handshake("Finished before ServerHello"))?;
        if !verify_hmac_sha256(
            finished_key(server_hs).as_bytes(),
            &self.transcript.hash(),
            &fin.mac,
        ) {
            return Err(TransportError::handshake(
                "server Finished MAC does not match the transcript",
            ));
        }
        self.transcript.update(raw);
        let schedule = self
            .schedule
            .take()
            .ok_or_else(|| TransportError::handshake("no key schedule"))?
            .into_master();
        let (client_ap, server_ap) = schedule.application_traffic(&self.transcript.hash());
        let hs_out = &mut out.crypto[SpaceId::Handshake.index()];
        if self.client_auth_requested {
            if let Some(key) = &self.config.identity {
                let raw = HandshakeMessage::Identity(Identity {
                    public_key: key.public().to_bytes(),
                })
                .encode();
                self.transcript.update(&raw);
                hs_out.extend_from_slice(&raw);
                let signed = [CLIENT_SIGNATURE_CONTEXT, &self.transcript.hash()].concat();
                let raw = HandshakeMessage::IdentityVerify(IdentityVerify {
                    signature: key.sign(&signed),
                })
                .encode();
                self.transcript.update(&raw);
                hs_out.extend_from_slice(&raw);
            }
        }
        let mac = hmac_sha256(finished_key(client_hs).as_bytes(), &self.transcript.hash());
        let raw = HandshakeMessage::Finished(Finished { mac }).encode();
        self.transcript.update(&raw);
        hs_out.extend_from_slice(&raw);
        self.resumption = Some(schedule.resumption(&self.transcript.hash()));
        let suite = self.suite.unwrap_or(CipherSuite::ChaCha20Poly1305);
        out.keys.push(KeyInstall::OneRtt {
            suite,
            rx: server_ap,
            tx: client_ap,
        });
        self.info = Some(HandshakeInfo {
            version: crate::VERSION_1,
            suite,
            key_exchange: self.kex.unwrap_or(KeyExchange::X25519MlKem768),
            signature_scheme: self
                .server_identity
                .as_ref()
                .map_or(SignatureScheme::Ed25519, PublicIdentity::scheme),
            resumed: self.psk_accepted,
            early_data: self.early_data,
            peer_identity: self.server_identity.clone(),
        });
        self.state = State::Complete;
        out.completed = true;
        tracing::debug!("handshake complete (client)");
        Ok(())
    }

    pub(super) fn handle_ticket(
        &mut self,
        data: &[u8],
        now: Instant,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        let resumption = self.resumption.as_ref().ok_or_else(|| {
            TransportError::protocol("SESSION_TICKET before the handshake completed")
        })?;
        let nst = match HandshakeMessage::decode(data)? {
            Some((HandshakeMessage::NewSessionTicket(nst), n)) if n == data.len() => nst,
            _ => {
                return Err(TransportError::protocol(
                    "SESSION_TICKET frame does not hold one NewSessionTicket",
                ))
            }
        };
        let (Some(suite), Some(identity), Some(params)) =
            (self.suite, &self.server_identity, &self.peer_params)
        else {
            return Err(TransportError::protocol(
                "SESSION_TICKET before the handshake completed",
            ));
        };
        let psk = ticket_psk(resumption, &nst.nonce);
        out.received_tickets.push(ClientTicket {
            ticket: nst.ticket,
            psk: *psk.as_bytes(),
            suite: suite.to_u16(),
            received_at: now,
            lifetime: Duration::from_secs(u64::from(nst.lifetime_s)).min(MAX_TICKET_LIFETIME),
            age_add: nst.age_add,
            max_early_data: nst.max_early_data,
            server_identity_fingerprint: identity.fingerprint(),
            version: crate::VERSION_1,
            params: params.clone(),
        });
        Ok(())
    }
}
