//! The keyset marker: which recipient set a sealed value was encrypted to,
//! readable without any key.
//!
//! Owns: the id of a group's recipient set (a short hash of the sorted
//! `age1…` list), the extra age header stanza `-> puente-keyset ID` (empty
//! body) that `seal` writes first in every header, and reading it back from
//! the header text. The header MAC covers the stanza; age implementations
//! skip stanzas of types they do not know (as they skip age's own grease
//! stanzas), so `age -d` with an identity still opens the file.
//! Must not: decrypt, or be trusted for more than bookkeeping: whoever seals
//! a value writes its marker, so "no cell opens with a removed identity" is
//! checked by decrypting, never by markers alone.

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};

use super::AGE_MAGIC;

/// The stanza tag of the marker.
pub const KEYSET_TAG: &str = "puente-keyset";

/// Hex digits of a keyset id (80 bits of SHA-256).
const ID_HEX: usize = 20;

/// The id of a recipient set: the first 80 bits of SHA-256 over the sorted
/// recipients, in hex. Order and duplicates do not change it.
pub fn keyset_id<S: AsRef<str>>(recipients: &[S]) -> String {
    let mut keys: Vec<&str> = recipients.iter().map(|r| r.as_ref().trim()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"puente-keyset-v1\n");
    for k in keys {
        ctx.update(k.as_bytes());
        ctx.update(b"\n");
    }
    let digest = ctx.finish();
    digest.as_ref()[..ID_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An age "recipient" that wraps nothing: it only adds the marker stanza.
/// Passed first to the encryptor, so the marker is the header's first
/// stanza.
pub(super) struct KeysetMarker(pub String);

impl age::Recipient for KeysetMarker {
    fn wrap_file_key(
        &self,
        _file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        Ok((
            vec![Stanza {
                tag: KEYSET_TAG.to_string(),
                args: vec![self.0.clone()],
                body: Vec::new(),
            }],
            // No labels: X25519 recipients have none either, and the
            // encryptor requires every recipient's set to be equal.
            HashSet::new(),
        ))
    }
}

/// The keyset id a sealed value's header names, if its first stanza is a
/// marker (values sealed before markers existed, or by other tools, have
/// none). Reads at most the first line after the age magic.
pub fn marker_of(sealed: &[u8]) -> Option<&str> {
    let rest = sealed.strip_prefix(AGE_MAGIC)?;
    let end = rest.iter().take(96).position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&rest[..end]).ok()?;
    let id = line
        .strip_prefix("-> ")?
        .strip_prefix(KEYSET_TAG)?
        .strip_prefix(' ')?;
    (id.len() == ID_HEX && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ignore_order_and_duplicates_and_differ_per_set() {
        let a = keyset_id(&["age1b", "age1a"]);
        assert_eq!(a, keyset_id(&["age1a", "age1b", "age1a"]));
        assert_eq!(a.len(), ID_HEX);
        assert_ne!(a, keyset_id(&["age1a"]));
        assert_ne!(a, keyset_id(&["age1a", "age1c"]));
    }

    #[test]
    fn markers_are_read_from_the_first_stanza_only() {
        let id = keyset_id(&["age1a"]);
        let with = format!("age-encryption.org/v1\n-> {KEYSET_TAG} {id}\n\n-> X25519 abc\n");
        assert_eq!(marker_of(with.as_bytes()), Some(id.as_str()));
        let later = format!("age-encryption.org/v1\n-> X25519 abc\nxyz\n-> {KEYSET_TAG} {id}\n\n");
        assert_eq!(marker_of(later.as_bytes()), None);
        assert_eq!(marker_of(b"age-encryption.org/v1\n-> X25519 abc\n"), None);
        assert_eq!(marker_of(b"plain"), None);
        let short = format!("age-encryption.org/v1\n-> {KEYSET_TAG} abc\n\n");
        assert_eq!(marker_of(short.as_bytes()), None);
    }
}
