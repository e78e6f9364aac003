//! Schema changes on real replicas: a column added in the middle of the
//! name order (slots differ between replicas, the wire does not), shared →
//! sealed leaving no plaintext, erasing drops, sealed → shared only when
//! asked, new types checked, type changes refused — each with replicas
//! that then sync and converge.

use crate::support;

use std::path::Path;
use std::sync::Arc;

use puente::clock::{ManualClock, WallClock};
use puente::config::Schema;
use puente::seal::Keyring;
use puente::store::{Allow, CellView, Reveal, Store, StoreError};
use puente::value::{Plaintext, Value};
use support::*;

/// A small schema; `extra` goes into the events table's columns.
fn schema_with(events: &str, people: &str) -> Arc<Schema> {
    let text = format!(
        "[groups]\nmx = [\"{TEST_RECIPIENT}\"]\n\
         [tables.events.columns]\n{events}\n\
         [tables.people.columns]\n{people}\n"
    );
    Arc::new(Schema::parse(Path::new("schema.toml"), &text).unwrap())
}

const EVENTS: &str = "alpha = \"shared\"\ncharlie = \"shared\"";
const PEOPLE: &str = "name = { sealed = \"mx\" }\nnotes = \"shared\"";

fn reopen(r: &mut Replica, schema: Arc<Schema>, allow: &Allow) -> Result<(), StoreError> {
    let keys = r.dir.path().join("keys").join("mx.key");
    let keyring = if keys.exists() {
        Arc::new(Keyring::load(&[keys]).unwrap().0)
    } else {
        Arc::new(Keyring::empty())
    };
    let path = r.data_dir().join("puente.db");
    // Close the old connection first (a replica has one writer).
    let placeholder = Store::open(
        &r.dir.path().join(format!(
            "placeholder-{}.db",
            puente::stamp::SiteId::random()
        )),
        puente::store::StoreOptions::new(
            schema.clone(),
            Arc::new(Keyring::empty()),
            r.clock.clone() as Arc<dyn WallClock>,
        ),
    )
    .unwrap();
    drop(std::mem::replace(&mut r.store, placeholder));
    r.store = Store::open(
        &path,
        puente::store::StoreOptions::new(schema, keyring, r.clock.clone() as Arc<dyn WallClock>)
            .allowing(allow),
    )?;
    Ok(())
}

fn value(r: &Replica, table: &str, id: &str, column: &str) -> Option<CellView> {
    r.store
        .get(table, id, Reveal::No)
        .unwrap()
        .and_then(|row| row.cell(column).cloned())
}

fn converge(a: &mut Replica, b: &mut Replica) {
    sync(a, b, 3);
    sync(b, a, 3);
    assert_eq!(a.store.digest(), b.store.digest(), "digests differ");
    for r in [&*a, &*b] {
        assert_eq!(r.store.recompute_digest().unwrap(), r.store.digest());
    }
}

#[test]
fn a_column_added_in_the_middle_syncs_between_replicas_whose_slots_differ() {
    let old = schema_with(EVENTS, PEOPLE);
    let new = schema_with(
        "alpha = \"shared\"\nbravo = \"shared\"\ncharlie = \"shared\"",
        PEOPLE,
    );
    // `a` was made with the old schema and has rows; it adopts the new one
    // (bravo's slot comes last there). `b` is made with the new one (bravo
    // in the middle).
    let mut a = replica("a", old, None, 1_000);
    for i in 0..20 {
        a.store
            .put(
                "events",
                &format!("e{i}"),
                cells(&[("alpha", "A"), ("charlie", "C")]),
            )
            .unwrap();
    }
    let digest_before = a.store.digest();
    reopen(&mut a, new.clone(), &Allow::default()).unwrap();
    assert_eq!(
        a.store.digest(),
        digest_before,
        "adding a column changes no cell"
    );
    assert_eq!(
        value(&a, "events", "e3", "bravo"),
        Some(CellView::Value(Value::Null)),
        "existing rows read the new column as empty"
    );
    a.clock.advance(10);
    a.store
        .put("events", "e3", cells(&[("bravo", "B from a")]))
        .unwrap();
    let mut b = replica("b", new, None, 2_000);
    b.store
        .put(
            "events",
            "e4",
            cells(&[("bravo", "B from b"), ("charlie", "C from b")]),
        )
        .unwrap();
    converge(&mut a, &mut b);
    for r in [&a, &b] {
        assert_eq!(
            value(r, "events", "e3", "bravo"),
            Some(CellView::Value(Value::Text("B from a".into())))
        );
        assert_eq!(
            value(r, "events", "e4", "charlie"),
            Some(CellView::Value(Value::Text("C from b".into())))
        );
        assert_eq!(
            value(r, "events", "e4", "alpha"),
            Some(CellView::Value(Value::Text("A".into())))
        );
    }
}

