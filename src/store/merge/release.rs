//! Owns: releasing held changes stamped ahead once this office's clock has
//! caught up with them: each is taken off the held list and merged again
//! as the batch it came in would have been, from the peer that sent it —
//! judged under the rights (so it may be held again, for that reason) and
//! checked against the drift bound as then. Every office applies the same
//! change when its own clock reaches `stamp - drift`: last-writer-wins
//! does not depend on when a version arrives, so once every office's clock
//! has passed the stamp, all hold the same; a stamp no honest clock
//! reaches (the maximum) is held everywhere, for ever, alike.
//!
//! Must not: read the system clock (the store's `WallClock` gives now),
//! or apply a change whose stamp is still beyond the bound.

use crate::stamp::SiteId;
use crate::store::merge::apply::{Applied, validate};
use crate::store::{Batch, CellChange, Change, PeerRef, SqlContext, Store, StoreError};

/// What one held change was, as needed to merge it again.
struct HeldAhead {
    peer: PeerRef,
    origin_site: SiteId,
    table: String,
    row: String,
    kind: String,
    hlc: crate::clock::Hlc,
    bytes: u64,
}

impl Store {
    /// Applies every held change stamped ahead that this office's clock has
    /// caught up with, in one transaction; returns how many were released.
    /// The daemon calls it now and then; an apply does it first anyway.
    pub fn release_due(&mut self) -> Result<usize, StoreError> {
        if self.state.guard.ahead_entries == 0 {
            return Ok(0);
        }
        self.transaction(|store| store.release_due_in_transaction())
    }

    /// `release_due` inside the caller's transaction.
    pub(in crate::store) fn release_due_in_transaction(&mut self) -> Result<usize, StoreError> {
        if self.state.guard.ahead_entries == 0 {
            return Ok(0);
        }
        let limit = match self.max_drift_ms {
            Some(drift) => self.clock.now_ms().saturating_add(drift),
            None => u64::MAX,
        };
        let due = self.ahead_due(limit)?;
        let mut released = 0;
        for held in due {
            let Some(entry) = self.read_held_ahead(held)? else {
                self.unmark_ahead(held)?;
                continue;
            };
            let Ok(t) = self.table_index(&entry.table) else {
                // The table left the schema: nothing to apply it to; it
                // stays on the list for an admin to discard.
                self.unmark_ahead(held)?;
                continue;
            };
            let def = &self.schema.tables[t];
            let change = if entry.kind == "delete" {
                Change::Tombstone {
                    table: t as u16,
                    id: entry.row.clone(),
                    hlc: entry.hlc,
                    site: 0,
                }
            } else {
                let mut cells = Vec::new();
                for (column, hlc, value) in self.held_cells_of(held)? {
                    if let Some(c) = def.column_index(&column) {
                        cells.push(CellChange {
                            column: c as u16,
                            hlc,
                            site: 0,
                            value,
                        });
                    }
                }
                Change::Row {
                    table: t as u16,
                    id: entry.row.clone(),
                    cells,
                }
            };
            let batch = Batch {
                sites: vec![entry.origin_site],
                changes: vec![change],
            };
            // The schema may have changed since it was held (a column
            // sealed, typed): a change that no longer fits stays on the
            // list for an admin, no longer waiting for the clock.
            let validated = match validate(&self.schema, &entry.peer, batch) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(held, table = %entry.table, row = %entry.row, "a held change stamped ahead came due but no longer fits the schema; it stays held for review: {e}");
                    self.unmark_ahead(held)?;
                    continue;
                }
            };
            self.forget_held(held, entry.bytes)?;
            let mut applied = Applied::default();
            self.merge_batch(&entry.peer, validated.into_batch(), &mut applied)?;
            released += 1;
            tracing::info!(
                held,
                peer = %entry.peer.name,
                table = %entry.table,
                row = %entry.row,
                "a change stamped ahead came due: this office's clock caught up with it, so it was applied"
            );
        }
        Ok(released)
    }

    fn read_held_ahead(&self, held: i64) -> Result<Option<HeldAhead>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(
                "SELECT peer, peer_site, origin_site, tbl, row_id, kind, hlc, bytes FROM _puente_held WHERE id = ?1 AND state = 'held'",
            )
            .and_then(|mut s| {
                s.query_row([held], |r| {
                    let site = |v: Vec<u8>| SiteId(v.try_into().unwrap_or([0; 16]));
                    Ok(HeldAhead {
                        peer: PeerRef {
                            name: r.get(0)?,
                            site: site(r.get(1)?),
                        },
                        origin_site: site(r.get(2)?),
                        table: r.get(3)?,
                        row: r.get(4)?,
                        kind: r.get(5)?,
                        hlc: crate::clock::Hlc(r.get::<_, i64>(6)? as u64),
                        bytes: r.get::<_, i64>(7)?.max(0) as u64,
                    })
                })
                .optional()
            })
            .ctx("reading a held change stamped ahead")
    }
}
