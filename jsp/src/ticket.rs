//! Transfer tickets: the server's address, its public key and the transfer id in one copyable
//! string, `jspt1` followed by unpadded lowercase base32 (RFC 4648) of
//! `version 1 ‖ family (4 or 6) ‖ IP ‖ port u16be ‖ transfer id (16) ‖ key bytes ‖ check (4)`,
//! where the check is the first 4 bytes of BLAKE3 of everything before it, so a mistyped or
//! truncated ticket is refused before any connection is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use jsp_tokio::jsp_core::file::{chunk_hash, TransferId};
use jsp_tokio::PublicIdentity;

const PREFIX: &str = "jspt1";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a ticket names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// Where the sender listens.
    pub(crate) addr: SocketAddr,
    /// The sender's identity key, pinned by the receiver.
    pub(crate) key: PublicIdentity,
    /// The transfer.
    pub(crate) id: TransferId,
}

impl Ticket {
    /// The ticket's text form.
    pub(crate) fn encode(&self) -> String {
        let mut b = vec![1u8];
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                b.push(4);
                b.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                b.push(6);
                b.extend_from_slice(&ip.octets());
            }
        }
        b.extend_from_slice(&self.addr.port().to_be_bytes());
        b.extend_from_slice(&self.id.0);
        b.extend_from_slice(&self.key.to_bytes());
        let check = chunk_hash(&b);
        b.extend_from_slice(&check.0[..4]);
        format!("{PREFIX}{}", base32(&b))
    }

    /// Parses a ticket, with a reason a user can act on if it is not one.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let body = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("not a jsp ticket (it should start with {PREFIX:?})"))?;
        let b = unbase32(body).ok_or("the ticket has characters that do not belong in it")?;
        if b.len() < 4 {
            return Err("the ticket is truncated".into());
        }
        let (payload, check) = b.split_at(b.len() - 4);
        if chunk_hash(payload).0[..4] != *check {
            return Err(
                "the ticket is garbled (its checksum does not match): copy it again in full".into(),
            );
        }
        let bad = || "the ticket's contents are malformed".to_string();
        let (&version, rest) = payload.split_first().ok_or_else(bad)?;
        if version != 1 {
            return Err(format!(
                "ticket version {version} is not supported by this jsp"
            ));
        }
        let (&family, rest) = rest.split_first().ok_or_else(bad)?;
        let (ip, rest): (IpAddr, &[u8]) = match family {
            4 => {
                let (ip, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
                (Ipv4Addr::from(*ip).into(), rest)
            }
            6 => {
                let (ip, rest) = rest.split_first_chunk::<16>().ok_or_else(bad)?;
                (Ipv6Addr::from(*ip).into(), rest)
            }
            _ => return Err(bad()),
        };
        let (port, rest) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
        let (id, key) = rest.split_first_chunk::<16>().ok_or_else(bad)?;
        let key = PublicIdentity::from_bytes(key)
            .map_err(|e| format!("the ticket's server key is invalid: {e}"))?;
        Ok(Self {
            addr: SocketAddr::new(ip, u16::from_be_bytes(*port)),
            key,
            id: TransferId(*id),
        })
    }
}

fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &byte in data {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_lowercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    // Only the canonical spelling is accepted: the last character's unused low bits must be zero
    // and no character may be left over. Otherwise a changed last character could decode to the
    // same bytes and slip past the checksum unnoticed.
    if acc != 0 || bits >= 5 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tickets_round_trip_and_garbled_ones_are_refused() {
        let key = jsp_tokio::generate_identity().unwrap().public();
        for addr in ["127.0.0.1:4433", "[::1]:9"] {
            let t = Ticket {
                addr: addr.parse().unwrap(),
                key: key.clone(),
                id: TransferId([7; 16]),
            };
            let s = t.encode();
            assert_eq!(Ticket::parse(&s).unwrap(), t);
            assert_eq!(
                Ticket::parse(&s.to_uppercase().replace("JSPT1", "jspt1")).unwrap(),
                t
            );
            // Any one changed character is caught by the checksum (or the alphabet).
            for i in PREFIX.len()..s.len() {
                let mut b = s.clone().into_bytes();
                b[i] = if b[i] == b'a' { b'b' } else { b'a' };
                assert!(Ticket::parse(std::str::from_utf8(&b).unwrap()).is_err());
            }
            assert!(Ticket::parse(&s[..s.len() - 3]).is_err());
        }
        assert!(Ticket::parse("hello")
            .unwrap_err()
            .contains("not a jsp ticket"));
        assert!(Ticket::parse("jspt1!!").unwrap_err().contains("characters"));
    }
}
