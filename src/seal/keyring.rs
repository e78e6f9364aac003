//! Age identities held by this node, and making new ones.
//!
//! Owns: loading identity files (the text format `age-keygen` writes),
//! deciding which seal groups this node can open, and `puente keygen`.
//! Must not: ever put key material into an error, a log line or Debug output.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::Group;
use crate::fsutil;

/// One identity and where it came from.
pub struct HeldIdentity {
    pub file: PathBuf,
    pub identity: age::x25519::Identity,
    /// Its public recipient (`age1…`).
    pub recipient: String,
}

/// The identities this node holds (none on nodes that may not read sealed
/// values).
#[derive(Default)]
pub struct Keyring {
    held: Vec<HeldIdentity>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.held.iter().map(|h| (&h.file, &h.recipient)))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read identity file {}: {source}; check the path in [privacy] identities and its permissions", file.display())]
    Unreadable { file: PathBuf, source: io::Error },
    #[error("{}:{line}: not an age X25519 identity (expected a line starting with AGE-SECRET-KEY-1, as `age-keygen` or `puente keygen` write)", file.display())]
    NotAnIdentity { file: PathBuf, line: usize },
    #[error("{}: the file holds no identity; point [privacy] identities at a file made by `puente keygen` or `age-keygen`", file.display())]
    Empty { file: PathBuf },
    #[error("{} already exists; refusing to overwrite a key (move it away first if you really mean to replace it)", file.display())]
    Exists { file: PathBuf },
    #[error("cannot write {}: {source}", file.display())]
    Write { file: PathBuf, source: io::Error },
}

impl Keyring {
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    /// Loads identity files; returns the keyring and warnings for the admin
    /// (a file readable by other users).
    pub fn load(files: &[PathBuf]) -> Result<(Keyring, Vec<String>), KeyError> {
        let mut held = Vec::new();
        let mut warnings = Vec::new();
        for file in files {
            let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|source| {
                KeyError::Unreadable {
                    file: file.clone(),
                    source,
                }
            })?);
            if let Ok(mode) = fsutil::mode_of(file)
                && mode & 0o077 != 0
            {
                warnings.push(format!(
                    "identity file {} is readable by other users (mode {mode:04o}); run `chmod 600 {}`",
                    file.display(),
                    file.display()
                ));
            }
            let before = held.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let identity =
                    age::x25519::Identity::from_str(line).map_err(|_| KeyError::NotAnIdentity {
                        file: file.clone(),
                        line: n + 1,
                    })?;
                let recipient = identity.to_public().to_string();
                held.push(HeldIdentity {
                    file: file.clone(),
                    identity,
                    recipient,
                });
            }
            if held.len() == before {
                return Err(KeyError::Empty { file: file.clone() });
            }
        }
        Ok((Keyring { held }, warnings))
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn held(&self) -> &[HeldIdentity] {
        &self.held
    }

    /// Whether one of this node's identities is a recipient of `group`.
    pub fn can_unseal(&self, group: &Group) -> bool {
        self.held
            .iter()
            .any(|h| group.recipient_keys.iter().any(|k| k == &h.recipient))
    }

    pub(crate) fn identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.held.iter().map(|h| &h.identity as &dyn age::Identity)
    }

    /// Warnings for identities that are no recipient of any group.
    pub fn unused_warnings<'a>(
        &self,
        groups: impl Iterator<Item = &'a Group> + Clone,
    ) -> Vec<String> {
        self.held
            .iter()
            .filter(|h| !groups.clone().any(|g| g.recipient_keys.contains(&h.recipient)))
            .map(|h| {
                format!(
                    "the identity in {} (recipient {}) is not a recipient of any group in the schema; add it to a group or it will never open anything",
                    h.file.display(),
                    h.recipient
                )
            })
            .collect()
    }
}

/// Writes a new X25519 identity in the standard text format (the one
/// `age-keygen` writes) with mode 0600, refusing to overwrite. Returns the
/// recipient.
pub fn generate_identity_file(out: &Path, now: jiff::Timestamp) -> Result<String, KeyError> {
    if out.exists() {
        return Err(KeyError::Exists {
            file: out.to_path_buf(),
        });
    }
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        secret.expose_secret()
    ));
    fsutil::create_new_with_mode(out, text.as_bytes(), 0o600).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                file: out.to_path_buf(),
            }
        } else {
            KeyError::Write {
                file: out.to_path_buf(),
                source,
            }
        }
    })?;
    Ok(recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_load_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mx.key");
        let recipient = generate_identity_file(&file, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert!(recipient.starts_with("age1"));
        assert_eq!(fsutil::mode_of(&file).unwrap(), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# created: 1970-01-01T00:00:00Z\n# public key: age1"));
        let (ring, warnings) = Keyring::load(std::slice::from_ref(&file)).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(ring.held()[0].recipient, recipient);
        assert!(matches!(
            generate_identity_file(&file, jiff::Timestamp::UNIX_EPOCH),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn bad_identity_files_are_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let e = Keyring::load(&[missing]).unwrap_err().to_string();
        assert!(e.contains("missing.key"), "{e}");

        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "# comment\nAGE-SECRET-KEY-1NOTREALLYAKEYATALL\n").unwrap();
        let e = Keyring::load(&[bad]).unwrap_err().to_string();
        assert!(e.contains("bad.key:2") && !e.contains("NOTREALLY"), "{e}");

        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, "# nothing here\n").unwrap();
        assert!(matches!(
            Keyring::load(&[empty]),
            Err(KeyError::Empty { .. })
        ));

        let open = dir.path().join("open.key");
        generate_identity_file(&open, jiff::Timestamp::UNIX_EPOCH).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warnings) = Keyring::load(&[open]).unwrap();
        assert!(warnings[0].contains("chmod 600"), "{warnings:?}");
    }
}
