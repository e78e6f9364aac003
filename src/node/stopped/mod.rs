//! Commands on a stopped node's replica, each under the data-dir lock the
//! daemon takes: putting it under a new key (`storage`), adopting schema
//! changes that need a word from the admin (`schema_change`), restoring a
//! backup into it (`restore`). Grouped because each needs the daemon
//! stopped and leaves the old replica or the new one after a crash.
//!
//! Owns: the steps on disk of those commands.
//! Must not: run while a daemon holds the lock, or decide merges.

pub mod restore;
pub mod schema_change;
pub mod storage;
