//! Runs with write rights, and a dishonest office.
//!
//! About half the seeds (drawn from a generator of their own, so that the
//! other seeds replay exactly as before) give the schema rights: every
//! honest office may edit events, insert people and set their status;
//! only office-0 may change or delete people. The honest offices are then
//! linked with everyone (a change relayed from an office a receiver never
//! met is held to what every office may: docs/design.md), and most such
//! runs add a dishonest office, linked to one or two honest ones. It has
//! no rights on people, and its own store does not check them: it deletes
//! people, changes their names and statuses, inserts new ones, and on the
//! wire stamps some of those changes with the receiver's own site id, an
//! unknown site id or (deletes) another honest office's site id, and (from
//! a generator of its own) some with a time ten years ahead or the
//! largest timestamp there is.
//!
//! Checked (forbidden.rs): honest offices refuse their own forbidden writes; no honest
//! office ever applies a forbidden change, holds a cell or tombstone
//! stamped beyond its drift bound, or moves its clock there (after every
//! apply); at the end
//! the honest offices equal the model of allowed acknowledged writes, and
//! each holds exactly the forbidden changes it was sent that would still
//! change something.

use std::collections::BTreeSet;

use std::ops::Not;

use puente::clock::Hlc;
use puente::stamp::{SiteId, Stamp};
use puente::store::{Batch, CellChange, Change, StoreError};
use puente::value::{Plaintext, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::Expect;
use super::scenario::{LinkSpec, Scenario};
use super::world::{SIM_MAX_DRIFT_MS, World};

/// How far ahead the dishonest office stamps some changes.
const TEN_YEARS_MS: u64 = 3_652 * 24 * 3_600_000;

/// The table rights restrict (index 1 in the sim's schema: people).
pub const PEOPLE: &str = "people";
/// The table every office may edit.
pub const EVENTS: &str = "events";

/// (table, id, column or None for a tombstone, stamp)
pub type Key = (String, String, Option<String>, Stamp);

/// How a run uses rights.
#[derive(Debug, Clone, Default)]
pub struct RightsPlan {
    pub on: bool,
    /// The dishonest office's index, when there is one.
    pub dishonest: Option<usize>,
    /// The honest offices it is linked to.
    pub dishonest_links: Vec<usize>,
    /// When office-0 (the one that may delete people) is restored from a
    /// backup, if it is (restore.rs); the dishonest office is then linked
    /// to it, and uses its retired site id.
    pub restore_at: Option<u64>,
}

impl RightsPlan {
    /// Draws the plan from its own generator and reshapes the scenario:
    /// honest offices linked with everyone, the dishonest one appended.
    pub fn draw(seed: u64, scenario: &mut Scenario) -> RightsPlan {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5249_4748_5453_0001);
        if !rng.random_bool(0.5) {
            return RightsPlan::default();
        }
        let honest = scenario.offices;
        let link = |rng: &mut StdRng, a, b| LinkSpec {
            a,
            b,
            delay_ms: rng.random_range(1..=60),
            jitter_ms: rng.random_range(0..=20),
            loss: [0.0, 0.01, 0.05][rng.random_range(0..3)],
        };
        let mut links = Vec::new();
        for a in 0..honest {
            for b in a + 1..honest {
                // Keep the drawn link where there is one (faults name it).
                match scenario.links.iter().find(|l| l.a == a && l.b == b) {
                    Some(l) => links.push(l.clone()),
                    None => links.push(link(&mut rng, a, b)),
                }
            }
        }
        let mut plan = RightsPlan {
            on: true,
            ..RightsPlan::default()
        };
        if rng.random_bool(0.75) {
            let d = honest;
            let mut to: Vec<usize> = (0..honest).collect();
            while to.len() > 2 || (to.len() > 1 && rng.random_bool(0.5)) {
                to.remove(rng.random_range(0..to.len()));
            }
            for &h in &to {
                links.push(link(&mut rng, h, d));
            }
            scenario.offices += 1;
            scenario.skew_ms.push(rng.random_range(-2_000..=2_000));
            // Drawn last, so the rest of the plan is as it was.
            if rng.random_bool(0.5) {
                plan.restore_at =
                    Some(rng.random_range(scenario.chaos_ms / 4..scenario.chaos_ms / 2));
                if !to.contains(&0) {
                    links.push(link(&mut rng, 0, d));
                    to.push(0);
                }
            }
            plan.dishonest = Some(d);
            plan.dishonest_links = to;
        }
        scenario.links = links;
        plan
    }

    pub fn is_dishonest(&self, office: usize) -> bool {
        self.dishonest == Some(office)
    }
}

