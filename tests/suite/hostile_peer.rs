//! A peer holding a pinned certificate that misbehaves: every kind of bad
//! input closes its session with a specific code, is logged and counted,
//! leaves the replica unchanged, and the daemon keeps serving its real peer
//! and its admin socket.

use crate::cluster;

use cluster::rogue::{Rogue, RogueSession};
use cluster::*;
use puente::clock::Hlc;
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor};
use puente::sync::protocol::{
    ErrorCode, MAX_FRAME, MAX_HELLO_FRAME, Message, PROTOCOL_VERSION, compress_frame, encode,
};
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
        s.hello_advertising(&hash, PROTOCOL_VERSION, versions.clone())
            .await;
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
        why.contains(&format!(
            "does not agree with version {PROTOCOL_VERSION} negotiated"
        )),
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

/// A compressed frame (format 3): the zstd frame inside and the size it
/// states, whatever they are.
fn compressed(stated: u32, packed: &[u8]) -> Vec<u8> {
    let mut body = vec![3u8];
    body.extend_from_slice(&stated.to_be_bytes());
    body.extend_from_slice(packed);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_frames_are_read_within_the_limit_and_bombs_are_refused() {
    let mut c = Cluster::new(&[("tijuana", true)]);
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
    let tj = &c[TJ];
    let hash = tj.status().await.schema_hash.clone();
    let title = schema_index(tj, "outreach_events", "title");

    // A positive control: a compressed batch of a long title is applied.
    let mut s = handshaken(&rogue, tj, &hash).await;
    let long = "a walk-in clinic at the community centre; ".repeat(200);
    let frame =
        compress_frame(encode(&batch(title.0, title.1, Value::Text(long.clone()))).unwrap());
    assert_eq!(frame[4], 3, "the rogue's batch went compressed");
    s.send_raw(&frame).await;
    wait_for("the compressed batch is applied", || async {
        cell(tj, "outreach_events", "hostile-row", "title", false)
            .await
            .as_deref()
            == Some(long.as_str())
    })
    .await;
    drop(s);
    let before = tj.status().await;

    // 64 MiB of zeros: a few kilobytes compressed.
    let bomb = zstd_bomb();
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "a bomb stating its 64 MiB",
            compressed(64 << 20, &bomb),
            ErrorCode::FrameTooLarge,
        ),
        (
            "a frame stating one byte over the limit",
            compressed((MAX_FRAME + 1) as u32, &bomb),
            ErrorCode::FrameTooLarge,
        ),
        (
            "a bomb stating a kilobyte",
            compressed(1_000, &bomb),
            ErrorCode::MalformedFrame,
        ),
        (
            "a compressed frame that is not zstd",
            compressed(1_000, b"not zstd at all"),
            ErrorCode::MalformedFrame,
        ),
    ];
    let mut expected = Vec::new();
    for (what, bytes, code) in cases {
        let mut s = handshaken(&rogue, tj, &hash).await;
        s.send_raw(&bytes).await;
        assert_eq!(s.closed_with().await, Some(code), "{what}");
        expected.push(code);
    }
    // Before Hello the limit is a Hello's: a compressed frame stating more
    // is refused as well.
    let mut s = rogue.connect(tj).await.unwrap();
    s.send_raw(&compressed((MAX_HELLO_FRAME + 1) as u32, &bomb))
        .await;
    assert_eq!(s.closed_with().await, Some(ErrorCode::FrameTooLarge));

    let after = tj.status().await;
    assert_eq!((after.head, &after.digest), (before.head, &before.digest));
    let counted = &after
        .peers
        .iter()
        .find(|p| p.name == "rogue")
        .unwrap()
        .counters
        .errors;
    assert!(
        counted.get("frame_too_large").copied().unwrap_or(0) >= 3,
        "{counted:?}"
    );
    assert!(
        counted.get("malformed_frame").copied().unwrap_or(0) >= 2,
        "{counted:?}"
    );
    // The daemon's peak memory never held a decompressed bomb.
    let status = std::fs::read_to_string(format!("/proc/{}/status", tj.pid().unwrap())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        peak_kib > 1024 && peak_kib < 60 * 1024,
        "peak RSS {peak_kib} KiB"
    );
    assert!(tj.client().health().await.is_ok());
}

fn zstd_bomb() -> Vec<u8> {
    zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap()
}

/// (table, column) indices of a column in the office's schema.
fn schema_index(o: &Office, table: &str, column: &str) -> (u16, u16) {
    let schema = puente::config::Schema::parse(
        std::path::Path::new("s"),
        &std::fs::read_to_string(o.dir.join("schema.toml")).unwrap(),
    )
    .unwrap();
    let t = schema.table_index(table).unwrap();
    let c = schema.table(table).unwrap().column_index(column).unwrap();
    (t as u16, c as u16)
}
