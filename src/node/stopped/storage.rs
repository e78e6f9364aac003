//! `puente storage encrypt` and `puente storage rekey`: putting a stopped
//! node's replica under a new key, so that a crash at any point leaves the
//! old replica or the new one.
//!
//! Owns: the steps on disk — copy the replica to DATA/puente.db.new under
//! the new key (`sqlcipher_export`), check the copy against the original
//! (site id, head, digest, integrity), give it the original's owner and
//! mode, sync it, keep the original's name as DATA/puente.db.old (a hard
//! link), rename the copy over puente.db, overwrite and remove the old
//! file — and resuming from whatever an interrupted run left. Also the key
//! files: encrypt writes keys/replica.key before anything else and names
//! it in the config last; rekey writes the new key beside the old
//! (replica.key.new) and moves it into place only after the swap.
//! Must not: run while a daemon holds the data dir (it takes the same
//! lock), or put a key into a message.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{SystemClock, WallClock};
use crate::config::node::{KeySource, set_key_file};
use crate::config::{ConfigError, NodeConfig, Schema};
use crate::fsutil;
use crate::node::lock::{self, LockError};
use crate::node::replica_key::{self, DEFAULT_KEY_FILE, ReplicaKeyError};
use crate::seal::Keyring;
use crate::store::cipher::{self, FileKind, companions};
use crate::store::{AtRest, ReplicaKey, Store, StoreError};

/// The steps of a conversion, in order. A test can stop a run right
/// after one (as if the process died there) and run it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The new key is on disk (encrypt: keys/replica.key; rekey: .new).
    KeyWritten,
    /// puente.db.new holds the checked, synced copy under the new key.
    Exported,
    /// puente.db.old is a second name of the original.
    Linked,
    /// puente.db is the new file.
    Swapped,
    /// The original was overwritten and removed. What is left: encrypt
    /// names the key file in the config; rekey moves the new key over the
    /// old one.
    Wiped,
}

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Return right after this step, leaving everything as a crash there
    /// would (tests of interrupted runs).
    pub stop_after: Option<Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Key(#[from] ReplicaKeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("the copy {} does not match the replica ({what}); nothing was replaced: remove the copy and run the command again", path.display())]
    Mismatch { path: PathBuf, what: &'static str },
    #[error("{} exists beside a replica it is not a copy of; move it away (it may be an older replica) and run the command again", path.display())]
    Leftover { path: PathBuf },
    #[error("the replica is not encrypted yet: run `puente storage encrypt` first")]
    NotEncrypted,
    #[error(
        "`puente storage rekey` changes a key file, and this node takes its key from {source_name}: put the current key in a file (systemd-creds decrypt), set [storage] key_file, rekey, then make the credential again from the new key file (README: the replica key as a systemd credential)"
    )]
    RekeyCredential { source_name: String },
}

/// Stopped after the step a test asked for.
type Stop = std::ops::ControlFlow<()>;

/// One run: its paths, what it did, and where a test wants it to stop.
struct Run {
    db: PathBuf,
    new: PathBuf,
    old: PathBuf,
    schema: Arc<Schema>,
    stop_after: Option<Step>,
    notes: Vec<String>,
}

impl Run {
    fn new(config: &NodeConfig, options: &Options) -> Result<Run, StorageError> {
        let db = config.database_path();
        let with = |suffix: &str| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        Ok(Run {
            new: with(".new"),
            old: with(".old"),
            db,
            schema: Arc::new(Schema::load(&config.schema_file)?),
            stop_after: options.stop_after,
            notes: Vec::new(),
        })
    }

    fn step(&self, step: Step) -> Stop {
        if self.stop_after == Some(step) {
            Stop::Break(())
        } else {
            Stop::Continue(())
        }
    }

    fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io {
            path,
            action,
            source,
        }
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        let dir = self.db.parent().unwrap_or(Path::new("."));
        fsutil::sync_dir(dir).map_err(Run::io(dir, "syncing the folder"))
    }

    /// A run that died after `Linked` left puente.db.old as a second name
    /// of the (unchanged) replica: drop that name, never its content.
    /// Returns whether puente.db.old is a separate file: the original a
    /// run that died after `Swapped` left to be wiped.
    fn old_is_separate(&self) -> Result<bool, StorageError> {
        let Ok(old) = std::fs::metadata(&self.old) else {
            return Ok(false);
        };
        match std::fs::metadata(&self.db) {
            Ok(db) if (db.dev(), db.ino()) == (old.dev(), old.ino()) => {
                std::fs::remove_file(&self.old)
                    .map_err(Run::io(&self.old, "removing a second name"))?;
                self.sync_dir()?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn open(&self, path: &Path, at_rest: &AtRest) -> Result<Store, StorageError> {
        Ok(Store::open(
            path,
            crate::store::StoreOptions::new(
                self.schema.clone(),
                Arc::new(Keyring::empty()),
                Arc::new(SystemClock) as Arc<dyn WallClock>,
            )
            .at_rest(at_rest),
        )?)
    }

    /// Copies the replica from `from` to `to` (a new file), checks the
    /// copy, swaps it in and wipes the original.
    fn convert(&mut self, from: &AtRest, to: &AtRest) -> Result<Stop, StorageError> {
        let AtRest::Encrypted { key, .. } = to else {
            return Err(StorageError::NotEncrypted);
        };
        for p in companions(&self.new) {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Run::io(&p, "removing an unfinished copy")(e));
                }
                _ => {}
            }
        }
        let original = self.open(&self.db, from)?;
        let before = (original.site_id(), original.head(), original.digest());
        drop(original);
        cipher::export(&self.db, from, &self.new, key)?;
        let copy = self.open(&self.new, to)?;
        let after = (copy.site_id(), copy.head(), copy.digest());
        if copy.integrity_check()? != "ok" {
            return Err(self.mismatch("SQLite's integrity check"));
        }
        if after != before {
            return Err(self.mismatch("site id, head or digest"));
        }
        copy.checkpoint()?;
        drop(copy);
        let [_, wal, shm, journal] = companions(&self.new);
        for p in [wal, journal] {
            if std::fs::metadata(&p).is_ok_and(|m| m.len() > 0) {
                return Err(self.mismatch("its WAL was not folded in"));
            }
            let _ = std::fs::remove_file(&p);
        }
        let _ = std::fs::remove_file(&shm);
        let meta = std::fs::metadata(&self.db).map_err(Run::io(&self.db, "reading"))?;
        let file = std::fs::File::open(&self.new).map_err(Run::io(&self.new, "opening"))?;
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .map_err(Run::io(&self.new, "giving it the replica's owner"))?;
        file.set_permissions(meta.permissions())
            .map_err(Run::io(&self.new, "giving it the replica's mode"))?;
        file.sync_all().map_err(Run::io(&self.new, "syncing"))?;
        self.sync_dir()?;
        if self.step(Step::Exported).is_break() {
            return Ok(Stop::Break(()));
        }
        // The original's WAL was folded in by the export and removed when
        // its last connection closed; a stale one must not meet the new
        // file.
        let [_, wal, shm, journal] = companions(&self.db);
        for p in [wal, journal] {
            if std::fs::metadata(&p).is_ok_and(|m| m.len() > 0) {
                return Err(StorageError::Leftover { path: p });
            }
            let _ = std::fs::remove_file(&p);
        }
        // Shared memory holds no data; SQLite rebuilds it.
        let _ = std::fs::remove_file(&shm);
        std::fs::hard_link(&self.db, &self.old).map_err(Run::io(&self.old, "linking"))?;
        self.sync_dir()?;
        if self.step(Step::Linked).is_break() {
            return Ok(Stop::Break(()));
        }
        std::fs::rename(&self.new, &self.db).map_err(Run::io(&self.db, "renaming the copy"))?;
        self.sync_dir()?;
        self.notes.push(format!(
            "{} now holds the replica under the new key (same site id, head and digest)",
            self.db.display()
        ));
        if self.step(Step::Swapped).is_break() {
            return Ok(Stop::Break(()));
        }
        self.wipe_old()
    }

    fn mismatch(&self, what: &'static str) -> StorageError {
        StorageError::Mismatch {
            path: self.new.clone(),
            what,
        }
    }

    /// Overwrites and removes the original left as puente.db.old.
    fn wipe_old(&mut self) -> Result<Stop, StorageError> {
        if self.old.exists() {
            fsutil::overwrite_and_remove(&self.old)
                .map_err(Run::io(&self.old, "overwriting and removing"))?;
            self.notes.push(format!(
                "overwrote and removed the old file ({}); on SSDs and copy-on-write file systems old blocks may survive",
                self.old.display()
            ));
        }
        Ok(self.step(Step::Wiped))
    }
}

