//! The SQLite replica.
//!
//! Owns: the `Store` (the connection, the in-memory state kept in step
//! with `_puente_meta`: site id, HLC, head sequence, digest, counts) and
//! its transactions; every other operation is an `impl Store` in one of
//! the sub-rooms, each grouped by concern with its reason in its mod.rs,
//! lowest first:
//! - `cells/`: the merge core without SQLite (packed clocks, LWW, digest);
//! - `layout/`: the tables on disk (DDL, SQL text, the record of columns);
//! - `batch.rs`: changes as they travel (`Batch`, `Cursor`), `staff.rs`:
//!   the staff logins, a table sync never reads;
//! - `rights/`: offices of sites, judging a peer's change, what is held;
//! - `sealed/`: sealing local writes, counting keysets, re-sealing;
//! - `outgoing/`: what a peer still needs (changes since its cursor);
//! - `read.rs`, `inspect.rs`: rows and stats, the whole replica for checks;
//! - `merge/`: merging a change, applying a peer's batch, deciding a held
//!   change; `write.rs`: local puts and deletes;
//! - `adopt/`: adopting a changed schema;
//! - `file/`: the file (open, key, format, copies, history, WAL).
//!
//! `tools/imports` checks that no sub-room imports one above it.
//! Must not: do network IO, read the system clock (time comes from the
//! injected `WallClock`), or let a sealed plaintext reach SQLite or an error.

mod adopt;
mod batch;
mod cells;
mod file;
mod inspect;
mod layout;
mod merge;
mod outgoing;
mod read;
mod rights;
mod sealed;
mod staff;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

pub use adopt::plan::{AdoptionPlan, Allow};
pub use batch::{Batch, CellChange, Change, Cursor, PeerRef};
pub use cells::digest::{self, Digest};
pub use file::cipher::{AtRest, ReplicaKey};
pub use file::open::StoreOptions;
pub use file::settle::{SETTLE_WAL_BYTES, Settled};
pub use file::{backup, cipher};
pub use inspect::{CellRecord, RowKey, Snapshot, TombstoneRecord};
pub use merge::apply::{Applied, Validated, validate};
pub use outgoing::batching::Outgoing;
pub use read::{CellView, Reveal, RowView, Stats};
pub use rights::bounds::{MAX_SITES_PER_BATCH, MAX_SITES_PER_OFFICE, MAX_SITES_PER_PEER};
pub use rights::held::{
    Decided, HeldChange, HeldFrom, MAX_HELD_BYTES, MAX_HELD_ENTRIES, words_for_ms,
};
pub use sealed::reseal;
pub use staff::StaffRecord;
pub use write::{RowPut, Written};

use crate::clock::{Hlc, HlcState, WallClock};
use crate::config::Schema;
use crate::seal::{Keyring, SealError};
use crate::stamp::SiteId;
use layout::TableSql;

