//! Compressed frames (protocol version 3): a frame body in format 3 wraps
//! another frame's body compressed with zstd, with its size in front:
//!
//! ```text
//! | length: u32 BE | 3 | size: u32 BE | zstd frame of (format + message) |
//! ```
//!
//! Only a node that negotiated version 3 sends them, and only for frames
//! where it pays: bodies of at least `MIN_BODY` bytes whose compressed form
//! is at least a tenth smaller (sealed cells are age ciphertext, which
//! does not compress; the shared values and the layout around them do).
//!
//! Owns: when a frame is worth compressing, the wrapping, and unwrapping
//! within the frame size limit: a size above the limit is refused before
//! anything is allocated (`frame_too_large`), and a zstd frame that
//! decompresses to more or less than its stated size is malformed.
//! Must not: do IO or decide what a message means.

use super::protocol::{ErrorCode, Violation};

/// The format byte of a compressed body.
pub const FORMAT_COMPRESSED: u8 = 3;

/// The first protocol version whose nodes read and send compressed frames.
pub const COMPRESSION_VERSION: u16 = 3;

/// Smaller bodies are sent as they are (a live change is a few hundred
/// bytes: not worth the CPU).
pub const MIN_BODY: usize = 4 * 1024;

/// zstd's level: 3, its default (measured on bench batches: level 1 left
/// about 2 points of the saving, levels above 3 cost several times the
/// CPU for under a point).
pub const LEVEL: i32 = 3;

/// A compressed body must be at most this share of the original to be
/// sent compressed.
const KEEP_RATIO: f64 = 0.9;

const LENGTH_BYTES: usize = 4;
const SIZE_BYTES: usize = 4;

/// Whether a connection of `version` compresses.
pub fn compresses(version: u16) -> bool {
    version >= COMPRESSION_VERSION
}

/// `frame` (length prefix and body), compressed if that makes it at least
/// a tenth smaller; otherwise unchanged.
pub fn compress_frame(frame: Vec<u8>) -> Vec<u8> {
    let Some(body) = frame.get(LENGTH_BYTES..) else {
        return frame;
    };
    if body.len() < MIN_BODY || body.first() == Some(&FORMAT_COMPRESSED) {
        return frame;
    }
    let Ok(packed) = zstd::bulk::compress(body, LEVEL) else {
        return frame;
    };
    let wrapped = 1 + SIZE_BYTES + packed.len();
    if wrapped as f64 > body.len() as f64 * KEEP_RATIO {
        return frame;
    }
    let mut out = Vec::with_capacity(LENGTH_BYTES + wrapped);
    out.extend_from_slice(&(wrapped as u32).to_be_bytes());
    out.push(FORMAT_COMPRESSED);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&packed);
    out
}

/// The body inside a compressed body (`rest`: what follows the format
/// byte), refusing one that would exceed `limit` bytes.
pub fn decompress_body(rest: &[u8], limit: usize) -> Result<Vec<u8>, Violation> {
    let Some((size, packed)) = rest.split_first_chunk::<SIZE_BYTES>() else {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            "a compressed frame without its size",
        ));
    };
    let size = u32::from_be_bytes(*size) as usize;
    if size > limit {
        return Err(Violation::new(
            ErrorCode::FrameTooLarge,
            format!("a compressed frame announces {size} bytes decompressed; the limit is {limit}"),
        ));
    }
    if size == 0 {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            "a compressed frame of an empty body",
        ));
    }
    // Decompressing into a buffer of the stated size: zstd writes no more
    // than that (single-pass decompression allocates no window of its own).
    let body = zstd::bulk::decompress(packed, size).map_err(|e| {
        Violation::new(
            ErrorCode::MalformedFrame,
            format!("a compressed frame that does not decompress to its stated {size} bytes: {e}"),
        )
    })?;
    if body.len() != size {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            format!(
                "a compressed frame states {size} bytes but holds {}",
                body.len()
            ),
        ));
    }
    if body.first() == Some(&FORMAT_COMPRESSED) {
        return Err(Violation::new(
            ErrorCode::MalformedFrame,
            "a compressed frame inside a compressed frame",
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn compressible_frames_shrink_and_come_back_whole() {
        let mut body = vec![1u8];
        for i in 0..2_000u32 {
            body.extend_from_slice(format!("2026-01-{:02} tijuana active ", i % 28).as_bytes());
        }
        let frame = frame_of(&body);
        let packed = compress_frame(frame.clone());
        assert!(packed.len() < frame.len() / 4, "{}", packed.len());
        assert_eq!(packed[LENGTH_BYTES], FORMAT_COMPRESSED);
        let len = u32::from_be_bytes(packed[..4].try_into().unwrap()) as usize;
        assert_eq!(len, packed.len() - LENGTH_BYTES);
        let back = decompress_body(&packed[LENGTH_BYTES + 1..], body.len()).unwrap();
        assert_eq!(back, body);
        // One byte under the size: refused before decompressing.
        let err = decompress_body(&packed[LENGTH_BYTES + 1..], body.len() - 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn small_or_incompressible_frames_go_as_they_are() {
        let small = frame_of(&[1u8; 100]);
        assert_eq!(compress_frame(small.clone()), small);
        // Random bytes (like age ciphertext) do not shrink by a tenth.
        let mut random = vec![1u8];
        random.extend((0..64 * 1024).map(|_| rand::random::<u8>()));
        let frame = frame_of(&random);
        assert_eq!(compress_frame(frame.clone()), frame);
    }

    #[test]
    fn a_bomb_is_refused_by_its_stated_size_and_a_lie_is_malformed() {
        // 64 MiB of zeros compress to a few kilobytes.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let mut rest = (64u32 << 20).to_be_bytes().to_vec();
        rest.extend_from_slice(&bomb);
        assert_eq!(
            decompress_body(&rest, 16 << 20).unwrap_err().code,
            ErrorCode::FrameTooLarge
        );
        // Stating a small size for it: zstd stops at the buffer's end.
        let mut lie = 1_000u32.to_be_bytes().to_vec();
        lie.extend_from_slice(&bomb);
        assert_eq!(
            decompress_body(&lie, 16 << 20).unwrap_err().code,
            ErrorCode::MalformedFrame
        );
        // Stating more than it holds.
        let small = zstd::bulk::compress(&[1u8; 100], 3).unwrap();
        let mut more = 200u32.to_be_bytes().to_vec();
        more.extend_from_slice(&small);
        assert_eq!(
            decompress_body(&more, 16 << 20).unwrap_err().code,
            ErrorCode::MalformedFrame
        );
        for bad in [&[][..], &[0, 0], &[0, 0, 0, 0], &[0, 0, 0, 9, 1, 2, 3]] {
            assert_eq!(
                decompress_body(bad, 16 << 20).unwrap_err().code,
                ErrorCode::MalformedFrame,
                "{bad:?}"
            );
        }
        // No nesting.
        let inner = zstd::bulk::compress(&[FORMAT_COMPRESSED; 10], 3).unwrap();
        let mut nested = 10u32.to_be_bytes().to_vec();
        nested.extend_from_slice(&inner);
        assert_eq!(
            decompress_body(&nested, 16 << 20).unwrap_err().code,
            ErrorCode::MalformedFrame
        );
    }
}
