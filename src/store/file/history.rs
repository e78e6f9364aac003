//! A replica's history: its site id, and starting a new one after a
//! restore.
//!
//! Owns: `begin_new_history` — a replica restored from a backup takes a
//! new site id (the backup's stays interned, so the cells it wrote keep
//! their stamps, and is listed as retired), forgets every peer cursor (so
//! peers send it everything again), and drops the backup's stamp — and
//! reading the retired ids back. From then on a peer's change carrying a
//! retired id keeps no office's rights (rights/bindings.rs): versions
//! this replica wrote under its old id after the backup come back and
//! apply when every office may make them, and are held for review with
//! that reason when they need this office's rights (a delete of a
//! resident, its case notes), since no replica can tell them from a
//! forgery by a tampered peer.
//! Must not: copy or move files (node/restore.rs does).

use rusqlite::{OptionalExtension, params};

use crate::stamp::SiteId;
use crate::store::{SqlContext, Store, StoreError};

impl Store {
    /// Starts a new history under `new_site` (never an id this replica has
    /// seen): the current id is retired, peer cursors are forgotten. One
    /// transaction. Returns the retired id.
    pub fn begin_new_history(&mut self, new_site: SiteId) -> Result<SiteId, StoreError> {
        if self.state.site_index.contains_key(&new_site) {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("site id {new_site} is already known to this replica"),
            });
        }
        let mut retired = self.retired_sites()?;
        let old = self.state.site;
        self.transaction(|store| {
            let idx = store.intern_site(new_site)?;
            retired.push(old);
            let blob: Vec<u8> = retired.iter().flat_map(|s| s.0).collect();
            let set = |key: &str, value: rusqlite::types::Value| {
                store
                    .conn
                    .execute(
                        "INSERT INTO _puente_meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, value],
                    )
                    .map(|_| ())
                    .ctx("recording the new site id")
            };
            set("site_id", rusqlite::types::Value::Blob(new_site.0.to_vec()))?;
            set("retired_sites", rusqlite::types::Value::Blob(blob))?;
            store
                .conn
                .execute_batch(
                    "DELETE FROM _puente_cursors;
                     DELETE FROM _puente_meta WHERE key IN ('backup_node', 'backup_ms');",
                )
                .ctx("forgetting peer cursors")?;
            store.state.site = new_site;
            store.state.local_site = idx;
            // A peer's change stamped with the retired id keeps no
            // office's rights from now on (rights/bindings.rs).
            store.state.guard.retired.insert(old);
            if let Some(&i) = store.state.site_index.get(&old) {
                store.state.guard.origins[i as usize] = store.origin_for(&old);
            }
            Ok(())
        })?;
        // What was learnt of runs belongs to the old history.
        self.echo.clear();
        tracing::info!(new = %new_site, retired = %old, "the replica starts a new history");
        Ok(old)
    }

    /// Site ids this replica had before restores, oldest first.
    pub fn retired_sites(&self) -> Result<Vec<SiteId>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM _puente_meta WHERE key = 'retired_sites'",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading retired site ids")?;
        Ok(blob
            .unwrap_or_default()
            .chunks_exact(16)
            .filter_map(|c| c.try_into().ok().map(SiteId))
            .collect())
    }
}
