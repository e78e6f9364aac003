//! What the honest offices must have done with the dishonest office's
//! changes (dishonest.rs): after every apply, nothing forbidden applied,
//! nothing stamped beyond the drift bound and no clock moved there; at the
//! end, exactly the forbidden changes that would still change something
//! held; and which changes a receiver need not hold for its cursor to be
//! honest.
//! Must not: draw from any generator (checks only).

use std::collections::BTreeSet;

use puente::stamp::Stamp;
use puente::store::{Snapshot, Store};

use super::dishonest::{Key, PEOPLE};
use super::world::{SIM_MAX_DRIFT_MS, World};

impl World {
    /// The forbidden changes sent to anyone, and the dishonest site.
    fn forbidden_anywhere(&self, key: &Key) -> bool {
        self.forbidden_sent.values().any(|s| s.contains(key))
    }

    /// After an apply at an honest office: nothing forbidden is in it,
    /// nothing stamped beyond its drift bound, and its clock is not there.
    pub fn check_nothing_forbidden_applied(&mut self, office: usize, snap: &Snapshot) {
        if !self.plan.on || self.plan.is_dishonest(office) {
            return;
        }
        let limit = self.wall(office) + SIM_MAX_DRIFT_MS;
        let last = self.offices[office].store().last_hlc();
        if last.millis() > limit {
            let name = self.offices[office].name.clone();
            return self.fail(format!(
                "{name}'s clock moved to {last}, beyond its wall clock and drift bound ({limit})"
            ));
        }
        let ahead = snap
            .rows
            .iter()
            .flat_map(|(k, (_, cells))| cells.values().map(move |c| (k, c.stamp)))
            .chain(snap.tombstones.iter().map(|(k, t)| (k, t.stamp)))
            .find(|(_, stamp)| stamp.hlc.millis() > limit);
        if let Some(((table, id), stamp)) = ahead {
            let name = self.offices[office].name.clone();
            return self.fail(format!(
                "{name} applied {table}/{id} stamped {stamp:?}, beyond its drift bound"
            ));
        }
        let dishonest_site = self.plan.dishonest.map(|d| self.offices[d].site);
        for ((table, id), (_, cells)) in &snap.rows {
            if table != PEOPLE {
                continue;
            }
            for (column, cell) in cells {
                let key = (table.clone(), id.clone(), Some(column.clone()), cell.stamp);
                if Some(cell.stamp.site) == dishonest_site || self.forbidden_anywhere(&key) {
                    let name = self.offices[office].name.clone();
                    self.fail(format!(
                        "{name} applied a forbidden change: {table}/{id}/{column} {:?}",
                        cell.stamp
                    ));
                    return;
                }
            }
        }
        for ((table, id), t) in &snap.tombstones {
            let key = (table.clone(), id.clone(), None, t.stamp);
            if table == PEOPLE
                && (Some(t.stamp.site) == dishonest_site || self.forbidden_anywhere(&key))
            {
                let name = self.offices[office].name.clone();
                self.fail(format!("{name} applied a forbidden delete of {table}/{id}"));
                return;
            }
        }
    }

    /// At the end: each honest office holds exactly the forbidden changes
    /// it was sent that would still change something there. Returns how
    /// many it holds, and how many of those were forged with its own
    /// retired site id (restore.rs).
    pub fn check_held(&self) -> Result<(u64, u64), String> {
        let mut total = 0;
        let mut retired = 0;
        for (i, office) in self.offices.iter().enumerate() {
            if self.plan.is_dishonest(i) {
                continue;
            }
            let store = office.store();
            let snap = store.snapshot().map_err(|e| e.to_string())?;
            let held = held_keys(store)?;
            let sent = self.forbidden_sent.get(&i).cloned().unwrap_or_default();
            let effective: BTreeSet<Key> = sent
                .into_iter()
                .filter(|k| would_change(&snap, k))
                .collect();
            let held_effective: BTreeSet<Key> = held
                .iter()
                .filter(|k| would_change(&snap, k))
                .cloned()
                .collect();
            if let Some(k) = held
                .iter()
                .find(|k| !self.forbidden_sent.get(&i).is_some_and(|s| s.contains(*k)))
            {
                return Err(format!(
                    "{} holds a change no one sent it as forbidden: {k:?}",
                    office.name
                ));
            }
            if let Some(k) = effective.difference(&held_effective).next() {
                return Err(format!(
                    "{} did not hold the forbidden change {k:?}",
                    office.name
                ));
            }
            total += held_effective.len() as u64;
            if let Some(forged) = self.retired_forged.get(&i) {
                retired += held_effective.intersection(forged).count() as u64;
            }
        }
        Ok((total, retired))
    }
}

/// Whether the change `key` would still change `snap` if it were applied.
fn would_change(snap: &Snapshot, key: &Key) -> bool {
    let (table, id, column, stamp) = key;
    let row = (table.clone(), id.clone());
    let tombstone = snap.tombstones.get(&row).map(|t| t.stamp);
    match column {
        None => tombstone.is_none_or(|t| *stamp > t),
        Some(column) => {
            tombstone.is_none()
                && snap
                    .rows
                    .get(&row)
                    .and_then(|(_, cells)| cells.get(column))
                    .is_none_or(|c| *stamp > c.stamp)
        }
    }
}

/// The changes a receiver need not hold for its cursor to be honest: the
/// ones it holds, and (from the dishonest office) its people changes,
/// which may have left with other stamps.
pub fn excused(
    world: &World,
    receiver: usize,
    sender: usize,
    sender_snap: &Snapshot,
) -> Result<BTreeSet<Key>, String> {
    let mut out = BTreeSet::new();
    if !world.plan.on {
        return Ok(out);
    }
    out.extend(held_keys(world.offices[receiver].store())?);
    if world.plan.is_dishonest(sender) {
        let site = world.offices[sender].site;
        let snap = sender_snap;
        for ((table, id), (_, cells)) in &snap.rows {
            for (column, cell) in cells {
                if table == PEOPLE && cell.stamp.site == site {
                    out.insert((table.clone(), id.clone(), Some(column.clone()), cell.stamp));
                }
            }
        }
        for ((table, id), t) in &snap.tombstones {
            if table == PEOPLE && t.stamp.site == site {
                out.insert((table.clone(), id.clone(), None, t.stamp));
            }
        }
    }
    Ok(out)
}

/// The changes `store` holds for review, as keys: a held delete, and each
/// held cell.
fn held_keys(store: &Store) -> Result<BTreeSet<Key>, String> {
    let mut keys = BTreeSet::new();
    for h in store.held_list(false).map_err(|e| e.to_string())? {
        let stamp = |hlc| Stamp {
            hlc,
            site: h.origin_site,
        };
        if h.kind == "delete" {
            keys.insert((h.table.clone(), h.row.clone(), None, stamp(h.hlc)));
        }
        for (column, hlc) in &h.columns {
            keys.insert((
                h.table.clone(),
                h.row.clone(),
                Some(column.clone()),
                stamp(*hlc),
            ));
        }
    }
    Ok(keys)
}
