//! The replica's merge rules, batching, validation and open checks.

use crate::support;

use std::sync::Arc;

use puente::clock::{Hlc, ManualClock, WallClock};
use puente::seal::Keyring;
use puente::stamp::SiteId;
use puente::store::{
    Batch, CellChange, CellView, Change, Cursor, PeerRef, Reveal, Store, StoreError,
};
use puente::value::{Plaintext, Value};
use support::*;

fn shared(view: &puente::store::RowView, column: &str) -> Value {
    match view.cell(column) {
        Some(CellView::Value(v)) => v.clone(),
        other => panic!("{column}: {other:?}"),
    }
}

fn get(r: &Replica, id: &str) -> Option<puente::store::RowView> {
    r.store.get("outreach_events", id, Reveal::No).unwrap()
}

#[test]
fn last_writer_wins_per_column_independently() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 2_000);
    a.store
        .put(
            "outreach_events",
            "ev1",
            cells(&[("title", "Clinic"), ("location", "Casa")]),
        )
        .unwrap();
    sync(&a, &mut b, 100);
    // Concurrent edits to different columns both survive.
    a.store
        .put(
            "outreach_events",
            "ev1",
            cells(&[("title", "Legal clinic")]),
        )
        .unwrap();
    b.store
        .put(
            "outreach_events",
            "ev1",
            cells(&[("location", "Parish hall")]),
        )
        .unwrap();
    sync(&a, &mut b, 100);
    sync(&b, &mut a, 100);
    for r in [&a, &b] {
        let row = get(r, "ev1").unwrap();
        assert_eq!(shared(&row, "title"), Value::Text("Legal clinic".into()));
        assert_eq!(shared(&row, "location"), Value::Text("Parish hall".into()));
    }
    // Concurrent edits to the same column: the later hlc wins everywhere,
    // even when the earlier write arrives last.
    a.clock.set(10_000);
    b.clock.set(20_000);
    b.store
        .put("outreach_events", "ev1", cells(&[("status", "cancelled")]))
        .unwrap();
    a.store
        .put("outreach_events", "ev1", cells(&[("status", "scheduled")]))
        .unwrap();
    sync(&b, &mut a, 100);
    sync(&a, &mut b, 100);
    for r in [&a, &b] {
        assert_eq!(
            shared(&get(r, "ev1").unwrap(), "status"),
            Value::Text("cancelled".into())
        );
    }
    assert_eq!(a.store.digest(), b.store.digest());
}

#[test]
fn equal_timestamps_are_decided_by_site_id() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 5_000);
    let mut b = replica("b", s.clone(), None, 5_000);
    a.store
        .put("outreach_events", "ev", cells(&[("title", "from a")]))
        .unwrap();
    b.store
        .put("outreach_events", "ev", cells(&[("title", "from b")]))
        .unwrap();
    assert_eq!(a.store.last_hlc(), b.store.last_hlc());
    sync(&a, &mut b, 100);
    sync(&b, &mut a, 100);
    let winner = if a.store.site_id() > b.store.site_id() {
        "from a"
    } else {
        "from b"
    };
    for r in [&a, &b] {
        assert_eq!(
            shared(&get(r, "ev").unwrap(), "title"),
            Value::Text(winner.into())
        );
    }
}

#[test]
fn a_delete_beats_concurrent_and_later_updates_and_erases_the_row() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 1_000);
    a.store
        .put("outreach_events", "ev", cells(&[("title", "Workshop")]))
        .unwrap();
    sync(&a, &mut b, 100);
    a.store.delete("outreach_events", "ev").unwrap();
    // b's clock is far ahead: its update is "later" but must still lose.
    b.clock.set(9_000_000);
    b.store
        .put(
            "outreach_events",
            "ev",
            cells(&[("title", "Workshop (moved)")]),
        )
        .unwrap();
    sync(&a, &mut b, 100);
    sync(&b, &mut a, 100);
    for r in [&a, &b] {
        assert!(get(r, "ev").is_none());
        assert!(r.store.is_deleted("outreach_events", "ev").unwrap());
        assert_eq!(
            r.store.stats().unwrap().rows[0],
            ("outreach_events".to_string(), 0)
        );
    }
    assert_eq!(a.store.digest(), b.store.digest());
    // The id can never be written again.
    let e = a
        .store
        .put("outreach_events", "ev", cells(&[("title", "again")]))
        .unwrap_err();
    assert!(matches!(e, StoreError::RowDeleted { .. }), "{e}");
    assert!(e.to_string().contains("new id"), "{e}");
    // Deleting again is harmless; deleting what never existed is an error.
    assert_eq!(a.store.delete("outreach_events", "ev").unwrap().cells, 0);
    assert!(matches!(
        a.store.delete("outreach_events", "nope"),
        Err(StoreError::NoSuchRow { .. })
    ));
}

