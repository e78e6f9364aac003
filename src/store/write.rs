//! Local writes: put (partial row update) and delete.
//!
//! Owns: validating a writer's input against the schema and against this
//! office's rights (an honest office never makes a change the others
//! would refuse: a row this replica has is updated, one it has not is
//! inserted, a delete deletes), stamping it with a fresh HLC, sealing sealed columns (in parallel for bulk puts) before
//! anything reaches SQLite, and merging through the same path as peers'
//! changes.
//! Must not: log or return any value; plaintext stays in `Plaintext`.

use crate::clock::Hlc;
use crate::config::rights::WriteAction;
use crate::store::cells::lww::IncomingCell;
use crate::store::sealed::sealing::{PendingRow, Sealer};
use crate::store::{Store, StoreError, valid_id};
use crate::value::{Plaintext, Value};

/// Whether a value counts as no value for a required column.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Text(t) => t.trim().is_empty(),
        _ => false,
    }
}

/// What a local write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: String,
    pub hlc: Hlc,
    /// The replica's head sequence after the write.
    pub seq: u64,
    /// Cells written (for a delete: 1 for the tombstone, 0 if it already was deleted).
    pub cells: usize,
}

/// One row of a bulk put: its id and (column, value) pairs.
pub type RowPut = (String, Vec<(String, Plaintext)>);

/// Rows of a large batch are sealed a chunk of this many ahead of the
/// merge.
const PIPELINE_CHUNK: usize = 1_024;

impl Store {
    /// Writes some columns of one row (creating it if new).
    pub fn put(
        &mut self,
        table: &str,
        id: &str,
        cells: Vec<(String, Plaintext)>,
    ) -> Result<Written, StoreError> {
        let mut written = self.put_many(table, vec![(id.to_string(), cells)])?;
        Ok(written.remove(0))
    }

    /// Writes many rows in one transaction; sealing runs on every core.
    /// Either every row is written or none.
    pub fn put_many(&mut self, table: &str, rows: Vec<RowPut>) -> Result<Vec<Written>, StoreError> {
        let t = self.table_index(table)?;
        let mut pending = Vec::with_capacity(rows.len());
        for (id, cells) in rows {
            if !valid_id(&id) {
                return Err(StoreError::InvalidId { id });
            }
            if cells.is_empty() {
                return Err(StoreError::InvalidWrite {
                    table: table.to_string(),
                    reason: format!(
                        "the write to {id} names no column; give at least one column=value"
                    ),
                });
            }
            let mut indexed = Vec::with_capacity(cells.len());
            for (column, value) in cells {
                let c = self.column_index(t, &column)?;
                if indexed.iter().any(|(i, _)| *i == c) {
                    return Err(StoreError::InvalidWrite {
                        table: table.to_string(),
                        reason: format!("column `{column}` is given twice for {id}"),
                    });
                }
                let value = self.typed(t, &id, c, value)?;
                indexed.push((c, value));
            }
            pending.push(PendingRow { id, cells: indexed });
        }
        self.transaction(|store| {
            for row in &pending {
                if store.tombstone_of(t, &row.id)?.is_some() {
                    return Err(StoreError::RowDeleted {
                        table: table.to_string(),
                        id: row.id.clone(),
                    });
                }
                store.check_put(t, row)?;
                store.check_required(t, row)?;
            }
            store.write_rows(t, pending)
        })
    }

    /// Checks a value against its column's type and gives the value to
    /// store (the plaintext of a sealed column is checked before sealing;
    /// an error shows the value only for a shared column).
    fn typed(
        &self,
        t: usize,
        id: &str,
        c: usize,
        value: Plaintext,
    ) -> Result<Plaintext, StoreError> {
        let def = &self.tables[t].defs[c];
        let Some(ty) = &def.ty else {
            return Ok(value);
        };
        match ty.coerce(value.expose()) {
            Ok(v) => Ok(Plaintext::new(v)),
            Err(mismatch) => {
                let mismatch = if def.is_sealed() {
                    mismatch
                } else {
                    mismatch.showing(value.expose())
                };
                Err(StoreError::InvalidValue {
                    table: self.tables[t].name.clone(),
                    id: id.to_string(),
                    column: def.name.clone(),
                    mismatch: mismatch.to_string(),
                })
            }
        }
    }

