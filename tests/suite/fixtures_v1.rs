//! Every later build opens the replicas puente 0.1.0 made (tests/fixtures/v1,
//! replica format 1): it migrates them in place after leaving a copy of the
//! file as it was next to them, keeps every row, clock, tombstone and
//! sealed value (same head, digest, counts; sealed values open), and then
//! adopts today's shipped schema, whose column types the old values fit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use puente::clock::{ManualClock, WallClock};
use puente::config::Schema;
use puente::seal::Keyring;
use puente::store::{Reveal, Store};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1");

fn expected() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("expected.json")).unwrap(),
    )
    .unwrap()
}

/// A copy of an office's replica in a temp dir.
fn copy_of(office: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("puente.db");
    std::fs::copy(Path::new(FIXTURES).join(format!("{office}.db")), &db).unwrap();
    (tmp, db)
}

fn fixture_schema() -> Arc<Schema> {
    Arc::new(Schema::load(&Path::new(FIXTURES).join("schema.toml")).unwrap())
}

/// Today's shipped schema, sealed to the fixtures' recipient.
fn shipped_schema() -> Arc<Schema> {
    let fixture = std::fs::read_to_string(Path::new(FIXTURES).join("schema.toml")).unwrap();
    let recipients = fixture
        .lines()
        .find(|l| l.starts_with("mx = "))
        .unwrap()
        .to_string();
    let text = puente::config::schema::DEFAULT_SCHEMA.replace("mx = []", &recipients);
    Arc::new(Schema::parse(Path::new("schema.toml"), &text).unwrap())
}

fn keyring() -> Arc<Keyring> {
    let (k, _) = Keyring::load(&[Path::new(FIXTURES).join("mx.identity")]).unwrap();
    Arc::new(k)
}

fn open(db: &Path, schema: Arc<Schema>) -> Store {
    Store::open(
        db,
        puente::store::StoreOptions::new(
            schema,
            keyring(),
            ManualClock::new(1_900_000_000_000) as Arc<dyn WallClock>,
        ),
    )
    .unwrap()
}

fn check_against_expected(store: &Store, office: &str) {
    let want = &expected()[office];
    assert_eq!(store.site_id().to_string(), want["site_id"], "{office}");
    assert_eq!(store.head(), want["head"].as_u64().unwrap(), "{office}");
    assert_eq!(store.digest().to_string(), want["digest"], "{office}");
    assert_eq!(
        store.recompute_digest().unwrap(),
        store.digest(),
        "{office}: the digest kept equals a full recomputation"
    );
    // The cursor kept for the other office: both were in sync when 0.1.0
    // stopped them, so it stands at the other office's head.
    let other = if office == "tijuana" {
        "san-diego"
    } else {
        "tijuana"
    };
    let theirs = &expected()[other];
    let other_site: puente::stamp::SiteId = theirs["site_id"].as_str().unwrap().parse().unwrap();
    let other_head = theirs["head"].as_u64().unwrap();
    assert!(other_head > 0, "{other}: the fixture's head is known");
    assert_eq!(
        store.cursor_for(&other_site).unwrap(),
        puente::store::Cursor::at(other_head),
        "{office}: the cursor kept for {other}"
    );
    // Rows per table: the tables the fixture lists, each one present.
    let stats = store.stats().unwrap();
    let want_rows = want["rows"].as_object().unwrap();
    assert_eq!(want_rows.len(), 2, "the fixture lists its two tables");
    for (table, n) in want_rows {
        assert_eq!(
            stats.rows.iter().find(|(t, _)| t == table).map(|(_, n)| *n),
            Some(n.as_u64().unwrap()),
            "{office} {table}"
        );
    }
    assert_eq!(stats.sealed_cells, want["sealed_cells"].as_u64().unwrap());
    assert_eq!(stats.tombstones, want["tombstones"].as_u64().unwrap());
    for deleted in expected()["deleted"].as_array().unwrap() {
        let (table, id) = deleted.as_str().unwrap().split_once('/').unwrap();
        assert!(store.is_deleted(table, id).unwrap(), "{deleted}");
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

fn check_sealed_values_open(store: &Store) {
    for (cell, plain) in expected()["sealed_plaintexts"].as_object().unwrap() {
        let mut parts = cell.split('/');
        let (table, id, column) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let opened = store.reveal_cell(table, id, column).unwrap().unwrap();
        assert_eq!(
            opened.expose(),
            &puente::value::Value::Text(plain.as_str().unwrap().into()),
            "{cell}"
        );
    }
}

#[test]
fn format_1_replicas_migrate_in_place_beside_a_copy_and_keep_everything() {
    for office in ["tijuana", "san-diego"] {
        let (_tmp, db) = copy_of(office);
        let original = std::fs::read(&db).unwrap();
        let store = open(&db, fixture_schema());
        let copy = db.with_file_name("puente.db.format-1.bak");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            original,
            "{office}: the copy is the file as 0.1.0 left it"
        );
        check_against_expected(&store, office);
        check_sealed_values_open(&store);
        // Rows read as before.
        let row = store
            .get("outreach_events", "ev-1", Reveal::No)
            .unwrap()
            .unwrap();
        assert!(row.cell("title").is_some());
        drop(store);
        // Opened again: already format 2, the copy left alone.
        let mtime = std::fs::metadata(&copy).unwrap().modified().unwrap();
        let again = open(&db, fixture_schema());
        check_against_expected(&again, office);
        assert_eq!(std::fs::metadata(&copy).unwrap().modified().unwrap(), mtime);
    }
}

#[test]
fn a_migrated_replica_adopts_the_typed_shipped_schema_with_every_value_fitting() {
    let (_tmp, db) = copy_of("tijuana");
    let store = open(&db, shipped_schema());
    // The types were adopted: every old value fits, none had to change,
    // so the digest is the one 0.1.0 computed.
    check_against_expected(&store, "tijuana");
    check_sealed_values_open(&store);
    let row = store
        .get("outreach_events", "ev-1", Reveal::No)
        .unwrap()
        .unwrap();
    assert_eq!(
        row.cell("capacity"),
        Some(&puente::store::CellView::Value(
            puente::value::Value::Integer(40)
        ))
    );
    drop(store);
    let mut store = open(&db, shipped_schema());
    // Typed now: a value that does not fit is refused where it is written.
    let e = store
        .put(
            "outreach_events",
            "ev-9",
            vec![("capacity".into(), puente::value::Plaintext::text("veinte"))],
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("column `capacity` expects a whole number, e.g. 25; got text `veinte`"),
        "{e}"
    );
}
