//! Metrics as Prometheus reads them: a live daemon's scrape with peers
//! connected passes `promtool check metrics` and says what status says;
//! the `[metrics]` listener serves the same on loopback and refuses any
//! other address unless allowed; status and metrics answer while a long
//! write holds the replica.

use crate::cluster;
use crate::support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::*;
use puente::metrics::text::{self, Scrape};
use puente::value::Plaintext;

const TJ: usize = 0;
const SD: usize = 1;

/// `promtool check metrics` on `scrape`: its verdict and what it said.
fn promtool(scrape: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tools/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

/// One plain HTTP GET on 127.0.0.1 (Connection: close): status line and body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_scrape_with_peers_passes_promtool_and_matches_status() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = c[SD].config.clone();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[metrics]\nlisten = \"{listen}\"\n"));
    std::fs::write(&config, text).unwrap();
    c.start_all().await;
    for i in 0..30 {
        c[TJ]
            .put("residents", &format!("r{i:02}"), &[("status", "active")])
            .await;
    }
    c[TJ]
        .client()
        .put_row(
            "residents",
            "r00",
            vec![("full_name".into(), Plaintext::text("Nombre Sellado"))],
        )
        .await
        .unwrap();
    c[SD]
        .put("outreach_events", "e1", &[("title", "Taller")])
        .await;
    wait_converged("both offices", &[&c[TJ], &c[SD]]).await;
    // A reveal at Tijuana is counted.
    c[TJ]
        .client()
        .get_row("residents", "r00", true)
        .await
        .unwrap();

    for (office, peer) in [(TJ, "san-diego"), (SD, "tijuana")] {
        let scrape = c[office].client().metrics().await.unwrap();
        let (ok, said) = promtool(&scrape);
        assert!(
            ok,
            "promtool check metrics on {peer}'s peer:\n{said}\n{scrape}"
        );
        let s = text::parse(&scrape).unwrap();
        let status = c[office].status().await;
        assert_eq!(value(&s, "puente_head_sequence", &[]), status.head as f64);
        for (table, n) in &status.rows {
            assert_eq!(value(&s, "puente_rows", &[("table", table)]), *n as f64);
        }
        assert_eq!(value(&s, "puente_rows", &[("table", "residents")]), 30.0);
        assert_eq!(value(&s, "puente_sealed_cells", &[]), 1.0);
        let p = [("peer", peer)];
        assert_eq!(value(&s, "puente_peer_up", &p), 1.0);
        assert_eq!(
            value(
                &s,
                "puente_peer_state",
                &[("peer", peer), ("state", "connected")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &s,
                "puente_peer_state",
                &[("peer", peer), ("state", "refused")]
            ),
            0.0
        );
        assert_eq!(value(&s, "puente_peer_in_sync", &p), 1.0);
        assert_eq!(value(&s, "puente_peer_changes_to_receive", &p), 0.0);
        assert!(value(&s, "puente_peer_received_rows_total", &p) >= 1.0);
        assert!(value(&s, "puente_peer_sent_bytes_total", &p) > 0.0);
        assert!(value(&s, "puente_peer_rtt_seconds", &p) > 0.0);
        assert!(value(&s, "puente_peer_last_contact_age_seconds", &p) < 60.0);
        assert!(s.value("puente_peer_clock_skew_seconds", &p).is_some());
        assert!(value(&s, "puente_commit_duration_seconds_count", &[]) >= 1.0);
        assert!(value(&s, "puente_apply_duration_seconds_count", &[]) >= 1.0);
        assert!(value(&s, "puente_database_size_bytes", &[]) > 0.0);
        assert_eq!(s.types["puente_commit_duration_seconds"], "histogram");
        assert!(!scrape.contains("Nombre Sellado"));
    }
    let tj = text::parse(&c[TJ].client().metrics().await.unwrap()).unwrap();
    assert_eq!(value(&tj, "puente_revealed_cells_total", &[]), 1.0);

    // The [metrics] listener serves the same families, and nothing else.
    let (status, body) = http_get(listen, "/metrics");
    assert!(status.contains("200"), "{status}");
    let (ok, said) = promtool(&body);
    assert!(ok, "{said}");
    let s = text::parse(&body).unwrap();
    assert_eq!(value(&s, "puente_peer_up", &[("peer", "tijuana")]), 1.0);
    let (status, body) = http_get(listen, "/v1/status");
    assert!(status.contains("404"), "{status}");
    assert!(body.contains("only GET /metrics"), "{body}");

    // Families that a healthy pair leaves empty (errors by code, refusals,
    // a refused peer, a catch-up) pass too.
    let mut status = c[TJ].status().await;
    let p = &mut status.peers[0];
    p.state = puente::node::status::PeerState::Refused;
    p.counters.errors.insert("invalid_batch".into(), 2);
    p.counters.errors.insert("schema_mismatch".into(), 1);
    p.counters.refusals = 3;
    p.receiving = Some(puente::node::status::CatchUp {
        done: 10,
        left: 90,
        rate_per_s: Some(5.0),
        eta_s: Some(18.0),
    });
    let node_metrics = puente::metrics::NodeMetrics::default();
    let extra = puente::metrics::collect::Extra::of(&node_metrics, 5_000, 1_000, 4096, 0);
    let synthetic = puente::metrics::collect::render(&status, &extra);
    let (ok, said) = promtool(&synthetic);
    assert!(ok, "{said}\n{synthetic}");
    let s = text::parse(&synthetic).unwrap();
    let p = ("peer", "san-diego");
    assert_eq!(
        value(
            &s,
            "puente_peer_session_errors_total",
            &[p, ("code", "invalid_batch")]
        ),
        2.0
    );
    assert_eq!(value(&s, "puente_peer_refusals_total", &[p]), 3.0);
    assert_eq!(
        value(&s, "puente_peer_state", &[p, ("state", "refused")]),
        1.0
    );
    assert_eq!(value(&s, "puente_peer_up", &[p]), 0.0);
    assert_eq!(
        value(&s, "puente_peer_catch_up_remaining_seconds", &[p]),
        18.0
    );
    assert_eq!(value(&s, "puente_start_time_seconds", &[]), 1.0);

    // A positive control for promtool: it does fail a bad scrape.
    let (ok, said) = promtool("# TYPE puente_things counter\npuente_things 3\n");
    assert!(!ok && said.contains("_total"), "{said}");
}

#[test]
fn the_metrics_listener_refuses_a_non_loopback_address_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tijuana");
    puente(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        "tijuana",
        "--listen",
        "127.0.0.1:7441",
    ]);
    let config = dir.join("puente.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let check = |section: &str| {
        std::fs::write(&config, format!("{base}\n[metrics]\n{section}")).unwrap();
        Command::new(BIN)
            .args(["check", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let out = check("listen = \"0.0.0.0:7490\"\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.listen: 0.0.0.0:7490 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("allow_remote = true"), "{err}");
    let out = check("listen = \"0.0.0.0:7490\"\nallow_remote = true\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check("listen = \"127.0.0.1:7490\"\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_answer_while_the_replica_is_busy() {
    let (_dir, node, _socket) = support::admin_test_node(Some(support::TEST_IDENTITY));
    node.put(
        "residents".into(),
        "r1".into(),
        support::cells(&[("status", "intake")]),
    )
    .await
    .unwrap();
    // Something holds the replica (as a long apply would) until told.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (holding, is_held) = std::sync::mpsc::channel::<()>();
    let busy = node.clone();
    let worker = std::thread::spawn(move || {
        busy.with_store_blocking(|_| {
            holding.send(()).unwrap();
            held.recv().unwrap();
        })
    });
    is_held.recv().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), node.status())
        .await
        .expect("status waited for the replica")
        .unwrap();
    assert_eq!(status.rows["residents"], 1);
    assert_eq!(status.head, 1);
    let scrape = tokio::time::timeout(Duration::from_secs(5), puente::metrics::scrape(&node))
        .await
        .expect("metrics waited for the replica");
    assert!(
        scrape.contains("puente_rows{table=\"residents\"} 1\n"),
        "{scrape}"
    );
    release.send(()).unwrap();
    worker.join().unwrap();
    // The snapshot follows every commit.
    node.put(
        "residents".into(),
        "r2".into(),
        support::cells(&[("status", "intake")]),
    )
    .await
    .unwrap();
    node.delete("residents".into(), "r1".into()).await.unwrap();
    let status = node.status().await.unwrap();
    assert_eq!(
        (status.head, status.rows["residents"], status.tombstones),
        (3, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_catch_up_with_changes_done_left_and_time() {
    use puente::clock::WallClock;
    use puente::store::Cursor;
    let s = support::schema(&[support::TEST_RECIPIENT]);
    let support::Replica {
        dir, store, clock, ..
    } = support::replica("tijuana", s.clone(), None, 1_000_000);
    let text = format!(
        "{}\n[[peers]]\nname = \"san-diego\"\nfingerprint = \"sha256:{}\"\n",
        support::ADMIN_NODE_CONFIG,
        "ab".repeat(32)
    );
    let config = puente::config::NodeConfig::parse(&dir.path().join("puente.toml"), &text).unwrap();
    let node = puente::node::Node::new(
        config,
        s,
        puente::node::fingerprint::Fingerprint([0; 32]),
        clock.clone() as std::sync::Arc<dyn WallClock>,
        store,
    );
    let peer = |progress: u64| {
        node.update_peer("san-diego", |p| {
            p.peer_head = Some(100_000);
            p.our_cursor = Some(Cursor { base: 0, progress });
        });
        node.observe_progress("san-diego");
    };
    peer(10_000);
    let first = node.status().await.unwrap().peers[0]
        .receiving
        .clone()
        .unwrap();
    assert_eq!((first.done, first.left, first.eta_s), (0, 90_000, None));
    clock.advance(2_000);
    peer(30_000);
    let status = node.status().await.unwrap();
    let p = &status.peers[0];
    let c = p.receiving.clone().unwrap();
    assert_eq!((c.done, c.left), (20_000, 70_000));
    assert_eq!(c.rate_per_s, Some(10_000.0));
    assert_eq!(c.eta_s, Some(7.0));
    assert_eq!(p.they_owe, Some(70_000));
    let shown = puente::cli::remote::render_status(&status);
    assert!(
        shown.contains("catching up: 20000 changes received, 70000 to go, about 7s left"),
        "{shown}"
    );
    // The scrape says it too.
    let scrape = text::parse(&puente::metrics::scrape(&node).await).unwrap();
    assert_eq!(
        scrape.value(
            "puente_peer_catch_up_remaining_seconds",
            &[("peer", "san-diego")]
        ),
        Some(7.0)
    );
    assert_eq!(
        scrape.value("puente_peer_changes_to_receive", &[("peer", "san-diego")]),
        Some(70_000.0)
    );
    clock.advance(7_000);
    peer(100_000);
    assert_eq!(
        node.status().await.unwrap().peers[0].receiving,
        None,
        "caught up"
    );
}
