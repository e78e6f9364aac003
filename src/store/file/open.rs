//! Owns: opening a replica: the key (plain or SQLCipher, see `cipher`),
//! format checks and migrations (migrate.rs), creation, loading the
//! in-memory state from `_puente_meta` with the layout the replica records
//! (layout/columns.rs), then adopting the schema (adopt/).
//!
//! Must not: modify an existing file that is not a puente replica of a
//! format this build knows; on any error nothing is created, and a schema
//! change that is refused changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, params};

use crate::clock::{Hlc, HlcState, WallClock};
use crate::config::Schema;
use crate::seal::Keyring;
use crate::stamp::SiteId;
use crate::store::adopt::plan::Allow;
use crate::store::file::cipher::{self, AtRest};
use crate::store::layout::columns::{self, COLUMNS_DDL, tables_as_stored};
use crate::store::layout::tombstones;
use crate::store::layout::{FORMAT_VERSION, INTERNAL_DDL, TableSql};
use crate::store::{Digest, ReplicaState, RowCounts, SqlContext, Store, StoreError, file::migrate};

/// How to open a replica: what every opening needs (the schema, the
/// keyring, the clock) and what some change from the defaults.
#[derive(Clone)]
pub struct StoreOptions {
    pub schema: Arc<Schema>,
    pub keyring: Arc<Keyring>,
    pub clock: Arc<dyn WallClock>,
    /// How the file is stored: plain unless `at_rest` says otherwise.
    pub at_rest: AtRest,
    /// The site id a replica created here takes: random unless
    /// `new_site` says otherwise (the simulator replays runs from a seed;
    /// the daemon always uses a random one). An existing replica keeps
    /// its own.
    pub new_site: Option<SiteId>,
    /// The schema changes adopted at open: those that may happen by
    /// themselves (the default), also those the admin allowed
    /// (`allowing`), or none: the replica opened as it records its
    /// layout (`unadopted`, for `puente schema plan` and `apply`, which
    /// adopt explicitly).
    pub adopt: Option<Allow>,
}

impl StoreOptions {
    pub fn new(schema: Arc<Schema>, keyring: Arc<Keyring>, clock: Arc<dyn WallClock>) -> Self {
        StoreOptions {
            schema,
            keyring,
            clock,
            at_rest: AtRest::Plain,
            new_site: None,
            adopt: Some(Allow::default()),
        }
    }

    /// Opens the file as `at_rest` says (plain, or SQLCipher with a key).
    pub fn at_rest(mut self, at_rest: &AtRest) -> Self {
        self.at_rest = at_rest.clone();
        self
    }

    /// A replica created here takes the site id `site`.
    pub fn new_site(mut self, site: SiteId) -> Self {
        self.new_site = Some(site);
        self
    }

    /// Adopts a schema change that needs a word from the admin (`puente
    /// schema apply --allow-drop`, `puente schema unseal`).
    pub fn allowing(mut self, allow: &Allow) -> Self {
        self.adopt = Some(allow.clone());
        self
    }

    /// Opens the replica as it records its layout, without adopting the
    /// schema.
    pub fn unadopted(mut self) -> Self {
        self.adopt = None;
        self
    }
}

