//! Owns: migrations of the replica format, oldest first, each in one
//! transaction, after a copy of the file as it was is left next to it.
//!
//! Format 1 (puente 0.1.0) → 2: the replica's record of its columns in
//! slot order (`_puente_columns`), read from the layout the format 1
//! replica was made with.
//! Must not: change any row, clock or value (a migration changes how the
//! replica describes itself, not what it holds).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::config::Schema;
use crate::store::layout::columns::{self, COLUMNS_DDL, StoredTable};
use crate::store::{SqlContext, StoreError};

/// Where the copy of a format `version` file is kept.
pub fn backup_path(path: &Path, version: i64) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".format-{version}.bak"));
    PathBuf::from(p)
}

/// Copies the whole replica (WAL checkpointed into it first) to
/// `backup_path`, unless an earlier, interrupted migration already did.
fn keep_a_copy(conn: &Connection, path: &Path, version: i64) -> Result<PathBuf, StoreError> {
    let backup = backup_path(path, version);
    if backup.exists() {
        return Ok(backup);
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .ctx("checkpointing before a migration")?;
    let failed = |e: std::io::Error| StoreError::MigrationCopy {
        path: backup.clone(),
        detail: e.to_string(),
    };
    let mut tmp = backup.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(path, &tmp).map_err(failed)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(failed)?;
    std::fs::rename(&tmp, &backup).map_err(failed)?;
    if let Some(dir) = backup.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(backup)
}

/// The columns of a format 1 replica in slot order, as its migration
/// records them (read without writing: a backup of one is read in place).
pub fn format_1_layout(conn: &Connection, schema: &Schema) -> Result<Vec<StoredTable>, StoreError> {
    // The layout hash says whether the replica was made with this schema's
    // tables and columns; if not, its SQL says what it holds.
    let made_with_this_schema: bool = conn
        .query_row(
            "SELECT value = ?1 FROM _puente_meta WHERE key = 'layout_hash'",
            [schema.layout_hash()],
            |r| r.get(0),
        )
        .unwrap_or(false);
    if made_with_this_schema {
        Ok(columns::from_schema(schema))
    } else {
        columns::from_format_1(conn, schema)
    }
}

/// Format 1 → 2.
pub fn format_1_to_2(conn: &Connection, path: &Path, schema: &Schema) -> Result<(), StoreError> {
    let backup = keep_a_copy(conn, path, 1)?;
    let layout = format_1_layout(conn, schema)?;
    let tx = conn
        .unchecked_transaction()
        .ctx("migrating the replica to format 2")?;
    tx.execute_batch(COLUMNS_DDL)
        .ctx("migrating the replica to format 2")?;
    columns::write(&tx, &layout)?;
    tx.execute("DELETE FROM _puente_meta WHERE key = 'layout_hash'", [])
        .ctx("migrating the replica to format 2")?;
    tx.pragma_update(None, "user_version", 2)
        .ctx("migrating the replica to format 2")?;
    tx.commit().ctx("migrating the replica to format 2")?;
    tracing::info!(
        replica = %path.display(),
        copy = %backup.display(),
        "migrated the replica from format 1 to 2; the format 1 file is kept beside it"
    );
    Ok(())
}
