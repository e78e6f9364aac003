//! Tables local to this replica, never synced: the office's staff logins.
//!
//! `_puente_staff` holds one row per staff member: name, role, the SHA-256
//! of their login token and of their calendar token, and when they were
//! added. Sync never reads it (changes-since, the digest and the counts
//! cover the schema's tables only), so each office has its own staff.
//!
//! Owns: the table's SQL (made on first use with CREATE TABLE IF NOT
//! EXISTS) and a small API over it.
//! Must not: hold a token itself (only hashes reach SQLite), or decide
//! roles and sessions (web/ does).

use rusqlite::{OptionalExtension, params};

use crate::store::{SqlContext, Store, StoreError};

const STAFF_DDL: &str = "CREATE TABLE IF NOT EXISTS _puente_staff (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    login_hash BLOB NOT NULL UNIQUE,
    calendar_hash BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
) STRICT";

const COLUMNS: &str = "id, name, role, created_ms";

/// One staff member as stored (never their tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_ms: u64,
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffRecord> {
    Ok(StaffRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        created_ms: r.get::<_, i64>(3)?.max(0) as u64,
    })
}

impl Store {
    fn ensure_staff(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(STAFF_DDL)
            .ctx("creating the staff table")
    }

    /// Adds a staff member; None if the name is taken.
    pub fn staff_add(
        &mut self,
        name: &str,
        role: &str,
        login_hash: &[u8; 32],
        calendar_hash: &[u8; 32],
    ) -> Result<Option<StaffRecord>, StoreError> {
        self.ensure_staff()?;
        let now = self.now_ms() as i64;
        let added = self
            .conn
            .execute(
                "INSERT INTO _puente_staff (name, role, login_hash, calendar_hash, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                params![name, role, &login_hash[..], &calendar_hash[..], now],
            )
            .ctx("adding a staff member")?;
        if added == 0 {
            return Ok(None);
        }
        self.staff_by_name(name)
    }

    pub fn staff_list(&self) -> Result<Vec<StaffRecord>, StoreError> {
        self.ensure_staff()?;
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM _puente_staff ORDER BY name"
            ))
            .ctx("listing staff")?;
        stmt.query_map([], record)
            .ctx("listing staff")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("listing staff")
    }

    /// Removes a staff member (their hashes are overwritten on disk:
    /// secure_delete); false if there was none of that name.
    pub fn staff_remove(&mut self, name: &str) -> Result<bool, StoreError> {
        self.ensure_staff()?;
        let n = self
            .conn
            .execute("DELETE FROM _puente_staff WHERE name = ?1", [name])
            .ctx("removing a staff member")?;
        Ok(n > 0)
    }

    fn staff_where(
        &self,
        clause: &str,
        value: &dyn rusqlite::ToSql,
    ) -> Result<Option<StaffRecord>, StoreError> {
        self.ensure_staff()?;
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM _puente_staff WHERE {clause} = ?1"
            ))
            .and_then(|mut s| s.query_row([value], record).optional())
            .ctx("looking up a staff member")
    }

    pub fn staff_by_name(&self, name: &str) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("name", &name)
    }

    pub fn staff_by_id(&self, id: i64) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("id", &id)
    }

    /// The staff member whose login token hashes to `hash`.
    pub fn staff_by_login(&self, hash: &[u8; 32]) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("login_hash", &&hash[..])
    }

    /// The staff member whose calendar token hashes to `hash`.
    pub fn staff_by_calendar(&self, hash: &[u8; 32]) -> Result<Option<StaffRecord>, StoreError> {
        self.staff_where("calendar_hash", &&hash[..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{ManualClock, WallClock};
    use crate::config::Schema;
    use crate::seal::Keyring;

    fn store(dir: &std::path::Path) -> Store {
        let schema = Arc::new(
            Schema::parse(
                std::path::Path::new("schema.toml"),
                crate::config::schema::DEFAULT_SCHEMA,
            )
            .unwrap(),
        );
        Store::open(
            &dir.join("puente.db"),
            crate::store::StoreOptions::new(
                schema,
                Arc::new(Keyring::empty()),
                ManualClock::new(5_000) as Arc<dyn WallClock>,
            ),
        )
        .unwrap()
    }

    #[test]
    fn staff_are_added_found_by_hash_and_removed_without_touching_sync_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let (head, digest) = (s.head(), s.digest());
        assert!(s.staff_list().unwrap().is_empty());
        let a = s
            .staff_add("editor-tj", "editor", &[1; 32], &[2; 32])
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.name.as_str(), a.role.as_str(), a.created_ms),
            ("editor-tj", "editor", 5_000)
        );
        assert!(
            s.staff_add("editor-tj", "viewer", &[3; 32], &[4; 32])
                .unwrap()
                .is_none()
        );
        assert_eq!(s.staff_by_login(&[1; 32]).unwrap(), Some(a.clone()));
        assert_eq!(s.staff_by_calendar(&[2; 32]).unwrap(), Some(a.clone()));
        assert_eq!(s.staff_by_login(&[2; 32]).unwrap(), None);
        assert_eq!(s.staff_by_id(a.id).unwrap(), Some(a));
        assert_eq!(
            (s.head(), s.digest()),
            (head, digest),
            "staff are not replicated data"
        );
        assert!(s.staff_remove("editor-tj").unwrap());
        assert!(!s.staff_remove("editor-tj").unwrap());
        assert_eq!(s.staff_by_login(&[1; 32]).unwrap(), None);
        // Nothing of it is a change to send.
        let out = s
            .changes_since(crate::store::Cursor::ZERO, 100, 1 << 20, None)
            .unwrap();
        assert!(out.batch.changes.is_empty());
    }
}
