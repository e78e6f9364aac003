//! `puente storage encrypt` and `rekey` on a stopped node, interrupted
//! after every step as if the process died there: each time the old
//! replica or the new one is usable with what is on disk, the next run
//! finishes, and the result holds the same site, head and digest, under the
//! right key, with no plaintext left in the data dir. The replica to convert
//! is a daemon's, killed with -9 so its WAL still holds the last writes.

use crate::cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cluster::*;
use puente::clock::{SystemClock, WallClock};
use puente::config::{NodeConfig, Schema};
use puente::lab::scan;
use puente::node::replica_key;
use puente::node::storage::{self, Options, Step};
use puente::seal::Keyring;
use puente::store::{AtRest, Digest, ReplicaKey, Store};

/// Shared values written to the replica: the byte scan's markers.
const MARKERS: [&str; 4] = [
    "Taller-de-costura-7731",
    "2026-11-02T09:30:00-08:00",
    "ev-marker-0042",
    "res-marker-0099",
];

/// Copies a node folder (regular files and folders; not the socket).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// (site id, head, digest) of the replica in `dir`, opened with `at_rest`
/// on a scratch copy (so the state under test is not touched).
fn state_of(dir: &Path, at_rest: &AtRest) -> Result<(String, u64, Digest), String> {
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(dir, scratch.path());
    let cfg = NodeConfig::load(&scratch.path().join("puente.toml")).unwrap();
    let store = Store::open(
        &cfg.database_path(),
        puente::store::StoreOptions::new(
            Arc::new(Schema::load(&cfg.schema_file).unwrap()),
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(at_rest),
    )
    .map_err(|e| e.to_string())?;
    Ok((store.site_id().to_string(), store.head(), store.digest()))
}

fn keyed(key: ReplicaKey) -> AtRest {
    AtRest::Encrypted {
        key,
        source: "test key".into(),
    }
}

fn key_in(path: &Path) -> Option<ReplicaKey> {
    replica_key::load_file(path).ok()
}

/// A plain node whose daemon wrote the markers and was killed with -9
/// (the last writes still in its WAL); returns its folder.
async fn killed_plain_node(root: &Path) -> PathBuf {
    let mut lab = puente::lab::Lab::create_at_rest(
        &root.join("lab"),
        Path::new(BIN),
        &[("san-diego", false)],
        &crate::support::unrequired(puente::config::schema::DEFAULT_SCHEMA),
        false,
    )
    .unwrap();
    lab[0].start().await.unwrap();
    let o = &lab[0];
    o.put(
        "outreach_events",
        MARKERS[2],
        &[("title", MARKERS[0]), ("starts_at", MARKERS[1])],
    )
    .await;
    o.put(
        "residents",
        MARKERS[3],
        &[("arrival_date", &MARKERS[1][..10])],
    )
    .await;
    for i in 0..50 {
        o.put(
            "outreach_events",
            &format!("ev-{i}"),
            &[("status", "scheduled")],
        )
        .await;
    }
    lab[0].kill9();
    let dir = lab[0].dir.clone();
    let wal = dir.join("data/puente.db-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the killed daemon left a WAL"
    );
    // Its markers are plaintext on disk: the positive control of the scan.
    let (hits, _, _) = scan::hits_in(&scan::replica_files(&dir.join("data")), &MARKERS);
    for m in MARKERS {
        assert!(hits.iter().any(|(_, n)| n == m), "{m} not seen: {hits:?}");
    }
    dir
}

/// What an interrupted or finished run may leave: the names it uses.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let cfg = NodeConfig::load(&dir.join("puente.toml")).unwrap();
    storage::leftovers(&cfg)
}

