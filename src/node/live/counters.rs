//! What the running node counts besides its status, for metrics: a
//! relaxed atomic add per event, nothing locked (`metrics/` reads them
//! for a scrape).
//!
//! Owns: the counters and duration histograms the node, the sync layer
//! and the admin socket add to.
//! Must not: read the replica, or count anything that tells a row's value.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::histogram::Histogram;

/// What the node counts besides its status.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Applying a group of batches from a peer (validation excluded, the
    /// transaction included).
    pub apply_seconds: Histogram,
    /// Each COMMIT of the replica (the store reports it).
    pub commit_seconds: Arc<Histogram>,
    /// Sealed cells revealed through the admin socket (rows and exports).
    pub revealed_cells: AtomicU64,
    /// Connections refused before a session (unpinned certificates, failed
    /// handshakes).
    pub refused_connections: AtomicU64,
}
