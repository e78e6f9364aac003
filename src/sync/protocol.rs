//! The wire protocol between offices: messages, protocol versions and
//! their negotiation over ALPN, error codes. The byte layout of frames is
//! in frame.rs (re-exported here).
//!
//! Owns: the message types, the versions this build speaks and the ALPN
//! names that carry them, and the QUIC application error codes a session
//! closes with.
//! Must not: do IO, read clocks or touch the replica.
//!
//! See docs/protocol.md for the conversation these messages make up.

use serde::{Deserialize, Serialize};

use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, Digest};

pub use super::compress::{COMPRESSION_VERSION, compress_frame, compresses};
pub use super::frame::{
    FrameDecoder, KNOWN_FORMATS, LENGTH_BYTES, MAX_FRAME, MAX_HELLO_FRAME, MESSAGE_FORMAT,
    decode_body, decode_body_within, encode,
};
pub use crate::versions::SPOKEN;

/// The newest version this build speaks.
pub const PROTOCOL_VERSION: u16 = 3;

/// Most versions a peer may list.
pub const MAX_VERSIONS: usize = 32;

/// ALPN names: `puente/N` for each version N, and the bare `puente`,
/// offered last by nodes from version 2 on: a connection that negotiates
/// it has no numbered version in common, and both sides say what they
/// speak (`Message::Versions`) before closing.
pub const ALPN_NO_COMMON_VERSION: &[u8] = b"puente";

pub fn alpn_of(version: u16) -> Vec<u8> {
    format!("puente/{version}").into_bytes()
}

/// The version an ALPN name stands for: `Some(0)` for the bare `puente`.
pub fn version_of_alpn(alpn: &[u8]) -> Option<u16> {
    if alpn == ALPN_NO_COMMON_VERSION {
        return Some(0);
    }
    let text = std::str::from_utf8(alpn).ok()?;
    let n: u16 = text.strip_prefix("puente/")?.parse().ok()?;
    (n > 0).then_some(n)
}

/// The ALPN names to offer or accept for `versions`, most preferred (the
/// newest) first, then the bare fallback.
pub fn alpn_list(versions: &[u16]) -> Vec<Vec<u8>> {
    let mut sorted = versions.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    sorted
        .into_iter()
        .map(alpn_of)
        .chain([ALPN_NO_COMMON_VERSION.to_vec()])
        .collect()
}

/// Versions as people read them: "1, 2".
pub fn list_versions(versions: &[u16]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The version this Hello is written in: the one negotiated.
    pub protocol: u16,
    /// Every version the sender speaks (from version 2; `[1]` for a
    /// version 1 Hello).
    pub versions: Vec<u16>,
    pub site: SiteId,
    pub node: String,
    pub schema_hash: String,
    /// The sender's schema in canonical text (from version 2), so that the
    /// receiver can say what differs.
    pub schema: Option<String>,
    pub head: u64,
    /// The sender's wall clock, unix milliseconds (for skew in status).
    pub wall_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// First message on each side.
    Hello(Hello),
    /// Only on a connection without a version in common (bare `puente`
    /// ALPN): the versions the sender speaks; both sides then close.
    Versions { versions: Vec<u16>, node: String },
    /// "Send me your changes after this cursor, then keep pushing."
    Pull { cursor: Cursor },
    /// Changes; the receiver applies them and stores `cursor` in one
    /// transaction. `complete` means the sender's head was reached.
    Batch {
        batch: Batch,
        cursor: Cursor,
        complete: bool,
        head: u64,
    },
    /// The sender's head and digest, and how far it applied the receiver's
    /// changes; sent when caught up and after its replica changes.
    State {
        head: u64,
        digest: Digest,
        applied: Cursor,
        wall_ms: u64,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Versions { .. } => "versions",
            Message::Pull { .. } => "pull",
            Message::Batch { .. } => "batch",
            Message::State { .. } => "state",
        }
    }
}

/// QUIC application error codes a connection is closed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ErrorCode {
    /// Orderly close (shutdown, duplicate connection replaced).
    Normal = 0,
    ProtocolMismatch = 1,
    SchemaMismatch = 2,
    MalformedFrame = 3,
    FrameTooLarge = 4,
    UnknownMessageVersion = 5,
    InvalidBatch = 6,
    DuplicateConnection = 7,
    UnexpectedMessage = 8,
    /// This node could not store a batch (disk full, I/O error).
    ApplyFailed = 9,
    ShuttingDown = 10,
    /// The peer uses this replica's own site id (a copied data dir).
    SameSite = 11,
    /// Too many batches too fast.
    Flood = 12,
    /// No Hello in time.
    Timeout = 13,
    Internal = 14,
    /// The peer sent more changes its office may not make than this node
    /// holds for review (the excess was dropped and counted).
    ForbiddenFlood = 15,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::Normal,
        ErrorCode::ProtocolMismatch,
        ErrorCode::SchemaMismatch,
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownMessageVersion,
        ErrorCode::InvalidBatch,
        ErrorCode::DuplicateConnection,
        ErrorCode::UnexpectedMessage,
        ErrorCode::ApplyFailed,
        ErrorCode::ShuttingDown,
        ErrorCode::SameSite,
        ErrorCode::Flood,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::ForbiddenFlood,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u64) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| u64::from(c.code()) == code)
    }

    /// Stable snake_case name (status counters, logs).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Normal => "normal",
            ErrorCode::ProtocolMismatch => "protocol_mismatch",
            ErrorCode::SchemaMismatch => "schema_mismatch",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownMessageVersion => "unknown_message_version",
            ErrorCode::InvalidBatch => "invalid_batch",
            ErrorCode::DuplicateConnection => "duplicate_connection",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::ApplyFailed => "apply_failed",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::SameSite => "same_site",
            ErrorCode::Flood => "flood",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::ForbiddenFlood => "forbidden_flood",
        }
    }

    /// Whether a session that ends with this code (closed by either side)
    /// is a problem worth showing in status and counting: everything but
    /// an orderly close, a shutdown and a replaced duplicate connection.
    pub fn is_problem(self) -> bool {
        !matches!(
            self,
            ErrorCode::Normal | ErrorCode::ShuttingDown | ErrorCode::DuplicateConnection
        )
    }
}

/// Why a session ends: a code for the wire and a sentence for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: ErrorCode,
    pub reason: String,
}

impl Violation {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Violation {
        Violation {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(u64::from(c.code())), Some(c));
        }
        assert_eq!(ErrorCode::from_code(999), None);
    }

    #[test]
    fn only_an_orderly_close_a_shutdown_and_a_replaced_duplicate_are_not_problems() {
        let quiet: Vec<ErrorCode> = ErrorCode::ALL
            .into_iter()
            .filter(|c| !c.is_problem())
            .collect();
        assert_eq!(
            quiet,
            [
                ErrorCode::Normal,
                ErrorCode::DuplicateConnection,
                ErrorCode::ShuttingDown
            ]
        );
    }

    #[test]
    fn alpn_names_carry_versions_newest_first_then_the_fallback() {
        assert_eq!(
            alpn_list(&[1, 2]),
            vec![
                b"puente/2".to_vec(),
                b"puente/1".to_vec(),
                b"puente".to_vec()
            ]
        );
        assert_eq!(version_of_alpn(b"puente/2"), Some(2));
        assert_eq!(version_of_alpn(b"puente"), Some(0));
        for bad in [
            &b"puente/0"[..],
            b"puente/x",
            b"puente/",
            b"h3",
            b"puente/70000",
        ] {
            assert_eq!(
                version_of_alpn(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(list_versions(&[1, 2]), "1, 2");
    }
}
