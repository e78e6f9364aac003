//! The replica's own record of its layout (`_puente_columns`, from format
//! 2): the user tables it holds and, per table, its columns in slot order —
//! the order of their cells in each row's packed clocks and SQL columns,
//! which only ever grows at the end, so adding a column rewrites no row —
//! each with the privacy class and type it was last adopted with.
//!
//! Owns: reading and writing that record, making it for a new replica, and
//! reading it back from the SQL of a format 1 replica (puente 0.1.0, whose
//! slots were the schema's name order).
//! Must not: decide what a change of schema means (adopt/plan.rs does).

use rusqlite::{Connection, params};

use crate::config::types::ColumnType;
use crate::config::{ColumnDef, Privacy, Schema, TableDef};
use crate::store::layout::TableSql;
use crate::store::{SqlContext, StoreError};

pub const COLUMNS_DDL: &str = "
CREATE TABLE _puente_columns (
    tbl TEXT NOT NULL,
    slot INTEGER NOT NULL,
    name TEXT NOT NULL,
    sealed TEXT,
    type TEXT,
    PRIMARY KEY (tbl, slot),
    UNIQUE (tbl, name)
) STRICT;
";

/// One table as the replica holds it: columns in slot order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTable {
    pub name: String,
    pub columns: Vec<ColumnDef>,
}

impl StoredTable {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The record for a replica made from `schema`: its tables, slots in the
/// schema's canonical order.
pub fn from_schema(schema: &Schema) -> Vec<StoredTable> {
    schema
        .tables
        .iter()
        .map(|t| StoredTable {
            name: t.name.clone(),
            columns: t.columns.clone(),
        })
        .collect()
}

/// Reads the record, tables by name.
pub fn read(conn: &Connection) -> Result<Vec<StoredTable>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT tbl, name, sealed, type FROM _puente_columns ORDER BY tbl, slot")
        .ctx("reading the replica's columns")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .ctx("reading the replica's columns")?;
    let mut tables: Vec<StoredTable> = Vec::new();
    for row in rows {
        let (table, name, sealed, ty) = row.ctx("reading the replica's columns")?;
        let column = ColumnDef {
            name,
            privacy: match sealed {
                Some(group) => Privacy::Sealed { group },
                None => Privacy::Shared,
            },
            ty: ty.as_deref().and_then(parse_type),
            // Not recorded: the writer's check, taken from the schema.
            required: false,
        };
        match tables.last_mut() {
            Some(t) if t.name == table => t.columns.push(column),
            _ => tables.push(StoredTable {
                name: table,
                columns: vec![column],
            }),
        }
    }
    Ok(tables)
}

/// Replaces the record (inside the caller's transaction).
pub fn write(conn: &Connection, tables: &[StoredTable]) -> Result<(), StoreError> {
    conn.execute("DELETE FROM _puente_columns", [])
        .ctx("recording the replica's columns")?;
    let mut stmt = conn
        .prepare(
            "INSERT INTO _puente_columns (tbl, slot, name, sealed, type) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .ctx("recording the replica's columns")?;
    for t in tables {
        for (slot, c) in t.columns.iter().enumerate() {
            stmt.execute(params![
                t.name,
                slot as i64,
                c.name,
                c.group(),
                c.ty.as_ref().map(ColumnType::canonical)
            ])
            .ctx("recording the replica's columns")?;
        }
    }
    Ok(())
}

/// A type as `ColumnType::canonical` wrote it.
fn parse_type(text: &str) -> Option<ColumnType> {
    match text.strip_prefix("one_of ") {
        Some(list) => ColumnType::one_of(serde_json::from_str::<Vec<String>>(list).ok()?),
        None => ColumnType::named(text),
    }
}

/// The record of a format 1 replica, read from its SQL: every user table,
/// its columns (all but `id` and puente's own) in name order, which was
/// the slot order of that format; a BLOB column was sealed — to the group
/// the schema names for it if it names one. Format 1 had no types.
pub fn from_format_1(conn: &Connection, schema: &Schema) -> Result<Vec<StoredTable>, StoreError> {
    let names: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_puente\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .ctx("reading a format 1 replica's tables")?;
        stmt.query_map([], |r| r.get(0))
            .ctx("reading a format 1 replica's tables")?
            .collect::<Result<_, _>>()
            .ctx("reading a format 1 replica's tables")?
    };
    let mut tables = Vec::new();
    for name in names {
        let mut stmt = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1)")
            .ctx("reading a format 1 replica's columns")?;
        let mut columns: Vec<(String, String)> = stmt
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading a format 1 replica's columns")?
            .collect::<Result<_, _>>()
            .ctx("reading a format 1 replica's columns")?;
        columns.retain(|(c, _)| !matches!(c.as_str(), "id" | "_puente_clocks" | "_puente_seq"));
        columns.sort();
        let in_schema = schema.table(&name);
        let columns = columns
            .into_iter()
            .map(|(c, declared)| {
                let privacy = if declared.eq_ignore_ascii_case("BLOB") {
                    let group = in_schema
                        .and_then(|t| t.columns.iter().find(|d| d.name == c))
                        .and_then(|d| d.group())
                        .unwrap_or("")
                        .to_string();
                    Privacy::Sealed { group }
                } else {
                    Privacy::Shared
                };
                ColumnDef {
                    name: c,
                    privacy,
                    ty: None,
                    required: false,
                }
            })
            .collect();
        tables.push(StoredTable { name, columns });
    }
    Ok(tables)
}

/// The tables as the replica records them: slots, privacy and types as
/// stored (the canonical maps are those of the stored columns alone until
/// the schema is adopted).
pub(in crate::store) fn tables_as_stored(stored: &[StoredTable]) -> Vec<TableSql> {
    stored
        .iter()
        .map(|t| {
            let mut columns = t.columns.clone();
            columns.sort_by(|a, b| a.name.cmp(&b.name));
            let file_order = t
                .columns
                .iter()
                .filter_map(|c| columns.iter().position(|d| d.name == c.name))
                .collect();
            let def = TableDef {
                name: t.name.clone(),
                columns,
                file_order,
            };
            TableSql::new(&def, t.columns.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_record_reads_back_what_was_written() {
        let schema = Schema::parse(
            Path::new("s.toml"),
            "[groups]\nmx = []\n[tables.b.columns]\nz = \"shared\"\na = { type = \"integer\" }\n\
             [tables.a.columns]\ns = { sealed = \"mx\", one_of = [\"x\", \"y\"] }\n",
        )
        .unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(COLUMNS_DDL).unwrap();
        let layout = from_schema(&schema);
        write(&conn, &layout).unwrap();
        let back = read(&conn).unwrap();
        assert_eq!(back, layout);
        assert_eq!(back[1].columns[0].name, "a", "slots in canonical order");
        assert_eq!(back[1].columns[0].ty, Some(ColumnType::Integer));
        assert_eq!(
            back[0].columns[0].ty,
            ColumnType::one_of(["x".into(), "y".into()])
        );
        assert_eq!(back[0].columns[0].group(), Some("mx"));
    }
}
