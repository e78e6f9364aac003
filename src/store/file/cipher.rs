//! The replica encrypted at rest: SQLCipher keys on a connection.
//!
//! Owns: the raw 256-bit replica key (`ReplicaKey`: zeroized, redacted),
//! how a replica is stored (`AtRest`), putting the key on a connection
//! (`PRAGMA key` with a raw key, so no KDF at open) in zeroized text, what
//! a file on disk is (plain SQLite or not) before anything opens it, a
//! check of the key that writes nothing, the SQLCipher version, and copying
//! a replica to a new file under another key (`sqlcipher_export`).
//! Must not: read key files or credentials (node/replica_key does), or put
//! a key into an error, a log line or Debug output.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use zeroize::Zeroizing;

use crate::store::{SqlContext, StoreError};

/// Bytes of a replica key.
pub const KEY_BYTES: usize = 32;

/// Page size of every encrypted replica. SQLCipher's default is 4096;
/// SQLCipher (with OpenSSL 3) pays a fixed cost per page on top of the
/// cipher itself, and 8 KiB pages halve it: applying changes into an
/// encrypted replica then costs what it costs into an unencrypted one of 4
/// KiB pages, and a small write stays as quick (docs/performance.md). The
/// cipher is SQLCipher 4's default (AES-256, HMAC-SHA512 per page); a
/// client must say `PRAGMA cipher_page_size = 8192` after the key.
pub const CIPHER_PAGE_SIZE: u32 = 8192;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A raw 256-bit SQLCipher key. Debug prints a redaction marker; the bytes
/// are wiped on drop.
#[derive(Clone)]
pub struct ReplicaKey(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplicaKey(‹redacted›)")
    }
}

impl ReplicaKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> ReplicaKey {
        let mut key = ReplicaKey(Zeroizing::new([0u8; KEY_BYTES]));
        rand::fill(&mut key.0[..]);
        key
    }

    /// Reads 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<ReplicaKey> {
        let text = text.trim().as_bytes();
        if text.len() != 2 * KEY_BYTES {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut key = ReplicaKey(Zeroizing::new([0u8; KEY_BYTES]));
        for (i, pair) in text.chunks_exact(2).enumerate() {
            key.0[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(key)
    }

    /// The key as 64 lowercase hex digits, in a buffer wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Zeroizing::new(String::with_capacity(2 * KEY_BYTES));
        for b in self.0.iter() {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }

    /// SQLCipher's raw-key literal `x'…'`, wiped on drop.
    fn literal(&self) -> Zeroizing<String> {
        let hex = self.to_hex();
        let mut out = Zeroizing::new(String::with_capacity(3 + hex.len()));
        out.push_str("x'");
        out.push_str(&hex);
        out.push('\'');
        out
    }
}

/// How a replica is stored on disk.
#[derive(Debug, Clone)]
pub enum AtRest {
    /// A plain SQLite file: anyone who copies it can read it.
    Plain,
    /// SQLCipher with a raw key; `source` names where the key came from
    /// (for errors: "key file /etc/puente/keys/replica.key").
    Encrypted { key: ReplicaKey, source: String },
}

impl AtRest {
    pub fn is_encrypted(&self) -> bool {
        matches!(self, AtRest::Encrypted { .. })
    }
}

/// What a file holds, judged from its first bytes without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// No file, or an empty one: a replica can be created there.
    Missing,
    /// Starts with the plain SQLite header.
    PlainSqlite,
    /// Anything else: an encrypted replica (whose first bytes are its
    /// random salt), or not a database at all.
    Opaque,
}

/// Reads the first 16 bytes of `path`.
pub fn file_kind(path: &Path) -> std::io::Result<FileKind> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(match n {
        0 => FileKind::Missing,
        16 if &head == SQLITE_MAGIC => FileKind::PlainSqlite,
        _ => FileKind::Opaque,
    })
}

/// Decides from the file's kind whether `at_rest` can open it; errors name
/// the key source and say what to do. `Opaque` files under a key still
/// need the key checked (`probe`).
pub(in crate::store) fn check_kind(
    path: &Path,
    kind: FileKind,
    at_rest: &AtRest,
) -> Result<(), StoreError> {
    match (kind, at_rest) {
        (FileKind::Missing, _)
        | (FileKind::PlainSqlite, AtRest::Plain)
        | (FileKind::Opaque, AtRest::Encrypted { .. }) => Ok(()),
        (FileKind::Opaque, AtRest::Plain) => Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        }),
        (FileKind::PlainSqlite, AtRest::Encrypted { source, .. }) => {
            Err(StoreError::NotEncrypted {
                path: path.to_path_buf(),
                source_name: source.clone(),
            })
        }
    }
}

/// Silences SQLCipher's own log (on stderr by default): a wrong key
/// becomes our one-line error, not extra lines on the terminal.
fn quiet(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()))
        .ctx("configuring SQLCipher")
}

/// Puts the key on a fresh connection (before anything reads the file).
pub(in crate::store) fn unlock(conn: &Connection, at_rest: &AtRest) -> Result<(), StoreError> {
    quiet(conn)?;
    let AtRest::Encrypted { key, .. } = at_rest else {
        return Ok(());
    };
    let literal = key.literal();
    let mut pragma = Zeroizing::new(String::with_capacity(32 + literal.len()));
    pragma.push_str("PRAGMA key = \"");
    pragma.push_str(&literal);
    pragma.push_str("\";");
    pragma.push_str(&format!(" PRAGMA cipher_page_size = {CIPHER_PAGE_SIZE};"));
    // Temporary tables and indices stay in memory, never in a plain file.
    pragma.push_str(" PRAGMA temp_store = MEMORY;");
    conn.execute_batch(&pragma).ctx("setting the replica key")
}

