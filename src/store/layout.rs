//! On-disk layout of a replica: internal tables, user tables, format version.
//!
//! Owns: the DDL, the SQL text of every per-table statement, and
//! conversions between `Value` and SQLite values.
//! Must not: decide merges or hold state.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::config::TableDef;
use crate::value::Value;

/// The replica format this build writes (`PRAGMA user_version`).
pub const FORMAT_VERSION: i64 = 1;

pub const INTERNAL_DDL: &str = "
CREATE TABLE _puente_meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
CREATE TABLE _puente_sites (idx INTEGER PRIMARY KEY, site BLOB NOT NULL UNIQUE) STRICT;
CREATE TABLE _puente_cursors (
    peer BLOB PRIMARY KEY NOT NULL,
    base INTEGER NOT NULL,
    progress INTEGER NOT NULL
) STRICT;
CREATE TABLE _puente_tombstones (
    tbl TEXT NOT NULL,
    id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    site INTEGER NOT NULL,
    via INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tbl, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX _puente_tombstones_seq ON _puente_tombstones (seq);
";

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// SQL of one user table. Columns are selected in canonical (name) order
/// so that column `i` of a result is the table's column index `i`.
#[derive(Debug, Clone)]
pub struct TableSql {
    pub name: String,
    pub columns: usize,
    pub create: String,
    pub select_for_merge: String,
    pub insert: String,
    pub update: String,
    pub delete: String,
    pub since: String,
    pub get: String,
    pub page: String,
}

impl TableSql {
    pub fn new(table: &TableDef) -> TableSql {
        let t = quote(&table.name);
        let canonical: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let cols = canonical.join(", ");
        let n = canonical.len();
        let file_order: Vec<String> = table
            .file_order
            .iter()
            .map(|&i| {
                let c = &table.columns[i];
                if c.is_sealed() {
                    format!("{} BLOB", quote(&c.name))
                } else {
                    quote(&c.name)
                }
            })
            .collect();
        let create = format!(
            "CREATE TABLE {t} (id TEXT PRIMARY KEY NOT NULL, {}, _puente_clocks BLOB NOT NULL, _puente_seq INTEGER NOT NULL);\n\
             CREATE INDEX {} ON {t} (_puente_seq);",
            file_order.join(", "),
            quote(&format!("_puente_{}_seq", table.name))
        );
        let placeholders: Vec<String> = (2..n + 4).map(|i| format!("?{i}")).collect();
        let sets: Vec<String> = canonical
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect();
        TableSql {
            name: table.name.clone(),
            columns: n,
            create,
            select_for_merge: format!(
                "SELECT rowid, _puente_clocks, {cols} FROM {t} WHERE id = ?1"
            ),
            insert: format!(
                "INSERT INTO {t} (id, {cols}, _puente_clocks, _puente_seq) VALUES (?1, {}) ON CONFLICT (id) DO NOTHING",
                placeholders.join(", ")
            ),
            update: format!(
                "UPDATE {t} SET {}, _puente_clocks = ?{}, _puente_seq = ?{} WHERE rowid = ?1",
                sets.join(", "),
                n + 2,
                n + 3
            ),
            delete: format!("DELETE FROM {t} WHERE rowid = ?1"),
            since: format!(
                "SELECT id, _puente_clocks, _puente_seq, {cols} FROM {t} WHERE _puente_seq > ?1 ORDER BY _puente_seq LIMIT ?2"
            ),
            get: format!("SELECT id, _puente_clocks, {cols} FROM {t} WHERE id = ?1"),
            page: format!(
                "SELECT id, _puente_clocks, {cols} FROM {t} WHERE id > ?1 ORDER BY id LIMIT ?2"
            ),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl FromSql for Value {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(t) => Value::Text(
                String::from_utf8(t.to_vec()).map_err(|e| FromSqlError::Other(Box::new(e)))?,
            ),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}
