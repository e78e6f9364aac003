//! Last-writer-wins merge of one row change or one tombstone: the SQL
//! around the decisions in `cells/lww.rs`.
//!
//! Owns: reading the row or tombstone a change meets, writing the winner
//! with the next change sequence, and keeping the digest, the counts and
//! this office's clock in step (the clock observes every stamp written,
//! and nothing else: a version that loses, or is held, moves nothing).
//! The rules themselves (which version wins, that a tombstone beats every
//! update of its id and erases the row) are `lww`'s; which cells of a
//! peer's change this office may take is `judge`'s (the cells it may not
//! take, that would have won, are returned to be held).
//! Must not: open transactions (callers do), validate input (callers do) or
//! decide a winner itself.

use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::clock::Hlc;
use crate::mutants::{self, Mutant};
use crate::stamp::Stamp;
use crate::store::cells::clocks::{CellClock, RowClocks};
use crate::store::cells::digest::{cell_hash, tombstone_hash};
use crate::store::cells::lww::{self, CellOutcome, IncomingCell, RowCells};
use crate::store::rights::held::HeldCell;
use crate::store::rights::judge::{self, Refused};
use crate::store::{SqlContext, Store, StoreError};
use crate::value::Value;

/// An existing row as read for merging.
pub(in crate::store) struct Existing {
    rowid: i64,
    pub row: RowCells,
}

/// What merging one row change did.
#[derive(Debug, Default)]
pub(in crate::store) struct RowMerge {
    /// Cells written.
    pub written: usize,
    /// Cells this office may not take from the change and that would have
    /// won: for the caller to hold.
    pub held: Vec<HeldCell>,
}

impl Store {
    pub(in crate::store) fn stamp(&self, (hlc, site): (Hlc, u32)) -> Stamp {
        Stamp {
            hlc,
            site: self.state.sites[site as usize],
        }
    }

