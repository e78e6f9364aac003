//! The frame decoder's fuzz corpus on stable Rust: replays every file in
//! `fuzz/corpus/frame_decoder/` through the fuzz target's own harness
//! (`fuzz/src/frame_check.rs`, included below), checks that each seed still
//! ends the way it was written to, and throws random bytes, random frames
//! and random chunkings at the decoder with proptest. Also writes the seed
//! corpus (`cargo test --test suite -- --ignored fuzz_corpus::write_seed_corpus`).

#[path = "../../fuzz/src/frame_check.rs"]
mod frame_check;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use frame_check::{End, Outcome, check_stream, input_bytes, peer_hello, schema};
use proptest::collection::vec;
use proptest::prelude::*;
use puente::clock::Hlc;
use puente::config::Group;
use puente::seal::{self, Binding};
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor, Digest};
use puente::sync::protocol::{
    ErrorCode, FrameDecoder, Hello, LENGTH_BYTES, MAX_FRAME, MAX_HELLO_FRAME, MESSAGE_FORMAT,
    Message, compress_frame, encode,
};
use puente::value::{Plaintext, Value};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_decoder")
}

/// The files of the corpus, sorted; panics if the folder is missing or empty.
fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the fuzz corpus {} cannot be read ({e}); it is checked in: restore it, or write the seeds with `cargo test --test suite -- --ignored fuzz_corpus::write_seed_corpus`",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the fuzz corpus {} is empty",
        dir.display()
    );
    files
}

