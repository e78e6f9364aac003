//! The node: one office's daemon state and what makes it.
//!
//! Owns, one room each: the running node (`running`: the replica behind a
//! lock, commit notifications, live peer state, the status document), the
//! replica snapshot status reads without waiting for the store
//! (`snapshot`), catch-up progress (`progress`), its serialisable status
//! (`status`), making a node (`init`), its TLS identity
//! files (`identity`) and certificate fingerprints (`fingerprint`), loading
//! everything once before start (`preflight`), the replica key's file or
//! credential (`replica_key`), the data-dir lock (`lock`), the storage
//! conversions (`storage`), and atomic file writes that keep mode and
//! owner (`fsutil`).
//! Must not: speak QUIC or HTTP (sync/ and admin/ do) or decide merges
//! (store/ does).

pub mod backup;
pub mod counters;
pub mod histogram;
pub mod identity;
pub mod init;
pub mod life;
pub mod lock;
pub mod preflight;
pub mod progress;
pub mod reload;
pub mod replica_key;
pub mod reseal;
pub mod restore;
mod running;
pub mod schema_change;
pub mod snapshot;
pub mod status;
pub mod storage;

pub use running::{Node, NodeError, PeerLive};

// The file helpers and fingerprints moved to the crate's root (config and
// seal use them too); tests still name them here.
pub use crate::{fingerprint, fsutil};
