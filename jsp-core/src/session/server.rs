//! The server side of the handshake.

use std::sync::Arc;

use super::{
    unexpected, EarlyData, HandshakeInfo, KeyInstall, SessionOutput, CLIENT_SIGNATURE_CONTEXT,
    SERVER_SIGNATURE_CONTEXT,
};
use crate::config::{ClientAuth, ServerConfig};
use crate::crypto::kex::{
    server_share, KeyExchange, PendingServerSecret, X25519KeyPair, HYBRID_CLIENT_SHARE_LEN,
    X25519_SHARE_LEN,
};
use crate::crypto::schedule::stage::Master;
use crate::crypto::schedule::{
    finished_key, hmac_sha256, ticket_psk, verify_hmac_sha256, KeySchedule, Secret, Transcript,
};
use crate::crypto::sign::PublicIdentity;
use crate::crypto::CipherSuite;
use crate::error::TransportError;
use crate::handshake::{
    check_ticket_age, ClientHello, EncryptedExtensions, Finished, HandshakeMessage, Identity,
    IdentityVerify, NewSessionTicket, ServerHello, TicketContents, TransportParameters,
};
use crate::packet::SpaceId;
use crate::rand::Rng;
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitClientHello,
    /// The ServerHello is out; the rest of the answer waits for [`ServerSession::finish_answer`].
    Answering,
    WaitClientFlight,
    Complete,
}

/// The server's handshake state machine.
pub struct ServerSession {
    config: Arc<ServerConfig>,
    local_params: TransportParameters,
    state: State,
    transcript: Transcript,
    schedule: Option<KeySchedule<Master>>,
    client_handshake_secret: Option<Secret>,
    suite: Option<CipherSuite>,
    client_identity: Option<PublicIdentity>,
    client_verified: bool,
    peer_params: Option<TransportParameters>,
    info: Option<HandshakeInfo>,
    max_early_data: u32,
    /// An X25519 key pair generated ahead for this handshake ([`Self::offer_key_pair`]).
    spare_key_pair: Option<X25519KeyPair>,
    /// What the second half of the answer to the ClientHello needs (state `Answering`).
    pending: Option<Box<PendingAnswer>>,
}

/// The ClientHello's answer between the ServerHello and the rest of the server's flight.
struct PendingAnswer {
    secret: PendingServerSecret,
    psk: Option<Secret>,
    suite: CipherSuite,
    kex: KeyExchange,
    early_offered: bool,
    early_accepted: bool,
    version: u32,
}

/// What the server decided about a ClientHello's ticket.
struct PskDecision {
    psk: Option<Secret>,
    ticket_suite: Option<CipherSuite>,
    early: bool,
    max_early_data: u32,
}

impl ServerSession {
    /// A server session answering with `local_params` (which carry this connection's IDs).
    pub fn new(config: Arc<ServerConfig>, local_params: TransportParameters) -> Self {
        Self {
            config,
            local_params,
            state: State::WaitClientHello,
            transcript: Transcript::new(),
            schedule: None,
            client_handshake_secret: None,
            suite: None,
            client_identity: None,
            client_verified: false,
            peer_params: None,
            spare_key_pair: None,
            pending: None,
            info: None,
            max_early_data: 0,
        }
    }