#[test]
fn every_corpus_file_keeps_the_frame_decoder_invariants() {
    let files = corpus_files();
    let mut outcomes = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        match std::panic::catch_unwind(|| frame_check::run(&data)) {
            Ok(outcome) => {
                outcomes.insert(name, outcome);
            }
            Err(_) => failures.push(name),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus files that break an invariant (see the panics above): {failures:?}"
    );

    // Each seed still ends the way it was written to.
    let mut wrong = Vec::new();
    for seed in seeds() {
        let Some(outcome) = outcomes.get(seed.name) else {
            wrong.push(format!(
                "{}: missing (write it with `cargo test --test suite -- --ignored fuzz_corpus::write_seed_corpus`)",
                seed.name
            ));
            continue;
        };
        if let Some(expected) = &seed.expect
            && outcome != expected
        {
            wrong.push(format!(
                "{}: expected {expected:?}, got {outcome:?}",
                seed.name
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "seeds with another outcome:\n{}",
        wrong.join("\n")
    );
    eprintln!("{} corpus files replayed", files.len());
}

/// Rewrites the seed files (existing files of other names, such as
/// minimized fuzzer finds, are kept). Sealed cells are encrypted to a fresh
/// key, so those two files change each time.
#[test]
#[ignore = "writes fuzz/corpus/frame_decoder/; run by hand"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for seed in seeds() {
        std::fs::write(dir.join(seed.name), &seed.bytes).unwrap();
    }
}

// ---- the seeds ----

struct Seed {
    name: &'static str,
    /// A fuzz input: header, chunk sizes, stream (see `frame_check::Input`).
    bytes: Vec<u8>,
    /// `None` for random bytes: any outcome will do, as long as the
    /// invariants hold.
    expect: Option<Outcome>,
}

fn outcome(messages: &[&'static str], valid_batches: usize, end: End) -> Option<Outcome> {
    Some(Outcome {
        messages: messages.to_vec(),
        valid_batches,
        end,
    })
}

fn frame(message: &Message) -> Vec<u8> {
    encode(message).unwrap()
}

/// A frame with the given body and its true length.
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn hlc(n: u64) -> Hlc {
    Hlc::from_parts(1_700_000_000_000 + n, 0)
}

fn table_index(table: &str) -> u16 {
    schema()
        .tables
        .iter()
        .position(|t| t.name == table)
        .unwrap() as u16
}

fn column_index(table: &str, column: &str) -> u16 {
    let def = &schema().tables[usize::from(table_index(table))];
    def.column_index(column).unwrap() as u16
}

fn row(table: &str, id: &str, cells: Vec<(&str, Value)>) -> Change {
    Change::Row {
        table: table_index(table),
        id: id.into(),
        cells: cells
            .into_iter()
            .enumerate()
            .map(|(i, (column, value))| CellChange {
                column: column_index(table, column),
                hlc: hlc(i as u64 + 1),
                site: 0,
                value,
            })
            .collect(),
    }
}

fn tombstone(table: &str, id: &str) -> Change {
    Change::Tombstone {
        table: table_index(table),
        id: id.into(),
        hlc: hlc(9),
        site: 0,
    }
}

fn batch_of(sites: Vec<SiteId>, changes: Vec<Change>) -> Message {
    Message::Batch {
        batch: Batch { sites, changes },
        cursor: Cursor {
            base: 3,
            progress: 5,
        },
        complete: false,
        head: 9,
    }
}

fn batch(changes: Vec<Change>) -> Message {
    batch_of(vec![SiteId([3; 16])], changes)
}

fn hello(edit: impl FnOnce(&mut Hello)) -> Message {
    let mut hello = peer_hello();
    edit(&mut hello);
    Message::Hello(hello)
}

fn pull() -> Message {
    Message::Pull {
        cursor: Cursor::at(4),
    }
}

fn state() -> Message {
    Message::State {
        head: 12,
        digest: Digest([1, 2, 3, 4]),
        applied: Cursor {
            base: 2,
            progress: 6,
        },
        wall_ms: 1_700_000_000_123,
    }
}

/// A real sealed cell: an age file to a fresh key, bound to its cell.
fn sealed(id: &str, column: &str) -> Value {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let group = Group {
        name: "mx".into(),
        recipient_keys: vec![recipient.to_string()],
        recipients: vec![recipient],
    };
    let binding = Binding {
        table: "residents",
        id,
        column,
        hlc: hlc(1),
        site: SiteId([3; 16]),
    };
    Value::Blob(seal::seal(&group, &binding, &Plaintext::text("Ana María")).unwrap())
}

/// Deterministic noise (xorshift64).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn seeds() -> Vec<Seed> {
    let before = |name, stream: Vec<u8>, expect| Seed {
        name,
        bytes: input_bytes(true, &[], &stream),
        expect,
    };
    let after = |name, stream: Vec<u8>, expect| Seed {
        name,
        bytes: input_bytes(false, &[], &stream),
        expect,
    };
    let chunked = |name, chunks: &[u8], stream: Vec<u8>, expect| Seed {
        name,
        bytes: input_bytes(false, chunks, &stream),
        expect,
    };
    let hello_ok = frame(&hello(|_| {}));
    let rows = batch(vec![
        row(
            "outreach_events",
            "ev-1",
            vec![
                ("title", Value::Text("Clínica legal".into())),
                ("capacity", Value::Integer(40)),
            ],
        ),
        row(
            "residents",
            "res-1",
            vec![("household_size", Value::Integer(3))],
        ),
        tombstone("outreach_events", "ev-0"),
    ]);
    let several = concat(&[
        frame(&pull()),
        frame(&rows),
        frame(&state()),
        frame(&batch(vec![tombstone("residents", "res-9")])),
        frame(&pull()),
    ]);
    let several_expect = || {
        outcome(
            &["pull", "batch", "state", "batch", "pull"],
            2,
            End::NeedMore { pending: 0 },
        )
    };
    let need = |pending| End::NeedMore { pending };
    let rows_frame = frame(&rows);
    let state_frame = frame(&state());
    let pull_frame = frame(&pull());
    let truncated_state = concat(&[pull_frame.clone(), state_frame[..9].to_vec()]);
    let mut stray = frame(&pull());
    stray.push(0);
    let stray_len = (stray.len() - LENGTH_BYTES) as u32;
    stray[..LENGTH_BYTES].copy_from_slice(&stray_len.to_be_bytes());
    let v3 = |name, stream: Vec<u8>, expect| Seed {
        name,
        bytes: {
            let mut b = input_bytes(false, &[], &stream);
            b[0] |= frame_check::FLAG_VERSION_3;
            b
        },
        expect,
    };
    // A batch of ten long titles: compressed by a version 3 sender.
    let long_rows = batch(
        (0..10)
            .map(|i| {
                row(
                    "outreach_events",
                    &format!("ev-long-{i}"),
                    vec![(
                        "title",
                        Value::Text("Clínica legal en el centro comunitario. ".repeat(12)),
                    )],
                )
            })
            .collect(),
    );
    let compressed_rows = compress_frame(frame(&long_rows));
    assert_eq!(
        compressed_rows[LENGTH_BYTES], 3,
        "the seed batch compresses"
    );
    let bomb = zstd::bulk::compress(&vec![0u8; 17 << 20], 3).unwrap();

    vec![
        // The handshake, from the first byte, as the read loop sees it.
        before(
            "handshake-hello-pull-state",
            concat(&[hello_ok.clone(), frame(&pull()), frame(&state())]),
            outcome(&["hello", "pull", "state"], 0, need(0)),
        ),
        before(
            "handshake-hello-schema-mismatch",
            frame(&hello(|h| h.schema_hash = "0".repeat(64))),
            outcome(&["hello"], 0, End::Session(ErrorCode::SchemaMismatch)),
        ),
        before(
            "handshake-hello-same-site",
            frame(&hello(|h| h.site = frame_check::LOCAL_SITE)),
            outcome(&["hello"], 0, End::Session(ErrorCode::SameSite)),
        ),
        before(
            "handshake-hello-protocol-2",
            frame(&hello(|h| h.protocol = 2)),
            outcome(&["hello"], 0, End::Session(ErrorCode::ProtocolMismatch)),
        ),
        before(
            "handshake-pull-before-hello",
            frame(&pull()),
            outcome(&["pull"], 0, End::Session(ErrorCode::UnexpectedMessage)),
        ),
        before(
            "handshake-batch-before-hello",
            rows_frame.clone(),
            outcome(&["batch"], 0, End::Session(ErrorCode::UnexpectedMessage)),
        ),
        before(
            "handshake-length-over-hello-limit",
            ((MAX_HELLO_FRAME + 1) as u32).to_be_bytes().to_vec(),
            outcome(&[], 0, End::Decoder(ErrorCode::FrameTooLarge)),
        ),
        before(
            "handshake-limit-rises-after-hello",
            concat(&[
                hello_ok.clone(),
                ((MAX_HELLO_FRAME + 1) as u32).to_be_bytes().to_vec(),
                vec![MESSAGE_FORMAT, 2],
            ]),
            outcome(&["hello"], 0, need(LENGTH_BYTES + 2)),
        ),
        before(
            "handshake-hello-node-not-utf8",
            {
                // Hello: protocol 1, site, then a 2-byte node name 0xff 0xfe.
                let mut body = vec![MESSAGE_FORMAT, 0, 1];
                body.extend_from_slice(&[2; 16]);
                body.extend_from_slice(&[2, 0xff, 0xfe, 0, 0, 0]);
                raw_frame(&body)
            },
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        // Each message kind, after a valid Hello.
        after(
            "msg-second-hello",
            hello_ok.clone(),
            outcome(&["hello"], 0, End::Session(ErrorCode::UnexpectedMessage)),
        ),
        after(
            "msg-pull",
            pull_frame.clone(),
            outcome(&["pull"], 0, need(0)),
        ),
        after(
            "msg-state",
            state_frame.clone(),
            outcome(&["state"], 0, need(0)),
        ),
        after(
            "batch-rows-and-tombstone",
            rows_frame.clone(),
            outcome(&["batch"], 1, need(0)),
        ),
        after(
            "batch-sealed-age-files",
            frame(&batch(vec![row(
                "residents",
                "res-2",
                vec![
                    ("full_name", sealed("res-2", "full_name")),
                    ("phone", sealed("res-2", "phone")),
                    ("status", Value::Text("arrived".into())),
                ],
            )])),
            outcome(&["batch"], 1, need(0)),
        ),
        after(
            "batch-empty-complete",
            frame(&Message::Batch {
                batch: Batch::default(),
                cursor: Cursor::at(9),
                complete: true,
                head: 9,
            }),
            outcome(&["batch"], 1, need(0)),
        ),
        after(
            "batch-every-value-kind",
            frame(&batch(vec![row(
                "outreach_events",
                "ev-2",
                vec![
                    ("capacity", Value::Integer(-7)),
                    ("description", Value::Null),
                    ("location", Value::Blob(vec![0, 1, 2])),
                    ("status", Value::Real(f64::NAN)),
                    ("title", Value::Text(String::new())),
                ],
            )])),
            outcome(&["batch"], 1, need(0)),
        ),
        after(
            "batch-sealed-plaintext",
            frame(&batch(vec![row(
                "residents",
                "res-3",
                vec![("full_name", Value::Text("Ana María".into()))],
            )])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-sealed-fake-age-header",
            frame(&batch(vec![row(
                "residents",
                "res-3",
                vec![(
                    "full_name",
                    Value::Blob(b"age-encryption.org/v1\n-> X25519 AAAA\n--- \n".to_vec()),
                )],
            )])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-unknown-table",
            frame(&batch(vec![Change::Tombstone {
                table: 99,
                id: "x".into(),
                hlc: hlc(1),
                site: 0,
            }])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-unknown-column",
            frame(&batch(vec![Change::Row {
                table: 0,
                id: "x".into(),
                cells: vec![CellChange {
                    column: 200,
                    hlc: hlc(1),
                    site: 0,
                    value: Value::Null,
                }],
            }])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-bad-row-id",
            frame(&batch(vec![tombstone("residents", "../etc/passwd")])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-site-out-of-range",
            frame(&batch_of(
                vec![],
                vec![row("outreach_events", "ev-3", vec![("title", Value::Null)])],
            )),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-tombstone-zero-hlc",
            frame(&batch(vec![Change::Tombstone {
                table: 0,
                id: "x".into(),
                hlc: Hlc::ZERO,
                site: 0,
            }])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        after(
            "batch-repeated-site",
            frame(&batch_of(vec![SiteId([3; 16]); 2], vec![])),
            outcome(&["batch"], 0, End::InvalidBatch),
        ),
        // Several frames, in one push and in chunks.
        after("several-messages", several.clone(), several_expect()),
        chunked(
            "several-messages-byte-by-byte",
            &[1],
            several.clone(),
            several_expect(),
        ),
        chunked(
            "several-messages-odd-chunks",
            &[3, 0, 17, 1, 250, 0, 5],
            several,
            several_expect(),
        ),
        chunked(
            "many-pulls-in-small-chunks",
            &[7, 13, 0],
            pull_frame.repeat(400),
            outcome(&["pull"; 400], 0, need(0)),
        ),
        // Incomplete frames wait for more.
        after(
            "truncated-length-prefix",
            pull_frame[..3].to_vec(),
            outcome(&[], 0, need(3)),
        ),
        chunked(
            "truncated-batch-body",
            &[2],
            rows_frame[..rows_frame.len() - 1].to_vec(),
            outcome(&[], 0, need(rows_frame.len() - 1)),
        ),
        after(
            "pull-then-truncated-state",
            truncated_state,
            outcome(&["pull"], 0, need(9)),
        ),
        after(
            "length-at-limit-waits",
            concat(&[
                (MAX_FRAME as u32).to_be_bytes().to_vec(),
                vec![MESSAGE_FORMAT; 10],
            ]),
            outcome(&[], 0, need(LENGTH_BYTES + 10)),
        ),
        // Frames refused by the decoder.
        after(
            "length-4gib",
            vec![0xff, 0xff, 0xff, 0xff, MESSAGE_FORMAT],
            outcome(&[], 0, End::Decoder(ErrorCode::FrameTooLarge)),
        ),
        after(
            "length-limit-plus-one",
            ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec(),
            outcome(&[], 0, End::Decoder(ErrorCode::FrameTooLarge)),
        ),
        after(
            "format-byte-9",
            raw_frame(&[9, 1, 0, 0]),
            outcome(&[], 0, End::Decoder(ErrorCode::UnknownMessageVersion)),
        ),
        after(
            "empty-frame",
            vec![0, 0, 0, 0],
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        after(
            "stray-byte-after-pull",
            stray,
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        after(
            "unknown-message-variant",
            raw_frame(&[MESSAGE_FORMAT, 4, 0]),
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        after(
            "undecodable-body",
            raw_frame(&[MESSAGE_FORMAT, 0xee, 0xee]),
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        after(
            "pull-then-format-byte-0",
            // Format 0 is the `Versions` message of a connection without a
            // common version: out of place on one that has one.
            concat(&[pull_frame.clone(), raw_frame(&[0, 1, 0, 0])]),
            outcome(
                &["pull", "versions"],
                0,
                End::Session(ErrorCode::UnexpectedMessage),
            ),
        ),
        // Noise.
        after("random-bytes", noise(256, 0x9e37_79b9_7f4a_7c15), None),
        chunked(
            "random-bytes-after-pull-chunked",
            &[5, 1],
            concat(&[pull_frame, noise(64, 0x2545_f491_4f6c_dd1d)]),
            None,
        ),
        before("random-bytes-before-hello", noise(128, 7), None),
        // Protocol version 3: compressed frames.
        v3(
            "v3-compressed-batch",
            concat(&[frame(&pull()), compressed_rows.clone(), frame(&state())]),
            outcome(&["pull", "batch", "state"], 1, need(0)),
        ),
        v3(
            "v3-compressed-bomb",
            raw_frame(&compressed_body(17 << 20, &bomb)),
            outcome(&[], 0, End::Decoder(ErrorCode::FrameTooLarge)),
        ),
        v3(
            "v3-compressed-size-a-lie",
            raw_frame(&compressed_body(1_000, &bomb)),
            outcome(&[], 0, End::Decoder(ErrorCode::MalformedFrame)),
        ),
        v3(
            "v3-compressed-unknown-format-inside",
            raw_frame(&compressed_body(
                64,
                &zstd::bulk::compress(&[9u8; 64], 3).unwrap(),
            )),
            outcome(&[], 0, End::Decoder(ErrorCode::UnknownMessageVersion)),
        ),
        after(
            "v1-compressed-batch",
            // Format 3 is unknown to a connection of version 1 or 2.
            compressed_rows,
            outcome(&[], 0, End::Decoder(ErrorCode::UnknownMessageVersion)),
        ),
    ]
}

/// A compressed body (format 3) stating `size`.
fn compressed_body(size: u32, packed: &[u8]) -> Vec<u8> {
    let mut body = vec![3u8];
    body.extend_from_slice(&size.to_be_bytes());
    body.extend_from_slice(packed);
    body
}

// ---- random inputs ----

fn message_strategy() -> impl Strategy<Value = Message> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Real),
        ".{0,8}".prop_map(Value::Text),
        vec(any::<u8>(), 0..24).prop_map(Value::Blob),
    ];
    let id = prop_oneof![3 => "[a-z0-9-]{1,8}", 1 => ".{0,4}"];
    let cell =
        (0u16..12, 0u64..4, 0u32..3, value).prop_map(|(column, hlc, site, value)| CellChange {
            column,
            hlc: Hlc(hlc),
            site,
            value,
        });
    let change = prop_oneof![
        (0u16..3, id.clone(), vec(cell, 0..4)).prop_map(|(table, id, cells)| Change::Row {
            table,
            id,
            cells
        }),
        (0u16..3, id, 0u64..4, 0u32..3).prop_map(|(table, id, hlc, site)| Change::Tombstone {
            table,
            id,
            hlc: Hlc(hlc),
            site,
        }),
    ];
    let cursor =
        (any::<u64>(), any::<u64>()).prop_map(|(base, progress)| Cursor { base, progress });
    prop_oneof![
        (any::<u16>(), any::<[u8; 16]>(), ".{0,12}", any::<u64>()).prop_map(
            |(protocol, site, node, head)| Message::Hello(Hello {
                protocol,
                versions: if protocol >= 2 {
                    (1..=protocol.min(40)).collect()
                } else {
                    vec![protocol]
                },
                site: SiteId(site),
                node,
                schema_hash: schema().hash().to_string(),
                schema: (protocol >= 2).then(|| schema().canonical()),
                head,
                wall_ms: head,
            })
        ),
        cursor.clone().prop_map(|cursor| Message::Pull { cursor }),
        (
            vec(any::<[u8; 16]>(), 0..3),
            vec(change, 0..5),
            cursor.clone(),
            any::<bool>()
        )
            .prop_map(|(sites, changes, cursor, complete)| Message::Batch {
                batch: Batch {
                    sites: sites.into_iter().map(SiteId).collect(),
                    changes,
                },
                cursor,
                complete,
                head: cursor.progress,
            }),
        (any::<u64>(), any::<[u64; 4]>(), cursor).prop_map(|(head, digest, applied)| {
            Message::State {
                head,
                digest: Digest(digest),
                applied,
                wall_ms: head,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    })]

    /// Raw fuzz inputs: header, chunk sizes and stream all random.
    #[test]
    fn random_fuzz_inputs_keep_the_invariants(data in vec(any::<u8>(), 0..2048)) {
        frame_check::run(&data);
    }

    /// Random bytes in random chunks, before and after the handshake.
    #[test]
    fn random_bytes_in_random_chunks_keep_the_invariants(
        stream in vec(any::<u8>(), 0..2048),
        chunks in vec(0usize..300, 0..16),
        before_hello in any::<bool>(),
    ) {
        check_stream(&stream, &chunks, before_hello);
    }

    /// Frames with true lengths and random bodies (mostly with the right
    /// format byte), so postcard sees the random bytes.
    #[test]
    fn random_bodies_in_true_frames_keep_the_invariants(
        bodies in vec((0u8..8, vec(any::<u8>(), 0..48)), 1..12),
        chunks in vec(0usize..64, 0..8),
        before_hello in any::<bool>(),
    ) {
        let mut stream = Vec::new();
        for (format, body) in &bodies {
            let mut full = vec![if *format == 0 { 9 } else { MESSAGE_FORMAT }];
            full.extend_from_slice(body);
            stream.extend(raw_frame(&full));
        }
        check_stream(&stream, &chunks, before_hello);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    /// Valid frames come out exactly, in order, however they are split; the
    /// harness's invariants hold for them too.
    #[test]
    fn valid_frames_decode_exactly_in_any_chunking(
        messages in vec(message_strategy(), 0..10),
        chunks in vec(1usize..96, 1..8),
        trailing in vec(any::<u8>(), 0..3),
    ) {
        let frames: Vec<Vec<u8>> = messages.iter().map(frame).collect();
        let mut stream = frames.concat();
        stream.extend_from_slice(&trailing);
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        let mut fed = 0;
        for size in chunks.iter().cycle() {
            let end = (fed + size).min(stream.len());
            decoder.push(&stream[fed..end]);
            fed = end;
            while let Some(m) = decoder.next_message().unwrap() {
                decoded.push(frame(&m));
            }
            if fed == stream.len() {
                break;
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.pending(), trailing.len());
        check_stream(&stream, &chunks, false);
        check_stream(&stream, &chunks, true);
    }
}
