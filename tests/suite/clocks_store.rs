//! Clocks from peers, on replicas without daemons: a stamp further ahead
//! than the drift bound is held (never applied, never adopted by this
//! office's clock) and applied once the clock catches up, at every office
//! alike; the clock's arithmetic is checked (a write that cannot be
//! stamped is refused, never reported done); the clock moves only with
//! what is applied; an honest office back from days offline syncs as
//! before; and after a restore, a change carrying a retired site id keeps
//! no office's rights.

use crate::support;

use std::sync::Arc;

use puente::clock::{DEFAULT_MAX_DRIFT_MS, Hlc, MAX_MILLIS};
use puente::store::{Batch, CellChange, Change, Cursor, Reveal, StoreError};
use puente::value::Value;
use support::*;

/// 2027-01-15T08:00:00Z: Tijuana's honest clock.
const NOW: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;
const DAY: u64 = 24 * 60 * MINUTE;
const TEN_YEARS: u64 = 3_652 * DAY;

/// Tijuana (honest, holds the identity) and a San Diego whose clock reads
/// `sd_now`.
fn offices(sd_now: u64) -> (Replica, Replica) {
    let s = schema(&[TEST_RECIPIENT]);
    let tj = replica("tijuana", s.clone(), Some(TEST_IDENTITY), NOW);
    let sd = replica("san-diego", s, None, sd_now);
    (tj, sd)
}

fn event(title: &str) -> Vec<(String, puente::value::Plaintext)> {
    cells(&[("title", title)])
}

/// A batch of one event title, stamped `hlc` by `site`.
fn stamped_event(tj: &Replica, id: &str, hlc: Hlc, site: puente::stamp::SiteId) -> Batch {
    let s = tj.store.schema();
    let t = s.table_index("outreach_events").unwrap();
    let column = s.tables[t].column_index("title").unwrap();
    Batch {
        sites: vec![site],
        changes: vec![Change::Row {
            table: t as u16,
            id: id.into(),
            cells: vec![CellChange {
                column: column as u16,
                hlc,
                site: 0,
                value: Value::Text("Desde el futuro".into()),
            }],
        }],
    }
}

