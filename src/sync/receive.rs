//! The receiving side of a session: each batch validated on a blocking
//! thread as it arrives, then applied in order, one group of queued
//! batches per transaction, while the reader goes on reading.
//!
//! Must not: read the stream or decide protocol rules (peer.rs and
//! session.rs do).

use std::sync::Arc;

use super::peer::{SKEW_WARNING_MS, Shared, internal, note_skew, store_violation};
use super::protocol::{ErrorCode, Violation};
use super::push::send_state;
use super::session::Session;
use crate::clock::lead_ms;
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, PeerRef, Validated, validate};

/// One received, validated batch with its cursor, completeness and the
/// sender's head.
pub(super) type Received = (Validated, Cursor, bool, u64);

/// Checks a batch against the schema on a blocking thread, so that it
/// overlaps the SQLite work of the group being applied.
pub(super) async fn validate_off_thread(
    shared: &Arc<Shared>,
    session: &Session,
    batch: Batch,
) -> Result<Validated, Violation> {
    let Some(hello) = session.peer() else {
        return Err(Violation::new(
            ErrorCode::UnexpectedMessage,
            "a batch before Hello",
        ));
    };
    let schema = shared.node.schema.clone();
    let peer = PeerRef {
        site: hello.site,
        name: shared.peer.name.clone(),
    };
    // A live push carries a few rows: checking them here costs less than a
    // hop to another thread. A catch-up batch goes to a blocking thread.
    if batch.changes.len() <= INLINE_VALIDATION {
        return validate(&schema, &peer, batch).map_err(store_violation);
    }
    tokio::task::spawn_blocking(move || validate(&schema, &peer, batch))
        .await
        .map_err(|e| Violation::new(ErrorCode::Internal, format!("validating failed: {e}")))?
        .map_err(store_violation)
}

/// Batches of at most this many changes are validated on the reader's thread.
const INLINE_VALIDATION: usize = 32;

/// Applies received batches in order, one group at a time, while the
/// reader goes on reading and decoding: batches arriving during an apply
/// queue up and go into the next group (up to `limit` changes), so a
/// catch-up burst becomes few, large transactions and decoding overlaps
/// SQLite work.
pub(super) struct Applier {
    peer_site: SiteId,
    limit: usize,
    pending: Vec<Received>,
    pending_changes: usize,
    in_flight: Option<tokio::task::JoinHandle<Result<(), Violation>>>,
}

impl Applier {
    pub(super) fn new(peer_site: SiteId, limit: usize) -> Applier {
        Applier {
            peer_site,
            limit,
            pending: Vec::new(),
            pending_changes: 0,
            in_flight: None,
        }
    }

    fn launch(&mut self, shared: &Arc<Shared>) {
        let group = std::mem::take(&mut self.pending);
        self.pending_changes = 0;
        self.in_flight = Some(tokio::spawn(apply_group(
            shared.clone(),
            self.peer_site,
            group,
        )));
    }

    /// Waits for the group in flight (cancel-safe: the handle stays until
    /// it completes).
    async fn finish(&mut self) -> Result<(), Violation> {
        if let Some(handle) = &mut self.in_flight {
            let result = handle.await;
            self.in_flight = None;
            return result.map_err(|e| {
                Violation::new(ErrorCode::Internal, format!("applying failed: {e}"))
            })?;
        }
        Ok(())
    }

    /// Queues a batch; when the queue is full, waits for the group in
    /// flight and starts the queue.
    pub(super) async fn push(
        &mut self,
        shared: &Arc<Shared>,
        received: Received,
    ) -> Result<(), Violation> {
        self.pending_changes += received.0.batch().changes.len();
        self.pending.push(received);
        if self.pending_changes >= self.limit {
            self.finish().await?;
            self.launch(shared);
        }
        Ok(())
    }

    /// Starts the queue if nothing is in flight.
    pub(super) fn kick(&mut self, shared: &Arc<Shared>) {
        if self.in_flight.is_none() && !self.pending.is_empty() {
            self.launch(shared);
        }
    }

    /// Applies everything received so far.
    pub(super) async fn drain(&mut self, shared: &Arc<Shared>) -> Result<(), Violation> {
        self.finish().await?;
        if !self.pending.is_empty() {
            self.launch(shared);
            self.finish().await?;
        }
        Ok(())
    }

    /// Completes when the group in flight does, then starts the queue;
    /// never completes while nothing is in flight.
    pub(super) async fn progress(&mut self, shared: &Arc<Shared>) -> Result<(), Violation> {
        if self.in_flight.is_none() {
            return std::future::pending().await;
        }
        self.finish().await?;
        self.kick(shared);
        Ok(())
    }
}

/// Applies batches that arrived together in one transaction.
async fn apply_group(
    shared: Arc<Shared>,
    peer_site: SiteId,
    group: Vec<Received>,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let peer = PeerRef {
        site: peer_site,
        name: shared.peer.name.clone(),
    };
    let batches = group.len() as u64;
    let complete = group.iter().any(|g| g.2);
    let head = group.iter().map(|g| g.3).max().unwrap_or(0);
    let rows: u64 = group.iter().map(|g| g.0.batch().changes.len() as u64).sum();
    let cells: u64 = group.iter().map(|g| g.0.batch().cell_count() as u64).sum();
    let items: Vec<(Validated, Cursor)> = group.into_iter().map(|(b, c, _, _)| (b, c)).collect();
    tracing::debug!(peer = %shared.peer.name, batches, rows, "applying a group of batches");
    let applied = node
        .with_store(move |s| s.apply_validated(&peer, items))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    let now = node.now_ms();
    let lead = lead_ms(applied.max_hlc, now);
    if applied.max_hlc.0 != 0 && lead >= SKEW_WARNING_MS {
        note_skew(&shared, lead);
    }
    shared.update(|p| {
        p.counters.batches_in += batches;
        p.counters.rows_in += rows;
        p.counters.cells_in += cells;
        p.peer_head = Some(head.max(p.peer_head.unwrap_or(0)));
        p.last_contact_ms = Some(now);
    });
    if complete {
        send_state(&shared, peer_site).await?;
    }
    Ok(())
}
