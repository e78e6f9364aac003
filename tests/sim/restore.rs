//! A restore from a backup, and the dishonest office's use of the site id
//! it retires.
//!
//! When the rights plan says so (dishonest.rs), office-0 — the only office
//! that may change or delete people — stops, is restored from a backup
//! taken as it stopped, and comes back under a new site id: its store
//! retires the old one (`Store::begin_new_history`) and forgets its peer
//! cursors. From then on the dishonest office, linked to it, stamps some
//! of the people changes it sends there with that retired id. They look
//! exactly like office-0's own old versions relayed back, so the forger
//! records which ones it made (`World::retired_forged`), and office-0 must
//! hold every one of them that would change something, and apply none.
//!
//! A backup taken as the office stopped loses nothing, so the model of
//! acknowledged writes stays as it is; a restore from an older backup,
//! whose later writes come back from the peers, is tested with real
//! daemons (tests/suite/backup_restore.rs).
//! Must not: draw from the scenario's generators in a run without a
//! restore (every other seed replays as before).

use puente::stamp::SiteId;
use rand::Rng;

use super::world::{Ev, World};

/// How long a restore waits for every honest office to have met the
/// office, before it tries again.
const NOT_MET_RETRY_MS: u64 = 500;

/// The office stops for a restore; it comes back `down_ms` later under a
/// new site id (`new_history`, from `restart`).
///
/// Only once every honest office has bound the office's site id (met it
/// over a connection): an office that first meets it after the restore
/// never learns that its old id is its, so it holds the office's old
/// changes it had not received (relayed, as it sees them, from an office
/// it never met) for an admin's review, and the offices do not converge
/// on their own. That case is left to the held review (docs/simulation.md).
/// Until then the restore waits; past the chaos it does not happen.
pub fn stop_for_restore(world: &mut World, office: usize, down_ms: u64) {
    let site = world.offices[office].site;
    let name = world.offices[office].name.clone();
    let unmet = (0..world.offices.len())
        .filter(|&i| i != office && !world.plan.is_dishonest(i))
        .any(|i| {
            let o = &world.offices[i];
            !o.is_up() || o.store().office_of_site(&site) != Some(name.as_str())
        });
    if unmet {
        if world.now + NOT_MET_RETRY_MS < world.scenario.chaos_ms {
            world.after(NOT_MET_RETRY_MS, Ev::Restore { office, down_ms });
        } else {
            world.note(format!(
                "{name} is not restored: not every office has met it"
            ));
        }
        return;
    }
    if !world.offices[office].is_up() {
        // Down already (a crash): the restore happens as it comes back.
        world.offices[office].restoring = true;
        world.stats.restores += 1;
        world.note(format!(
            "office-{office} is restored from a backup while down"
        ));
        return;
    }
    world.note(format!(
        "office-{office} stops to be restored from a backup"
    ));
    world.stats.restores += 1;
    world.offices[office].restoring = true;
    super::run::stop(world, office, down_ms);
}

/// Called as a restored office's store opens: starts its new history.
pub fn new_history(world: &mut World, office: usize) {
    let mut bytes = [0u8; 16];
    world.rng.fill(&mut bytes);
    let new = SiteId(bytes);
    let was = world.offices[office].site;
    match world.offices[office].store_mut().begin_new_history(new) {
        Ok(retired) if retired == was => {
            let o = &mut world.offices[office];
            o.retired.push(retired);
            o.site = new;
            o.restoring = false;
            world.note(format!(
                "office-{office} starts a new history as {new}; {retired} is retired"
            ));
        }
        Ok(retired) => world.fail(format!(
            "office-{office}'s store retired {retired}, not the site id it had ({was})"
        )),
        Err(e) => world.fail(format!("office-{office} cannot start a new history: {e}")),
    }
}
