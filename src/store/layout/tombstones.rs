//! Reading `_puente_tombstones`: one row shape and one reading for every
//! reader that goes through the whole table or its sequence (the full
//! digest, the snapshot for checks, changes since a cursor).
//!
//! Owns: `TombstoneRow`, the two reads, and the count per table the store
//! keeps to skip lookups in tables without tombstones.
//! Must not: write tombstones (the merge does) or decide what one means.

use rusqlite::Connection;

use crate::clock::Hlc;
use crate::store::layout::TableSql;
use crate::store::{SqlContext, StoreError};

/// One row of `_puente_tombstones`: a deleted row, the stamp of its delete
/// (hlc and the local index of the writing site), the peer it came from
/// (local index) and the change sequence that wrote it here.
#[derive(Debug, Clone)]
pub(in crate::store) struct TombstoneRow {
    pub table: String,
    pub id: String,
    pub hlc: Hlc,
    pub site: u32,
    pub via: u32,
    pub seq: u64,
}

const COLUMNS: &str = "tbl, id, hlc, site, via, seq";

impl TombstoneRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<TombstoneRow> {
        Ok(TombstoneRow {
            table: r.get(0)?,
            id: r.get(1)?,
            hlc: Hlc(r.get::<_, i64>(2)? as u64),
            site: r.get::<_, i64>(3)? as u32,
            via: r.get::<_, i64>(4)? as u32,
            seq: r.get::<_, i64>(5)? as u64,
        })
    }
}

/// Hands every tombstone to `each`, in no order; `context` names the work
/// in an error.
pub(in crate::store) fn each_tombstone(
    conn: &Connection,
    context: &'static str,
    mut each: impl FnMut(TombstoneRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM _puente_tombstones"))
        .ctx(context)?;
    let rows = stmt.query_map([], TombstoneRow::read).ctx(context)?;
    for row in rows {
        each(row.ctx(context)?)?;
    }
    Ok(())
}

/// The tombstones written after change sequence `after`, oldest first, at
/// most `limit`.
pub(in crate::store) fn tombstones_after(
    conn: &Connection,
    after: u64,
    limit: i64,
) -> Result<Vec<TombstoneRow>, StoreError> {
    let context = "reading tombstones";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM _puente_tombstones WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .ctx(context)?;
    stmt.query_map(rusqlite::params![after as i64, limit], TombstoneRow::read)
        .ctx(context)?
        .collect::<Result<_, _>>()
        .ctx(context)
}

/// How many tombstones each of `tables` has, in their order.
pub(in crate::store) fn count_per_table(
    conn: &Connection,
    tables: &[TableSql],
) -> Result<Vec<u64>, StoreError> {
    tables
        .iter()
        .map(|t| {
            conn.query_row(
                "SELECT count(*) FROM _puente_tombstones WHERE tbl = ?1",
                [&t.name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .ctx("counting tombstones")
        })
        .collect()
}