fn run_cli(dir: &Path, command: &str) -> String {
    let out = Command::new(BIN)
        .args(["storage", command, "--config"])
        .arg(dir.join("puente.toml"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "storage {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The finished state: the config names a key that opens the replica with
/// the original state, and nothing readable is left in the data dir.
fn assert_encrypted(dir: &Path, expected: &(String, u64, Digest)) -> ReplicaKey {
    let cfg = NodeConfig::load(&dir.join("puente.toml")).unwrap();
    let at_rest = replica_key::at_rest(&cfg).unwrap();
    let AtRest::Encrypted { key, .. } = &at_rest else {
        panic!("the config names no key")
    };
    assert_eq!(&state_of(dir, &at_rest).unwrap(), expected);
    assert!(state_of(dir, &AtRest::Plain).is_err());
    assert_eq!(leftovers(dir), Vec::<PathBuf>::new());
    let files = scan::files_under(&cfg.data_dir);
    let (hits, scanned, _) = scan::hits_in(&files, &MARKERS);
    assert!(scanned > 0 && hits.is_empty(), "{hits:?}");
    key.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_and_rekey_survive_a_crash_after_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let original = killed_plain_node(tmp.path()).await;
    let expected = state_of(&original, &AtRest::Plain).unwrap();
    let steps = [
        Step::KeyWritten,
        Step::Exported,
        Step::Linked,
        Step::Swapped,
        Step::Wiped,
    ];

    for step in steps {
        let dir = tmp.path().join(format!("encrypt-{step:?}"));
        copy_dir(&original, &dir);
        let options = Options {
            stop_after: Some(step),
        };
        storage::encrypt(&dir.join("puente.toml"), &options).unwrap();
        let key =
            key_in(&dir.join(replica_key::DEFAULT_KEY_FILE)).expect("the key is written first");
        // The old replica or the new one opens, whole.
        let plain = state_of(&dir, &AtRest::Plain);
        let new = state_of(&dir, &keyed(key));
        match step {
            Step::KeyWritten | Step::Exported | Step::Linked => {
                assert_eq!(plain.as_ref(), Ok(&expected), "{step:?}");
            }
            Step::Swapped | Step::Wiped => assert_eq!(new.as_ref(), Ok(&expected), "{step:?}"),
        }
        if step == Step::Exported {
            assert!(
                dir.join("data/puente.db.new").exists(),
                "the copy is left behind"
            );
        }
        if step == Step::Swapped {
            // The old plaintext is still there, and the daemon refuses to
            // start until the command has run again.
            assert!(dir.join("data/puente.db.old").exists());
            let out = Command::new(BIN)
                .args(["run", "--config"])
                .arg(dir.join("puente.toml"))
                .env("RUST_LOG", "off")
                .output()
                .unwrap();
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && e.contains("run it again"), "{e}");
        }
        let said = run_cli(&dir, "encrypt");
        assert!(said.contains("the replica is encrypted at rest"), "{said}");
        assert_encrypted(&dir, &expected);
    }

    // A clean run, then a daemon on the result.
    let dir = tmp.path().join("encrypted");
    copy_dir(&original, &dir);
    let said = run_cli(&dir, "encrypt");
    assert!(
        said.contains("wrote a new replica key") && said.contains("overwrote and removed"),
        "{said}"
    );
    let first_key = assert_encrypted(&dir, &expected);
    // Again: nothing to do.
    assert!(run_cli(&dir, "encrypt").contains("already encrypted"));

    for step in steps {
        let copy = tmp.path().join(format!("rekey-{step:?}"));
        copy_dir(&dir, &copy);
        let key_file = copy.join(replica_key::DEFAULT_KEY_FILE);
        let options = Options {
            stop_after: Some(step),
        };
        storage::rekey(&copy.join("puente.toml"), &options).unwrap();
        let mut next_file = key_file.as_os_str().to_owned();
        next_file.push(".new");
        let next = key_in(Path::new(&next_file)).expect("the new key is beside the old");
        assert_eq!(
            key_in(&key_file).unwrap().to_hex(),
            first_key.to_hex(),
            "old key kept"
        );
        let old = state_of(&copy, &keyed(first_key.clone()));
        let new = state_of(&copy, &keyed(next));
        match step {
            Step::KeyWritten | Step::Exported | Step::Linked => {
                assert_eq!(old.as_ref(), Ok(&expected), "{step:?}")
            }
            Step::Swapped | Step::Wiped => assert_eq!(new.as_ref(), Ok(&expected), "{step:?}"),
        }
        run_cli(&copy, "rekey");
        let key = assert_encrypted(&copy, &expected);
        assert_ne!(key.to_hex(), first_key.to_hex());
        assert!(state_of(&copy, &keyed(first_key.clone())).is_err());
    }

    // The converted node runs: status says so, and the rows are there.
    let mut lab_office = Office::from_dir(&dir, Path::new(BIN)).unwrap();
    lab_office.start().await.unwrap();
    let status = lab_office.status().await;
    assert!(status.at_rest.encrypted);
    assert_eq!(status.digest, expected.2.to_string());
    // A storage command is refused while the daemon holds the data dir,
    // and changes nothing.
    let before = std::fs::read(dir.join("data/puente.db")).unwrap();
    let e = storage::rekey(&dir.join("puente.toml"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("holds data dir"), "{e}");
    assert_eq!(std::fs::read(dir.join("data/puente.db")).unwrap(), before);
    lab_office.stop().unwrap();
}

#[test]
fn the_replicas_of_release_0_1_0_are_encrypted_with_their_digest_intact() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for office in ["tijuana", "san-diego"] {
        let dir = tmp.path().join(office);
        let out = Command::new(BIN)
            .args([
                "init",
                "--unencrypted",
                "--listen",
                "127.0.0.1:0",
                "--name",
                office,
                "--dir",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::copy(fixtures.join("schema.toml"), dir.join("schema.toml")).unwrap();
        std::fs::copy(
            fixtures.join(format!("{office}.db")),
            dir.join("data/puente.db"),
        )
        .unwrap();
        let said = run_cli(&dir, "encrypt");
        assert!(said.contains("same site id, head and digest"), "{said}");
        let cfg = NodeConfig::load(&dir.join("puente.toml")).unwrap();
        let (site, head, digest) = state_of(&dir, &replica_key::at_rest(&cfg).unwrap()).unwrap();
        let want = &expected[office];
        assert_eq!(site, want["site_id"].as_str().unwrap());
        assert_eq!(head, want["head"].as_u64().unwrap());
        assert_eq!(digest.to_string(), want["digest"].as_str().unwrap());
        let ids = ["res-1", "res-2", "res-3", "res-4", "ev-1", "ev-2", "ev-3"];
        let (hits, _, _) = scan::hits_in(&scan::replica_files(&cfg.data_dir), &ids);
        assert!(hits.is_empty(), "{hits:?}");
    }
    // The scan can see them in the originals.
    let original = fixtures.join("tijuana.db");
    let (hits, _, _) = scan::hits_in(&[original], &["res-1", "ev-1"]);
    assert_eq!(hits.len(), 2);
}
