//! Sync between real daemons over QUIC with pinned mutual TLS, on
//! 127.0.0.1: convergence, relays, resume, refusals, schema mismatch.

use crate::cluster;
use crate::support;

use cluster::*;
use puente::node::status::PeerState;
use support::{Control, Scan, plant_control};

const TJ: usize = 0;
const SD: usize = 1;

/// A shared value the byte scans must find (their positive control).
/// A shared value no other test writes: the scans' positive control.
const SHARED_CONTROL: &str = "2031-08-23";

fn two_offices() -> Cluster {
    let c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offices_writing_concurrently_converge_and_sealed_data_stays_sealed() {
    // Plain replicas: the byte scans below must see shared values in the
    // database and live WAL (their positive control) while proving every
    // sealed plaintext absent. The replica encrypted at rest, which hides
    // shared values too, is tests/suite/at_rest.rs.
    let mut c = Cluster::new_unencrypted(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    for o in &mut c.lab.offices {
        // Everything puente logs, at the most verbose level, is scanned below.
        o.log_filter = "trace,quinn=debug,quinn_proto=debug,rustls=debug,hyper=debug,h2=off".into();
    }
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    let write = |o: &Office, prefix: &'static str| {
        let client = o.client();
        async move {
            for i in 0..40 {
                let id = format!("{prefix}-{i:02}");
                let cells = vec![
                    (
                        "title".to_string(),
                        puente::value::Plaintext::text(format!("{prefix} event {i}")),
                    ),
                    ("office".to_string(), puente::value::Plaintext::text(prefix)),
                ];
                client.put_row("outreach_events", &id, cells).await.unwrap();
                // The same five rows are edited at both offices.
                let shared = format!("shared-{}", i % 5);
                let cells = vec![(
                    "description".to_string(),
                    puente::value::Plaintext::text(format!("{prefix} {i}")),
                )];
                client
                    .put_row("outreach_events", &shared, cells)
                    .await
                    .unwrap();
            }
        }
    };
    tokio::join!(write(tj, "tijuana"), write(sd, "san-diego"));
    // San Diego records a resident's details, sealed to Mexico's key.
    sd.put(
        "residents",
        "res-1",
        &[
            ("full_name", "Xochitl Sealed-Marker"),
            ("phone", "+1 619 555 0177"),
            ("status", "arrived"),
        ],
    )
    .await;
    tj.put(
        "residents",
        "res-2",
        &[("full_name", "Itzel Tijuana-Marker"), ("status", "active")],
    )
    .await;
    // A shared value, plaintext by design in an unencrypted replica: the
    // scans' positive control for the database and its WAL.
    sd.put("residents", "res-3", &[("arrival_date", SHARED_CONTROL)])
        .await;
    sd.client()
        .delete_row("outreach_events", "san-diego-07")
        .await
        .unwrap();

    wait_converged("both offices in sync", &[tj, sd]).await;
    // Both dialled, yet both kept the same one connection: one side sees
    // it as outbound, the other as inbound.
    let directions = (
        tj.status().await.peers[0].direction.clone(),
        sd.status().await.peers[0].direction.clone(),
    );
    assert!(
        matches!(
            (directions.0.as_deref(), directions.1.as_deref()),
            (Some("outbound"), Some("inbound")) | (Some("inbound"), Some("outbound"))
        ),
        "{directions:?}"
    );
    let (a, b) = (tj.status().await, sd.status().await);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.rows["outreach_events"], 84);
    assert_eq!(b.tombstones, 1);

    // The sealed write made in San Diego reveals in Tijuana only.
    assert_eq!(
        cell(tj, "residents", "res-1", "full_name", true)
            .await
            .as_deref(),
        Some("Xochitl Sealed-Marker")
    );
    assert_eq!(
        cell(sd, "residents", "res-1", "full_name", false)
            .await
            .as_deref(),
        Some("<sealed>")
    );
    let refused = sd
        .client()
        .get_row("residents", "res-1", true)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");

    let needles = [
        "Xochitl Sealed-Marker",
        "+1 619 555 0177",
        "Itzel Tijuana-Marker",
    ];
    // Every file of both office folders while the daemons run: replica,
    // live WAL, logs at TRACE, config, keys. The controls prove the scan
    // reads each kind of file: the shared value in the WAL, the id of a
    // resident written at that office in its log, a planted file in the
    // data dir (which stays a control once the replica is encrypted).
    let scan_for = |o: &Office, file: &str, planted: Control| {
        let written_here = if o.name == "tijuana" {
            "res-2"
        } else {
            "res-1"
        };
        Scan::forbidding(&needles)
            .control(Control::in_file(file, SHARED_CONTROL))
            .control(Control::in_file("daemon.log", written_here))
            .control(planted)
    };
    for o in c.offices() {
        assert!(
            o.logs().contains("TRACE"),
            "{} logged nothing at trace",
            o.name
        );
        let planted = plant_control(&o.data_dir()).unwrap();
        let report = scan_for(o, "puente.db-wal", planted)
            .check(&o.dir)
            .unwrap_or_else(|e| panic!("{} while running: {e}", o.name));
        assert!(
            report
                .files
                .iter()
                .any(|f| f.ends_with("data/puente.db-wal"))
        );
    }
    for i in [TJ, SD] {
        let stopping = std::time::Instant::now();
        assert_eq!(
            c[i].stop().unwrap(),
            Some(0),
            "{} exits 0 on SIGTERM",
            c[i].name
        );
        assert!(
            stopping.elapsed() < std::time::Duration::from_secs(5),
            "{} took {:?} to stop",
            c[i].name,
            stopping.elapsed()
        );
    }
    // Again after SIGTERM, which checkpoints the WAL into the database.
    for o in c.offices() {
        let planted = plant_control(&o.data_dir()).unwrap();
        scan_for(o, "puente.db", planted)
            .check(&o.dir)
            .unwrap_or_else(|e| panic!("{} after SIGTERM: {e}", o.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_offices_in_a_line_relay_both_ways() {
    let mut c = Cluster::new(&[("a", true), ("b", false), ("c", false)]);
    c.link(0, 1);
    c.link(1, 2);
    c.start_all().await;
    c[0].put("outreach_events", "from-a", &[("title", "written at a")])
        .await;
    c[2].put("outreach_events", "from-c", &[("title", "written at c")])
        .await;
    c[2].put(
        "residents",
        "sealed-at-c",
        &[("full_name", "Relayed Person")],
    )
    .await;
    wait_for("a's write at c", || async {
        cell(&c[2], "outreach_events", "from-a", "title", false)
            .await
            .is_some()
    })
    .await;
    wait_for("c's write at a", || async {
        cell(&c[0], "outreach_events", "from-c", "title", false)
            .await
            .is_some()
    })
    .await;
    wait_converged("all three converge", &[&c[0], &c[1], &c[2]]).await;
    assert_eq!(
        cell(&c[0], "residents", "sealed-at-c", "full_name", true)
            .await
            .as_deref(),
        Some("Relayed Person")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_office_catches_up_from_its_cursor_only() {
    let mut c = two_offices();
    c.start_all().await;
    for i in 0..30 {
        c[TJ]
            .put(
                "outreach_events",
                &format!("old-{i}"),
                &[("title", "before the restart")],
            )
            .await;
    }
    wait_converged("first sync", &[&c[TJ], &c[SD]]).await;
    assert_eq!(c[SD].stop().unwrap(), Some(0));
    for i in 0..7 {
        c[TJ]
            .put(
                "outreach_events",
                &format!("new-{i}"),
                &[("title", "while san diego was down")],
            )
            .await;
    }
    c[SD].start().await.unwrap();
    wait_converged("catch-up after restart", &[&c[TJ], &c[SD]]).await;
    let sd = c[SD].status().await;
    let peer = &sd.peers[0];
    // Only the seven rows written during the outage came over the wire.
    assert_eq!(peer.counters.rows_in, 7, "{:?}", peer.counters);
    assert_eq!(sd.rows["outreach_events"], 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpinned_clients_wrong_servers_and_udp_garbage_are_refused_while_sync_goes_on() {
    // tijuana and san-diego are real offices; `impostor` is another node
    // whose certificate nobody pinned.
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false), ("impostor", false)]);
    c.link(TJ, SD);
    // The impostor pins tijuana and dials it: tijuana must refuse.
    c.pin(2, TJ);
    // Tijuana pins a "backup" office whose address turns out to be the
    // impostor's: the impostor presents a certificate other than the pinned one.
    let pinned_backup = format!("sha256:{}", "ab".repeat(32));
    puente(&[
        "peer",
        "add",
        "--config",
        c[TJ].config.to_str().unwrap(),
        "--name",
        "backup",
        "--fingerprint",
        &pinned_backup,
        "--address",
        &c[2].addr().to_string(),
    ]);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    wait_for("tijuana refuses the impostor's client", || async {
        tj.status()
            .await
            .refused
            .iter()
            .any(|r| r.reason.contains("not pinned"))
    })
    .await;
    // The impostor, whose certificate tijuana refuses, says so in its own
    // status: refused (with why), not "connecting".
    let impostor = &c[2];
    wait_for("the impostor shows tijuana's refusal", || async {
        let s = impostor.status().await;
        let tijuana = s.peers.iter().find(|p| p.name == "tijuana").unwrap();
        tijuana.state == PeerState::Refused
            && tijuana
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("refused this node's certificate")
    })
    .await;
    wait_for("tijuana refuses the impostor's server", || async {
        let s = tj.status().await;
        let backup = s.peers.iter().find(|p| p.name == "backup").unwrap();
        backup.state == PeerState::Refused
            && backup
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("presented certificate")
    })
    .await;
    // Garbage datagrams on tijuana's sync port.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 90 + 1)).map(|j| (i * 31 + j * 7) as u8).collect();
        socket.send_to(&junk, tj.addr()).unwrap();
    }
    socket
        .send_to(b"GET / HTTP/1.1\r\n\r\n", tj.addr())
        .unwrap();
    wait_for("garbage counted", || async {
        tj.status().await.garbage_datagrams > 0
    })
    .await;
    // Sync with the real peer carries on.
    tj.put(
        "outreach_events",
        "after-attacks",
        &[("title", "still syncing")],
    )
    .await;
    wait_for("the real peer still syncs", || async {
        cell(sd, "outreach_events", "after-attacks", "title", false)
            .await
            .is_some()
    })
    .await;
    let logs = tj.logs();
    assert!(logs.contains("not pinned"), "refusal not logged");
    assert!(
        logs.contains("presented certificate"),
        "wrong server not logged"
    );
    assert!(logs.contains("not QUIC v1"), "garbage not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_mismatch_is_refused_with_the_reason_on_both_sides() {
    let mut c = two_offices();
    let schema = c[SD].dir.join("schema.toml");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace(
            "capacity = { type = \"integer\" }",
            "capacity = { type = \"integer\" }\nseats = \"shared\"",
        ),
    )
    .unwrap();
    c.start_all().await;
    for o in [&c[TJ], &c[SD]] {
        wait_for("the mismatch reported", || async {
            let s = o.status().await;
            s.peers[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("schema")
        })
        .await;
        assert!(
            o.logs().contains("same schema file"),
            "{} did not log the reason",
            o.name
        );
    }
    // A write at Tijuana is acknowledged and stays local: after it, the
    // offices meet again (a new session, refused for the mismatch) and
    // nothing crosses.
    let mismatches = |s: &puente::node::status::Status| {
        s.peers[0]
            .counters
            .errors
            .get("schema_mismatch")
            .copied()
            .unwrap_or(0)
    };
    let before = mismatches(&c[TJ].status().await);
    c[TJ].put("outreach_events", "x", &[("title", "t")]).await;
    c[TJ].client().sync_now().await.unwrap();
    wait_for("a session after the write, refused again", || async {
        mismatches(&c[TJ].status().await) > before
    })
    .await;
    let sd = c[SD].status().await;
    assert_eq!(sd.head, 0, "nothing crossed a schema mismatch");
    assert_eq!(
        cell(&c[SD], "outreach_events", "x", "title", false).await,
        None
    );
    assert_ne!(c[TJ].status().await.peers[0].state, PeerState::Connected);

    // San Diego goes back to the shared schema, with an empty replica (its
    // own was made for the other schema and holds nothing): the write that
    // was held arrives.
    assert_eq!(c[SD].stop().unwrap(), Some(0));
    std::fs::write(&schema, &text).unwrap();
    std::fs::remove_dir_all(c[SD].data_dir()).unwrap();
    std::fs::create_dir(c[SD].data_dir()).unwrap();
    c[SD].start().await.unwrap();
    wait_for("the held write arrives once the schemas match", || async {
        cell(&c[SD], "outreach_events", "x", "title", false)
            .await
            .is_some()
    })
    .await;
    wait_converged("in sync after the fix", &[&c[TJ], &c[SD]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_office_is_back_in_sync_at_once_whichever_side_dialled() {
    let mut c = two_offices();
    c.start_all().await;
    wait_for("connected", || connected(&c[TJ], "san-diego")).await;
    // Each side stopped and killed in turn: the survivor must not keep a
    // dead connection that beats the new one (20 s idle timeout).
    for (round, (who, kill)) in [(TJ, false), (TJ, true), (SD, false), (SD, true)]
        .into_iter()
        .enumerate()
    {
        if kill {
            c[who].kill9();
        } else {
            assert_eq!(c[who].stop().unwrap(), Some(0));
        }
        let restarted = std::time::Instant::now();
        c[who].start().await.unwrap();
        let id = format!("after-restart-{round}");
        c[who]
            .put(
                "outreach_events",
                &id,
                &[("title", "written right after a restart")],
            )
            .await;
        let other = &c[1 - who];
        loop {
            if cell(other, "outreach_events", &id, "title", false)
                .await
                .is_some()
            {
                break;
            }
            assert!(
                restarted.elapsed() < std::time::Duration::from_secs(5),
                "round {round}: the write made after the restart did not sync within 5 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