/// Copies of the replica that format migrations left in the data dir
/// (puente.db.format-N.bak).
fn migration_copies(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut copies: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("puente.db.format-") && n.ends_with(".bak")
            })
        })
        .collect();
    copies.sort();
    copies
}

/// Encrypts a stopped node's plain replica with a new key in
/// keys/replica.key (or the key the config already names), then names the
/// key in the config. Run again after a crash, it finishes the work.
/// Returns what it did, for people.
pub fn encrypt(config_file: &Path, options: &Options) -> Result<Vec<String>, StorageError> {
    let config = NodeConfig::load(config_file)?;
    let _lock = lock::lock(&config.data_dir)?;
    let mut run = Run::new(&config, options)?;
    let old_separate = run.old_is_separate()?;
    let (key, source, to_configure) = match &config.replica_key {
        Some(source) => (replica_key::load(source)?, source.clone(), false),
        None => {
            let dir = config.file.parent().unwrap_or(Path::new("."));
            let file = dir.join(DEFAULT_KEY_FILE);
            let key = if file.exists() {
                // An earlier run made it and stopped before naming it.
                replica_key::load_file(&file)?
            } else {
                let key = ReplicaKey::generate();
                let keys_dir = file.parent().unwrap_or(dir);
                let made_dir = !keys_dir.exists();
                replica_key::write_new(&file, &key)?;
                // The daemon's user (who owns the replica) must read it.
                if made_dir {
                    give_owner_of(keys_dir, &run.db)?;
                }
                give_owner_of(&file, &run.db)?;
                run.notes.push(format!(
                    "wrote a new replica key to {} (mode 0600); keep a copy offline: without it the replica cannot be opened",
                    file.display()
                ));
                key
            };
            (key, KeySource::File(file), true)
        }
    };
    if run.step(Step::KeyWritten).is_break() {
        return Ok(run.notes);
    }
    let target = AtRest::Encrypted {
        key,
        source: source.to_string(),
    };
    let kind = cipher::file_kind(&run.db).map_err(Run::io(&run.db, "reading"))?;
    match kind {
        FileKind::PlainSqlite if old_separate => {
            return Err(StorageError::Leftover { path: run.old });
        }
        FileKind::PlainSqlite => {
            if run.convert(&AtRest::Plain, &target)?.is_break() {
                return Ok(run.notes);
            }
        }
        FileKind::Missing => run.notes.push(format!(
            "there is no replica in {} yet; the daemon will create it encrypted",
            config.data_dir.display()
        )),
        FileKind::Opaque => {
            cipher::probe(&run.db, &target)?;
            if old_separate {
                if run.wipe_old()?.is_break() {
                    return Ok(run.notes);
                }
            } else {
                run.notes
                    .push("the replica is already encrypted with this key".to_string());
            }
        }
    }
    // A format migration kept a copy of the replica as it was: plain, it
    // would tell a reader what the encrypted replica hides.
    for copy in migration_copies(&config.data_dir) {
        if cipher::file_kind(&copy).is_ok_and(|k| k == FileKind::PlainSqlite) {
            fsutil::overwrite_and_remove(&copy)
                .map_err(Run::io(&copy, "overwriting and removing"))?;
            run.notes.push(format!(
                "overwrote and removed {}, the plain copy a format migration kept",
                copy.display()
            ));
        }
    }
    if to_configure {
        set_key_file(config_file, DEFAULT_KEY_FILE)?;
        run.notes.push(format!(
            "{} now names the key: [storage] key_file = \"{DEFAULT_KEY_FILE}\"",
            config_file.display()
        ));
    }
    Ok(run.notes)
}