impl Store {
    /// Opens the replica at `path` as `options` say, creating it (and its
    /// tables) if the file does not exist. The folder must exist. On any
    /// error nothing is created or modified: a plain file where a key is
    /// expected, an encrypted one where none is, or a wrong key are
    /// refused before anything is written.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let StoreOptions {
            schema,
            keyring,
            clock,
            at_rest,
            new_site,
            adopt,
        } = options;
        Store::open_inner(
            path,
            &at_rest,
            schema,
            keyring,
            clock,
            new_site.unwrap_or_else(SiteId::random),
            adopt.as_ref(),
        )
    }

    fn open_inner(
        path: &Path,
        at_rest: &AtRest,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn WallClock>,
        new_site: SiteId,
        allow: Option<&Allow>,
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
        let kind = cipher::file_kind(path).map_err(|e| StoreError::DataDirUnwritable {
            dir: dir.to_path_buf(),
            source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
        })?;
        cipher::check_kind(path, kind, at_rest)?;
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
        let result = cipher::unlock(&conn, at_rest).and_then(|()| {
            let opening = Opening {
                path,
                at_rest,
                writable: true,
            };
            let store = Store::prepare(conn, opening, schema.clone(), keyring, clock, new_site)?;
            match allow {
                Some(allow) => store.adopted(schema, allow),
                None => Ok(store),
            }
        });
        if result.is_err() && !existed {
            for p in cipher::companions(path) {
                let _ = std::fs::remove_file(p);
            }
        }
        result
    }

    /// Checks the file's format, switches it to WAL, creates the replica if
    /// the file is new, and loads the in-memory state. A connection that
    /// may not write (`backup::open_snapshot`) is only checked and loaded.
    pub(in crate::store) fn prepare(
        conn: Connection,
        opening: Opening<'_>,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn WallClock>,
        new_site: SiteId,
    ) -> Result<Store, StoreError> {
        let Opening {
            path,
            at_rest,
            writable,
        } = opening;
        let found = read_format(&conn, path, at_rest)?;
        let stored = if writable {
            configure(&conn, path)?;
            match found {
                Found::Empty => create(&conn, &schema, clock.now_ms(), new_site)?,
                Found::Replica(1) => migrate::format_1_to_2(&conn, path, &schema)?,
                Found::Replica(_) => {}
            }
            columns::read(&conn)?
        } else {
            // A copy read in place: a format 1 file is read as its
            // migration would record it, without writing.
            match found {
                Found::Empty => {
                    return Err(StoreError::NotPuente {
                        path: path.to_path_buf(),
                    });
                }
                Found::Replica(1) => migrate::format_1_layout(&conn, &schema)?,
                Found::Replica(_) => columns::read(&conn)?,
            }
        };
        if !writable {
            // A copy is read as it is; it must be one this schema could be
            // adopted by without a word from the admin (what a restore
            // does next).
            let plan = crate::store::adopt::plan::plan(&stored, &schema);
            if crate::store::adopt::plan::refusal(&plan, &Allow::default()).is_some() {
                return Err(StoreError::SchemaChangeRefused {
                    path: path.to_path_buf(),
                    why: plan.describe().join("; "),
                });
            }
        }
        // Loaded as the replica records itself; `adopted` then brings it to
        // the schema.
        let tables = tables_as_stored(&stored);
        let meta = parse_meta(path, read_meta(&conn)?)?;
        let state = load_state(&conn, path, &tables, meta)?;
        let cipher = match at_rest {
            AtRest::Plain => None,
            AtRest::Encrypted { .. } => conn
                .query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
                .ok(),
        };
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            schema,
            keyring,
            clock,
            tables,
            state,
            seal_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cipher,
            at_rest: at_rest.clone(),
            office: None,
            held_limits: (crate::store::MAX_HELD_ENTRIES, crate::store::MAX_HELD_BYTES),
            max_drift_ms: Some(crate::clock::DEFAULT_MAX_DRIFT_MS),
            commit_observer: None,
            echo: Default::default(),
        };
        store.load_guard()?;
        Ok(store)
    }

    /// How many threads seal the cells of a bulk put (default: every core).
    pub fn set_seal_threads(&mut self, threads: usize) {
        self.seal_threads = threads.max(1);
    }
}

/// Which file `prepare` opens and how.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct Opening<'a> {
    pub path: &'a Path,
    pub at_rest: &'a AtRest,
    /// False for a read-only look at a copy: nothing is configured or
    /// created.
    pub writable: bool,
}

/// What an openable file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A new or empty database: the replica is created in it.
    Empty,
    /// A puente replica of a format this build knows (migrated if older).
    Replica(i64),
}

/// Reads the format number and the number of tables: the first read, so
/// a wrong key shows here.
fn read_format(conn: &Connection, path: &Path, at_rest: &AtRest) -> Result<Found, StoreError> {
    let not_sqlite = |source| cipher::first_read_error(path, at_rest, source);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(not_sqlite)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(not_sqlite)?;
    classify(path, version, tables)
}

/// Decides from the format number and the table count whether the file
/// may be opened as a replica or created as one.
fn classify(path: &Path, version: i64, tables: i64) -> Result<Found, StoreError> {
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            known: FORMAT_VERSION,
        });
    }
    match (version, tables) {
        (0, 0) => Ok(Found::Empty),
        (0, _) => Err(StoreError::NotPuente {
            path: path.to_path_buf(),
        }),
        (v, _) => Ok(Found::Replica(v)),
    }
}

/// WAL and the pragmas every connection to a replica runs with.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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
    .ctx("setting replica pragmas")
}

