//! Reading a backup back: `puente backup verify` and `puente restore`.
//!
//! Owns: opening a backup file of any kind (plain, SQLCipher with the
//! node's or a given key, age-wrapped with an identity) without writing to
//! it, checking it (SQLite's integrity check, the digest recomputed from
//! every cell against the one it stored, the schema's layout, the format),
//! and restoring it into a stopped node: a copy under this node's own key,
//! a new history (new site id, the backup's retired, peer cursors
//! forgotten: see `Store::begin_new_history`), synced, then swapped in,
//! moving an existing replica aside only when asked (`--force`).
//! Must not: run while a daemon holds the data dir (it takes the same
//! lock), or change anything before every check passed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigError, NodeConfig, Schema};
use crate::fsutil;
use crate::node::backup::{
    self, BackupError, BackupInfo, BackupKind, describe, fresh_name, private_dir, remove_work_file,
};
use crate::node::lock::{self, LockError};
use crate::node::replica_key::{self, ReplicaKeyError};
use crate::seal::{KeyError, Keyring};
use crate::stamp::SiteId;
use crate::store::cipher::{self, companions};
use crate::store::{Allow, AtRest, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] ReplicaKeyError),
    #[error(transparent)]
    Identity(#[from] KeyError),
    #[error("{}", match .0 {
        LockError::Held { dir } => format!("the daemon is running on data dir {}: a restore never goes into a running node; stop it first (systemctl stop puente) and run the restore again", dir.display()),
        other => other.to_string(),
    })]
    Lock(LockError),
    #[error("{}: {reason}", file.display())]
    Unusable { file: PathBuf, reason: String },
    #[error("{} holds a replica already (head {head}); a restore replaces it only with --force, which moves it aside to {}", db.display(), aside.display())]
    Occupied {
        db: PathBuf,
        head: u64,
        aside: PathBuf,
    },
    #[error("the restored copy does not match the backup ({what}); nothing was replaced")]
    Mismatch { what: &'static str },
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io {
        path,
        action,
        source,
    }
}

/// Where the keys to open a backup come from.
#[derive(Debug, Default, Clone)]
pub struct Keys {
    /// The replica key of the office the backup was taken at, when it is
    /// not this node's own (`--key-file`).
    pub key_file: Option<PathBuf>,
    /// Identities for an age-wrapped backup (`--identity`).
    pub identities: Vec<PathBuf>,
}

/// A backup's database ready to read, and how it is stored.
struct Opened {
    db: PathBuf,
    at_rest: AtRest,
    /// A work copy to remove afterwards.
    temporary: bool,
}

impl Opened {
    fn discard(&self) {
        if self.temporary {
            remove_work_file(&self.db, !self.at_rest.is_encrypted());
        }
    }
}

/// Says in one sentence why a backup cannot be used.
fn unusable(file: &Path, e: StoreError) -> RestoreError {
    let reason = match e {
        StoreError::WrongKey { source_name, .. } => format!(
            "does not open with the {source_name}: it is not a puente backup, or a backup of another office (give that office's replica key with --key-file)"
        ),
        StoreError::NotSqlite { .. } => "is neither a SQLite database nor an age file, and no replica key was given to try: it is not a puente backup, or an encrypted one (give its replica key with --key-file)".to_string(),
        StoreError::NotPuente { .. } => "is a SQLite database but not a puente backup".to_string(),
        StoreError::SchemaChangeRefused { why, .. } => format!(
            "is a backup of another schema: this node's schema would {why}, which a restore never does; restore it with the schema it was made with"
        ),
        StoreError::NewerFormat { found, known, .. } => format!(
            "has replica format {found}, newer than this build knows ({known}); restore it with the puente version that made it"
        ),
        other => format!(
            "is damaged or truncated ({other}); use another copy"
        ),
    };
    RestoreError::Unusable {
        file: file.to_path_buf(),
        reason,
    }
}

