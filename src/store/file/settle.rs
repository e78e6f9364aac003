//! Owns: settling after a burst of writes (a catch-up, a bulk import): the
//! WAL is folded into the database and truncated, and SQLite hands its page
//! cache back, so an office at rest holds neither a large WAL on disk nor
//! memory it no longer needs, and no checkpoint is left for a quiet moment
//! later.
//!
//! Must not: run inside a transaction, or weaken durability: a TRUNCATE
//! checkpoint syncs the database file before it empties the WAL, and only
//! committed transactions are in the WAL.

use crate::store::{SqlContext, Store, StoreError};

/// A WAL at least this large when a burst ends is folded in and truncated.
pub const SETTLE_WAL_BYTES: u64 = 8 << 20;

/// What `settle` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub wal_bytes_before: u64,
    /// Whether the WAL was checkpointed and truncated (and the cache
    /// given back).
    pub truncated: bool,
}

impl Store {
    /// The size of the replica's WAL file in bytes (0 when there is none).
    pub fn wal_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }

    /// Called when a burst of writes ends: when the WAL has grown to
    /// `SETTLE_WAL_BYTES` or more, checkpoints it into the database,
    /// truncates it to nothing and frees SQLite's page cache.
    pub fn settle(&mut self) -> Result<Settled, StoreError> {
        let wal_bytes_before = self.wal_bytes();
        if wal_bytes_before < SETTLE_WAL_BYTES {
            return Ok(Settled {
                wal_bytes_before,
                truncated: false,
            });
        }
        // (busy, frames in the WAL, frames checkpointed); busy is 1 when a
        // reader kept the checkpoint from finishing (not within this
        // process: the store is its only connection).
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .ctx("checkpointing the WAL after a burst of writes")?;
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .ctx("freeing the page cache after a burst of writes")?;
        Ok(Settled {
            wal_bytes_before,
            truncated: busy == 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SETTLE_WAL_BYTES;
    use crate::bench::data;
    use crate::clock::{SystemClock, WallClock};
    use crate::config::Schema;
    use crate::seal::Keyring;
    use crate::stamp::SiteId;
    use crate::store::{Cursor, PeerRef, Store};

    fn open(path: &std::path::Path, schema: &Arc<Schema>) -> Store {
        Store::open(
            path,
            crate::store::StoreOptions::new(
                schema.clone(),
                Arc::new(Keyring::empty()),
                Arc::new(SystemClock) as Arc<dyn WallClock>,
            ),
        )
        .unwrap()
    }

    /// A store that received `rows` rows from a peer, a batch per 2,000.
    fn received(path: &std::path::Path, rows: usize) -> (Store, Arc<Schema>) {
        let recipient = age::x25519::Identity::generate().to_public().to_string();
        let schema = data::schema(&[recipient]);
        let pool = data::ciphertext_pool(&schema, 8);
        let rows = data::rows(&schema, rows, &pool, 3);
        let mut store = open(path, &schema);
        let site = SiteId::random();
        let peer = PeerRef {
            site,
            name: "tijuana".into(),
        };
        for (i, b) in data::batches(&rows, 2_000, site).into_iter().enumerate() {
            store.apply(&peer, b, Cursor::at(i as u64 + 1)).unwrap();
        }
        (store, schema)
    }

    #[test]
    fn a_burst_leaves_no_wal_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.db");
        let (mut store, schema) = received(&path, 12_000);
        let before = store.wal_bytes();
        // The burst did grow the WAL past the threshold.
        assert!(before >= SETTLE_WAL_BYTES, "WAL of {before} bytes");
        let digest = store.digest();
        let settled = store.settle().unwrap();
        assert!(settled.truncated);
        assert_eq!(settled.wal_bytes_before, before);
        assert_eq!(store.wal_bytes(), 0);
        assert_eq!(store.stats().unwrap().rows[0].1, 12_000);
        drop(store);
        // Everything is in the database file: reopened, the same replica.
        let store = open(&path, &schema);
        assert_eq!(store.digest(), digest);
        assert_eq!(store.recount().unwrap().0, vec![12_000]);
    }

    #[test]
    fn a_small_wal_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = received(&dir.path().join("replica.db"), 20);
        let before = store.wal_bytes();
        assert!(before > 0 && before < SETTLE_WAL_BYTES, "WAL of {before}");
        let settled = store.settle().unwrap();
        assert!(!settled.truncated);
        assert_eq!(store.wal_bytes(), before);
    }
}
