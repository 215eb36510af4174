//! Typed errors of the file-transfer room and the wire error codes carried in `Error` messages.
//!
//! Invariant: every failure a peer can cause is one of these values (never a panic), and every
//! value maps to exactly one [`ErrorCode`] through [`FileError::code`], so a state machine that
//! fails can always tell its peer why in one `Error` message.

use core::fmt;

use super::path::PathError;

/// A wire error code, sent in an `Error` message. Unknown codes from a peer are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// 1: a message could not be decoded, or came at the wrong time or on the wrong stream.
    pub const PROTOCOL: Self = Self(1);
    /// 2: the transfer id in `Fetch` names no transfer the sender offers, or the offer does
    /// not match the transfer id the receiver asked for.
    pub const UNKNOWN_TRANSFER: Self = Self(2);
    /// 3: a request named a file or chunk the manifest does not have.
    pub const UNKNOWN_CHUNK: Self = Self(3);
    /// 4: the sender's source file changed after the manifest was built.
    pub const SOURCE_CHANGED: Self = Self(4);
    /// 5: the sender could not read a source file.
    pub const READ_FAILED: Self = Self(5);
    /// 6: a chunk failed verification more often than the receiver allows.
    pub const CORRUPT: Self = Self(6);
    /// 7: a configured limit was exceeded (manifest size, streams, queued requests).
    pub const LIMIT: Self = Self(7);
    /// 8: the application cancelled the transfer.
    pub const CANCELLED: Self = Self(8);
    /// 9: the receiver could not store the data (full disk, permissions), reported by its caller.
    pub const WRITE_FAILED: Self = Self(9);
    /// 10: a compressed chunk did not decode within its declared length (a decompression bomb or
    /// a corrupt frame), or used a codec that was not negotiated.
    pub const COMPRESSION: Self = Self(10);

    /// A short name for the code ("PROTOCOL", ...), or `None` for a code this version does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::PROTOCOL => "PROTOCOL",
            Self::UNKNOWN_TRANSFER => "UNKNOWN_TRANSFER",
            Self::UNKNOWN_CHUNK => "UNKNOWN_CHUNK",
            Self::SOURCE_CHANGED => "SOURCE_CHANGED",
            Self::READ_FAILED => "READ_FAILED",
            Self::CORRUPT => "CORRUPT",
            Self::LIMIT => "LIMIT",
            Self::CANCELLED => "CANCELLED",
            Self::WRITE_FAILED => "WRITE_FAILED",
            Self::COMPRESSION => "COMPRESSION",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "error code {}", self.0),
        }
    }
}