/// Creates the tables and metadata of a new replica with site id `site`,
/// in one transaction.
fn create(conn: &Connection, schema: &Schema, now_ms: u64, site: SiteId) -> Result<(), StoreError> {
    use rusqlite::types::Value as V;
    let tx = conn.unchecked_transaction().ctx("creating the replica")?;
    tx.execute_batch(INTERNAL_DDL)
        .ctx("creating internal tables")?;
    tx.execute_batch(COLUMNS_DDL)
        .ctx("creating internal tables")?;
    for t in &schema.tables {
        tx.execute_batch(&TableSql::for_new_table(t).create)
            .ctx("creating user tables")?;
    }
    columns::write(&tx, &columns::from_schema(schema))?;
    tx.execute(
        "INSERT INTO _puente_sites (idx, site) VALUES (0, ?1)",
        [&site.0[..]],
    )
    .ctx("recording the site id")?;
    let meta: [(&str, V); 5] = [
        ("site_id", V::Blob(site.0.to_vec())),
        ("hlc", V::Integer(0)),
        ("head", V::Integer(0)),
        ("digest", V::Blob(Digest::EMPTY.to_bytes().to_vec())),
        ("created_ms", V::Integer(now_ms as i64)),
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
    tx.commit().ctx("creating the replica")
}

/// What `_puente_meta` says of the replica, checked.
#[derive(Debug, Clone, PartialEq)]
struct Meta {
    site: SiteId,
    hlc: Hlc,
    head: u64,
    digest: Digest,
    /// The saved row and sealed-cell counts, if any (older replicas have
    /// none).
    counts: Option<Vec<u8>>,
}

fn read_meta(conn: &Connection) -> Result<BTreeMap<String, MetaValue>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT key, value FROM _puente_meta")
        .ctx("reading replica metadata")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, MetaValue>(1)?))
        })
        .ctx("reading replica metadata")?;
    rows.collect::<Result<_, _>>()
        .ctx("reading replica metadata")
}

type MetaValue = rusqlite::types::Value;

/// Checks the metadata: the site id 16 bytes, the clock and head
/// non-negative, the digest well formed.
fn parse_meta(path: &Path, mut meta: BTreeMap<String, MetaValue>) -> Result<Meta, StoreError> {
    use rusqlite::types::Value as V;
    let corrupt = |detail: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let site = match meta.remove("site_id") {
        Some(V::Blob(b)) => SiteId(b.try_into().map_err(|_| corrupt("site id missing"))?),
        _ => return Err(corrupt("site id missing")),
    };
    let int = |key: &str| match meta.get(key) {
        Some(V::Integer(i)) if *i >= 0 => Ok(*i as u64),
        _ => Err(corrupt(key)),
    };
    let hlc = Hlc(int("hlc")?);
    let head = int("head")?;
    let digest = match meta.get("digest") {
        Some(V::Blob(b)) => Digest::from_bytes(b).ok_or_else(|| corrupt("digest"))?,
        _ => return Err(corrupt("digest missing")),
    };
    let counts = match meta.remove("counts") {
        Some(V::Blob(b)) => Some(b),
        _ => None,
    };
    Ok(Meta {
        site,
        hlc,
        head,
        digest,
        counts,
    })
}

/// Orders the interned site ids by index (which must run 0, 1, 2, …) and
/// finds this replica's own.
fn index_sites(
    path: &Path,
    rows: Vec<(i64, Vec<u8>)>,
    own: SiteId,
) -> Result<(Vec<SiteId>, u32), StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let mut sites = Vec::with_capacity(rows.len());
    for (idx, bytes) in rows {
        let id: [u8; 16] = bytes.try_into().map_err(|_| corrupt("site id size"))?;
        if idx != sites.len() as i64 {
            return Err(corrupt("site index gap"));
        }
        sites.push(SiteId(id));
    }
    let local = sites
        .iter()
        .position(|s| *s == own)
        .ok_or_else(|| corrupt("own site id not interned"))?;
    Ok((sites, local as u32))
}

