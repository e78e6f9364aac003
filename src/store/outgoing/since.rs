//! "Changes since a cursor": the SQL reads behind what this replica sends
//! a peer.
//!
//! Owns: reading the rows and tombstones whose change sequence lies after a
//! peer's cursor, oldest first, as many per source as `batching` asks for.
//! Which of them go into the batch, and the cursor the peer stores, is
//! `batching`'s decision.
//! Must not: write, or know how batches travel.

use crate::stamp::SiteId;
use crate::store::batch::Cursor;
use crate::store::cells::clocks::RowClocks;
use crate::store::layout::ChangedRow;
use crate::store::layout::tombstones::tombstones_after;
use crate::store::outgoing::batching::{self, Candidate, Outgoing, Request};
use crate::store::{SqlContext, Store, StoreError};

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
                    sql.read_since_row(r)
                })
                .ctx("reading changes")?;
            for row in rows {
                let ChangedRow {
                    id,
                    clocks,
                    seq,
                    values,
                } = row.ctx("reading changes")?;
                let clocks = self.decode_clocks(t, &id, &clocks)?;
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
        for row in tombstones_after(&self.conn, progress, fetch)? {
            // Tombstones of tables no longer in the schema cannot occur:
            // the layout check refuses such a schema.
            if let Some(t) = self.schema.table_index(&row.table) {
                candidates.push((
                    row.seq,
                    Candidate::Tombstone {
                        t,
                        id: row.id,
                        hlc: row.hlc,
                        site: row.site,
                        via: row.via,
                    },
                ));
            }
        }
        Ok(candidates)
    }
}
