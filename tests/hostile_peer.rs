//! A peer holding a pinned certificate that misbehaves: every kind of bad
//! input closes its session with a specific code, is logged and counted,
//! leaves the replica unchanged, and the daemon keeps serving its real peer
//! and its admin socket.

mod cluster;
mod support;

use cluster::rogue::{Rogue, RogueSession};
use cluster::*;
use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor};
use puente::sync::protocol::{ErrorCode, MAX_FRAME, Message, encode};
use puente::value::Value;

const TJ: usize = 0;
const SD: usize = 1;

fn batch(table: u16, column: u16, value: Value) -> Message {
    Message::Batch {
        batch: Batch {
            sites: vec![SiteId::random()],
            changes: vec![Change::Row {
                table,
                id: "hostile-row".into(),
                cells: vec![CellChange {
                    column,
                    hlc: Hlc::from_parts(1_700_000_000_000, 0),
                    site: 0,
                    value,
                }],
            }],
        },
        cursor: Cursor::at(1),
        complete: true,
        head: 1,
    }
}

/// Connects, says a valid Hello and reads the target's Hello and Pull.
async fn handshaken(rogue: &Rogue, target: &Office, schema_hash: &str) -> RogueSession {
    let mut s = rogue
        .connect(target)
        .await
        .expect("the rogue's certificate is pinned");
    s.valid_hello(schema_hash).await;
    assert!(matches!(s.next_message().await, Some(Message::Hello(_))));
    assert!(matches!(s.next_message().await, Some(Message::Pull { .. })));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_closes_the_session_with_its_code() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    let rogue = Rogue::new(&c.path().join("rogue"), "rogue");
    puente(&[
        "peer",
        "add",
        "--config",
        c[TJ].config.to_str().unwrap(),
        "--name",
        "rogue",
        "--fingerprint",
        &rogue.fingerprint,
    ]);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    tj.put(
        "outreach_events",
        "before",
        &[("title", "written before the attacks")],
    )
    .await;
    wait_for("tijuana and san diego connected", || {
        connected(tj, "san-diego")
    })
    .await;
    let before = tj.status().await;
    let hash = before.schema_hash.clone();
    let schema = puente::config::Schema::parse(
        std::path::Path::new("s"),
        &std::fs::read_to_string(tj.dir.join("schema.toml")).unwrap(),
    )
    .unwrap();
    let residents = schema.table_index("residents").unwrap() as u16;
    let full_name = schema
        .table("residents")
        .unwrap()
        .column_index("full_name")
        .unwrap() as u16;

    let mut expected_errors: Vec<ErrorCode> = Vec::new();

    // Frames that cannot be decoded at all.
    let mut malformed = vec![0, 0, 0, 6, 1];
    malformed.extend([0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
    let mut unknown_version = vec![0, 0, 0, 3, 9, 0, 0];
    unknown_version.truncate(7);
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("a malformed frame", malformed, ErrorCode::MalformedFrame),
        (
            "a 4 GiB frame length",
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            ErrorCode::FrameTooLarge,
        ),
        (
            "a frame just over the limit",
            ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        (
            "an unknown message version",
            unknown_version,
            ErrorCode::UnknownMessageVersion,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut s = handshaken(&rogue, tj, &hash).await;
        s.send_raw(&bytes).await;
        assert_eq!(s.closed_with().await, Some(code), "{what}");
        expected_errors.push(code);
    }

    // Random bytes instead of a Hello.
    let mut s = rogue.connect(tj).await.unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.send_raw(&noise).await;
    let code = s.closed_with().await;
    assert!(
        matches!(
            code,
            Some(
                ErrorCode::FrameTooLarge
                    | ErrorCode::MalformedFrame
                    | ErrorCode::UnknownMessageVersion
            )
        ),
        "{code:?}"
    );
    expected_errors.push(code.unwrap());

    // A message before Hello, and a Hello from the future.
    let mut s = rogue.connect(tj).await.unwrap();
    s.send(&Message::Pull {
        cursor: Cursor::ZERO,
    })
    .await;
    assert_eq!(s.closed_with().await, Some(ErrorCode::UnexpectedMessage));
    expected_errors.push(ErrorCode::UnexpectedMessage);
    let mut s = rogue.connect(tj).await.unwrap();
    s.hello(&hash, 99).await;
    assert_eq!(s.closed_with().await, Some(ErrorCode::ProtocolMismatch));
    expected_errors.push(ErrorCode::ProtocolMismatch);
    // A Hello advertising garbage versions (none, zero, out of order, far
    // too many).
    for versions in [vec![], vec![0, 2], vec![2, 1], (1..=500).collect()] {
        let mut s = rogue.connect(tj).await.unwrap();
        s.hello_advertising(&hash, 2, versions.clone()).await;
        assert_eq!(
            s.closed_with().await,
            Some(ErrorCode::ProtocolMismatch),
            "{versions:?}"
        );
        expected_errors.push(ErrorCode::ProtocolMismatch);
    }
    let status = tj.status().await;
    let rogue_status = status.peers.iter().find(|p| p.name == "rogue").unwrap();
    let why = rogue_status.last_error.as_deref().unwrap_or("");
    assert!(
        why.contains("does not agree with version 2 negotiated"),
        "{why}"
    );

    // Batches the schema does not allow.
    let bad_batches = vec![
        ("an unknown table", batch(77, 0, Value::Text("x".into()))),
        ("an unknown column", batch(0, 99, Value::Text("x".into()))),
        (
            "plaintext in a sealed column",
            batch(residents, full_name, Value::Text("Plain Name Leak".into())),
        ),
        (
            "a non-age blob in a sealed column",
            batch(
                residents,
                full_name,
                Value::Blob(b"not an age file".to_vec()),
            ),
        ),
    ];
    for (what, message) in bad_batches {
        let mut s = handshaken(&rogue, tj, &hash).await;
        s.send(&message).await;
        assert_eq!(
            s.closed_with().await,
            Some(ErrorCode::InvalidBatch),
            "{what}"
        );
        expected_errors.push(ErrorCode::InvalidBatch);
    }

    // Ten thousand tiny batches as fast as they go.
    let mut s = handshaken(&rogue, tj, &hash).await;
    let tiny = encode(&Message::Batch {
        batch: Batch::default(),
        cursor: Cursor::ZERO,
        complete: false,
        head: 0,
    })
    .unwrap();
    let burst: Vec<u8> = tiny
        .iter()
        .copied()
        .cycle()
        .take(tiny.len() * 10_000)
        .collect();
    s.send_raw(&burst).await;
    assert_eq!(s.closed_with().await, Some(ErrorCode::Flood));
    expected_errors.push(ErrorCode::Flood);

    // The replica is unchanged, each event was counted and logged...
    let after = tj.status().await;
    assert_eq!((after.head, &after.digest), (before.head, &before.digest));
    let rogue_status = after.peers.iter().find(|p| p.name == "rogue").unwrap();
    for code in &expected_errors {
        let n = rogue_status
            .counters
            .errors
            .get(code.name())
            .copied()
            .unwrap_or(0);
        assert!(
            n >= 1,
            "{} not counted: {:?}",
            code.name(),
            rogue_status.counters.errors
        );
    }
    let logs = tj.logs();
    for code in &expected_errors {
        assert!(logs.contains(code.name()), "{} not logged", code.name());
    }
    assert!(
        !logs.contains("Plain Name Leak"),
        "a rejected value reached the log"
    );
    // ...and the real peer and the admin socket were never disturbed.
    sd.put(
        "outreach_events",
        "after",
        &[("title", "written after the attacks")],
    )
    .await;
    wait_for("san diego's write reaches tijuana", || async {
        cell(tj, "outreach_events", "after", "title", false)
            .await
            .is_some()
    })
    .await;
    let sd_peer = tj
        .status()
        .await
        .peers
        .into_iter()
        .find(|p| p.name == "san-diego")
        .unwrap();
    assert!(
        sd_peer.counters.errors.is_empty(),
        "{:?}",
        sd_peer.counters.errors
    );
}
