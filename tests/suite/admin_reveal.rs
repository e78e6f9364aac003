//! Sealed cells through the admin socket: shown as sealed, revealed only
//! on a node holding the identity, every reveal audited (who, which cell,
//! never the value), refused reveals and damaged cells answered with the
//! right status and no value.

use crate::support;

use puente::admin::ClientError;
use puente::admin::api::Cell;
use puente::value::{Plaintext, Value};
use support::*;

const NAME: &str = "Reveal-Secret María";
const PHONE: &str = "+52 664 REVEAL 77";
/// A shared value written with them: the scan's positive control.
/// A shared value to find in the live WAL (the scan's positive control):
/// a date no other test writes.
const SHARED: &str = "2031-07-19";

fn audit_lines(n: &AdminNode) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(n.audit_log()) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => panic!("{e}"),
    }
}

async fn put_resident(n: &AdminNode, id: &str) {
    n.client()
        .put_row(
            "residents",
            id,
            vec![
                ("full_name".into(), text(NAME)),
                ("phone".into(), text(PHONE)),
                ("household_size".into(), Plaintext::new(Value::Integer(3))),
                ("arrival_date".into(), text(SHARED)),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_identity_sealed_cells_stay_sealed_and_reveal_is_refused() {
    let n = admin_node(None);
    put_resident(&n, "r1").await;
    let row = n.client().get_row("residents", "r1", false).await.unwrap();
    assert_eq!(row.cell("full_name"), Some(&Cell::Sealed));
    // A sealed column never written reads as null.
    assert_eq!(
        row.cell("case_notes"),
        Some(&Cell::Value(Plaintext::new(Value::Null)))
    );
    assert_eq!(
        row.cell("household_size"),
        Some(&Cell::Value(Plaintext::new(Value::Integer(3))))
    );
    let (_, raw) = raw_request(&n.socket, "GET", "/v1/tables/residents/rows/r1", None).await;
    assert!(raw.contains(r#""full_name":{"sealed":true}"#), "{raw}");
    assert!(!raw.contains(NAME), "{raw}");

    for reveal in [
        n.client()
            .get_row("residents", "r1", true)
            .await
            .map(|_| ()),
        n.client()
            .list_rows("residents", None, None, true)
            .await
            .map(|_| ()),
    ] {
        match reveal.unwrap_err() {
            ClientError::Api { status, message } => {
                assert_eq!(status, 403);
                assert!(
                    message.contains("holds no identity for group `mx`"),
                    "{message}"
                );
            }
            other => panic!("{other}"),
        }
    }
    assert!(!n.audit_log().exists(), "a refused reveal is not audited");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reveals_answer_plaintext_and_are_audited_without_it() {
    let n = admin_node(Some(TEST_IDENTITY));
    put_resident(&n, "r1").await;
    put_resident(&n, "r2").await;
    // Not revealing: sealed, nothing audited.
    let row = n.client().get_row("residents", "r1", false).await.unwrap();
    assert_eq!(row.cell("phone"), Some(&Cell::Sealed));
    assert!(audit_lines(&n).is_empty());

    let row = n.client().get_row("residents", "r1", true).await.unwrap();
    assert_eq!(row.cell("full_name"), Some(&Cell::Value(text(NAME))));
    assert_eq!(row.cell("phone"), Some(&Cell::Value(text(PHONE))));
    assert_eq!(
        row.cell("case_notes"),
        Some(&Cell::Value(Plaintext::new(Value::Null)))
    );
    let lines = audit_lines(&n);
    assert_eq!(lines.len(), 2, "one line per revealed cell: {lines:?}");
    let uid = own_uid();
    let columns: Vec<&str> = lines
        .iter()
        .map(|l| l["column"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["full_name", "phone"]);
    for line in &lines {
        assert_eq!(line["uid"], uid);
        assert_eq!(line["pid"], std::process::id());
        assert_eq!(line["table"], "residents");
        assert_eq!(line["id"], "r1");
        let at = line["at"].as_str().unwrap();
        assert!(at.parse::<jiff::Timestamp>().is_ok(), "{at}");
    }

    let page = n
        .client()
        .list_rows("residents", None, None, true)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(
        page.rows[1].cell("full_name"),
        Some(&Cell::Value(text(NAME)))
    );
    let lines = audit_lines(&n);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["id"], "r2");

    let audit = std::fs::read(n.audit_log()).unwrap();
    // No plaintext in the data dir of the serving node (replica, live WAL,
    // audit log), while the scan sees the shared value in the WAL and the
    // revealed cells' names in the audit log.
    Scan::forbidding(&[NAME, PHONE])
        .control(Control::in_file("puente.db-wal", SHARED))
        .control(Control::in_file("audit.log", "full_name"))
        .check(&n.data_dir())
        .unwrap();
    assert!(!String::from_utf8_lossy(&audit).contains("664"));
    assert_eq!(
        puente::node::fsutil::mode_of(&n.audit_log()).unwrap(),
        0o600
    );

    // A table without sealed columns reveals nothing and logs nothing.
    n.client()
        .put_row("outreach_events", "e1", vec![("title".into(), text("x"))])
        .await
        .unwrap();
    n.client()
        .get_row("outreach_events", "e1", true)
        .await
        .unwrap();
    assert_eq!(audit_lines(&n).len(), 6);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_value_moved_to_another_row_is_refused_naming_the_cell() {
    let n = admin_node(Some(TEST_IDENTITY));
    put_resident(&n, "r1").await;
    put_resident(&n, "r2").await;
    // Someone with write access to the database copies r1's ciphertext
    // into r2 (a relay replaying a value between residents).
    let db = rusqlite::Connection::open(n.data_dir().join("puente.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE residents SET full_name = (SELECT full_name FROM residents WHERE id = 'r1') WHERE id = 'r2'",
        [],
    )
    .unwrap();
    drop(db);
    let (code, body) = raw_request(
        &n.socket,
        "GET",
        "/v1/tables/residents/rows/r2?reveal=true",
        None,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("residents/r2/full_name") && body.contains("does not belong to this cell"),
        "{body}"
    );
    assert!(!body.contains(NAME) && !body.contains(PHONE), "{body}");
    assert!(audit_lines(&n).is_empty(), "nothing was revealed");
    // The intact row still reveals.
    n.client().get_row("residents", "r1", true).await.unwrap();
    assert_eq!(audit_lines(&n).len(), 2);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reveal_that_cannot_be_audited_is_not_answered() {
    let n = admin_node(Some(TEST_IDENTITY));
    put_resident(&n, "r1").await;
    // A directory where the audit log should be: appending fails.
    std::fs::create_dir(n.audit_log()).unwrap();
    let (code, body) = raw_request(
        &n.socket,
        "GET",
        "/v1/tables/residents/rows/r1?reveal=true",
        None,
    )
    .await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("audit log") && body.contains("nothing was revealed"),
        "{body}"
    );
    assert!(!body.contains(NAME), "{body}");
    n.stop().await;
}
