//! Owns: the whole replica as one value, for checks: every live cell with
//! its version, the site it arrived from and the change sequence that wrote
//! it here, every row's latest sequence, every tombstone, every stored peer
//! cursor. Slow (reads everything): for the simulator, tests and audits,
//! never on a hot path.
//!
//! Must not: write, or reveal sealed values (they stay ciphertext here).

use std::collections::BTreeMap;

use crate::stamp::{SiteId, Stamp};
use crate::store::layout::ChangedRow;
use crate::store::layout::tombstones::each_tombstone;
use crate::store::{Cursor, SqlContext, Store, StoreError};
use crate::value::Value;

/// One live cell as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRecord {
    pub value: Value,
    pub stamp: Stamp,
    /// The site this version arrived from (the writer itself for a local
    /// write).
    pub via: SiteId,
    /// This replica's change sequence that wrote it.
    pub seq: u64,
}

/// One tombstone as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TombstoneRecord {
    pub stamp: Stamp,
    pub via: SiteId,
    pub seq: u64,
}

/// (table, id)
pub type RowKey = (String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub site: SiteId,
    pub head: u64,
    /// Live rows: their latest change sequence and their written cells by
    /// column name.
    pub rows: BTreeMap<RowKey, (u64, BTreeMap<String, CellRecord>)>,
    pub tombstones: BTreeMap<RowKey, TombstoneRecord>,
    /// Stored cursors by peer site.
    pub cursors: BTreeMap<SiteId, Cursor>,
}

impl Store {
    /// Reads everything (see the module docs).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let site_of = |i: u32| -> Result<SiteId, StoreError> {
            self.state
                .sites
                .get(i as usize)
                .copied()
                .ok_or_else(|| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("site index {i} is not interned"),
                })
        };
        let mut snap = Snapshot {
            site: self.state.site,
            head: self.state.head,
            rows: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            cursors: BTreeMap::new(),
        };
        for (t, table) in self.schema.tables.iter().enumerate() {
            let sql = &self.tables[t];
            let mut stmt = self.conn.prepare(&sql.since).ctx("taking a snapshot")?;
            let rows = stmt
                .query_map(rusqlite::params![-1i64, i64::MAX], |r| {
                    sql.read_since_row(r)
                })
                .ctx("taking a snapshot")?;
            for row in rows {
                let ChangedRow {
                    id,
                    clocks,
                    seq,
                    values,
                } = row.ctx("taking a snapshot")?;
                let clocks = self.decode_clocks(t, &id, &clocks)?;
                let mut cells = BTreeMap::new();
                for (c, (clock, value)) in clocks.0.iter().zip(values).enumerate() {
                    if clock.is_written() {
                        cells.insert(
                            sql.defs[c].name.clone(),
                            CellRecord {
                                value,
                                stamp: Stamp {
                                    hlc: clock.hlc,
                                    site: site_of(clock.site)?,
                                },
                                via: site_of(clock.via)?,
                                seq: clock.seq,
                            },
                        );
                    }
                }
                snap.rows.insert((table.name.clone(), id), (seq, cells));
            }
        }
        each_tombstone(&self.conn, "taking a snapshot", |row| {
            snap.tombstones.insert(
                (row.table, row.id),
                TombstoneRecord {
                    stamp: Stamp {
                        hlc: row.hlc,
                        site: site_of(row.site)?,
                    },
                    via: site_of(row.via)?,
                    seq: row.seq,
                },
            );
            Ok(())
        })?;
        let mut stmt = self
            .conn
            .prepare("SELECT peer, base, progress FROM _puente_cursors")
            .ctx("taking a snapshot")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .ctx("taking a snapshot")?;
        for row in rows {
            let (peer, base, progress) = row.ctx("taking a snapshot")?;
            let peer: [u8; 16] = peer.try_into().map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                detail: "a peer cursor's site id has the wrong size".into(),
            })?;
            snap.cursors.insert(
                SiteId(peer),
                Cursor {
                    base: base as u64,
                    progress: progress as u64,
                },
            );
        }
        Ok(snap)
    }
}
