//! One seeded run: offices made, the workload and the faults scheduled
//! from the seed, events processed in order, and at the end — once every
//! fault has healed — the checks: every replica equal to the model, every
//! digest equal and equal to a full recomputation, no cursor ahead of its
//! data, all within a bounded simulated time (liveness).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use puente::clock::ManualClock;
use puente::config::Schema;
use puente::seal::{Keyring, generate_identity_file};
use puente::stamp::{SiteId, Stamp};
use puente::store::{Store, StoreError};
use puente::value::{Plaintext, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::check;
use super::dishonest::{self, RightsPlan};
use super::model::Expect;
use super::scenario::{Fault, Scenario};
use super::world::{Ev, Office, Stats, World};

/// After the last fault heals, every office must hold everything within
/// this much simulated time.
pub const LIVENESS_MS: u64 = 120_000;
/// How often convergence is checked once the faults are over.
const CHECK_EVERY_MS: u64 = 1_000;
/// How long a restore keeps an office down (restore.rs).
const RESTORE_DOWN_MS: u64 = 3_000;

/// What a passing run did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub stats: Stats,
    /// Whether the run had rights, and a dishonest office.
    pub rights: bool,
    pub dishonest: bool,
    pub acknowledged: usize,
    pub converged_after_ms: u64,
}

/// A failing run: what broke and the events before it.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub trace: Vec<String>,
}

/// The identity every run seals to (made once per process).
struct Keys {
    _dir: tempfile::TempDir,
    recipient: String,
    keyring: Arc<Keyring>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("sim.key");
        let recipient =
            generate_identity_file(&file, jiff::Timestamp::UNIX_EPOCH).expect("an identity file");
        let (keyring, _) = Keyring::load(&[file]).expect("the identity loads");
        Keys {
            _dir: dir,
            recipient,
            keyring: Arc::new(keyring),
        }
    })
}

fn schema(recipient: &str, plan: &RightsPlan, offices: usize) -> Schema {
    let text = dishonest::schema_text(recipient, plan, offices);
    Schema::parse(Path::new("sim-schema.toml"), &text).expect("the simulator's schema parses")
}

/// Where replicas go: memory-backed when the machine has it.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("a temp dir")
}

fn open_store(world_schema: &Arc<Schema>, office: &Office) -> Result<Store, StoreError> {
    let mut store = Store::open(
        &office.path,
        puente::store::StoreOptions::new(
            world_schema.clone(),
            Arc::new(Keyring::empty()),
            office.clock.clone(),
        )
        .new_site(office.site),
    )?;
    store.relax_durability_for_simulation()?;
    store.set_max_clock_drift(Some(super::world::SIM_MAX_DRIFT_MS));
    store.set_office(&office.name)?;
    if office.disk_full {
        store.limit_pages(1)?;
    }
    let mut store = store;
    store.set_seal_threads(1);
    Ok(store)
}

/// Runs seed `seed`; `trace` prints every event.
pub fn run(seed: u64, trace: bool) -> Result<Summary, Failure> {
    let dir = scratch();
    let keys = keys();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut scenario = Scenario::draw(&mut rng);
    let plan = RightsPlan::draw(seed, &mut scenario);
    let schema = Arc::new(schema(&keys.recipient, &plan, scenario.offices));
    let offices = (0..scenario.offices)
        .map(|i| {
            let mut site = [0u8; 16];
            rng.fill(&mut site);
            Office {
                name: format!("office-{i}"),
                site: SiteId(site),
                path: dir.path().join(format!("office-{i}.db")),
                store: None,
                clock: ManualClock::new(0),
                offset_ms: scenario.skew_ms[i],
                epoch: 0,
                rank: rng.random(),
                registry: Default::default(),
                diallers: Default::default(),
                disk_full: false,
                restart_at: None,
                retired: Vec::new(),
                restoring: false,
                versions: if rng.random_bool(0.2) {
                    vec![1]
                } else {
                    puente::sync::protocol::SPOKEN.to_vec()
                },
            }
        })
        .collect();
    let mut world = World::new(rng, scenario, schema, keys.keyring.clone(), offices, plan);
    world.clock_rng = StdRng::seed_from_u64(seed ^ 0x434c_4f43_4b53_0001);
    world.ahead_rng = StdRng::seed_from_u64(seed ^ 0x4148_4541_4400_0001);
    world.tracing = trace;
    if trace {
        eprintln!("{:#?}\n{:?}", world.scenario, world.plan);
        for o in &world.offices {
            eprintln!("{}: site {}", o.name, o.site);
        }
    }
    let result = simulate(&mut world);
    drop(dir);
    result.map_err(|what| Failure {
        what,
        trace: world.trace.iter().cloned().collect(),
    })
}

