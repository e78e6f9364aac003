//! Changes as they travel between replicas.
//!
//! Owns: `Batch` (a bounded set of row and tombstone changes with a site
//! dictionary), `Cursor` (how far a peer's changes have been applied here)
//! and the peer reference used in errors.
//! Must not: encode frames (sync/protocol does) or touch SQLite.

use serde::{Deserialize, Serialize};

use crate::clock::Hlc;
use crate::stamp::SiteId;
use crate::value::Value;

/// One cell version. `column` is the column's canonical index in its table;
/// `site` indexes the batch's site dictionary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellChange {
    pub column: u16,
    pub hlc: Hlc,
    pub site: u32,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// New versions of some cells of a row. `table` is the table's
    /// canonical index in the schema.
    Row {
        table: u16,
        id: String,
        cells: Vec<CellChange>,
    },
    /// The row is deleted for good.
    Tombstone {
        table: u16,
        id: String,
        hlc: Hlc,
        site: u32,
    },
}

/// Changes plus the site ids they refer to (16 bytes once, not per cell).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    pub sites: Vec<SiteId>,
    pub changes: Vec<Change>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Number of cells and tombstones carried.
    pub fn cell_count(&self) -> usize {
        self.changes
            .iter()
            .map(|c| match c {
                Change::Row { cells, .. } => cells.len(),
                Change::Tombstone { .. } => 1,
            })
            .sum()
    }
}

/// Position in a peer's change sequence, as stored by the receiver.
///
/// Invariant: every change the peer numbered `<= base` has been applied,
/// and every row whose latest sequence is in `(base, progress]` has been
/// applied with all its cells newer than `base`. When a sender reaches its
/// head, both become the head. This makes batches resumable even though a
/// row's sequence moves forward each time it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    pub base: u64,
    pub progress: u64,
}

impl Cursor {
    pub const ZERO: Cursor = Cursor {
        base: 0,
        progress: 0,
    };

    pub fn at(head: u64) -> Cursor {
        Cursor {
            base: head,
            progress: head,
        }
    }

    /// Whether `self` is at least as far as `other`.
    pub fn covers(&self, other: &Cursor) -> bool {
        (self.progress, self.base) >= (other.progress, other.base)
    }
}

/// The peer a batch came from, for errors and cursors.
#[derive(Debug, Clone)]
pub struct PeerRef {
    pub site: SiteId,
    pub name: String,
}
