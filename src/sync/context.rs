//! Owns: what a session's executor and the tasks it starts share: the node, the
//! peer's config, the schema the session was opened with (a reload may
//! adopt another: then batches stop and the session ends), the session's
//! `Outbox` behind a lock with the wake-ups around it (the writer waits
//! for a frame, the pump for room: the outbox decides the order and the
//! bound), and the mapping of node errors to session violations.
//!
//! Must not: decide anything about the session (session.rs and its
//! outbox do) or read the stream.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::protocol::{ErrorCode, Message, Violation, encode};
use super::session::{Lane, Outbox, Queued};
use crate::config::{PeerConfig, Schema};
use crate::node::{Node, NodeError, PeerLive};
use crate::store::Cursor;

/// A clock this far off is logged as a warning.
pub const SKEW_WARNING_MS: i64 = 60_000;

pub(super) struct Shared {
    pub node: Arc<Node>,
    pub peer: PeerConfig,
    /// The schema of this session's Hello: batches are read, checked and
    /// applied with its table and column numbers.
    pub schema: Arc<Schema>,
    /// The frames waiting for the stream's writer.
    pub outgoing: SharedOutbox,
}

/// The session's outbox shared by the executor, the pump and the writer.
#[derive(Default)]
pub(super) struct SharedOutbox {
    outbox: Mutex<Outbox>,
    /// Wakes the writer: a frame was queued, or the session ends.
    queued: Notify,
    /// Wakes a pump waiting for room: the writer took a batch, or the
    /// stream is gone.
    room: Notify,
}

fn closed() -> Violation {
    Violation::new(ErrorCode::Normal, "the connection closed")
}

impl SharedOutbox {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a control frame.
    pub fn control(&self, frame: Vec<u8>) -> Result<(), Violation> {
        let queued = self.outbox().push_control(frame);
        match queued {
            Queued::Yes => {
                self.queued.notify_one();
                Ok(())
            }
            Queued::Full(_) | Queued::Closed => Err(closed()),
        }
    }

    /// Queues a batch frame, waiting while the outbox has no room for it.
    pub async fn batch(&self, mut frame: Vec<u8>) -> Result<(), Violation> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let queued = self.outbox().push_batch(frame);
            match queued {
                Queued::Yes => {
                    self.queued.notify_one();
                    return Ok(());
                }
                Queued::Full(back) => frame = back,
                Queued::Closed => return Err(closed()),
            }
            room.await;
        }
    }

    /// The next frame to write, waiting for one; None once closed.
    pub async fn next_frame(&self) -> Option<Vec<u8>> {
        loop {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let next = {
                let mut outbox = self.outbox();
                if outbox.is_closed() {
                    return None;
                }
                outbox.next_frame()
            };
            match next {
                Some((Lane::Batch, frame)) => {
                    self.room.notify_one();
                    return Some(frame);
                }
                Some((Lane::Control, frame)) => return Some(frame),
                None => queued.await,
            }
        }
    }

    /// The stream is gone: nothing more is queued, and a pump waiting for
    /// room learns it.
    pub fn close(&self) {
        self.outbox().close();
        self.room.notify_one();
        self.queued.notify_one();
    }
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut PeerLive)) {
        self.node.update_peer(&self.peer.name, f);
    }

    /// Queues a control message for the writer (never compressed).
    pub fn send_control(&self, message: &Message) -> Result<(), Violation> {
        self.outgoing.control(encode(message)?)
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