#[test]
fn shared_to_sealed_seals_every_value_and_leaves_no_plaintext() {
    let old = schema_with(EVENTS, PEOPLE);
    let new = schema_with(
        EVENTS,
        "name = { sealed = \"mx\" }\nnotes = { sealed = \"mx\" }",
    );
    let mut tj = replica("tijuana", old.clone(), Some(TEST_IDENTITY), 1_000);
    let mut sd = replica("san-diego", old, None, 1_000);
    let marker = |i: usize| format!("Plaintext-Note-{i:03}");
    for i in 0..50 {
        sd.store
            .put("people", &format!("p{i}"), cells(&[("notes", &marker(i))]))
            .unwrap();
    }
    converge(&mut tj, &mut sd);
    // Both offices adopt the schema that seals `notes`.
    for r in [&mut tj, &mut sd] {
        r.clock.advance(1_000);
        reopen(r, new.clone(), &Allow::default()).unwrap();
        assert_eq!(r.store.stats().unwrap().sealed_cells, 50);
    }
    converge(&mut tj, &mut sd);
    // Values stay revealable where the identity is.
    for i in [0, 17, 49] {
        let plain = tj
            .store
            .reveal_cell("people", &format!("p{i}"), "notes")
            .unwrap()
            .unwrap();
        assert_eq!(plain.expose(), &Value::Text(marker(i)));
    }
    assert_eq!(value(&sd, "people", "p1", "notes"), Some(CellView::Sealed));
    // No plaintext in any file of either replica: first as the adoption
    // left them, write-ahead log included (a shared value written after it
    // is in the WAL, as control: the scan reads that file), then after a
    // checkpoint (the same value now in the database file). Each scan also
    // sees the files (a planted control) and would see the markers.
    let forbidden: Vec<String> = (0..50).map(marker).collect();
    let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    for r in [&mut tj, &mut sd] {
        r.store
            .put(
                "events",
                "control",
                cells(&[("alpha", "Shared-Control-Value")]),
            )
            .unwrap();
        let planted = plant_control(&r.data_dir()).unwrap();
        Scan::forbidding(&forbidden)
            .control(Control::in_file("puente.db-wal", "Shared-Control-Value"))
            .control(planted)
            .check(&r.data_dir())
            .unwrap_or_else(|e| panic!("{} before a checkpoint: {e}", r.name));
        r.store.checkpoint().unwrap();
        let planted = plant_control(&r.data_dir()).unwrap();
        Scan::forbidding(&forbidden)
            .control(Control::in_file("puente.db", "Shared-Control-Value"))
            .control(planted)
            .check(&r.data_dir())
            .unwrap_or_else(|e| panic!("{} after a checkpoint: {e}", r.name));
    }
}

