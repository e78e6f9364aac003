//! The byte layout of frames: a 4-byte big-endian length, a format byte
//! naming the layout of the body, then the body in postcard. Layouts:
//! format 1 is every message as puente 0.1.0 wrote it (its Hello without
//! versions or schema); format 2 is the version 2 Hello; format 0 is the
//! `Versions` message of a connection without a version in common, a
//! layout that never changes; format 3 (from protocol version 3) wraps
//! another body compressed (compress.rs). Pull, Batch and State are
//! written in format 1 by every version so far, compressed or not.
//!
//! Owns: encoding, the hard size limits, and the incremental decoder.
//! Must not: do IO or decide what a message means (session.rs does).

use serde::{Deserialize, Serialize};

use super::compress::{FORMAT_COMPRESSED, decompress_body};
use super::protocol::{ErrorCode, Hello, Message, Violation};
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, Digest};

/// No frame body may exceed this; a length prefix above it closes the
/// session before any allocation.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Until the peer's Hello has arrived, frames may not exceed this (a Hello
/// is a few kilobytes at most); random bytes are refused at once.
pub const MAX_HELLO_FRAME: usize = 64 * 1024;

/// Format bytes this build reads.
pub const KNOWN_FORMATS: &[u8] = &[
    FORMAT_VERSIONS,
    MESSAGE_FORMAT,
    FORMAT_HELLO_V2,
    FORMAT_COMPRESSED,
];
const FORMAT_VERSIONS: u8 = 0;
/// The format of Pull, Batch, State and the version 1 Hello.
pub const MESSAGE_FORMAT: u8 = 1;
const FORMAT_V1: u8 = MESSAGE_FORMAT;
const FORMAT_HELLO_V2: u8 = 2;

/// Hello as version 1 writes it.
#[derive(Serialize, Deserialize)]
struct HelloV1 {
    protocol: u16,
    site: SiteId,
    node: String,
    schema_hash: String,
    head: u64,
    wall_ms: u64,
}

/// Hello as version 2 writes it.
#[derive(Serialize, Deserialize)]
struct HelloV2 {
    protocol: u16,
    versions: Vec<u16>,
    site: SiteId,
    node: String,
    schema_hash: String,
    schema: String,
    head: u64,
    wall_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct VersionsFrame {
    versions: Vec<u16>,
    node: String,
}

/// Every message in format 1 (puente 0.1.0's `Message`), borrowed for
/// writing: a batch is never copied to be encoded.
#[derive(Serialize)]
enum V1Ref<'a> {
    Hello(HelloV1),
    Pull {
        cursor: Cursor,
    },
    Batch {
        batch: &'a Batch,
        cursor: Cursor,
        complete: bool,
        head: u64,
    },
    State {
        head: u64,
        digest: Digest,
        applied: Cursor,
        wall_ms: u64,
    },
}

/// The same, owned, for reading.
#[derive(Deserialize)]
enum V1 {
    Hello(HelloV1),
    Pull {
        cursor: Cursor,
    },
    Batch {
        batch: Batch,
        cursor: Cursor,
        complete: bool,
        head: u64,
    },
    State {
        head: u64,
        digest: Digest,
        applied: Cursor,
        wall_ms: u64,
    },
}

fn cannot_encode(kind: &str, reason: impl std::fmt::Display) -> Violation {
    Violation::new(
        ErrorCode::Internal,
        format!("cannot encode a {kind} message: {reason}"),
    )
}

fn write(format: u8, body: &impl Serialize, kind: &str) -> Result<Vec<u8>, Violation> {
    let mut out = vec![0u8; LENGTH_BYTES];
    out.push(format);
    let out = postcard::to_extend(body, out).map_err(|e| cannot_encode(kind, e))?;
    Ok(out)
}

