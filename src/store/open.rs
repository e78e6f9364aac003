//! Opening a replica: format and layout checks, creation, and loading the
//! in-memory state from `_puente_meta`.
//!
//! Must not: modify an existing file that is not a puente replica of a
//! format this build knows; on any error nothing is created.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::layout::{FORMAT_VERSION, INTERNAL_DDL, TableSql};
use super::{Counts, Digest, SqlContext, State, Store, StoreError};
use crate::clock::{Hlc, HlcState, WallClock};
use crate::config::Schema;
use crate::seal::Keyring;
use crate::stamp::SiteId;

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
        Store::open_with_site(path, schema, keyring, clock, SiteId::random())
    }

    /// As `open`, but a replica created here takes the site id `new_site`
    /// (the simulator replays runs from a seed; the daemon always uses a
    /// random one). An existing replica keeps its own.
    pub fn open_with_site(
        path: &Path,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn WallClock>,
        new_site: SiteId,
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
        let result = Store::prepare(conn, path, schema, keyring, clock, new_site);
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
        new_site: SiteId,
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
            "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA foreign_keys = OFF; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 32768; PRAGMA journal_size_limit = 67108864;",
        )
        .ctx("setting replica pragmas")?;

        let tables: Vec<TableSql> = schema.tables.iter().map(TableSql::new).collect();
        if version == 0 {
            let site = new_site;
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
        let counts = match meta("counts")? {
            Some(V::Blob(b)) => Counts::decode(&b, tables.len()),
            _ => None,
        };
        let counts = match counts {
            Some(c) => c,
            // Older or fresh replicas: count once; saved with the next write.
            None => Counts::scan(&conn, &schema)?,
        };
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
            counts,
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
}
