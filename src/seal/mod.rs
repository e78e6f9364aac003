//! Sealed columns: per-field age encryption bound to its cell.
//!
//! Owns: turning a plaintext into a standard binary age file (envelope →
//! padding → age, to every recipient of the column's group), opening one
//! with the node's identities and checking it belongs to the cell it was
//! read from, and recognising an age file without any key (fail closed).
//! Must not: touch SQLite, log values, or put a value into an error.

pub mod envelope;
pub mod keyring;
pub mod keyset;

use std::io::{Read, Write};

pub use envelope::Binding;
pub use keyring::{KeyError, Keyring, generate_identity_file};
pub use keyset::{keyset_id, marker_of};

use crate::config::Group;
use crate::value::Plaintext;

/// The first line of every binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Errors of sealing and opening. They name the cell, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "group `{group}` has no recipients in the schema, so nothing can be sealed to it; add the Tijuana key (`puente keygen` prints it) under [groups] {group} and copy the schema to every office"
    )]
    NoRecipients { group: String },
    #[error(
        "this node holds no identity for group `{group}`, so it cannot reveal sealed values; only an office with the group's key (listed under [privacy] identities) can"
    )]
    NoIdentity { group: String },
    #[error(
        "{table}/{id}/{column}: the sealed value is not an age file (fail closed: a sealed column only ever holds ciphertext)"
    )]
    NotAgeFile {
        table: String,
        id: String,
        column: String,
    },
    #[error(
        "{table}/{id}/{column}: the sealed value could not be decrypted ({reason}); it is damaged or was sealed to other keys"
    )]
    Decrypt {
        table: String,
        id: String,
        column: String,
        reason: String,
    },
    #[error(
        "{table}/{id}/{column}: sealed value does not belong to this cell ({reason}); it may have been moved or replayed"
    )]
    Binding {
        table: String,
        id: String,
        column: String,
        reason: String,
    },
    #[error("{table}/{id}/{column}: could not seal the value: {reason}")]
    Encrypt {
        table: String,
        id: String,
        column: String,
        reason: String,
    },
}

