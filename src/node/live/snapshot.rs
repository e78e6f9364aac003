//! Owns: what status and metrics read of the replica without waiting for
//! it: a copy of the head, digest and counts, taken under the store lock
//! right after any call that moved the head, and of the changes held for
//! review per peer, taken after any call that changed the held list; read
//! under a lock of its own that nothing holds for longer than a copy.
//!
//! Must not: read the replica itself (the node refreshes it while it
//! holds the store).

use std::collections::BTreeMap;

use crate::store::{Digest, HeldFrom, Store};

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
    /// Changes held for review (or discarded and kept by the peer), per
    /// peer.
    pub held: Vec<HeldFrom>,
    /// The store's `held_version` the held summary was read at.
    held_version: u64,
}

impl ReplicaSnapshot {
    /// Reads the counts the store keeps with every write (O(1)) and the
    /// held summary.
    pub fn of(store: &Store) -> ReplicaSnapshot {
        let mut snapshot = ReplicaSnapshot::counts_of(store, Vec::new());
        snapshot.held = held_of(store);
        snapshot
    }

    /// Brings the copy up to date after a call on the store: the counts
    /// when the head moved, the held summary when the held list changed
    /// (a batch whose changes are all held moves no head).
    pub fn refresh(&mut self, store: &Store) {
        if self.head != store.head() {
            *self = ReplicaSnapshot {
                held_version: self.held_version,
                ..ReplicaSnapshot::counts_of(store, std::mem::take(&mut self.held))
            };
        }
        if self.held_version != store.held_version() {
            self.held = held_of(store);
            self.held_version = store.held_version();
        }
    }

    fn counts_of(store: &Store, held: Vec<HeldFrom>) -> ReplicaSnapshot {
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
            held,
            held_version: store.held_version(),
        }
    }
}

/// The held summary; on a read error, none (said in the log) until the
/// held list next changes.
fn held_of(store: &Store) -> Vec<HeldFrom> {
    store.held_summary().unwrap_or_else(|e| {
        tracing::warn!("cannot read the changes held for review for status: {e}");
        Vec::new()
    })
}