/// Opens `file` for reading: a plain or SQLCipher file in place (or as a
/// copy in `work` when `copy`), an age file unwrapped into `work`.
fn open(
    file: &Path,
    own: &AtRest,
    keys: &Keys,
    work: &Path,
    copy: bool,
) -> Result<Opened, RestoreError> {
    let given = |file: &Path| -> Result<AtRest, RestoreError> {
        Ok(AtRest::Encrypted {
            key: replica_key::load_file(file)?,
            source: format!("key file {}", file.display()),
        })
    };
    let kind = backup::kind_of(file)?;
    let (db, at_rest, temporary) = match kind {
        BackupKind::Age => {
            let (keyring, _) = Keyring::load(&keys.identities)?;
            private_dir(work)?;
            let db = fresh_name(work, "unwrapped");
            let key = match backup::unwrap(file, &keyring, &db) {
                Ok(key) => key,
                Err(e) => {
                    remove_work_file(&db, true);
                    return Err(e.into());
                }
            };
            let at_rest = match key {
                Some(key) => AtRest::Encrypted {
                    key,
                    source: "replica key inside the offsite backup".into(),
                },
                None => AtRest::Plain,
            };
            (db, at_rest, true)
        }
        other => {
            let at_rest = match (other, &keys.key_file) {
                (BackupKind::Plain, _) => AtRest::Plain,
                (_, Some(k)) => given(k)?,
                (_, None) => own.clone(),
            };
            if copy {
                private_dir(work)?;
                let db = fresh_name(work, "copy");
                fs::copy(file, &db).map_err(io_err(file, "copying the backup"))?;
                (db, at_rest, true)
            } else {
                (file.to_path_buf(), at_rest, false)
            }
        }
    };
    Ok(Opened {
        db,
        at_rest,
        temporary,
    })
}

/// What `backup verify` found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub info: BackupInfo,
    /// SQLite's integrity check said "ok", and the digest recomputed from
    /// every cell equals the stored one (else `check` errs).
    pub checked: bool,
}

/// Checks an opened backup: integrity, digest, and reads what it holds.
fn check(file: &Path, opened: &Opened, schema: Arc<Schema>) -> Result<BackupInfo, RestoreError> {
    let (mut info, store) = describe(&opened.db, &opened.at_rest, schema).map_err(|e| match e {
        BackupError::Store(e) => unusable(file, e),
        other => other.into(),
    })?;
    let damaged = |what: String| RestoreError::Unusable {
        file: file.to_path_buf(),
        reason: format!("is damaged or truncated ({what}); use another copy"),
    };
    let integrity = store
        .integrity_check()
        .map_err(|e| damaged(e.to_string()))?;
    if integrity != "ok" {
        return Err(damaged(format!("SQLite's integrity check: {integrity}")));
    }
    let digest = store
        .recompute_digest()
        .map_err(|e| damaged(e.to_string()))?;
    if digest != store.digest() {
        return Err(damaged(
            "the digest recomputed from its cells differs from the one it stored".into(),
        ));
    }
    info.bytes = fs::metadata(file).map(|m| m.len()).unwrap_or(info.bytes);
    info.wrapped = backup::kind_of(file)? == BackupKind::Age;
    Ok(info)
}

/// `puente backup verify FILE`: opens the backup (never writing to it)
/// and checks it. The node config gives the schema and the replica key.
pub fn verify(config: &NodeConfig, file: &Path, keys: &Keys) -> Result<Verified, RestoreError> {
    let schema = Arc::new(Schema::load(&config.schema_file)?);
    let own = replica_key::at_rest(config)?;
    let work = std::env::temp_dir().join(format!("puente-verify-{}", std::process::id()));
    let opened = open(file, &own, keys, &work, false)?;
    let result = check(file, &opened, schema);
    opened.discard();
    let _ = fs::remove_dir(&work);
    Ok(Verified {
        info: result?,
        checked: true,
    })
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub info: BackupInfo,
    pub new_site: SiteId,
    pub retired_site: SiteId,
    /// Where an existing replica was moved (with --force).
    pub moved_aside: Option<PathBuf>,
}

/// `puente restore --from FILE` into the stopped node of `config_file`.
pub fn restore(
    config_file: &Path,
    file: &Path,
    keys: &Keys,
    force: bool,
) -> Result<Restored, RestoreError> {
    let config = NodeConfig::load(config_file)?;
    let schema = Arc::new(Schema::load(&config.schema_file)?);
    let own = replica_key::at_rest(&config)?;
    let _lock = lock::lock(&config.data_dir).map_err(RestoreError::Lock)?;
    let db = config.database_path();
    let aside = config.data_dir.join(format!(
        "replaced-{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
    ));
    // A replica there already: refused unless --force (checked first, so
    // nothing is copied for nothing).
    if cipher::file_kind(&db).map_err(io_err(&db, "reading"))? != cipher::FileKind::Missing
        && !force
    {
        let head = Store::open(
            &db,
            crate::store::StoreOptions::new(
                schema.clone(),
                Arc::new(Keyring::empty()),
                Arc::new(crate::clock::SystemClock),
            )
            .at_rest(&own)
            .unadopted(),
        )
        .map(|s| s.head())
        .unwrap_or(0);
        return Err(RestoreError::Occupied { db, head, aside });
    }
    let work = config.data_dir.join(backup::WORK_DIR);
    let opened = open(file, &own, keys, &work, true)?;
    let result = (|| {
        let info = check(file, &opened, schema.clone())?;
        let new = fresh_name(&work, "restored");
        let made = rebuild(&opened, &new, &own, schema.clone(), &info);
        let (new_site, retired_site) = match made {
            Ok(sites) => sites,
            Err(e) => {
                for p in companions(&new) {
                    remove_work_file(&p, !own.is_encrypted());
                }
                return Err(e);
            }
        };
        let moved_aside = swap_in(&config.data_dir, &db, &new, &aside)?;
        Ok(Restored {
            info,
            new_site,
            retired_site,
            moved_aside,
        })
    })();
    opened.discard();
    let _ = fs::remove_dir(&work);
    result
}

