//! Last-writer-wins merge of one row change or one tombstone.
//!
//! Owns: the merge rules, used alike by local writes and by batches from
//! peers: per column the greater (hlc, site id) wins (exact ties, which only
//! a damaged history can produce, go to the greater value encoding so every
//! replica still picks the same); a tombstone beats every update of its id
//! and erases the row. Each write takes the next change sequence and keeps
//! the digest in step.
//! Must not: open transactions (callers do) or validate input (callers do).

use std::cmp::Ordering;

use rusqlite::{OptionalExtension, params, params_from_iter};

use super::clocks::{CellClock, RowClocks};
use super::digest::{cell_hash, tombstone_hash};
use super::{SqlContext, Store, StoreError};
use crate::clock::Hlc;
use crate::value::Value;

/// A cell version about to be merged; `site` is a local site index.
#[derive(Debug)]
pub(super) struct IncomingCell {
    pub column: usize,
    pub hlc: Hlc,
    pub site: u32,
    /// The local index of the site this version arrived from.
    pub via: u32,
    pub value: Value,
}

/// An existing row as read for merging.
struct Existing {
    rowid: i64,
    clocks: RowClocks,
    values: Vec<Value>,
}

impl Store {
    fn compare_stamps(&self, a: (Hlc, u32), b: (Hlc, u32)) -> Ordering {
        a.0.cmp(&b.0)
            .then_with(|| self.state.sites[a.1 as usize].cmp(&self.state.sites[b.1 as usize]))
    }