/// Encodes one message as a frame, in the layout its kind and version use.
pub fn encode(message: &Message) -> Result<Vec<u8>, Violation> {
    let kind = message.kind();
    let mut out = match message {
        Message::Versions { versions, node } => write(
            FORMAT_VERSIONS,
            &VersionsFrame {
                versions: versions.clone(),
                node: node.clone(),
            },
            kind,
        )?,
        Message::Hello(h) if h.protocol >= 2 => write(
            FORMAT_HELLO_V2,
            &HelloV2 {
                protocol: h.protocol,
                versions: h.versions.clone(),
                site: h.site,
                node: h.node.clone(),
                schema_hash: h.schema_hash.clone(),
                schema: h.schema.clone().unwrap_or_default(),
                head: h.head,
                wall_ms: h.wall_ms,
            },
            kind,
        )?,
        Message::Hello(h) => write(
            FORMAT_V1,
            &V1Ref::Hello(HelloV1 {
                protocol: h.protocol,
                site: h.site,
                node: h.node.clone(),
                schema_hash: h.schema_hash.clone(),
                head: h.head,
                wall_ms: h.wall_ms,
            }),
            kind,
        )?,
        Message::Pull { cursor } => write(FORMAT_V1, &V1Ref::Pull { cursor: *cursor }, kind)?,
        Message::Batch {
            batch,
            cursor,
            complete,
            head,
        } => write(
            FORMAT_V1,
            &V1Ref::Batch {
                batch,
                cursor: *cursor,
                complete: *complete,
                head: *head,
            },
            kind,
        )?,
        Message::State {
            head,
            digest,
            applied,
            wall_ms,
        } => write(
            FORMAT_V1,
            &V1Ref::State {
                head: *head,
                digest: *digest,
                applied: *applied,
                wall_ms: *wall_ms,
            },
            kind,
        )?,
    };
    let body = out.len() - LENGTH_BYTES;
    if body > MAX_FRAME {
        return Err(cannot_encode(
            kind,
            format!("{body} bytes exceed the frame limit"),
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
    /// Whether compressed frames are read (the connection's version has
    /// them); without, format 3 is unknown as it is to older nodes.
    compressed: bool,
    /// Bytes of complete frames decoded so far.
    pub bytes_decoded: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            limit: MAX_FRAME,
            compressed: false,
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

    /// Reads compressed frames from now on (or not).
    pub fn set_compressed(&mut self, compressed: bool) {
        self.compressed = compressed;
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
        let body = &buffer[LENGTH_BYTES..LENGTH_BYTES + len];
        let message = if body[0] == FORMAT_COMPRESSED && !self.compressed {
            Err(unknown_format(FORMAT_COMPRESSED))
        } else {
            decode_body_within(body, self.limit)
        };
        self.start += LENGTH_BYTES + len;
        self.bytes_decoded += (LENGTH_BYTES + len) as u64;
        message.map(Some)
    }
}

/// Decodes a frame body (format byte + message).
pub fn decode_body(body: &[u8]) -> Result<Message, Violation> {
    decode_body_within(body, MAX_FRAME)
}

/// The same, refusing a compressed body that would decompress to more
/// than `limit` bytes.
pub fn decode_body_within(body: &[u8], limit: usize) -> Result<Message, Violation> {
    let (&format, rest) = body
        .split_first()
        .ok_or_else(|| Violation::new(ErrorCode::MalformedFrame, "an empty frame"))?;
    match format {
        FORMAT_COMPRESSED => decode_body_within(&decompress_body(rest, limit)?, limit),
        FORMAT_VERSIONS => {
            let v: VersionsFrame = read(rest, "versions")?;
            Ok(Message::Versions {
                versions: v.versions,
                node: v.node,
            })
        }
        FORMAT_HELLO_V2 => {
            let h: HelloV2 = read(rest, "hello")?;
            Ok(Message::Hello(Hello {
                protocol: h.protocol,
                versions: h.versions,
                site: h.site,
                node: h.node,
                schema_hash: h.schema_hash,
                schema: Some(h.schema),
                head: h.head,
                wall_ms: h.wall_ms,
            }))
        }
        FORMAT_V1 => Ok(match read::<V1>(rest, "format 1")? {
            V1::Hello(h) => Message::Hello(Hello {
                protocol: h.protocol,
                versions: vec![h.protocol],
                site: h.site,
                node: h.node,
                schema_hash: h.schema_hash,
                schema: None,
                head: h.head,
                wall_ms: h.wall_ms,
            }),
            V1::Pull { cursor } => Message::Pull { cursor },
            V1::Batch {
                batch,
                cursor,
                complete,
                head,
            } => Message::Batch {
                batch,
                cursor,
                complete,
                head,
            },
            V1::State {
                head,
                digest,
                applied,
                wall_ms,
            } => Message::State {
                head,
                digest,
                applied,
                wall_ms,
            },
        }),
        other => Err(unknown_format(other)),
    }
}

fn unknown_format(format: u8) -> Violation {
    let reason = if format == FORMAT_COMPRESSED {
        "message format 3 (compressed), which this connection's protocol version does not have"
            .to_string()
    } else {
        format!(
            "message format {format}; this node reads formats {}",
            KNOWN_FORMATS
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Violation::new(ErrorCode::UnknownMessageVersion, reason)
}

/// One body in postcard, with nothing after it.
fn read<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Violation> {
    let (value, extra) = postcard::take_from_bytes::<T>(bytes).map_err(|e| {
        Violation::new(
            ErrorCode::MalformedFrame,
            format!("undecodable {what} message: {e}"),
        )
    })?;
    if !extra.is_empty() {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            format!("{} stray bytes after a {what} message", extra.len()),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Hlc;
    use crate::store::{CellChange, Change};
    use crate::sync::protocol::PROTOCOL_VERSION;
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
                versions: vec![1, 2],
                site: SiteId([1; 16]),
                node: "tijuana".into(),
                schema_hash: "ab".into(),
                schema: Some("puente-schema-v1\ntable t\n".into()),
                head: 3,
                wall_ms: 9,
            }),
            Message::Hello(Hello {
                protocol: 1,
                versions: vec![1],
                site: SiteId([1; 16]),
                node: "tijuana".into(),
                schema_hash: "ab".into(),
                schema: None,
                head: 3,
                wall_ms: 9,
            }),
            Message::Versions {
                versions: vec![3, 4],
                node: "future".into(),
            },
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
    fn version_1_frames_are_byte_for_byte_what_puente_0_1_0_wrote() {
        // The Hello of a 0.1.0 node, as its `encode` wrote it: format 1,
        // then postcard of `Message::Hello(Hello { protocol, site, node,
        // schema_hash, head, wall_ms })`.
        let mut old = vec![1u8, 0, 1];
        old.extend([7u8; 16]);
        old.extend([2, b'a', b'b', 1, b'h', 5, 9]);
        let hello = decode_body(&old).unwrap();
        assert_eq!(
            hello,
            Message::Hello(Hello {
                protocol: 1,
                versions: vec![1],
                site: SiteId([7; 16]),
                node: "ab".into(),
                schema_hash: "h".into(),
                schema: None,
                head: 5,
                wall_ms: 9,
            })
        );
        assert_eq!(&encode(&hello).unwrap()[LENGTH_BYTES..], &old[..]);
        // Pull, Batch and State keep format 1, so 0.1.0 reads them.
        let pull = encode(&Message::Pull {
            cursor: Cursor::at(4),
        })
        .unwrap();
        assert_eq!(&pull[LENGTH_BYTES..], &[1, 1, 4, 4]);
    }
}