/// The simulator's schema, with rights when the plan says so.
pub fn schema_text(recipient: &str, plan: &RightsPlan, offices: usize) -> String {
    let mut text = String::new();
    if plan.on {
        let names: Vec<String> = (0..offices).map(|i| format!("\"office-{i}\"")).collect();
        let honest: Vec<String> = (0..offices)
            .filter(|i| !plan.is_dishonest(*i))
            .map(|i| format!("\"office-{i}\""))
            .collect();
        text.push_str(&format!("offices = [{}]\n", names.join(", ")));
        text.push_str(&format!(
            "[tables.people.rights]\ninsert = [{h}]\nupdate = [\"office-0\"]\ndelete = [\"office-0\"]\n\
             [tables.people.rights.columns]\nstatus = [{h}]\n",
            h = honest.join(", ")
        ));
    }
    format!(
        "{text}[groups]\nmx = [\"{recipient}\"]\n\n\
         [tables.events.columns]\ntitle = \"shared\"\nplace = \"shared\"\nseats = \"shared\"\n\n\
         [tables.people.columns]\nstatus = \"shared\"\nname = {{ sealed = \"mx\" }}\nphone = {{ sealed = \"mx\" }}\n"
    )
}

const WORDS: &[&str] = &["feria", "clínica", "taller", "comida", "ropa", "salud"];

fn value(world: &mut World, sealed: bool) -> (Plaintext, Expect) {
    let word = WORDS[world.rng.random_range(0..WORDS.len())];
    let n: i64 = world.rng.random_range(0..1000);
    if sealed {
        let text = format!("{word} {n}");
        (Plaintext::text(text.clone()), Expect::Sealed(text))
    } else {
        (
            Plaintext::new(Value::Integer(n)),
            Expect::Shared(Value::Integer(n)),
        )
    }
}