/// Puts a stopped node's encrypted replica under a new random key and
/// writes that key over the key file, keeping the old key until the
/// replica no longer needs it. Run again after a crash, it finishes.
pub fn rekey(config_file: &Path, options: &Options) -> Result<Vec<String>, StorageError> {
    let config = NodeConfig::load(config_file)?;
    let key_file = match &config.replica_key {
        Some(KeySource::File(f)) => f.clone(),
        Some(other) => {
            return Err(StorageError::RekeyCredential {
                source_name: other.to_string(),
            });
        }
        None => return Err(StorageError::NotEncrypted),
    };
    let _lock = lock::lock(&config.data_dir)?;
    let mut run = Run::new(&config, options)?;
    let old_separate = run.old_is_separate()?;
    let next_file = {
        let mut p = key_file.as_os_str().to_owned();
        p.push(".new");
        PathBuf::from(p)
    };
    let next_source = KeySource::File(next_file.clone()).to_string();
    let at = |key: &ReplicaKey, source: &str| AtRest::Encrypted {
        key: key.clone(),
        source: source.to_string(),
    };
    let written = if next_file.exists() {
        Some(replica_key::load_file(&next_file)?)
    } else {
        None
    };
    // A run that died after the swap: the replica already opens with the
    // new key.
    let swapped = written
        .as_ref()
        .is_some_and(|k| cipher::probe(&run.db, &at(k, &next_source)).is_ok());
    let next = match written {
        Some(next) if swapped => {
            if run.wipe_old()?.is_break() {
                return Ok(run.notes);
            }
            next
        }
        _ => {
            if old_separate {
                return Err(StorageError::Leftover { path: run.old });
            }
            let current = at(
                &replica_key::load_file(&key_file)?,
                &KeySource::File(key_file.clone()).to_string(),
            );
            cipher::probe(&run.db, &current)?;
            let next = match written {
                Some(next) => next,
                None => {
                    let next = ReplicaKey::generate();
                    replica_key::write_new(&next_file, &next)?;
                    give_owner_of(&next_file, &key_file)?;
                    next
                }
            };
            if run.step(Step::KeyWritten).is_break() {
                return Ok(run.notes);
            }
            if run.convert(&current, &at(&next, &next_source))?.is_break() {
                return Ok(run.notes);
            }
            next
        }
    };
    drop(next);
    // The replica needs the new key now; the old one goes.
    fsutil::overwrite_in_place(&key_file).map_err(Run::io(&key_file, "overwriting the old key"))?;
    std::fs::rename(&next_file, &key_file).map_err(Run::io(&key_file, "renaming the new key"))?;
    run.sync_dir_of(&key_file)?;
    run.notes.push(format!(
        "{} holds the new key (the old one was overwritten); keep a copy of the new key offline",
        key_file.display()
    ));
    Ok(run.notes)
}

impl Run {
    fn sync_dir_of(&self, file: &Path) -> Result<(), StorageError> {
        let dir = file.parent().unwrap_or(Path::new("."));
        fsutil::sync_dir(dir).map_err(Run::io(dir, "syncing the folder"))
    }
}

/// Gives `file` the owner and group of `like` (when `like` exists), so the
/// daemon's user can read a key written by root.
fn give_owner_of(file: &Path, like: &Path) -> Result<(), StorageError> {
    let Ok(meta) = std::fs::metadata(like) else {
        return Ok(());
    };
    std::os::unix::fs::chown(file, Some(meta.uid()), Some(meta.gid()))
        .map_err(Run::io(file, "giving it the owner of the replica"))
}

/// Files an interrupted `puente storage` run left in the data dir or beside
/// the key file; the daemon warns about them.
pub fn leftovers(config: &NodeConfig) -> Vec<PathBuf> {
    let db = config.database_path();
    let mut found: Vec<PathBuf> = [".new", ".old"]
        .iter()
        .map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            PathBuf::from(p)
        })
        .collect();
    if let Some(KeySource::File(f)) = &config.replica_key {
        let mut p = f.as_os_str().to_owned();
        p.push(".new");
        found.push(PathBuf::from(p));
    }
    found.retain(|p| p.exists());
    found
}
