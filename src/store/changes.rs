//! "Changes since a cursor": what this replica sends a peer.
//!
//! Owns: reading rows and tombstones whose change sequence lies after a
//! peer's cursor, in sequence order, bounded in rows and bytes, as a
//! `Batch` plus the cursor the peer stores once it applied it.
//! Must not: write, or know how batches travel.

use std::collections::HashMap;

use super::change::{Batch, CellChange, Change, Cursor};
use super::clocks::RowClocks;
use super::{SqlContext, Store, StoreError};
use crate::clock::Hlc;
use crate::stamp::SiteId;
use crate::value::Value;

/// A batch ready to send and what applying it achieves.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub batch: Batch,
    /// The cursor the receiver stores with this batch.
    pub cursor: Cursor,
    /// True when the batch reaches this replica's head.
    pub complete: bool,
    /// This replica's head sequence when the batch was read.
    pub head: u64,
}

enum Candidate {
    Row {
        t: usize,
        id: String,
        clocks: RowClocks,
        values: Vec<Value>,
    },
    Tombstone {
        t: usize,
        id: String,
        hlc: Hlc,
        site: u32,
        via: u32,
    },
}

impl Store {
    /// Changes after `from`, oldest first: at most `max_rows` rows and
    /// tombstones, and no more than about `max_bytes` (always at least one).
    /// Cells written by `skip_site`, or that arrived from it, are left out:
    /// that peer has them (or
    /// something newer) already.
    pub fn changes_since(
        &self,
        from: Cursor,
        max_rows: usize,
        max_bytes: usize,
        skip_site: Option<SiteId>,
    ) -> Result<Outgoing, StoreError> {
        let head = self.state.head;
        // A cursor beyond our head (this replica was restored from an older
        // copy) or malformed: start over; applying is idempotent.
        let from = if from.progress > head || from.base > from.progress {
            Cursor::ZERO
        } else {
            from
        };
        let max_rows = max_rows.max(1);
        let fetch = (max_rows + 1) as i64;
        let mut candidates: Vec<(u64, Candidate)> = Vec::new();
        for (t, sql) in self.tables.iter().enumerate() {
            let mut stmt = self
                .conn
                .prepare_cached(&sql.since)
                .ctx("reading changes")?;
            let rows = stmt
                .query_map(rusqlite::params![from.progress as i64, fetch], |r| {
                    let id: String = r.get(0)?;
                    let clocks: Vec<u8> = r.get(1)?;
                    let seq: i64 = r.get(2)?;
                    let mut values = Vec::with_capacity(sql.columns);
                    for i in 0..sql.columns {
                        values.push(r.get::<_, Value>(i + 3)?);
                    }
                    Ok((seq as u64, id, clocks, values))
                })
                .ctx("reading changes")?;
            for row in rows {
                let (seq, id, clocks, values) = row.ctx("reading changes")?;
                let clocks =
                    RowClocks::decode(&clocks, sql.columns).ok_or_else(|| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("cell metadata of {}/{id} has the wrong size", sql.name),
                    })?;
                candidates.push((
                    seq,
                    Candidate::Row {
                        t,
                        id,
                        clocks,
                        values,
                    },
                ));
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT tbl, id, hlc, site, seq, via FROM _puente_tombstones WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .ctx("reading tombstones")?;
            let rows = stmt
                .query_map(rusqlite::params![from.progress as i64, fetch], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .ctx("reading tombstones")?;
            for row in rows {
                let (tbl, id, hlc, site, seq, via) = row.ctx("reading tombstones")?;
                // Tombstones of tables no longer in the schema cannot occur:
                // the layout check refuses such a schema.
                if let Some(t) = self.schema.table_index(&tbl) {
                    candidates.push((
                        seq as u64,
                        Candidate::Tombstone {
                            t,
                            id,
                            hlc: Hlc(hlc as u64),
                            site: site as u32,
                            via: via as u32,
                        },
                    ));
                }
            }
        }
        candidates.sort_by_key(|(seq, _)| *seq);
        let available = candidates.len();

        let mut batch = Batch::default();
        let mut dictionary: HashMap<u32, u32> = HashMap::new();
        let mut site_ref = |local: u32, batch: &mut Batch| -> u32 {
            *dictionary.entry(local).or_insert_with(|| {
                batch.sites.push(self.state.sites[local as usize]);
                (batch.sites.len() - 1) as u32
            })
        };
        let mut bytes = 0usize;
        let mut taken = 0usize;
        let mut last_seq = from.progress;
        for (seq, candidate) in candidates {
            if taken >= max_rows || (taken > 0 && bytes >= max_bytes) {
                break;
            }
            taken += 1;
            last_seq = seq;
            match candidate {
                Candidate::Row {
                    t,
                    id,
                    clocks,
                    values,
                } => {
                    let mut cells = Vec::new();
                    for (c, (clock, value)) in clocks.0.iter().zip(values).enumerate() {
                        if !clock.is_written() || clock.seq <= from.base {
                            continue;
                        }
                        let skip = skip_site.is_some_and(|s| {
                            s == self.state.sites[clock.site as usize]
                                || s == self.state.sites[clock.via as usize]
                        });
                        if skip {
                            continue;
                        }
                        bytes += 16 + value.encoded_len();
                        cells.push(CellChange {
                            column: c as u16,
                            hlc: clock.hlc,
                            site: site_ref(clock.site, &mut batch),
                            value,
                        });
                    }
                    if !cells.is_empty() {
                        bytes += id.len() + 4;
                        batch.changes.push(Change::Row {
                            table: t as u16,
                            id,
                            cells,
                        });
                    }
                }
                Candidate::Tombstone {
                    t,
                    id,
                    hlc,
                    site,
                    via,
                } => {
                    let skip = skip_site.is_some_and(|s| {
                        s == self.state.sites[site as usize] || s == self.state.sites[via as usize]
                    });
                    if skip {
                        continue;
                    }
                    bytes += id.len() + 16;
                    let site = site_ref(site, &mut batch);
                    batch.changes.push(Change::Tombstone {
                        table: t as u16,
                        id,
                        hlc,
                        site,
                    });
                }
            }
        }
        // Complete when every candidate was taken: each per-table query
        // fetched one more row than a batch may hold, so a table with more
        // rows than were read leaves a candidate behind.
        let complete = taken == available;
        let cursor = if complete {
            Cursor::at(head)
        } else {
            Cursor {
                base: from.base,
                progress: last_seq,
            }
        };
        Ok(Outgoing {
            batch,
            cursor,
            complete,
            head,
        })
    }
}
