//! The whole replica as one value, for checks: every live cell with its
//! version, the site it arrived from and the change sequence that wrote it
//! here, every row's latest sequence, every tombstone, every stored peer
//! cursor. Slow (reads everything): for the simulator, tests and audits,
//! never on a hot path.
//!
//! Must not: write, or reveal sealed values (they stay ciphertext here).

use std::collections::BTreeMap;

use crate::clock::Hlc;
use crate::stamp::{SiteId, Stamp};
use crate::store::cells::clocks::RowClocks;
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
                    let id: String = r.get(0)?;
                    let clocks: Vec<u8> = r.get(1)?;
                    let seq: i64 = r.get(2)?;
                    let mut values = Vec::with_capacity(sql.columns);
                    for i in 0..sql.columns {
                        values.push(r.get::<_, Value>(i + 3)?);
                    }
                    Ok((id, clocks, seq as u64, values))
                })
                .ctx("taking a snapshot")?;
            for row in rows {
                let (id, clocks, seq, values) = row.ctx("taking a snapshot")?;
                let clocks =
                    RowClocks::decode(&clocks, sql.columns).ok_or_else(|| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("cell metadata of {}/{id} has the wrong size", sql.name),
                    })?;
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
        let mut stmt = self
            .conn
            .prepare("SELECT tbl, id, hlc, site, via, seq FROM _puente_tombstones")
            .ctx("taking a snapshot")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .ctx("taking a snapshot")?;
        for row in rows {
            let (tbl, id, hlc, site, via, seq) = row.ctx("taking a snapshot")?;
            snap.tombstones.insert(
                (tbl, id),
                TombstoneRecord {
                    stamp: Stamp {
                        hlc: Hlc(hlc as u64),
                        site: site_of(site as u32)?,
                    },
                    via: site_of(via as u32)?,
                    seq: seq as u64,
                },
            );
        }
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