/// Everything that can go wrong with a replica. Messages name the file,
/// table, column, row or peer and say what to do; none contains a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {} does not exist; create it owned by the user puente runs as (`install -d -m 0700 -o puente -g puente DIR`; under systemd, StateDirectory= in the unit makes /var/lib/puente; `puente init` makes DIR/data only when --data-dir is not given) or fix data_dir in the node config", dir.display())]
    DataDirMissing { dir: PathBuf },
    #[error("cannot create the replica in {}: {source}; make the data dir writable by the user puente runs as", dir.display())]
    DataDirUnwritable {
        dir: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{} is not a plain SQLite database: if it is an encrypted replica, name its key in the node config ([storage] key_file or key_credential; if `puente storage encrypt` was interrupted, run it again); otherwise check data_dir (puente leaves the file untouched)", path.display())]
    NotSqlite { path: PathBuf },
    #[error("cannot open {} with the {source_name}: the key is wrong or the file is not a puente replica; give the key this replica was encrypted with (if `puente storage rekey` was interrupted, run it again; puente leaves the file untouched)", path.display())]
    WrongKey { path: PathBuf, source_name: String },
    #[error("{} is NOT encrypted, but the node config names a {source_name}; run `puente storage encrypt` to encrypt it with that key, or remove [storage] from the config to keep it unencrypted (puente leaves the file untouched)", path.display())]
    NotEncrypted { path: PathBuf, source_name: String },
    #[error("cannot read {}: {reason}; check the path and that the user puente runs as may read it", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} is a SQLite database but not a puente replica; point data_dir at an empty folder (puente leaves the file untouched)", path.display())]
    NotPuente { path: PathBuf },
    #[error("{} has replica format {found}, newer than this build knows ({known}); upgrade puente to open it", path.display())]
    NewerFormat {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the schema cannot be adopted by replica {} as it is: {why}", path.display())]
    SchemaChangeRefused { path: PathBuf, why: String },
    #[error(
        "the schema types {table}.{column} as {expected}, but {count} of its values do not fit ({examples}); fix those rows with `puente rows put` under the old schema, or drop the type, then start puente again"
    )]
    TypeMisfits {
        table: String,
        column: String,
        expected: String,
        count: usize,
        examples: String,
    },
    #[error("cannot keep a copy of the replica at {} before migrating it ({detail}); free disk space or fix the permissions of the data dir, then start again (the replica is untouched)", path.display())]
    MigrationCopy { path: PathBuf, detail: String },
    #[error("{table}/{id}: column `{column}` {mismatch}")]
    InvalidValue {
        table: String,
        id: String,
        column: String,
        mismatch: String,
    },
    #[error("replica {} is damaged ({detail}); stop the daemon, keep a copy of the data dir, and restore from a backup or re-sync from a peer into an empty data dir", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("database error while {context}: {source}")]
    Sqlite {
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("unknown table `{table}`; the schema has: {known}")]
    UnknownTable { table: String, known: String },
    #[error("unknown column `{column}` in table `{table}`; it has: {known}")]
    UnknownColumn {
        table: String,
        column: String,
        known: String,
    },
    #[error(
        "`{id}` is not a valid row id: use 1 to 128 letters, digits, '-', '_', '.' or '~' (a random UUID is best)"
    )]
    InvalidId { id: String },
    #[error("invalid write to {table}: {reason}")]
    InvalidWrite { table: String, reason: String },
    #[error(
        "{table}/{id}: {} {} required (the schema says `required = true`) and this write {}; give a value (COLUMN=VALUE)",
        columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        if columns.len() == 1 { "is" } else { "are" },
        if *new_row { "makes a new row without it" } else { "would empty it" }
    )]
    MissingRequired {
        table: String,
        id: String,
        columns: Vec<String>,
        new_row: bool,
    },
    #[error(
        "row {table}/{id} was deleted; a deleted id can never be written again, create the row under a new id"
    )]
    RowDeleted { table: String, id: String },
    #[error("no row {table}/{id}")]
    NoSuchRow { table: String, id: String },
    /// A write this office may not make (the schema's rights).
    #[error("{message}")]
    Forbidden {
        office: String,
        /// The offices that may make it (none: the rights must change).
        allowed: Vec<String>,
        message: String,
    },
    #[error(
        "peer `{peer}` presents site id {site}, which belongs to office {office} here: it runs on a copy of {office}'s replica, or it is forged; give {peer} an empty data dir"
    )]
    SiteOfAnotherOffice {
        site: String,
        office: String,
        peer: String,
    },
    #[error(
        "the replica in {} belongs to office {office}, but this node is named {node}: its data dir was copied from {office}; give {node} an empty data dir (or its own replica) and start again", path.display()
    )]
    ReplicaOfAnotherOffice {
        path: PathBuf,
        office: String,
        node: String,
    },
    #[error("no held change {id}; `puente held list` shows the held changes and their numbers")]
    NoSuchHeld { id: i64 },
    #[error(
        "held change {id} was already {state}; `puente held list --all` shows what was decided"
    )]
    HeldDecided { id: i64, state: String },
    #[error(
        "peer `{peer}` has named {count} site ids this office never knew, the most one peer may ({limit}): an honest office relays a few (one per office and restore); it is tampered or broken, so this batch was refused and nothing of it kept; check {peer} before syncing with it again"
    )]
    TooManySites {
        peer: String,
        count: u64,
        limit: u64,
    },
    #[error(
        "peer `{office}` presents site id {site}, but {count} site ids are already bound to {office} here, the most one office may have (an office takes a new one only when it is restored from a backup): it is tampered, or runs on a copied data dir; the session was refused; check {office}'s data dir"
    )]
    TooManyBindings {
        office: String,
        site: String,
        count: usize,
    },
    #[error(
        "held change {id} is stamped {ahead} ahead of this office's clock, beyond the drift bound: accepting it would move this clock there and stamp every later write after it; it is applied by itself once this clock catches up, or discard it with `puente held discard {id}`"
    )]
    HeldNotDue { id: i64, ahead: String },
    #[error("batch from peer {peer} rejected, nothing applied: {table}/{id}/{column}: {reason}")]
    InvalidBatch {
        peer: String,
        table: String,
        id: String,
        column: String,
        reason: String,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A local write that cannot be stamped: refused, never reported done.
    #[error(transparent)]
    Clock(#[from] crate::clock::ClockExhausted),
}

pub(crate) trait SqlContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

/// In-memory state mirrored from `_puente_meta`; snapshotted at the start
/// of each transaction and restored if it rolls back.
#[derive(Debug, Clone)]
struct ReplicaState {
    site: SiteId,
    local_site: u32,
    hlc: HlcState,
    head: u64,
    digest: Digest,
    /// Local site index → site id.
    sites: Vec<SiteId>,
    site_index: HashMap<SiteId, u32>,
    /// Tombstones per table (to skip lookups when a table has none).
    tombstones: Vec<u64>,
    /// Live rows and sealed cells, kept with every write so status is O(1).
    counts: RowCounts,
    /// Sealed cells per group and recipient set (`sealed/keysets.rs`).
    keysets: sealed::keysets::Keysets,
    /// Sites bound to offices, how each interned site is judged, and the
    /// held changes' totals.
    guard: rights::bindings::Guard,
}

/// Live rows per table and written sealed cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowCounts {
    pub rows: Vec<u64>,
    pub sealed_cells: u64,
}

