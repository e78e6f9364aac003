//! The seeded simulator: 2–5 offices in one process, each a real replica
//! driven by the real session machine over a simulated network, with
//! crashes, partitions, clock jumps and full disks, checked against a
//! last-writer-wins model of every acknowledged write. Every run is
//! reproducible from its seed.
//!
//! `cargo test --test sim` runs seeds 0..1000 (`PUENTE_SIM_SEEDS` and
//! `PUENTE_SIM_FIRST` change the range; e.g. 100000 overnight).
//! `PUENTE_SIM_SEED=N cargo test --test sim -- --nocapture` replays one
//! seed and prints every event.

mod check;
mod dial;
mod dishonest;
mod exec;
mod forbidden;
mod model;
#[cfg(feature = "mutants")]
mod mutants;
mod restore;
mod run;
mod scenario;
mod stamps;
mod world;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// From this many seeds on, every total the run prints must be above zero.
const MEANINGFUL_TOTALS_FROM: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

fn replay_command(seed: u64) -> String {
    format!("PUENTE_SIM_SEED={seed} cargo test --test sim -- --nocapture")
}

/// Runs one seed, turning a panic into a failure with the seed.
fn run_one(seed: u64, trace: bool) -> Result<run::Summary, run::Failure> {
    match std::panic::catch_unwind(|| run::run(seed, trace)) {
        Ok(result) => result,
        Err(panic) => Err(run::Failure {
            what: format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            ),
            trace: Vec::new(),
        }),
    }
}

#[test]
fn seeds_converge_to_the_model_of_acknowledged_writes() {
    if let Some(seed) = env_u64("PUENTE_SIM_SEED") {
        match run_one(seed, true) {
            Ok(s) => eprintln!("seed {seed} passed: {s:?}"),
            Err(f) => panic!("seed {seed} failed: {}", f.what),
        }
        return;
    }
    let first = env_u64("PUENTE_SIM_FIRST").unwrap_or(0);
    let count = env_u64("PUENTE_SIM_SEEDS").unwrap_or(1_000);
    let failures: Mutex<Vec<(u64, run::Failure)>> = Mutex::new(Vec::new());
    let totals = Mutex::new((0u64, 0usize, 0u64, 0u64, 0u64, 0u64));
    // Runs with rights, with a dishonest office, writes refused, held.
    let rights = Mutex::new((0u64, 0u64, 0u64, 0u64, 0u64));
    // Restores, changes forged with the restored office's retired site
    // id, and those still held at the end.
    let restores = Mutex::new((0u64, 0u64, 0u64, 0u64));
    // Seconds spent on seeds with rights, and on the others.
    let spent = Mutex::new((0f64, 0f64));
    let started = Instant::now();
    on_every_core(
        first..first + count,
        |_| false,
        |seed| {
            let began = Instant::now();
            match run_one(seed, false) {
                Ok(s) => {
                    let secs = began.elapsed().as_secs_f64();
                    let mut sp = spent.lock().unwrap();
                    if s.rights {
                        sp.0 += secs;
                    } else {
                        sp.1 += secs;
                    }
                    drop(sp);
                    let mut t = totals.lock().unwrap();
                    t.0 += s.stats.events;
                    t.1 += s.acknowledged;
                    t.2 += s.stats.crashes;
                    t.3 += s.stats.sessions;
                    t.4 = t.4.max(s.converged_after_ms);
                    t.5 += s.stats.cursor_promises_checked;
                    let mut r = rights.lock().unwrap();
                    r.0 += u64::from(s.rights);
                    r.1 += u64::from(s.dishonest);
                    r.2 += s.stats.refused;
                    r.3 += s.stats.held;
                    r.4 += s.stats.held_at_end;
                    drop(r);
                    let mut x = restores.lock().unwrap();
                    x.0 += s.stats.restores;
                    x.1 += s.stats.retired_forged;
                    x.2 += s.stats.retired_held_at_end;
                    x.3 += s.stats.ahead_sent;
                }
                Err(f) => failures.lock().unwrap().push((seed, f)),
            }
        },
    );
    let (events, acknowledged, crashes, sessions, slowest, cursor_promises) =
        *totals.lock().unwrap();
    eprintln!(
        "simulated seeds {first}..{}: {events} events, {acknowledged} acknowledged writes, {crashes} crashes, {sessions} sessions, {cursor_promises} cursor promises checked; slowest convergence {slowest} ms after the last fault; {:.1} s",
        first + count,
        started.elapsed().as_secs_f64()
    );
    let (with_rights, dishonest, refused, held, held_at_end) = *rights.lock().unwrap();
    let (rights_s, other_s) = *spent.lock().unwrap();
    eprintln!(
        "with rights: {with_rights} seeds ({rights_s:.1} s; the others {other_s:.1} s), {dishonest} with a dishonest office; {refused} honest writes refused locally, {held} changes held on apply, {held_at_end} forbidden cells and deletes still held at the end"
    );
    let (restored, retired_forged, retired_held, ahead_sent) = *restores.lock().unwrap();
    eprintln!(
        "restores: {restored}; {retired_forged} changes sent stamped with the receiver's own retired site id, {retired_held} of them still held at the end; {ahead_sent} event edits sent stamped far ahead"
    );
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(seed, _)| *seed);
    if let Some((seed, f)) = failures.first() {
        eprintln!("the last events of seed {seed}:");
        for line in &f.trace {
            eprintln!("  {line}");
        }
        let some: Vec<String> = failures
            .iter()
            .take(20)
            .map(|(s, _)| s.to_string())
            .collect();
        panic!(
            "{} of {count} seeds failed (among them {}); the first, seed {seed}: {}\nreplay it with: {}",
            failures.len(),
            some.join(", "),
            f.what,
            replay_command(*seed)
        );
    }
    // Over a run of this size every kind of trouble the simulator draws
    // happens somewhere; a total at zero means a generator or a check
    // stopped working, and the run would pass without testing it.
    if count >= MEANINGFUL_TOTALS_FROM {
        let totals = [
            ("acknowledged writes", acknowledged as u64),
            ("crashes", crashes),
            ("sessions", sessions),
            ("cursor promises checked", cursor_promises),
            ("seeds with rights", with_rights),
            ("seeds with a dishonest office", dishonest),
            ("honest writes refused locally", refused),
            ("changes held on apply", held),
            ("restores", restored),
            ("changes forged with a retired site id", retired_forged),
            ("of them held at the end", retired_held),
            ("event edits stamped far ahead", ahead_sent),
        ];
        let zero: Vec<&str> = totals
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(what, _)| *what)
            .collect();
        assert!(
            zero.is_empty(),
            "{count} seeds drew none of: {} (a generator or a check no longer works)",
            zero.join(", ")
        );
    }
}

/// Runs `run` for every seed of `seeds`, in order of start, on every core;
/// a thread stops at the first seed for which `stop` says so.
fn on_every_core(
    seeds: std::ops::Range<u64>,
    stop: impl Fn(u64) -> bool + Sync,
    run: impl Fn(u64) + Sync,
) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(seeds.start);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end || stop(seed) {
                        return;
                    }
                    run(seed);
                }
            });
        }
    });
}
