//! Applying a peer's batch.
//!
//! Owns: validating a whole batch before anything is written (known tables
//! and columns, valid ids and site references, age files in sealed
//! columns), then merging it and storing the peer's cursor in the same
//! transaction, so a batch is applied entirely or not at all.
//! Must not: decrypt anything (merge never needs a key).

use std::collections::HashSet;

use rusqlite::params;

use super::change::{Batch, Change, Cursor, PeerRef};
use super::lww::IncomingCell;
use super::{SqlContext, Store, StoreError, valid_id};
use crate::clock::Hlc;
use crate::config::Schema;
use crate::seal;
use crate::value::Value;

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub rows_written: usize,
    pub cells_written: usize,
    pub tombstones_written: usize,
    /// The greatest timestamp in the batch (for clock-skew reporting).
    pub max_hlc: Hlc,
}

impl Store {
    /// Applies `batch` from `peer` and records `cursor` for that peer, in
    /// one transaction. An invalid batch is rejected whole.
    pub fn apply(
        &mut self,
        peer: &PeerRef,
        batch: Batch,
        cursor: Cursor,
    ) -> Result<Applied, StoreError> {
        self.apply_group(peer, vec![(batch, cursor)])
    }

    /// Applies consecutive batches from one peer in a single transaction
    /// (the receiver groups batches that arrived together), storing the last
    /// cursor. Every batch is validated before anything is written; any
    /// invalid batch rejects the whole group.
    pub fn apply_group(
        &mut self,
        peer: &PeerRef,
        group: Vec<(Batch, Cursor)>,
    ) -> Result<Applied, StoreError> {
        let validated = group
            .into_iter()
            .map(|(batch, cursor)| Ok((validate(&self.schema, peer, batch)?, cursor)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.apply_validated(peer, validated)
    }

    /// Applies batches already checked by `validate` (the sync layer checks
    /// each batch as it arrives, on another thread, while the previous group
    /// is being applied), in one transaction with the last cursor.
    pub fn apply_validated(
        &mut self,
        peer: &PeerRef,
        group: Vec<(Validated, Cursor)>,
    ) -> Result<Applied, StoreError> {
        let max_hlc = group
            .iter()
            .map(|(v, _)| v.max_hlc)
            .max()
            .unwrap_or(Hlc::ZERO);
        self.transaction(|store| {
            store.state.hlc.observe(max_hlc);
            let mut applied = Applied {
                max_hlc,
                ..Applied::default()
            };
            let mut last_cursor = None;
            for (validated, cursor) in group {
                store.merge_batch(peer, validated.batch, &mut applied)?;
                last_cursor = Some(cursor);
            }
            if let Some(cursor) = last_cursor {
                store.save_cursor(peer, cursor)?;
                tracing::trace!(
                    peer = %peer.name,
                    rows = applied.rows_written,
                    cells = applied.cells_written,
                    tombstones = applied.tombstones_written,
                    progress = cursor.progress,
                    "applied a batch"
                );
            }
            Ok(applied)
        })
    }

    fn merge_batch(
        &mut self,
        peer: &PeerRef,
        batch: Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let via = self.intern_site(peer.site)?;
        let sites: Vec<u32> = batch
            .sites
            .iter()
            .map(|s| self.intern_site(*s))
            .collect::<Result<_, _>>()?;
        for change in batch.changes {
            match change {
                Change::Row { table, id, cells } => {
                    let incoming = cells
                        .into_iter()
                        .map(|c| IncomingCell {
                            // The wire's canonical index → this replica's slot.
                            column: self.tables[table as usize].slot_of[c.column as usize],
                            hlc: c.hlc,
                            site: sites[c.site as usize],
                            via,
                            value: c.value,
                        })
                        .collect();
                    let written = self.merge_row(table as usize, &id, incoming)?;
                    if written > 0 {
                        applied.rows_written += 1;
                        applied.cells_written += written;
                    }
                }
                Change::Tombstone {
                    table,
                    id,
                    hlc,
                    site,
                } => {
                    if self.merge_tombstone(table as usize, &id, hlc, sites[site as usize], via)? {
                        applied.tombstones_written += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Records how far a peer's changes have been applied, never moving an
    /// existing cursor backwards.
    fn save_cursor(&self, peer: &PeerRef, cursor: Cursor) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_cursors (peer, base, progress) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer) DO UPDATE SET base = excluded.base, progress = excluded.progress
                 WHERE excluded.progress > progress OR (excluded.progress = progress AND excluded.base > base)",
            )
            .and_then(|mut s| s.execute(params![&peer.site.0[..], cursor.base as i64, cursor.progress as i64]))
            .ctx("saving a peer cursor")?;
        Ok(())
    }
}

/// A batch that passed `validate`; only `validate` makes one.
#[derive(Debug)]
pub struct Validated {
    batch: Batch,
    max_hlc: Hlc,
}

impl Validated {
    pub fn batch(&self) -> &Batch {
        &self.batch
    }
}

/// Checks a whole batch from `peer` against the schema (known tables and
/// columns, valid ids, sites and timestamps, an age file in every sealed
/// column). Pure: needs no replica, so it can run on any thread.
pub fn validate(schema: &Schema, peer: &PeerRef, batch: Batch) -> Result<Validated, StoreError> {
    let max_hlc = check(schema, peer, &batch)?;
    Ok(Validated { batch, max_hlc })
}

fn check(schema: &Schema, peer: &PeerRef, batch: &Batch) -> Result<Hlc, StoreError> {
    let reject = |table: &str, id: &str, column: &str, reason: String| StoreError::InvalidBatch {
        peer: peer.name.clone(),
        table: table.to_string(),
        id: id.to_string(),
        column: column.to_string(),
        reason,
    };
    let distinct: HashSet<_> = batch.sites.iter().collect();
    if distinct.len() != batch.sites.len() {
        return Err(reject(
            "-",
            "-",
            "-",
            "the site dictionary repeats a site".into(),
        ));
    }
    let mut max_hlc = Hlc::ZERO;
    let site_ok = |site: u32| (site as usize) < batch.sites.len();
    for change in &batch.changes {
        let (table, id) = match change {
            Change::Row { table, id, .. } | Change::Tombstone { table, id, .. } => {
                (*table as usize, id)
            }
        };
        let Some(def) = schema.tables.get(table) else {
            return Err(reject(
                &format!("#{table}"),
                id,
                "-",
                format!(
                    "unknown table number {table} (this schema has {})",
                    schema.tables.len()
                ),
            ));
        };
        if !valid_id(id) {
            return Err(reject(&def.name, "-", "-", "invalid row id".into()));
        }
        match change {
            Change::Tombstone { hlc, site, .. } => {
                if !site_ok(*site) || *hlc == Hlc::ZERO {
                    return Err(reject(
                        &def.name,
                        id,
                        "-",
                        "tombstone with an invalid site or timestamp".into(),
                    ));
                }
                max_hlc = max_hlc.max(*hlc);
            }
            Change::Row { cells, .. } => {
                for cell in cells {
                    let Some(column) = def.columns.get(cell.column as usize) else {
                        return Err(reject(
                            &def.name,
                            id,
                            &format!("#{}", cell.column),
                            format!(
                                "unknown column number {} (the table has {})",
                                cell.column,
                                def.columns.len()
                            ),
                        ));
                    };
                    if !site_ok(cell.site) || cell.hlc == Hlc::ZERO {
                        return Err(reject(
                            &def.name,
                            id,
                            &column.name,
                            "cell with an invalid site or timestamp".into(),
                        ));
                    }
                    if column.is_sealed() {
                        let ok = matches!(&cell.value, Value::Blob(b) if seal::is_age_file(b));
                        if !ok {
                            return Err(reject(
                                &def.name,
                                id,
                                &column.name,
                                format!(
                                    "a sealed column carries a {} that is not an age file (fail closed: is the sending node misconfigured?)",
                                    cell.value.kind()
                                ),
                            ));
                        }
                    } else if let Some(ty) = &column.ty
                        && !ty.holds(&cell.value)
                    {
                        // An office of this schema stores only values in
                        // their typed form; anything else is refused, as a
                        // store would turn it into another value.
                        return Err(reject(
                            &def.name,
                            id,
                            &column.name,
                            format!(
                                "a {} that is not {} in its stored form",
                                cell.value.kind(),
                                ty.expected()
                            ),
                        ));
                    }
                    max_hlc = max_hlc.max(cell.hlc);
                }
            }
        }
    }
    Ok(max_hlc)
}
