//! The sending side of a session: the pump (catch-up from the peer's
//! cursor in bounded batches, then one batch per commit as commits land)
//! and State announcements (head, digest, how far the peer's changes are
//! applied), with the session's RTT and wire bytes kept in status.
//!
//! Must not: read the stream or apply anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::Connection;

use super::peer::{LIVE_PACE, Limits, STATE_DEBOUNCE, Shared, internal, store_violation};
use super::protocol::{ErrorCode, Message, Violation, encode};
use crate::stamp::SiteId;
use crate::store::Cursor;

pub(super) async fn send_state(shared: &Arc<Shared>, peer_site: SiteId) -> Result<(), Violation> {
    let (head, digest, applied) = shared
        .node
        .with_store(move |s| s.cursor_for(&peer_site).map(|c| (s.head(), s.digest(), c)))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    shared
        .send(&Message::State {
            head,
            digest,
            applied,
            wall_ms: shared.node.now_ms(),
        })
        .await
}

/// Tells the peer our head and digest after our replica changes
/// (debounced), and keeps the session's RTT and wire bytes in status.
pub(super) async fn announce(shared: Arc<Shared>, conn: Connection, peer_site: SiteId) {
    let mut head = shared.node.subscribe_head();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(STATE_DEBOUNCE).await;
                head.borrow_and_update();
                if send_state(&shared, peer_site).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                let stats = conn.stats();
                let rtt = conn.rtt().as_secs_f64() * 1000.0;
                shared.update(|p| {
                    p.rtt_ms = Some(rtt);
                    p.counters.udp_bytes_in = stats.udp_rx.bytes;
                    p.counters.udp_bytes_out = stats.udp_tx.bytes;
                });
            }
        }
    }
}

/// Sends changes after `cursor`: catch-up in bounded batches, then one
/// batch per commit as commits land.
pub(super) async fn run_pump(
    shared: Arc<Shared>,
    peer_site: SiteId,
    mut cursor: Cursor,
    limits: Limits,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let mut head = node.subscribe_head();
    let mut last_live: Option<Instant> = None;
    loop {
        head.borrow_and_update();
        let from = cursor;
        let (frame, next, complete, rows) = node
            .with_store(move |s| -> Result<_, Violation> {
                let out = s
                    .changes_since(from, limits.batch_rows, limits.batch_bytes, Some(peer_site))
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
                Ok((frame, out.cursor, out.complete, rows))
            })
            .await
            .map_err(internal)??;
        if shared.frames.send(frame).await.is_err() {
            return Ok(());
        }
        tracing::trace!(peer = %shared.peer.name, rows, complete, "queued a batch");
        shared.update(|p| {
            p.counters.batches_out += 1;
            p.counters.rows_out += rows;
        });
        cursor = next;
        if complete {
            if head.changed().await.is_err() {
                return Ok(());
            }
            if let Some(at) = last_live {
                let since = at.elapsed();
                if since < LIVE_PACE {
                    tokio::time::sleep(LIVE_PACE - since).await;
                }
            }
            last_live = Some(Instant::now());
        }
    }
}