fn simulate(world: &mut World) -> Result<Summary, String> {
    for i in 0..world.offices.len() {
        world.sync_clock(i);
        let schema = world.schema_of(i);
        let store = open_store(&schema, &world.offices[i])
            .map_err(|e| format!("creating office {i}: {e}"))?;
        world.offices[i].store = Some(store);
    }
    let scenario = world.scenario.clone();
    // Every office dials every peer it is linked to, once it has started.
    for office in 0..scenario.offices {
        for peer in world.peers_of(office) {
            let at = world.rng.random_range(0..100);
            world.at(
                at,
                Ev::Rested {
                    from: office,
                    to: peer,
                    epoch: 0,
                },
            );
        }
    }
    for _ in 0..scenario.writes {
        let at = world.rng.random_range(0..scenario.chaos_ms);
        let office = world.rng.random_range(0..scenario.offices);
        world.at(at, Ev::Write { office });
    }
    let mut quiet_from = scenario.chaos_ms;
    for (at, fault) in &scenario.faults {
        match *fault {
            Fault::Crash { office, down_ms } => {
                world.at(*at, Ev::Crash { office, down_ms });
                quiet_from = quiet_from.max(at + down_ms);
            }
            Fault::Cut { a, b, for_ms } => {
                let link = world.link_between(a, b).expect("a link of the scenario");
                world.at(*at, Ev::Cut { link, for_ms });
                quiet_from = quiet_from.max(at + for_ms);
            }
            Fault::ClockJump { office, delta_ms } => {
                world.at(*at, Ev::ClockJump { office, delta_ms });
            }
            Fault::DiskFull { office, for_ms } => {
                world.at(*at, Ev::Disk { office, full: true });
                world.at(
                    at + for_ms,
                    Ev::Disk {
                        office,
                        full: false,
                    },
                );
                quiet_from = quiet_from.max(at + for_ms);
            }
        }
    }
    if let Some(at) = world.plan.restore_at {
        let down_ms = RESTORE_DOWN_MS;
        world.at(at, Ev::Restore { office: 0, down_ms });
        // It may wait until the end of the chaos (restore.rs).
        quiet_from = quiet_from.max(scenario.chaos_ms + down_ms);
    }
    world.at(quiet_from + CHECK_EVERY_MS, Ev::Check);
    let deadline = quiet_from + LIVENESS_MS;
    while let Some(ev) = world.pop() {
        if let Ev::Check = ev {
            if converged(world)? {
                return Ok(Summary {
                    stats: world.stats,
                    rights: world.plan.on,
                    dishonest: world.plan.dishonest.is_some(),
                    acknowledged: world.model.acknowledged,
                    converged_after_ms: world.now - quiet_from,
                });
            }
            if world.now >= deadline {
                return Err(format!(
                    "the offices did not converge within {} s of simulated time after the last fault healed ({})",
                    LIVENESS_MS / 1000,
                    unconverged(world)
                ));
            }
            world.after(CHECK_EVERY_MS, Ev::Check);
        } else {
            handle(world, ev);
        }
        if let Some(failure) = world.failure.take() {
            return Err(failure);
        }
    }
    Err("the event queue ran dry before the offices converged".into())
}

