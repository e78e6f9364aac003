//! Sealed columns: nothing readable on disk anywhere, reveal only with the
//! key, values bound to their cell, standard age, uniform sizes.

use crate::support;

use std::process::Command;
use std::sync::Arc;

use puente::clock::{ManualClock, WallClock};
use puente::seal::{Keyring, SealError};
use puente::store::{CellView, Reveal, Store, StoreError};
use puente::value::{Plaintext, Value};
use support::*;

const MARKERS: [&str; 4] = [
    "Guadalupe Quetzalcoatl-Marker",
    "+52 664 555 0199",
    "Nacionalidad-Hondureña-Marker",
    "Caso: amenaza de muerte, marcador único 7731",
];

fn resident(name: &str, phone: &str, nationality: &str, notes: &str) -> Vec<(String, Plaintext)> {
    cells(&[
        ("full_name", name),
        ("phone", phone),
        ("nationality", nationality),
        ("case_notes", notes),
        ("status", "active"),
        ("arrival_date", "2026-11-20"),
    ])
}

fn reveal(r: &Replica, id: &str, column: &str) -> Result<Option<Plaintext>, StoreError> {
    r.store.reveal_cell("residents", id, column)
}

#[test]
fn no_file_of_either_node_contains_sealed_plaintext() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut tijuana = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let mut san_diego = replica("san-diego", s.clone(), None, 1_000);
    tijuana
        .store
        .put(
            "residents",
            "r1",
            resident(MARKERS[0], MARKERS[1], MARKERS[2], MARKERS[3]),
        )
        .unwrap();
    // A shared marker proves the scan sees what the files hold.
    tijuana
        .store
        .put(
            "outreach_events",
            "e1",
            cells(&[("title", "Shared-Visible-Marker")]),
        )
        .unwrap();
    // San Diego writes sealed values too (it can, sealed to Mexico's key).
    san_diego
        .store
        .put(
            "residents",
            "r2",
            resident("Sd-Name-Marker-42", "+1 619 555 0142", "X", "y"),
        )
        .unwrap();
    sync(&tijuana, &mut san_diego, 100);
    sync(&san_diego, &mut tijuana, 100);
    // Tijuana reads everything back (so plaintext has been in its memory).
    for (c, m) in ["full_name", "phone", "nationality", "case_notes"]
        .iter()
        .zip(MARKERS)
    {
        assert_eq!(reveal(&tijuana, "r1", c).unwrap(), Some(Plaintext::text(m)));
    }
    assert_eq!(
        reveal(&tijuana, "r2", "full_name").unwrap(),
        Some(text("Sd-Name-Marker-42"))
    );
    // An update and a delete exercise secure_delete and the WAL.
    tijuana
        .store
        .put("residents", "r1", cells(&[("phone", "+52 664 555 0200")]))
        .unwrap();
    tijuana
        .store
        .put(
            "residents",
            "r3",
            resident("Deleted-Person-Marker", "1", "2", "3"),
        )
        .unwrap();
    tijuana.store.delete("residents", "r3").unwrap();
    sync(&tijuana, &mut san_diego, 100);

    let mut needles: Vec<&str> = MARKERS.to_vec();
    needles.extend([
        "Sd-Name-Marker-42",
        "+1 619 555 0142",
        "+52 664 555 0200",
        "Deleted-Person-Marker",
    ]);
    for node in [&tijuana, &san_diego] {
        let files = files_under(&node.data_dir());
        assert!(
            files.iter().any(|f| f.to_string_lossy().ends_with("-wal")),
            "{files:?}"
        );
        // The positive control: a shared value, plaintext by design, is
        // seen in the WAL the replica is writing to.
        Scan::forbidding(&needles)
            .control(Control::in_file("puente.db-wal", "Shared-Visible-Marker"))
            .check(&node.data_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", node.name));
    }
}

