//! Key rotation: the schema's group loses one recipient and gains another
//! at both offices (a reload), `puente reseal` at Tijuana re-seals every
//! cell as a new version while staff keep writing (new rows, and rows the
//! reseal is going through, whose newer values must win), and once both offices
//! have synced and checkpointed, the removed identity opens not one sealed
//! cell on either replica (every cell tried) and the new identity opens
//! them all. Status counts the cells still sealed to an old set, without a
//! key. A reseal left unfinished resumes when the daemon starts again.

use crate::cluster;
use crate::support;

use std::path::Path;
use std::sync::Arc;

use cluster::model::{Model, site_of};
use cluster::*;
use puente::clock::{SystemClock, WallClock};
use puente::config::Schema;
use puente::seal::Keyring;
use puente::store::{Reveal, Store};

const ROWS: usize = 120;

/// Opens a stopped office's replica with `identities` and tries to open
/// every sealed cell: (opened, refused).
fn try_every_cell(office: &Office, identities: &[&Path]) -> (usize, usize) {
    let schema = Arc::new(Schema::load(&office.dir.join("schema.toml")).unwrap());
    let files: Vec<_> = identities.iter().map(|p| p.to_path_buf()).collect();
    let keyring = Arc::new(Keyring::load(&files).unwrap().0);
    let store = Store::open(
        &office.data_dir().join("puente.db"),
        puente::store::StoreOptions::new(
            schema.clone(),
            keyring,
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&office.at_rest().unwrap()),
    )
    .unwrap();
    let (mut opened, mut refused) = (0, 0);
    let rows = store.list("residents", None, 100_000, Reveal::No).unwrap();
    assert!(!rows.is_empty());
    let sealed: Vec<&str> = schema
        .table("residents")
        .unwrap()
        .columns
        .iter()
        .filter(|c| c.is_sealed())
        .map(|c| c.name.as_str())
        .collect();
    for row in rows {
        for column in &sealed {
            if matches!(row.cell(column), Some(puente::store::CellView::Sealed)) {
                match store.reveal_cell("residents", &row.id, column) {
                    Ok(Some(_)) => opened += 1,
                    Ok(None) => panic!("row {} vanished", row.id),
                    Err(_) => refused += 1,
                }
            }
        }
    }
    (opened, refused)
}

