//! Owns: carrying out the session's receiving actions against the replica:
//! binding the peer's site to its office, validating one batch against the
//! schema (on a blocking thread when it is large, so it overlaps the group
//! being applied) and applying a group of batches in one transaction with
//! the last cursor (what the peer's office may not do is held, and counted
//! back to the session), then settling the replica when asked.
//!
//! Must not: decide grouping, order, when to settle or when to close
//! (session.rs does) or read the stream.

use std::sync::Arc;

use super::context::{SKEW_WARNING_MS, Shared, internal, same_schema, task_failed};
use super::protocol::Violation;
use super::session::{GroupApplied, Received, store_violation};
use crate::clock::lead_ms;
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, PeerRef, Validated, validate};

/// Batches of at most this many changes are validated on the caller's
/// thread: cheaper than a hop to another thread.
const INLINE_VALIDATION: usize = 32;

fn peer_ref(shared: &Shared, site: SiteId) -> PeerRef {
    PeerRef {
        site,
        name: shared.peer.name.clone(),
    }
}

/// Binds the peer's site (from its Hello) to the office it is pinned as;
/// a site that belongs to another office here is refused.
pub(super) async fn bind_peer(shared: &Arc<Shared>, site: SiteId) -> Result<(), Violation> {
    let office = shared.peer.name.clone();
    shared
        .node
        .with_store(move |s| s.bind_site(site, &office))
        .await
        .map_err(internal)?
        .map_err(store_violation)
}

/// Checks a batch against the schema.
pub(super) async fn validate_batch(
    shared: &Arc<Shared>,
    peer_site: SiteId,
    batch: Batch,
    cursor: Cursor,
    complete: bool,
    head: u64,
) -> Result<Received, Violation> {
    let schema = shared.schema.clone();
    let peer = peer_ref(shared, peer_site);
    let validated: Validated = if batch.changes.len() <= INLINE_VALIDATION {
        validate(&schema, &peer, batch).map_err(store_violation)?
    } else {
        tokio::task::spawn_blocking(move || validate(&schema, &peer, batch))
            .await
            .map_err(|e| task_failed("validating a batch", e))?
            .map_err(store_violation)?
    };
    Ok(Received {
        batch: validated,
        cursor,
        complete,
        head,
    })
}

/// Folds a grown WAL into the database and frees SQLite's cache (the
/// session asks after a catch-up), now rather than in a quiet moment
/// later. The batches are committed already: a failure here is worth a
/// warning, not the session.
fn settle(store: &mut crate::store::Store) {
    match store.settle() {
        Ok(s) if s.truncated => {
            tracing::debug!(wal_bytes = s.wal_bytes_before, "caught up: WAL truncated")
        }
        Ok(s) if s.wal_bytes_before >= crate::store::SETTLE_WAL_BYTES => {
            tracing::warn!(
                "caught up, but the WAL could not be truncated: another process reads the replica"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("caught up, but the WAL could not be checkpointed: {e}"),
    }
}

/// Applies batches that arrived together in one transaction, then settles
/// the replica if `settle_after`.
pub(super) async fn apply_group(
    shared: Arc<Shared>,
    peer_site: SiteId,
    group: Vec<Received>,
    settle_after: bool,
) -> Result<GroupApplied, Violation> {
    let node = shared.node.clone();
    let timed = node.clone();
    let peer = peer_ref(&shared, peer_site);
    let batches = group.len() as u64;
    let head = group.iter().map(|g| g.head).max().unwrap_or(0);
    let rows: u64 = group
        .iter()
        .map(|g| g.batch.batch().changes.len() as u64)
        .sum();
    let cells: u64 = group
        .iter()
        .map(|g| g.batch.batch().cell_count() as u64)
        .sum();
    let items: Vec<(Validated, Cursor)> = group.into_iter().map(|g| (g.batch, g.cursor)).collect();
    let last_cursor = items.last().map(|(_, c)| *c);
    tracing::debug!(peer = %shared.peer.name, batches, rows, "applying a group of batches");
    let schema = shared.schema.clone();
    let (applied, max_drift_ms) = node
        .with_store(move |s| {
            same_schema(&schema, s.schema())?;
            let started = std::time::Instant::now();
            let applied = s.apply_validated(&peer, items);
            timed.metrics.apply_seconds.observe(started.elapsed());
            if settle_after && applied.is_ok() {
                settle(s);
            }
            applied
                .map(|a| (a, s.max_clock_drift().unwrap_or(0)))
                .map_err(store_violation)
        })
        .await
        .map_err(internal)??;
    let now = node.now_ms();
    let lead = lead_ms(applied.max_hlc, now);
    if applied.max_hlc.0 != 0 && lead >= SKEW_WARNING_MS {
        shared.note_skew(lead);
    }
    shared.update(|p| {
        p.counters.batches_in += batches;
        p.counters.rows_in += rows;
        p.counters.cells_in += cells;
        p.counters.held += applied.held as u64;
        p.counters.held_dropped += applied.held_dropped as u64;
        p.counters.ahead += applied.ahead as u64;
        if let Some(office) = &applied.ahead_office {
            p.clock_ahead = Some(crate::node::status::ClockAhead {
                office: office.clone(),
                ahead_ms: applied.ahead_ms,
                max_drift_ms,
                seen_ms: now,
            });
        }
        p.peer_head = Some(head.max(p.peer_head.unwrap_or(0)));
        p.last_contact_ms = Some(now);
    });
    if let Some(cursor) = last_cursor {
        shared.note_our_cursor(cursor);
    }
    Ok(GroupApplied {
        held: applied.held,
        dropped: applied.held_dropped,
    })
}
