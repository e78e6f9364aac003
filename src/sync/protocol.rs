//! The wire protocol between offices: messages, framing, error codes.
//!
//! Owns: the message types, their byte encoding (a 4-byte big-endian length,
//! one message-format version byte, then the message in postcard), the
//! hard size limit, the incremental frame decoder, and the QUIC application
//! error codes a session closes with.
//! Must not: do IO, read clocks or touch the replica.
//!
//! See docs/protocol.md for the conversation these messages make up.

use serde::{Deserialize, Serialize};

use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, Digest};

/// ALPN protocol id for TLS.
pub const ALPN: &[u8] = b"puente/1";

/// Version of the conversation (Hello, Pull, Batch, State).
pub const PROTOCOL_VERSION: u16 = 1;

/// Version of the message encoding, the first byte of every frame body.
pub const MESSAGE_FORMAT: u8 = 1;

/// No frame body may exceed this; a length prefix above it closes the
/// session before any allocation.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Until the peer's Hello has arrived, frames may not exceed this (a Hello
/// is a few hundred bytes); random bytes are refused at once.
pub const MAX_HELLO_FRAME: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u16,
    pub site: SiteId,
    pub node: String,
    pub schema_hash: String,
    pub head: u64,
    /// The sender's wall clock, unix milliseconds (for skew in status).
    pub wall_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// First message on each side.
    Hello(Hello),
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
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
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
        }
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