/// Copies the opened backup to `new` under this node's key, starts its
/// new history and checks it against the backup.
fn rebuild(
    opened: &Opened,
    new: &Path,
    own: &AtRest,
    schema: Arc<Schema>,
    info: &BackupInfo,
) -> Result<(SiteId, SiteId), RestoreError> {
    match (&opened.at_rest, own) {
        (AtRest::Plain, AtRest::Plain) => {
            fs::copy(&opened.db, new).map_err(io_err(new, "copying the backup"))?;
        }
        (from, to) => cipher::export_to(&opened.db, from, new, to)?,
    }
    // Opened as the backup records itself, to compare it with the backup.
    let mut store = Store::open(
        new,
        crate::store::StoreOptions::new(
            schema.clone(),
            Arc::new(Keyring::empty()),
            Arc::new(crate::clock::SystemClock),
        )
        .at_rest(own)
        .unadopted(),
    )?;
    if store.digest().to_string() != info.digest || store.head() != info.head {
        return Err(RestoreError::Mismatch {
            what: "head or digest",
        });
    }
    let retired = store.begin_new_history(SiteId::random())?;
    // A backup of an earlier schema takes this node's now (what a start
    // would do), as versions of the new site.
    store.adopt_schema(schema, &Allow::default())?;
    if store.integrity_check()? != "ok" {
        return Err(RestoreError::Mismatch {
            what: "SQLite's integrity check",
        });
    }
    if store.recompute_digest()? != store.digest() {
        return Err(RestoreError::Mismatch { what: "digest" });
    }
    let new_site = store.site_id();
    store.checkpoint()?;
    drop(store);
    Ok((new_site, retired))
}

/// Gives `new` the data dir's owner and mode 0600, syncs it, moves an
/// existing replica aside and renames `new` to the replica's name.
fn swap_in(
    data_dir: &Path,
    db: &Path,
    new: &Path,
    aside: &Path,
) -> Result<Option<PathBuf>, RestoreError> {
    let [_, wal, shm, journal] = companions(new);
    for p in [wal, journal] {
        if fs::metadata(&p).is_ok_and(|m| m.len() > 0) {
            return Err(RestoreError::Mismatch {
                what: "its WAL was not folded in",
            });
        }
        let _ = fs::remove_file(&p);
    }
    let _ = fs::remove_file(&shm);
    let owner = fs::metadata(data_dir).map_err(io_err(data_dir, "reading"))?;
    let file = fs::File::open(new).map_err(io_err(new, "opening"))?;
    std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))
        .map_err(io_err(new, "giving it the data dir's owner"))?;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err(new, "setting its mode"))?;
    file.sync_all().map_err(io_err(new, "syncing"))?;
    drop(file);
    let mut moved = None;
    let existing: Vec<PathBuf> = companions(db).into_iter().filter(|p| p.exists()).collect();
    if !existing.is_empty() {
        fs::DirBuilder::new().create(aside).map_err(io_err(
            aside,
            "creating the folder for the replaced replica",
        ))?;
        for p in existing {
            let name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
            fs::rename(&p, aside.join(name))
                .map_err(io_err(&p, "moving the replaced replica aside"))?;
        }
        fsutil::sync_dir(aside).map_err(io_err(aside, "syncing"))?;
        moved = Some(aside.to_path_buf());
    }
    fs::rename(new, db).map_err(io_err(db, "renaming the restored replica"))?;
    fsutil::sync_dir(data_dir).map_err(io_err(data_dir, "syncing"))?;
    Ok(moved)
}
