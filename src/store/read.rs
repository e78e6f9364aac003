//! Reading the replica: rows, revealed cells, statistics, full digest.
//!
//! Owns: get and paged list of live rows (sealed cells shown as sealed
//! unless the caller asks to reveal and this node holds an identity of the
//! group), counts for status, the rows that lack a value the schema
//! requires, and the slow full digest used to check the incremental one.
//! Must not: write, or return a sealed value other than inside `Plaintext`.

use rusqlite::OptionalExtension;

use crate::clock::Hlc;
use crate::config::Privacy;
use crate::seal::{self, Binding, SealError};
use crate::stamp::SiteId;
use crate::store::cells::clocks::RowClocks;
use crate::store::cells::digest::{Digest, cell_hash, tombstone_hash};
use crate::store::layout::tombstones::each_tombstone;
use crate::store::{SqlContext, Store, StoreError, valid_id};
use crate::value::{Plaintext, Value};

/// A row without a value the schema requires: (table, id, column).
pub type MissingValue = (String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    No,
    Yes,
}

/// One cell as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum CellView {
    /// A shared column's value (Null if never written).
    Value(Value),
    /// A sealed column holding ciphertext, not revealed.
    Sealed,
    /// A sealed column, decrypted and verified against its cell.
    Revealed(Plaintext),
    /// A sealed column never written.
    Empty,
}

/// A live row: cells in the schema file's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct RowView {
    pub id: String,
    pub cells: Vec<(String, CellView)>,
    /// The newest cell version in the row.
    pub updated: Hlc,
    /// The site that wrote that newest version.
    pub updated_by: SiteId,
}

