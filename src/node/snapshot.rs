//! What status and metrics read of the replica without waiting for it: a
//! copy of the head, digest and counts, taken under the store lock right
//! after any call that moved the head, and read under a lock of its own
//! that nothing holds for longer than a copy.
//!
//! Must not: read the replica itself (the node refreshes it while it
//! holds the store).

use std::collections::BTreeMap;

use crate::store::{Digest, Store};

#[derive(Debug, Clone)]
pub struct ReplicaSnapshot {
    pub head: u64,
    pub digest: Digest,
    /// Live rows per table, in the schema's table order.
    pub rows: Vec<(String, u64)>,
    pub sealed_cells: u64,
    pub tombstones: u64,
    /// Per seal group, cells sealed to another recipient set than the
    /// schema's (kept by the store with every write: O(groups)).
    pub sealed_to_old_keys: BTreeMap<String, u64>,
}

impl ReplicaSnapshot {
    /// Reads the counts the store keeps with every write (O(1)).
    pub fn of(store: &Store) -> ReplicaSnapshot {
        // `stats` reads in-memory counts; it cannot fail today, and if it
        // ever could, zero counts until the next write beat no status.
        let stats = store.stats().ok();
        ReplicaSnapshot {
            head: store.head(),
            digest: store.digest(),
            rows: stats.as_ref().map(|s| s.rows.clone()).unwrap_or_default(),
            sealed_cells: stats.as_ref().map_or(0, |s| s.sealed_cells),
            tombstones: stats.as_ref().map_or(0, |s| s.tombstones),
            sealed_to_old_keys: store.sealed_to_old_keys(),
        }
    }
}