#[test]
fn applying_is_idempotent_and_advances_the_local_clock() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 1_000);
    // a's clock is a minute ahead of b's (within the drift bound).
    a.clock.set(1_000 + 60_000);
    a.store
        .put("outreach_events", "ev", cells(&[("title", "x")]))
        .unwrap();
    let out = a
        .store
        .changes_since(Cursor::ZERO, 100, 1 << 20, None)
        .unwrap();
    let first = b
        .store
        .apply(&a.peer_ref(), out.batch.clone(), out.cursor)
        .unwrap();
    assert_eq!(first.cells_written, 1);
    assert_eq!(first.max_hlc.millis(), 1_000 + 60_000);
    let digest = b.store.digest();
    let head = b.store.head();
    let again = b
        .store
        .apply(&a.peer_ref(), out.batch.clone(), out.cursor)
        .unwrap();
    assert_eq!(again.cells_written, 0);
    assert_eq!((b.store.digest(), b.store.head()), (digest, head));
    // b's next write orders after what it saw, despite its slow clock.
    let w = b
        .store
        .put("outreach_events", "ev", cells(&[("title", "y")]))
        .unwrap();
    assert!(w.hlc > first.max_hlc);
}

#[test]
fn the_hlc_survives_a_restart_even_if_the_clock_steps_back() {
    let s = schema(&[TEST_RECIPIENT]);
    let a = replica("a", s.clone(), None, 50_000);
    let mut store = a.store;
    let w = store
        .put("outreach_events", "ev", cells(&[("title", "x")]))
        .unwrap();
    let path = store.path().to_path_buf();
    drop(store);
    let clock = ManualClock::new(10); // the wall clock went back
    let mut store = Store::open(
        &path,
        puente::store::StoreOptions::new(
            s,
            Arc::new(Keyring::empty()),
            clock as Arc<dyn WallClock>,
        ),
    )
    .unwrap();
    let w2 = store
        .put("outreach_events", "ev", cells(&[("title", "y")]))
        .unwrap();
    assert!(w2.hlc > w.hlc);
    assert_eq!(store.head(), 2);
}

#[test]
fn catch_up_in_small_batches_resumes_and_misses_nothing() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 1_000);
    for i in 0..50 {
        a.store
            .put(
                "outreach_events",
                &format!("ev{i:02}"),
                cells(&[("title", "t"), ("office", "tijuana")]),
            )
            .unwrap();
    }
    // Rows written early are updated again later: their sequence moves past
    // the cursor of a partly finished catch-up.
    let out = a
        .store
        .changes_since(Cursor::ZERO, 10, 1 << 20, None)
        .unwrap();
    assert_eq!(out.batch.changes.len(), 10);
    assert!(!out.complete);
    b.store
        .apply(&a.peer_ref(), out.batch.clone(), out.cursor)
        .unwrap();
    for i in [0, 15, 30, 49] {
        a.store
            .put(
                "outreach_events",
                &format!("ev{i:02}"),
                cells(&[("status", "done")]),
            )
            .unwrap();
    }
    a.store.delete("outreach_events", "ev20").unwrap();
    let batches = sync(&a, &mut b, 10);
    assert!(batches >= 5, "{batches}");
    assert_eq!(a.store.digest(), b.store.digest());
    assert_eq!(b.store.recompute_digest().unwrap(), b.store.digest());
    // Once caught up, nothing is sent again.
    let cursor = b.store.cursor_for(&a.store.site_id()).unwrap();
    assert_eq!(cursor, Cursor::at(a.store.head()));
    let out = a.store.changes_since(cursor, 10, 1 << 20, None).unwrap();
    assert!(out.batch.is_empty() && out.complete);
}

