//! Copies of a replica: a consistent snapshot taken while the replica is in
//! use, and a look at a copy that writes nothing.
//!
//! Owns: copying the replica with SQLite's online backup in one step on a
//! connection of its own (it reads one snapshot while the store's own
//! connection keeps committing: WAL readers never block the writer),
//! under the replica's own key (a backup is never weaker than the
//! replica: SQLCipher pages are re-encrypted with the same key and page
//! size), stamping the copy with when and where it was taken, and
//! opening a copy read-only through SQLite's `immutable` mode.
//! Must not: sync, rename or delete files (node/backup.rs does), or hold
//! the store's lock (it needs none).
//!
//! Why the backup API: SQLCipher's `VACUUM INTO` writes a file that does
//! not open again with 8 KiB cipher pages (tested), and `sqlcipher_export`
//! rebuilds every table and index (slower); the backup API copies pages.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::clock::{SystemClock, WallClock};
use crate::config::Schema;
use crate::seal::Keyring;
use crate::stamp::SiteId;
use crate::store::file::cipher::{self, AtRest};
use crate::store::file::open::Opening;
use crate::store::{SqlContext, Store, StoreError};

/// When and where a backup was taken (kept in the copy's metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStamp {
    pub node: String,
    pub at_ms: u64,
}

/// Copies the replica at `src` (stored as `at_rest`) into `dest`, a file
/// that must not exist yet, under the same key, as one consistent
/// snapshot. The copy is a single file (rollback journal, no WAL) and is
/// not yet synced to disk.
pub fn copy(
    src: &Path,
    at_rest: &AtRest,
    dest: &Path,
    stamp: &BackupStamp,
) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Unreadable {
            path: dest.to_path_buf(),
            reason: "the file exists already; a backup is written to a new file".into(),
        });
    }
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unreadable {
        path: src.to_path_buf(),
        reason: e.to_string(),
    })?;
    cipher::unlock(&source, at_rest)?;
    source
        .execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")
        .ctx("preparing the backup's read")?;
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| cipher::first_read_error(src, at_rest, e))?;
    let mut target = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unreadable {
        path: dest.to_path_buf(),
        reason: e.to_string(),
    })?;
    cipher::unlock(&target, at_rest)?;
    {
        let backup =
            rusqlite::backup::Backup::new(&source, &mut target).ctx("starting the backup")?;
        // One step copies every page within one read transaction: a
        // consistent snapshot, whatever commits meanwhile.
        loop {
            match backup.step(-1).ctx("copying the replica")? {
                rusqlite::backup::StepResult::Done => break,
                // Only when a lock is busy (a checkpoint at that moment):
                // the step is retried from where it stopped.
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
    drop(source);
    // The copied header says WAL; a backup is one file.
    target
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .ctx("making the copy a single file")?;
    let tx = target.transaction().ctx("stamping the copy")?;
    for (key, value) in [
        (
            "backup_node",
            rusqlite::types::Value::Text(stamp.node.clone()),
        ),
        (
            "backup_ms",
            rusqlite::types::Value::Integer(stamp.at_ms as i64),
        ),
    ] {
        tx.execute(
            "INSERT INTO _puente_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .ctx("stamping the copy")?;
    }
    tx.commit().ctx("stamping the copy")
}

/// Opens a copy of a replica (a backup) to read it, writing nothing: no
/// lock, no journal, no WAL file (SQLite's `immutable` mode). `at_rest`
/// must be how the copy is stored; a wrong key, another schema's layout or
/// a newer format are refused as when opening a replica.
pub fn open_snapshot(
    path: &Path,
    at_rest: &AtRest,
    schema: Arc<Schema>,
) -> Result<Store, StoreError> {
    let kind = cipher::file_kind(path).map_err(|e| StoreError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if kind == cipher::FileKind::Missing {
        return Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            reason: "the file is missing or empty".into(),
        });
    }
    cipher::check_kind(path, kind, at_rest)?;
    let conn = Connection::open_with_flags(
        cipher::immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| StoreError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    cipher::unlock(&conn, at_rest)?;
    let opening = Opening {
        path,
        at_rest,
        writable: false,
    };
    Store::prepare(
        conn,
        opening,
        schema,
        Arc::new(Keyring::empty()),
        Arc::new(SystemClock) as Arc<dyn WallClock>,
        SiteId([0; 16]),
    )
}

impl Store {
    /// How the replica is stored, with its key.
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    /// Where and when this copy was taken, if it is a backup.
    pub fn backup_stamp(&self) -> Result<Option<BackupStamp>, StoreError> {
        let read = |key: &str| -> Result<Option<rusqlite::types::Value>, StoreError> {
            self.conn
                .query_row(
                    "SELECT value FROM _puente_meta WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
                .ctx("reading the backup's stamp")
        };
        use rusqlite::types::Value as V;
        Ok(match (read("backup_node")?, read("backup_ms")?) {
            (Some(V::Text(node)), Some(V::Integer(at))) => Some(BackupStamp {
                node,
                at_ms: at.max(0) as u64,
            }),
            _ => None,
        })
    }

    /// When the replica was created (Unix ms), if recorded.
    pub fn created_ms(&self) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM _puente_meta WHERE key = 'created_ms'",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading the replica's creation time")?;
        Ok(v.map(|v| v.max(0) as u64))
    }
}
