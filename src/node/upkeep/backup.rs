//! Backups of a replica, and the file they are written to.
//!
//! Owns: making a backup (a consistent snapshot of the running replica,
//! `store::backup`, into a private work folder in the data dir), what a
//! backup holds (`BackupInfo`: office, site id, head, digest, rows, time),
//! the offsite form (`--to age1…`: an age file to those recipients holding
//! the container below), unwrapping it again, telling the kinds of backup
//! file apart, and writing a backup out atomically (temp, fsync, rename)
//! and pruning old ones.
//! Must not: restore (node/restore.rs does) or put a key into an error.
//!
//! The offsite container (the plaintext inside the age file), in order:
//! ```text
//! puente-backup 1\n          magic and container version
//! key HEX\n | key none\n     the replica key (64 hex digits), or none
//!                            for an unencrypted replica
//! db LENGTH\n                bytes of the database that follow
//! \n
//! DATABASE                   the snapshot exactly as taken (still
//!                            SQLCipher-encrypted with that key)
//! ```
//! With the key inside, a machine that never held the replica key restores
//! it; only the age identity of one of the recipients opens the file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Schema;
use crate::fsutil;
use crate::seal::{AGE_MAGIC, Keyring};
use crate::store::backup::{BackupStamp, copy, open_snapshot};
use crate::store::cipher::{self, FileKind};
use crate::store::{AtRest, ReplicaKey, Store, StoreError};

/// The first line of the offsite container.
pub const CONTAINER_MAGIC: &[u8] = b"puente-backup 1\n";
/// The work folder inside the data dir (emptied when the daemon starts).
pub const WORK_DIR: &str = "backup.tmp";

/// What a backup holds, as `puente backup` and `backup verify` print it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupInfo {
    /// The office it was taken at.
    pub node: String,
    /// The replica's site id when it was taken.
    pub site_id: String,
    pub head: u64,
    pub digest: String,
    pub rows: BTreeMap<String, u64>,
    pub tombstones: u64,
    pub sealed_cells: u64,
    /// When it was taken (Unix ms).
    pub taken_ms: u64,
    /// The database inside is SQLCipher-encrypted (with the replica key).
    pub encrypted: bool,
    /// The file is an age file to offsite recipients.
    pub wrapped: bool,
    /// Bytes of the backup file.
    pub bytes: u64,
}

/// What a backup file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// A plain SQLite file (a backup of an unencrypted replica).
    Plain,
    /// An age file (`--to`): the container above.
    Age,
    /// Anything else: a SQLCipher file (or not a backup at all).
    Opaque,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "`{0}` is not an age X25519 recipient; give the `age1…` line that `puente keygen` or `age-keygen -y` prints for the offsite key"
    )]
    Recipient(String),
    #[error("{}: {reason}; the file is not a complete puente backup (truncated or damaged): use another copy", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{} is an age-encrypted backup to keys this node lacks; give the identity of one of its recipients with --identity FILE", path.display())]
    NoMatchingIdentity { path: PathBuf },
    #[error("{} is an age-encrypted backup; give the identity of one of its recipients with --identity FILE (the offsite key)", path.display())]
    IdentityNeeded { path: PathBuf },
    #[error("{} exists already; a backup never overwrites a file: choose a new name or move the old one away", path.display())]
    Exists { path: PathBuf },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        path,
        action,
        source,
    }
}

/// Parses offsite recipients (`age1…`).
pub fn parse_recipients(to: &[String]) -> Result<Vec<age::x25519::Recipient>, BackupError> {
    to.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim())
                .map_err(|_| BackupError::Recipient(r.clone()))
        })
        .collect()
}