/// Maps an error of the first read of a replica: "not a database" means a
/// wrong key (encrypted) or a file that is no SQLite database (plain).
pub(in crate::store) fn first_read_error(
    path: &Path,
    at_rest: &AtRest,
    source: rusqlite::Error,
) -> StoreError {
    match (source.sqlite_error_code(), at_rest) {
        (Some(rusqlite::ErrorCode::NotADatabase), AtRest::Encrypted { source, .. }) => {
            StoreError::WrongKey {
                path: path.to_path_buf(),
                source_name: source.clone(),
            }
        }
        (Some(rusqlite::ErrorCode::NotADatabase), AtRest::Plain) => StoreError::NotSqlite {
            path: path.to_path_buf(),
        },
        _ => StoreError::Sqlite {
            context: "opening the replica",
            source,
        },
    }
}

/// Checks that `at_rest` opens the replica at `path`, writing nothing: no
/// file is created, and an existing one is read through SQLite's
/// `immutable` mode (no lock, no WAL or shared-memory file). A missing
/// file passes (a replica would be created there).
pub fn probe(path: &Path, at_rest: &AtRest) -> Result<(), StoreError> {
    let kind = file_kind(path).map_err(|e| StoreError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_kind(path, kind, at_rest)?;
    if kind == FileKind::Missing {
        return Ok(());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(immutable_uri(path), flags).map_err(|e| {
        StoreError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    unlock(&conn, at_rest)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
    .map_err(|e| first_read_error(path, at_rest, e))
}

/// `file:PATH?immutable=1`, with the path percent-encoded.
pub(in crate::store) fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let path = crate::percent::encode_file_path(path.as_os_str().as_bytes());
    format!("file:{path}?immutable=1")
}

/// The SQLCipher version of this build, e.g. "4.20.0 community".
pub fn cipher_version() -> Option<String> {
    let conn = Connection::open_in_memory().ok()?;
    conn.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
        .ok()
}

/// Copies the replica at `from` (opened as `from_at_rest`) into a new file
/// `to` encrypted with `key`, with SQLCipher's `sqlcipher_export`, after
/// folding the source's WAL into its main file. `to` must not exist. The
/// copy is not yet synced to disk: the caller checks and syncs it.
pub fn export(
    from: &Path,
    from_at_rest: &AtRest,
    to: &Path,
    key: &ReplicaKey,
) -> Result<(), StoreError> {
    let target = AtRest::Encrypted {
        key: key.clone(),
        source: "new key".into(),
    };
    export_to(from, from_at_rest, to, &target)
}

/// As `export`, into a copy stored as `to_at_rest`: encrypted with its key,
/// or a plain SQLite file (a restore into an unencrypted node).
pub fn export_to(
    from: &Path,
    from_at_rest: &AtRest,
    to: &Path,
    to_at_rest: &AtRest,
) -> Result<(), StoreError> {
    if file_kind(from).ok() == Some(FileKind::Missing) {
        return Err(StoreError::Unreadable {
            path: from.to_path_buf(),
            reason: "there is no replica there".into(),
        });
    }
    // CREATE lets ATTACH make the new file.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(from, flags).map_err(|e| StoreError::Unreadable {
        path: from.to_path_buf(),
        reason: e.to_string(),
    })?;
    unlock(&conn, from_at_rest)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| first_read_error(from, from_at_rest, e))?;
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .ctx("checkpointing the replica before copying it")?;
    if busy != 0 {
        return Err(StoreError::Corrupt {
            path: from.to_path_buf(),
            detail: "its WAL could not be checkpointed (is another process using it?)".into(),
        });
    }
    let target = to.to_str().ok_or_else(|| StoreError::Unreadable {
        path: to.to_path_buf(),
        reason: "the path is not UTF-8".into(),
    })?;
    let literal = match to_at_rest {
        AtRest::Encrypted { key, .. } => key.literal(),
        // An empty key makes SQLCipher attach a plain SQLite file.
        AtRest::Plain => Zeroizing::new(String::new()),
    };
    conn.execute(
        "ATTACH DATABASE ?1 AS puente_export KEY ?2",
        rusqlite::params![target, literal.as_str()],
    )
    .ctx("creating the copy")?;
    if to_at_rest.is_encrypted() {
        conn.execute_batch(&format!(
            "PRAGMA puente_export.cipher_page_size = {CIPHER_PAGE_SIZE}"
        ))
        .ctx("setting the copy's page size")?;
    }
    let copied = conn
        .query_row("SELECT sqlcipher_export('puente_export')", [], |_| Ok(()))
        .ctx("copying the replica")
        .and_then(|()| {
            conn.pragma_update(Some("puente_export"), "user_version", version)
                .ctx("stamping the copy's format")
        });
    let detached = conn
        .execute_batch("DETACH DATABASE puente_export")
        .ctx("closing the copy");
    copied.and(detached)
}

/// Paths that belong to a database file: itself, its WAL, shared memory
/// and rollback journal.
pub fn companions(path: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex_and_never_show_in_debug() {
        let key = ReplicaKey::generate();
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        let again = ReplicaKey::from_hex(&format!("  {}\n", hex.as_str())).unwrap();
        assert_eq!(again.to_hex(), hex);
        assert!(!format!("{key:?}").contains(&hex[..8]));
        assert_ne!(ReplicaKey::generate().to_hex(), hex);
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            assert!(ReplicaKey::from_hex(bad).is_none(), "{bad}");
        }
        assert_eq!(key.literal().len(), 67);
    }

    #[test]
    fn uris_escape_everything_but_plain_path_characters() {
        assert_eq!(
            immutable_uri(Path::new("/tmp/a b/p?#%.db")),
            "file:/tmp/a%20b/p%3F%23%25.db?immutable=1"
        );
    }
}
