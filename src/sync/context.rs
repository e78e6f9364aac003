//! Owns: what a session's executor and the tasks it starts share: the node, the
//! peer's config, the schema the session was opened with (a reload may
//! adopt another: then batches stop and the session ends), the two queues to the stream writer (control messages,
//! which never wait behind batches, and batches, bounded so that a slow
//! peer slows the pump), and the mapping of node and store errors to
//! session violations.
//!
//! Must not: decide anything about the session (session.rs does) or read
//! the stream.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::protocol::{ErrorCode, Message, Violation, encode};
use crate::config::{PeerConfig, Schema};
use crate::node::{Node, NodeError, PeerLive};
use crate::store::{Cursor, StoreError};

/// A clock this far off is logged as a warning.
pub const SKEW_WARNING_MS: i64 = 60_000;

pub(super) struct Shared {
    pub node: Arc<Node>,
    pub peer: PeerConfig,
    /// The schema of this session's Hello: batches are read, checked and
    /// applied with its table and column numbers.
    pub schema: Arc<Schema>,
    /// Hello, Pull and State: small, and never stuck behind batches.
    pub control: mpsc::UnboundedSender<Vec<u8>>,
    /// Batch frames, bounded: the pump waits while the stream is busy.
    pub batches: mpsc::Sender<Vec<u8>>,
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut PeerLive)) {
        self.node.update_peer(&self.peer.name, f);
    }

    /// Queues a control message for the writer.
    pub fn send_control(&self, message: &Message) -> Result<(), Violation> {
        let frame = encode(message)?;
        self.control
            .send(frame)
            .map_err(|_| Violation::new(ErrorCode::Normal, "the connection closed"))
    }

    /// Records how far this node has applied the peer's changes (read
    /// from or just stored in the replica; never moves backwards), for
    /// status and progress.
    pub fn note_our_cursor(&self, cursor: Cursor) {
        self.update(|p| {
            let newer = p
                .our_cursor
                .is_none_or(|c| (cursor.progress, cursor.base) >= (c.progress, c.base));
            if newer {
                p.our_cursor = Some(cursor);
            }
        });
        self.node.observe_progress(&self.peer.name);
    }

    /// Records the peer's clock skew, warning when it is large and new.
    pub fn note_skew(&self, skew_ms: i64) {
        if skew_ms.abs() >= SKEW_WARNING_MS {
            let previous = self.node.peer(&self.peer.name).and_then(|p| p.skew_ms);
            if previous.is_none_or(|p| (p - skew_ms).abs() >= SKEW_WARNING_MS) {
                tracing::warn!(
                    peer = %self.peer.name,
                    skew_s = skew_ms / 1000,
                    "the peer's clock differs from ours by {} s; hybrid logical clocks keep the order, but check NTP at both offices",
                    skew_ms / 1000
                );
            }
        }
        self.update(|p| p.skew_ms = Some(skew_ms));
    }
}

/// Ends a session whose schema is no longer the replica's (a reload
/// adopted another): its batches number tables and columns the old way.
/// The peer reconnects, and the new Hello carries the new schema.
pub(super) fn same_schema(session: &Schema, replica: &Schema) -> Result<(), Violation> {
    if session.hash() == replica.hash() {
        Ok(())
    } else {
        Err(Violation::new(
            ErrorCode::Normal,
            "the schema changed here (reload); reconnecting",
        ))
    }
}

pub(super) fn internal(e: NodeError) -> Violation {
    Violation::new(ErrorCode::Internal, e.to_string())
}

pub(super) fn store_violation(e: StoreError) -> Violation {
    match e {
        StoreError::InvalidBatch { .. } => Violation::new(ErrorCode::InvalidBatch, e.to_string()),
        StoreError::SiteOfAnotherOffice { .. } => {
            Violation::new(ErrorCode::SameSite, e.to_string())
        }
        other => Violation::new(
            ErrorCode::ApplyFailed,
            format!("could not store the peer's changes: {other}"),
        ),
    }
}

/// A task the executor started failed to finish (it panicked or was
/// cancelled): a bug in this node, said as such.
pub(super) fn task_failed(what: &str, e: tokio::task::JoinError) -> Violation {
    let how = if e.is_panic() {
        "panicked"
    } else {
        "was cancelled"
    };
    Violation::new(
        ErrorCode::Internal,
        format!(
            "{what} {how}; this is a bug in puente, not damage to the replica — report it with the log"
        ),
    )
}