async fn old_keys(o: &Office) -> u64 {
    o.status()
        .await
        .sealed_to_old_keys
        .get("mx")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reseal_the_removed_identity_opens_nothing_on_either_replica() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.start_all().await;
    let mut model = Model::default();
    let (tj, sd) = (site_of(&c[0]).await, site_of(&c[1]).await);
    for i in 0..ROWS {
        let (office, site) = if i % 2 == 0 { (&c[0], tj) } else { (&c[1], sd) };
        model
            .put(
                office,
                site,
                "residents",
                &format!("r{i:04}"),
                &["full_name", "phone"],
                &format!("Persona {i}"),
            )
            .await;
    }
    wait_converged("the residents at both offices", &[&c[0], &c[1]]).await;
    assert_eq!(old_keys(&c[0]).await, 0);
    assert_eq!(old_keys(&c[1]).await, 0);

    // The positive control: before the rotation the old identity opens
    // every cell (so "opens nothing" below is not a broken try).
    let old_key = c[0].dir.join("keys/mx.key");
    c[1].stop().unwrap();
    assert_eq!(try_every_cell(&c[1], &[&old_key]), (2 * ROWS, 0));
    c[1].start().await.unwrap();

    // The rotation: a new key for the group, the old one removed from the
    // schema at both offices; Tijuana holds both identities until the
    // reseal is done.
    let new_key = c[0].dir.join("keys/mx-2027.key");
    let new_recipient =
        puente::seal::generate_identity_file(&new_key, jiff::Timestamp::now()).unwrap();
    let old_recipient = std::fs::read_to_string(&old_key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap();
    let schema = c.lab.schema_text.replace(&old_recipient, &new_recipient);
    assert_ne!(schema, c.lab.schema_text);
    for o in [&c[0], &c[1]] {
        std::fs::write(o.dir.join("schema.toml"), &schema).unwrap();
    }
    let config = std::fs::read_to_string(&c[0].config).unwrap();
    std::fs::write(
        &c[0].config,
        config.replace(
            "identities = [\"keys/mx.key\"]",
            "identities = [\"keys/mx.key\", \"keys/mx-2027.key\"]",
        ),
    )
    .unwrap();
    for o in [&c[0], &c[1]] {
        o.reload().unwrap();
    }
    // Every cell is sealed to the old set now, and both offices can tell
    // (San Diego without any key).
    for o in [&c[0], &c[1]] {
        wait_for("the old-key count after the reload", || async {
            old_keys(o).await == 2 * ROWS as u64
        })
        .await;
    }
    wait_converged("reconnected after the reload", &[&c[0], &c[1]]).await;

    // San Diego holds no identity: it cannot reseal.
    let out = std::process::Command::new(BIN)
        .args(["reseal", "--config", c[1].config.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("holds no identity of group `mx`"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");

    // The reseal, while both offices keep writing.
    let writer = {
        let (a, b) = (c[0].client(), c[1].client());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..20 {
                let value = format!("Nueva {i}");
                let cells = vec![(
                    "full_name".to_string(),
                    puente::value::Plaintext::text(&value),
                )];
                let id = format!("new-tj-{i}");
                let w = a.put_row("residents", &id, cells.clone()).await.unwrap();
                acked.push((0, id, value.clone(), w));
                let id = format!("new-sd-{i}");
                let w = b.put_row("residents", &id, cells).await.unwrap();
                acked.push((1, id, value, w));
                // And a row the reseal is going through: the staff's newer
                // value must win over the resealed copy of the older one.
                let value = format!("Cambiado {i}");
                let cells = vec![(
                    "full_name".to_string(),
                    puente::value::Plaintext::text(&value),
                )];
                let id = format!("r{:04}", i * 6);
                let w = a.put_row("residents", &id, cells).await.unwrap();
                acked.push((0, id, value, w));
            }
            acked
        })
    };
    let out = puente(&["reseal", "--config", c[0].config.to_str().unwrap()]);
    assert!(out.contains("sealed to its current recipients"), "{out}");
    for (office, id, value, w) in writer.await.unwrap() {
        let site = if office == 0 { tj } else { sd };
        model.record_put(site, "residents", &id, &["full_name"], &value, &w);
    }
    let r = c[0].status().await.reseal.unwrap();
    assert_eq!((r.state.as_str(), r.failed), ("done", 0), "{r:?}");
    // Every cell sealed to the old set is resealed, or left because staff
    // wrote a newer value meanwhile (sealed to the new set already): a cell
    // the writer updated before the reseal counted its work is not in the
    // total; one updated after it was counted is skipped, or no longer
    // found stale and then in neither count (the total is not counted
    // again). So at most the 20 cells the writer touched are not resealed;
    // the identity checks below show every cell ends sealed to the new set.
    assert!(
        (2 * ROWS as u64 - 20..=2 * ROWS as u64).contains(&r.total),
        "{r:?}"
    );
    assert!(r.done + r.skipped <= r.total, "{r:?}");
    assert!(r.done + 20 >= 2 * ROWS as u64, "{r:?}");
    assert!(
        r.skipped <= 20,
        "only the rows staff updated are skipped: {r:?}"
    );
    wait_converged("the resealed versions everywhere", &[&c[0], &c[1]]).await;
    assert_eq!(old_keys(&c[0]).await, 0);
    assert_eq!(old_keys(&c[1]).await, 0);
    // Staff see the same values, revealed with the new key only.
    std::fs::write(
        &c[0].config,
        config.replace("keys/mx.key", "keys/mx-2027.key"),
    )
    .unwrap();
    c[0].reload().unwrap();
    wait_for("the old identity dropped", || async {
        c[0].status().await.reload.is_some_and(|r| {
            r.messages
                .iter()
                .any(|m| m.contains("identities: 1 file(s) now (2 before)"))
        })
    })
    .await;
    model.verify(&c[0], &["residents"], true).await;

    c[0].stop().unwrap();
    c[1].stop().unwrap();
    for o in [&c[0], &c[1]] {
        let (opened, refused) = try_every_cell(o, &[&old_key]);
        assert_eq!(
            opened, 0,
            "{}: the removed identity still opens cells",
            o.name
        );
        assert_eq!(refused, 2 * ROWS + 40, "{}", o.name);
        assert_eq!(
            try_every_cell(o, &[&new_key]),
            (2 * ROWS + 40, 0),
            "{}",
            o.name
        );
        assert_replica_sound(o, &schema);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_reseal_resumes_when_the_node_starts_again() {
    use support::*;
    let old = schema(&[TEST_RECIPIENT]);
    let mut r = replica("tijuana", old.clone(), Some(TEST_IDENTITY), 1_000);
    for i in 0..50 {
        r.store
            .put(
                "residents",
                &format!("r{i}"),
                cells(&[("full_name", "Rosa"), ("phone", "555")]),
            )
            .unwrap();
    }
    // The group gains the recovery key; a reseal starts and does one step,
    // then the process dies.
    let both = schema(&[TEST_RECIPIENT, RECOVERY_RECIPIENT]);
    r.store
        .reload_schema(both.clone(), r.store.keyring().clone())
        .unwrap();
    assert_eq!(r.store.sealed_to_old_keys()["mx"], 100);
    r.store.set_pending_reseal(&["mx".to_string()]).unwrap();
    let batch = r
        .store
        .reseal_read("mx", &Default::default(), 10, 1_000)
        .unwrap();
    let (sealed, failed) =
        puente::store::reseal::seal_batch(&both, r.store.keyring(), "mx", &batch, 2);
    assert!(failed.is_empty());
    let written = r.store.reseal_write(sealed).unwrap();
    assert_eq!((written.written, written.skipped), (20, 0));
    assert_eq!(r.store.sealed_to_old_keys()["mx"], 80);
    let path = r.store.path().to_path_buf();
    let keyring = r.store.keyring().clone();
    drop(r.store);

    // The node starts again on the same replica: the reseal goes on.
    let store = Store::open(
        &path,
        puente::store::StoreOptions::new(
            both.clone(),
            keyring,
            r.clock.clone() as Arc<dyn WallClock>,
        ),
    )
    .unwrap();
    assert_eq!(store.pending_reseal().unwrap(), ["mx"]);
    let config =
        puente::config::NodeConfig::parse(&r.dir.path().join("puente.toml"), ADMIN_NODE_CONFIG)
            .unwrap();
    let node = puente::node::Node::new(
        config,
        both,
        puente::node::fingerprint::Fingerprint([0; 32]),
        r.clock.clone() as Arc<dyn WallClock>,
        store,
    );
    let resumed = node.resume_reseal().await.unwrap().unwrap();
    assert_eq!((resumed.total, resumed.state.as_str()), (80, "running"));
    let started = std::time::Instant::now();
    while node.long_work.reseal().unwrap().state == "running" {
        assert!(started.elapsed() < DEADLINE);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let done = node.long_work.reseal().unwrap();
    assert_eq!(
        (done.state.as_str(), done.done, done.failed),
        ("done", 80, 0),
        "{done:?}"
    );
    let (left, pending) = node
        .with_store(|s| (s.sealed_to_old_keys()["mx"], s.pending_reseal().unwrap()))
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(pending.is_empty());
    assert!(node.resume_reseal().await.unwrap().is_none());
}

#[test]
fn a_reseal_is_only_for_an_office_that_may_update_the_groups_columns() {
    use support::*;
    // The shipped rights: only Tijuana updates residents' sealed columns.
    // San Diego holding the identity still may not re-seal them: every
    // other office would hold its new versions for review.
    let s = schema(&[TEST_RECIPIENT]);
    let tj = replica("tijuana", s.clone(), Some(TEST_IDENTITY), 1_000);
    let sd = replica("san-diego", s.clone(), Some(TEST_IDENTITY), 2_000);
    assert!(tj.store.reseal_forbidden("mx").is_empty());
    let refused = sd.store.reseal_forbidden("mx");
    assert!(
        refused.contains(&"residents.full_name".to_string()),
        "{refused:?}"
    );
}
