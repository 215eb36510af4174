//! Deterministic stream contents and their checks.
//!
//! Byte `p` of a stream with key `k` is byte `p % 8` of `splitmix64(k ^ (p / 8))`: cheap to make,
//! position-dependent (a byte delivered at the wrong offset, twice, or corrupted is caught at the
//! exact offset), and the receiver regenerates it without any shared state. Both sides also keep
//! a SHA-256 of the bytes, compared at the end.

use jsp_core::connection::Connection;
use jsp_core::frame::StreamId;
use jsp_core::stream::ReadError;
use sha2::{Digest, Sha256};

/// The splitmix64 finalizer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of stream `index` in direction `dir` (0 up, 1 down, 2 datagrams) of a run.
pub fn key(seed: u64, index: u64, dir: u64) -> u64 {
    mix(mix(seed ^ 0x6a73_702d_7369_6d00) ^ index.wrapping_mul(4).wrapping_add(dir))
}

/// Fills `buf` with the stream's bytes starting at `offset`.
pub fn fill(key: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(key ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// The SHA-256 of `len` bytes of the stream with `key`.
pub fn digest(key: u64, len: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill(key, off, &mut buf[..n]);
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().into()
}

/// The sending side of a pattern stream.
#[derive(Debug)]
pub struct Writer {
    key: u64,
    total: u64,
    written: u64,
    finished: bool,
    hash: Sha256,
}

impl Writer {
    /// A writer of `total` bytes.
    pub fn new(key: u64, total: u64) -> Self {
        Self {
            key,
            total,
            written: 0,
            finished: false,
            hash: Sha256::new(),
        }
    }

    /// Writes as much as the connection accepts, and the FIN after the last byte. Returns an
    /// error text when the connection refuses the stream.
    pub fn pump(
        &mut self,
        conn: &mut Connection,
        id: StreamId,
        scratch: &mut Vec<u8>,
    ) -> Result<(), String> {
        self.pump_with(
            scratch,
            |data: &[u8], conn: &mut Connection| {
                conn.write(id, data)
                    .map_err(|e| format!("write on stream {} failed: {e}", id.0))
            },
            |conn: &mut Connection| {
                conn.finish(id)
                    .map_err(|e| format!("finish of stream {} failed: {e}", id.0))
            },
            conn,
        )
    }

    /// [`Self::pump`] for any stack: `write` hands bytes to the stream and returns how many it
    /// took (fewer than offered when it is blocked); `finish` sends the FIN. `ctx` is passed to
    /// both (the connection, typically).
    pub fn pump_with<C: ?Sized>(
        &mut self,
        scratch: &mut Vec<u8>,
        mut write: impl FnMut(&[u8], &mut C) -> Result<usize, String>,
        finish: impl FnOnce(&mut C) -> Result<(), String>,
        ctx: &mut C,
    ) -> Result<(), String> {
        scratch.resize(64 << 10, 0);
        while self.written < self.total {
            let n = (self.total - self.written).min(scratch.len() as u64) as usize;
            fill(self.key, self.written, &mut scratch[..n]);
            let accepted = write(&scratch[..n], ctx)?;
            self.hash.update(&scratch[..accepted]);
            self.written += accepted as u64;
            if accepted < n {
                return Ok(());
            }
        }
        if !self.finished {
            finish(ctx)?;
            self.finished = true;
        }
        Ok(())
    }

    /// Whether every byte and the FIN were handed to the connection.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes handed to the connection.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The SHA-256 of the bytes written so far.
    pub fn hash(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}

/// The receiving side of a pattern stream: checks every byte at its offset.
#[derive(Debug)]
pub struct Verifier {
    key: u64,
    expected: u64,
    received: u64,
    fin: bool,
    error: Option<String>,
    hash: Sha256,
}

impl Verifier {
    /// A verifier expecting exactly `expected` bytes.
    pub fn new(key: u64, expected: u64) -> Self {
        Self {
            key,
            expected,
            received: 0,
            fin: false,
            error: None,
            hash: Sha256::new(),
        }
    }

    /// Checks the next `data` of the stream (for a stack other than JSP; [`Self::drain`] does
    /// this for a JSP connection).
    pub fn feed(&mut self, data: &[u8], scratch: &mut Vec<u8>) {
        self.check(data, scratch);
    }

    /// The stream ended (its FIN arrived): from now on it is complete or in error.
    pub fn end(&mut self) {
        if !self.fin {
            self.fin = true;
            if self.received != self.expected && self.error.is_none() {
                self.error = Some(format!(
                    "stream ended after {} of {} bytes",
                    self.received, self.expected
                ));
            }
        }
    }

    fn check(&mut self, data: &[u8], scratch: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        if self.fin {
            self.error = Some(format!("{} bytes after the end of the stream", data.len()));
            return;
        }
        if self.received + data.len() as u64 > self.expected {
            self.error = Some(format!(
                "more than the {} bytes sent (got {})",
                self.expected,
                self.received + data.len() as u64
            ));
            return;
        }
        scratch.resize(data.len(), 0);
        fill(self.key, self.received, scratch);
        if let Some(i) = scratch.iter().zip(data).position(|(a, b)| a != b) {
            self.error = Some(format!(
                "wrong byte at offset {}: expected {:#04x}, got {:#04x}",
                self.received + i as u64,
                scratch[i],
                data[i]
            ));
            return;
        }
        self.hash.update(data);
        self.received += data.len() as u64;
    }

    /// Reads everything readable on `id`. Returns the number of bytes read.
    pub fn drain(&mut self, conn: &mut Connection, id: StreamId, scratch: &mut Vec<u8>) -> u64 {
        if self.fin {
            // A stale hint: the stream ended and the connection may have forgotten it.
            return 0;
        }
        let mut read = 0;
        loop {
            match conn.read(id, 64 << 10) {
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    self.check(&chunk, scratch);
                }
                Ok(None) => {
                    self.end();
                    return read;
                }
                Err(ReadError::Blocked) => return read,
                Err(e) => {
                    if self.error.is_none() {
                        self.error = Some(format!("read failed: {e}"));
                    }
                    return read;
                }
            }
        }
    }

    /// Whether every byte and the FIN arrived, correctly.
    pub fn is_complete(&self) -> bool {
        self.fin && self.error.is_none() && self.received == self.expected
    }

    /// Bytes received and verified.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// What went wrong, if anything.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The SHA-256 of the bytes received.
    pub fn hash(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_position_dependent_and_consistent_across_splits() {
        let mut whole = [0u8; 100];
        fill(7, 3, &mut whole);
        let mut parts = [0u8; 100];
        fill(7, 3, &mut parts[..13]);
        fill(7, 16, &mut parts[13..]);
        assert_eq!(whole, parts);
        let mut shifted = [0u8; 100];
        fill(7, 4, &mut shifted);
        assert_eq!(whole[1..], shifted[..99], "one continuous stream");
        assert_ne!(
            whole[..99],
            shifted[..99],
            "a byte at the wrong offset is caught"
        );
        let mut h = Sha256::new();
        h.update(whole);
        let d: [u8; 32] = h.finalize().into();
        let mut from_zero = [0u8; 103];
        fill(7, 0, &mut from_zero);
        assert_eq!(&from_zero[3..], &whole[..]);
        assert_ne!(d, digest(7, 100));
    }
}