#[test]
fn only_the_node_with_the_key_can_reveal() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut tijuana = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let mut san_diego = replica("san-diego", s.clone(), None, 1_000);
    san_diego
        .store
        .put(
            "residents",
            "r9",
            resident("Written In San Diego", "p", "n", "c"),
        )
        .unwrap();
    sync(&san_diego, &mut tijuana, 100);
    assert_eq!(
        reveal(&tijuana, "r9", "full_name").unwrap(),
        Some(text("Written In San Diego"))
    );
    let row = tijuana
        .store
        .get("residents", "r9", Reveal::Yes)
        .unwrap()
        .unwrap();
    assert_eq!(
        row.cell("full_name"),
        Some(&CellView::Revealed(text("Written In San Diego")))
    );
    assert_eq!(
        row.cell("status"),
        Some(&CellView::Value(Value::Text("active".into())))
    );
    assert_eq!(row.cell("birth_date"), Some(&CellView::Empty));

    // Without reveal, sealed cells show as sealed, everywhere.
    let sealed = san_diego
        .store
        .get("residents", "r9", Reveal::No)
        .unwrap()
        .unwrap();
    assert_eq!(sealed.cell("full_name"), Some(&CellView::Sealed));
    let e = san_diego
        .store
        .get("residents", "r9", Reveal::Yes)
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Seal(SealError::NoIdentity { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("no identity for group `mx`"), "{e}");
    assert!(reveal(&san_diego, "r9", "full_name").is_err());
    assert!(!san_diego.store.can_unseal("mx") && tijuana.store.can_unseal("mx"));
}