    pub(in crate::store) fn tombstone_of(
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

    pub(in crate::store) fn read_for_merge(
        &self,
        t: usize,
        id: &str,
    ) -> Result<Option<Existing>, StoreError> {
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
                let clocks = self.decode_clocks(t, id, &clocks)?;
                Ok(Some(Existing {
                    rowid,
                    row: RowCells { clocks, values },
                }))
            }
        }
    }

    pub(in crate::store) fn hash_cell(
        &self,
        t: usize,
        id: &str,
        column: usize,
        value: &Value,
        clock: &CellClock,
    ) -> crate::store::Digest {
        let table = &self.tables[t];
        cell_hash(
            &table.name,
            id,
            &table.defs[column].name,
            value,
            clock.hlc,
            &self.state.sites[clock.site as usize],
        )
    }

    /// Judges the written cells of `row` (as a row new here, or not).
    fn judge_row(&self, t: usize, row: &RowCells, new_row: bool) -> Vec<Option<Refused>> {
        judge::row(
            &self.schema.rights,
            t,
            &row.clocks.0,
            &self.tables[t].canonical_of,
            &self.state.sites,
            &self.state.guard.origins,
            new_row,
        )
    }

    /// Moves the refused cells out of `row`; those that would replace what
    /// `existing` holds (everything, for a new row) go to `held`.
    fn take_refused(
        &self,
        row: &mut RowCells,
        verdicts: &[Option<Refused>],
        existing: Option<&RowCells>,
        held: &mut Vec<HeldCell>,
    ) {
        for (c, verdict) in verdicts.iter().enumerate() {
            let Some(refused) = verdict else { continue };
            let clock = std::mem::take(&mut row.clocks.0[c]);
            let value = std::mem::replace(&mut row.values[c], Value::Null);
            let wins = existing.is_none_or(|e| {
                let current = e.clocks.0[c].is_written().then(|| {
                    (
                        self.stamp((e.clocks.0[c].hlc, e.clocks.0[c].site)),
                        &e.values[c],
                    )
                });
                lww::replaces((self.stamp((clock.hlc, clock.site)), &value), current)
            });
            if wins {
                held.push(HeldCell {
                    column: c,
                    clock,
                    value,
                    refused: *refused,
                });
            }
        }
    }

    /// Merges cell versions into row `id` of table `t`. Returns how many
    /// cells were written (0 if every version lost or the row is deleted).
    /// `judged`: a peer's change, checked against the schema's rights; the
    /// cells it may not write are returned instead (local writes and
    /// accepted changes are not judged here).
    pub(in crate::store) fn merge_row(
        &mut self,
        t: usize,
        id: &str,
        incoming: Vec<IncomingCell>,
        judged: bool,
    ) -> Result<RowMerge, StoreError> {
        let tombstone = self.tombstone_of(t, id)?.map(|s| self.stamp(s));
        let later = |tombstone: Stamp| {
            incoming
                .iter()
                .any(|c| self.stamp((c.hlc, c.site)) > tombstone)
        };
        let revived =
            mutants::active(Mutant::TombstoneLosesToLaterUpdate) && tombstone.is_some_and(later);
        if !lww::update_allowed(tombstone) && !revived {
            return Ok(RowMerge::default());
        }
        let columns = self.tables[t].columns;
        let Some(mut resolved) = lww::resolve_incoming(columns, incoming, &self.state.sites) else {
            return Ok(RowMerge::default());
        };
        let judging = judged && self.schema.rights.is_active();
        let mut held = Vec::new();
        if judging {
            let as_new = self.judge_row(t, &resolved, true);
            if as_new.iter().any(Option::is_some) {
                // Not every cell may be written if the row is new here:
                // find out whether it is.
                if let Some(existing) = self.read_for_merge(t, id)? {
                    let verdicts = self.judge_row(t, &resolved, false);
                    self.take_refused(&mut resolved, &verdicts, Some(&existing.row), &mut held);
                    let written = self.merge_existing(t, id, existing, resolved)?;
                    return Ok(RowMerge { written, held });
                }
                self.take_refused(&mut resolved, &as_new, None, &mut held);
                if !resolved.clocks.0.iter().any(CellClock::is_written) {
                    return Ok(RowMerge { written: 0, held });
                }
            }
        }
        // Fast path: a row this replica has never seen takes every version
        // with one insert (no lookup first).
        let seq = self.next_seq();
        number_written(&mut resolved.clocks, |_| true, seq);
        if self.insert_row(t, id, &resolved.clocks, &resolved.values, seq)? {
            self.state.counts.rows[t] += 1;
            let mut written = 0;
            for (c, (clock, value)) in resolved.clocks.0.iter().zip(&resolved.values).enumerate() {
                if clock.is_written() {
                    written += 1;
                    // This office's clock moves with what it writes.
                    self.state.hlc.observe(clock.hlc);
                    let h = self.hash_cell(t, id, c, value, clock);
                    self.state.digest.add(&h);
                    if let Some(group) = self.tables[t].defs[c].group() {
                        self.state.counts.sealed_cells += 1;
                        self.state.keysets.add(group, value);
                    }
                }
            }
            self.after_write(t, id)?;
            return Ok(RowMerge { written, held });
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
        if judging {
            // Judged as a new row, but it is not: judge again as an update.
            let verdicts = self.judge_row(t, &resolved, false);
            self.take_refused(&mut resolved, &verdicts, Some(&existing.row), &mut held);
        }
        let written = self.merge_existing(t, id, existing, resolved)?;
        Ok(RowMerge { written, held })
    }

    /// Held changes of a row that a write made moot leave the list.
    fn after_write(&mut self, t: usize, id: &str) -> Result<(), StoreError> {
        if self.state.guard.held_entries > 0 {
            self.recheck_held(t, id)?;
        }
        Ok(())
    }

    /// Merges resolved versions into a stored row, cell by cell.
    fn merge_existing(
        &mut self,
        t: usize,
        id: &str,
        existing: Existing,
        resolved: RowCells,
    ) -> Result<usize, StoreError> {
        let Existing { rowid, mut row } = existing;
        let outcomes = lww::resolve_against(&mut row, resolved, &self.state.sites);
        let written = outcomes.iter().filter(|o| o.changed()).count();
        if written == 0 {
            return Ok(0);
        }
        let seq = self.next_seq();
        number_written(&mut row.clocks, |c| outcomes[c].changed(), seq);
        for (c, outcome) in outcomes.iter().enumerate() {
            let group = self.tables[t].defs[c].group();
            match outcome {
                CellOutcome::Kept => continue,
                CellOutcome::Filled => {
                    if group.is_some() {
                        self.state.counts.sealed_cells += 1;
                    }
                }
                CellOutcome::Replaced { clock, value } => {
                    let h = self.hash_cell(t, id, c, value, clock);
                    self.state.digest.sub(&h);
                    if let Some(group) = group {
                        self.state.keysets.sub(group, value);
                    }
                }
            }
            if let Some(group) = group {
                self.state.keysets.add(group, &row.values[c]);
            }
            self.state.hlc.observe(row.clocks.0[c].hlc);
            let h = self.hash_cell(t, id, c, &row.values[c], &row.clocks.0[c]);
            self.state.digest.add(&h);
        }
        self.update_row(t, rowid, &row, seq)?;
        self.after_write(t, id)?;
        Ok(written)
    }

    /// Rewrites a stored row's values and clocks.
    fn update_row(&self, t: usize, rowid: i64, row: &RowCells, seq: u64) -> Result<(), StoreError> {
        let blob = row.clocks.encode();
        let seq_arg = seq as i64;
        let mut stmt = self
            .conn
            .prepare_cached(&self.tables[t].update)
            .ctx("updating a row")?;
        let args = std::iter::once(&rowid as &dyn rusqlite::ToSql)
            .chain(row.values.iter().map(|v| v as &dyn rusqlite::ToSql))
            .chain([
                &blob as &dyn rusqlite::ToSql,
                &seq_arg as &dyn rusqlite::ToSql,
            ]);
        stmt.execute(params_from_iter(args)).ctx("updating a row")?;
        Ok(())
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
    pub(in crate::store) fn merge_tombstone(
        &mut self,
        t: usize,
        id: &str,
        hlc: Hlc,
        site: u32,
        via: u32,
    ) -> Result<bool, StoreError> {
        let previous = self.tombstone_of(t, id)?;
        if !lww::tombstone_replaces(self.stamp((hlc, site)), previous.map(|p| self.stamp(p))) {
            return Ok(false);
        }
        if let Some(prev) = previous {
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
            for (c, clock) in existing.row.clocks.0.iter().enumerate() {
                if clock.is_written() {
                    let h = self.hash_cell(t, id, c, &existing.row.values[c], clock);
                    self.state.digest.sub(&h);
                    if let Some(group) = self.tables[t].defs[c].group() {
                        self.state.counts.sealed_cells -= 1;
                        self.state.keysets.sub(group, &existing.row.values[c]);
                    }
                }
            }
            let sql = &self.tables[t];
            self.conn
                .prepare_cached(&sql.delete)
                .and_then(|mut s| s.execute([existing.rowid]))
                .ctx("deleting a row")?;
        }
        self.state.hlc.observe(hlc);
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
        self.after_write(t, id)?;
        Ok(true)
    }
}

/// Gives the written cells that `pick` selects the change sequence `seq`.
fn number_written(clocks: &mut RowClocks, pick: impl Fn(usize) -> bool, seq: u64) {
    for (c, clock) in clocks.0.iter_mut().enumerate() {
        if clock.is_written() && pick(c) {
            clock.seq = seq;
        }
    }
}