    /// How many bytes of 0-RTT data this connection accepts (0 when 0-RTT was not accepted).
    pub fn max_early_data(&self) -> u32 {
        self.max_early_data
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

    /// Whether the answer to the ClientHello waits for [`Self::finish_answer`].
    pub(super) fn work_pending(&self) -> bool {
        self.state == State::Answering
    }

    pub(super) fn handle(
        &mut self,
        space: SpaceId,
        msg: HandshakeMessage,
        raw: &[u8],
        now: Instant,
        rng: &mut Rng,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        match (self.state, space, msg) {
            (State::WaitClientHello, SpaceId::Initial, HandshakeMessage::ClientHello(ch)) => {
                self.on_client_hello(ch, raw, now, rng, out)
            }
            (State::WaitClientFlight, SpaceId::Handshake, HandshakeMessage::Identity(id)) => {
                if matches!(self.config.client_auth, ClientAuth::None)
                    || self.client_identity.is_some()
                {
                    return Err(TransportError::handshake(
                        "client sent an identity that was not requested",
                    ));
                }
                let identity = PublicIdentity::from_bytes(&id.public_key).map_err(|e| {
                    TransportError::handshake(format!("client identity malformed: {e}"))
                })?;
                if let ClientAuth::Required(trusted) = &self.config.client_auth {
                    if !trusted.contains(&identity) {
                        return Err(TransportError::handshake(format!(
                            "client key {identity} is not trusted"
                        )));
                    }
                }
                self.client_identity = Some(identity);
                self.transcript.update(raw);
                Ok(())
            }
            (State::WaitClientFlight, SpaceId::Handshake, HandshakeMessage::IdentityVerify(v)) => {
                let identity = self
                    .client_identity
                    .as_ref()
                    .filter(|_| !self.client_verified)
                    .ok_or_else(|| {
                        TransportError::handshake("client signature without a client identity")
                    })?;
                let signed = [CLIENT_SIGNATURE_CONTEXT, &self.transcript.hash()].concat();
                identity.verify(&signed, &v.signature).map_err(|e| {
                    TransportError::handshake(format!(
                        "client signature over the transcript is invalid: {e}"
                    ))
                })?;
                self.client_verified = true;
                self.transcript.update(raw);
                Ok(())
            }
            (State::WaitClientFlight, SpaceId::Handshake, HandshakeMessage::Finished(fin)) => {
                self.on_client_finished(&fin, raw, now, rng, out)
            }
            (state, space, msg) => Err(unexpected(&msg, space, &format!("{state:?}"))),
        }
    }

    fn decide_psk(&self, ch: &ClientHello, now: Instant) -> PskDecision {
        let none = PskDecision {
            psk: None,
            ticket_suite: None,
            early: false,
            max_early_data: 0,
        };
        let Some(offer) = &ch.psk else { return none };
        let Some(contents) = self.config.resumption.open(&offer.ticket) else {
            tracing::debug!("ticket not ours or tampered: full handshake");
            return none;
        };
        let Some(suite) = CipherSuite::from_u16(contents.suite)
            .filter(|s| self.config.cipher_suites.contains(s) && ch.suites.contains(&s.to_u16()))
        else {
            return none;
        };
        if contents.version != ch.version {
            return none;
        }
        let age = check_ticket_age(
            &contents,
            offer.obfuscated_age_ms,
            now,
            self.config.freshness_window,
        );
        if age == Err(crate::handshake::TicketRejection::Expired) {
            return none;
        }
        let mut early =
            ch.early_data && self.config.zero_rtt && contents.max_early_data > 0 && age.is_ok();
        if early {
            // At most once per ticket: the nonce stays in the filter until the ticket expires.
            let expires = contents.issued_at + contents.lifetime;
            if let Err(why) = self
                .config
                .resumption
                .check_replay(&contents.nonce, now, expires)
            {
                tracing::info!(?why, "0-RTT refused");
                early = false;
            }
        }
        PskDecision {
            psk: Some(Secret::from_bytes(contents.psk)),
            ticket_suite: Some(suite),
            early,
            max_early_data: contents.max_early_data,
        }
    }

    /// Gives the session an X25519 key pair generated ahead, for its ServerHello (else one is
    /// generated when the ClientHello arrives). Ignored once the ClientHello was answered.
    pub fn offer_key_pair(&mut self, pair: X25519KeyPair) {
        if self.state == State::WaitClientHello {
            self.spare_key_pair = Some(pair);
        }
    }

    fn on_client_hello(
        &mut self,
        ch: ClientHello,
        raw: &[u8],
        now: Instant,
        rng: &mut Rng,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        if ch.version != crate::VERSION_1 {
            return Err(TransportError::handshake(format!(
                "unsupported version {:#x}",
                ch.version
            )));
        }
        ch.params.validate(false)?;
        let psk = self.decide_psk(&ch, now);
        let suite = match psk.ticket_suite {
            Some(s) => s,
            None => *self
                .config
                .cipher_suites
                .iter()
                .find(|s| ch.suites.contains(&s.to_u16()))
                .ok_or_else(|| TransportError::handshake("no cipher suite in common"))?,
        };
        let share_group = KeyExchange::from_u16(ch.share_group);
        let (kex, share) = self
            .config
            .key_exchanges
            .iter()
            .filter(|k| ch.kex_groups.contains(&k.to_u16()))
            .find_map(|k| match (k, share_group) {
                (k, Some(g)) if *k == g => Some((*k, ch.share.as_slice())),
                // A hybrid share carries an X25519 share in its last 32 bytes.
                (KeyExchange::X25519, Some(KeyExchange::X25519MlKem768))
                    if ch.share.len() == HYBRID_CLIENT_SHARE_LEN =>
                {
                    ch.share
                        .get(HYBRID_CLIENT_SHARE_LEN - X25519_SHARE_LEN..)
                        .map(|s| (KeyExchange::X25519, s))
                }
                _ => None,
            })
            .ok_or_else(|| {
                TransportError::handshake(
                    "no key exchange in common (is post-quantum required on one side?)",
                )
            })?;
        let identity = self.config.identity.public();
        if !ch.sig_schemes.contains(&identity.scheme().to_u16()) {
            return Err(TransportError::handshake(format!(
                "client does not accept our signature scheme {}",
                identity.scheme()
            )));
        }
        self.transcript.update(raw);
        if psk.early {
            let secret =
                KeySchedule::new(psk.psk.as_ref()).client_early_traffic(&self.transcript.hash());
            out.keys.push(KeyInstall::ZeroRtt { suite, secret });
            // The allowance promised in the ticket, which is what the client sizes its 0-RTT by.
            self.max_early_data = psk.max_early_data;
        }
        let (share, secret) = server_share(kex, share, self.spare_key_pair.take(), rng)
            .map_err(|e| TransportError::handshake(format!("client key share rejected: {e}")))?;
        let sh = HandshakeMessage::ServerHello(ServerHello {
            version: ch.version,
            random: rng.array(),
            suite: suite.to_u16(),
            kex_group: kex.to_u16(),
            share,
            psk_accepted: psk.psk.is_some(),
            early_data_accepted: psk.early,
        })
        .encode();
        self.transcript.update(&sh);
        out.crypto[SpaceId::Initial.index()].extend_from_slice(&sh);
        if ch.early_data {
            out.early_data = Some(if psk.early {
                EarlyData::Accepted
            } else {
                EarlyData::Rejected
            });
        }
        self.peer_params = Some(ch.params);
        self.pending = Some(Box::new(PendingAnswer {
            secret,
            psk: psk.psk,
            suite,
            kex,
            early_offered: ch.early_data,
            early_accepted: psk.early,
            version: ch.version,
        }));
        self.state = State::Answering;
        tracing::debug!(%suite, %kex, "sent ServerHello");
        Ok(())
    }

    /// The rest of the answer to the ClientHello, after the ServerHello has left: the key
    /// agreement, the handshake keys, EncryptedExtensions, Identity, IdentityVerify (the
    /// signature), Finished and the 1-RTT keys. Splitting the answer lets the client work on the
    /// ServerHello (its own agreement and decapsulation) while the server does this part.
    pub(super) fn finish_answer(&mut self, out: &mut SessionOutput) -> Result<(), TransportError> {
        let Some(p) = self
            .pending
            .take()
            .filter(|_| self.state == State::Answering)
        else {
            return Ok(());
        };
        let PendingAnswer {
            secret,
            psk,
            suite,
            kex,
            early_offered,
            early_accepted,
            version,
        } = *p;
        let shared = secret
            .agree()
            .map_err(|e| TransportError::handshake(format!("client key share rejected: {e}")))?;
        let identity = self.config.identity.public();
        let schedule = KeySchedule::new(psk.as_ref()).into_handshake(shared.as_bytes());
        let (client_hs, server_hs) = schedule.handshake_traffic(&self.transcript.hash());
        out.keys.push(KeyInstall::Handshake {
            suite,
            rx: client_hs.clone(),
            tx: server_hs.clone(),
        });
        let mut flight = Vec::with_capacity(4096);
        let mut push = |transcript: &mut Transcript, msg: HandshakeMessage| {
            let raw = msg.encode();
            transcript.update(&raw);
            flight.extend_from_slice(&raw);
        };
        push(
            &mut self.transcript,
            HandshakeMessage::EncryptedExtensions(EncryptedExtensions {
                params: self.local_params.clone(),
                client_auth_requested: !matches!(self.config.client_auth, ClientAuth::None),
            }),
        );
        push(
            &mut self.transcript,
            HandshakeMessage::Identity(Identity {
                public_key: identity.to_bytes(),
            }),
        );
        let signed = [SERVER_SIGNATURE_CONTEXT, &self.transcript.hash()].concat();
        push(
            &mut self.transcript,
            HandshakeMessage::IdentityVerify(IdentityVerify {
                signature: self.config.identity.sign(&signed),
            }),
        );
        let mac = hmac_sha256(finished_key(&server_hs).as_bytes(), &self.transcript.hash());
        push(
            &mut self.transcript,
            HandshakeMessage::Finished(Finished { mac }),
        );
        out.crypto[SpaceId::Handshake.index()].extend_from_slice(&flight);
        let schedule = schedule.into_master();
        let (client_ap, server_ap) = schedule.application_traffic(&self.transcript.hash());
        out.keys.push(KeyInstall::OneRtt {
            suite,
            rx: client_ap,
            tx: server_ap,
        });
        self.info = Some(HandshakeInfo {
            version,
            suite,
            key_exchange: kex,
            signature_scheme: identity.scheme(),
            resumed: psk.is_some(),
            early_data: match (early_offered, early_accepted) {
                (false, _) => EarlyData::NotOffered,
                (true, true) => EarlyData::Accepted,
                (true, false) => EarlyData::Rejected,
            },
            peer_identity: None,
        });
        self.schedule = Some(schedule);
        self.client_handshake_secret = Some(client_hs);
        self.suite = Some(suite);
        self.state = State::WaitClientFlight;
        tracing::debug!(%suite, %kex, resumed = psk.is_some(), early = early_accepted, "answered ClientHello");
        Ok(())
    }

    fn on_client_finished(
        &mut self,
        fin: &Finished,
        raw: &[u8],
        now: Instant,
        rng: &mut Rng,
        out: &mut SessionOutput,
    ) -> Result<(), TransportError> {
        if matches!(self.config.client_auth, ClientAuth::Required(_)) && !self.client_verified {
            return Err(TransportError::handshake(
                "client authentication required but no identity was proven",
            ));
        }
        if self.client_identity.is_some() && !self.client_verified {
            return Err(TransportError::handshake(
                "client identity without a signature",
            ));
        }
        let client_hs = self
            .client_handshake_secret
            .as_ref()
            .ok_or_else(|| TransportError::handshake("Finished before ClientHello"))?;
        if !verify_hmac_sha256(
            finished_key(client_hs).as_bytes(),
            &self.transcript.hash(),
            &fin.mac,
        ) {
            return Err(TransportError::handshake(
                "client Finished MAC does not match the transcript",
            ));
        }
        self.transcript.update(raw);
        let schedule = self
            .schedule
            .take()
            .ok_or_else(|| TransportError::handshake("no key schedule"))?;
        let resumption = schedule.resumption(&self.transcript.hash());
        if let Some(info) = &mut self.info {
            info.peer_identity = self.client_identity.clone();
        }
        self.state = State::Complete;
        out.completed = true;
        let suite = self.suite.unwrap_or(CipherSuite::ChaCha20Poly1305);
        let fingerprint = self.config.identity.public().fingerprint();
        let max_early_data = if self.config.zero_rtt {
            self.config.max_early_data
        } else {
            0
        };
        for _ in 0..self.config.tickets_per_connection {
            let nonce: [u8; 16] = rng.array();
            let psk = ticket_psk(&resumption, &nonce);
            let contents = TicketContents {
                version: crate::VERSION_1,
                suite: suite.to_u16(),
                psk: *psk.as_bytes(),
                issued_at: now,
                lifetime: self.config.ticket_lifetime,
                age_add: rng.u64() as u32,
                max_early_data,
                server_identity_fingerprint: fingerprint,
                nonce,
            };
            let Some(ticket) = self.config.resumption.seal(rng, now, &contents) else {
                break;
            };
            out.tickets.push(
                HandshakeMessage::NewSessionTicket(NewSessionTicket {
                    lifetime_s: u32::try_from(self.config.ticket_lifetime.as_secs())
                        .unwrap_or(u32::MAX),
                    age_add: contents.age_add,
                    nonce: nonce.to_vec(),
                    ticket,
                    max_early_data,
                })
                .encode(),
            );
        }
        tracing::debug!("handshake complete (server)");
        Ok(())
    }
}
