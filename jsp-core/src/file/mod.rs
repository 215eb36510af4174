//! File transfer: a sans-IO protocol for sending files and directories over a connection's
//! streams, resumable, in parallel, and verified chunk by chunk against a BLAKE3 manifest.
//!
//! The state machines here decide everything and touch nothing: the caller reads and writes
//! files, opens streams and moves bytes, as the [`Action`]s and [`SenderAction`]s tell it.
//!
//! ## Rooms
//! - [`path`]: relative-path validation and the canonical entry order;
//! - [`hash`]: chunk hashes ([`chunk_hash`], [`ChunkHasher`]), root hash and [`TransferId`];
//! - [`manifest`]: [`Manifest`] (entries, sizes, modes, chunk hashes, root hash), its builder
//!   and its strict, bounded CBOR codec;
//! - [`wire`]: the framed [`Message`]s;
//! - [`compress`]: per-chunk zstd compression and its bounded decoding;
//! - [`check`]: [`ChunkCheck`], one arrived chunk's decoding and verification as pure
//!   computation a driver may run on another thread, and its result [`ChunkChecked`];
//! - [`receiver`]: [`Receiver`], which plans requests, verifies chunks and resumes;
//! - [`sender`]: [`Sender`], which answers requests and detects changed sources;
//! - [`error`]: [`FileError`], [`ManifestError`], [`MessageError`] and wire [`ErrorCode`]s.
//!
//! ## Protocol
//!
//! ```text
//! Receiver (client)                                             Sender (server)
//!   control: Fetch{transfer id, codecs}       -------->
//!                                             <--------         control: Offer{manifest}
//!   (verify root → id; caller reports chunks already on disk; start)
//!   data 0:  Request{file, chunk ranges}      -------->
//!   data 1:  Request{…}  …  data N−1          -------->         (caller reads, sender verifies)
//!                                             <--------         data k: ChunkHeader{file, i, len} ‖ bytes …
//!   (check each chunk — inline, or handed out as CheckChunk and reported back —; write;
//!    refetch on mismatch; file complete → rename into place)
//!   control: Done                             -------->
//! either side, on failure:  Error{code, reason} on the control stream
//! ```
//!
//! - The ticket carries the [`TransferId`], the first 16 bytes of the manifest's root hash, so an
//!   offer that does not hash to it is refused ([`FileError::UnknownTransfer`]).
//! - The receiver requests only chunks it lacks: after [`Action::ManifestReady`] its caller reports
//!   which chunks of an earlier attempt are on disk and verify ([`Receiver::have_chunk`]).
//! - Requests are spread round robin over `lanes` data streams with at most `window` chunks
//!   outstanding on each; the sender answers each stream's requests in order.
//! - Each arrived chunk is checked (decoded, BLAKE3 against the manifest) by a [`ChunkCheck`]:
//!   inside [`Receiver::handle_data`] by default, or, with [`ReceiverConfig::offload_checks`],
//!   by the caller on any thread ([`Action::CheckChunk`]), who writes what verified and reports
//!   each [`ChunkChecked`] back in any order ([`Receiver::chunk_checked`]).
//! - A chunk that fails verification is requested again up to `max_retries` times; then
//!   [`FileError::ChunkCorrupt`] ends the transfer.
//! - The sender hashes every chunk the caller reads before sending it; a mismatch means the
//!   source changed ([`FileError::SourceChanged`], code SOURCE_CHANGED to the receiver).
//! - A file becomes [`Action::FileComplete`] only when all of its chunks verified: the caller
//!   writes into a temporary name and renames only then.
//!
//! Decoding is strict and bounded: framing limits per message type are checked from the 4-byte
//! header, CBOR lists and strings never allocate from length headers, and every bad input is a
//! typed error. A stream's end or reset is the driver's business: it ends the transfer (and a new
//! connection resumes it).

pub mod check;
pub mod compress;
pub mod error;
pub mod hash;
pub mod manifest;
pub mod path;
pub mod receiver;
pub mod sender;
pub mod wire;

mod cbor;

pub use check::{ChunkCheck, ChunkChecked};
pub use compress::{
    compress_chunk_with_dict, decompress_chunk_with_dict, Codec, Compression, DictError, DictId,
    Dictionary, DICT_ID_LEN, MAX_DICTS, MAX_DICT_LEN,
};
pub use error::{ErrorCode, FileError, ManifestError, MessageError};
pub use hash::{chunk_hash, chunk_hashes, ChunkHash, ChunkHasher, RootHash, TransferId, HASH_LEN};
pub use manifest::{
    Entry, EntryKind, FileId, Manifest, ManifestBuilder, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
    MAX_ENTRIES, MAX_MANIFEST_LEN, MIN_CHUNK_SIZE,
};
pub use path::{validate_path, PathError};
pub use receiver::{Action, Channel, Progress, Receiver, ReceiverConfig};
pub use sender::{Sender, SenderAction, SenderConfig, SenderStats, StreamKey};
pub use wire::{ChunkHeader, ErrorMessage, Fetch, Message, Request, MAX_REASON_LEN};

#[cfg(test)]
mod tests;
