//! Owns: deciding on a held change (rights/held.rs keeps them): accepting applies
//! it as if its office had been allowed to make it, with its original
//! stamps and as from the peer that sent it; discarding keeps this office's
//! version, writing it again as a new version where that makes the peer
//! converge back, and says so where it cannot (a delete, an insert of a row
//! this office does not have, a sealed cell this node cannot open). Each
//! decision records who made it (a uid) and when.
//!
//! Must not: judge changes or put a value into an error or a log line
//! (a sealed cell written again is opened and sealed again in memory).

use rusqlite::params;

use crate::stamp::SiteId;
use crate::store::cells::lww::IncomingCell;
use crate::store::rights::held::{Decided, HeldChange};
use crate::store::{Batch, CellChange, Change, PeerRef, SqlContext, Store, StoreError};
use crate::value::Value;

impl Store {
    fn pending(&self, id: i64) -> Result<HeldChange, StoreError> {
        match self.held_get(id)? {
            Some(c) if c.state == "held" => Ok(c),
            Some(c) => Err(StoreError::HeldDecided { id, state: c.state }),
            None => Err(StoreError::NoSuchHeld { id }),
        }
    }

    fn decide(
        &mut self,
        id: i64,
        state: &str,
        by: Option<u32>,
        diverges: bool,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let bytes: i64 = self
            .conn
            .query_row("SELECT bytes FROM _puente_held WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .ctx("deciding on a held change")?;
        let now = self.clock.now_ms() as i64;
        self.conn
            .execute(
                "UPDATE _puente_held SET state = ?2, decided_by = ?3, decided_ms = ?4, diverges = ?5, note = ?6 WHERE id = ?1",
                params![id, state, by.map(i64::from), now, diverges as i64, note],
            )
            .ctx("deciding on a held change")?;
        self.state.guard.held_entries = self.state.guard.held_entries.saturating_sub(1);
        self.state.guard.held_version += 1;
        self.state.guard.held_bytes = self.state.guard.held_bytes.saturating_sub(bytes as u64);
        self.unmark_ahead(id)?;
        Ok(())
    }

    /// Accepts a held change: applies it as if it had been allowed, with
    /// its original stamps, as from the peer that sent it (so it is not
    /// sent back there), and records who accepted it (`by`: a uid).
    pub fn held_accept(&mut self, id: i64, by: Option<u32>) -> Result<Decided, StoreError> {
        let change = self.pending(id)?;
        // A change stamped beyond the drift bound would move this office's
        // clock to its stamp: it waits until the clock catches up.
        if let (Some(_), Some(drift)) = (self.ahead_stamp_ms(id)?, self.max_drift_ms) {
            let now = self.clock.now_ms();
            if crate::clock::beyond_drift(change.hlc, now, drift) {
                let lead = crate::clock::lead_ms(change.hlc, now).max(0) as u64;
                return Err(StoreError::HeldNotDue {
                    id,
                    ahead: crate::store::rights::held::words_for_ms(lead),
                });
            }
        }
        if change.kind != "delete" {
            self.still_fits(id, &change)?;
        }
        let written = self.transaction(|store| {
            let t = store.table_index(&change.table)?;
            let peer_site: Vec<u8> = store
                .conn
                .query_row(
                    "SELECT peer_site FROM _puente_held WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .ctx("reading a held change")?;
            let peer_site = SiteId(peer_site.try_into().unwrap_or([0; 16]));
            let site = store.intern_site(change.origin_site)?;
            let via = store.intern_site(peer_site)?;
            let cells = store.held_cells_of(id)?;
            store.decide(id, "accepted", by, false, None)?;
            // The merge observes the stamps it writes (and only those).
            if change.kind == "delete" {
                let n = store.merge_tombstone(t, &change.row, change.hlc, site, via)?;
                return Ok(usize::from(n));
            }
            let mut incoming = Vec::with_capacity(cells.len());
            for (column, hlc, value) in cells {
                let c = store.column_index(t, &column)?;
                incoming.push(IncomingCell {
                    column: c,
                    hlc,
                    site,
                    via,
                    value,
                });
            }
            store
                .merge_row(t, &change.row, incoming, false)
                .map(|m| m.written)
        })?;
        self.conn
            .execute("DELETE FROM _puente_held_cells WHERE held = ?1", [id])
            .ctx("clearing an accepted change")?;
        tracing::info!(held = id, by, table = %change.table, row = %change.row, kind = %change.kind, peer = %change.peer, "a held change was accepted and applied");
        Ok(Decided {
            change: self.held_get(id)?.unwrap_or(change),
            written,
        })
    }

    /// Whether a held change's cells still fit the schema (it may have
    /// changed since they were held: a column dropped, sealed, unsealed or
    /// typed): checked as a peer's batch is, so that accepting never puts
    /// a plaintext into a sealed column or an untyped value into a typed
    /// one.
    fn still_fits(&self, id: i64, change: &HeldChange) -> Result<(), StoreError> {
        let t = self.table_index(&change.table)?;
        let def = &self.schema.tables[t];
        let refuse = |why: String| StoreError::InvalidWrite {
            table: change.table.clone(),
            reason: format!(
                "held change {id} no longer fits the schema ({why}); discard it with `puente held discard {id}`"
            ),
        };
        let mut cells = Vec::new();
        for (column, hlc, value) in self.held_cells_of(id)? {
            let Some(c) = def.column_index(&column) else {
                return Err(refuse(format!("column `{column}` is no longer in it")));
            };
            cells.push(CellChange {
                column: c as u16,
                hlc,
                site: 0,
                value,
            });
        }
        let batch = Batch {
            sites: vec![change.origin_site],
            changes: vec![Change::Row {
                table: t as u16,
                id: change.row.clone(),
                cells,
            }],
        };
        let peer = PeerRef {
            site: change.origin_site,
            name: change.peer.clone(),
        };
        match crate::store::merge::apply::validate(&self.schema, &peer, batch) {
            Ok(_) => Ok(()),
            Err(StoreError::InvalidBatch { column, reason, .. }) => {
                Err(refuse(format!("{column}: {reason}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Discards a held change, keeping this office's version. For an
    /// update, this office's cells of those columns are written again as
    /// new versions, so that the peer converges back to them; a delete (or
    /// an insert of a row this office does not have) cannot be pushed
    /// back: the peer keeps it and the digests stay different (the entry
    /// says so, and status shows it).
    pub fn held_discard(&mut self, id: i64, by: Option<u32>) -> Result<Decided, StoreError> {
        let change = self.pending(id)?;
        let t = self.table_index(&change.table)?;
        if self.ahead_stamp_ms(id)?.is_some() {
            // Writing this office's version again would not win over a
            // stamp from the future: the peer keeps its version.
            let note = format!(
                "{} keeps its version stamped {} (ahead of this office's clock) and the two replicas stay different: no write of {}/{} made here can win over that stamp before this office's clock reaches it",
                change.peer, change.hlc, change.table, change.row
            );
            self.transaction(|store| {
                store.decide(id, "discarded", by, true, Some(&note))?;
                store
                    .conn
                    .execute("DELETE FROM _puente_held_cells WHERE held = ?1", [id])
                    .ctx("clearing a discarded change")?;
                Ok(())
            })?;
            tracing::info!(held = id, by, table = %change.table, row = %change.row, peer = %change.peer, "a held change stamped ahead was discarded: {note}");
            return Ok(Decided {
                change: self.held_get(id)?.unwrap_or(change),
                written: 0,
            });
        }
        // Decided first, so that writing our version again does not drop
        // the entry as moot meanwhile; undone if that write fails.
        self.transaction(|store| store.decide(id, "discarded", by, false, None))?;
        let outcome = self.discard_outcome(t, &change);
        let (written, diverges, note) = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                self.transaction(|store| store.undecide(id))?;
                return Err(e);
            }
        };
        self.transaction(|store| {
            store
                .conn
                .execute(
                    "UPDATE _puente_held SET diverges = ?2, note = ?3 WHERE id = ?1",
                    params![id, diverges as i64, note],
                )
                .ctx("discarding a held change")?;
            store.state.guard.held_version += 1;
            store
                .conn
                .execute("DELETE FROM _puente_held_cells WHERE held = ?1", [id])
                .ctx("clearing a discarded change")?;
            Ok(())
        })?;
        tracing::info!(held = id, by, table = %change.table, row = %change.row, kind = %change.kind, peer = %change.peer, diverges, "a held change was discarded: {note}");
        Ok(Decided {
            change: self.held_get(id)?.unwrap_or(change),
            written,
        })
    }

    /// Puts a change decided on back on the list (its decision failed).
    fn undecide(&mut self, id: i64) -> Result<(), StoreError> {
        let bytes: i64 = self
            .conn
            .query_row("SELECT bytes FROM _puente_held WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .ctx("restoring a held change")?;
        self.conn
            .execute(
                "UPDATE _puente_held SET state = 'held', decided_by = NULL, decided_ms = NULL WHERE id = ?1",
                [id],
            )
            .ctx("restoring a held change")?;
        self.state.guard.held_entries += 1;
        self.state.guard.held_version += 1;
        self.state.guard.held_bytes += bytes as u64;
        Ok(())
    }

    /// What discarding does: cells written, whether the peer keeps its
    /// version, and the note saying so.
    fn discard_outcome(
        &mut self,
        t: usize,
        change: &HeldChange,
    ) -> Result<(usize, bool, String), StoreError> {
        if change.kind == "delete" {
            return Ok((
                0,
                true,
                format!(
                    "a delete cannot be undone: {} keeps its tombstone of {}/{} and the two replicas stay different; if the row must exist, write it again under a new id",
                    change.peer, change.table, change.row
                ),
            ));
        }
        if self.tombstone_of(t, &change.row)?.is_some() {
            return Ok((
                0,
                false,
                "this office deleted the row: its tombstone reaches the peer and removes the change there".into(),
            ));
        }
        Ok(match self.reassert(t, change)? {
            Reassert::Written(n) => (
                n,
                false,
                "this office's version was written again as a new version; the peer takes it at the next sync".into(),
            ),
            Reassert::NoRow => (
                0,
                true,
                format!(
                    "this office has no such row to write back: {} keeps the row it inserted and the two replicas stay different",
                    change.peer
                ),
            ),
            Reassert::Refused(why) => (
                0,
                true,
                format!(
                    "this office cannot write its version back ({why}): {} keeps its version and the two replicas stay different",
                    change.peer
                ),
            ),
        })
    }

    /// Writes this office's version of a held update's columns again.
    fn reassert(&mut self, t: usize, change: &HeldChange) -> Result<Reassert, StoreError> {
        // The version written again must order after the held one, or the
        // peer keeps its own: this clock takes the held stamp first. Only a
        // change held for the rights gets here, so its stamp is within the
        // drift bound (one held for its stamp is discarded without this).
        self.state.hlc.observe(change.hlc);
        let table = self.schema.tables[t].name.clone();
        let Some(row) = self.get(&table, &change.row, crate::store::Reveal::Yes)? else {
            return Ok(Reassert::NoRow);
        };
        let mut cells = Vec::new();
        for (column, _) in &change.columns {
            let value = match row.cell(column) {
                Some(crate::store::CellView::Value(v)) => crate::value::Plaintext::new(v.clone()),
                Some(crate::store::CellView::Revealed(p)) => p.clone(),
                Some(crate::store::CellView::Empty) | None => {
                    crate::value::Plaintext::new(Value::Null)
                }
                Some(crate::store::CellView::Sealed) => {
                    return Ok(Reassert::Refused(format!(
                        "`{column}` is sealed and this node holds no identity to write it again"
                    )));
                }
            };
            cells.push((column.clone(), value));
        }
        match self.put(&table, &change.row, cells) {
            Ok(w) => Ok(Reassert::Written(w.cells)),
            Err(StoreError::Forbidden { message, .. }) => Ok(Reassert::Refused(message)),
            Err(e) => Err(e),
        }
    }
}

enum Reassert {
    Written(usize),
    NoRow,
    Refused(String),
}