/// Reads the first bytes of `path` to tell the kinds apart.
pub fn kind_of(path: &Path) -> Result<BackupKind, BackupError> {
    let mut head = [0u8; 22];
    let mut f = File::open(path).map_err(io_err(path, "opening"))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io_err(path, "reading"))? {
            0 => break,
            k => n += k,
        }
    }
    if n == head.len() && head == AGE_MAGIC {
        return Ok(BackupKind::Age);
    }
    Ok(
        match cipher::file_kind(path).map_err(io_err(path, "reading"))? {
            FileKind::PlainSqlite => BackupKind::Plain,
            FileKind::Missing => {
                return Err(BackupError::Damaged {
                    path: path.to_path_buf(),
                    reason: "the file is empty".into(),
                });
            }
            FileKind::Opaque => BackupKind::Opaque,
        },
    )
}

/// Makes a private folder (mode 0700) if it does not exist.
pub fn private_dir(dir: &Path) -> Result<(), BackupError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(dir, "creating a work folder")(e)),
    }
}

/// A fresh name in `dir`.
pub fn fresh_name(dir: &Path, stem: &str) -> PathBuf {
    let mut r = [0u8; 6];
    rand::fill(&mut r);
    let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{stem}-{}-{tag}", std::process::id()))
}

/// Removes a work file: overwritten first when it may hold plaintext.
pub fn remove_work_file(path: &Path, plain: bool) {
    let _ = if plain {
        fsutil::overwrite_and_remove(path)
    } else {
        fs::remove_file(path)
    };
}

/// Empties the data dir's work folder (files a crashed backup left).
pub fn clear_work_dir(data_dir: &Path) {
    let dir = data_dir.join(WORK_DIR);
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            remove_work_file(&e.path(), true);
        }
    }
}

/// Reads head, digest and counts of a backup's database (`at_rest` says
/// how it is stored).
pub fn describe(
    db: &Path,
    at_rest: &AtRest,
    schema: Arc<Schema>,
) -> Result<(BackupInfo, Store), BackupError> {
    let store = open_snapshot(db, at_rest, schema)?;
    let stats = store.stats()?;
    let stamp = store.backup_stamp()?;
    let info = BackupInfo {
        node: stamp.as_ref().map(|s| s.node.clone()).unwrap_or_default(),
        site_id: store.site_id().to_string(),
        head: store.head(),
        digest: store.digest().to_string(),
        rows: stats.rows.into_iter().collect(),
        tombstones: stats.tombstones,
        sealed_cells: stats.sealed_cells,
        taken_ms: stamp.map_or(0, |s| s.at_ms),
        encrypted: at_rest.is_encrypted(),
        wrapped: false,
        bytes: fs::metadata(db).map(|m| m.len()).unwrap_or(0),
    };
    Ok((info, store))
}

/// A backup made in a work folder, ready to be sent or moved.
#[derive(Debug)]
pub struct Made {
    pub file: PathBuf,
    pub info: BackupInfo,
    /// The file may hold plaintext (an unencrypted replica, not wrapped).
    pub plain: bool,
}

/// Takes a consistent snapshot of the replica at `db` (stored as
/// `at_rest`) into `work` and, with recipients, wraps it for them. Needs no
/// lock on the replica: writers go on meanwhile.
pub fn make(
    db: &Path,
    at_rest: &AtRest,
    schema: Arc<Schema>,
    node: &str,
    work: &Path,
    to: &[age::x25519::Recipient],
    now_ms: u64,
) -> Result<Made, BackupError> {
    private_dir(work)?;
    let snapshot = fresh_name(work, "snapshot");
    let stamp = BackupStamp {
        node: node.to_string(),
        at_ms: now_ms,
    };
    let plain = !at_rest.is_encrypted();
    let made = (|| {
        copy(db, at_rest, &snapshot, &stamp)?;
        let (mut info, store) = describe(&snapshot, at_rest, schema)?;
        drop(store);
        if to.is_empty() {
            return Ok(Made {
                file: snapshot.clone(),
                info,
                plain,
            });
        }
        let wrapped = fresh_name(work, "offsite");
        let key = match at_rest {
            AtRest::Encrypted { key, .. } => Some(key),
            AtRest::Plain => None,
        };
        if let Err(e) = wrap(&snapshot, key, to, &wrapped) {
            remove_work_file(&wrapped, false);
            return Err(e);
        }
        remove_work_file(&snapshot, plain);
        info.wrapped = true;
        info.bytes = fs::metadata(&wrapped).map(|m| m.len()).unwrap_or(0);
        Ok(Made {
            file: wrapped,
            info,
            plain: false,
        })
    })();
    if made.is_err() {
        remove_work_file(&snapshot, plain);
    }
    made
}

