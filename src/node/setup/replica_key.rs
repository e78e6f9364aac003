//! The replica key on disk: key files and systemd credentials.
//!
//! Owns: reading the key `[storage]` names (a file of mode 0600, refused
//! if looser, or `$CREDENTIALS_DIRECTORY/NAME` that systemd fills from the
//! unit's `LoadCredentialEncrypted=`), writing a new key file, and turning
//! a node config into the `AtRest` the store opens the replica with.
//! Errors name the key's source, never the key.
//! Must not: open the replica, or put key bytes anywhere but in a
//! `ReplicaKey` or a wiped buffer.

use std::io;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::NodeConfig;
use crate::config::node::KeySource;
use crate::fsutil;
use crate::store::{AtRest, ReplicaKey};

/// Where `puente init` and `puente storage encrypt` put the key, relative
/// to the node config's folder.
pub const DEFAULT_KEY_FILE: &str = "keys/replica.key";

/// The variable systemd sets to the folder of a service's credentials.
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// What status, `puente check` and the daemon's log say of a node whose
/// replica is not encrypted.
pub const UNENCRYPTED_WARNING: &str = "the replica is NOT encrypted at rest: anyone who copies the data dir can read it; `puente storage encrypt` encrypts it";

#[derive(Debug, thiserror::Error)]
pub enum ReplicaKeyError {
    #[error("key file {} is missing; the replica cannot be opened without it: restore it from your offline copy (or fix [storage] key_file in the node config)", file.display())]
    Missing { file: PathBuf },
    #[error("cannot read key file {}: {source}; it is mode 0600 and readable only by its owner, so run this command as root (sudo) or as the user that owns it (the package's daemon runs as `puente`: sudo -u puente puente …); if it is the daemon that cannot read it, make the user the daemon runs as its owner (chown puente: {})", file.display(), file.display())]
    Unreadable { file: PathBuf, source: io::Error },
    #[error("key file {} is readable by other users (mode {mode:04o}); run `chmod 600 {}` — puente refuses a looser key file (the daemon's user owns it: `puente check --as-service` says how)", file.display(), file.display())]
    LoosePermissions { file: PathBuf, mode: u32 },
    #[error("key file {} does not hold a replica key (64 hex digits on one line, as `puente init` writes it)", file.display())]
    Malformed { file: PathBuf },
    #[error(
        "key credential `{name}`: ${CREDENTIALS_ENV} is not set; systemd sets it for a unit with LoadCredentialEncrypted={name}:… (outside systemd, use [storage] key_file)"
    )]
    NoCredentialsDirectory { name: String },
    #[error("key credential `{name}` is not in {}; check the unit's LoadCredentialEncrypted={name}:… line and that the encrypted credential file exists", dir.display())]
    CredentialMissing { name: String, dir: PathBuf },
    #[error("cannot read key credential `{name}` in {}: {source}", dir.display())]
    CredentialUnreadable {
        name: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error(
        "key credential `{name}` does not hold a replica key (64 hex digits); make it from a key file puente wrote: systemd-creds encrypt --name={name} KEYFILE /etc/credstore.encrypted/{name}"
    )]
    CredentialMalformed { name: String },
    #[error("{} already exists; refusing to overwrite a key (move it away first if you really mean to replace it)", file.display())]
    Exists { file: PathBuf },
    #[error("cannot write key file {}: {source}", file.display())]
    Write { file: PathBuf, source: io::Error },
}

/// How the node's replica is stored: plain when the config names no key.
pub fn at_rest(config: &NodeConfig) -> Result<AtRest, ReplicaKeyError> {
    match &config.replica_key {
        None => Ok(AtRest::Plain),
        Some(source) => Ok(AtRest::Encrypted {
            key: load(source)?,
            source: source.to_string(),
        }),
    }
}

/// Reads the key from its source.
pub fn load(source: &KeySource) -> Result<ReplicaKey, ReplicaKeyError> {
    match source {
        KeySource::File(file) => load_file(file),
        KeySource::Credential(name) => load_credential(name),
    }
}

/// Reads a key file, refusing one that group or others may read (an admin
/// in the daemon's group reads the config, never the key: `puente init`
/// run as root gives the key to the daemon's user, mode 0600).
pub fn load_file(file: &Path) -> Result<ReplicaKey, ReplicaKeyError> {
    let mode = match fsutil::mode_of(file) {
        Ok(mode) => mode,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ReplicaKeyError::Missing {
                file: file.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ReplicaKeyError::Unreadable {
                file: file.to_path_buf(),
                source,
            });
        }
    };
    if mode & 0o077 != 0 {
        return Err(ReplicaKeyError::LoosePermissions {
            file: file.to_path_buf(),
            mode,
        });
    }
    let text = read_wiped(file).map_err(|source| ReplicaKeyError::Unreadable {
        file: file.to_path_buf(),
        source,
    })?;
    ReplicaKey::from_hex(&text).ok_or_else(|| ReplicaKeyError::Malformed {
        file: file.to_path_buf(),
    })
}

