//! The JSON shapes of the held-changes endpoints (`/v1/held`), shared by
//! the server and the client.
//!
//! Owns: how a held change is shown (who sent it, which office it is
//! judged as, table, row, columns, kind, stamp, why, when, the decision)
//! and the answer to accepting or discarding one.
//! Must not: carry a cell's value (held cells stay in the replica).

use serde::{Deserialize, Serialize};

use crate::store::HeldChange;

/// One held change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldEntry {
    pub id: i64,
    /// The pinned peer that sent it.
    pub peer: String,
    /// The office it is judged as (or what its site is).
    pub origin: String,
    pub origin_site: String,
    pub table: String,
    pub row: String,
    /// insert, update or delete.
    pub kind: String,
    /// The columns it writes (none for a delete).
    pub columns: Vec<String>,
    /// Its newest stamp's clock.
    pub hlc: String,
    pub why: String,
    /// When it was held (RFC 3339, UTC).
    pub held_at: String,
    /// held, accepted or discarded.
    pub state: String,
    /// The uid of the admin who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// The peer keeps a version this office discarded: digests differ.
    #[serde(default)]
    pub diverges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn time(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

impl From<HeldChange> for HeldEntry {
    fn from(h: HeldChange) -> HeldEntry {
        HeldEntry {
            id: h.id,
            peer: h.peer,
            origin: h.origin,
            origin_site: h.origin_site.to_string(),
            table: h.table,
            row: h.row,
            kind: h.kind,
            columns: h.columns.into_iter().map(|(c, _)| c).collect(),
            hlc: h.hlc.to_string(),
            why: h.why,
            held_at: time(h.held_ms),
            state: h.state,
            decided_by: h.decided_by,
            decided_at: h.decided_ms.map(time),
            diverges: h.diverges,
            note: h.note,
        }
    }
}

/// `GET /v1/held` (`?all=true`: decided ones too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldList {
    pub held: Vec<HeldEntry>,
}

/// `POST /v1/held/{id}/accept` and `/discard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDecision {
    pub change: HeldEntry,
    /// Cells or tombstones written here by the decision.
    pub written: usize,
}
