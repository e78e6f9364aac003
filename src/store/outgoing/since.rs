//! "Changes since a cursor": the SQL reads behind what this replica sends
//! a peer.
//!
//! Owns: reading the rows and tombstones whose change sequence lies after a
//! peer's cursor, oldest first, as many per source as `batching` asks for.
//! Which of them go into the batch, and the cursor the peer stores, is
//! `batching`'s decision.
//! Must not: write, or know how batches travel.

use crate::clock::Hlc;
use crate::stamp::SiteId;
use crate::store::batch::Cursor;
use crate::store::cells::clocks::RowClocks;
use crate::store::outgoing::batching::{self, Candidate, Outgoing, Request};
use crate::store::{SqlContext, Store, StoreError};
use crate::value::Value;

impl Store {
    /// Changes after `from`, oldest first: at most `max_rows` rows and
    /// tombstones, and no more than about `max_bytes` (always at least one).
    /// Cells written by `skip_site`, or that arrived from it, are left out:
    /// that peer has them (or something newer) already.
    pub fn changes_since(
        &self,
        from: Cursor,
        max_rows: usize,
        max_bytes: usize,
        skip_site: Option<SiteId>,
    ) -> Result<Outgoing, StoreError> {
        let head = self.state.head;
        // Runs that hold only what `skip_site` sent us are passed over
        // unread (`echo.rs`).
        let from = self.echo.skip(skip_site, batching::start(from, head));
        let candidates = self.candidates(from.progress, batching::fetch_limit(max_rows))?;
        let request = Request {
            from,
            max_rows,
            max_bytes,
            skip_site,
        };
        Ok(batching::assemble(
            candidates,
            request,
            head,
            &self.state.sites,
        ))
    }

    /// Rows of every table and tombstones with a sequence after `progress`:
    /// the oldest `fetch` of each source.
    fn candidates(&self, progress: u64, fetch: usize) -> Result<Vec<(u64, Candidate)>, StoreError> {
        let fetch = fetch as i64;
        let mut candidates: Vec<(u64, Candidate)> = Vec::new();
        for (t, sql) in self.tables.iter().enumerate() {
            let mut stmt = self
                .conn
                .prepare_cached(&sql.since)
                .ctx("reading changes")?;
            let rows = stmt
                .query_map(rusqlite::params![progress as i64, fetch], |r| {
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
                // The wire names columns in canonical order.
                candidates.push((
                    seq,
                    Candidate::Row {
                        t,
                        id,
                        clocks: RowClocks(sql.to_canonical(clocks.0)),
                        values: sql.to_canonical(values),
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
                .query_map(rusqlite::params![progress as i64, fetch], |r| {
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
        Ok(candidates)
    }
}
