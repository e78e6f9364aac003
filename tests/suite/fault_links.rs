//! Bad links: loss, delay, jitter (reordering) and partitions, made by the
//! lab relay between real daemons on 127.0.0.1. Nothing acknowledged is
//! lost and everyone ends in the state last-writer-wins predicts.

use crate::cluster;

use std::time::Duration;

use cluster::model::{Model, site_of};
use cluster::*;
use puente::lab::relay::Conditions;
use rand::{Rng, SeedableRng};

const TABLES: [&str; 2] = ["outreach_events", "residents"];

fn lossy() -> Conditions {
    Conditions {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        loss: 0.05,
        duplicate: 0.01,
        ..Conditions::CLEAN
    }
}

async fn wait_all_connected(c: &Cluster) {
    for o in c.offices() {
        wait_for(&format!("{} connected to all peers", o.name), || async {
            o.client().status().await.is_ok_and(|s| {
                s.peers
                    .iter()
                    .all(|p| p.state == puente::node::status::PeerState::Connected)
            })
        })
        .await;
    }
}

/// One office's share of the random workload: updates of shared rows that
/// every office edits, sealed writes (Tijuana's to residents all offices
/// share, the others' to residents of their own: only Tijuana may change
/// one), rows created and deleted again, and a few deletes of shared rows
/// the others are still editing.
async fn workload(office: &Office, n: usize, seed: u64) -> Model {
    let site = site_of(office).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let shared = ["title", "description", "location"];
    let sealed = ["full_name", "phone"];
    let mut temporary: Vec<String> = Vec::new();
    for i in 0..n {
        let value = format!("{}-{i}", office.name);
        match rng.random_range(0..100) {
            0..55 => {
                let id = format!("ev-{}", rng.random_range(0..150));
                let k = rng.random_range(1..=3);
                let cols: Vec<&str> = shared.iter().copied().take(k).collect();
                model
                    .put(office, site, "outreach_events", &id, &cols, &value)
                    .await;
            }
            55..80 => {
                // Only Tijuana changes residents (the shipped schema's
                // rights); the other offices record new ones.
                let id = if office.name == "tijuana" {
                    format!("res-{}", rng.random_range(0..50))
                } else {
                    format!("res-{}-{i}", office.name)
                };
                let col = sealed[rng.random_range(0..2)];
                model
                    .put(office, site, "residents", &id, &[col, "case_notes"], &value)
                    .await;
            }
            80..99 => {
                if temporary.is_empty() || rng.random_bool(0.5) {
                    let id = format!("tmp-{}-{i}", office.name);
                    model
                        .put(office, site, "outreach_events", &id, &["title"], &value)
                        .await;
                    temporary.push(id);
                } else {
                    let id = temporary.swap_remove(rng.random_range(0..temporary.len()));
                    model.delete(office, "outreach_events", &id).await;
                }
            }
            _ => {
                let id = format!("ev-{}", rng.random_range(0..150));
                model.delete(office, "outreach_events", &id).await;
            }
        }
    }
    model
}

/// Merges per-office models into one: the office models share nothing but
/// must be combined by the same rule.
fn combine(models: Vec<Model>) -> Model {
    let mut all = Model::default();
    for m in models {
        all.absorb(m);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_offices_on_lossy_jittery_links_lose_nothing_and_converge() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false), ("ensenada", false)]);
    let relays = [
        c.link_via_relay(0, 1).await,
        c.link_via_relay(1, 2).await,
        c.link_via_relay(0, 2).await,
    ];
    for r in &relays {
        r.set(lossy());
    }
    c.start_all().await;
    wait_all_connected(&c).await;

    // 2,250 operations, 750 at each office at once: puts of shared and
    // sealed columns on overlapping rows, and deletes.
    let (a, b, d) = tokio::join!(
        workload(&c[0], 750, 1),
        workload(&c[1], 750, 2),
        workload(&c[2], 750, 3)
    );
    let model = combine(vec![a, b, d]);
    assert!(
        model.acked_puts + model.acked_deletes >= 2_000,
        "{} ops acknowledged",
        model.acked_puts + model.acked_deletes
    );
    assert!(model.acked_deletes > 20);

    wait_converged("three offices over lossy links", &[&c[0], &c[1], &c[2]]).await;
    // The links really were lossy (5 % of everything they carried).
    let dropped: u64 = relays.iter().map(|r| r.counts().dropped).sum();
    let carried: u64 = relays.iter().map(|r| r.counts().forwarded).sum::<u64>() + dropped;
    assert!(
        dropped >= 20 && dropped * 100 >= carried * 2,
        "the links lost only {dropped} of {carried} datagrams"
    );
    model.verify(&c[0], &TABLES, true).await;
    model.verify(&c[1], &TABLES, false).await;
    model.verify(&c[2], &TABLES, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_during_conflicting_bursts_heals_to_the_rule() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    let relay = c.link_via_relay(0, 1).await;
    c.start_all().await;
    wait_all_connected(&c).await;
    let (sa, sb) = (site_of(&c[0]).await, site_of(&c[1]).await);
    let mut model = Model::default();
    // Rows both sides know before the cut.
    for i in 0..20 {
        model
            .put(
                &c[0],
                sa,
                "outreach_events",
                &format!("ev-{i}"),
                &["title", "description"],
                "before",
            )
            .await;
    }
    wait_converged("before the partition", &[&c[0], &c[1]]).await;

    relay.cut();
    // The same ids and columns written on both sides of the cut, and
    // deletes on one side of rows the other side keeps editing.
    for round in 0..10 {
        for i in 0..20 {
            let id = format!("ev-{i}");
            model
                .put(
                    &c[0],
                    sa,
                    "outreach_events",
                    &id,
                    &["title", "description"],
                    &format!("tijuana {round}"),
                )
                .await;
            model
                .put(
                    &c[1],
                    sb,
                    "outreach_events",
                    &id,
                    &["title", "location"],
                    &format!("san diego {round}"),
                )
                .await;
        }
    }
    for i in [3, 11] {
        model
            .delete(&c[1], "outreach_events", &format!("ev-{i}"))
            .await;
    }
    model
        .put(
            &c[0],
            sa,
            "residents",
            "res-cut",
            &["full_name"],
            "Written During The Cut",
        )
        .await;
    let (a, b) = (c[0].status().await, c[1].status().await);
    assert_ne!(a.digest, b.digest, "the cut separated the offices");

    relay.heal();
    c[0].client().sync_now().await.unwrap();
    c[1].client().sync_now().await.unwrap();
    wait_converged("after healing", &[&c[0], &c[1]]).await;
    model.verify(&c[0], &TABLES, true).await;
    model.verify(&c[1], &TABLES, false).await;
}
