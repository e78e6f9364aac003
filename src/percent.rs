//! Percent-encoding (RFC 3986) of what puente puts into a URL or a SQLite
//! URI, with the `percent-encoding` crate: a path segment or query value
//! (every byte but the unreserved characters, so any input reaches the
//! other side intact and is judged there), and a file path inside a
//! `file:` URI (slashes kept).
//!
//! Owns: the two sets of bytes left as they are.
//! Must not: decode, or know what the text means.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

/// Every byte but RFC 3986's unreserved characters: letters, digits, `-`,
/// `.`, `_` and `~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// As `COMPONENT`, with `/` kept: the path of a file.
const FILE_PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// A path segment or a query value, percent-encoded.
pub fn encode(text: &str) -> String {
    percent_encode(text.as_bytes(), COMPONENT).to_string()
}

/// A file path (its bytes as the OS holds them) for a `file:` URI.
pub fn encode_file_path(path: &[u8]) -> String {
    percent_encode(path, FILE_PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_but_unreserved_characters_are_encoded() {
        assert_eq!(encode("r-1_a.b~"), "r-1_a.b~");
        assert_eq!(encode("../a b/ñ"), "..%2Fa%20b%2F%C3%B1");
        assert_eq!(encode("a b/ñ"), "a%20b%2F%C3%B1");
        assert_eq!(encode("?#%&=+"), "%3F%23%25%26%3D%2B");
    }

    #[test]
    fn file_paths_keep_their_slashes() {
        assert_eq!(
            encode_file_path(b"/tmp/a b/p?#%.db"),
            "/tmp/a%20b/p%3F%23%25.db"
        );
        assert_eq!(encode_file_path(&[b'/', 0xff]), "/%FF");
    }
}