impl RowView {
    pub fn cell(&self, column: &str) -> Option<&CellView> {
        self.cells.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

/// Counts for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub rows: Vec<(String, u64)>,
    pub sealed_cells: u64,
    pub tombstones: u64,
}

impl Store {
    pub(super) fn row_exists(&self, t: usize, id: &str) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE id = ?1",
            crate::store::layout::quote(&self.tables[t].name)
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.exists([id]))
            .ctx("looking up a row")
    }

    /// Whether `id` was deleted (a tombstone exists).
    /// Live rows that lack a value of a column the schema marks
    /// `required` (null or blank text): how many, and the first `limit`
    /// as (table, id, column), by table, column and id.
    pub fn missing_required(&self, limit: usize) -> Result<(u64, Vec<MissingValue>), StoreError> {
        let (mut total, mut listed) = (0u64, Vec::new());
        for table in &self.tables {
            for def in table.defs.iter().filter(|d| d.required) {
                let (t, c) = (
                    crate::store::layout::quote(&table.name),
                    crate::store::layout::quote(&def.name),
                );
                let sql = format!(
                    "SELECT id FROM {t} WHERE {c} IS NULL OR (typeof({c}) = 'text' AND trim({c}) = '') ORDER BY id"
                );
                let mut stmt = self
                    .conn
                    .prepare(&sql)
                    .ctx("finding rows without a required value")?;
                let ids = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .ctx("finding rows without a required value")?;
                for id in ids {
                    let id = id.ctx("finding rows without a required value")?;
                    total += 1;
                    if listed.len() < limit {
                        listed.push((table.name.clone(), id, def.name.clone()));
                    }
                }
            }
        }
        Ok((total, listed))
    }

    pub fn has_row(&self, table: &str, id: &str) -> Result<bool, StoreError> {
        let t = self.table_index(table)?;
        self.row_exists(t, id)
    }

    pub fn is_deleted(&self, table: &str, id: &str) -> Result<bool, StoreError> {
        let t = self.table_index(table)?;
        Ok(self.tombstone_of(t, id)?.is_some())
    }

    /// The tombstone of a deleted row: who deleted it, when.
    pub fn tombstone(
        &self,
        table: &str,
        id: &str,
    ) -> Result<Option<crate::stamp::Stamp>, StoreError> {
        let t = self.table_index(table)?;
        Ok(self
            .tombstone_of(t, id)?
            .map(|(hlc, site)| crate::stamp::Stamp {
                hlc,
                site: self.state.sites[site as usize],
            }))
    }

    /// One live row, or None.
    pub fn get(
        &self,
        table: &str,
        id: &str,
        reveal: Reveal,
    ) -> Result<Option<RowView>, StoreError> {
        let t = self.table_index(table)?;
        if !valid_id(id) {
            return Err(StoreError::InvalidId { id: id.to_string() });
        }
        self.check_reveal(t, reveal)?;
        let sql = &self.tables[t];
        let raw = self
            .conn
            .prepare_cached(&sql.get)
            .and_then(|mut s| s.query_row([id], |r| read_raw(r, sql.columns)).optional())
            .ctx("reading a row")?;
        raw.map(|raw| self.view(t, raw, reveal)).transpose()
    }

    /// Live rows ordered by id, starting after `after`, at most `limit`.
    pub fn list(
        &self,
        table: &str,
        after: Option<&str>,
        limit: usize,
        reveal: Reveal,
    ) -> Result<Vec<RowView>, StoreError> {
        let t = self.table_index(table)?;
        self.check_reveal(t, reveal)?;
        let sql = &self.tables[t];
        let mut stmt = self.conn.prepare_cached(&sql.page).ctx("listing rows")?;
        let raws = stmt
            .query_map(rusqlite::params![after.unwrap_or(""), limit as i64], |r| {
                read_raw(r, sql.columns)
            })
            .ctx("listing rows")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("listing rows")?;
        raws.into_iter()
            .map(|raw| self.view(t, raw, reveal))
            .collect()
    }

    /// Decrypts one sealed cell (verifying it belongs to that cell).
    pub fn reveal_cell(
        &self,
        table: &str,
        id: &str,
        column: &str,
    ) -> Result<Option<Plaintext>, StoreError> {
        let t = self.table_index(table)?;
        let c = self.column_index(t, column)?;
        let row = self.get(table, id, Reveal::No)?;
        if row.is_none() {
            return Ok(None);
        }
        let sql = &self.tables[t];
        let raw = self
            .conn
            .prepare_cached(&sql.get)
            .and_then(|mut s| s.query_row([id], |r| read_raw(r, sql.columns)))
            .ctx("reading a row")?;
        let clocks = self.decode_clocks(t, &raw.0, &raw.1)?;
        Ok(Some(self.open_cell(
            t,
            &raw.0,
            c,
            &raw.2[c],
            &clocks.0[c].hlc,
            clocks.0[c].site,
        )?))
    }

    fn check_reveal(&self, t: usize, reveal: Reveal) -> Result<(), StoreError> {
        if reveal == Reveal::No {
            return Ok(());
        }
        for column in &self.tables[t].defs {
            if let Privacy::Sealed { group } = &column.privacy
                && !self.can_unseal(group)
            {
                return Err(SealError::NoIdentity {
                    group: group.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The packed clocks of row `id` of table `t`; a blob of the wrong
    /// size is a damaged replica.
    pub(super) fn decode_clocks(
        &self,
        t: usize,
        id: &str,
        blob: &[u8],
    ) -> Result<RowClocks, StoreError> {
        RowClocks::decode(blob, self.tables[t].columns).ok_or_else(|| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!(
                "cell metadata of {}/{id} has the wrong size",
                self.tables[t].name
            ),
        })
    }

    pub(super) fn open_cell(
        &self,
        t: usize,
        id: &str,
        c: usize,
        value: &Value,
        hlc: &Hlc,
        site: u32,
    ) -> Result<Plaintext, StoreError> {
        let table = &self.tables[t];
        let column = &table.defs[c];
        let group_name = column.group().unwrap_or_default();
        let group = self
            .schema
            .group(group_name)
            .ok_or_else(|| SealError::NoRecipients {
                group: group_name.to_string(),
            })?;
        let binding = Binding {
            table: &table.name,
            id,
            column: &column.name,
            hlc: *hlc,
            site: self.state.sites[site as usize],
        };
        let bytes = match value {
            Value::Blob(b) => b.as_slice(),
            _ => &[],
        };
        tracing::trace!(table = %table.name, id, column = %column.name, "revealing a sealed cell");
        Ok(seal::open(&self.keyring, group, &binding, bytes)?)
    }

    fn view(&self, t: usize, raw: Raw, reveal: Reveal) -> Result<RowView, StoreError> {
        let clocks = self.decode_clocks(t, &raw.0, &raw.1)?;
        let table = &self.tables[t];
        let (id, _, mut values) = raw;
        let mut cells = Vec::with_capacity(values.len());
        for &c in &table.display_order {
            let column = &table.defs[c];
            let clock = clocks.0[c];
            let view = if !column.is_sealed() {
                CellView::Value(std::mem::replace(&mut values[c], Value::Null))
            } else if !clock.is_written() {
                CellView::Empty
            } else if reveal == Reveal::Yes {
                CellView::Revealed(self.open_cell(t, &id, c, &values[c], &clock.hlc, clock.site)?)
            } else {
                CellView::Sealed
            };
            cells.push((column.name.clone(), view));
        }
        let newest = clocks
            .0
            .iter()
            .max_by_key(|c| c.hlc)
            .copied()
            .unwrap_or_default();
        Ok(RowView {
            id,
            cells,
            updated: newest.hlc,
            updated_by: self
                .state
                .sites
                .get(newest.site as usize)
                .copied()
                .unwrap_or(self.state.site),
        })
    }

    /// Rows per table, sealed cells and tombstones (O(1): kept with every
    /// write).
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let rows = self
            .schema
            .tables
            .iter()
            .zip(&self.state.counts.rows)
            .map(|(t, n)| (t.name.clone(), *n))
            .collect();
        Ok(Stats {
            rows,
            sealed_cells: self.state.counts.sealed_cells,
            tombstones: self.state.tombstones.iter().sum(),
        })
    }

    /// Recomputes the digest from every row and tombstone (slow; tests use
    /// it to check the incremental digest).
    pub fn recompute_digest(&self) -> Result<Digest, StoreError> {
        let mut digest = Digest::EMPTY;
        for (t, sql) in self.tables.iter().enumerate() {
            let mut stmt = self.conn.prepare(&sql.page).ctx("recomputing the digest")?;
            let raws = stmt
                .query_map(rusqlite::params!["", i64::MAX], |r| {
                    read_raw(r, sql.columns)
                })
                .ctx("recomputing the digest")?;
            for raw in raws {
                let raw = raw.ctx("recomputing the digest")?;
                let clocks = self.decode_clocks(t, &raw.0, &raw.1)?;
                for (c, clock) in clocks.0.iter().enumerate() {
                    if clock.is_written() {
                        digest.add(&cell_hash(
                            &sql.name,
                            &raw.0,
                            &sql.defs[c].name,
                            &raw.2[c],
                            clock.hlc,
                            &self.state.sites[clock.site as usize],
                        ));
                    }
                }
            }
        }
        each_tombstone(&self.conn, "recomputing the digest", |row| {
            let site: SiteId = self.state.sites[row.site as usize];
            digest.add(&tombstone_hash(&row.table, &row.id, row.hlc, &site));
            Ok(())
        })?;
        Ok(digest)
    }
}

/// (id, clocks blob, values in canonical order)
pub(super) type Raw = (String, Vec<u8>, Vec<Value>);

pub(super) fn read_raw(r: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Raw> {
    let id: String = r.get(0)?;
    let clocks: Vec<u8> = r.get(1)?;
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(r.get::<_, Value>(i + 2)?);
    }
    Ok((id, clocks, values))
}
