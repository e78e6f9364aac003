//! kill -9 at random points during a 50,000-row catch-up, ten times: the
//! office restarts, catches up, loses no acknowledged write, and SQLite's
//! integrity check and the incremental digest both hold.

mod cluster;
mod support;

use std::time::Duration;

use cluster::model::{Model, site_of};
use cluster::*;
use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor, PeerRef};
use puente::value::Value;
use rand::{Rng, SeedableRng};

const ROWS: usize = 50_000;

/// Fills an office's replica (before it starts, with its key) with `ROWS`
/// residents' shared columns, as if a third office had sent them.
fn fill(office: &Office) {
    let mut store = office.open_store().unwrap();
    let schema = store.schema().clone();
    let table = schema.table_index("residents").unwrap() as u16;
    let def = schema.table("residents").unwrap();
    let columns: Vec<u16> = ["arrival_date", "household_size", "status"]
        .iter()
        .map(|c| def.column_index(c).unwrap() as u16)
        .collect();
    assert!(
        store.cipher_version().is_some(),
        "lab offices are encrypted"
    );
    let origin = SiteId([42; 16]);
    let changes = (0..ROWS)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_catch_up_ten_times_loses_nothing() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    fill(&c[0]);
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
                "outreach_events",
                &format!("acked-sd-{round}"),
                &["title"],
                "acknowledged in San Diego",
            )
            .await;
        model
            .put(
                &c[0],
                tijuana,
                "outreach_events",
                &format!("acked-tj-{round}"),
                &["title"],
                "acknowledged in Tijuana",
            )
            .await;
        // A random crash point (this is not a wait for sync: the kill is
        // meant to land at an arbitrary moment of the catch-up).
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..300))).await;
        let before_kill = c[1]
            .client()
            .status()
            .await
            .map(|s| s.rows["residents"])
            .unwrap_or(0);
        if (before_kill as usize) < ROWS {
            killed_mid_catch_up += 1;
        }
        c[1].kill9();
    }
    assert!(
        killed_mid_catch_up >= 5,
        "only {killed_mid_catch_up} kills landed during the catch-up"
    );

    c[1].start().await.unwrap();
    wait_converged("after ten crashes", &[&c[0], &c[1]]).await;
    for o in c.offices() {
        model.verify(o, &["outreach_events"], false).await;
        assert_eq!(
            o.client().status().await.unwrap().rows["residents"],
            ROWS as u64,
            "{}",
            o.name
        );
    }

    // The replica that was killed ten times is sound.
    assert_eq!(c[1].stop().unwrap(), Some(0));
    assert_replica_sound(&c[1], &c.lab.schema_text);
}