/// One write under rights at `office` (which is up, its clock set): the
/// events table as before (the caller does it); here, people.
pub fn write_people(world: &mut World, office: usize) {
    let plan = world.plan.clone();
    let id = format!("r{}", world.rng.random_range(0..world.scenario.ids));
    let site = world.offices[office].site;
    let name = world.offices[office].name.clone();
    let dishonest = plan.is_dishonest(office);
    let privileged = office == 0;
    let roll: f64 = world.rng.random();
    // Read before the write, from the replica (stamps.rs).
    let newest = super::stamps::newest_held(world.offices[office].store());
    let exists = world.offices[office]
        .store()
        .get(PEOPLE, &id, puente::store::Reveal::No)
        .map(|r| r.is_some())
        .unwrap_or(false);
    // Deletes: office-0 (allowed), the dishonest office (forbidden), and
    // now and then an honest office that must be refused.
    if roll < 0.15 {
        let result = world.offices[office].store_mut().delete(PEOPLE, &id);
        match result {
            Ok(w) if !privileged && !dishonest && w.cells == 1 => {
                world.fail(format!("{name} deleted {PEOPLE}/{id} without the right"));
            }
            Ok(w) if w.cells == 1 => {
                let stamp = Stamp { hlc: w.hlc, site };
                world.check_stamped_above(office, &format!("delete {PEOPLE}/{id}"), newest, w.hlc);
                world.note(format!("{name}: deleted {PEOPLE}/{id} at {}", w.hlc));
                if !dishonest {
                    world.model.delete(PEOPLE, &id, stamp);
                }
                world.head_moved(office);
            }
            Ok(_) | Err(StoreError::NoSuchRow { .. }) => {}
            Err(StoreError::Forbidden { .. }) if !privileged && !dishonest => {
                world.stats.refused += 1;
            }
            Err(e) => world.refused_write(office, e),
        }
        return;
    }
    // An honest office tries to change a name it may not: refused.
    if !privileged && !dishonest && exists && roll < 0.25 {
        let (v, _) = value(world, true);
        match world.offices[office]
            .store_mut()
            .put(PEOPLE, &id, vec![("name".into(), v)])
        {
            Err(StoreError::Forbidden { .. }) => world.stats.refused += 1,
            Err(StoreError::RowDeleted { .. }) => {}
            Err(e) => world.refused_write(office, e),
            Ok(_) => world.fail(format!(
                "{name} changed {PEOPLE}/{id}/name without the right"
            )),
        }
        return;
    }
    // What each may write: office-0 and the dishonest office any columns
    // of the shared ids; honest others a new id of their own (any
    // columns) or the status of a shared id.
    let (id, columns): (String, Vec<&str>) = if privileged || dishonest || roll < 0.6 {
        let fresh = !privileged && world.rng.random_bool(0.5);
        let id = if fresh || (!privileged && !dishonest) {
            world.fresh += 1;
            format!("f{office}-{}", world.fresh)
        } else {
            id
        };
        (id, vec!["status", "name", "phone"])
    } else {
        (id, vec!["status"])
    };
    let mut cells = Vec::new();
    let mut expect = Vec::new();
    for column in columns {
        if !world.rng.random_bool(0.6) {
            continue;
        }
        let (v, e) = value(world, column != "status");
        cells.push((column.to_string(), v));
        expect.push((column.to_string(), e));
    }
    if cells.is_empty() {
        return;
    }
    match world.offices[office].store_mut().put(PEOPLE, &id, cells) {
        Ok(w) => {
            let stamp = Stamp { hlc: w.hlc, site };
            world.check_stamped_above(office, &format!("put {PEOPLE}/{id}"), newest, w.hlc);
            world.note(format!("{name}: put {PEOPLE}/{id} at {}", w.hlc));
            if !dishonest {
                world.model.put(PEOPLE, &id, stamp, expect);
            }
            world.head_moved(office);
        }
        Err(StoreError::RowDeleted { .. }) => {}
        Err(e) => world.refused_write(office, e),
    }
}