/// Why a manifest is invalid (built locally or received from a peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// The encoded manifest is longer than allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the CBOR map a manifest is.
    BadCbor {
        /// What the CBOR decoder reported (bounded length).
        detail: String,
    },
    /// The manifest format version is not 1.
    UnsupportedVersion(u32),
    /// The manifest has no entries.
    Empty,
    /// More entries than [`super::MAX_ENTRIES`].
    TooManyEntries,
    /// An entry's path breaks the path rules.
    BadPath {
        /// Index of the entry (in the order received or added).
        entry: usize,
        /// Which rule.
        reason: PathError,
    },
    /// An entry's kind is neither 0 (file) nor 1 (directory).
    BadKind {
        /// Index of the entry.
        entry: usize,
        /// The kind received.
        kind: u8,
    },
    /// A mode has bits above 0o7777.
    BadMode {
        /// Index of the entry.
        entry: usize,
    },
    /// A file's chunk size is outside [`super::MIN_CHUNK_SIZE`]..=[`super::MAX_CHUNK_SIZE`].
    BadChunkSize {
        /// Index of the entry.
        entry: usize,
        /// The chunk size.
        chunk_size: u32,
    },
    /// A file's chunk hashes do not cover its size: the byte length must be 32 × ⌈size / chunk size⌉.
    BadHashes {
        /// Index of the entry.
        entry: usize,
        /// The byte length expected from the size and chunk size (saturating).
        expected: u64,
        /// The byte length received.
        got: u64,
    },
    /// A directory carries a size, a chunk size or hashes.
    DirectoryWithData {
        /// Index of the entry.
        entry: usize,
    },
    /// Entries are not in component order (see [`super::Manifest`]).
    NotSorted {
        /// Index of the first entry out of order.
        entry: usize,
    },
    /// Two entries have the same path.
    Duplicate {
        /// Index of the second one.
        entry: usize,
    },
    /// An entry lies below a path that is a file.
    PathConflict {
        /// Index of the entry below the file.
        entry: usize,
    },
    /// The sizes add up to more than 2^64 − 1 bytes.
    TotalTooLarge,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "manifest of {len} bytes exceeds {max}"),
            Self::BadCbor { detail } => write!(f, "malformed manifest: {detail}"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported manifest version {v}"),
            Self::Empty => f.write_str("manifest has no entries"),
            Self::TooManyEntries => {
                write!(f, "manifest has more than {} entries", super::MAX_ENTRIES)
            }
            Self::BadPath { entry, reason } => write!(f, "entry {entry}: bad path: {reason}"),
            Self::BadKind { entry, kind } => write!(f, "entry {entry}: unknown kind {kind}"),
            Self::BadMode { entry } => write!(f, "entry {entry}: mode has bits above 0o7777"),
            Self::BadChunkSize { entry, chunk_size } => {
                write!(f, "entry {entry}: chunk size {chunk_size} out of range")
            }
            Self::BadHashes {
                entry,
                expected,
                got,
            } => write!(
                f,
                "entry {entry}: {got} bytes of chunk hashes where {expected} are needed"
            ),
            Self::DirectoryWithData { entry } => {
                write!(
                    f,
                    "entry {entry}: a directory with a size, chunk size or hashes"
                )
            }
            Self::NotSorted { entry } => write!(f, "entry {entry}: entries out of order"),
            Self::Duplicate { entry } => write!(f, "entry {entry}: duplicate path"),
            Self::PathConflict { entry } => write!(f, "entry {entry}: lies below a file"),
            Self::TotalTooLarge => f.write_str("total size exceeds 2^64 - 1 bytes"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Why a file-transfer message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// The type byte names no message.
    UnknownType(u8),
    /// The announced body length exceeds the limit for its type.
    TooLong {
        /// The message type.
        message: &'static str,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not the CBOR map the message type requires.
    BadCbor {
        /// The message type.
        message: &'static str,
        /// What the CBOR decoder reported (bounded length).
        detail: String,
    },
    /// A field decoded but breaks its limits.
    InvalidField {
        /// The message type.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The manifest inside an `Offer` is invalid.
    Manifest(ManifestError),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownType(t) => write!(f, "unknown file-transfer message type {t}"),
            Self::TooLong { message, len, max } => {
                write!(f, "{message} of {len} bytes exceeds {max}")
            }
            Self::BadCbor { message, detail } => write!(f, "malformed {message}: {detail}"),
            Self::InvalidField {
                message,
                field,
                reason,
            } => write!(f, "invalid {message}.{field}: {reason}"),
            Self::Manifest(e) => write!(f, "bad offer: {e}"),
        }
    }
}

impl std::error::Error for MessageError {}

impl From<ManifestError> for MessageError {
    fn from(e: ManifestError) -> Self {
        Self::Manifest(e)
    }
}

/// Why a transfer failed. Returned by the [`super::Receiver`] and [`super::Sender`] calls; once a
/// state machine returned one, it stays failed and returns [`FileError::Failed`] afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    /// A manifest given to a constructor is invalid.
    Manifest(ManifestError),
    /// The peer sent bytes that are not a valid message.
    Message(MessageError),
    /// The peer sent a valid message where the protocol does not allow it.
    UnexpectedMessage {
        /// The message type.
        message: &'static str,
        /// Where or when it came.
        context: &'static str,
    },
    /// The transfer id asked for or offered is not the expected one.
    UnknownTransfer,
    /// A request named a file that is not in the manifest, or a directory.
    UnknownFile {
        /// The file index received.
        file: u32,
    },
    /// A request named a chunk beyond the file's last one.
    UnknownChunk {
        /// The file index.
        file: u32,
        /// The chunk index received (the end of the range).
        index: u64,
    },
    /// A chunk arrived that was not the next one requested on its stream, or with the wrong length.
    UnexpectedChunk {
        /// The file index received.
        file: u32,
        /// The chunk index received.
        index: u64,
    },
    /// A chunk failed verification more often than allowed.
    ChunkCorrupt {
        /// The file index.
        file: u32,
        /// The chunk index.
        index: u64,
        /// Deliveries that failed verification.
        attempts: u32,
    },
    /// The caller read a chunk whose hash or length differs from the manifest: the source file
    /// changed after the manifest was built.
    SourceChanged {
        /// The file index.
        file: u32,
        /// The chunk index.
        index: u64,
        /// The file's path in the manifest.
        path: String,
    },
    /// The caller reported that a source file could not be read.
    ReadFailed {
        /// The file index.
        file: u32,
        /// The caller's reason.
        reason: String,
    },
    /// The caller reported that received data could not be stored.
    WriteFailed {
        /// The file index.
        file: u32,
        /// The caller's reason.
        reason: String,
    },
    /// A configured limit was exceeded.
    Limit {
        /// Which limit.
        what: &'static str,
    },
    /// The caller used the API out of order or with values the state machine did not hand out.
    Misuse {
        /// What was wrong.
        what: &'static str,
    },
    /// A compressed chunk did not decode to exactly its declared length (a decompression bomb,
    /// a corrupt frame) or used a codec the receiver did not offer.
    Decompression {
        /// The file index.
        file: u32,
        /// The chunk index.
        index: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The application cancelled the transfer.
    Cancelled,
    /// The peer ended the transfer with an `Error` message.
    Peer {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's reason (at most [`super::MAX_REASON_LEN`] bytes).
        reason: String,
    },
    /// The state machine had already failed with the error given earlier.
    Failed,
}

impl FileError {
    /// The wire code this error is reported to the peer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Manifest(_) | Self::Message(_) | Self::UnexpectedMessage { .. } => {
                ErrorCode::PROTOCOL
            }
            Self::UnexpectedChunk { .. } | Self::Misuse { .. } | Self::Failed => {
                ErrorCode::PROTOCOL
            }
            Self::UnknownTransfer => ErrorCode::UNKNOWN_TRANSFER,
            Self::UnknownFile { .. } | Self::UnknownChunk { .. } => ErrorCode::UNKNOWN_CHUNK,
            Self::ChunkCorrupt { .. } => ErrorCode::CORRUPT,
            Self::SourceChanged { .. } => ErrorCode::SOURCE_CHANGED,
            Self::ReadFailed { .. } => ErrorCode::READ_FAILED,
            Self::WriteFailed { .. } => ErrorCode::WRITE_FAILED,
            Self::Limit { .. } => ErrorCode::LIMIT,
            Self::Cancelled => ErrorCode::CANCELLED,
            Self::Decompression { .. } => ErrorCode::COMPRESSION,
            Self::Peer { code, .. } => *code,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest(e) => write!(f, "invalid manifest: {e}"),
            Self::Message(e) => write!(f, "{e}"),
            Self::UnexpectedMessage { message, context } => {
                write!(f, "unexpected {message} {context}")
            }
            Self::UnknownTransfer => f.write_str("unknown transfer id"),
            Self::UnknownFile { file } => write!(f, "no file {file} in the manifest"),
            Self::UnknownChunk { file, index } => {
                write!(f, "file {file} has no chunk {index}")
            }
            Self::UnexpectedChunk { file, index } => {
                write!(
                    f,
                    "chunk {index} of file {file} was not requested next or has the wrong length"
                )
            }
            Self::ChunkCorrupt {
                file,
                index,
                attempts,
            } => write!(
                f,
                "chunk {index} of file {file} failed verification {attempts} times"
            ),
            Self::SourceChanged { index, path, .. } => write!(
                f,
                "source file {path:?} changed since the offer was made (chunk {index} differs)"
            ),
            Self::ReadFailed { file, reason } => write!(f, "cannot read file {file}: {reason}"),
            Self::WriteFailed { file, reason } => write!(f, "cannot write file {file}: {reason}"),
            Self::Limit { what } => write!(f, "limit exceeded: {what}"),
            Self::Misuse { what } => write!(f, "API misuse: {what}"),
            Self::Cancelled => f.write_str("transfer cancelled"),
            Self::Decompression {
                file,
                index,
                reason,
            } => write!(
                f,
                "refused compressed chunk {index} of file {file}: {reason}"
            ),
            Self::Peer { code, reason } => write!(f, "peer ended the transfer: {code}: {reason}"),
            Self::Failed => f.write_str("the transfer had already failed"),
        }
    }
}

impl std::error::Error for FileError {}

impl From<ManifestError> for FileError {
    fn from(e: ManifestError) -> Self {
        Self::Manifest(e)
    }
}

impl From<MessageError> for FileError {
    fn from(e: MessageError) -> Self {
        Self::Message(e)
    }
}