#[test]
fn a_peer_is_not_sent_its_own_writes_back() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 1_000);
    a.store
        .put("outreach_events", "ev", cells(&[("title", "x")]))
        .unwrap();
    sync(&a, &mut b, 100);
    let out = b
        .store
        .changes_since(Cursor::ZERO, 100, 1 << 20, Some(a.store.site_id()))
        .unwrap();
    assert!(out.batch.is_empty() && out.complete);
    let out = b
        .store
        .changes_since(Cursor::ZERO, 100, 1 << 20, None)
        .unwrap();
    assert_eq!(out.batch.cell_count(), 1);
}

#[test]
fn after_a_catch_up_the_pump_back_to_the_source_is_done_in_one_read() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let mut b = replica("b", s.clone(), None, 1_000);
    b.store
        .put("outreach_events", "shared", cells(&[("title", "from b")]))
        .unwrap();
    let before = b.store.head();
    for i in 0..50 {
        a.store
            .put(
                "outreach_events",
                &format!("ev{i:02}"),
                cells(&[("title", "t")]),
            )
            .unwrap();
    }
    a.store
        .put(
            "outreach_events",
            "shared",
            cells(&[("location", "from a")]),
        )
        .unwrap();
    assert!(sync(&a, &mut b, 10) >= 5);
    let a_site = Some(a.store.site_id());
    // Complete at any point of the catch-up: nothing is owed to `a`, and
    // one read of at most 10 rows says so (51 of a's rows follow).
    for at in [before, before + 7, b.store.head() - 1] {
        let out = b
            .store
            .changes_since(Cursor::at(at), 10, 1 << 20, a_site)
            .unwrap();
        assert!(out.batch.is_empty() && out.complete, "from {at}: {out:?}");
        assert_eq!(out.cursor, Cursor::at(b.store.head()));
    }
    // A cursor not yet complete at the run's start is read as before: the
    // row `a` updated holds b's own cell, numbered before the run, and
    // that cell is still owed.
    let partial = Cursor {
        base: 0,
        progress: before,
    };
    let mut owed = 0;
    let mut cursor = partial;
    loop {
        let out = b.store.changes_since(cursor, 10, 1 << 20, a_site).unwrap();
        owed += out.batch.cell_count();
        cursor = out.cursor;
        if out.complete {
            break;
        }
    }
    assert_eq!(owed, 1, "b's title of `shared`");
    // A write here after the catch-up is sent, and only it.
    b.store
        .put("outreach_events", "ev03", cells(&[("status", "done")]))
        .unwrap();
    let out = b
        .store
        .changes_since(Cursor::at(before), 10, 1 << 20, a_site)
        .unwrap();
    assert!(out.complete);
    assert_eq!(out.batch.cell_count(), 1);
    // Everything `a` wrote is still owed to a third office.
    let out = b
        .store
        .changes_since(Cursor::at(before), 100, 1 << 20, Some(SiteId([7; 16])))
        .unwrap();
    assert_eq!(out.batch.changes.len(), 51);
}

fn row_change(table: u16, id: &str, column: u16, value: Value) -> Batch {
    Batch {
        sites: vec![SiteId([9; 16])],
        changes: vec![Change::Row {
            table,
            id: id.into(),
            cells: vec![CellChange {
                column,
                hlc: Hlc::from_parts(1_000, 0),
                site: 0,
                value,
            }],
        }],
    }
}

