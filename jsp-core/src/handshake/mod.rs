//! Placeholder: handshake messages.
