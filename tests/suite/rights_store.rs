//! Rights on replicas, without daemons: local writes refused with the
//! missing right, a peer's forbidden changes held (not applied, never
//! lost) while the rest applies, relays and forged sites judged, the held
//! list bounded, accept and discard.

use crate::support;

use std::sync::Arc;

use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor, PeerRef, Reveal, StoreError};
use puente::value::Value;
use support::*;

/// Tijuana (holds the identity) and a San Diego whose store knows no
/// rights (a tampered office: it writes what the shipped schema forbids).
fn offices() -> (Replica, Replica) {
    let s = schema(&[TEST_RECIPIENT]);
    let tj = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let tampered = replica("san-diego", Arc::new(s.without_rights()), None, 2_000);
    (tj, tampered)
}

fn forbidden(e: StoreError) -> String {
    match e {
        StoreError::Forbidden { message, .. } => message,
        other => panic!("not a refusal for rights: {other}"),
    }
}

#[test]
fn an_honest_san_diego_is_refused_locally_with_the_missing_right() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut tj = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let mut sd = replica("san-diego", s.clone(), None, 2_000);
    tj.store
        .put(
            "residents",
            "r1",
            cells(&[("full_name", "Ana"), ("status", "active")]),
        )
        .unwrap();
    sync(&tj, &mut sd, 100);
    let e = forbidden(sd.store.delete("residents", "r1").unwrap_err());
    assert_eq!(
        e,
        "san-diego may not delete rows of residents (rights: delete = tijuana); ask tijuana to make this change"
    );
    let e = forbidden(
        sd.store
            .put("residents", "r1", cells(&[("case_notes", "x")]))
            .unwrap_err(),
    );
    assert!(
        e.starts_with(
            "san-diego may not update case_notes of residents (rights: update = tijuana)"
        ),
        "{e}"
    );
    // Refused before anything: even a row San Diego does not have.
    forbidden(sd.store.delete("residents", "never-seen").unwrap_err());
    // What it may do: record a new resident's intake, edit events.
    sd.store
        .put(
            "residents",
            "r2",
            cells(&[("full_name", "Beto"), ("status", "intake")]),
        )
        .unwrap();
    sd.store
        .put("outreach_events", "e1", cells(&[("title", "Feria")]))
        .unwrap();
    sd.store.delete("outreach_events", "e1").unwrap();
    // A bulk put with one forbidden row writes nothing.
    let head = sd.store.head();
    let bulk = vec![
        ("r3".to_string(), cells(&[("status", "intake")])),
        ("r1".to_string(), cells(&[("status", "moved_on")])),
    ];
    forbidden(sd.store.put_many("residents", bulk).unwrap_err());
    assert_eq!(sd.store.head(), head);
    // Tijuana takes everything San Diego sent; nothing is held.
    sync(&sd, &mut tj, 100);
    assert!(tj.store.held_list(true).unwrap().is_empty());
    assert!(
        tj.store
            .get("residents", "r2", Reveal::No)
            .unwrap()
            .is_some()
    );
    // A replica without an office name gets what every office may.
    let mut nameless = replica("nameless", s.clone(), None, 3_000);
    nameless
        .store
        .put("residents", "r9", cells(&[("status", "intake")]))
        .unwrap();
    let e = forbidden(nameless.store.delete("residents", "r9").unwrap_err());
    assert!(e.starts_with("nameless may not delete"), "{e}");
}