impl RowCounts {
    fn encode(&self) -> Vec<u8> {
        std::iter::once(self.sealed_cells)
            .chain(self.rows.iter().copied())
            .flat_map(u64::to_be_bytes)
            .collect()
    }

    fn decode(bytes: &[u8], tables: usize) -> Option<RowCounts> {
        if bytes.len() != 8 * (tables + 1) {
            return None;
        }
        let mut numbers = bytes
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()));
        let sealed_cells = numbers.next()?;
        Some(RowCounts {
            rows: numbers.collect(),
            sealed_cells,
        })
    }

    /// Counts by scanning every table (slow; at open of a replica that has
    /// no saved counts, and in tests).
    fn scan(conn: &Connection, tables: &[TableSql]) -> Result<RowCounts, StoreError> {
        let mut counts = RowCounts {
            rows: Vec::new(),
            sealed_cells: 0,
        };
        for table in tables {
            let q = layout::quote(&table.name);
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {q}"), [], |r| r.get(0))
                .ctx("counting rows")?;
            counts.rows.push(n as u64);
            for column in table.defs.iter().filter(|c| c.is_sealed()) {
                let n: i64 = conn
                    .query_row(
                        &format!("SELECT count({}) FROM {q}", layout::quote(&column.name)),
                        [],
                        |r| r.get(0),
                    )
                    .ctx("counting sealed cells")?;
                counts.sealed_cells += n as u64;
            }
        }
        Ok(counts)
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    schema: Arc<Schema>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn WallClock>,
    tables: Vec<TableSql>,
    state: ReplicaState,
    /// Threads used to seal the cells of a bulk put.
    seal_threads: usize,
    /// The SQLCipher version, when the replica is encrypted.
    cipher: Option<String>,
    /// How the file is stored, with its key (backups open a second
    /// connection with it).
    at_rest: AtRest,
    /// The office local writes are made as (`set_office`).
    office: Option<String>,
    /// The bound on held changes: entries and bytes.
    held_limits: (u64, u64),
    /// How far ahead of this office's clock a peer's stamp may lie before
    /// its change is held (`None`: not checked — only for measuring the
    /// check's cost in `puente bench`).
    max_drift_ms: Option<u64>,
    /// Told how long each COMMIT took (the node's metrics).
    commit_observer: Option<CommitObserver>,
    /// Runs of the sequence that hold only one peer's changes (`outgoing/echo.rs`).
    echo: outgoing::echo::EchoRuns,
}

/// Called with the duration of each COMMIT.
pub type CommitObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("site", &self.state.site)
            .field("head", &self.state.head)
            .finish()
    }
}

impl Store {
    pub fn site_id(&self) -> SiteId {
        self.state.site
    }

    /// The highest change sequence written here.
    pub fn head(&self) -> u64 {
        self.state.head
    }

    /// The incrementally maintained digest (O(1)).
    pub fn digest(&self) -> Digest {
        self.state.digest
    }