    /// Writes validated rows as new local versions: stamps, seals sealed
    /// cells (on every core for many; for a large batch, the next chunk is
    /// sealed while the previous one merges), merges (inside the caller's
    /// transaction).
    pub(super) fn write_rows(
        &mut self,
        t: usize,
        pending: Vec<PendingRow>,
    ) -> Result<Vec<Written>, StoreError> {
        let now = self.clock.now_ms();
        let stamps: Vec<Hlc> = pending
            .iter()
            .map(|_| self.state.hlc.tick(now))
            .collect::<Result<_, _>>()?;
        let sealer = Sealer {
            table: self.tables[t].clone(),
            schema: self.schema.clone(),
            site: self.state.site,
            threads: self.seal_threads,
        };
        if pending.len() < PIPELINE_CHUNK * 2 || !sealer.seals_any(&pending) {
            let sealed = sealer.seal_all(&pending, &stamps)?;
            return self.merge_written(t, pending, stamps, sealed);
        }
        let mut chunks = Vec::new();
        let (mut rows, mut stamps) = (pending.into_iter(), stamps.into_iter());
        loop {
            let chunk: Vec<PendingRow> = rows.by_ref().take(PIPELINE_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            let chunk_stamps: Vec<Hlc> = stamps.by_ref().take(chunk.len()).collect();
            chunks.push((chunk, chunk_stamps));
        }
        std::thread::scope(|scope| {
            // One chunk sealed ahead: memory stays bounded, and dropping
            // the receiver (an error while merging) stops the sealing.
            let (sealed_tx, sealed_rx) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || {
                for (rows, stamps) in chunks {
                    let sealed = sealer.seal_all(&rows, &stamps);
                    let failed = sealed.is_err();
                    if sealed_tx.send((rows, stamps, sealed)).is_err() || failed {
                        break;
                    }
                }
            });
            let mut out = Vec::new();
            for (rows, stamps, sealed) in sealed_rx {
                out.extend(self.merge_written(t, rows, stamps, sealed?)?);
            }
            Ok(out)
        })
    }