#[test]
fn a_tampered_san_diego_s_delete_and_case_notes_are_held_and_the_rest_applies() {
    let (mut tj, mut sd) = offices();
    tj.store
        .put(
            "residents",
            "r1",
            cells(&[
                ("full_name", "Ana"),
                ("case_notes", "Nota original"),
                ("status", "active"),
            ]),
        )
        .unwrap();
    tj.store
        .put("residents", "r2", cells(&[("full_name", "Beto")]))
        .unwrap();
    sync(&tj, &mut sd, 100);
    // What the tampered office does, unchecked by its own store.
    sd.store
        .put(
            "residents",
            "r1",
            cells(&[("case_notes", "Nota secreta falsa")]),
        )
        .unwrap();
    sd.store.delete("residents", "r2").unwrap();
    sd.store
        .put("residents", "r3", cells(&[("full_name", "Nueva")]))
        .unwrap();
    sd.store
        .put(
            "outreach_events",
            "e1",
            cells(&[("title", "Shared-Visible-Marker")]),
        )
        .unwrap();
    let (digest, head) = (tj.store.digest(), tj.store.head());
    sync(&sd, &mut tj, 100);
    // The allowed changes applied; the cursor moved past everything.
    assert!(
        tj.store
            .get("residents", "r3", Reveal::No)
            .unwrap()
            .is_some()
    );
    assert!(
        tj.store
            .get("outreach_events", "e1", Reveal::No)
            .unwrap()
            .is_some()
    );
    assert!(tj.store.head() > head && tj.store.digest() != digest);
    assert_eq!(
        tj.store.cursor_for(&sd.store.site_id()).unwrap(),
        Cursor::at(sd.store.head())
    );
    // Nothing of the forbidden ones: r2 lives, r1's notes are Tijuana's.
    let r1 = tj
        .store
        .get("residents", "r1", Reveal::Yes)
        .unwrap()
        .unwrap();
    assert_eq!(
        r1.cell("case_notes"),
        Some(&puente::store::CellView::Revealed(text("Nota original")))
    );
    assert!(
        tj.store
            .get("residents", "r2", Reveal::No)
            .unwrap()
            .is_some()
    );
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 2, "{held:#?}");
    let update = held.iter().find(|h| h.kind == "update").unwrap();
    let delete = held.iter().find(|h| h.kind == "delete").unwrap();
    assert_eq!(
        (update.peer.as_str(), update.origin.as_str()),
        ("san-diego", "san-diego")
    );
    assert_eq!(
        (update.table.as_str(), update.row.as_str()),
        ("residents", "r1")
    );
    assert_eq!(update.columns.len(), 1);
    assert_eq!(update.columns[0].0, "case_notes");
    assert_eq!(
        update.why,
        "san-diego may not update case_notes of residents (rights: update = tijuana)"
    );
    assert_eq!(
        delete.why,
        "san-diego may not delete rows of residents (rights: delete = tijuana)"
    );
    assert_eq!(delete.row, "r2");
    // The same changes again (a session starting over) are not held twice.
    tj.store
        .apply(
            &sd.peer_ref(),
            sd.store
                .changes_since(Cursor::ZERO, 100, 1 << 20, None)
                .unwrap()
                .batch,
            Cursor::at(sd.store.head()),
        )
        .unwrap();
    assert_eq!(tj.store.held_list(false).unwrap().len(), 2);
    assert_eq!(tj.store.held_count(), 2);
    // A held sealed cell is its age file: the plaintext is nowhere in
    // Tijuana's files (a shared value from the same sync is: the control).
    tj.store.checkpoint().unwrap();
    Scan::forbidding(&["Nota secreta falsa"])
        .control(Control::anywhere("Shared-Visible-Marker"))
        .check(&tj.data_dir())
        .map_err(|e| e.problems)
        .unwrap();

    // Accept the update: applied with its original stamp.
    let accepted = tj.store.held_accept(update.id, Some(1000)).unwrap();
    assert_eq!(accepted.written, 1);
    assert_eq!(accepted.change.state, "accepted");
    assert_eq!(accepted.change.decided_by, Some(1000));
    let r1 = tj
        .store
        .get("residents", "r1", Reveal::Yes)
        .unwrap()
        .unwrap();
    assert_eq!(
        r1.cell("case_notes"),
        Some(&puente::store::CellView::Revealed(text(
            "Nota secreta falsa"
        )))
    );
    assert!(matches!(
        tj.store.held_accept(update.id, None),
        Err(StoreError::HeldDecided { .. })
    ));
    // Discard the delete: it cannot be undone at San Diego; said so.
    let discarded = tj.store.held_discard(delete.id, Some(1000)).unwrap();
    assert!(discarded.change.diverges);
    assert!(
        discarded
            .change
            .note
            .unwrap()
            .contains("a delete cannot be undone")
    );
    assert!(
        tj.store
            .get("residents", "r2", Reveal::No)
            .unwrap()
            .is_some()
    );
    assert_eq!(tj.store.held_count(), 0);
    let summary = tj.store.held_summary().unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].held, summary[0].diverged), (0, 1));
    assert_eq!(tj.store.held_list(true).unwrap().len(), 2);
    assert!(matches!(
        tj.store.held_discard(999, None),
        Err(StoreError::NoSuchHeld { id: 999 })
    ));
}

#[test]
fn discarding_an_update_writes_this_office_s_version_again_and_the_peer_converges() {
    let (mut tj, mut sd) = offices();
    tj.store
        .put(
            "residents",
            "r1",
            cells(&[("status", "active"), ("case_notes", "Nota")]),
        )
        .unwrap();
    sync(&tj, &mut sd, 100);
    sd.store
        .put(
            "residents",
            "r1",
            cells(&[("status", "closed"), ("case_notes", "Otra")]),
        )
        .unwrap();
    sync(&sd, &mut tj, 100);
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].columns.len(), 2);
    let discarded = tj.store.held_discard(held[0].id, None).unwrap();
    assert!(!discarded.change.diverges, "{:?}", discarded.change.note);
    assert_eq!(discarded.written, 2);
    sync(&tj, &mut sd, 100);
    sync(&sd, &mut tj, 100);
    assert_eq!(tj.store.digest(), sd.store.digest());
    let row = sd
        .store
        .get("residents", "r1", Reveal::No)
        .unwrap()
        .unwrap();
    assert_eq!(
        row.cell("status"),
        Some(&puente::store::CellView::Value(Value::Text(
            "active".into()
        )))
    );
    assert!(tj.store.held_list(false).unwrap().is_empty());
}

