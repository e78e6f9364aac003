//! Which changes go into one batch for a peer, decided without SQLite.
//!
//! Owns: where a read starts (a cursor beyond the head starts over), how
//! many candidates each source must supply, and turning the candidates
//! `since.rs` reads (rows and tombstones after the cursor) into a `Batch`:
//! oldest first, bounded in rows and bytes (always at least one), leaving
//! out versions the peer wrote or sent us, and the cursor the peer stores
//! with it (see `Cursor` for the invariant it keeps).
//! Must not: touch SQLite or know how batches travel.

use std::collections::HashMap;

use crate::clock::Hlc;
use crate::mutants::{self, Mutant};
use crate::stamp::SiteId;
use crate::store::batch::{Batch, CellChange, Change, Cursor};
use crate::store::cells::clocks::RowClocks;
use crate::value::Value;

/// A batch ready to send and what applying it achieves.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub batch: Batch,
    /// The cursor the receiver stores with this batch.
    pub cursor: Cursor,
    /// True when the batch reaches this replica's head.
    pub complete: bool,
    /// This replica's head sequence when the batch was read.
    pub head: u64,
}

/// A row or tombstone whose change sequence lies after the cursor. Site
/// numbers are local site indices.
#[derive(Debug, Clone)]
pub(in crate::store) enum Candidate {
    Row {
        t: usize,
        id: String,
        clocks: RowClocks,
        values: Vec<Value>,
    },
    Tombstone {
        t: usize,
        id: String,
        hlc: Hlc,
        site: u32,
        via: u32,
    },
}

/// What a peer asked for.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct Request {
    pub from: Cursor,
    pub max_rows: usize,
    pub max_bytes: usize,
    /// The peer itself: versions it wrote or sent us are left out.
    pub skip_site: Option<SiteId>,
}

/// Where reading starts: `from`, or zero when it lies beyond our head (this
/// replica was restored from an older copy) or is malformed. Applying is
/// idempotent, so starting over is always safe.
pub(in crate::store) fn start(from: Cursor, head: u64) -> Cursor {
    if from.progress > head || from.base > from.progress {
        Cursor::ZERO
    } else {
        from
    }
}

/// How many candidates each source (each table, the tombstones) must
/// supply, oldest first: one more than a batch may hold, so a source with
/// more than was read always leaves one behind and the batch is known to be
/// incomplete.
pub(in crate::store) fn fetch_limit(max_rows: usize) -> usize {
    max_rows.max(1) + 1
}

/// Builds the batch from `candidates`, the sources' reads after
/// `request.from` (already passed through `start`), each at most
/// `fetch_limit` long. `sites` maps local site indices to ids.
pub(in crate::store) fn assemble(
    mut candidates: Vec<(u64, Candidate)>,
    request: Request,
    head: u64,
    sites: &[SiteId],
) -> Outgoing {
    let Request {
        from,
        max_rows,
        max_bytes,
        skip_site,
    } = request;
    let max_rows = max_rows.max(1);
    candidates.sort_by_key(|(seq, _)| *seq);
    let available = candidates.len();
    let skipped = |site: u32, via: u32| {
        let wrote = skip_site.is_some_and(|s| s == sites[site as usize]);
        let sent = skip_site.is_some_and(|s| s == sites[via as usize]);
        if mutants::active(Mutant::RelayEchoesToWriter) {
            return sent;
        }
        wrote || sent
    };

    let mut batch = Batch::default();
    let mut dictionary: HashMap<u32, u32> = HashMap::new();
    let mut site_ref = |local: u32, batch: &mut Batch| -> u32 {
        *dictionary.entry(local).or_insert_with(|| {
            batch.sites.push(sites[local as usize]);
            (batch.sites.len() - 1) as u32
        })
    };
    let mut bytes = 0usize;
    let mut taken = 0usize;
    let mut last_seq = from.progress;
    for (seq, candidate) in candidates {
        if taken >= max_rows || (taken > 0 && bytes >= max_bytes) {
            break;
        }
        taken += 1;
        last_seq = seq;
        match candidate {
            Candidate::Row {
                t,
                id,
                clocks,
                values,
            } => {
                let mut cells = Vec::new();
                for (c, (clock, value)) in clocks.0.iter().zip(values).enumerate() {
                    // Cells at or below `base` the peer has; so has it
                    // those it wrote or sent us.
                    if !clock.is_written()
                        || clock.seq <= from.base
                        || skipped(clock.site, clock.via)
                    {
                        continue;
                    }
                    bytes += 16 + value.encoded_len();
                    cells.push(CellChange {
                        column: c as u16,
                        hlc: clock.hlc,
                        site: site_ref(clock.site, &mut batch),
                        value,
                    });
                }
                if !cells.is_empty() {
                    bytes += id.len() + 4;
                    batch.changes.push(Change::Row {
                        table: t as u16,
                        id,
                        cells,
                    });
                }
            }
            Candidate::Tombstone {
                t,
                id,
                hlc,
                site,
                via,
            } => {
                if skipped(site, via) {
                    continue;
                }
                bytes += id.len() + 16;
                let site = site_ref(site, &mut batch);
                batch.changes.push(Change::Tombstone {
                    table: t as u16,
                    id,
                    hlc,
                    site,
                });
            }
        }
    }
    // Complete when every candidate was taken (see `fetch_limit`).
    let complete = taken == available;
    let cursor = if complete {
        Cursor::at(head)
    } else if mutants::active(Mutant::ResumableBasePastRewrites) {
        Cursor::at(last_seq)
    } else {
        Cursor {
            base: from.base,
            progress: last_seq,
        }
    };
    Outgoing {
        batch,
        cursor,
        complete,
        head,
    }
}

#[cfg(test)]
#[path = "batching_tests.rs"]
mod tests;
