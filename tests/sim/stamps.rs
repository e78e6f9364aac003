//! A check that owes nothing to the clock under test: a local write must
//! be stamped above every stamp its office already holds.
//!
//! The model (model.rs) records the stamp the store returned for each
//! write, so a clock that stamped a new write below the version it
//! replaces would make the write lose in the replica and in the model
//! alike, and the final comparison would pass. Here the stamp is judged
//! against what the replica held *before* the write — the newest stamp of
//! any cell or tombstone, which the clock must have issued or observed —
//! read from the replica itself, not from its clock.

use puente::clock::Hlc;
use puente::stamp::Stamp;
use puente::store::Store;

use super::world::World;

/// The newest stamp of any cell or tombstone `store` holds (`None` when
/// it holds none yet, or cannot be read: the write then fails on its own).
pub fn newest_held(store: &Store) -> Option<Stamp> {
    let snap = store.snapshot().ok()?;
    let cells = snap
        .rows
        .values()
        .flat_map(|(_, cells)| cells.values().map(|c| c.stamp));
    let tombstones = snap.tombstones.values().map(|t| t.stamp);
    cells.chain(tombstones).max_by_key(|s| s.hlc)
}

impl World {
    /// Fails the run unless the local write at `office` stamped `hlc`
    /// lies above `before`, the newest stamp the office held before it.
    pub fn check_stamped_above(
        &mut self,
        office: usize,
        what: &str,
        before: Option<Stamp>,
        hlc: Hlc,
    ) {
        if let Some(before) = before
            && hlc <= before.hlc
        {
            let name = self.offices[office].name.clone();
            self.fail(format!(
                "{name} stamped a local write ({what}) at {hlc}, not above {}, the newest stamp it already held: the write loses to versions it should replace",
                before.hlc
            ));
        }
    }
}