/// Encodes one message as a frame.
pub fn encode(message: &Message) -> Result<Vec<u8>, Violation> {
    let mut out = vec![0u8; LENGTH_BYTES];
    out.push(MESSAGE_FORMAT);
    let mut out = postcard::to_extend(message, out).map_err(|e| {
        Violation::new(
            ErrorCode::Internal,
            format!("cannot encode a {} message: {e}", message.kind()),
        )
    })?;
    let body = out.len() - LENGTH_BYTES;
    if body > MAX_FRAME {
        return Err(Violation::new(
            ErrorCode::Internal,
            format!(
                "a {} message of {body} bytes exceeds the frame limit",
                message.kind()
            ),
        ));
    }
    out[..LENGTH_BYTES].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Turns a byte stream into messages. Feed it whatever arrives; it never
/// holds more than one frame plus what was fed, and refuses a length above
/// `MAX_FRAME` before buffering it.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` already decoded. They are dropped at
    /// the next `push`, not after each frame: shifting the buffer per frame
    /// made decoding many small frames quadratic.
    start: usize,
    limit: usize,
    /// Bytes of complete frames decoded so far.
    pub bytes_decoded: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            limit: MAX_FRAME,
            bytes_decoded: 0,
        }
    }
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// A decoder refusing frames above `limit` (at most `MAX_FRAME`).
    pub fn with_limit(limit: usize) -> FrameDecoder {
        FrameDecoder {
            limit: limit.min(MAX_FRAME),
            ..FrameDecoder::default()
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME);
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete message, `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, Violation> {
        let buffer = &self.buffer[self.start..];
        if buffer.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let mut len_bytes = [0u8; LENGTH_BYTES];
        len_bytes.copy_from_slice(&buffer[..LENGTH_BYTES]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.limit {
            return Err(Violation::new(
                ErrorCode::FrameTooLarge,
                format!("a frame announces {len} bytes; the limit is {}", self.limit),
            ));
        }
        if len == 0 {
            return Err(Violation::new(ErrorCode::MalformedFrame, "an empty frame"));
        }
        if buffer.len() < LENGTH_BYTES + len {
            return Ok(None);
        }
        let message = decode_body(&buffer[LENGTH_BYTES..LENGTH_BYTES + len]);
        self.start += LENGTH_BYTES + len;
        self.bytes_decoded += (LENGTH_BYTES + len) as u64;
        message.map(Some)
    }
}

/// Decodes a frame body (format byte + message).
pub fn decode_body(body: &[u8]) -> Result<Message, Violation> {
    let (&format, rest) = body
        .split_first()
        .ok_or_else(|| Violation::new(ErrorCode::MalformedFrame, "an empty frame"))?;
    if format != MESSAGE_FORMAT {
        return Err(Violation::new(
            ErrorCode::UnknownMessageVersion,
            format!("message format {format}; this node speaks {MESSAGE_FORMAT}"),
        ));
    }
    let (message, extra) = postcard::take_from_bytes::<Message>(rest).map_err(|e| {
        Violation::new(
            ErrorCode::MalformedFrame,
            format!("undecodable message: {e}"),
        )
    })?;
    if !extra.is_empty() {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            format!(
                "{} stray bytes after a {} message",
                extra.len(),
                message.kind()
            ),
        ));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Hlc;
    use crate::store::{CellChange, Change};
    use crate::value::Value;

    fn sample_batch() -> Message {
        Message::Batch {
            batch: Batch {
                sites: vec![SiteId([5; 16])],
                changes: vec![
                    Change::Row {
                        table: 1,
                        id: "r1".into(),
                        cells: vec![CellChange {
                            column: 2,
                            hlc: Hlc(77),
                            site: 0,
                            value: Value::Text("x".into()),
                        }],
                    },
                    Change::Tombstone {
                        table: 0,
                        id: "e".into(),
                        hlc: Hlc(78),
                        site: 0,
                    },
                ],
            },
            cursor: Cursor {
                base: 1,
                progress: 9,
            },
            complete: false,
            head: 12,
        }
    }

    #[test]
    fn frames_round_trip_when_fed_byte_by_byte() {
        let messages = vec![
            Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                site: SiteId([1; 16]),
                node: "tijuana".into(),
                schema_hash: "ab".into(),
                head: 3,
                wall_ms: 9,
            }),
            Message::Pull {
                cursor: Cursor::at(4),
            },
            sample_batch(),
        ];
        let mut bytes = Vec::new();
        for m in &messages {
            bytes.extend(encode(m).unwrap());
        }
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for b in &bytes {
            decoder.push(std::slice::from_ref(b));
            while let Some(m) = decoder.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, messages);
        assert_eq!(decoder.pending(), 0);
        assert_eq!(decoder.bytes_decoded, bytes.len() as u64);
    }

    fn code_of(bytes: &[u8]) -> ErrorCode {
        let mut d = FrameDecoder::new();
        d.push(bytes);
        d.next_message().unwrap_err().code
    }

    #[test]
    fn bad_frames_get_specific_codes() {
        // 4 GiB announced: refused before buffering anything.
        assert_eq!(
            code_of(&[0xff, 0xff, 0xff, 0xff, 1]),
            ErrorCode::FrameTooLarge
        );
        assert_eq!(code_of(&[0, 0, 0, 0]), ErrorCode::MalformedFrame);
        assert_eq!(
            code_of(&[0, 0, 0, 2, 9, 0]),
            ErrorCode::UnknownMessageVersion
        );
        assert_eq!(
            code_of(&[0, 0, 0, 3, 1, 0xee, 0xee]),
            ErrorCode::MalformedFrame
        );
        let mut stray = encode(&Message::Pull {
            cursor: Cursor::ZERO,
        })
        .unwrap();
        stray.push(0);
        let len = (stray.len() - LENGTH_BYTES) as u32;
        stray[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(code_of(&stray), ErrorCode::MalformedFrame);
        // Before Hello, anything bigger than a Hello is refused at once.
        let mut d = FrameDecoder::with_limit(MAX_HELLO_FRAME);
        d.push(&[0, 2, 0, 0, 1]);
        assert_eq!(d.next_message().unwrap_err().code, ErrorCode::FrameTooLarge);
        // An incomplete frame just waits for more.
        let full = encode(&sample_batch()).unwrap();
        let mut d = FrameDecoder::new();
        d.push(&full[..full.len() - 1]);
        assert_eq!(d.next_message().unwrap(), None);
    }

    #[test]
    fn many_small_frames_decode_in_linear_time() {
        // Half a million 8-byte Pull frames arriving in one read: shifting
        // the buffer after each frame took minutes (quadratic); found while
        // writing the frame decoder fuzz target.
        let frame = encode(&Message::Pull {
            cursor: Cursor::ZERO,
        })
        .unwrap();
        let count = (4 << 20) / frame.len();
        let mut d = FrameDecoder::new();
        d.push(&frame.repeat(count));
        let started = std::time::Instant::now();
        let mut decoded = 0;
        while let Some(m) = d.next_message().unwrap() {
            assert_eq!(m.kind(), "pull");
            decoded += 1;
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "only {decoded} of {count} frames decoded in 10 s"
            );
        }
        assert_eq!(decoded, count);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.bytes_decoded, (count * frame.len()) as u64);
        // Bytes pushed after decoding land behind the undecoded rest.
        d.push(&frame[..3]);
        assert_eq!(d.next_message().unwrap(), None);
        d.push(&frame[3..]);
        assert_eq!(d.pending(), frame.len());
        assert_eq!(d.next_message().unwrap().map(|m| m.kind()), Some("pull"));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn error_codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(u64::from(c.code())), Some(c));
        }
        assert_eq!(ErrorCode::from_code(999), None);
    }
}
