//! The admin socket end to end, in process: a `Node` served on a temp Unix
//! socket, driven by the typed client, raw HTTP and curl — health, status,
//! rows (paging, partial updates, deletes), every error class, and the
//! socket's life cycle (mode, stale and live sockets, idle clients).

use crate::support;

use std::time::Duration;

use puente::admin::api::Cell;
use puente::admin::{AdminError, ClientError, ServeOptions};
use puente::value::{Plaintext, Value};
use support::*;
use tokio::io::AsyncReadExt;

/// Every test waits at most this long for anything.
const DEADLINE: Duration = Duration::from_secs(20);

fn int(i: i64) -> Plaintext {
    Plaintext::new(Value::Integer(i))
}

fn api_status(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, message } => (status, message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_status() {
    let n = admin_node(None);
    let health = n.client().health().await.unwrap();
    assert!(health.ok);
    assert_eq!(health.node, "tijuana");

    n.client()
        .put_row(
            "outreach_events",
            "e1",
            vec![("title".into(), text("Taller"))],
        )
        .await
        .unwrap();
    let status = n.client().status().await.unwrap();
    assert_eq!(status.node, "tijuana");
    assert_eq!(status.head, 1);
    assert_eq!(status.rows.get("outreach_events"), Some(&1));
    assert_eq!(status.rows.get("residents"), Some(&0));
    assert!(status.can_unseal.is_empty());

    let (code, body) = raw_request(&n.socket, "GET", "/v1/status", None).await;
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "node",
        "version",
        "uptime_s",
        "site_id",
        "head",
        "digest",
        "rows",
        "sealed_cells",
        "can_unseal",
        "peers",
        "refused",
    ] {
        assert!(json.get(key).is_some(), "status lacks {key}: {body}");
    }
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_put_get_list_with_paging_and_partial_updates() {
    let n = admin_node(None);
    let c = n.client();
    let w = c
        .put_row(
            "outreach_events",
            "e3",
            vec![
                ("title".into(), text("Taller")),
                ("capacity".into(), int(25)),
            ],
        )
        .await
        .unwrap();
    assert_eq!((w.id.as_str(), w.seq), ("e3", 1));
    assert!(w.hlc.contains('.'), "{}", w.hlc);
    // A partial update leaves the other columns alone.
    c.put_row(
        "outreach_events",
        "e3",
        vec![("location".into(), text("Casa del Migrante"))],
    )
    .await
    .unwrap();
    let row = c.get_row("outreach_events", "e3", false).await.unwrap();
    assert_eq!(row.cell("title"), Some(&Cell::Value(text("Taller"))));
    assert_eq!(row.cell("capacity"), Some(&Cell::Value(int(25))));
    assert_eq!(
        row.cell("location"),
        Some(&Cell::Value(text("Casa del Migrante")))
    );
    assert_eq!(
        row.cell("description"),
        Some(&Cell::Value(Plaintext::new(Value::Null)))
    );
    // Columns come in the schema file's order, as a JSON object.
    let names: Vec<&str> = row.columns.0.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "title",
            "description",
            "starts_at",
            "ends_at",
            "location",
            "office",
            "language",
            "capacity",
            "status"
        ]
    );
    let (_, raw) = raw_request(&n.socket, "GET", "/v1/tables/outreach_events/rows/e3", None).await;
    assert!(
        raw.contains(r#""columns":{"title":"Taller","description":null,"#)
            && raw.contains(r#""capacity":25,"#),
        "{raw}"
    );

    for id in ["e1", "e2", "e4", "e5"] {
        c.put_row("outreach_events", id, vec![("title".into(), text(id))])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_rows("outreach_events", after.as_deref(), Some(2), false)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.rows.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(pages, 3);
    // Exactly one full page: no `next`, no empty extra page.
    let page = c
        .list_rows("outreach_events", Some("e3"), Some(2), false)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.next, None);
    // The default limit.
    let page = c
        .list_rows("outreach_events", None, None, false)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 5);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_rows_are_gone_for_good() {
    let n = admin_node(None);
    let c = n.client();
    c.put_row("outreach_events", "e1", vec![("title".into(), text("x"))])
        .await
        .unwrap();
    let w = c.delete_row("outreach_events", "e1").await.unwrap();
    assert_eq!(w.id, "e1");
    let (status, message) =
        api_status(c.get_row("outreach_events", "e1", false).await.unwrap_err());
    assert_eq!(status, 404);
    assert!(message.contains("was deleted"), "{message}");
    let (status, message) = api_status(
        c.put_row("outreach_events", "e1", vec![("title".into(), text("y"))])
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 410);
    assert!(message.contains("new id"), "{message}");
    let (status, message) = api_status(
        c.get_row("outreach_events", "nope", false)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert!(
        message.starts_with("no row outreach_events/nope;"),
        "{message}"
    );
    let (status, _) = api_status(c.delete_row("outreach_events", "nope").await.unwrap_err());
    assert_eq!(status, 404);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_a_status_and_a_sentence() {
    let n = admin_node(None);
    let s = &n.socket;
    let check = |(code, body): (u16, String), want: u16, needle: &str| {
        assert_eq!(code, want, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], want, "{body}");
        let error = json["error"].as_str().unwrap();
        assert!(error.contains(needle), "{error:?} lacks {needle:?}");
    };
    check(
        raw_request(s, "GET", "/v1/tables/people/rows", None).await,
        404,
        "unknown table `people`; the schema has: outreach_events, residents",
    );
    check(
        raw_request(
            s,
            "PUT",
            "/v1/tables/outreach_events/rows/e1",
            Some(br#"{"colour":"x"}"#),
        )
        .await,
        404,
        "unknown column `colour` in table `outreach_events`; it has:",
    );
    check(
        raw_request(s, "GET", "/v1/nothing", None).await,
        404,
        "no endpoint GET /v1/nothing",
    );
    check(
        raw_request(s, "POST", "/v1/tables/outreach_events/rows/e1", None).await,
        405,
        "does not accept POST",
    );
    check(
        raw_request(
            s,
            "PUT",
            "/v1/tables/outreach_events/rows/e1",
            Some(b"{\"title\": "),
        )
        .await,
        400,
        "the body is not valid JSON",
    );
    check(
        raw_request(s, "PUT", "/v1/tables/outreach_events/rows/e1", Some(b"")).await,
        400,
        "the body is not valid JSON",
    );
    check(
        raw_request(
            s,
            "PUT",
            "/v1/tables/outreach_events/rows/e1",
            Some(br#"{"capacity": true}"#),
        )
        .await,
        400,
        "column capacity: a value must be a string, a number or null",
    );
    check(
        raw_request(s, "PUT", "/v1/tables/outreach_events/rows/e1", Some(b"{}")).await,
        400,
        "names no column",
    );
    check(
        raw_request(
            s,
            "PUT",
            "/v1/tables/outreach_events/rows/a%20b",
            Some(br#"{"title":"x"}"#),
        )
        .await,
        400,
        "is not a valid row id",
    );
    check(
        raw_request(s, "GET", "/v1/tables/outreach_events/rows?limit=5000", None).await,
        400,
        "limit must be a whole number from 1 to 1000",
    );
    check(
        raw_request(
            s,
            "GET",
            "/v1/tables/outreach_events/rows?revael=true",
            None,
        )
        .await,
        400,
        "unknown query parameter `revael`",
    );
    check(
        raw_request(
            s,
            "GET",
            "/v1/tables/outreach_events/rows/e1?reveal=maybe",
            None,
        )
        .await,
        400,
        "reveal must be true or false",
    );
    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(2 << 20));
    check(
        raw_request(
            s,
            "PUT",
            "/v1/tables/outreach_events/rows/e1",
            Some(big.as_bytes()),
        )
        .await,
        413,
        "larger than",
    );
    // A refused body is never quoted back.
    for body in [
        r#""Secret-Body-Value""#,
        r#"{"full_name": ["Secret-Body-Value"]}"#,
        r#"{"full_name": "Secret-Body-Value", "x": tru}"#,
    ] {
        let (code, answer) = raw_request(
            s,
            "PUT",
            "/v1/tables/residents/rows/r1",
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(code, 400, "{answer}");
        assert!(!answer.contains("Secret-Body-Value"), "{answer}");
    }
    // The typed client surfaces message and status.
    let e = n.client().get_row("people", "x", false).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().ends_with("(HTTP 404)"), "{e}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_now_wakes_the_dialers() {
    let n = admin_node(None);
    let node = n.node.clone();
    let notified = node.sync_now.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    n.client().sync_now().await.unwrap();
    tokio::time::timeout(DEADLINE, notified).await.unwrap();
    let (code, body) = raw_request(&n.socket, "POST", "/v1/sync", None).await;
    assert_eq!((code, body.trim()), (200, r#"{"ok":true}"#));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_0660_refuses_a_second_daemon_and_is_removed_at_shutdown() {
    let n = admin_node(None);
    assert_eq!(puente::node::fsutil::mode_of(&n.socket).unwrap(), 0o660);
    let e = puente::admin::bind(&n.socket).unwrap_err();
    assert!(matches!(e, AdminError::AlreadyServing { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "another puente daemon is already serving {}",
            n.socket.display()
        )),
        "{e}"
    );
    // The live daemon still answers.
    n.client().health().await.unwrap();
    let socket = n.socket.clone();
    let dir = n.stop().await;
    assert!(dir.path().join("run").is_dir());
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_socket_is_replaced_and_other_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    // A socket file nobody listens on (a daemon killed with -9).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = puente::admin::bind(&path).unwrap();
    assert_eq!(puente::node::fsutil::mode_of(&path).unwrap(), 0o660);
    drop(listener);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let e = puente::admin::bind(&file).unwrap_err();
    assert!(matches!(e, AdminError::NotASocket { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    let missing = dir.path().join("run").join("puente");
    let e = puente::admin::bind(&missing.join("admin.sock")).unwrap_err();
    assert!(matches!(e, AdminError::SocketDirMissing { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("folder {} does not exist", missing.display())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_does_not_block_others() {
    let n = admin_node(None);
    let _silent = tokio::net::UnixStream::connect(&n.socket).await.unwrap();
    // One that sends half a request head and stops.
    let mut half = tokio::net::UnixStream::connect(&n.socket).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, b"GET /v1/hea")
        .await
        .unwrap();
    let health = tokio::time::timeout(DEADLINE, n.client().health())
        .await
        .expect("a second client is served while others are silent")
        .unwrap();
    assert!(health.ok);
    drop((_silent, half));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_the_header_timeout() {
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let n = admin_node_with(None, options);
    let mut idle = tokio::net::UnixStream::connect(&n.socket).await.unwrap();
    let mut buf = [0u8; 64];
    // The server closes the connection: the read ends (EOF or reset).
    let read = tokio::time::timeout(DEADLINE, idle.read(&mut buf))
        .await
        .expect("the idle connection is closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    n.client().health().await.unwrap();
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_says_when_no_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let e = puente::admin::Client::new(&socket)
        .health()
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "cannot reach the puente daemon at {}: ",
            socket.display()
        )) && e
            .to_string()
            .ends_with("is it running (systemctl status puente)?"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reads_the_status() {
    let n = admin_node(None);
    let socket = n.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--unix-socket"])
            .arg(&socket)
            .arg("http://localhost/v1/status")
            .output()
            .expect("curl must be installed (CI installs it)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["node"], "tijuana");
    assert_eq!(json["head"], 0);
    n.stop().await;
}