/// Writes the offsite form of `db` to `out` (a new file): an age file to
/// `to` holding the container (module docs).
pub fn wrap(
    db: &Path,
    key: Option<&ReplicaKey>,
    to: &[age::x25519::Recipient],
    out: &Path,
) -> Result<(), BackupError> {
    let len = fs::metadata(db).map_err(io_err(db, "reading"))?.len();
    let mut header = Zeroizing::new(Vec::with_capacity(128));
    header.extend_from_slice(CONTAINER_MAGIC);
    match key {
        Some(k) => {
            header.extend_from_slice(b"key ");
            header.extend_from_slice(k.to_hex().as_bytes());
            header.push(b'\n');
        }
        None => header.extend_from_slice(b"key none\n"),
    }
    header.extend_from_slice(format!("db {len}\n\n").as_bytes());
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io_err(out, "creating"))?;
    let encryptor = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| BackupError::Io {
            path: out.to_path_buf(),
            action: "encrypting to the recipients",
            source: io::Error::other(e.to_string()),
        })?;
    let mut writer = encryptor
        .wrap_output(BufWriter::new(file))
        .map_err(io_err(out, "encrypting"))?;
    writer.write_all(&header).map_err(io_err(out, "writing"))?;
    let mut source = File::open(db).map_err(io_err(db, "reading"))?;
    let copied = io::copy(&mut source, &mut writer).map_err(io_err(out, "writing"))?;
    if copied != len {
        return Err(BackupError::Io {
            path: db.to_path_buf(),
            action: "reading",
            source: io::Error::other("the snapshot changed size while it was wrapped"),
        });
    }
    let mut inner = writer.finish().map_err(io_err(out, "finishing"))?;
    inner.flush().map_err(io_err(out, "writing"))?;
    inner
        .into_inner()
        .map_err(|e| io_err(out, "writing")(e.into_error()))?
        .sync_all()
        .map_err(io_err(out, "syncing"))
}

