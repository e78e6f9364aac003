//! The recovery drill: Tijuana's machine is lost entirely — data dir,
//! config and keys. A new Tijuana node is made with `puente init`, pinned
//! again at San Diego (a reload there, no restart), and given the offline
//! recovery identity. After sync it holds everything and reveals every
//! sealed value, those the old Tijuana wrote and those San Diego sealed.

use crate::cluster;
use crate::support;

use std::path::Path;

use cluster::model::{Model, site_of};
use cluster::*;
use support::{RECOVERY_IDENTITY, RECOVERY_RECIPIENT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_office_is_rebuilt_from_its_peer_and_the_recovery_key() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    // The group's recipients: Tijuana's key and the offline recovery key.
    let schema = c
        .lab
        .schema_text
        .replace("mx = [\"", &format!("mx = [\"{RECOVERY_RECIPIENT}\", \""));
    assert_ne!(schema, c.lab.schema_text);
    for o in c.offices() {
        std::fs::write(o.dir.join("schema.toml"), &schema).unwrap();
    }
    c.link(0, 1);
    c.start_all().await;
    let mut model = Model::default();
    let (tj, sd) = (site_of(&c[0]).await, site_of(&c[1]).await);
    for i in 0..30 {
        let id = format!("r{i:03}");
        let (office, site) = if i % 3 == 0 { (&c[1], sd) } else { (&c[0], tj) };
        model
            .put(
                office,
                site,
                "residents",
                &id,
                &["full_name", "case_notes"],
                &format!("Persona {i}"),
            )
            .await;
        model
            .put(
                office,
                site,
                "outreach_events",
                &format!("e{i:03}"),
                &["title"],
                &format!("Taller {i}"),
            )
            .await;
    }
    wait_converged("both offices", &[&c[0], &c[1]]).await;

    // The machine is lost: daemon, data dir, config, keys.
    c[0].kill9();
    std::fs::remove_dir_all(&c[0].dir).unwrap();

    // A new Tijuana: a new node, the same schema, the recovery identity.
    let dir = c.path().join("tijuana-new");
    let port = free_ports(1)[0];
    puente(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "tijuana",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    std::fs::write(dir.join("schema.toml"), &schema).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    puente::node::fsutil::create_new_with_mode(
        &dir.join("keys/recovery.key"),
        format!("{RECOVERY_IDENTITY}\n").as_bytes(),
        0o600,
    )
    .unwrap();
    let config = dir.join("puente.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[privacy]\nidentities = [\"keys/recovery.key\"]\n");
    std::fs::write(&config, text).unwrap();
    let fingerprint = puente(&["id", "--config", config.to_str().unwrap()]);
    let mut fresh = Office::from_dir(&dir, Path::new(BIN)).unwrap();
    fresh.log_filter = "info,puente=debug".into();
    // Each office pins the other again; San Diego takes it with a reload.
    puente(&[
        "peer",
        "add",
        "--config",
        config.to_str().unwrap(),
        "--name",
        "san-diego",
        "--fingerprint",
        &c[1].fingerprint.to_string(),
        "--address",
        &c[1].addr().to_string(),
    ]);
    puente(&[
        "peer",
        "add",
        "--config",
        c[1].config.to_str().unwrap(),
        "--name",
        "tijuana",
        "--fingerprint",
        fingerprint.trim(),
        "--address",
        &format!("127.0.0.1:{port}"),
    ]);
    c[1].reload().unwrap();
    fresh.start().await.unwrap();
    wait_converged("the new tijuana caught up", &[&fresh, &c[1]]).await;

    let s = fresh.status().await;
    assert_eq!(s.can_unseal, ["mx"]);
    assert_eq!(s.rows["residents"], 30);
    model
        .verify(&fresh, &["residents", "outreach_events"], true)
        .await;
    model
        .verify(&c[1], &["residents", "outreach_events"], false)
        .await;
    fresh.stop().unwrap();
}