    /// Whether `new` beats the current cell `(clock, value)`.
    fn wins(&self, new: &IncomingCell, clock: &CellClock, value: &Value) -> bool {
        if !clock.is_written() {
            return true;
        }
        match self.compare_stamps((new.hlc, new.site), (clock.hlc, clock.site)) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                new.value.encode_into(&mut a);
                value.encode_into(&mut b);
                a > b
            }
        }
    }

    pub(super) fn tombstone_of(
        &self,
        t: usize,
        id: &str,
    ) -> Result<Option<(Hlc, u32)>, StoreError> {
        if self.state.tombstones[t] == 0 {
            return Ok(None);
        }
        self.conn
            .prepare_cached("SELECT hlc, site FROM _puente_tombstones WHERE tbl = ?1 AND id = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.tables[t].name, id], |r| {
                    Ok((Hlc(r.get::<_, i64>(0)? as u64), r.get::<_, i64>(1)? as u32))
                })
                .optional()
            })
            .ctx("looking up a tombstone")
    }

    fn read_for_merge(&self, t: usize, id: &str) -> Result<Option<Existing>, StoreError> {
        let sql = &self.tables[t];
        let columns = sql.columns;
        let mut stmt = self
            .conn
            .prepare_cached(&sql.select_for_merge)
            .ctx("reading a row")?;
        let found = stmt
            .query_row([id], |r| {
                let rowid: i64 = r.get(0)?;
                let clocks: Vec<u8> = r.get(1)?;
                let mut values = Vec::with_capacity(columns);
                for i in 0..columns {
                    values.push(r.get::<_, Value>(i + 2)?);
                }
                Ok((rowid, clocks, values))
            })
            .optional()
            .ctx("reading a row")?;
        match found {
            None => Ok(None),
            Some((rowid, clocks, values)) => {
                let clocks =
                    RowClocks::decode(&clocks, columns).ok_or_else(|| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("cell metadata of {}/{id} has the wrong size", sql.name),
                    })?;
                Ok(Some(Existing {
                    rowid,
                    clocks,
                    values,
                }))
            }
        }
    }

    fn hash_cell(
        &self,
        t: usize,
        id: &str,
        column: usize,
        value: &Value,
        clock: &CellClock,
    ) -> super::Digest {
        let table = &self.schema.tables[t];
        cell_hash(
            &table.name,
            id,
            &table.columns[column].name,
            value,
            clock.hlc,
            &self.state.sites[clock.site as usize],
        )
    }

    /// Merges cell versions into row `id` of table `t`. Returns how many
    /// cells were written (0 if every version lost or the row is deleted).
    pub(super) fn merge_row(
        &mut self,
        t: usize,
        id: &str,
        incoming: Vec<IncomingCell>,
    ) -> Result<usize, StoreError> {
        if self.tombstone_of(t, id)?.is_some() {
            return Ok(0);
        }
        let columns = self.tables[t].columns;
        // Resolve the incoming versions among themselves, as for a new row.
        let mut clocks = RowClocks::new(columns);
        let mut values = vec![Value::Null; columns];
        for cell in incoming {
            if self.wins(&cell, &clocks.0[cell.column], &values[cell.column]) {
                clocks.0[cell.column] = CellClock {
                    hlc: cell.hlc,
                    site: cell.site,
                    via: cell.via,
                    seq: 0,
                };
                values[cell.column] = cell.value;
            }
        }
        if !clocks.0.iter().any(CellClock::is_written) {
            return Ok(0);
        }
        // Fast path: a row this replica has never seen takes every version
        // with one insert (no lookup first).
        let seq = self.next_seq();
        for clock in clocks.0.iter_mut().filter(|c| c.is_written()) {
            clock.seq = seq;
        }
        if self.insert_row(t, id, &clocks, &values, seq)? {
            self.state.counts.rows[t] += 1;
            for (c, (clock, value)) in clocks.0.iter().zip(&values).enumerate() {
                if clock.is_written() {
                    let h = self.hash_cell(t, id, c, value, clock);
                    self.state.digest.add(&h);
                    if self.schema.tables[t].columns[c].is_sealed() {
                        self.state.counts.sealed_cells += 1;
                    }
                }
            }
            return Ok(clocks.0.iter().filter(|c| c.is_written()).count());
        }
        // The row exists: merge cell by cell. The sequence taken above is
        // given back so that only real writes consume one.
        self.state.head -= 1;
        let Some(existing) = self.read_for_merge(t, id)? else {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("row {}/{id} neither inserts nor reads", self.tables[t].name),
            });
        };
        let (rowid, mut current, mut current_values) =
            (existing.rowid, existing.clocks, existing.values);
        let mut changed = vec![false; columns];
        let mut replaced: Vec<Option<(CellClock, Value)>> = vec![None; columns];
        for c in 0..columns {
            if !clocks.0[c].is_written() {
                continue;
            }
            let cell = IncomingCell {
                column: c,
                hlc: clocks.0[c].hlc,
                site: clocks.0[c].site,
                via: clocks.0[c].via,
                value: std::mem::replace(&mut values[c], Value::Null),
            };
            if !self.wins(&cell, &current.0[c], &current_values[c]) {
                continue;
            }
            if current.0[c].is_written() {
                replaced[c] = Some((
                    current.0[c],
                    std::mem::replace(&mut current_values[c], Value::Null),
                ));
            } else if self.schema.tables[t].columns[c].is_sealed() {
                self.state.counts.sealed_cells += 1;
            }
            current.0[c] = CellClock {
                hlc: cell.hlc,
                site: cell.site,
                via: cell.via,
                seq: 0,
            };
            current_values[c] = cell.value;
            changed[c] = true;
        }
        let written = changed.iter().filter(|c| **c).count();
        if written == 0 {
            return Ok(0);
        }
        let seq = self.next_seq();
        for c in 0..columns {
            if !changed[c] {
                continue;
            }
            current.0[c].seq = seq;
            if let Some((old_clock, old_value)) = &replaced[c] {
                let h = self.hash_cell(t, id, c, old_value, old_clock);
                self.state.digest.sub(&h);
            }
            let h = self.hash_cell(t, id, c, &current_values[c], &current.0[c]);
            self.state.digest.add(&h);
        }
        let blob = current.encode();
        let seq_arg = seq as i64;
        let mut stmt = self
            .conn
            .prepare_cached(&self.tables[t].update)
            .ctx("updating a row")?;
        let args = std::iter::once(&rowid as &dyn rusqlite::ToSql)
            .chain(current_values.iter().map(|v| v as &dyn rusqlite::ToSql))
            .chain([
                &blob as &dyn rusqlite::ToSql,
                &seq_arg as &dyn rusqlite::ToSql,
            ]);
        stmt.execute(params_from_iter(args)).ctx("updating a row")?;
        Ok(written)
    }

    /// Inserts a new row; false (and nothing written) if `id` exists.
    fn insert_row(
        &self,
        t: usize,
        id: &str,
        clocks: &RowClocks,
        values: &[Value],
        seq: u64,
    ) -> Result<bool, StoreError> {
        let blob = clocks.encode();
        let seq_arg = seq as i64;
        let mut stmt = self
            .conn
            .prepare_cached(&self.tables[t].insert)
            .ctx("inserting a row")?;
        let args = std::iter::once(&id as &dyn rusqlite::ToSql)
            .chain(values.iter().map(|v| v as &dyn rusqlite::ToSql))
            .chain([
                &blob as &dyn rusqlite::ToSql,
                &seq_arg as &dyn rusqlite::ToSql,
            ]);
        let inserted = stmt
            .execute(params_from_iter(args))
            .ctx("inserting a row")?;
        Ok(inserted == 1)
    }

    /// Merges a tombstone for row `id` of table `t`. Returns whether it was
    /// written (false if an equal or greater tombstone was already there).
    pub(super) fn merge_tombstone(
        &mut self,
        t: usize,
        id: &str,
        hlc: Hlc,
        site: u32,
        via: u32,
    ) -> Result<bool, StoreError> {
        let previous = self.tombstone_of(t, id)?;
        if let Some(prev) = previous {
            if self.compare_stamps((hlc, site), prev) != Ordering::Greater {
                return Ok(false);
            }
            let h = tombstone_hash(
                &self.tables[t].name,
                id,
                prev.0,
                &self.state.sites[prev.1 as usize],
            );
            self.state.digest.sub(&h);
        }
        if let Some(existing) = self.read_for_merge(t, id)? {
            self.state.counts.rows[t] -= 1;
            for (c, clock) in existing.clocks.0.iter().enumerate() {
                if clock.is_written() {
                    let h = self.hash_cell(t, id, c, &existing.values[c], clock);
                    self.state.digest.sub(&h);
                    if self.schema.tables[t].columns[c].is_sealed() {
                        self.state.counts.sealed_cells -= 1;
                    }
                }
            }
            let sql = &self.tables[t];
            self.conn
                .prepare_cached(&sql.delete)
                .and_then(|mut s| s.execute([existing.rowid]))
                .ctx("deleting a row")?;
        }
        let seq = self.next_seq();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO _puente_tombstones (tbl, id, hlc, site, via, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![self.tables[t].name, id, hlc.0 as i64, site as i64, via as i64, seq as i64])
            })
            .ctx("writing a tombstone")?;
        let h = tombstone_hash(
            &self.tables[t].name,
            id,
            hlc,
            &self.state.sites[site as usize],
        );
        self.state.digest.add(&h);
        if previous.is_none() {
            self.state.tombstones[t] += 1;
        }
        Ok(true)
    }
}