/// Encrypts `value` for the cell described by `binding` to every recipient
/// of `group`, returning a standard binary age file whose header names the
/// recipient set first (`keyset`).
pub fn seal(group: &Group, binding: &Binding<'_>, value: &Plaintext) -> Result<Vec<u8>, SealError> {
    if group.recipients.is_empty() {
        return Err(SealError::NoRecipients {
            group: group.name.clone(),
        });
    }
    let fail = |reason: String| SealError::Encrypt {
        table: binding.table.to_string(),
        id: binding.id.to_string(),
        column: binding.column.to_string(),
        reason,
    };
    let plaintext = envelope::encode(binding, value).map_err(|e| fail(e.to_string()))?;
    let marker = keyset::KeysetMarker(keyset_id(&group.recipient_keys));
    let encryptor = age::Encryptor::with_recipients(
        std::iter::once(&marker as &dyn age::Recipient)
            .chain(group.recipients.iter().map(|r| r as &dyn age::Recipient)),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 200 * group.recipients.len() + 64);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    writer
        .write_all(&plaintext)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// Decrypts a sealed value with the node's identities and checks that its
/// envelope names exactly this cell.
pub fn open(
    keyring: &Keyring,
    group: &Group,
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<Plaintext, SealError> {
    if keyring.is_empty() {
        return Err(SealError::NoIdentity {
            group: group.name.clone(),
        });
    }
    let cell = |reason: String| {
        (
            binding.table.to_string(),
            binding.id.to_string(),
            binding.column.to_string(),
            reason,
        )
    };
    let decrypt_error = |reason: String| {
        let (table, id, column, reason) = cell(reason);
        SealError::Decrypt {
            table,
            id,
            column,
            reason,
        }
    };
    if !is_age_file(sealed) {
        return Err(SealError::NotAgeFile {
            table: binding.table.to_string(),
            id: binding.id.to_string(),
            column: binding.column.to_string(),
        });
    }
    let decryptor =
        age::Decryptor::new_buffered(sealed).map_err(|e| decrypt_error(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(keyring.identities())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => SealError::NoIdentity {
                group: group.name.clone(),
            },
            other => decrypt_error(other.to_string()),
        })?;
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut plain)
        .map_err(|e| decrypt_error(e.to_string()))?;
    envelope::decode(&plain, binding).map_err(|e| match e {
        envelope::EnvelopeError::Mismatch(_) => {
            let (table, id, column, reason) = cell(e.to_string());
            SealError::Binding {
                table,
                id,
                column,
                reason,
            }
        }
        other => decrypt_error(other.to_string()),
    })
}

/// Re-encrypts a sealed value to `group`'s current recipients for a new
/// version of its cell: opens it with the node's identities (checking it
/// belongs to `old`), then seals the same value for `new`. The plaintext
/// exists only inside this call, in a zeroizing buffer.
pub fn reseal(
    keyring: &Keyring,
    group: &Group,
    old: &Binding<'_>,
    new: &Binding<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let value = open(keyring, group, old, sealed)?;
    seal(group, new, &value)
}

/// Whether `bytes` is a well-formed binary age file (header parses). Needs
/// no key: this is how a keyless node refuses plaintext in sealed columns.
pub fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC) && age::Decryptor::new_buffered(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Hlc;
    use crate::stamp::SiteId;
    use std::str::FromStr;

    fn group_with(identity: &age::x25519::Identity) -> Group {
        let r = identity.to_public();
        Group {
            name: "mx".into(),
            recipient_keys: vec![r.to_string()],
            recipients: vec![r],
        }
    }

    fn keyring_of(identity: &age::x25519::Identity) -> Keyring {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        use age::secrecy::ExposeSecret;
        std::fs::write(&f, identity.to_string().expose_secret()).unwrap();
        Keyring::load(&[f]).unwrap().0
    }

    fn binding() -> Binding<'static> {
        Binding {
            table: "residents",
            id: "r1",
            column: "phone",
            hlc: Hlc(9 << 16),
            site: SiteId([3; 16]),
        }
    }

    #[test]
    fn sealed_values_are_standard_age_files() {
        let id = age::x25519::Identity::generate();
        let sealed = seal(
            &group_with(&id),
            &binding(),
            &Plaintext::text("+52 664 000 0000"),
        )
        .unwrap();
        assert!(is_age_file(&sealed));
        // The header names the recipient set first.
        assert_eq!(
            marker_of(&sealed),
            Some(keyset_id(&group_with(&id).recipient_keys).as_str())
        );
        // The plain age API opens it; the envelope holds the value.
        let plain = age::decrypt(&id, &sealed).unwrap();
        assert!(plain.starts_with(envelope::MAGIC));
        assert!(plain.windows(16).any(|w| w == b"+52 664 000 0000"));
        let opened = open(&keyring_of(&id), &group_with(&id), &binding(), &sealed).unwrap();
        assert_eq!(opened, Plaintext::text("+52 664 000 0000"));
    }

    #[test]
    fn opening_fails_closed() {
        let id = age::x25519::Identity::generate();
        let group = group_with(&id);
        let ring = keyring_of(&id);
        let sealed = seal(&group, &binding(), &Plaintext::text("x")).unwrap();
        let mut moved = binding();
        moved.id = "r2";
        assert!(matches!(
            open(&ring, &group, &moved, &sealed),
            Err(SealError::Binding { .. })
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(matches!(
            open(&ring, &group, &binding(), &flipped),
            Err(SealError::Decrypt { .. })
        ));
        assert!(matches!(
            open(&ring, &group, &binding(), b"plain text"),
            Err(SealError::NotAgeFile { .. })
        ));
        assert!(matches!(
            open(&Keyring::empty(), &group, &binding(), &sealed),
            Err(SealError::NoIdentity { .. })
        ));
        let other = keyring_of(&age::x25519::Identity::generate());
        assert!(matches!(
            open(&other, &group, &binding(), &sealed),
            Err(SealError::NoIdentity { .. })
        ));
        assert!(!is_age_file(&sealed[..30]));
        let empty = Group {
            name: "mx".into(),
            recipient_keys: vec![],
            recipients: vec![],
        };
        assert!(matches!(
            seal(&empty, &binding(), &Plaintext::text("x")),
            Err(SealError::NoRecipients { .. })
        ));
    }

    #[test]
    fn identities_written_by_age_keygen_are_accepted() {
        // The exact layout `age-keygen` writes (a fixed test key).
        let secret = "AGE-SECRET-KEY-1KPCYU8THVPHV2VWMQUAUW0CH5AGMCPTSF0MTP6S50WVC2JXLRNPSJFA0R6";
        let identity = age::x25519::Identity::from_str(secret).unwrap();
        let public = identity.to_public().to_string();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.txt");
        std::fs::write(
            &f,
            format!("# created: 2026-01-01T00:00:00-08:00\n# public key: {public}\n{secret}\n"),
        )
        .unwrap();
        let (ring, _) = Keyring::load(&[f]).unwrap();
        assert_eq!(ring.held()[0].recipient, public);
        let group = group_with(&identity);
        let sealed = seal(&group, &binding(), &Plaintext::text("Ana")).unwrap();
        assert_eq!(
            open(&ring, &group, &binding(), &sealed).unwrap(),
            Plaintext::text("Ana")
        );
    }
}