/// Overwrites one cell's bytes behind the store's back, as an attacker with
/// the database file (or a malicious relay) could.
fn tamper(r: &Replica, id: &str, column: &str, value: Vec<u8>) {
    let conn = rusqlite::Connection::open(r.data_dir().join("puente.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let n = conn
        .execute(
            &format!("UPDATE residents SET {column} = ?1 WHERE id = ?2"),
            rusqlite::params![value, id],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn raw(r: &Replica, id: &str, column: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open(r.data_dir().join("puente.db")).unwrap();
    conn.query_row(
        &format!("SELECT {column} FROM residents WHERE id = ?1"),
        [id],
        |row| row.get(0),
    )
    .unwrap()
}

fn binding_error(result: Result<Option<Plaintext>, StoreError>) -> bool {
    match result {
        Err(StoreError::Seal(SealError::Binding { .. })) => true,
        other => panic!("expected a binding error, got {other:?}"),
    }
}

#[test]
fn moved_replayed_or_damaged_ciphertext_is_refused_and_the_replica_stays_usable() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("tijuana", s, Some(TEST_IDENTITY), 1_000);
    a.store
        .put(
            "residents",
            "r1",
            resident("Ana", "+52 1", "MX", "notes one"),
        )
        .unwrap();
    a.store
        .put(
            "residents",
            "r2",
            resident("Beto", "+52 2", "GT", "notes two"),
        )
        .unwrap();
    let r1_name = raw(&a, "r1", "full_name");

    // Another resident's ciphertext.
    tamper(&a, "r2", "full_name", r1_name.clone());
    let e = reveal(&a, "r2", "full_name").unwrap_err();
    assert!(
        e.to_string().contains("does not belong to this cell"),
        "{e}"
    );
    assert!(e.to_string().contains("residents/r2/full_name"), "{e}");
    assert!(!e.to_string().contains("Ana"));
    // Another column's ciphertext.
    tamper(&a, "r1", "phone", r1_name.clone());
    assert!(binding_error(reveal(&a, "r1", "phone")));
    // An older version of the same cell, under the newer cell's stamp.
    a.clock.advance(1_000);
    a.store
        .put("residents", "r1", cells(&[("full_name", "Ana María")]))
        .unwrap();
    tamper(&a, "r1", "full_name", r1_name.clone());
    assert!(binding_error(reveal(&a, "r1", "full_name")));
    // A flipped byte in the payload.
    let mut flipped = raw(&a, "r2", "nationality");
    let at = flipped.len() - 3;
    flipped[at] ^= 0x40;
    tamper(&a, "r2", "nationality", flipped);
    let e = reveal(&a, "r2", "nationality").unwrap_err();
    assert!(
        matches!(e, StoreError::Seal(SealError::Decrypt { .. })),
        "{e}"
    );
    // Truncated, and plaintext where ciphertext belongs.
    let cut = raw(&a, "r2", "case_notes")[..40].to_vec();
    tamper(&a, "r2", "case_notes", cut);
    assert!(reveal(&a, "r2", "case_notes").is_err());
    tamper(&a, "r2", "phone", b"+52 664 plaintext".to_vec());
    let e = reveal(&a, "r2", "phone").unwrap_err();
    assert!(
        matches!(e, StoreError::Seal(SealError::NotAgeFile { .. })),
        "{e}"
    );

    // Everything else still works.
    assert_eq!(reveal(&a, "r1", "nationality").unwrap(), Some(text("MX")));
    a.store
        .put(
            "residents",
            "r1",
            cells(&[("full_name", "Ana María López")]),
        )
        .unwrap();
    assert_eq!(
        reveal(&a, "r1", "full_name").unwrap(),
        Some(text("Ana María López"))
    );
    assert_eq!(a.store.integrity_check().unwrap(), "ok");
}

#[test]
fn sealed_values_are_standard_age_files_for_age_keygen_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("age-keygen.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("the age package (age-keygen) is installed by .ci/run");
    assert!(out.status.success());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let recipient = key_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let s = schema(&[&recipient]);
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (keyring, _) = Keyring::load(std::slice::from_ref(&key)).unwrap();
    let mut store = Store::open(
        &data.join("puente.db"),
        puente::store::StoreOptions::new(
            s,
            Arc::new(keyring),
            ManualClock::new(1_000) as Arc<dyn WallClock>,
        ),
    )
    .unwrap();
    store
        .put(
            "residents",
            "r1",
            cells(&[("full_name", "Rosa Elena Compatible")]),
        )
        .unwrap();
    assert_eq!(
        store.reveal_cell("residents", "r1", "full_name").unwrap(),
        Some(text("Rosa Elena Compatible"))
    );

    let conn = rusqlite::Connection::open(data.join("puente.db")).unwrap();
    let blob: Vec<u8> = conn
        .query_row("SELECT full_name FROM residents WHERE id = 'r1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    // The age crate's plain API opens it with the identity...
    let identity: age::x25519::Identity = key_text.lines().last().unwrap().parse().unwrap();
    let plain = age::decrypt(&identity, &blob).unwrap();
    assert!(plain.windows(21).any(|w| w == b"Rosa Elena Compatible"));
    // ...and so does the reference `age -d` an auditor would use, though
    // the header's first stanza is puente's keyset marker (a stanza type it
    // does not know, which it skips).
    assert!(
        blob.starts_with(b"age-encryption.org/v1\n-> puente-keyset "),
        "the marker comes first"
    );
    assert_eq!(
        puente::seal::marker_of(&blob),
        Some(puente::seal::keyset_id(&[recipient.as_str()]).as_str())
    );
    let sealed = tmp.path().join("cell.age");
    std::fs::write(&sealed, &blob).unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(&sealed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, plain);
}

/// An age file's length without its grease stanza. The age crate adds to
/// every header one stanza of random tag and random length ("grease", to
/// keep parsers honest); it is drawn independently of the plaintext, so it
/// is removed before comparing lengths. Everything else — the recipient
/// stanzas, the MAC, the nonce and the payload — is counted.
fn length_without_grease(file: &[u8]) -> usize {
    let header_end = file
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("an age header")
        + 1;
    let header = std::str::from_utf8(&file[..header_end]).unwrap();
    let mut grease = 0;
    let mut in_grease = false;
    for line in header.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("-> ") {
            in_grease = rest
                .split_whitespace()
                .next()
                .is_some_and(|tag| tag.ends_with("-grease"));
        }
        if in_grease {
            grease += line.len();
        }
    }
    file.len() - grease
}

#[test]
fn short_plaintexts_all_give_ciphertexts_of_one_length() {
    let s = schema(&[TEST_RECIPIENT]);
    let mut a = replica("tijuana", s, None, 1_000);
    let mut lengths = std::collections::BTreeSet::new();
    let mut totals = std::collections::BTreeSet::new();
    for n in 1..=60 {
        a.store
            .put("residents", "same-id", cells(&[("phone", &"9".repeat(n))]))
            .unwrap();
        let file = raw(&a, "same-id", "phone");
        totals.insert(file.len());
        lengths.insert(length_without_grease(&file));
    }
    assert_eq!(lengths.len(), 1, "{lengths:?}");
    // The grease stanza really is what varies (so the helper is needed and
    // this test would notice if age stopped adding it).
    assert!(totals.len() > 1, "{totals:?}");
    a.store
        .put(
            "residents",
            "same-id",
            cells(&[("phone", &"9".repeat(300))]),
        )
        .unwrap();
    assert!(length_without_grease(&raw(&a, "same-id", "phone")) > *lengths.iter().next().unwrap());
}

#[test]
fn a_sealed_write_that_cannot_be_sealed_writes_nothing() {
    let no_recipients = schema(&[]);
    let mut a = replica("a", no_recipients, None, 1_000);
    let rows = vec![
        ("r1".to_string(), cells(&[("status", "active")])),
        (
            "r2".to_string(),
            cells(&[("status", "active"), ("full_name", "Nadie")]),
        ),
    ];
    let e = a.store.put_many("residents", rows).unwrap_err();
    assert!(
        e.to_string().contains("group `mx` has no recipients"),
        "{e}"
    );
    assert!(!e.to_string().contains("Nadie"));
    assert_eq!(a.store.head(), 0);
    assert!(
        a.store
            .get("residents", "r1", Reveal::No)
            .unwrap()
            .is_none()
    );
}

#[test]
fn bulk_puts_seal_on_every_core_and_reveal_correctly() {
    let s = schema(&[TEST_RECIPIENT, RECOVERY_RECIPIENT]);
    let mut a = replica("a", s.clone(), Some(TEST_IDENTITY), 1_000);
    let rows: Vec<_> = (0..64)
        .map(|i| {
            (
                format!("bulk{i:02}"),
                cells(&[("full_name", &format!("Persona {i}")), ("status", "active")]),
            )
        })
        .collect();
    a.store.put_many("residents", rows).unwrap();
    for i in [0, 17, 63] {
        assert_eq!(
            reveal(&a, &format!("bulk{i:02}"), "full_name").unwrap(),
            Some(text(&format!("Persona {i}")))
        );
    }
    // The offline recovery key opens the same values.
    let mut recovery = replica("recovery", s, Some(RECOVERY_IDENTITY), 1_000);
    sync(&a, &mut recovery, 100);
    assert_eq!(
        reveal(&recovery, "bulk17", "full_name").unwrap(),
        Some(text("Persona 17"))
    );
}

/// A batch large enough to be sealed a chunk ahead of its merge: every
/// value opens bound to its own row, across chunk boundaries, including
/// rows with no sealed cell among them; a batch that cannot be sealed
/// writes nothing at all.
#[test]
fn a_large_batch_sealed_ahead_of_its_merge_reveals_every_row() {
    let rows = |n: usize| -> Vec<_> {
        (0..n)
            .map(|i| {
                let row = if i % 7 == 3 {
                    cells(&[("status", "active")])
                } else {
                    cells(&[("full_name", &format!("Persona {i}")), ("status", "active")])
                };
                (format!("big{i:04}"), row)
            })
            .collect()
    };
    let mut a = replica("a", schema(&[TEST_RECIPIENT]), Some(TEST_IDENTITY), 1_000);
    let written = a.store.put_many("residents", rows(2_500)).unwrap();
    assert_eq!(written.len(), 2_500);
    assert!(written.windows(2).all(|w| w[0].hlc < w[1].hlc));
    for i in [0, 1_023, 1_024, 2_046, 2_048, 2_499] {
        assert_eq!(
            reveal(&a, &format!("big{i:04}"), "full_name").unwrap(),
            Some(text(&format!("Persona {i}"))),
            "row {i}"
        );
    }
    let with_a_name = (0..2_500).filter(|i| i % 7 != 3).count() as u64;
    assert_eq!(a.store.stats().unwrap().sealed_cells, with_a_name);

    let mut b = replica("b", schema(&[]), None, 1_000);
    let e = b.store.put_many("residents", rows(2_500)).unwrap_err();
    assert!(
        e.to_string().contains("group `mx` has no recipients"),
        "{e}"
    );
    assert_eq!(b.store.head(), 0);
}