/// The reproduction: a San Diego at the clock's maximum, and one
/// ten years ahead, sync to Tijuana; Tijuana's next write must be stamped
/// now, be readable, and its clock must not move to either stamp.
#[test]
fn a_peer_at_the_clock_maximum_or_years_ahead_does_not_make_later_writes_vanish() {
    let (mut tj, mut sd) = offices(NOW + TEN_YEARS);
    sd.store
        .put("outreach_events", "ev-2036", event("Feria de 2036"))
        .unwrap();
    sync(&sd, &mut tj, 100);
    // At the maximum: a stamp no clock reaches (a tampered office).
    let peer = sd.peer_ref();
    let at_max = stamped_event(&tj, "ev-max", Hlc::MAX, sd.store.site_id());
    let applied = tj
        .store
        .apply(&peer, at_max, Cursor::at(sd.store.head()))
        .unwrap();
    assert_eq!((applied.ahead, applied.held), (1, 1), "{applied:?}");
    assert_eq!(applied.ahead_office.as_deref(), Some("san-diego"));
    assert!(applied.ahead_ms > TEN_YEARS, "{applied:?}");

    // Tijuana's clock is where its wall clock is.
    assert!(
        tj.store.last_hlc().millis() <= NOW,
        "{}",
        tj.store.last_hlc()
    );
    let w = tj
        .store
        .put("outreach_events", "ev-after", event("Clase de ingles"))
        .unwrap();
    assert_eq!(w.hlc.millis(), NOW, "stamped now, not after a forged stamp");
    let row = tj.store.get("outreach_events", "ev-after", Reveal::No);
    assert!(row.unwrap().is_some(), "the acknowledged write is readable");
    // Neither far-future change applied; both held, with their reason.
    for id in ["ev-2036", "ev-max"] {
        assert!(
            tj.store
                .get("outreach_events", id, Reveal::No)
                .unwrap()
                .is_none()
        );
    }
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 2, "{held:#?}");
    assert_eq!(tj.store.held_ahead_count(), 2);
    let years = held.iter().find(|h| h.row == "ev-2036").unwrap();
    assert_eq!(years.origin, "san-diego");
    assert!(
        years
            .why
            .starts_with("it is stamped 10 years 2 days ahead of this office's clock, more than the 5 min 0 s the node config allows"),
        "{}",
        years.why
    );
    let max = held.iter().find(|h| h.row == "ev-max").unwrap();
    assert!(
        max.why.contains("largest timestamp there is")
            && max.why.contains("never applied by itself"),
        "{}",
        max.why
    );
    // Accepting one before its time would move the clock: refused.
    let e = tj.store.held_accept(years.id, None).unwrap_err();
    assert!(matches!(e, StoreError::HeldNotDue { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("discard it with `puente held discard"),
        "{e}"
    );
    // The cursor moved on: sync does not stall on them.
    assert_eq!(
        tj.store.cursor_for(&sd.store.site_id()).unwrap(),
        Cursor::at(sd.store.head())
    );
    // Discarding one keeps this office's clock and says the peer keeps it.
    let d = tj.store.held_discard(max.id, Some(0)).unwrap();
    assert!(d.change.diverges, "{:?}", d.change);
    assert!(tj.store.last_hlc().millis() <= NOW);
    assert_eq!(tj.store.held_ahead_count(), 1);
}

#[test]
fn a_write_that_cannot_be_stamped_is_refused_and_nothing_is_written() {
    let s = schema(&[TEST_RECIPIENT]);
    // A wall clock beyond what a timestamp holds.
    let mut odd = replica("tijuana", s.clone(), None, MAX_MILLIS + 1);
    let head = odd.store.head();
    let e = odd
        .store
        .put("outreach_events", "ev-1", event("x"))
        .unwrap_err();
    assert!(matches!(e, StoreError::Clock(_)), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(odd.store.head(), head);
    assert!(
        odd.store
            .get("outreach_events", "ev-1", Reveal::No)
            .unwrap()
            .is_none()
    );
    // A replica whose clock an earlier version moved to the maximum (the
    // check switched off here, as it was then): every write is refused
    // with the sentence, a delete too, and nothing changes.
    let (mut tj, sd) = offices(NOW);
    tj.store.set_max_clock_drift(None);
    tj.store
        .put("outreach_events", "ev-1", event("antes"))
        .unwrap();
    let at_max = stamped_event(&tj, "ev-max", Hlc::MAX, sd.store.site_id());
    tj.store
        .apply(&sd.peer_ref(), at_max, Cursor::at(1))
        .unwrap();
    assert_eq!(tj.store.last_hlc(), Hlc::MAX);
    let (head, digest) = (tj.store.head(), tj.store.digest());
    let e = tj
        .store
        .put("outreach_events", "ev-after", event("x"))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("this office's clock cannot stamp a new write"),
        "{e}"
    );
    assert!(matches!(
        tj.store.delete("outreach_events", "ev-1").unwrap_err(),
        StoreError::Clock(_)
    ));
    assert_eq!((tj.store.head(), tj.store.digest()), (head, digest));
    assert!(
        tj.store
            .get("outreach_events", "ev-after", Reveal::No)
            .unwrap()
            .is_none()
    );
}

/// San Diego's clock is ten minutes ahead (twice the bound): its write is
/// held at Tijuana and at Ensenada, applied at each when its own clock
/// catches up, relayed without being held twice, and all three converge.
#[test]
fn a_held_change_is_applied_when_the_clock_catches_up_and_every_office_converges() {
    let (mut tj, mut sd) = offices(NOW + 10 * MINUTE);
    let s = tj.store.schema().clone();
    let mut en = replica("ensenada", s, None, NOW + 2 * MINUTE);
    sd.store
        .put("outreach_events", "ev-1", event("Feria adelantada"))
        .unwrap();
    let stamp = sd.store.last_hlc();
    sync(&sd, &mut tj, 100);
    sync(&sd, &mut en, 100);
    for office in [&tj, &en] {
        assert_eq!(office.store.held_ahead_count(), 1, "{}", office.name);
        assert!(office.store.last_hlc() < stamp);
    }
    // Ensenada's clock catches up first (NOW + 5 min + 1 ms: within the
    // bound): the next apply releases it.
    en.clock.set(NOW + 5 * MINUTE + 1);
    assert_eq!(en.store.release_due().unwrap(), 1);
    assert_eq!(en.store.held_ahead_count(), 0);
    assert!(en.store.held_list(false).unwrap().is_empty());
    assert_eq!(
        en.store.last_hlc(),
        stamp,
        "the clock moves with what is applied"
    );
    assert_eq!(en.store.digest(), sd.store.digest());
    // Ensenada relays it; Tijuana is still behind: held once, not twice.
    sync(&en, &mut tj, 100);
    assert_eq!(tj.store.held_list(false).unwrap().len(), 1);
    // A minute short of the bound: nothing is due yet.
    tj.clock.set(NOW + 4 * MINUTE);
    assert_eq!(tj.store.release_due().unwrap(), 0);
    assert!(tj.store.last_hlc() < stamp);
    // Its clock catches up; the next apply from anyone releases it first.
    tj.clock.set(NOW + 5 * MINUTE);
    tj.store
        .put("outreach_events", "ev-local", event("Local"))
        .unwrap();
    sync(&sd, &mut tj, 100);
    assert_eq!(tj.store.held_ahead_count(), 0);
    let row = tj.store.get("outreach_events", "ev-1", Reveal::No).unwrap();
    assert!(row.is_some());
    // Everyone converges once the local write has gone round.
    sync(&tj, &mut sd, 100);
    sync(&tj, &mut en, 100);
    assert_eq!(tj.store.digest(), sd.store.digest());
    assert_eq!(tj.store.digest(), en.store.digest());
    // Without the check (the bench's switch), the same change applies at
    // once: the check is what held it.
    let (mut tj2, sd2) = offices(NOW + 10 * MINUTE);
    let mut sd2 = sd2;
    tj2.store.set_max_clock_drift(None);
    sd2.store
        .put("outreach_events", "ev-1", event("Feria adelantada"))
        .unwrap();
    sync(&sd2, &mut tj2, 100);
    assert_eq!(tj2.store.held_ahead_count(), 0);
    assert_eq!(tj2.store.last_hlc(), sd2.store.last_hlc());
}

#[test]
fn the_clock_moves_only_with_changes_applied_not_with_changes_held_for_rights() {
    // San Diego is two minutes ahead (within the bound) and tampered: it
    // deletes a resident it may not. The delete is held; Tijuana's clock
    // stays where its own writes put it.
    let s = schema(&[TEST_RECIPIENT]);
    let mut tj = replica("tijuana", s.clone(), Some(TEST_IDENTITY), NOW);
    let mut sd = replica(
        "san-diego",
        Arc::new(s.without_rights()),
        None,
        NOW + 2 * MINUTE,
    );
    tj.store
        .put("residents", "r1", cells(&[("full_name", "Ana")]))
        .unwrap();
    sync(&tj, &mut sd, 100);
    sd.store.delete("residents", "r1").unwrap();
    let before = tj.store.last_hlc();
    sync(&sd, &mut tj, 100);
    assert_eq!(tj.store.held_list(false).unwrap().len(), 1);
    assert_eq!(tj.store.last_hlc(), before, "a held change moves no clock");
    // An allowed change two minutes ahead does move it (HLC as before).
    sd.store
        .put("outreach_events", "ev-1", event("Feria"))
        .unwrap();
    sync(&sd, &mut tj, 100);
    assert_eq!(tj.store.last_hlc(), sd.store.last_hlc());
    assert!(tj.store.last_hlc().millis() > NOW);
}

#[test]
fn an_office_back_from_days_offline_with_an_honest_clock_syncs_as_before() {
    let (mut tj, mut sd) = offices(NOW);
    tj.store
        .put("outreach_events", "ev-0", event("Antes"))
        .unwrap();
    sync(&tj, &mut sd, 100);
    // Tijuana is offline for four days; both clocks run on; both write.
    for (i, day) in (1..=4).enumerate() {
        tj.clock.set(NOW + day * DAY);
        sd.clock.set(NOW + day * DAY + 30_000);
        tj.store
            .put("outreach_events", &format!("tj-{i}"), event("Tijuana"))
            .unwrap();
        sd.store
            .put("outreach_events", &format!("sd-{i}"), event("San Diego"))
            .unwrap();
        sd.store
            .put("outreach_events", "ev-0", event(&format!("San Diego {i}")))
            .unwrap();
    }
    sync(&sd, &mut tj, 3);
    sync(&tj, &mut sd, 3);
    for office in [&tj, &sd] {
        assert!(office.store.held_list(true).unwrap().is_empty());
        assert_eq!(office.store.held_ahead_count(), 0);
    }
    assert_eq!(tj.store.digest(), sd.store.digest());
    // The default bound is the documented one.
    assert_eq!(tj.store.max_clock_drift(), Some(DEFAULT_MAX_DRIFT_MS));
}

#[test]
fn a_far_future_delete_is_held_too_and_the_row_lives() {
    let (mut tj, mut sd) = offices(NOW + TEN_YEARS);
    tj.store
        .put("outreach_events", "ev-1", event("Feria"))
        .unwrap();
    sync(&tj, &mut sd, 100);
    sd.store.delete("outreach_events", "ev-1").unwrap();
    sync(&sd, &mut tj, 100);
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].kind, "delete");
    assert!(
        tj.store
            .get("outreach_events", "ev-1", Reveal::No)
            .unwrap()
            .is_some()
    );
    assert!(tj.store.last_hlc().millis() <= NOW);
}

