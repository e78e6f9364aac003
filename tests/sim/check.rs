//! Invariants checked while the simulation runs and at its end, besides
//! the model (model.rs): no stored cursor is ahead of the changes applied,
//! and the incremental digest and counts equal a full recomputation.

use std::collections::BTreeSet;

use puente::stamp::Stamp;
use puente::store::{Snapshot, Store};

use super::dishonest::Key;

/// Whether `at` holds the version `stamp` of a cell of `key`, or
/// something that beats it.
fn covers_cell(at: &Snapshot, key: &(String, String), column: &str, stamp: Stamp) -> bool {
    if at.tombstones.contains_key(key) {
        return true;
    }
    at.rows
        .get(key)
        .and_then(|(_, cells)| cells.get(column))
        .is_some_and(|c| c.stamp >= stamp)
}

/// The cursor `receiver` stores for `sender` promises (see `store::Cursor`):
/// every change the sender numbered up to `base` is applied, and so is
/// every row whose latest change is up to `progress`. Checks that promise
/// against both replicas as they are now. `excused`: changes the receiver
/// holds for review instead (or cannot be seen as sent: see dishonest.rs).
/// Answers how many cells and tombstones the cursor promised (zero when
/// the receiver has no cursor for the sender yet), so that the run can
/// show the check was not vacuous.
pub fn cursor_is_not_ahead(
    receiver: &Snapshot,
    sender: &Snapshot,
    excused: &BTreeSet<Key>,
) -> Result<u64, String> {
    let Some(cursor) = receiver.cursors.get(&sender.site).copied() else {
        return Ok(0);
    };
    let mut promised_count = 0u64;
    for (key, (row_seq, cells)) in &sender.rows {
        for (column, cell) in cells {
            let promised = *row_seq <= cursor.progress || cell.seq <= cursor.base;
            let held = || {
                excused.contains(&(
                    key.0.clone(),
                    key.1.clone(),
                    Some(column.clone()),
                    cell.stamp,
                ))
            };
            promised_count += u64::from(promised);
            if promised && !covers_cell(receiver, key, column, cell.stamp) && !held() {
                return Err(format!(
                    "the cursor {cursor:?} for the sender is ahead of what was applied: {}/{}/{column} (sender's sequence {}, row {row_seq}) is missing",
                    key.0, key.1, cell.seq
                ));
            }
        }
    }
    for (key, t) in &sender.tombstones {
        let promised = t.seq <= cursor.progress;
        let covered = receiver
            .tombstones
            .get(key)
            .is_some_and(|r| r.stamp >= t.stamp)
            || excused.contains(&(key.0.clone(), key.1.clone(), None, t.stamp));
        promised_count += u64::from(promised);
        if promised && !covered {
            return Err(format!(
                "the cursor {cursor:?} for the sender is ahead of what was applied: the tombstone of {}/{} (sequence {}) is missing",
                key.0, key.1, t.seq
            ));
        }
    }
    Ok(promised_count)
}

/// The digest and counts kept incrementally equal a full recomputation.
pub fn bookkeeping_is_exact(store: &Store) -> Result<(), String> {
    let full = store.recompute_digest().map_err(|e| e.to_string())?;
    if full != store.digest() {
        return Err(format!(
            "the incremental digest {} differs from a full recomputation {full}",
            store.digest()
        ));
    }
    let stats = store.stats().map_err(|e| e.to_string())?;
    let (rows, sealed) = store.recount().map_err(|e| e.to_string())?;
    let kept: Vec<u64> = stats.rows.iter().map(|(_, n)| *n).collect();
    if kept != rows || stats.sealed_cells != sealed {
        return Err(format!(
            "counts kept {kept:?}/{} differ from a recount {rows:?}/{sealed}",
            stats.sealed_cells
        ));
    }
    Ok(())
}

/// Where two replicas differ, in words, for the report of a run whose
/// offices did not converge: the first row or tombstone they disagree on,
/// with both versions, and how many changes each holds for review.
pub fn divergence(names: [&str; 2], stores: [&Store; 2]) -> String {
    let snaps = match (stores[0].snapshot(), stores[1].snapshot()) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => return format!("(cannot read a replica: {e})"),
    };
    let held = |s: &Store| s.held_list(false).map_or(0, |h| h.len());
    let mut out = format!(
        "{} holds {} changes for review, {} holds {}",
        names[0],
        held(stores[0]),
        names[1],
        held(stores[1])
    );
    let keys: BTreeSet<&(String, String)> = snaps
        .iter()
        .flat_map(|s| s.rows.keys().chain(s.tombstones.keys()))
        .collect();
    for key in keys {
        let version = |s: &Snapshot| {
            let cells = s.rows.get(key).map(|(_, cells)| {
                cells
                    .iter()
                    .map(|(c, r)| format!("{c}@{:?}", r.stamp))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let tombstone = s
                .tombstones
                .get(key)
                .map(|t| format!("deleted@{:?}", t.stamp));
            format!("{cells:?} {tombstone:?}")
        };
        let (a, b) = (version(&snaps[0]), version(&snaps[1]));
        if a != b {
            out.push_str(&format!(
                "; first difference {}/{}: {} has {a}, {} has {b}",
                key.0, key.1, names[0], names[1]
            ));
            break;
        }
    }
    out
}