/// Opens an offsite backup with `identities` and writes the database it
/// holds to `out` (a new file, mode 0600); returns the replica key it
/// carries (None for an unencrypted replica).
pub fn unwrap(
    file: &Path,
    identities: &Keyring,
    out: &Path,
) -> Result<Option<ReplicaKey>, BackupError> {
    if identities.is_empty() {
        return Err(BackupError::IdentityNeeded {
            path: file.to_path_buf(),
        });
    }
    let damaged = |reason: String| BackupError::Damaged {
        path: file.to_path_buf(),
        reason,
    };
    let input = BufReader::new(File::open(file).map_err(io_err(file, "opening"))?);
    let decryptor =
        age::Decryptor::new_buffered(input).map_err(|e| damaged(format!("its age header: {e}")))?;
    let reader = decryptor
        .decrypt(identities.identities())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::NoMatchingIdentity {
                path: file.to_path_buf(),
            },
            other => damaged(other.to_string()),
        })?;
    let mut reader = BufReader::new(reader);
    let mut line = Zeroizing::new(Vec::with_capacity(96));
    let mut next_line = |line: &mut Vec<u8>| -> Result<(), BackupError> {
        line.clear();
        (&mut reader)
            .take(96)
            .read_until(b'\n', line)
            .map_err(|e| damaged(e.to_string()))?;
        if line.pop() != Some(b'\n') {
            return Err(damaged("its container header is cut short".into()));
        }
        Ok(())
    };
    next_line(&mut line)?;
    if [line.as_slice(), b"\n"].concat() != CONTAINER_MAGIC {
        return Err(damaged(
            "the age file opens but holds no puente backup container".into(),
        ));
    }
    next_line(&mut line)?;
    let key = match line.strip_prefix(b"key ") {
        Some(b"none") => None,
        Some(hex) => Some(
            std::str::from_utf8(hex)
                .ok()
                .and_then(ReplicaKey::from_hex)
                .ok_or_else(|| damaged("its replica key is malformed".into()))?,
        ),
        None => return Err(damaged("its container has no key line".into())),
    };
    next_line(&mut line)?;
    let len: u64 = line
        .strip_prefix(b"db ")
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| damaged("its container has no database length".into()))?;
    next_line(&mut line)?;
    if !line.is_empty() {
        return Err(damaged("its container header does not end".into()));
    }
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io_err(out, "creating"))?;
    let copied =
        io::copy(&mut (&mut reader).take(len), &mut target).map_err(|e| damaged(e.to_string()))?;
    if copied != len {
        return Err(damaged(format!(
            "its database is cut short ({copied} of {len} bytes)"
        )));
    }
    let mut rest = [0u8; 1];
    if reader.read(&mut rest).map_err(|e| damaged(e.to_string()))? != 0 {
        return Err(damaged("bytes follow its database".into()));
    }
    target.sync_all().map_err(io_err(out, "syncing"))?;
    Ok(key)
}

/// Writes a backup to `dest` atomically: `fill` writes the bytes into a
/// temporary file beside it (mode 0600), which is synced and renamed to
/// `dest`, and the folder synced. Refuses an existing `dest`.
pub fn write_out<T>(
    dest: &Path,
    fill: impl FnOnce(&mut File) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    if dest.exists() {
        return Err(BackupError::Exists {
            path: dest.to_path_buf(),
        });
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = fresh_name(dir, &format!(".{name}.part"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp, "creating"))?;
        let value = fill(&mut file)?;
        file.sync_all().map_err(io_err(&tmp, "syncing"))?;
        drop(file);
        if dest.exists() {
            return Err(BackupError::Exists {
                path: dest.to_path_buf(),
            });
        }
        fs::rename(&tmp, dest).map_err(io_err(dest, "renaming the finished backup"))?;
        fsutil::sync_dir(dir).map_err(io_err(dir, "syncing the folder"))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The file name of a timed backup: `puente-NODE-YYYYMMDDTHHMMSSZ.backup`
/// (`.backup.age` when wrapped), sorting by time.
pub fn timed_name(node: &str, at: jiff::Timestamp, wrapped: bool) -> String {
    format!(
        "puente-{node}-{}.backup{}",
        at.strftime("%Y%m%dT%H%M%SZ"),
        if wrapped { ".age" } else { "" }
    )
}

/// Keeps the `keep` newest timed backups of `node` in `dir` and removes
/// older ones; returns the removed files. Other files are never touched.
pub fn prune(dir: &Path, node: &str, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let prefix = format!("puente-{node}-");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir, "listing"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(&prefix).is_some_and(|rest| {
                    let stamp = rest.split('.').next().unwrap_or("");
                    stamp.len() == 16
                        && stamp.ends_with('Z')
                        && (rest.ends_with(".backup") || rest.ends_with(".backup.age"))
                })
            })
        })
        .collect();
    found.sort();
    let excess = found.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = found.into_iter().take(excess).collect();
    for p in &removed {
        fs::remove_file(p).map_err(io_err(p, "removing an old backup"))?;
    }
    if !removed.is_empty() {
        fsutil::sync_dir(dir).map_err(io_err(dir, "syncing the folder"))?;
    }
    Ok(removed)
}
