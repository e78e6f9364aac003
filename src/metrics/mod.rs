//! Metrics for Prometheus: what a running node counts and how a scrape
//! reads.
//!
//! Owns: the node's own counters and histograms (`NodeMetrics`: a relaxed
//! atomic add per event, nothing locked), the text exposition and its
//! reader (`text`), the duration histogram (`histogram`), turning a status
//! document and those counters into a scrape (`collect`), and the optional
//! TCP listener of `[metrics]` (`server`).
//! Must not: read the replica (the node's snapshot has the counts), wait
//! for the store lock, or put a value of any row into a metric or label.

pub mod collect;
pub mod histogram;
pub mod server;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use histogram::Histogram;

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

/// The scrape of a running node, as `GET /v1/metrics` and the `[metrics]`
/// listener answer it. Reads the node's snapshot and live state and the
/// sizes of the replica's files: never waits for the store.
pub async fn scrape(node: &Arc<crate::node::Node>) -> String {
    let db = node.config.database_path();
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let extra = collect::Extra::of(
        &node.metrics,
        node.now_ms(),
        node.started_ms(),
        size(&db),
        size(std::path::Path::new(&wal)),
    );
    // Status is built from the snapshot; it does not fail.
    match node.status().await {
        Ok(status) => collect::render(&status, &extra),
        Err(e) => format!(
            "# status unavailable: {}\n",
            e.to_string().replace('\n', " ")
        ),
    }
}
