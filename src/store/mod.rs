//! The SQLite replica.
//!
//! Owns: opening and creating a replica (WAL, secure_delete, format
//! version), the in-memory state kept in step with it (site id, HLC, head
//! sequence, digest), transactions, and the public operations implemented in
//! the submodules: local writes, reads, changes-since, apply, digest.
//! Must not: do network IO, read the system clock (time comes from the
//! injected `WallClock`), or let a sealed plaintext reach SQLite or an error.

mod apply;
mod change;
mod changes;
mod clocks;
pub mod digest;
mod layout;
mod merge;
mod read;
mod write;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use apply::Applied;
pub use change::{Batch, CellChange, Change, Cursor, PeerRef};
pub use changes::Outgoing;
pub use digest::Digest;
pub use read::{CellView, Reveal, RowView, Stats};
pub use write::{RowWrite, Written};

use crate::clock::{Hlc, HlcState, WallClock};
use crate::config::Schema;
use crate::seal::{Keyring, SealError};
use crate::stamp::SiteId;
use layout::{FORMAT_VERSION, INTERNAL_DDL, TableSql};

/// Everything that can go wrong with a replica. Messages name the file,
/// table, column, row or peer and say what to do; none contains a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {} does not exist; create it (`puente init` does) or fix data_dir in the node config", dir.display())]
    DataDirMissing { dir: PathBuf },
    #[error("cannot create the replica in {}: {source}; make the data dir writable by the user puente runs as", dir.display())]
    DataDirUnwritable {
        dir: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{} is not a SQLite database; check data_dir in the node config (puente leaves the file untouched)", path.display())]
    NotSqlite { path: PathBuf },
    #[error("{} is a SQLite database but not a puente replica; point data_dir at an empty folder (puente leaves the file untouched)", path.display())]
    NotPuente { path: PathBuf },
    #[error("{} has replica format {found}, newer than this build knows ({known}); upgrade puente to open it", path.display())]
    NewerFormat {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{} was created with different tables, columns or privacy classes than the schema now lists; changing them is not supported yet: restore the schema the offices agreed on (`puente check` prints its hash)", path.display())]
    LayoutChanged { path: PathBuf },
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
        "row {table}/{id} was deleted; a deleted id can never be written again, create the row under a new id"
    )]
    RowDeleted { table: String, id: String },
    #[error("no row {table}/{id}")]
    NoSuchRow { table: String, id: String },
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
struct State {
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
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    schema: Arc<Schema>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn WallClock>,
    tables: Vec<TableSql>,
    state: State,
    /// Threads used to seal the cells of a bulk put.
    seal_threads: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("site", &self.state.site)
            .field("head", &self.state.head)
            .finish()
    }
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl Store {
    /// Opens the replica at `path`, creating it (and its tables) if the file
    /// does not exist. The folder must exist. On any error nothing is
    /// created or modified.
    pub fn open(
        path: &Path,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn WallClock>,
    ) -> Result<Store, StoreError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(StoreError::DataDirMissing {
                dir: dir.to_path_buf(),
            });
        }
        let existed = path.exists();
        if existed {
            let mut head = [0u8; 16];
            let mut f = std::fs::File::open(path).map_err(|e| StoreError::DataDirUnwritable {
                dir: dir.to_path_buf(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
            })?;
            let n = f.read(&mut head).unwrap_or(0);
            if n > 0 && (n < 16 || &head != SQLITE_MAGIC) {
                return Err(StoreError::NotSqlite {
                    path: path.to_path_buf(),
                });
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| {
            StoreError::DataDirUnwritable {
                dir: dir.to_path_buf(),
                source,
            }
        })?;
        let result = Store::prepare(conn, path, schema, keyring, clock);
        if result.is_err() && !existed {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        result
    }

    fn prepare(
        conn: Connection,
        path: &Path,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn WallClock>,
    ) -> Result<Store, StoreError> {
        let not_sqlite = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotSqlite {
                path: path.to_path_buf(),
            },
            _ => StoreError::Sqlite {
                context: "opening the replica",
                source,
            },
        };
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(not_sqlite)?;
        if version > FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                path: path.to_path_buf(),
                found: version,
                known: FORMAT_VERSION,
            });
        }
        let foreign_tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(not_sqlite)?;
        if version == 0 && foreign_tables > 0 {
            return Err(StoreError::NotPuente {
                path: path.to_path_buf(),
            });
        }
        conn.set_prepared_statement_cache_capacity(64);
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .ctx("switching the replica to WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("journal mode is {mode}, WAL could not be enabled"),
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA foreign_keys = OFF; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000;",
        )
        .ctx("setting replica pragmas")?;

        let tables: Vec<TableSql> = schema.tables.iter().map(TableSql::new).collect();
        if version == 0 {
            let site = SiteId::random();
            let tx = conn.unchecked_transaction().ctx("creating the replica")?;
            tx.execute_batch(INTERNAL_DDL)
                .ctx("creating internal tables")?;
            for t in &tables {
                tx.execute_batch(&t.create).ctx("creating user tables")?;
            }
            tx.execute(
                "INSERT INTO _puente_sites (idx, site) VALUES (0, ?1)",
                [&site.0[..]],
            )
            .ctx("recording the site id")?;
            let meta: [(&str, rusqlite::types::Value); 6] = [
                ("site_id", rusqlite::types::Value::Blob(site.0.to_vec())),
                ("hlc", rusqlite::types::Value::Integer(0)),
                ("head", rusqlite::types::Value::Integer(0)),
                (
                    "digest",
                    rusqlite::types::Value::Blob(Digest::EMPTY.to_bytes().to_vec()),
                ),
                (
                    "layout_hash",
                    rusqlite::types::Value::Text(schema.layout_hash().to_string()),
                ),
                (
                    "created_ms",
                    rusqlite::types::Value::Integer(clock.now_ms() as i64),
                ),
            ];
            for (k, v) in meta {
                tx.execute(
                    "INSERT INTO _puente_meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )
                .ctx("writing replica metadata")?;
            }
            tx.pragma_update(None, "user_version", FORMAT_VERSION)
                .ctx("stamping the replica format")?;
            tx.commit().ctx("creating the replica")?;
        }

        let corrupt = |detail: &str| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        let meta = |key: &str| -> Result<Option<rusqlite::types::Value>, StoreError> {
            conn.query_row(
                "SELECT value FROM _puente_meta WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading replica metadata")
        };
        use rusqlite::types::Value as V;
        let layout = match meta("layout_hash")? {
            Some(V::Text(s)) => s,
            _ => return Err(corrupt("layout hash missing")),
        };
        if layout != schema.layout_hash() {
            return Err(StoreError::LayoutChanged {
                path: path.to_path_buf(),
            });
        }
        let site = match meta("site_id")? {
            Some(V::Blob(b)) if b.len() == 16 => {
                SiteId(b.try_into().map_err(|_| corrupt("site id"))?)
            }
            _ => return Err(corrupt("site id missing")),
        };
        let int = |key: &str| -> Result<u64, StoreError> {
            match meta(key)? {
                Some(V::Integer(i)) if i >= 0 => Ok(i as u64),
                _ => Err(corrupt(key)),
            }
        };
        let hlc = Hlc(int("hlc")?);
        let head = int("head")?;
        let digest = match meta("digest")? {
            Some(V::Blob(b)) => Digest::from_bytes(&b).ok_or_else(|| corrupt("digest"))?,
            _ => return Err(corrupt("digest missing")),
        };
        let mut sites = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT idx, site FROM _puente_sites ORDER BY idx")
                .ctx("reading site ids")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .ctx("reading site ids")?;
            for row in rows {
                let (idx, bytes) = row.ctx("reading site ids")?;
                let id: [u8; 16] = bytes.try_into().map_err(|_| corrupt("site id size"))?;
                if idx as usize != sites.len() {
                    return Err(corrupt("site index gap"));
                }
                sites.push(SiteId(id));
            }
        }
        let local_site = sites
            .iter()
            .position(|s| *s == site)
            .ok_or_else(|| corrupt("own site id not interned"))? as u32;
        let site_index = sites
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        let mut tombstones = Vec::new();
        for t in &tables {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM _puente_tombstones WHERE tbl = ?1",
                    [&t.name],
                    |r| r.get(0),
                )
                .ctx("counting tombstones")?;
            tombstones.push(n as u64);
        }
        // The HLC never goes backwards: resume from the persisted value.
        let state = State {
            site,
            local_site,
            hlc: HlcState::resume(hlc),
            head,
            digest,
            sites,
            site_index,
            tombstones,
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            schema,
            keyring,
            clock,
            tables,
            state,
            seal_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// How many threads seal the cells of a bulk put (default: every core).
    pub fn set_seal_threads(&mut self, threads: usize) {
        self.seal_threads = threads.max(1);
    }

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
            self.conn.execute_batch("COMMIT").ctx("committing")?;
            Ok(value)
        });
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.state = saved;
        }
        result
    }

    fn save_state(&self) -> Result<(), StoreError> {
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

    fn column_index(&self, t: usize, column: &str) -> Result<usize, StoreError> {
        let table = &self.schema.tables[t];
        table
            .column_index(column)
            .ok_or_else(|| StoreError::UnknownColumn {
                table: table.name.clone(),
                column: column.to_string(),
                known: table
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
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
