//! Schema changes adopted by a live reload (SIGHUP, as `systemctl reload
//! puente` sends it): a new column and a column going from shared to
//! sealed are adopted without a restart, writes into them work at once,
//! status shows the new schema hash, and sync sessions reconnect with the
//! new schema in their Hello — the peer still on the old file names the
//! difference, and once it reloads the same file both converge. A drop is
//! refused by a reload (tests/suite/reload.rs).

use crate::cluster;

use std::path::Path;

use cluster::*;
use puente::config::Schema;

/// `puente status --json`'s schema hash, read as a script reads it.
fn schema_hash_shown(o: &Office) -> String {
    let out = puente(&["status", "--json", "--config", o.config.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["schema_hash"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_column_is_adopted_by_a_reload_and_syncs_once_both_offices_have_it() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.start_all().await;
    wait_for("connected", || connected(&c[0], "san-diego")).await;
    c[0].put("outreach_events", "e1", &[("title", "Antes")])
        .await;
    wait_converged("before the change", &[&c[0], &c[1]]).await;

    let schema_path = c[0].dir.join("schema.toml");
    let schema = std::fs::read_to_string(&schema_path).unwrap();
    let before = schema_hash_shown(&c[0]);
    assert_eq!(
        before,
        Schema::parse(Path::new("schema.toml"), &schema)
            .unwrap()
            .hash()
    );
    // A new shared column, and a shared column now sealed.
    let wider = schema
        .replace(
            "title = \"shared\"",
            "title = \"shared\"\nroom = \"shared\"",
        )
        .replace(
            "description = \"shared\"",
            "description = { sealed = \"mx\" }",
        );
    let new_hash = Schema::parse(Path::new("schema.toml"), &wider)
        .unwrap()
        .hash()
        .to_string();
    c[0].put(
        "outreach_events",
        "e0",
        &[("title", "Charla"), ("description", "Texto abierto")],
    )
    .await;
    std::fs::write(&schema_path, &wider).unwrap();
    let r = reload(&c[0]).await;
    assert!(r.applied, "{r:?}");
    for want in [
        "schema: add column `outreach_events.room` (shared)",
        "schema: seal every value of `outreach_events.description` to `mx`",
        &format!("schema hash {}", &new_hash[..16]),
    ] {
        assert!(r.messages.iter().any(|m| m.contains(want)), "{want}: {r:?}");
    }
    assert_eq!(schema_hash_shown(&c[0]), new_hash);
    let shown = puente(&["status", "--config", c[0].config.to_str().unwrap()]);
    assert!(
        shown.contains("reload")
            && shown.contains("applied")
            && shown.contains("add column `outreach_events.room`"),
        "{shown}"
    );

    // A put into the new column works at once; the sealed one opens only
    // when revealed.
    c[0].put(
        "outreach_events",
        "e2",
        &[("title", "Taller"), ("room", "Sala 3")],
    )
    .await;
    assert_eq!(
        cell(&c[0], "outreach_events", "e2", "room", false)
            .await
            .as_deref(),
        Some("Sala 3")
    );
    assert_eq!(
        cell(&c[0], "outreach_events", "e0", "description", false)
            .await
            .as_deref(),
        Some("<sealed>"),
        "read without reveal, the newly sealed column answers sealed"
    );
    assert_eq!(
        cell(&c[0], "outreach_events", "e0", "description", true)
            .await
            .as_deref(),
        Some("Texto abierto")
    );

    // The sessions reconnected with the new schema in Tijuana's Hello:
    // San Diego, still on the old file, names the difference.
    wait_for("san diego names the new column", || async {
        c[1].status()
            .await
            .peers
            .iter()
            .any(|p| p.schema_differences.iter().any(|d| d.contains("room")))
    })
    .await;

    // San Diego reloads the same file: both converge, the new column and
    // the sealed values with them.
    std::fs::write(c[1].dir.join("schema.toml"), &wider).unwrap();
    let r = reload(&c[1]).await;
    assert!(r.applied, "{r:?}");
    assert_eq!(schema_hash_shown(&c[1]), new_hash);
    wait_converged("after both reloads", &[&c[0], &c[1]]).await;
    assert_eq!(
        cell(&c[1], "outreach_events", "e2", "room", false)
            .await
            .as_deref(),
        Some("Sala 3")
    );
    assert_eq!(
        cell(&c[1], "outreach_events", "e0", "description", false)
            .await
            .as_deref(),
        Some("<sealed>"),
        "san diego holds the sealed value as sealed"
    );
    c[1].put("outreach_events", "e3", &[("room", "Patio")])
        .await;
    wait_converged("a write at san diego", &[&c[0], &c[1]]).await;
    assert_eq!(
        cell(&c[0], "outreach_events", "e3", "room", false)
            .await
            .as_deref(),
        Some("Patio")
    );
    c[0].stop().unwrap();
    c[1].stop().unwrap();
    assert_replica_sound(&c[0], &wider);
    assert_replica_sound(&c[1], &wider);
}
