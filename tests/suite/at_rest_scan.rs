//! A copied file tells nothing: two offices with encrypted replicas write
//! and sync shared values (event titles, arrival dates, row ids); a byte
//! scan of every replica file of both (database, WAL, shared memory) finds
//! none of them, while the daemons run (WAL live) and again after they
//! stop. A third office, made unencrypted on purpose and synced the same
//! values, is the positive control: the same scan finds them in its files.
//! The config, schema and logs are scanned separately: they hold no shared
//! value and no key (row ids appear in logs only at debug level and
//! below, which this test turns on to show it).

use crate::cluster;

use std::path::PathBuf;

use cluster::*;
use puente::lab::scan;
use puente::node::replica_key;

/// Shared values, each unlike anything else on disk.
const TITLES: [&str; 2] = ["Taller-de-costura-5521", "Volunteer-orientation-8817"];
const DATES: [&str; 2] = ["2026-12-03T16:45:00-08:00", "2026-10-17"];
const IDS: [&str; 3] = ["ev-scan-0001", "ev-scan-0002", "res-scan-0003"];

fn markers() -> Vec<&'static str> {
    TITLES.iter().chain(&DATES).chain(&IDS).copied().collect()
}

/// Hits of every marker in the replica files of `office`: (file, marker).
fn replica_hits(office: &Office) -> (Vec<(PathBuf, String)>, Vec<PathBuf>) {
    let files = scan::replica_files(&office.data_dir());
    let (hits, _, _) = scan::hits_in(&files, &markers());
    (hits, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shared_value_is_readable_in_any_replica_file_running_or_stopped() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false), ("control", false)]);
    // The control office: made unencrypted (as `init --unencrypted` would).
    let control = c[2].config.clone();
    let text = std::fs::read_to_string(&control).unwrap();
    let plain = text.replace("[storage]\nkey_file = \"keys/replica.key\"\n", "");
    assert_ne!(plain, text);
    std::fs::write(&control, plain).unwrap();
    c.link(0, 1);
    c.link(1, 2);
    c[0].log_filter = "trace".into();
    c.start_all().await;

    c[0].put(
        "outreach_events",
        IDS[0],
        &[("title", TITLES[0]), ("starts_at", DATES[0])],
    )
    .await;
    c[1].put("outreach_events", IDS[1], &[("title", TITLES[1])])
        .await;
    c[1].put("residents", IDS[2], &[("arrival_date", DATES[1])])
        .await;
    let all: Vec<&Office> = c.offices().iter().collect();
    wait_converged("three offices in sync", &all).await;
    let statuses = [
        c[0].status().await,
        c[1].status().await,
        c[2].status().await,
    ];
    assert!(statuses[0].at_rest.encrypted && statuses[1].at_rest.encrypted);
    assert!(!statuses[2].at_rest.encrypted);
    assert!(statuses[2].at_rest.warning.is_some());

    let keys: Vec<String> = [0, 1]
        .iter()
        .map(|&i| {
            replica_key::load_file(&c[i].dir.join(replica_key::DEFAULT_KEY_FILE))
                .unwrap()
                .to_hex()
                .to_string()
        })
        .collect();

    for moment in ["while the daemons run", "after they stopped"] {
        for i in [0, 1] {
            let (hits, files) = replica_hits(&c[i]);
            assert!(
                files
                    .iter()
                    .any(|f| f.to_string_lossy().ends_with("puente.db")),
                "{moment}: {files:?}"
            );
            if moment == "while the daemons run" {
                let wal = files
                    .iter()
                    .find(|f| f.to_string_lossy().ends_with("-wal"))
                    .unwrap_or_else(|| panic!("{}: no live WAL in {files:?}", c[i].name));
                assert!(std::fs::metadata(wal).unwrap().len() > 0, "the WAL is live");
            }
            assert!(hits.is_empty(), "{} {moment}: {hits:?}", c[i].name);
        }
        // The positive control sees every marker in its plain files.
        let (hits, _) = replica_hits(&c[2]);
        for m in markers() {
            assert!(
                hits.iter().any(|(_, n)| n == m),
                "{moment}: the scan did not see {m} in the control office: {hits:?}"
            );
        }
        if moment == "while the daemons run" {
            for o in &mut c.lab.offices {
                assert_eq!(o.stop().unwrap(), Some(0));
            }
        }
    }

    // Config and schema: no shared value, no key. Logs (tijuana at trace,
    // san-diego at debug): no title, date or key; row ids only because
    // debug and trace logging name the rows they touch.
    let secrets: Vec<&str> = markers()
        .into_iter()
        .chain(keys.iter().map(String::as_str))
        .collect();
    for i in [0, 1] {
        let o = &c[i];
        for file in [o.config.clone(), o.dir.join("schema.toml")] {
            let bytes = std::fs::read(&file).unwrap();
            for needle in &secrets {
                assert!(
                    !scan::contains(&bytes, needle),
                    "{} holds {needle}",
                    file.display()
                );
            }
        }
        let logs = std::fs::read(&o.log).unwrap();
        assert!(logs.len() > 1000, "{}: the log is there", o.name);
        for needle in TITLES.iter().chain(&DATES) {
            assert!(
                !scan::contains(&logs, needle),
                "{} log holds {needle}",
                o.name
            );
        }
        for key in &keys {
            assert!(
                !scan::contains(&logs, key),
                "{} log holds a replica key",
                o.name
            );
        }
    }
    let trace = std::fs::read(&c[0].log).unwrap();
    assert!(
        IDS.iter().any(|id| scan::contains(&trace, id)),
        "trace logging names rows (what the docs say)"
    );
}