#[test]
fn a_held_change_that_a_newer_allowed_write_makes_moot_leaves_the_list() {
    let (mut tj, mut sd) = offices();
    tj.store
        .put("residents", "r1", cells(&[("status", "active")]))
        .unwrap();
    sync(&tj, &mut sd, 100);
    sd.clock.advance(10);
    sd.store
        .put("residents", "r1", cells(&[("status", "closed")]))
        .unwrap();
    sync(&sd, &mut tj, 100);
    assert_eq!(tj.store.held_count(), 1);
    // Tijuana writes the column again, later: the held version would lose.
    tj.clock.advance(60_000);
    tj.store
        .put("residents", "r1", cells(&[("status", "arrived")]))
        .unwrap();
    assert_eq!(tj.store.held_count(), 0);
    assert!(tj.store.held_list(true).unwrap().is_empty());
}

/// A batch `from` sends, stamped as `site` (whoever that is).
/// When the forged changes are stamped.
const FORGED_MS: u64 = 1_900_000_000_000;

fn forged(id: &str, site: SiteId, tombstone: bool) -> Batch {
    let hlc = Hlc::from_parts(FORGED_MS, 0);
    let change = if tombstone {
        Change::Tombstone {
            table: 1,
            id: id.into(),
            hlc,
            site: 0,
        }
    } else {
        Change::Row {
            table: 1,
            id: id.into(),
            cells: vec![CellChange {
                column: 7, // status (canonical order)
                hlc,
                site: 0,
                value: Value::Text("closed".into()),
            }],
        }
    };
    Batch {
        sites: vec![site],
        changes: vec![change],
    }
}

#[test]
fn relayed_forged_and_unknown_sites_are_judged_as_the_rules_say() {
    let (mut tj, sd) = offices();
    // A minute before the forged stamps (within the drift bound: they are
    // judged by the rights, and win over what Tijuana writes now).
    tj.clock.set(FORGED_MS - 60_000);
    let s = tj.store.schema().clone();
    let status = s
        .table("residents")
        .unwrap()
        .column_index("status")
        .unwrap();
    assert_eq!(
        status, 7,
        "the forged batches name the status column by number"
    );
    tj.store
        .put("residents", "r1", cells(&[("status", "active")]))
        .unwrap();
    let peer = sd.peer_ref();
    let apply = |tj: &mut Replica, batch: Batch, n: u64| {
        tj.store.apply(&peer, batch, Cursor::at(n)).unwrap()
    };
    // This office's own site: forged, held even though Tijuana may.
    let own = tj.store.site_id();
    let applied = apply(&mut tj, forged("r1", own, true), 1);
    assert_eq!((applied.held, applied.tombstones_written), (1, 0));
    // A site no pinned peer vouched for (relayed, or made up): only what
    // every office may. Deleting is not; inserting a new resident is.
    let unknown = SiteId([9; 16]);
    assert_eq!(apply(&mut tj, forged("r1", unknown, true), 2).held, 1);
    assert_eq!(apply(&mut tj, forged("r1", unknown, false), 3).held, 1);
    let insert = apply(&mut tj, forged("brand-new", unknown, false), 4);
    assert_eq!((insert.held, insert.rows_written), (0, 1));
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 3);
    assert!(
        held[0].why.contains("this office's own site id"),
        "{}",
        held[0].why
    );
    assert!(
        held[1].why.contains("whose office this node cannot tell"),
        "{}",
        held[1].why
    );
    assert!(held[1].why.ends_with("may only do what every office may"));
    assert!(
        tj.store
            .get("residents", "r1", Reveal::No)
            .unwrap()
            .is_some()
    );
    // Once a pinned peer's Hello binds that site to Tijuana (a restored
    // Tijuana replica, say), its changes carry Tijuana's rights.
    let mut relay = replica("relay", s.clone(), None, FORGED_MS);
    relay.store.bind_site(unknown, "tijuana").unwrap();
    let applied = relay
        .store
        .apply(
            &PeerRef {
                site: SiteId([8; 16]),
                name: "ensenada".into(),
            },
            forged("x", unknown, true),
            Cursor::at(1),
        )
        .unwrap();
    assert_eq!((applied.held, applied.tombstones_written), (0, 1));
    // A site is never bound to a second office.
    let e = relay.store.bind_site(unknown, "san-diego").unwrap_err();
    assert!(matches!(e, StoreError::SiteOfAnotherOffice { .. }), "{e}");
    assert!(e.to_string().contains("belongs to office tijuana"));
    // Nor may a replica change offices.
    let e = relay.store.set_office("tijuana").unwrap_err();
    assert!(
        matches!(e, StoreError::ReplicaOfAnotherOffice { .. }),
        "{e}"
    );
}