/// After a restore (`begin_new_history`, what `puente restore` runs), a
/// change stamped with the retired site id keeps no office's rights: a
/// delete of a resident is held; before, it applied with Tijuana's rights
/// (a resident deleted by San Diego). What every office may do (a new
/// event) applies.
#[test]
fn after_a_restore_a_change_carrying_the_retired_site_id_keeps_no_office_s_rights() {
    let (mut tj, mut sd) = offices(NOW);
    tj.store
        .put("residents", "r1", cells(&[("full_name", "Ana")]))
        .unwrap();
    sync(&tj, &mut sd, 100);
    let old = tj.store.site_id();
    let retired = tj
        .store
        .begin_new_history(puente::stamp::SiteId([0x5a; 16]))
        .unwrap();
    assert_eq!(retired, old);
    // San Diego forges a delete with Tijuana's retired site id.
    let s = tj.store.schema().clone();
    let t = s.table_index("residents").unwrap();
    let forged = Batch {
        sites: vec![old],
        changes: vec![Change::Tombstone {
            table: t as u16,
            id: "r1".into(),
            hlc: Hlc::from_parts(NOW + 1_000, 0),
            site: 0,
        }],
    };
    tj.store
        .apply(&sd.peer_ref(), forged, Cursor::at(sd.store.head()))
        .unwrap();
    assert!(
        tj.store
            .get("residents", "r1", Reveal::No)
            .unwrap()
            .is_some(),
        "the forged delete did not apply"
    );
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].origin, "a site id this office retired");
    assert!(held[0].why.contains("retired"), "{}", held[0].why);
    // The same holds after the replica is opened again (read from disk).
    let path = tj.store.path().to_path_buf();
    let schema = tj.store.schema().clone();
    let keyring = tj.store.keyring().clone();
    drop(tj.store);
    let mut again = puente::store::Store::open(
        &path,
        puente::store::StoreOptions::new(
            schema,
            keyring,
            tj.clock.clone() as Arc<dyn puente::clock::WallClock>,
        ),
    )
    .unwrap();
    again.set_office("tijuana").unwrap();
    let t = again.schema().table_index("outreach_events").unwrap();
    let column = again.schema().tables[t].column_index("title").unwrap();
    let update = Batch {
        sites: vec![old],
        changes: vec![Change::Row {
            table: t as u16,
            id: "ev-forged".into(),
            cells: vec![CellChange {
                column: column as u16,
                hlc: Hlc::from_parts(NOW + 2_000, 0),
                site: 0,
                value: Value::Text("falso".into()),
            }],
        }],
    };
    again
        .apply(&sd.peer_ref(), update, Cursor::at(sd.store.head()))
        .unwrap();
    assert!(
        again
            .get("outreach_events", "ev-forged", Reveal::No)
            .unwrap()
            .is_some(),
        "a new event, which every office may add, applies under the retired id"
    );
    // The delete again, after the reopen (where the old code judged the
    // retired id by its binding to tijuana, and applied it).
    let residents = again.schema().table_index("residents").unwrap();
    let delete = Batch {
        sites: vec![old],
        changes: vec![Change::Tombstone {
            table: residents as u16,
            id: "r1".into(),
            hlc: Hlc::from_parts(NOW + 3_000, 0),
            site: 0,
        }],
    };
    again
        .apply(&sd.peer_ref(), delete, Cursor::at(sd.store.head()))
        .unwrap();
    assert!(again.get("residents", "r1", Reveal::No).unwrap().is_some());
    let held = again.held_list(false).unwrap();
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(
        held.iter()
            .all(|h| h.origin == "a site id this office retired"),
        "{held:#?}"
    );
}