fn handle(world: &mut World, ev: Ev) {
    match ev {
        Ev::Deliver { conn, to } => world.deliver(conn, to),
        Ev::Tick { conn, side } => world.on_tick(conn, side),
        Ev::ApplyDone {
            conn,
            side,
            epoch,
            group,
            settle,
        } => world.apply_done(conn, side, epoch, group, settle),
        Ev::PumpDone {
            conn,
            side,
            epoch,
            order,
        } => world.pump_done(conn, side, epoch, order),
        Ev::WriteFrame { conn, side } => world.write(conn, side),
        Ev::Rested { from, to, epoch } => world.rested(from, to, epoch),
        Ev::Attempted {
            from,
            to,
            epoch,
            attempt,
        } => world.attempted(from, to, epoch, attempt),
        Ev::Establish {
            dialer,
            acceptor,
            epoch,
        } => world.establish(dialer, acceptor, epoch),
        Ev::Lost { conn, side, ending } => world.end_side(conn, side, ending),
        Ev::Write { office } => write(world, office),
        Ev::Crash { office, down_ms } => crash(world, office, down_ms),
        Ev::Restart { office } => restart(world, office),
        Ev::Restore { office, down_ms } => super::restore::stop_for_restore(world, office, down_ms),
        Ev::Cut { link, for_ms } => {
            if !world.links[link].cut {
                world.links[link].cut = true;
                world.links[link].cut_epoch += 1;
                let cut_epoch = world.links[link].cut_epoch;
                let (a, b) = (world.links[link].spec.a, world.links[link].spec.b);
                world.note(format!("link {a}-{b} cut for {for_ms} ms"));
                let ids: Vec<u64> = world
                    .conns
                    .iter()
                    .filter(|(_, c)| c.ends.contains(&a) && c.ends.contains(&b))
                    .map(|(id, _)| *id)
                    .collect();
                for conn in ids {
                    world.after(
                        super::world::IDLE_TIMEOUT_MS,
                        Ev::IdleTimeout {
                            conn,
                            link,
                            cut_epoch,
                        },
                    );
                }
                world.after(for_ms, Ev::Heal { link });
            }
        }
        Ev::Heal { link } => {
            world.note(format!("link {link} healed"));
            world.heal_link(link);
        }
        Ev::IdleTimeout {
            conn,
            link,
            cut_epoch,
        } => world.idle_timeout(conn, link, cut_epoch),
        Ev::ClockJump { office, delta_ms } => {
            world.offices[office].offset_ms += delta_ms;
            world.note(format!("office-{office}'s clock jumps {delta_ms} ms"));
        }
        Ev::Disk { office, full } => {
            world.offices[office].disk_full = full;
            world.note(format!("office-{office}'s disk full: {full}"));
            if let Some(store) = &world.offices[office].store {
                let pages = if full { 1 } else { 1 << 30 };
                if let Err(e) = store.limit_pages(pages) {
                    world.fail(format!("limiting pages: {e}"));
                }
            }
        }
        Ev::Check => {}
    }
}

const WORDS: &[&str] = &[
    "feria", "clínica", "taller", "comida", "ropa", "salud", "escuela", "parque",
];

/// One write of the workload at `office`: a put of some columns (a new
/// row or a partial update) or a delete, on a small pool of ids.
fn write(world: &mut World, office: usize) {
    if !world.offices[office].is_up() {
        return;
    }
    world.sync_clock(office);
    let t = world.rng.random_range(0..2usize);
    let table = world.schema.tables[t].name.clone();
    if world.plan.on && table == dishonest::PEOPLE {
        dishonest::write_people(world, office);
        return;
    }
    let id = format!("r{}", world.rng.random_range(0..world.scenario.ids));
    let site = world.offices[office].site;
    let name = world.offices[office].name.clone();
    let newest = super::stamps::newest_held(world.offices[office].store());
    if world.rng.random_bool(0.15) {
        match world.offices[office].store_mut().delete(&table, &id) {
            Ok(w) => {
                if w.cells == 1 {
                    world.check_stamped_above(
                        office,
                        &format!("delete {table}/{id}"),
                        newest,
                        w.hlc,
                    );
                    let stamp = Stamp { hlc: w.hlc, site };
                    world.model.delete(&table, &id, stamp);
                    world.note(format!("{name}: deleted {table}/{id} at {}", w.hlc));
                    world.head_moved(office);
                }
            }
            Err(StoreError::NoSuchRow { .. }) => {}
            Err(e) => refused(world, office, e),
        }
        return;
    }
    let columns: Vec<(String, bool)> = world.schema.tables[t]
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.is_sealed()))
        .collect();
    let mut cells = Vec::new();
    let mut expect = Vec::new();
    for (column, sealed) in columns {
        if !world.rng.random_bool(0.6) {
            continue;
        }
        let word = WORDS[world.rng.random_range(0..WORDS.len())];
        let n: i64 = world.rng.random_range(0..1000);
        if sealed {
            let text = format!("{word} {n}");
            cells.push((column.clone(), Plaintext::text(text.clone())));
            expect.push((column, Expect::Sealed(text)));
        } else if world.rng.random_bool(0.5) {
            cells.push((column.clone(), Plaintext::new(Value::Integer(n))));
            expect.push((column, Expect::Shared(Value::Integer(n))));
        } else {
            cells.push((column.clone(), Plaintext::text(word)));
            expect.push((column, Expect::Shared(Value::Text(word.into()))));
        }
    }
    if cells.is_empty() {
        return;
    }
    match world.offices[office].store_mut().put(&table, &id, cells) {
        Ok(w) => {
            world.check_stamped_above(office, &format!("put {table}/{id}"), newest, w.hlc);
            let stamp = Stamp { hlc: w.hlc, site };
            world.note(format!("{name}: put {table}/{id} at {}", w.hlc));
            world.model.put(&table, &id, stamp, expect);
            world.head_moved(office);
        }
        Err(StoreError::RowDeleted { .. }) => {}
        Err(e) => refused(world, office, e),
    }
}