#[test]
fn a_flood_of_forbidden_changes_is_held_up_to_the_bound_and_the_excess_counted() {
    let (mut tj, mut sd) = offices();
    for i in 0..8 {
        tj.store
            .put(
                "residents",
                &format!("r{i}"),
                cells(&[("status", "active")]),
            )
            .unwrap();
    }
    sync(&tj, &mut sd, 100);
    for i in 0..8 {
        sd.store.delete("residents", &format!("r{i}")).unwrap();
    }
    sd.store
        .put("outreach_events", "e1", cells(&[("title", "allowed")]))
        .unwrap();
    tj.store.set_held_limits(3, 1 << 20);
    let out = sd
        .store
        .changes_since(Cursor::ZERO, 100, 1 << 20, Some(tj.store.site_id()))
        .unwrap();
    let applied = tj
        .store
        .apply(&sd.peer_ref(), out.batch, out.cursor)
        .unwrap();
    assert_eq!((applied.held, applied.held_dropped), (3, 5));
    assert_eq!(tj.store.held_count(), 3);
    // The allowed change applied, every resident lives, the cursor moved.
    assert!(
        tj.store
            .get("outreach_events", "e1", Reveal::No)
            .unwrap()
            .is_some()
    );
    assert_eq!(tj.store.stats().unwrap().rows[1].1, 8);
    assert_eq!(
        tj.store.cursor_for(&sd.store.site_id()).unwrap(),
        out.cursor
    );
    // The held list survives a restart, with its count.
    let path = tj.data_dir().join("puente.db");
    let schema = tj.store.schema().clone();
    drop(std::mem::replace(
        &mut tj.store,
        puente::store::Store::open(
            &path,
            puente::store::StoreOptions::new(
                schema,
                Arc::new(puente::seal::Keyring::empty()),
                tj.clock.clone() as Arc<dyn puente::clock::WallClock>,
            ),
        )
        .unwrap(),
    ));
    assert_eq!(tj.store.held_count(), 3);
    assert_eq!(
        tj.store.office_of_site(&sd.store.site_id()),
        Some("san-diego")
    );
}

#[test]
fn a_held_change_the_schema_no_longer_fits_is_not_accepted() {
    let (mut tj, mut sd) = offices();
    tj.store
        .put("residents", "r1", cells(&[("status", "active")]))
        .unwrap();
    sync(&tj, &mut sd, 100);
    // San Diego sets a household size it may not set: held at Tijuana,
    // which has none for that row (nothing of Tijuana's makes it moot).
    sd.store
        .put("residents", "r1", cells(&[("household_size", "4")]))
        .unwrap();
    sync(&sd, &mut tj, 100);
    let held = tj.store.held_list(false).unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    // Then the shelter seals household sizes.
    let text = schema_text(&[TEST_RECIPIENT]).replace(
        "household_size = { type = \"integer\" }",
        "household_size = { sealed = \"mx\", type = \"integer\" }",
    );
    let sealed = puente::config::Schema::parse(std::path::Path::new("schema.toml"), &text).unwrap();
    let residents = sealed.table("residents").unwrap();
    let c = residents.column_index("household_size").unwrap();
    assert!(residents.columns[c].is_sealed());
    tj.store
        .adopt_schema(Arc::new(sealed), &puente::store::Allow::default())
        .unwrap();
    // Accepting would put a plaintext into a sealed column: refused, and
    // the change stays on the list for a discard.
    let e = tj.store.held_accept(held[0].id, None).unwrap_err();
    assert!(matches!(e, StoreError::InvalidWrite { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "held change {} no longer fits the schema",
            held[0].id
        )) && message.contains("household_size")
            && message.contains("not an age file")
            && message.contains(&format!("`puente held discard {}`", held[0].id)),
        "{message}"
    );
    assert_eq!(tj.store.held_count(), 1);
    let row = tj
        .store
        .get("residents", "r1", Reveal::No)
        .unwrap()
        .unwrap();
    assert_eq!(
        row.cell("household_size"),
        Some(&puente::store::CellView::Empty)
    );
    let discarded = tj.store.held_discard(held[0].id, None).unwrap();
    assert_eq!(discarded.change.state, "discarded");
    assert_eq!(tj.store.held_count(), 0);
}