impl World {
    /// The dishonest office rewrites the stamps of some of its own people
    /// changes before they leave (its replica keeps the true ones), and
    /// the forbidden changes it sends to `to` are recorded.
    pub fn forge(&mut self, from: usize, to: usize, batch: &mut Batch) {
        let own = self.offices[from].site;
        let receiver = self.offices[to].site;
        let people = self
            .schema
            .table_index(PEOPLE)
            .expect("the sim's schema has people") as u16;
        let honest_other: Vec<SiteId> = (1..self.offices.len())
            .filter(|i| !self.plan.is_dishonest(*i) && *i != to)
            .map(|i| self.offices[i].site)
            .collect();
        // The receiver's retired site ids (restore.rs): its own old
        // versions carry them, so a change stamped with one looks like
        // its own version coming back.
        let retired_here = self.offices[to].retired.clone();
        let mut forged_retired: Vec<Key> = Vec::new();
        let Some(own_index) = batch.sites.iter().position(|s| *s == own) else {
            return;
        };
        let index_of = |batch: &mut Batch, site: SiteId| -> u32 {
            match batch.sites.iter().position(|s| *s == site) {
                Some(i) => i as u32,
                None => {
                    batch.sites.push(site);
                    (batch.sites.len() - 1) as u32
                }
            }
        };
        let mut changes = std::mem::take(&mut batch.changes);
        for change in &mut changes {
            let forge_to = |rng: &mut StdRng, tombstone: bool| -> Option<SiteId> {
                if !rng.random_bool(0.3) {
                    return None;
                }
                if !retired_here.is_empty() && rng.random_bool(0.5) {
                    return Some(retired_here[rng.random_range(0..retired_here.len())]);
                }
                match rng.random_range(0..3) {
                    0 => Some(receiver),
                    1 => {
                        let mut s = [0u8; 16];
                        rng.fill(&mut s);
                        Some(SiteId(s))
                    }
                    _ if tombstone && !honest_other.is_empty() => {
                        Some(honest_other[rng.random_range(0..honest_other.len())])
                    }
                    _ => Some(receiver),
                }
            };
            match change {
                Change::Row {
                    table, id, cells, ..
                } if *table == people => {
                    if let Some(site) = forge_to(&mut self.rng, false) {
                        let i = index_of(batch, site);
                        for cell in cells.iter_mut().filter(|c| c.site as usize == own_index) {
                            cell.site = i;
                            if retired_here.contains(&site) {
                                let column = self.schema.tables[people as usize].columns
                                    [cell.column as usize]
                                    .name
                                    .clone();
                                let stamp = Stamp {
                                    hlc: cell.hlc,
                                    site,
                                };
                                forged_retired.push((
                                    PEOPLE.into(),
                                    id.clone(),
                                    Some(column),
                                    stamp,
                                ));
                            }
                        }
                    }
                }
                Change::Tombstone {
                    table,
                    id,
                    hlc,
                    site,
                } if *table == people && *site as usize == own_index => {
                    if let Some(forged) = forge_to(&mut self.rng, true) {
                        *site = index_of(batch, forged);
                        if retired_here.contains(&forged) {
                            let stamp = Stamp {
                                hlc: *hlc,
                                site: forged,
                            };
                            forged_retired.push((PEOPLE.into(), id.clone(), None, stamp));
                        }
                    }
                }
                _ => {}
            }
        }
        // Stamps from the future on what it forged or wrote itself (never
        // on an honest office's version it relays).
        let honest_delete = self.offices[0].site;
        let far = [Hlc::MAX, Hlc::from_parts(self.wall(from) + TEN_YEARS_MS, 7)];
        // Honest offices' sites, their retired ones included (old
        // versions, or forged ones recorded above with their stamps).
        let honest: Vec<SiteId> = (0..self.offices.len())
            .filter(|i| !self.plan.is_dishonest(*i))
            .flat_map(|i| {
                let o = &self.offices[i];
                o.retired.iter().copied().chain([o.site])
            })
            .collect();
        let retired_deleter = self.offices[0].retired.clone();
        let people_own = |site: SiteId| honest.contains(&site).not() || site == receiver;
        for change in &mut changes {
            match change {
                Change::Row { table, cells, .. }
                    if *table == people && self.clock_rng.random_bool(0.2) =>
                {
                    let stamp = far[self.clock_rng.random_range(0..far.len())];
                    for cell in cells.iter_mut() {
                        if people_own(batch.sites[cell.site as usize]) {
                            cell.hlc = stamp;
                        }
                    }
                }
                Change::Tombstone {
                    table, site, hlc, ..
                } if *table == people => {
                    let s = batch.sites[*site as usize];
                    if s != honest_delete
                        && !retired_deleter.contains(&s)
                        && self.clock_rng.random_bool(0.2)
                    {
                        *hlc = far[self.clock_rng.random_range(0..far.len())];
                    }
                }
                _ => {}
            }
        }
        // An edit of an event, which every office may make, stamped far
        // ahead: here only the drift bound stands between the stamp and
        // the receiver (its people changes are held by the rights anyway).
        // Made up on the wire, never acknowledged, so the model has no
        // part in it; the receiver must hold it (`record_forbidden`).
        if self.ahead_rng.random_bool(0.2) {
            let events = self
                .schema
                .table_index(EVENTS)
                .expect("the sim's schema has events") as u16;
            let title = self.schema.tables[events as usize]
                .columns
                .iter()
                .position(|c| c.name == "title")
                .expect("the sim's events have a title") as u16;
            let hlc = far[self.ahead_rng.random_range(0..far.len())];
            changes.push(Change::Row {
                table: events,
                id: format!("ahead-{}", self.ahead_rng.random_range(0..4)),
                cells: vec![CellChange {
                    column: title,
                    hlc,
                    site: own_index as u32,
                    value: Value::Text("from years ahead".into()),
                }],
            });
            self.stats.ahead_sent += 1;
        }
        batch.changes = changes;
        self.stats.retired_forged += forged_retired.len() as u64;
        self.retired_forged
            .entry(to)
            .or_default()
            .extend(forged_retired);
    }