    pub fn last_hlc(&self) -> Hlc {
        self.state.hlc.last()
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLCipher version (e.g. "4.20.0 community") when the replica is
    /// encrypted at rest; `None` for a plain SQLite file.
    pub fn cipher_version(&self) -> Option<&str> {
        self.cipher.as_deref()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whether this node holds an identity of `group`.
    pub fn can_unseal(&self, group: &str) -> bool {
        self.schema
            .group(group)
            .is_some_and(|g| self.keyring.can_unseal(g))
    }

    /// The cursor stored for a peer (zero if never synced).
    pub fn cursor_for(&self, peer: &SiteId) -> Result<Cursor, StoreError> {
        let row: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT base, progress FROM _puente_cursors WHERE peer = ?1",
                [&peer.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx("reading a peer cursor")?;
        Ok(row.map_or(Cursor::ZERO, |(b, p)| Cursor {
            base: b as u64,
            progress: p as u64,
        }))
    }

    /// Runs `f` in one IMMEDIATE transaction; the in-memory state is saved
    /// with it on success and restored on any error.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let saved = self.state.clone();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .ctx("starting a transaction")?;
        let result = f(self).and_then(|value| {
            self.save_state()?;
            // A duration for metrics, not a time any decision depends on.
            let started = self.commit_observer.is_some().then(std::time::Instant::now);
            self.conn.execute_batch("COMMIT").ctx("committing")?;
            if let (Some(observe), Some(started)) = (&self.commit_observer, started) {
                observe(started.elapsed());
            }
            Ok(value)
        });
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.state = saved;
        }
        result
    }

    fn save_state(&mut self) -> Result<(), StoreError> {
        self.save_keysets()?;
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE _puente_meta SET value = ?2 WHERE key = ?1")
            .ctx("saving replica metadata")?;
        stmt.execute(params!["hlc", self.state.hlc.last().0 as i64])
            .ctx("saving the clock")?;
        stmt.execute(params!["head", self.state.head as i64])
            .ctx("saving the head sequence")?;
        stmt.execute(params!["digest", &self.state.digest.to_bytes()[..]])
            .ctx("saving the digest")?;
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_meta (key, value) VALUES ('counts', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute([self.state.counts.encode()]))
            .ctx("saving row counts")?;
        Ok(())
    }

    /// The local index of a site id, interning it if new (inside a
    /// transaction).
    fn intern_site(&mut self, site: SiteId) -> Result<u32, StoreError> {
        if let Some(&i) = self.state.site_index.get(&site) {
            return Ok(i);
        }
        let idx = self.state.sites.len() as u32;
        self.conn
            .prepare_cached("INSERT INTO _puente_sites (idx, site) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![idx as i64, &site.0[..]]))
            .ctx("recording a site id")?;
        self.state.sites.push(site);
        self.state.site_index.insert(site, idx);
        let origin = self.origin_for(&site);
        self.state.guard.origins.push(origin);
        Ok(idx)
    }

    fn next_seq(&mut self) -> u64 {
        self.state.head += 1;
        self.state.head
    }

    fn table_index(&self, table: &str) -> Result<usize, StoreError> {
        self.schema
            .table_index(table)
            .ok_or_else(|| StoreError::UnknownTable {
                table: table.to_string(),
                known: self
                    .schema
                    .tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The slot of `column` in table `t`.
    fn column_index(&self, t: usize, column: &str) -> Result<usize, StoreError> {
        let table = &self.tables[t];
        table.slot(column).ok_or_else(|| StoreError::UnknownColumn {
            table: table.name.clone(),
            column: column.to_string(),
            known: table
                .display_order
                .iter()
                .map(|&s| table.defs[s].name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Recounts rows and sealed cells by scanning (tests compare it with
    /// the counts kept incrementally).
    pub fn recount(&self) -> Result<(Vec<u64>, u64), StoreError> {
        let c = RowCounts::scan(&self.conn, &self.tables)?;
        Ok((c.rows, c.sealed_cells))
    }

    /// Has `observer` told the duration of every COMMIT from now on.
    pub fn observe_commits(&mut self, observer: CommitObserver) {
        self.commit_observer = Some(observer);
    }

    /// Caps the database at `pages` pages: writes beyond fail as if the
    /// disk were full (`[debug] max_db_pages`, for tests of that case).
    pub fn limit_pages(&self, pages: u64) -> Result<(), StoreError> {
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .ctx("limiting the database size")
    }

    /// Gives up durability against power loss, keeping it against a crash
    /// of the process (`synchronous = OFF`: commits reach the OS, not the
    /// disk). Only for the simulator, whose crashes are process crashes;
    /// the daemon never calls it.
    pub fn relax_durability_for_simulation(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA synchronous = OFF")
            .ctx("relaxing durability")
    }

    /// Runs SQLite's own consistency check.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .ctx("checking integrity")
    }

    /// Checkpoints the WAL into the database file (used at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .ctx("checkpointing the WAL")
    }
}

/// Whether `id` is a valid row id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}