#[test]
fn invalid_batches_are_rejected_whole_and_name_peer_table_column_and_id() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut b = replica("b", s.clone(), None, 1_000);
    let peer = PeerRef {
        site: SiteId([9; 16]),
        name: "rogue".into(),
    };
    let residents = s.table_index("residents").unwrap() as u16;
    let full_name = s
        .table("residents")
        .unwrap()
        .column_index("full_name")
        .unwrap() as u16;
    let events = s.table("outreach_events").unwrap();
    let title = events.column_index("title").unwrap() as u16;
    let mut batch = row_change(0, "ok-row", title, Value::Text("fine".into()));
    // A second change carries plaintext in a sealed column.
    batch
        .changes
        .extend(row_change(residents, "r1", full_name, Value::Text("Plain Name".into())).changes);
    let e = b.store.apply(&peer, batch, Cursor::at(2)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::InvalidBatch { .. }));
    for part in ["rogue", "residents", "r1", "full_name", "not an age file"] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    assert!(!msg.contains("Plain Name"));
    // Nothing of it was applied, not even the valid change or the cursor.
    assert!(
        b.store
            .get("outreach_events", "ok-row", Reveal::No)
            .unwrap()
            .is_none()
    );
    assert_eq!(b.store.head(), 0);
    assert_eq!(b.store.cursor_for(&peer.site).unwrap(), Cursor::ZERO);

    let e = b
        .store
        .apply(&peer, row_change(7, "x", 0, Value::Null), Cursor::at(1))
        .unwrap_err();
    assert!(e.to_string().contains("unknown table"), "{e}");
    let e = b
        .store
        .apply(&peer, row_change(0, "x", 99, Value::Null), Cursor::at(1))
        .unwrap_err();
    assert!(e.to_string().contains("unknown column"), "{e}");
    let e = b
        .store
        .apply(
            &peer,
            row_change(0, "bad id!", 0, Value::Null),
            Cursor::at(1),
        )
        .unwrap_err();
    assert!(e.to_string().contains("invalid row id"), "{e}");
    let truncated_age = b"age-encryption.org/v1\n-> X25519 abc\n".to_vec();
    let e = b
        .store
        .apply(
            &peer,
            row_change(residents, "r1", full_name, Value::Blob(truncated_age)),
            Cursor::at(1),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not an age file"), "{e}");
    assert_eq!(b.store.head(), 0);
}