/// A write refused for a reason other than the row's state: only a full
/// disk excuses it.
fn refused(world: &mut World, office: usize, e: StoreError) {
    world.refused_write(office, e);
}

fn crash(world: &mut World, office: usize, down_ms: u64) {
    if !world.offices[office].is_up() {
        return;
    }
    world.note(format!("office-{office} crashes for {down_ms} ms"));
    world.stats.crashes += 1;
    stop(world, office, down_ms);
}

/// The office stops at once (a crash, or a stop for a restore) and comes
/// back `down_ms` later.
pub fn stop(world: &mut World, office: usize, down_ms: u64) {
    // Dropping the store is the stop: whatever committed is on disk.
    world.offices[office].store = None;
    world.offices[office].epoch += 1;
    world.offices[office].restart_at = Some(world.now + down_ms);
    world.drop_connections_of(office, down_ms);
    world.after(down_ms, Ev::Restart { office });
}

fn restart(world: &mut World, office: usize) {
    world.sync_clock(office);
    let schema = world.schema_of(office);
    let store = match open_store(&schema, &world.offices[office]) {
        Ok(s) => s,
        Err(e) => {
            world.fail(format!("office-{office} does not reopen: {e}"));
            return;
        }
    };
    world.offices[office].store = Some(store);
    world.offices[office].restart_at = None;
    world.note(format!("office-{office} restarts"));
    if world.offices[office].restoring {
        super::restore::new_history(world, office);
    }
    if let Err(e) = check::bookkeeping_is_exact(world.offices[office].store()) {
        world.fail(format!("office-{office} after a crash: {e}"));
    }
    for peer in world.peers_of(office) {
        world.check_cursor(office, peer);
        world.check_cursor(peer, office);
        // A new process: new diallers, which dial at once.
        world.try_dial(office, peer);
    }
}

/// What keeps the offices from converging, in words: who is down, or
/// where two honest replicas differ.
fn unconverged(world: &World) -> String {
    if let Some(o) = world.offices.iter().find(|o| !o.is_up()) {
        return format!("{} is down", o.name);
    }
    let honest: Vec<usize> = (0..world.offices.len())
        .filter(|i| !world.plan.is_dishonest(*i))
        .collect();
    for pair in honest.windows(2) {
        let [a, b] = [&world.offices[pair[0]], &world.offices[pair[1]]];
        if a.store().digest() != b.store().digest() {
            return check::divergence([&a.name, &b.name], [a.store(), b.store()]);
        }
    }
    "the digests are equal".into()
}

/// Whether every office is up and equal to the model; an error when they
/// agree with each other but not with the model, or a check fails.
fn converged(world: &mut World) -> Result<bool, String> {
    if world.offices.iter().any(|o| !o.is_up()) {
        return Ok(false);
    }
    // The dishonest office keeps what it may not do: only the honest ones
    // must agree (with each other and with the model).
    let honest: Vec<usize> = (0..world.offices.len())
        .filter(|i| !world.plan.is_dishonest(*i))
        .collect();
    let digests: Vec<_> = honest
        .iter()
        .map(|i| world.offices[*i].store().digest())
        .collect();
    if digests.windows(2).any(|w| w[0] != w[1]) {
        return Ok(false);
    }
    for o in honest.iter().map(|i| &world.offices[*i]) {
        let store = o.store();
        check::bookkeeping_is_exact(store).map_err(|e| format!("{}: {e}", o.name))?;
        let snap = store.snapshot().map_err(|e| e.to_string())?;
        world
            .model
            .check(&snap, &world.schema, &world.keyring)
            .map_err(|e| format!("{} (digests all equal): {e}", o.name))?;
    }
    let pairs: Vec<(usize, usize)> = (0..world.offices.len())
        .flat_map(|a| world.peers_of(a).into_iter().map(move |b| (a, b)))
        .collect();
    for (a, b) in pairs {
        world.check_cursor(a, b);
    }
    if world.plan.on {
        (world.stats.held_at_end, world.stats.retired_held_at_end) = world.check_held()?;
    }
    match world.failure.take() {
        Some(f) => Err(f),
        None => Ok(true),
    }
}
