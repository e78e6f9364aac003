//! Live reload (SIGHUP, as `systemctl reload puente` sends it): a removed
//! peer's connection closes at once and it is refused from then on; pinned
//! again, it syncs again; a file that does not load, or a schema change a
//! reload may not make (a drop), keeps the running config and status says
//! why; the log level follows the config. Schema changes a reload adopts
//! are in tests/suite/reload_schema.rs.

use crate::cluster;

use cluster::*;
use puente::node::status::PeerState;

fn peer_state(s: &puente::node::status::Status, name: &str) -> Option<PeerState> {
    s.peers.iter().find(|p| p.name == name).map(|p| p.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_is_cut_off_at_once_refused_then_and_syncs_when_pinned_again() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    // San Diego dials; Tijuana only accepts it.
    c.pin(1, 0);
    puente::config::node::add_peer(&c[0].config, &c[1].name, &c[1].fingerprint, None).unwrap();
    c.start_all().await;
    wait_for("connected", || connected(&c[1], "tijuana")).await;
    c[0].put("outreach_events", "e1", &[("title", "Antes")])
        .await;
    wait_for("e1 at san diego", || async {
        cell(&c[1], "outreach_events", "e1", "title", false)
            .await
            .as_deref()
            == Some("Antes")
    })
    .await;

    puente(&[
        "peer",
        "remove",
        "--name",
        "san-diego",
        "--config",
        c[0].config.to_str().unwrap(),
    ]);
    let r = reload(&c[0]).await;
    assert!(r.applied, "{r:?}");
    assert!(
        r.messages
            .iter()
            .any(|m| m.contains("peer san-diego removed")),
        "{r:?}"
    );
    // The live connection closes at once (keep-alives would hold it open
    // for ever), and San Diego's next attempts are refused at TLS.
    wait_for("san diego refused by tijuana", || async {
        c[1].status().await.peers[0].state == PeerState::Refused
    })
    .await;
    let tj = c[0].status().await;
    assert!(peer_state(&tj, "san-diego").is_none(), "{:?}", tj.peers);
    wait_for("the refusal in tijuana's status", || async {
        c[0].status()
            .await
            .refused
            .iter()
            .any(|r| r.reason.contains("not pinned"))
    })
    .await;
    c[0].put("outreach_events", "e2", &[("title", "Mientras")])
        .await;

    // Pinned again: it connects and catches up.
    puente::config::node::add_peer(&c[0].config, &c[1].name, &c[1].fingerprint, None).unwrap();
    let r = reload(&c[0]).await;
    assert!(
        r.messages
            .iter()
            .any(|m| m.contains("peer san-diego pinned")),
        "{r:?}"
    );
    wait_converged("pinned again", &[&c[0], &c[1]]).await;
    assert_eq!(
        cell(&c[1], "outreach_events", "e2", "title", false)
            .await
            .as_deref(),
        Some("Mientras")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_keeps_the_running_config_and_says_why() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(0, 1);
    c.start_all().await;
    wait_for("connected", || connected(&c[0], "san-diego")).await;
    let config = std::fs::read_to_string(&c[0].config).unwrap();
    let schema_path = c[0].dir.join("schema.toml");
    let schema = std::fs::read_to_string(&schema_path).unwrap();

    // A config that is not TOML.
    std::fs::write(&c[0].config, format!("{config}\n[[peers]\n")).unwrap();
    let r = reload(&c[0]).await;
    assert!(!r.applied);
    assert!(r.messages[0].contains("puente.toml"), "{r:?}");
    std::fs::write(&c[0].config, &config).unwrap();

    // An identity file that does not exist.
    std::fs::write(
        &c[0].config,
        config.replace(
            "identities = [\"keys/mx.key\"]",
            "identities = [\"keys/gone.key\"]",
        ),
    )
    .unwrap();
    let r = reload(&c[0]).await;
    assert!(!r.applied && r.messages[0].contains("gone.key"), "{r:?}");
    std::fs::write(&c[0].config, &config).unwrap();

    // A schema without a column the replica holds: a reload never erases,
    // so it is refused in the words of `puente schema plan`, and the
    // running schema stays.
    let hash = c[0].status().await.schema_hash;
    std::fs::write(&schema_path, schema.replace("location = \"shared\"\n", "")).unwrap();
    let r = reload(&c[0]).await;
    assert!(!r.applied, "{r:?}");
    assert_eq!(r.messages.len(), 1, "{r:?}");
    for want in [
        "schema.toml: a reload adopts additive schema changes only",
        "drop column `outreach_events.location` and erase its values",
        "puente schema apply --allow-drop",
        "The running schema is kept",
    ] {
        assert!(r.messages[0].contains(want), "{want}: {r:?}");
    }
    assert_eq!(c[0].status().await.schema_hash, hash);
    c[0].put("outreach_events", "e0", &[("location", "Salon")])
        .await;
    std::fs::write(&schema_path, &schema).unwrap();

    // Through all of it the node kept its peers and kept syncing; status
    // shows the last refusal as a person reads it.
    let shown = puente(&["status", "--config", c[0].config.to_str().unwrap()]);
    assert!(shown.contains("REFUSED (running config kept)"), "{shown}");
    c[0].put("outreach_events", "e1", &[("title", "Sigue")])
        .await;
    wait_converged("still syncing", &[&c[0], &c[1]]).await;
    let r = reload(&c[0]).await;
    assert!(r.applied && r.messages == ["nothing changed"], "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_follows_a_reload() {
    let mut c = Cluster::new(&[("tijuana", false)]);
    // No RUST_LOG: the config's log_level applies.
    c[0].log_filter = String::new();
    let config = std::fs::read_to_string(&c[0].config).unwrap();
    assert!(config.contains("log_level = \"info\""));
    std::fs::write(
        &c[0].config,
        config.replace("log_level = \"info\"", "log_level = \"warn\""),
    )
    .unwrap();
    c.start_all().await;
    c[0].status().await;
    assert!(!c[0].logs().contains("admin request"));
    std::fs::write(
        &c[0].config,
        config.replace("log_level = \"info\"", "log_level = \"info,puente=debug\""),
    )
    .unwrap();
    let r = reload(&c[0]).await;
    assert!(
        r.messages
            .iter()
            .any(|m| m.contains("log level: info,puente=debug")),
        "{r:?}"
    );
    c[0].status().await;
    wait_for("debug lines in the log", || async {
        c[0].logs().contains("admin request")
    })
    .await;
}