/// A figure for the note, run once (not in CI): the held list after a
/// peer sends 1,000,000 changes stamped ten years ahead, in 1,000 batches.
/// `cargo test --test suite clocks_store::held_list_after_a_million_far_future_changes -- --ignored --nocapture`
#[test]
#[ignore]
fn held_list_after_a_million_far_future_changes() {
    let (mut tj, sd) = offices(NOW);
    let peer = sd.peer_ref();
    let s = tj.store.schema().clone();
    let t = s.table_index("outreach_events").unwrap();
    let column = s.tables[t].column_index("title").unwrap() as u16;
    let started = std::time::Instant::now();
    let (mut held, mut dropped) = (0, 0);
    for b in 0..1_000u64 {
        let changes = (0..1_000)
            .map(|i| Change::Row {
                table: t as u16,
                id: format!("future-{b}-{i}"),
                cells: vec![CellChange {
                    column,
                    hlc: Hlc::from_parts(NOW + TEN_YEARS, 0),
                    site: 0,
                    value: Value::Text("Feria del futuro lejano".into()),
                }],
            })
            .collect();
        let batch = Batch {
            sites: vec![sd.store.site_id()],
            changes,
        };
        let applied = tj.store.apply(&peer, batch, Cursor::at(b + 1)).unwrap();
        held += applied.held;
        dropped += applied.held_dropped;
    }
    let elapsed = started.elapsed();
    tj.store.checkpoint().unwrap();
    let listed = tj.store.held_list(false).unwrap().len();
    let bytes: u64 = files_under(&tj.data_dir())
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!(
        "1,000,000 changes ten years ahead: {held} held ({listed} listed, {} waiting for the clock), {dropped} dropped; data dir {bytes} bytes ({:.1} MiB); {:.1} s",
        tj.store.held_ahead_count(),
        bytes as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64()
    );
    assert_eq!(listed as u64, puente::store::MAX_HELD_ENTRIES);
    assert_eq!(held + dropped, 1_000_000);
    assert!(tj.store.last_hlc().millis() <= NOW);
}
