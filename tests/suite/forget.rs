//! Forgetting a resident: after `rows delete`, once both offices have
//! synced and checkpointed (`puente checkpoint`, which folds the WAL into
//! the database and truncates it), no byte of that resident's shared
//! values or sealed ciphertexts — the current versions and the ones they
//! replaced — is left in any file of either replica (database, WAL,
//! shared memory). The offices are unencrypted here, so that a byte scan
//! can see values at all: the same scan finds every one of them before the
//! delete, and another resident's afterwards (positive controls).

use crate::cluster;

use std::path::Path;

use cluster::*;
use puente::lab::scan::files_under;

// Shared values a byte scan can tell apart: arrival dates no other row of
// a fresh replica holds (residents' shared columns are typed).
const GONE_BEFORE: &str = "1907-03-17";
const GONE_NOW: &str = "1911-05-23";
const KEPT: &str = "1915-09-29";

/// The sealed ciphertext stored for residents/`id`/full_name (read from
/// the running office's plain replica).
fn ciphertext(office: &Office, id: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open_with_flags(
        office.data_dir().join("puente.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT full_name FROM residents WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

/// The files under `dir` holding `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .map(|f| f.display().to_string())
        .collect()
}

/// A distinctive piece of an age file: its last 48 bytes (payload and tag).
fn tail(c: &[u8]) -> Vec<u8> {
    c[c.len() - 48..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_resident_leaves_no_byte_in_either_replica_after_sync_and_checkpoint() {
    let mut c = Cluster::new_unencrypted(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.start_all().await;
    let gone = "0b6c1d2e-7731-4f00-9a11-5e2f3c4d5e6f";
    let kept = "4a5b6c7d-7731-4e00-8b22-6f3e4d5c6b7a";
    c[0].put(
        "residents",
        gone,
        &[
            ("arrival_date", GONE_BEFORE),
            ("full_name", "Primera Version"),
        ],
    )
    .await;
    wait_converged("the first version everywhere", &[&c[0], &c[1]]).await;
    let first = ciphertext(&c[0], gone);
    c[0].put(
        "residents",
        gone,
        &[("arrival_date", GONE_NOW), ("full_name", "Segunda Version")],
    )
    .await;
    c[1].put(
        "residents",
        kept,
        &[("arrival_date", KEPT), ("full_name", "Se Queda")],
    )
    .await;
    wait_converged("both residents everywhere", &[&c[0], &c[1]]).await;
    let second = ciphertext(&c[0], gone);
    let control = ciphertext(&c[1], kept);
    assert_eq!(
        ciphertext(&c[1], gone),
        second,
        "replicas hold the same bytes"
    );
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("old shared value", GONE_BEFORE.as_bytes().to_vec()),
        ("shared value", GONE_NOW.as_bytes().to_vec()),
        ("old ciphertext", tail(&first)),
        ("ciphertext", tail(&second)),
    ];
    // Before the delete the scan sees all of it (in the database or WAL).
    for o in [&c[0], &c[1]] {
        for (what, needle) in &needles {
            assert!(
                !holding(&o.data_dir(), needle).is_empty(),
                "{}: {what} not seen before the delete",
                o.name
            );
        }
    }

    // Tijuana deletes the row (the shipped rights let only Tijuana delete
    // residents); both offices sync and checkpoint.
    puente(&[
        "rows",
        "delete",
        "residents",
        gone,
        "--config",
        c[0].config.to_str().unwrap(),
    ]);
    wait_converged("the delete everywhere", &[&c[0], &c[1]]).await;
    for o in [&c[0], &c[1]] {
        let out = puente(&["checkpoint", "--config", o.config.to_str().unwrap()]);
        assert!(out.contains("truncated"), "{out}");
        let wal = o.data_dir().join("puente.db-wal");
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    }
    for o in [&c[0], &c[1]] {
        for (what, needle) in &needles {
            let found = holding(&o.data_dir(), needle);
            assert!(
                found.is_empty(),
                "{}: the deleted resident's {what} is still in {found:?}",
                o.name
            );
        }
        // The other resident is still there, bytes and all.
        assert!(
            !holding(&o.data_dir(), KEPT.as_bytes()).is_empty(),
            "{}",
            o.name
        );
        assert!(
            !holding(&o.data_dir(), &tail(&control)).is_empty(),
            "{}",
            o.name
        );
    }
    // And after a stop (the daemon checkpoints on the way out) nothing
    // comes back.
    c[0].stop().unwrap();
    c[1].stop().unwrap();
    for o in [&c[0], &c[1]] {
        for (what, needle) in &needles {
            assert!(
                holding(&o.data_dir(), needle).is_empty(),
                "{}: {what}",
                o.name
            );
        }
    }
}