#[test]
fn drops_need_a_word_then_erase_the_values_at_each_office() {
    let old = schema_with(EVENTS, PEOPLE);
    let new = schema_with("alpha = \"shared\"", "name = { sealed = \"mx\" }");
    let mut a = replica("a", old.clone(), None, 1_000);
    let mut b = replica("b", old, None, 1_000);
    for i in 0..10 {
        a.store
            .put(
                "events",
                &format!("e{i}"),
                cells(&[("alpha", "kept"), ("charlie", &format!("Erase-Me-{i}"))]),
            )
            .unwrap();
    }
    converge(&mut a, &mut b);
    // Without the word: refused, nothing changed.
    let e = reopen(&mut a, new.clone(), &Allow::default()).unwrap_err();
    assert!(e.to_string().contains("--allow-drop"), "{e}");
    let old_again = schema_with(EVENTS, PEOPLE);
    reopen(&mut a, old_again, &Allow::default()).unwrap();
    assert!(value(&a, "events", "e1", "charlie").is_some());
    // With it, at both offices.
    let allow = Allow {
        drop: true,
        unseal: vec![],
    };
    for r in [&mut a, &mut b] {
        reopen(r, new.clone(), &allow).unwrap();
        assert_eq!(value(r, "events", "e1", "charlie"), None);
        assert_eq!(
            value(r, "events", "e1", "alpha"),
            Some(CellView::Value(Value::Text("kept".into())))
        );
        let planted = plant_control(&r.data_dir()).unwrap();
        let forbidden: Vec<String> = (0..10).map(|i| format!("Erase-Me-{i}")).collect();
        let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
        Scan::forbidding(&forbidden)
            .control(Control::in_file("puente.db", "kept"))
            .control(planted)
            .check(&r.data_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
    }
    converge(&mut a, &mut b);
}

#[test]
fn sealed_to_shared_happens_only_when_asked_and_opens_values_where_a_key_is() {
    let old = schema_with(EVENTS, PEOPLE);
    let new = schema_with(EVENTS, "name = \"shared\"\nnotes = \"shared\"");
    let mut tj = replica("tijuana", old.clone(), Some(TEST_IDENTITY), 1_000);
    let mut sd = replica("san-diego", old, None, 1_000);
    sd.store
        .put("people", "p1", cells(&[("name", "Opened Later")]))
        .unwrap();
    converge(&mut tj, &mut sd);
    // A config edit alone is refused.
    let e = reopen(&mut tj, new.clone(), &Allow::default()).unwrap_err();
    assert!(e.to_string().contains("puente schema unseal"), "{e}");
    let asked = Allow {
        drop: false,
        unseal: vec![("people".into(), "name".into())],
    };
    tj.clock.advance(1_000);
    reopen(&mut tj, new.clone(), &asked).unwrap();
    assert_eq!(
        value(&tj, "people", "p1", "name"),
        Some(CellView::Value(Value::Text("Opened Later".into())))
    );
    // San Diego has no key: it relabels, and the shared version arrives.
    reopen(&mut sd, new, &asked).unwrap();
    converge(&mut tj, &mut sd);
    assert_eq!(
        value(&sd, "people", "p1", "name"),
        Some(CellView::Value(Value::Text("Opened Later".into())))
    );
}

#[test]
fn a_new_type_is_checked_against_every_value_and_a_changed_one_refused() {
    let old = schema_with(EVENTS, PEOPLE);
    let mut a = replica("a", old, None, 1_000);
    a.store
        .put("events", "ok", cells(&[("alpha", " 25 ")]))
        .unwrap();
    a.store
        .put("events", "bad", cells(&[("alpha", "veinte")]))
        .unwrap();
    let typed = schema_with(
        "alpha = { type = \"integer\" }\ncharlie = \"shared\"",
        PEOPLE,
    );
    let e = reopen(&mut a, typed.clone(), &Allow::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("1 of its values do not fit")
            && text.contains("bad: expects a whole number, e.g. 25; got text `veinte`"),
        "{text}"
    );
    // Fixed under the old schema, the type is adopted and the value kept
    // as an integer (same version: no new change to sync).
    reopen(&mut a, schema_with(EVENTS, PEOPLE), &Allow::default()).unwrap();
    a.store
        .put("events", "bad", cells(&[("alpha", "20")]))
        .unwrap();
    let head = a.store.head();
    reopen(&mut a, typed, &Allow::default()).unwrap();
    assert_eq!(a.store.head(), head);
    assert_eq!(
        value(&a, "events", "ok", "alpha"),
        Some(CellView::Value(Value::Integer(25)))
    );
    assert_eq!(a.store.recompute_digest().unwrap(), a.store.digest());
    // Every local write is checked now.
    let e = a
        .store
        .put(
            "events",
            "new",
            vec![("alpha".into(), Plaintext::text("treinta"))],
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidValue { .. }), "{e}");
    // Changing the type is refused with the way to do it.
    let retyped = schema_with("alpha = { type = \"text\" }\ncharlie = \"shared\"", PEOPLE);
    let e = reopen(&mut a, retyped, &Allow::default()).unwrap_err();
    assert!(
        e.to_string().contains("add a new column of the new type"),
        "{e}"
    );
}

