//! kill -9 at random points during a 50,000-row catch-up, ten times: the
//! office restarts, catches up, loses no acknowledged write, and SQLite's
//! integrity check and the incremental digest both hold. And SIGTERM
//! during a catch-up: the peer is told `shutting_down`, the batch being
//! applied is finished with its cursor, and the catch-up resumes from it.

use crate::cluster;

use std::time::Duration;

use cluster::model::{Model, site_of};
use cluster::*;
use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor, PeerRef};
use puente::value::Value;
use rand::{Rng, SeedableRng};

const ROWS: usize = 50_000;

/// Fills an office's replica (before it starts, with its key) with `rows`
/// outreach events' free-text columns, as if a third office had sent them.
fn fill(office: &Office, rows: usize) {
    let mut store = office.open_store().unwrap();
    let schema = store.schema().clone();
    let table = schema.table_index("outreach_events").unwrap() as u16;
    let def = schema.table("outreach_events").unwrap();
    let columns: Vec<u16> = ["title", "description", "location"]
        .iter()
        .map(|c| def.column_index(c).unwrap() as u16)
        .collect();
    assert!(
        store.cipher_version().is_some(),
        "lab offices are encrypted"
    );
    let origin = SiteId([42; 16]);
    let changes = (0..rows)
        .map(|i| Change::Row {
            table,
            id: format!("bulk-{i:06}"),
            cells: columns
                .iter()
                .map(|&column| CellChange {
                    column,
                    hlc: Hlc::from_parts(1_700_000_000_000, (i % 60_000) as u16),
                    site: 0,
                    // About 600 bytes a cell: a case-file sized row, so the
                    // catch-up takes long enough to be interrupted.
                    value: Value::Text(format!("value {i} of column {column} {}", "x".repeat(580))),
                })
                .collect(),
        })
        .collect();
    let peer = PeerRef {
        site: origin,
        name: "origin".into(),
    };
    store
        .apply(
            &peer,
            Batch {
                sites: vec![origin],
                changes,
            },
            Cursor::at(1),
        )
        .unwrap();
}

