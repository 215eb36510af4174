//! 1-RTT packet keys and key update (RFC 9001 §6 shape).
//!
//! The key phase bit in the short header tells the receiver which generation of keys sealed a
//! packet. A new generation's secret is a one-way HKDF expansion of the previous one ("ku"), so a
//! compromised key reveals nothing about earlier traffic. The header-protection key never changes.
//!
//! Invariants: the send side advances at most one generation ahead of the receive side (an update
//! is only started after the peer has answered the previous one); the previous receive key is kept
//! for three probe timeouts so that reordered packets of the old phase still open, then erased.

use crate::crypto::schedule::{header_key, next_secret, packet_key, Secret};
use crate::crypto::{Backend, CipherSuite, HeaderKey, PacketKey};
use crate::time::Instant;

/// One direction's current packet key and the secret it came from.
struct Generation {
    key: Box<dyn PacketKey>,
    secret: Secret,
}

impl Generation {
    fn new(backend: Backend, suite: CipherSuite, secret: Secret) -> Self {
        Self {
            key: packet_key(backend, suite, &secret),
            secret,
        }
    }

    fn next(&self, backend: Backend, suite: CipherSuite) -> Self {
        Self::new(backend, suite, next_secret(&self.secret))
    }
}

/// Which receive key opens a packet.
pub(crate) enum RxChoice {
    Current,
    Next,
    Previous,
}

/// 1-RTT keys of a connection.
pub(crate) struct OneRttKeys {
    backend: Backend,
    suite: CipherSuite,
    pub(crate) header_rx: Box<dyn HeaderKey>,
    pub(crate) header_tx: Box<dyn HeaderKey>,
    tx: Generation,
    tx_phase: bool,
    tx_generation: u64,
    /// Packets sealed under the current send key (for the confidentiality limit).
    pub(crate) tx_packets: u64,
    rx: Generation,
    rx_next: Generation,
    rx_prev: Option<Box<dyn PacketKey>>,
    pub(crate) rx_prev_discard_at: Option<Instant>,
    rx_phase: bool,
    rx_generation: u64,
    /// Smallest packet number received in the current receive phase.
    rx_first_pn: Option<u64>,
}

impl OneRttKeys {
    pub(crate) fn new(backend: Backend, suite: CipherSuite, rx: Secret, tx: Secret) -> Self {
        let header_rx = header_key(backend, suite, &rx);
        let header_tx = header_key(backend, suite, &tx);
        let rx = Generation::new(backend, suite, rx);
        let rx_next = rx.next(backend, suite);
        Self {
            backend,
            suite,
            header_rx,
            header_tx,
            tx: Generation::new(backend, suite, tx),
            tx_phase: false,
            tx_generation: 0,
            tx_packets: 0,
            rx,
            rx_next,
            rx_prev: None,
            rx_prev_discard_at: None,
            rx_phase: false,
            rx_generation: 0,
            rx_first_pn: None,
        }
    }

    pub(crate) fn suite(&self) -> CipherSuite {
        self.suite
    }

    pub(crate) fn tx_key(&self) -> &dyn PacketKey {
        &*self.tx.key
    }

    pub(crate) fn tx_phase(&self) -> bool {
        self.tx_phase
    }

    /// The generation of the current send keys (0 after the handshake).
    pub(crate) fn tx_generation(&self) -> u64 {
        self.tx_generation
    }

    /// The generation of the current receive keys.
    pub(crate) fn rx_generation(&self) -> u64 {
        self.rx_generation
    }

    /// Which key to try for a packet with this phase bit and packet number.
    pub(crate) fn choose_rx(&self, phase: bool, pn: u64) -> RxChoice {
        if phase == self.rx_phase {
            RxChoice::Current
        } else if self.rx_first_pn.is_some_and(|first| pn < first) {
            RxChoice::Previous
        } else {
            RxChoice::Next
        }
    }

    pub(crate) fn rx_key(&self, choice: &RxChoice) -> Option<&dyn PacketKey> {
        match choice {
            RxChoice::Current => Some(&*self.rx.key),
            RxChoice::Next => Some(&*self.rx_next.key),
            RxChoice::Previous => self.rx_prev.as_deref(),
        }
    }

    /// Records a packet that opened under `choice`; rotates receive keys when it was the next
    /// generation (answering with a send-key update if the peer started it). Returns whether a
    /// rotation happened.
    pub(crate) fn on_rx_success(
        &mut self,
        choice: &RxChoice,
        pn: u64,
        discard_at: Instant,
    ) -> bool {
        match choice {
            RxChoice::Current => {
                if self.rx_first_pn.is_none_or(|first| pn < first) {
                    self.rx_first_pn = Some(pn);
                }
                false
            }
            RxChoice::Previous => false,
            RxChoice::Next => {
                let next_next = self.rx_next.next(self.backend, self.suite);
                let old = core::mem::replace(
                    &mut self.rx,
                    core::mem::replace(&mut self.rx_next, next_next),
                );
                self.rx_prev = Some(old.key);
                self.rx_prev_discard_at = Some(discard_at);
                self.rx_phase = !self.rx_phase;
                self.rx_generation += 1;
                self.rx_first_pn = Some(pn);
                if self.tx_generation < self.rx_generation {
                    self.rotate_tx();
                }
                true
            }
        }
    }

    /// Whether a locally started update is allowed now: the peer has answered the previous one.
    pub(crate) fn can_initiate_update(&self) -> bool {
        self.tx_generation == self.rx_generation && self.rx_first_pn.is_some()
    }

    /// Starts a key update: the next packets are sealed under the next generation.
    pub(crate) fn initiate_update(&mut self) {
        self.rotate_tx();
    }

    fn rotate_tx(&mut self) {
        self.tx = self.tx.next(self.backend, self.suite);
        self.tx_phase = !self.tx_phase;
        self.tx_generation += 1;
        self.tx_packets = 0;
    }

    /// Erases the previous receive key.
    pub(crate) fn discard_previous(&mut self) {
        self.rx_prev = None;
        self.rx_prev_discard_at = None;
    }
}
