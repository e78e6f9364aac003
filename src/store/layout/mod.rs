//! On-disk layout of a replica: internal tables, user tables, format version.
//!
//! Owns: the DDL, the SQL text of every per-table statement, each user
//! table's columns in slot order (the order of their cells in the packed
//! clocks, which only grows at the end: see columns.rs) with the maps to
//! and from the schema's canonical (name) order used on the wire, and
//! conversions between `Value` and SQLite values.
//! Must not: decide merges or hold state.

pub(super) mod columns;
pub(super) mod tombstones;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::config::{ColumnDef, TableDef};
use crate::value::Value;

/// The replica format this build writes (`PRAGMA user_version`). Format 2
/// records each table's columns in slot order (`_puente_columns`), so
/// columns can be added without rewriting rows; format 1 replicas
/// (puente 0.1.0) are migrated at open (file/migrate.rs).
pub const FORMAT_VERSION: i64 = 2;

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

/// One user table: its columns in slot order, the maps to and from the
/// schema's canonical (name) order, and the SQL of every per-table
/// statement, whose column lists are in slot order so that column `i` of a
/// result is slot `i`.
#[derive(Debug, Clone)]
pub struct TableSql {
    pub name: String,
    /// Slots.
    pub columns: usize,
    /// Each slot's column (name, privacy, type), as the schema now says.
    pub defs: Vec<ColumnDef>,
    /// Slot of each canonical column index (None: a slot not in the schema,
    /// only while a drop waits to be applied).
    pub slot_of: Vec<usize>,
    /// Canonical column index of each slot.
    pub canonical_of: Vec<Option<u16>>,
    /// Slots in the order the schema file lists the columns (for display).
    pub display_order: Vec<usize>,
    /// Whether slot order is the canonical order (no mapping needed: every
    /// replica made since its schema last gained a column in the middle).
    pub identity: bool,
    pub create: String,
    pub select_for_merge: String,
    pub insert: String,
    pub update: String,
    pub delete: String,
    pub since: String,
    pub get: String,
    pub page: String,
}

/// A row as `TableSql::since` reads it.
pub struct ChangedRow {
    pub id: String,
    /// Packed clocks (cells/clocks.rs), as stored.
    pub clocks: Vec<u8>,
    pub seq: u64,
    pub values: Vec<Value>,
}

impl TableSql {
    /// One row read by `since`: its id, packed clocks, latest change
    /// sequence and values in slot order.
    pub fn read_since_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangedRow> {
        let mut values = Vec::with_capacity(self.columns);
        for i in 0..self.columns {
            values.push(r.get::<_, Value>(i + 3)?);
        }
        Ok(ChangedRow {
            id: r.get(0)?,
            clocks: r.get(1)?,
            seq: r.get::<_, i64>(2)? as u64,
            values,
        })
    }

    /// A table created for `table` of the schema: slots in canonical order.
    pub fn for_new_table(table: &TableDef) -> TableSql {
        TableSql::new(table, table.columns.clone())
    }

    /// The table as stored: `slots` are its columns in slot order; those
    /// the schema's `table` lists take its definitions.
    pub fn new(table: &TableDef, slots: Vec<ColumnDef>) -> TableSql {
        let t = quote(&table.name);
        let quoted: Vec<String> = slots.iter().map(|c| quote(&c.name)).collect();
        let cols = quoted.join(", ");
        let n = quoted.len();
        let canonical_of: Vec<Option<u16>> = slots
            .iter()
            .map(|c| table.column_index(&c.name).map(|i| i as u16))
            .collect();
        let mut slot_of = vec![usize::MAX; table.columns.len()];
        for (slot, canonical) in canonical_of.iter().enumerate() {
            if let Some(c) = canonical {
                slot_of[*c as usize] = slot;
            }
        }
        let display_order = table
            .file_order
            .iter()
            .filter_map(|&c| slot_of.get(c).copied().filter(|s| *s != usize::MAX))
            .collect();
        let identity = canonical_of.len() == table.columns.len()
            && canonical_of
                .iter()
                .enumerate()
                .all(|(s, c)| *c == Some(s as u16));
        let defs: Vec<ColumnDef> = slots
            .into_iter()
            .map(|c| match table.column_index(&c.name) {
                Some(i) => table.columns[i].clone(),
                None => c,
            })
            .collect();
        let declared: Vec<String> = table
            .file_order
            .iter()
            .map(|&i| column_declaration(&table.columns[i]))
            .collect();
        let create = format!(
            "CREATE TABLE {t} (id TEXT PRIMARY KEY NOT NULL, {}, _puente_clocks BLOB NOT NULL, _puente_seq INTEGER NOT NULL);\n\
             CREATE INDEX {} ON {t} (_puente_seq);",
            declared.join(", "),
            quote(&format!("_puente_{}_seq", table.name))
        );
        let placeholders: Vec<String> = (2..n + 4).map(|i| format!("?{i}")).collect();
        let sets: Vec<String> = quoted
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect();
        TableSql {
            name: table.name.clone(),
            columns: n,
            defs,
            slot_of,
            canonical_of,
            display_order,
            identity,
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

    /// The slot of column `name`.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|c| c.name == name)
    }

    /// A row's clocks and values in canonical order, from slot order
    /// (slots the schema no longer lists are left out).
    pub fn to_canonical<T: Default>(&self, by_slot: Vec<T>) -> Vec<T> {
        if self.identity {
            return by_slot;
        }
        let mut out: Vec<T> = (0..self.slot_of.len()).map(|_| T::default()).collect();
        for (slot, item) in by_slot.into_iter().enumerate() {
            if let Some(Some(c)) = self.canonical_of.get(slot) {
                out[*c as usize] = item;
            }
        }
        out
    }
}

/// A column as `CREATE TABLE` or `ALTER TABLE … ADD COLUMN` declares it:
/// sealed columns hold BLOBs (age files); typed columns get the SQLite type
/// their values have, so SQL tools sort and compare them right; others are
/// untyped.
pub fn column_declaration(c: &ColumnDef) -> String {
    use crate::config::types::ColumnType;
    let name = quote(&c.name);
    if c.is_sealed() {
        return format!("{name} BLOB");
    }
    match &c.ty {
        Some(ColumnType::Integer | ColumnType::Boolean) => format!("{name} INTEGER"),
        Some(ColumnType::Number) => format!("{name} NUMERIC"),
        Some(ColumnType::Text | ColumnType::Date | ColumnType::DateTime | ColumnType::OneOf(_)) => {
            format!("{name} TEXT")
        }
        None => name,
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