/// Only San Diego (office 1) dials; Tijuana (office 0) accepts it, so each
/// row received is counted once (when both dial, both sessions of a
/// restart may start a catch-up before the duplicate closes, and rows can
/// arrive twice: harmless, but it would blur the count). Both dialling is
/// the last test.
fn san_diego_dials(c: &Cluster) {
    c.pin(1, 0);
    puente::config::node::add_peer(&c[0].config, &c[1].name, &c[1].fingerprint, None).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_catch_up_ten_times_loses_nothing() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    san_diego_dials(&c);
    fill(&c[0], ROWS);
    c[0].start().await.unwrap();
    let tijuana = site_of(&c[0]).await;
    let mut model = Model::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261126);
    let mut killed_mid_catch_up = 0;
    for round in 0..10 {
        c[1].start().await.unwrap();
        let san_diego = site_of(&c[1]).await;
        model
            .put(
                &c[1],
                san_diego,
                "residents",
                &format!("acked-sd-{round}"),
                &["status"],
                "intake",
            )
            .await;
        model
            .put(
                &c[0],
                tijuana,
                "residents",
                &format!("acked-tj-{round}"),
                &["status"],
                "arrived",
            )
            .await;
        // Until the catch-up runs again in this run of San Diego (a
        // restarted office may take a while to get its session back)...
        wait_for("san diego receiving the catch-up again", || async {
            c[1].client().status().await.is_ok_and(|s| {
                s.peers[0].counters.rows_in > 0 || s.rows["outreach_events"] as usize == ROWS
            })
        })
        .await;
        // ...then a random crash point (this is not a wait for sync: the
        // kill is meant to land at an arbitrary moment of the catch-up).
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        // Whether this kill lands mid catch-up, from both sides' status
        // just before it: San Diego (in this run) has received rows over a
        // session and still lacks some, and Tijuana still owes it changes.
        // A status that cannot be read counts as not mid catch-up.
        let (sd, tj) = (c[1].client().status().await, c[0].client().status().await);
        let mid_catch_up = match (&sd, &tj) {
            (Ok(sd), Ok(tj)) => {
                let received = sd.peers[0].counters.rows_in > 0;
                let lacking = (sd.rows["outreach_events"] as usize) < ROWS;
                let owed = tj.peers[0].we_owe.is_some_and(|n| n > 0);
                received && lacking && owed
            }
            _ => false,
        };
        eprintln!(
            "round {round}: {} rows at san-diego ({} received in this run), tijuana owes {:?}: {}",
            sd.as_ref().map_or(0, |s| s.rows["outreach_events"]),
            sd.as_ref().map_or(0, |s| s.peers[0].counters.rows_in),
            tj.as_ref().ok().and_then(|s| s.peers[0].we_owe),
            if mid_catch_up {
                "killed mid catch-up"
            } else {
                "not mid catch-up"
            }
        );
        killed_mid_catch_up += u32::from(mid_catch_up);
        c[1].kill9();
    }
    assert!(
        killed_mid_catch_up >= 5,
        "only {killed_mid_catch_up} of 10 kills landed during the catch-up"
    );

    c[1].start().await.unwrap();
    wait_converged("after ten crashes", &[&c[0], &c[1]]).await;
    for o in c.offices() {
        model.verify(o, &["residents"], false).await;
        assert_eq!(
            o.client().status().await.unwrap().rows["outreach_events"],
            ROWS as u64,
            "{}",
            o.name
        );
    }

    // The replica that was killed ten times is sound.
    assert_eq!(c[1].stop().unwrap(), Some(0));
    assert_replica_sound(&c[1], &c.lab.schema_text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_catch_up_closes_with_a_code_and_resumes_from_the_cursor() {
    const ROWS: usize = 20_000;
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    san_diego_dials(&c);
    fill(&c[0], ROWS);
    c.start_all().await;
    wait_for("san diego receiving the catch-up", || async {
        c[1].client()
            .status()
            .await
            .is_ok_and(|s| s.peers[0].counters.rows_in > 0)
    })
    .await;
    let stopping = std::time::Instant::now();
    assert_eq!(c[1].stop().unwrap(), Some(0), "exit 0 on SIGTERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        stopping.elapsed()
    );

    // Tijuana was told why: the session closed with `shutting_down`, which
    // it does not count as an error.
    wait_for("tijuana sees the session end", || async {
        c[0].logs()
            .lines()
            .any(|l| l.contains("session ended") && l.contains("peer=\"san-diego\""))
    })
    .await;
    let logs = c[0].logs();
    let ended: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("session ended") && l.contains("peer=\"san-diego\""))
        .collect();
    assert!(
        ended
            .iter()
            .all(|l| l.contains("the peer closed the connection")
                && l.contains("is shutting down (shutting_down)")),
        "{ended:#?}"
    );
    let tj = c[0].status().await;
    assert!(tj.peers[0].counters.errors.is_empty(), "{:?}", tj.peers[0]);
    assert_eq!(tj.peers[0].last_error, None);

    // The replica San Diego left is sound and its WAL checkpointed.
    assert_replica_sound(&c[1], &c.lab.schema_text);
    let wal = c[1].data_dir().join("puente.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL was not checkpointed"
    );
    // What it holds was applied with its cursor: once restarted, exactly
    // the rest comes over the wire.
    let held = {
        let store = c[1].open_store().unwrap();
        let stats = store.stats().unwrap();
        stats
            .rows
            .iter()
            .find(|(t, _)| t == "outreach_events")
            .map(|(_, n)| *n as usize)
            .unwrap()
    };
    assert!(
        0 < held && held < ROWS,
        "the SIGTERM did not land mid catch-up ({held} rows held)"
    );
    c[1].start().await.unwrap();
    wait_converged("after the restart", &[&c[0], &c[1]]).await;
    let sd = c[1].status().await;
    assert_eq!(sd.rows["outreach_events"] as usize, ROWS);
    assert_eq!(
        sd.peers[0].counters.rows_in as usize,
        ROWS - held,
        "rows sent again or skipped after SIGTERM ({held} held): {:?}",
        sd.peers[0].counters
    );
}

/// When both offices dial and the survivor's kept connection is its own
/// outbound one to the killed office, the restarted office's new
/// connection must still be admitted at once: a peer dials only when it
/// has no connection, so a connection from it long after the live one came
/// up replaces that one (`sync::policy::DUPLICATE_RACE`). Before that rule
/// the survivor refused it as a duplicate until the dead one timed out,
/// about 15 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_catch_up_when_both_dial_gets_the_session_back_at_once() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    fill(&c[0], ROWS);
    c[0].start().await.unwrap();
    for round in 0..6 {
        c[1].start().await.unwrap();
        let started = std::time::Instant::now();
        loop {
            let receiving = c[1]
                .client()
                .status()
                .await
                .is_ok_and(|s| s.peers[0].counters.rows_in > 0);
            if receiving {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "round {round}: the restarted office got no session within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c[1].kill9();
    }
}
