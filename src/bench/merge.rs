//! Owns: merge alone: applying a change set from memory into an empty
//! replica, unencrypted and encrypted at rest (SQLCipher, raw key), next to
//! a plain SQLite insert of the same rows measured in the same run; the
//! unencrypted apply once more with the drift check switched off (its
//! cost, `Store::set_max_clock_drift(None)`: only here); and the time to
//! open the filled replica with its raw key.
//!
//! Must not: use the network.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use rusqlite::params_from_iter;

use super::data;
use crate::clock::{SystemClock, WallClock};
use crate::config::Schema;
use crate::seal::Keyring;
use crate::stamp::SiteId;
use crate::store::{AtRest, Cursor, PeerRef, ReplicaKey, Store};

pub struct MergeTimes {
    pub rows: usize,
    pub plain_insert_s: f64,
    /// Apply into an unencrypted replica.
    pub apply_s: f64,
    /// Apply into a replica encrypted at rest.
    pub apply_encrypted_s: f64,
    /// Apply into an unencrypted replica without the drift check.
    pub apply_unchecked_s: f64,
    pub batches: usize,
    /// Opening the filled replica (median of several opens), unencrypted
    /// and with the raw key.
    pub open_plain_ms: f64,
    pub open_encrypted_ms: f64,
}

/// A plain table of the same shape (text primary key, 8 columns), filled
/// in one transaction with one prepared statement, same pragmas as a replica.
pub fn plain_insert(dir: &Path, schema: &Schema, rows: &data::Rows) -> Result<f64> {
    let (conn, sql) = plain_table(dir, schema)?;
    let start = Instant::now();
    let tx = conn.unchecked_transaction()?;
    insert_plain(&mut tx.prepare(&sql)?, rows)?;
    tx.commit()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Creates `plain.db` in `dir` with the replica's pragmas and the plain
/// table of the bench table's shape; returns it with its INSERT statement.
pub fn plain_table(dir: &Path, schema: &Schema) -> Result<(rusqlite::Connection, String)> {
    let conn = rusqlite::Connection::open(dir.join("plain.db"))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000;")?;
    let table = schema
        .table(data::TABLE)
        .ok_or_else(|| anyhow::anyhow!("bench table missing"))?;
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE plain (id TEXT PRIMARY KEY NOT NULL, {})",
        cols.join(", ")
    ))?;
    let sql = format!(
        "INSERT INTO plain (id, {}) VALUES (?1, {})",
        cols.join(", "),
        (2..cols.len() + 2)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((conn, sql))
}

/// Inserts `rows` with the plain table's prepared INSERT.
pub fn insert_plain(stmt: &mut rusqlite::Statement<'_>, rows: &data::Rows) -> Result<()> {
    for (id, values) in rows.ids.iter().zip(&rows.values) {
        let args = std::iter::once(id as &dyn rusqlite::ToSql)
            .chain(values.iter().map(|v| v as &dyn rusqlite::ToSql))
            .collect::<Vec<_>>();
        stmt.execute(params_from_iter(args))?;
    }
    Ok(())
}

pub(super) fn open(path: &Path, at_rest: &AtRest, schema: Arc<Schema>) -> Result<Store> {
    Ok(Store::open(
        path,
        crate::store::StoreOptions::new(
            schema,
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(at_rest),
    )?)
}

/// Applies `rows` into an empty replica at `path` in batches of
/// `per_batch` rows (each one transaction, as sync does).
pub fn apply(
    path: &Path,
    at_rest: &AtRest,
    schema: Arc<Schema>,
    rows: &data::Rows,
    per_batch: usize,
) -> Result<(f64, usize)> {
    apply_checked(path, at_rest, schema, rows, per_batch, true)
}

/// `apply`, with the drift check on or off (`drift_check`).
pub fn apply_checked(
    path: &Path,
    at_rest: &AtRest,
    schema: Arc<Schema>,
    rows: &data::Rows,
    per_batch: usize,
    drift_check: bool,
) -> Result<(f64, usize)> {
    let site = SiteId::random();
    let batches = data::batches(rows, per_batch, site);
    let count = batches.len();
    let mut store = open(path, at_rest, schema)?;
    if !drift_check {
        store.set_max_clock_drift(None);
    }
    let peer = PeerRef {
        site,
        name: "bench".into(),
    };
    let start = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        store.apply(&peer, batch, Cursor::at(i as u64 + 1))?;
    }
    Ok((start.elapsed().as_secs_f64(), count))
}

/// Median milliseconds of opening the replica at `path` (state loaded,
/// ready to serve) over `times` opens.
pub fn open_ms(path: &Path, at_rest: &AtRest, schema: &Arc<Schema>, times: usize) -> Result<f64> {
    let mut samples = Vec::with_capacity(times);
    for _ in 0..times {
        let start = Instant::now();
        let store = open(path, at_rest, schema.clone())?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        drop(store);
    }
    Ok(super::median(&samples))
}

/// One measurement: the plain insert, then both applies (their order
/// alternates with `encrypted_first`, so neither always runs on a warmer
/// machine), then the opens.
pub fn run(n: usize, per_batch: usize, encrypted_first: bool) -> Result<MergeTimes> {
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let schema = data::schema(&[recipient]);
    let pool = data::ciphertext_pool(&schema, 64);
    let rows = data::rows(&schema, n, &pool, 1);
    let dir = tempfile_dir()?;
    let plain_insert_s = plain_insert(dir.path(), &schema, &rows)?;
    let encrypted = AtRest::Encrypted {
        key: ReplicaKey::generate(),
        source: "bench key".into(),
    };
    let plain_path = dir.path().join("replica.db");
    let encrypted_path = dir.path().join("encrypted.db");
    let unchecked_path = dir.path().join("unchecked.db");
    // Without the drift check: first in one run, last in the next.
    let unchecked = || {
        apply_checked(
            &unchecked_path,
            &AtRest::Plain,
            schema.clone(),
            &rows,
            per_batch,
            false,
        )
    };
    let unchecked_early = if encrypted_first {
        Some(unchecked()?)
    } else {
        None
    };
    let plain = || {
        apply(
            &plain_path,
            &AtRest::Plain,
            schema.clone(),
            &rows,
            per_batch,
        )
    };
    let (plain_run, encrypted_run) = if encrypted_first {
        let e = apply(
            &encrypted_path,
            &encrypted,
            schema.clone(),
            &rows,
            per_batch,
        )?;
        (plain()?, e)
    } else {
        let p = plain()?;
        (
            p,
            apply(
                &encrypted_path,
                &encrypted,
                schema.clone(),
                &rows,
                per_batch,
            )?,
        )
    };
    let unchecked_run = match unchecked_early {
        Some(run) => run,
        None => unchecked()?,
    };
    Ok(MergeTimes {
        rows: n,
        plain_insert_s,
        apply_s: plain_run.0,
        apply_encrypted_s: encrypted_run.0,
        apply_unchecked_s: unchecked_run.0,
        batches: plain_run.1,
        open_plain_ms: open_ms(&plain_path, &AtRest::Plain, &schema, 7)?,
        open_encrypted_ms: open_ms(&encrypted_path, &encrypted, &schema, 7)?,
    })
}

pub(crate) fn tempfile_dir() -> Result<TempDir> {
    TempDir::new()
}

/// A temporary folder removed on drop (the bench must not need tempfile,
/// a dev-dependency).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let base = std::env::temp_dir().join(format!(
            "puente-bench-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&base)?;
        Ok(TempDir(base))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