    /// The forbidden changes in a batch from the dishonest office that
    /// `to` applied (so each was held there, or changed nothing).
    pub fn record_forbidden(&mut self, to: usize, batch: &Batch) {
        let people = self
            .schema
            .table_index(PEOPLE)
            .expect("the sim's schema has people") as u16;
        let events = self
            .schema
            .table_index(EVENTS)
            .expect("the sim's schema has events") as u16;
        let receiver = self.offices[to].site;
        // Sites of no honest office (the dishonest one's, made-up ones)
        // and the receiver's own: forged or forbidden whatever they stamp.
        let forged: BTreeSet<u32> = batch
            .sites
            .iter()
            .enumerate()
            .filter(|(_, s)| !self.site_is_honest(s) || **s == receiver)
            .map(|(i, _)| i as u32)
            .collect();
        // Stamped with one of the receiver's retired ids: forged only if
        // the dishonest office made it so (otherwise the receiver's own old
        // version, relayed back).
        let retired_here = &self.offices[to].retired;
        let forged_retired = self.retired_forged.get(&to);
        let is_forged = |site: &u32, key: &Key| {
            forged.contains(site)
                || (retired_here.contains(&key.3.site)
                    && forged_retired.is_some_and(|f| f.contains(key)))
        };
        let mut keys = Vec::new();
        for change in &batch.changes {
            match change {
                Change::Row { table, id, cells } if *table == people => {
                    for cell in cells {
                        let stamp = Stamp {
                            hlc: cell.hlc,
                            site: batch.sites[cell.site as usize],
                        };
                        let column = self.schema.tables[people as usize].columns
                            [cell.column as usize]
                            .name
                            .clone();
                        let key = (PEOPLE.to_string(), id.clone(), Some(column), stamp);
                        if is_forged(&cell.site, &key) {
                            keys.push(key);
                        }
                    }
                }
                // Only office-0 deletes people: a tombstone stamped as any
                // other office is forbidden (or forged).
                Change::Tombstone {
                    table,
                    id,
                    hlc,
                    site,
                } if *table == people => {
                    let s = batch.sites[*site as usize];
                    let key = (
                        PEOPLE.to_string(),
                        id.clone(),
                        None,
                        Stamp { hlc: *hlc, site: s },
                    );
                    let deleter = &self.offices[0];
                    let by_deleter = s == deleter.site || deleter.retired.contains(&s);
                    if is_forged(site, &key) || !by_deleter {
                        keys.push(key);
                    }
                }
                // An event edit stamped beyond the receiver's drift bound:
                // only the dishonest office sends one (honest clocks stay
                // within it), and it must be held until this clock
                // catches up, which it never does in a run.
                Change::Row { table, id, cells } if *table == events => {
                    let limit = self.wall(to) + SIM_MAX_DRIFT_MS;
                    for cell in cells.iter().filter(|c| c.hlc.millis() > limit) {
                        let stamp = Stamp {
                            hlc: cell.hlc,
                            site: batch.sites[cell.site as usize],
                        };
                        let column = self.schema.tables[*table as usize].columns
                            [cell.column as usize]
                            .name
                            .clone();
                        keys.push((EVENTS.to_string(), id.clone(), Some(column), stamp));
                    }
                }
                _ => {}
            }
        }
        self.forbidden_sent.entry(to).or_default().extend(keys);
    }

    /// Whether `site` is one of the honest offices' sites, now or before
    /// a restore.
    fn site_is_honest(&self, site: &SiteId) -> bool {
        self.offices.iter().enumerate().any(|(i, o)| {
            (o.site == *site || o.retired.contains(site)) && !self.plan.is_dishonest(i)
        })
    }
}
