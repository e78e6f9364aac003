//! Backups taken while the daemon runs and syncs, and restores that lose
//! nothing: Tijuana is restored from a backup taken before 500 more writes
//! (some at each office), and gets every one of them back — San Diego's,
//! and its own written after the backup under its old site id — with
//! equal digests at both offices. Also: the backup of an encrypted replica
//! stays encrypted, an offsite (age) backup restores on a machine that
//! never held the replica key, and `backup verify` checks and describes.

use crate::cluster;

use std::path::Path;
use std::process::Command;

use cluster::model::{Model, site_of};
use cluster::*;
use puente::lab::scan::{Control, Scan, plant_control};

/// Runs puente, expecting failure: its stderr.
fn fails(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success(), "puente {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config(o: &Office) -> &str {
    o.config.to_str().unwrap()
}

/// `count` puts of outreach titles at `office` (ids `prefix-N`), recorded
/// in the model.
async fn puts(model: &mut Model, office: &Office, prefix: &str, count: usize, value: &str) {
    let site = site_of(office).await;
    for i in 0..count {
        model
            .put(
                office,
                site,
                "outreach_events",
                &format!("{prefix}-{i:04}"),
                &["title", "location"],
                &format!("{value} {i}"),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_office_gets_back_everything_newer_than_its_backup() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.start_all().await;
    let mut model = Model::default();
    puts(&mut model, &c[0], "before-tj", 40, "Taller antes").await;
    puts(&mut model, &c[1], "before-sd", 40, "Workshop before").await;
    let tj_site = site_of(&c[0]).await;
    // A sealed value written at Tijuana before the backup.
    model
        .put(
            &c[0],
            tj_site,
            "residents",
            "r-before",
            &["full_name"],
            "Rosa Antes Sellada",
        )
        .await;
    wait_converged("both offices before the backup", &[&c[0], &c[1]]).await;

    // The backup, taken while both daemons run and sync.
    let file = c.path().join("tijuana-1.backup");
    let out = puente(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(out.contains("encrypted with the replica key"), "{out}");
    let at_backup = c[0].status().await;
    // Encrypted like the replica: no shared value in its bytes (the
    // scanner's control proves it reads the folder).
    let folder = c.path().join("backups-scan");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&file, folder.join("tijuana-1.backup")).unwrap();
    Scan::forbidding(&["Taller antes 7", "Workshop before", "before-tj-0001"])
        .control(plant_control(&folder).unwrap())
        .check(&folder)
        .unwrap();
    let verified = puente(&[
        "backup",
        "verify",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(verified.contains("is sound"), "{verified}");
    assert!(
        verified.contains(&format!("head       {}\n", at_backup.head)),
        "{verified}"
    );

    // 500 more writes, some at each office: new rows, updates of rows the
    // backup holds, and deletes.
    let before = model.acked_puts + model.acked_deletes;
    puts(&mut model, &c[0], "after-tj", 225, "Taller despues").await;
    puts(&mut model, &c[1], "after-sd", 224, "Workshop after").await;
    for i in 0..20 {
        model
            .put(
                &c[0],
                tj_site,
                "outreach_events",
                &format!("before-sd-{i:04}"),
                &["title"],
                "cambiado en Tijuana",
            )
            .await;
        let sd = site_of(&c[1]).await;
        model
            .put(
                &c[1],
                sd,
                "outreach_events",
                &format!("before-tj-{i:04}"),
                &["title"],
                "changed in San Diego",
            )
            .await;
    }
    for i in 30..35 {
        model
            .delete(&c[0], "outreach_events", &format!("before-sd-{i:04}"))
            .await;
        model
            .delete(&c[1], "outreach_events", &format!("before-tj-{i:04}"))
            .await;
    }
    model
        .put(
            &c[0],
            tj_site,
            "residents",
            "r-after",
            &["full_name"],
            "Ana Despues Sellada",
        )
        .await;
    // And one that needs Tijuana's rights: only Tijuana updates a resident.
    model
        .put(
            &c[0],
            tj_site,
            "residents",
            "r-before",
            &["full_name"],
            "Rosa Cambiada Sellada",
        )
        .await;
    assert_eq!(model.acked_puts + model.acked_deletes - before, 501);
    wait_converged("both offices after 500 writes", &[&c[0], &c[1]]).await;

    // Tijuana's disk dies: the daemon is gone, its replica replaced by the
    // backup.
    c[0].kill9();
    let refused = fails(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(refused.trim().lines().count(), 1, "{refused}");
    let restored = puente(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
        "--force",
    ]);
    assert!(restored.contains("new site id"), "{restored}");
    c[0].start().await.unwrap();
    let now = c[0].status().await;
    assert_ne!(
        now.site_id, at_backup.site_id,
        "a restore starts a new history"
    );
    assert_eq!(now.retired_sites, vec![at_backup.site_id.clone()]);
    // Tijuana's own writes made after the backup come back from San Diego
    // stamped with the site id it retired: no replica can tell them from
    // a forgery by a tampered peer, so that id keeps no office's rights.
    // What every office may do applies (new events, their updates and
    // deletes, a new resident); the update of a resident, which needs
    // Tijuana's right, is held, saying so, and the admin accepts it
    // (`puente held accept`). Nothing else is held.
    let client = c[0].client();
    let started = std::time::Instant::now();
    let mut accepted = 0;
    loop {
        for h in client.list_held(false).await.unwrap().held {
            assert_eq!(h.origin, "a site id this office retired", "{h:?}");
            assert_eq!(h.origin_site, at_backup.site_id, "{h:?}");
            assert!(h.why.contains("before it was restored"), "{}", h.why);
            client.decide_held(h.id, true).await.unwrap();
            accepted += 1;
        }
        if converged(&[&c[0], &c[1]]).await {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "tijuana did not catch up ({accepted} accepted)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The one update of a resident; the other 250 applied by themselves.
    assert_eq!(accepted, 1);
    wait_converged("tijuana restored and caught up", &[&c[0], &c[1]]).await;

    for office in [&c[0], &c[1]] {
        model.verify(office, &["outreach_events"], false).await;
    }
    // Tijuana still opens its sealed values, those written after the
    // backup under its retired site id included.
    model.verify(&c[0], &["residents"], true).await;
    let (a, b) = (c[0].status().await, c[1].status().await);
    assert_eq!(a.digest, b.digest);
    c[0].stop().unwrap();
    c[1].stop().unwrap();
    let schema = c.lab.schema_text.clone();
    assert_replica_sound(&c[0], &schema);
    assert_replica_sound(&c[1], &schema);
}

/// Every file of a data dir, with its bytes (to prove nothing changed).
fn snapshot_dir(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = puente::lab::scan::files_under(dir)
        .into_iter()
        .filter(|p| !p.ends_with("puente.lock"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offsite_backup_restores_on_a_machine_that_never_held_the_replica_key() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    c.start_all().await;
    let mut model = Model::default();
    puts(&mut model, &c[0], "ev", 30, "Clase de ingles").await;
    let offsite = c.path().join("offsite.key");
    let recipient = puente::seal::generate_identity_file(&offsite, jiff::Timestamp::now()).unwrap();
    let file = c.path().join("offsite.backup.age");
    let out = puente(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--to",
        &recipient,
        "--config",
        config(&c[0]),
    ]);
    assert!(out.contains("age-encrypted"), "{out}");
    assert!(
        std::fs::read(&file)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );
    // The reference age opens it with the offsite identity: the container.
    let opened = Command::new("age")
        .args([
            "-d",
            "-i",
            offsite.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(opened.stdout.starts_with(b"puente-backup 1\nkey "));
    let expected = c[0].status().await;
    c[0].stop().unwrap();

    // Verify needs the identity; with it, it checks and describes.
    let e = fails(&[
        "backup",
        "verify",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(e.contains("--identity"), "{e}");
    let v = puente(&[
        "backup",
        "verify",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
        "--identity",
        offsite.to_str().unwrap(),
    ]);
    assert!(
        v.contains("is sound") && v.contains(&expected.digest),
        "{v}"
    );

    // A new machine: a new node with its own replica key.
    let lab = puente::lab::Lab::create(
        &c.path().join("new-machine"),
        Path::new(BIN),
        &[("tijuana", true)],
        &c.lab.schema_text,
    )
    .unwrap();
    let mut fresh = lab.offices.into_iter().next().unwrap();
    std::fs::write(fresh.dir.join("schema.toml"), &c.lab.schema_text).unwrap();
    let e = fails(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--config",
        fresh.config.to_str().unwrap(),
    ]);
    assert!(e.contains("--identity"), "{e}");
    puente(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--config",
        fresh.config.to_str().unwrap(),
        "--identity",
        offsite.to_str().unwrap(),
    ]);
    fresh.start().await.unwrap();
    let s = fresh.status().await;
    assert_eq!(s.digest, expected.digest);
    assert_ne!(s.site_id, expected.site_id);
    model.verify(&fresh, &["outreach_events"], false).await;
    fresh.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backup_files_get_one_line_and_damage_nothing() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    c.start_all().await;
    let mut model = Model::default();
    puts(&mut model, &c[0], "ev", 10, "Taller").await;
    let good = c.path().join("good.backup");
    puente(&[
        "backup",
        "--out",
        good.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    // Into a running node: refused.
    let e = fails(&[
        "restore",
        "--from",
        good.to_str().unwrap(),
        "--config",
        config(&c[0]),
        "--force",
    ]);
    assert!(e.contains("running") && e.contains("stop it first"), "{e}");
    c[0].stop().unwrap();
    let data = c[0].data_dir();
    let before = snapshot_dir(&data);

    let bytes = std::fs::read(&good).unwrap();
    let truncated = c.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = c.path().join("garbage.backup");
    std::fs::write(&garbage, vec![0x5a; 64 << 10]).unwrap();
    let text = c.path().join("notes.txt");
    std::fs::write(&text, "not a backup at all\n").unwrap();
    let wrong_age = c.path().join("other.backup.age");
    let other = c.path().join("other.key");
    let other_recipient =
        puente::seal::generate_identity_file(&other, jiff::Timestamp::now()).unwrap();
    let mut child = Command::new("age")
        .args([
            "-r",
            &other_recipient,
            "-o",
            wrong_age.to_str().unwrap(),
            good.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mine = c.path().join("mine.key");
    puente::seal::generate_identity_file(&mine, jiff::Timestamp::now()).unwrap();
    let plain_sqlite = c.path().join("plain.sqlite");
    rusqlite::Connection::open(&plain_sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();

    let cases: Vec<(&Path, Vec<&str>, &str)> = vec![
        (&truncated, vec![], "truncated"),
        (&garbage, vec![], "not a puente backup"),
        (&text, vec![], "not a puente backup"),
        (&plain_sqlite, vec![], "not a puente backup"),
        (
            &wrong_age,
            vec!["--identity", mine.to_str().unwrap()],
            "keys this node lacks",
        ),
    ];
    for (file, extra, expect) in &cases {
        for command in ["restore", "verify"] {
            let mut args: Vec<&str> = match command {
                "restore" => vec!["restore", "--force", "--from", file.to_str().unwrap()],
                _ => vec!["backup", "verify", file.to_str().unwrap()],
            };
            args.extend(["--config", config(&c[0])]);
            args.extend(extra.iter().copied());
            let e = fails(&args);
            assert_eq!(e.trim().lines().count(), 1, "{command} {file:?}: {e}");
            assert!(e.contains(expect), "{command} {file:?}: {e}");
        }
    }
    // Another schema's backup: an office whose schema has another table.
    let other_schema = c.lab.schema_text.replace(
        "[tables.residents.columns]",
        "[tables.visits.columns]\nnote = \"shared\"\n\n[tables.residents.columns]",
    );
    let lab = puente::lab::Lab::create(
        &c.path().join("other-schema"),
        Path::new(BIN),
        &[("ensenada", false)],
        &other_schema,
    )
    .unwrap();
    let mut ensenada = lab.offices.into_iter().next().unwrap();
    ensenada.start().await.unwrap();
    let theirs = c.path().join("ensenada.backup");
    puente(&[
        "backup",
        "--out",
        theirs.to_str().unwrap(),
        "--config",
        ensenada.config.to_str().unwrap(),
    ]);
    ensenada.stop().unwrap();
    let their_key = ensenada.dir.join("keys/replica.key");
    let e = fails(&[
        "restore",
        "--force",
        "--from",
        theirs.to_str().unwrap(),
        "--config",
        config(&c[0]),
        "--key-file",
        their_key.to_str().unwrap(),
    ]);
    assert!(e.contains("another schema"), "{e}");
    let e = fails(&[
        "restore",
        "--force",
        "--from",
        theirs.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(e.contains("another office"), "{e}");

    assert!(
        snapshot_dir(&data) == before,
        "a refused restore changed the data dir"
    );
    // The good backup still restores, and the node runs.
    puente(&[
        "restore",
        "--force",
        "--from",
        good.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    c[0].start().await.unwrap();
    model.verify(&c[0], &["outreach_events"], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_an_unencrypted_office_is_plain_sqlite_and_a_stopped_node_backs_up_too() {
    let mut c = Cluster::new_unencrypted(&[("tijuana", true)]);
    c.start_all().await;
    let mut model = Model::default();
    puts(&mut model, &c[0], "ev", 5, "Taller visible").await;
    c[0].stop().unwrap();
    // No daemon: the backup is taken directly.
    let dir = c.path().join("nightly");
    std::fs::create_dir(&dir).unwrap();
    for _ in 0..3 {
        let out = puente(&[
            "backup",
            "--dir",
            dir.to_str().unwrap(),
            "--keep",
            "2",
            "--config",
            config(&c[0]),
        ]);
        assert!(out.contains("NOT encrypted"), "{out}");
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    std::fs::write(dir.join("notes.txt"), "kept").unwrap();
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        kept.len(),
        3,
        "two backups and the unrelated file: {kept:?}"
    );
    // The positive control of the scan in the encrypted test: an
    // unencrypted replica's backup shows its shared values.
    Scan::forbidding(&[])
        .control(Control::anywhere("Taller visible 3"))
        .check(&dir)
        .unwrap();
    assert!(
        !c[0]
            .data_dir()
            .join("backup.tmp")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_made_before_a_column_was_added_restores_under_the_new_schema() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    c.start_all().await;
    let mut model = Model::default();
    puts(&mut model, &c[0], "ev", 5, "Antes").await;
    let file = c.path().join("before.backup");
    puente(&[
        "backup",
        "--out",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    c[0].stop().unwrap();
    // The schema gains a column and seals one that was shared; the office
    // is then restored from the backup made before (the restore adopts
    // the schema as a start would: the values sealed as new versions).
    let schema_path = c[0].dir.join("schema.toml");
    let schema = std::fs::read_to_string(&schema_path).unwrap();
    std::fs::write(
        &schema_path,
        schema
            .replace(
                "title = \"shared\"",
                "title = \"shared\"\nroom = \"shared\"",
            )
            .replace("location = \"shared\"", "location = { sealed = \"mx\" }"),
    )
    .unwrap();
    let out = puente(&[
        "backup",
        "verify",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    assert!(out.contains("is sound"), "{out}");
    puente(&[
        "restore",
        "--force",
        "--from",
        file.to_str().unwrap(),
        "--config",
        config(&c[0]),
    ]);
    c[0].start().await.unwrap();
    model.verify(&c[0], &["outreach_events"], true).await;
    let shown = puente(&["status", "--json", "--config", config(&c[0])]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["sealed_cells"], 5, "{shown}");
    c[0].put("outreach_events", "ev-0001", &[("room", "Sala 1")])
        .await;
    assert_eq!(
        cell(&c[0], "outreach_events", "ev-0001", "room", false)
            .await
            .as_deref(),
        Some("Sala 1")
    );
}