#[test]
fn a_sealed_columns_type_is_checked_on_the_plaintext_before_sealing() {
    let s = schema_with(
        EVENTS,
        "name = { sealed = \"mx\", type = \"date\" }\nnotes = \"shared\"",
    );
    let mut a = replica("a", s, None, 1_000);
    let e = a
        .store
        .put(
            "people",
            "p",
            vec![("name".into(), Plaintext::text("Secret Not A Date"))],
        )
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("expects a date as YYYY-MM-DD"), "{text}");
    assert!(
        !text.contains("Secret"),
        "a sealed value in an error: {text}"
    );
    a.store
        .put(
            "people",
            "p",
            vec![("name".into(), Plaintext::text("2026-12-01"))],
        )
        .unwrap();
    let _ = ManualClock::new(0);
}

/// The counts a replica keeps (rows per table, sealed cells, tombstones per
/// table) follow an added table that sorts first and an added column,
/// without reading the rows again.
#[test]
fn counts_and_tombstones_follow_tables_added_before_the_others() {
    let old = schema_with(EVENTS, PEOPLE);
    let mut a = replica("a", old, None, 1_000);
    for i in 0..5 {
        a.store
            .put("events", &format!("e{i}"), cells(&[("alpha", "A")]))
            .unwrap();
        a.store
            .put(
                "people",
                &format!("p{i}"),
                cells(&[("name", "Nombre"), ("notes", "N")]),
            )
            .unwrap();
    }
    a.store.delete("people", "p0").unwrap();
    let text = format!(
        "[groups]\nmx = [\"{TEST_RECIPIENT}\"]\n\
         [tables.aardvarks.columns]\nsize = \"shared\"\n\
         [tables.events.columns]\n{EVENTS}\nbravo = \"shared\"\n\
         [tables.people.columns]\n{PEOPLE}\n"
    );
    let new = Arc::new(Schema::parse(Path::new("schema.toml"), &text).unwrap());
    reopen(&mut a, new, &Allow::default()).unwrap();
    let stats = a.store.stats().unwrap();
    let (rows, sealed) = a.store.recount().unwrap();
    let kept: Vec<u64> = stats.rows.iter().map(|(_, n)| *n).collect();
    assert_eq!((kept.clone(), stats.sealed_cells), (rows, sealed));
    assert_eq!(kept, vec![0, 5, 4], "aardvarks, events, people");
    assert_eq!(stats.sealed_cells, 4);
    // The tombstone still counts for people (not for the new first table):
    // the deleted row stays deleted.
    assert!(matches!(
        a.store.put("people", "p0", cells(&[("notes", "back?")])),
        Err(StoreError::RowDeleted { .. })
    ));
    a.store
        .put("aardvarks", "x1", cells(&[("size", "small")]))
        .unwrap();
    assert_eq!(a.store.stats().unwrap().rows[0], ("aardvarks".into(), 1));
}
