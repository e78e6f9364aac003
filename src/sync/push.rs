//! Owns: carrying out the session's sending actions against the replica: one pump
//! step (read our changes after a cursor, leaving out what the peer wrote
//! or sent us, and queue them as one Batch frame), and the Pull and State
//! messages, whose contents come from the replica.
//!
//! Must not: decide when any of this happens, how large a batch is or
//! whether it is compressed (session.rs does) or read the stream.

use std::sync::Arc;

use super::compress::MIN_BODY;
use super::context::{Shared, internal, same_schema, task_failed};
use super::protocol::{ErrorCode, Message, Violation, compress_frame, encode};
use super::session::{Pumped, store_violation};
use crate::stamp::SiteId;
use crate::store::Cursor;

/// What one `Action::Pump` asks for.
pub(super) struct PumpOrder {
    pub peer_site: SiteId,
    pub from: Cursor,
    pub generation: u64,
    pub max_rows: usize,
    pub max_bytes: usize,
    /// Compressed where it pays (the connection's version reads
    /// compressed frames).
    pub compress: bool,
}

/// Reads the changes after `from` and queues them as one Batch frame
/// (waiting while the outbox has no room for it).
pub(super) async fn pump_once(shared: Arc<Shared>, order: PumpOrder) -> Result<Pumped, Violation> {
    let PumpOrder {
        peer_site,
        from,
        generation,
        max_rows,
        max_bytes,
        compress,
    } = order;
    let schema = shared.schema.clone();
    let (frame, cursor, complete, head, rows) = shared
        .node
        .with_store(move |s| -> Result<_, Violation> {
            same_schema(&schema, s.schema())?;
            let out = s
                .changes_since(from, max_rows, max_bytes, Some(peer_site))
                .map_err(|e| {
                    Violation::new(ErrorCode::Internal, format!("could not read changes: {e}"))
                })?;
            let rows = out.batch.changes.len() as u64;
            let frame = encode(&Message::Batch {
                batch: out.batch,
                cursor: out.cursor,
                complete: out.complete,
                head: out.head,
            })?;
            Ok((frame, out.cursor, out.complete, out.head, rows))
        })
        .await
        .map_err(internal)??;
    // Off the store's thread, so the next read does not wait for it; small
    // (live) frames are never compressed (`compress_frame` would leave
    // them) and skip the hop.
    let frame = if compress && frame.len() >= MIN_BODY {
        tokio::task::spawn_blocking(move || compress_frame(frame))
            .await
            .map_err(|e| task_failed("compressing a batch", e))?
    } else {
        frame
    };
    shared.outgoing.batch(frame).await?;
    tracing::trace!(peer = %shared.peer.name, rows, complete, "queued a batch");
    shared.update(|p| {
        p.counters.batches_out += 1;
        p.counters.rows_out += rows;
    });
    Ok(Pumped {
        generation,
        cursor,
        complete,
        head,
    })
}

/// Sends a Pull with the cursor stored for the peer.
pub(super) async fn send_pull(shared: &Arc<Shared>, peer_site: SiteId) -> Result<(), Violation> {
    let cursor = shared
        .node
        .with_store(move |s| s.cursor_for(&peer_site))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    shared.note_our_cursor(cursor);
    shared.send_control(&Message::Pull { cursor })
}

/// Sends our head, digest and how far the peer's changes are applied.
pub(super) async fn send_state(shared: &Arc<Shared>, peer_site: SiteId) -> Result<(), Violation> {
    let (head, digest, applied) = shared
        .node
        .with_store(move |s| s.cursor_for(&peer_site).map(|c| (s.head(), s.digest(), c)))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    shared.note_our_cursor(applied);
    shared.send_control(&Message::State {
        head,
        digest,
        applied,
        wall_ms: shared.node.now_ms(),
    })
}