#[test]
fn local_writes_are_validated_against_the_schema() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    let e = a
        .store
        .put("events", "x", cells(&[("title", "t")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown table `events`") && e.contains("outreach_events"),
        "{e}"
    );
    let e = a
        .store
        .put("outreach_events", "x", cells(&[("titel", "t")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown column `titel`") && e.contains("title"),
        "{e}"
    );
    let e = a
        .store
        .put("outreach_events", "a/b", cells(&[("title", "t")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid row id"), "{e}");
    let e = a
        .store
        .put("outreach_events", "x", vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one column"), "{e}");
    assert_eq!(a.store.head(), 0);
}

#[test]
fn values_keep_their_types_and_partial_puts_keep_other_columns() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    a.store
        .put(
            "outreach_events",
            "ev",
            vec![
                ("capacity".into(), Plaintext::new(Value::Integer(25))),
                ("title".into(), text("Clinic")),
            ],
        )
        .unwrap();
    a.store
        .put("outreach_events", "ev", cells(&[("location", "Casa")]))
        .unwrap();
    let row = get(&a, "ev").unwrap();
    assert_eq!(shared(&row, "capacity"), Value::Integer(25));
    assert_eq!(shared(&row, "title"), Value::Text("Clinic".into()));
    assert_eq!(shared(&row, "location"), Value::Text("Casa".into()));
    assert_eq!(shared(&row, "status"), Value::Null);
    // Columns come in the schema file's order.
    assert_eq!(row.cells[0].0, "title");
    let page1 = a
        .store
        .list("outreach_events", None, 1, Reveal::No)
        .unwrap();
    assert_eq!(page1.len(), 1);
    let page2 = a
        .store
        .list("outreach_events", Some(&page1[0].id), 10, Reveal::No)
        .unwrap();
    assert!(page2.is_empty());
}

#[test]
fn a_plain_sqlite_reader_sees_a_real_table() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("a", s.clone(), None, 1_000);
    a.store
        .put(
            "outreach_events",
            "ev",
            cells(&[("title", "Feria de salud"), ("office", "tijuana")]),
        )
        .unwrap();
    let db = a.data_dir().join("puente.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (title, office): (String, String) = conn
        .query_row(
            "SELECT title, office FROM outreach_events WHERE id = 'ev'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (title.as_str(), office.as_str()),
        ("Feria de salud", "tijuana")
    );
}

#[test]
fn the_incremental_digest_matches_a_full_recomputation() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    for i in 0..20 {
        a.store
            .put(
                "outreach_events",
                &format!("e{i}"),
                cells(&[("title", "t"), ("status", "scheduled")]),
            )
            .unwrap();
        a.store
            .put(
                "residents",
                &format!("r{i}"),
                cells(&[("full_name", "Ana"), ("status", "active")]),
            )
            .unwrap();
    }
    for i in 0..20 {
        if i % 3 == 0 {
            a.store.delete("residents", &format!("r{i}")).unwrap();
        } else {
            a.store
                .put(
                    "outreach_events",
                    &format!("e{i}"),
                    cells(&[("status", "done")]),
                )
                .unwrap();
        }
    }
    assert_eq!(a.store.recompute_digest().unwrap(), a.store.digest());
    let stats = a.store.stats().unwrap();
    assert_eq!(a.store.recount().unwrap(), (vec![20, 13], 13));
    assert_eq!(stats.sealed_cells, 13);
    let path = a.store.path().to_path_buf();
    let digest = a.store.digest();
    drop(a.store);
    let reopened = Store::open(
        &path,
        puente::store::StoreOptions::new(
            s,
            Arc::new(Keyring::empty()),
            ManualClock::new(1) as Arc<dyn WallClock>,
        ),
    )
    .unwrap();
    assert_eq!(reopened.digest(), digest);
}

mod opening {
    use super::*;

    fn open(path: &std::path::Path) -> Result<Store, StoreError> {
        Store::open(
            path,
            puente::store::StoreOptions::new(
                schema(&[]),
                Arc::new(Keyring::empty()),
                ManualClock::new(1) as Arc<dyn WallClock>,
            ),
        )
    }

    #[test]
    fn a_missing_data_dir_is_an_error_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let e = open(&tmp.path().join("missing/puente.db")).unwrap_err();
        assert!(matches!(e, StoreError::DataDirMissing { .. }), "{e}");
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(!tmp.path().join("missing").exists());
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("puente.db");
        std::fs::write(&db, b"this is a text file, not a database at all").unwrap();
        let e = open(&db).unwrap_err();
        assert!(matches!(e, StoreError::NotSqlite { .. }), "{e}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"this is a text file, not a database at all"
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_foreign_sqlite_database_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("puente.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE accounts (x)")
            .unwrap();
        let e = open(&db).unwrap_err();
        assert!(matches!(e, StoreError::NotPuente { .. }), "{e}");
    }

    #[test]
    fn a_newer_format_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("puente.db");
        drop(open(&db).unwrap());
        rusqlite::Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = open(&db).unwrap_err();
        assert!(
            matches!(e, StoreError::NewerFormat { found: 99, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("upgrade puente"), "{e}");
    }

    #[test]
    fn a_dropped_column_is_refused_without_a_word_but_new_recipients_are_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("puente.db");
        drop(open(&db).unwrap());
        let other =
            schema_text(&[]).replace("capacity = { type = \"integer\" }", "seats = \"shared\"");
        let changed = Arc::new(
            puente::config::Schema::parse(std::path::Path::new("s.toml"), &other).unwrap(),
        );
        let e = Store::open(
            &db,
            puente::store::StoreOptions::new(
                changed,
                Arc::new(Keyring::empty()),
                ManualClock::new(1) as Arc<dyn WallClock>,
            ),
        )
        .unwrap_err();
        // A rename is a drop and an add: the drop needs `--allow-drop`, and
        // nothing changes (the original schema opens it as before).
        assert!(matches!(e, StoreError::SchemaChangeRefused { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("column `outreach_events.capacity`") && text.contains("--allow-drop"),
            "{text}"
        );
        Store::open(
            &db,
            puente::store::StoreOptions::new(
                schema(&[TEST_RECIPIENT]),
                Arc::new(Keyring::empty()),
                ManualClock::new(1) as Arc<dyn WallClock>,
            ),
        )
        .unwrap();
    }
}
