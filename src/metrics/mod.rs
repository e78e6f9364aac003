//! Metrics for Prometheus: how a scrape reads a running node.
//!
//! Owns: the text exposition and its reader (`text`), turning a status
//! document and the node's counters (`node::counters`, kept by the node
//! that adds to them) into a scrape (`collect`, `scrape`), and the
//! optional TCP listener of `[metrics]` (`server`).
//! Must not: read the replica (the node's snapshot has the counts), wait
//! for the store lock, or put a value of any row into a metric or label.

pub mod collect;
pub mod server;
pub mod text;

use std::sync::Arc;

pub use crate::node::counters::NodeMetrics;

/// The scrape of a running node, as `GET /v1/metrics` and the `[metrics]`
/// listener answer it. Reads the node's snapshot and live state and the
/// sizes of the replica's files: never waits for the store.
pub async fn scrape(node: &Arc<crate::node::Node>) -> String {
    let db = node.config().database_path();
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