/// Loads what the store keeps in memory: interned sites, tombstones per
/// table, row and sealed-cell counts.
fn load_state(
    conn: &Connection,
    path: &Path,
    tables: &[TableSql],
    meta: Meta,
) -> Result<ReplicaState, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = conn
            .prepare("SELECT idx, site FROM _puente_sites ORDER BY idx")
            .ctx("reading site ids")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading site ids")?
            .collect::<Result<_, _>>()
            .ctx("reading site ids")?
    };
    let (sites, local_site) = index_sites(path, rows, meta.site)?;
    let site_index = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    let tombstones = tombstones::count_per_table(conn, tables)?;
    let counts = match meta
        .counts
        .and_then(|b| RowCounts::decode(&b, tables.len()))
    {
        Some(c) => c,
        // Older or fresh replicas: count once; saved with the next write.
        None => RowCounts::scan(conn, tables)?,
    };
    let keysets = crate::store::sealed::keysets::Keysets::load(conn, tables)?;
    // The HLC never goes backwards: resume from the persisted value.
    Ok(ReplicaState {
        site: meta.site,
        local_site,
        hlc: HlcState::resume(meta.hlc),
        head: meta.head,
        digest: meta.digest,
        sites,
        site_index,
        tombstones,
        counts,
        keysets,
        guard: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value as V;

    fn path() -> &'static Path {
        Path::new("/data/puente.db")
    }

    #[test]
    fn the_format_decides_create_open_or_refuse() {
        assert_eq!(classify(path(), 0, 0).unwrap(), Found::Empty);
        assert_eq!(classify(path(), 1, 7).unwrap(), Found::Replica(1));
        assert_eq!(classify(path(), 2, 7).unwrap(), Found::Replica(2));
        assert!(matches!(
            classify(path(), 0, 3),
            Err(StoreError::NotPuente { .. })
        ));
        assert!(matches!(
            classify(path(), FORMAT_VERSION + 1, 7),
            Err(StoreError::NewerFormat { found, .. }) if found == FORMAT_VERSION + 1
        ));
    }

    fn good_meta() -> BTreeMap<String, MetaValue> {
        [
            ("site_id", V::Blob(vec![7; 16])),
            ("hlc", V::Integer(42)),
            ("head", V::Integer(9)),
            ("digest", V::Blob(Digest::EMPTY.to_bytes().to_vec())),
            ("created_ms", V::Integer(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn detail(e: StoreError) -> String {
        match e {
            StoreError::Corrupt { detail, .. } => detail,
            other => panic!("not Corrupt: {other}"),
        }
    }

    #[test]
    fn metadata_is_checked_key_by_key() {
        let meta = parse_meta(path(), good_meta()).unwrap();
        assert_eq!(
            (meta.site, meta.hlc, meta.head, meta.counts),
            (SiteId([7; 16]), Hlc(42), 9, None)
        );

        let with = |key: &str, value: Option<V>| {
            let mut m = good_meta();
            match value {
                Some(v) => m.insert(key.to_string(), v),
                None => m.remove(key),
            };
            parse_meta(path(), m)
        };
        let cases = [
            ("site_id", Some(V::Blob(vec![1; 15])), "site id missing"),
            ("site_id", None, "site id missing"),
            ("hlc", Some(V::Integer(-1)), "hlc"),
            ("head", Some(V::Text("9".into())), "head"),
            ("digest", Some(V::Blob(vec![1, 2])), "digest"),
            ("digest", None, "digest missing"),
        ];
        for (key, value, expected) in cases {
            assert_eq!(detail(with(key, value).unwrap_err()), expected, "{key}");
        }
        let counts = with("counts", Some(V::Blob(vec![0; 8]))).unwrap();
        assert_eq!(counts.counts, Some(vec![0; 8]));
    }

    #[test]
    fn site_ids_run_from_zero_without_gaps_and_include_our_own() {
        let own = SiteId([2; 16]);
        let rows = vec![(0, vec![1; 16]), (1, vec![2; 16])];
        let (sites, local) = index_sites(path(), rows, own).unwrap();
        assert_eq!((sites.len(), local), (2, 1));
        let gap = vec![(0, vec![1; 16]), (2, vec![2; 16])];
        assert_eq!(
            detail(index_sites(path(), gap, own).unwrap_err()),
            "site index gap"
        );
        let short = vec![(0, vec![1; 15])];
        assert_eq!(
            detail(index_sites(path(), short, own).unwrap_err()),
            "site id size"
        );
        let foreign = vec![(0, vec![1; 16])];
        assert_eq!(
            detail(index_sites(path(), foreign, own).unwrap_err()),
            "own site id not interned"
        );
    }
}