/// Reads `$CREDENTIALS_DIRECTORY/NAME`. systemd makes that folder private
/// to the service (on a non-swappable file system); its modes are
/// systemd's, not checked here.
pub fn load_credential(name: &str) -> Result<ReplicaKey, ReplicaKeyError> {
    let dir = std::env::var_os(CREDENTIALS_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    load_credential_in(dir.as_deref(), name)
}

/// Reads credential `name` from `dir` (`None`: no credentials folder).
pub fn load_credential_in(dir: Option<&Path>, name: &str) -> Result<ReplicaKey, ReplicaKeyError> {
    let dir = dir.ok_or_else(|| ReplicaKeyError::NoCredentialsDirectory {
        name: name.to_string(),
    })?;
    let text = read_wiped(&dir.join(name)).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ReplicaKeyError::CredentialMissing {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        },
        _ => ReplicaKeyError::CredentialUnreadable {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            source,
        },
    })?;
    ReplicaKey::from_hex(&text).ok_or_else(|| ReplicaKeyError::CredentialMalformed {
        name: name.to_string(),
    })
}

/// Reads a small file into a buffer wiped on drop.
fn read_wiped(path: &Path) -> io::Result<Zeroizing<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    // A key file is 65 bytes; read at most a little more.
    let mut bytes = Zeroizing::new(Vec::with_capacity(128));
    f.by_ref().take(4096).read_to_end(&mut bytes)?;
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    Ok(Zeroizing::new(text.to_string()))
}

/// Writes `key` to a new file (mode 0600; its folder is made 0700 if
/// missing), synced to disk with its folder. Never overwrites.
pub fn write_new(file: &Path, key: &ReplicaKey) -> Result<(), ReplicaKeyError> {
    let write_err = |source| ReplicaKeyError::Write {
        file: file.to_path_buf(),
        source,
    };
    if file.exists() {
        return Err(ReplicaKeyError::Exists {
            file: file.to_path_buf(),
        });
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err)?;
    }
    let mut text = Zeroizing::new(String::with_capacity(65));
    text.push_str(&key.to_hex());
    text.push('\n');
    fsutil::create_new_with_mode(file, text.as_bytes(), 0o600).map_err(write_err)?;
    fsutil::sync_dir(dir).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_round_trips_and_looser_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/replica.key");
        let key = ReplicaKey::generate();
        write_new(&file, &key).unwrap();
        assert_eq!(fsutil::mode_of(&file).unwrap(), 0o600);
        assert_eq!(fsutil::mode_of(file.parent().unwrap()).unwrap(), 0o700);
        assert_eq!(load_file(&file).unwrap().to_hex(), key.to_hex());
        assert!(matches!(
            write_new(&file, &key),
            Err(ReplicaKeyError::Exists { .. })
        ));
        // Anything for the group or others is refused: group read too (an
        // admin in group `puente` must not read the key).
        for mode in [0o640, 0o660, 0o604, 0o644, 0o650] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_file(&file).unwrap_err();
            assert!(
                matches!(e, ReplicaKeyError::LoosePermissions { mode: m, .. } if m == mode),
                "{e}"
            );
            let text = e.to_string();
            assert!(text.contains("chmod 600") && !text.contains(&key.to_hex()[..16]));
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_file(&file).is_ok());
    }

    #[test]
    fn errors_name_the_source_and_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let e = load_file(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.key") && e.contains("missing"), "{e}");
        let bad = dir.path().join("bad.key");
        fsutil::create_new_with_mode(&bad, b"correct horse battery staple\n", 0o600).unwrap();
        let e = load_file(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.key") && !e.contains("horse"), "{e}");
    }

    #[test]
    fn a_credential_is_read_from_the_credentials_folder() {
        let dir = tempfile::tempdir().unwrap();
        let key = ReplicaKey::generate();
        let e = load_credential_in(None, "k").unwrap_err();
        assert!(matches!(e, ReplicaKeyError::NoCredentialsDirectory { .. }));
        let e = load_credential_in(Some(dir.path()), "k").unwrap_err();
        assert!(matches!(e, ReplicaKeyError::CredentialMissing { .. }));
        // systemd leaves the credential read-only for the service.
        let text = format!("{}\n", key.to_hex().as_str());
        fsutil::create_new_with_mode(&dir.path().join("k"), text.as_bytes(), 0o400).unwrap();
        assert_eq!(
            load_credential_in(Some(dir.path()), "k").unwrap().to_hex(),
            key.to_hex()
        );
        fsutil::create_new_with_mode(&dir.path().join("bad"), b"xyz", 0o400).unwrap();
        let e = load_credential_in(Some(dir.path()), "bad").unwrap_err();
        assert!(matches!(e, ReplicaKeyError::CredentialMalformed { .. }));
        for e in [
            ReplicaKeyError::NoCredentialsDirectory { name: "k".into() },
            ReplicaKeyError::CredentialMissing {
                name: "k".into(),
                dir: dir.path().into(),
            },
            e,
        ] {
            assert_eq!(e.to_string().lines().count(), 1);
            assert!(e.to_string().contains('`'), "{e}");
        }
    }
}