    /// Refuses a write that would leave a required column without a
    /// value: a new row must give every required column, an update may
    /// not empty one (null or blank text). The writer's check only: a
    /// peer's change is merged whatever it holds.
    fn check_required(&self, t: usize, row: &PendingRow) -> Result<(), StoreError> {
        let table = &self.tables[t];
        if !table.defs.iter().any(|d| d.required) {
            return Ok(());
        }
        let emptied = row
            .cells
            .iter()
            .filter(|(c, v)| table.defs[*c].required && is_empty(v.expose()))
            .map(|(c, _)| *c);
        let new_row = !self.row_exists(t, &row.id)?;
        let mut missing: Vec<usize> = emptied.collect();
        if new_row {
            missing.extend(
                (0..table.defs.len())
                    .filter(|c| table.defs[*c].required && !row.cells.iter().any(|(g, _)| g == c)),
            );
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<String> = table
            .display_order
            .iter()
            .filter(|s| missing.contains(*s))
            .map(|&s| table.defs[s].name.clone())
            .collect();
        columns.dedup();
        Err(StoreError::MissingRequired {
            table: table.name.clone(),
            id: row.id.clone(),
            columns,
            new_row,
        })
    }

    /// Refuses a put this office may not make: an insert of a row this
    /// replica does not have, or an update of the columns of one it has.
    fn check_put(&self, t: usize, row: &PendingRow) -> Result<(), StoreError> {
        if !self.schema.rights.restricts(t) {
            return Ok(());
        }
        let actor = self.own_actor();
        let rights = &self.schema.rights;
        if !self.row_exists(t, &row.id)? {
            return match rights.allows(t, WriteAction::Insert, None, actor) {
                true => Ok(()),
                false => Err(self.forbidden(t, WriteAction::Insert, &[])),
            };
        }
        let slots: Vec<usize> = row.cells.iter().map(|(slot, _)| *slot).collect();
        let refused: Vec<usize> = self
            .canonical_columns(t, &slots)
            .into_iter()
            .filter(|c| !rights.allows(t, WriteAction::Update, Some(*c), actor))
            .collect();
        match refused.is_empty() {
            true => Ok(()),
            false => Err(self.forbidden(t, WriteAction::Update, &refused)),
        }
    }

    /// The error for a write this office may not make (`columns`: the
    /// schema's column indices of the refused columns).
    fn forbidden(&self, t: usize, action: WriteAction, columns: &[usize]) -> StoreError {
        let rights = &self.schema.rights;
        let table = &self.schema.tables[t];
        let who = self.office.clone().unwrap_or_else(|| {
            "this replica (no office name set: it may only do what every office may)".into()
        });
        let message = rights.refusal(table, t, action, columns, &who);
        // Who may, so the error says whom to ask.
        let may: Vec<&str> = rights
            .offices()
            .iter()
            .filter(|o| {
                let actor = rights.actor(o);
                match action {
                    WriteAction::Update => columns
                        .iter()
                        .all(|c| rights.allows(t, action, Some(*c), actor)),
                    _ => rights.allows(t, action, None, actor),
                }
            })
            .map(String::as_str)
            .collect();
        let advice = if may.is_empty() {
            "no office may: the rights in the schema must change first, at every office".to_string()
        } else {
            format!("ask {} to make this change", may.join(" or "))
        };
        StoreError::Forbidden {
            office: who,
            allowed: may.iter().map(|s| s.to_string()).collect(),
            message: format!("{message}; {advice}"),
        }
    }

    /// Merges stamped rows whose sealed cells are sealed, in row and
    /// column order.
    fn merge_written(
        &mut self,
        t: usize,
        pending: Vec<PendingRow>,
        stamps: Vec<Hlc>,
        sealed: Vec<Vec<u8>>,
    ) -> Result<Vec<Written>, StoreError> {
        let table = self.tables[t].name.clone();
        let mut sealed = sealed.into_iter();
        let local = self.state.local_site;
        let mut out = Vec::with_capacity(pending.len());
        for (row, hlc) in pending.into_iter().zip(stamps) {
            let mut incoming = Vec::with_capacity(row.cells.len());
            for (c, plaintext) in row.cells {
                let value = if self.tables[t].defs[c].is_sealed() {
                    // Invariant: seal_all returned one ciphertext per sealed
                    // cell, in this order.
                    Value::Blob(sealed.next().unwrap_or_default())
                } else {
                    plaintext.into_shared()
                };
                incoming.push(IncomingCell {
                    column: c,
                    hlc,
                    site: local,
                    via: local,
                    value,
                });
            }
            let cells = self.merge_row(t, &row.id, incoming, false)?.written;
            tracing::trace!(table = %table, id = %row.id, %hlc, cells, "local put");
            out.push(Written {
                id: row.id,
                hlc,
                seq: self.state.head,
                cells,
            });
        }
        Ok(out)
    }

    /// Deletes a row for good: a tombstone that beats every update of `id`.
    pub fn delete(&mut self, table: &str, id: &str) -> Result<Written, StoreError> {
        let t = self.table_index(table)?;
        if !valid_id(id) {
            return Err(StoreError::InvalidId { id: id.to_string() });
        }
        if !self
            .schema
            .rights
            .allows(t, WriteAction::Delete, None, self.own_actor())
        {
            return Err(self.forbidden(t, WriteAction::Delete, &[]));
        }
        self.transaction(|store| {
            if let Some((hlc, _)) = store.tombstone_of(t, id)? {
                // Already deleted: report the tombstone that stands.
                return Ok(Written {
                    id: id.to_string(),
                    hlc,
                    seq: store.state.head,
                    cells: 0,
                });
            }
            if !store.row_exists(t, id)? {
                return Err(StoreError::NoSuchRow {
                    table: table.to_string(),
                    id: id.to_string(),
                });
            }
            let now = store.clock.now_ms();
            let hlc = store.state.hlc.tick(now)?;
            let local = store.state.local_site;
            store.merge_tombstone(t, id, hlc, local, local)?;
            tracing::trace!(table, id, %hlc, "local delete");
            Ok(Written {
                id: id.to_string(),
                hlc,
                seq: store.state.head,
                cells: 1,
            })
        })
    }
}
