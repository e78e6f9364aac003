//! The frame decoder's fuzz harness body, shared by the fuzz target
//! (`fuzz/fuzz_targets/frame_decoder.rs`) and the stable corpus replay test
//! (`tests/suite/fuzz_corpus.rs`, which includes this file with `#[path]`).
//!
//! Owns: the layout of a fuzz input (header byte, chunk sizes, stream), and
//! one run of a stream through `FrameDecoder` → the session machine →
//! `store::validate` the way the sync executor does it, asserting the
//! decoder's invariants against an independent reading of the same bytes.
//! Must not: depend on anything but puente and std (the main crate's
//! `cargo test` compiles it without libFuzzer). A failed assertion here is
//! the bug being hunted, so this harness panics freely.

use std::collections::HashSet;
use std::sync::OnceLock;

use puente::config::Schema;
use puente::seal;
use puente::stamp::SiteId;
use puente::store::{self, Batch, Change, PeerRef, StoreError};
use puente::sync::protocol::{
    self, ErrorCode, FrameDecoder, Hello, KNOWN_FORMATS, LENGTH_BYTES, MAX_FRAME, MAX_HELLO_FRAME,
    Message,
};
use puente::sync::rules::LocalInfo;
use puente::sync::session::{self as machine, Action, Limits, Received, Session, Timing};
use puente::value::Value;

/// Header flag: start before the handshake like the real read loop (frame
/// limit `MAX_HELLO_FRAME`, the first message must be the peer's Hello).
/// Without it the session has already accepted `peer_hello()`.
pub const FLAG_BEFORE_HELLO: u8 = 0x80;
/// Header flag: the connection negotiated protocol version 2 (else 1).
pub const FLAG_VERSION_2: u8 = 0x40;
/// Header flag: the connection negotiated protocol version 3, which reads
/// compressed frames (wins over `FLAG_VERSION_2`).
pub const FLAG_VERSION_3: u8 = 0x20;
/// The format byte of a compressed frame (protocol version 3).
const FORMAT_COMPRESSED: u8 = 3;
/// Header bits: how many chunk-size bytes follow the header byte.
pub const CHUNK_COUNT_MASK: u8 = 0x0f;

/// The harness's own replica.
pub const LOCAL_SITE: SiteId = SiteId([1; 16]);
/// The peer the stream comes from.
pub const PEER_SITE: SiteId = SiteId([2; 16]);

/// The schema the corpus was written with (puente 0.1.0's shipped schema,
/// kept here so the seeds' schema hash stays valid when the shipped one
/// changes), parsed once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::parse(
            std::path::Path::new("schema-0.1.0.toml"),
            include_str!("schema-0.1.0.toml"),
        )
        .expect("the corpus schema parses")
    })
}

pub fn local_info() -> LocalInfo {
    LocalInfo {
        site: LOCAL_SITE,
        node: "fuzz-local".into(),
        schema_hash: schema().hash().to_string(),
        schema: schema().canonical(),
        versions: protocol::SPOKEN.to_vec(),
    }
}

/// A version 1 Hello the harness's session accepts (the corpus speaks 1).
pub fn peer_hello() -> Hello {
    peer_hello_in(1)
}

/// A Hello in `version` the harness's session accepts.
pub fn peer_hello_in(version: u16) -> Hello {
    Hello {
        protocol: version,
        versions: (1..=version).collect(),
        site: PEER_SITE,
        node: "fuzz-peer".into(),
        schema_hash: schema().hash().to_string(),
        schema: (version >= 2).then(|| schema().canonical()),
        head: 7,
        wall_ms: 1_700_000_000_000,
    }
}

fn peer_ref() -> PeerRef {
    PeerRef {
        site: PEER_SITE,
        name: "fuzz-peer".into(),
    }
}

/// One fuzz input: `[header] [chunk sizes …] [stream …]`. The header's low
/// four bits count the chunk-size bytes; the stream is pushed in chunks of
/// those sizes, cycling (0 is an empty push; no sizes, or only zeros, push
/// it whole). `FLAG_BEFORE_HELLO` in the header starts before the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    pub before_hello: bool,
    /// The version the connection negotiated.
    pub version: u16,
    pub chunks: Vec<usize>,
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let Some((&header, rest)) = data.split_first() else {
            return Input {
                before_hello: false,
                version: 1,
                chunks: Vec::new(),
                stream: &[],
            };
        };
        let count = usize::from(header & CHUNK_COUNT_MASK).min(rest.len());
        let (sizes, stream) = rest.split_at(count);
        Input {
            before_hello: header & FLAG_BEFORE_HELLO != 0,
            version: if header & FLAG_VERSION_3 != 0 {
                3
            } else if header & FLAG_VERSION_2 != 0 {
                2
            } else {
                1
            },
            chunks: sizes.iter().map(|&s| usize::from(s)).collect(),
            stream,
        }
    }
}

/// The bytes of an input that `Input::parse` reads back.
pub fn input_bytes(before_hello: bool, chunks: &[u8], stream: &[u8]) -> Vec<u8> {
    assert!(chunks.len() <= usize::from(CHUNK_COUNT_MASK));
    let mut header = chunks.len() as u8;
    if before_hello {
        header |= FLAG_BEFORE_HELLO;
    }
    let mut out = vec![header];
    out.extend_from_slice(chunks);
    out.extend_from_slice(stream);
    out
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// Every byte was fed and the decoder wants more; `pending` bytes of an
    /// incomplete frame are buffered.
    NeedMore { pending: usize },
    /// The decoder refused a frame.
    Decoder(ErrorCode),
    /// The session refused a message.
    Session(ErrorCode),
    /// `store::validate` refused a batch (the peer closes with
    /// `invalid_batch`).
    InvalidBatch,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Kinds of the messages decoded, in order.
    pub messages: Vec<&'static str>,
    /// Batches `store::validate` accepted.
    pub valid_batches: usize,
    pub end: End,
}

/// Runs one fuzz input (see `Input`).
pub fn run(data: &[u8]) -> Outcome {
    let input = Input::parse(data);
    check_stream_in(
        input.version,
        input.stream,
        &input.chunks,
        input.before_hello,
    )
}

/// Feeds `stream` to a decoder in chunks of the given sizes (cycling), and
/// everything it decodes to a session and, for batches, to
/// `store::validate`, stopping at the first refusal as the peer would.
/// Panics if an invariant does not hold.
pub fn check_stream(stream: &[u8], chunks: &[usize], before_hello: bool) -> Outcome {
    check_stream_in(1, stream, chunks, before_hello)
}

/// `check_stream` on a connection that negotiated `version`.
pub fn check_stream_in(
    version: u16,
    stream: &[u8],
    chunks: &[usize],
    before_hello: bool,
) -> Outcome {
    let mut run = Run::new(stream, before_hello, version);
    let whole = [stream.len()];
    let sizes = if chunks.iter().any(|&c| c > 0) {
        chunks
    } else {
        &whole[..]
    };
    let mut sizes = sizes.iter().cycle();
    loop {
        let size = sizes.next().copied().unwrap_or(0);
        let chunk = &stream[run.fed..(run.fed + size).min(stream.len())];
        run.decoder.push(chunk);
        run.fed += chunk.len();
        if let Some(end) = run.drain() {
            return run.finish(end);
        }
        if run.fed == stream.len() {
            let pending = run.decoder.pending();
            return run.finish(End::NeedMore { pending });
        }
    }
}

struct Run<'a> {
    stream: &'a [u8],
    fed: usize,
    decoder: FrameDecoder,
    version: u16,
    limit: usize,
    session: Session,
    messages: Vec<&'static str>,
    valid_batches: usize,
}

impl<'a> Run<'a> {
    fn new(stream: &'a [u8], before_hello: bool, version: u16) -> Run<'a> {
        let mut session = Session::new(
            local_info(),
            Limits::default(),
            Timing::default(),
            version,
            (0, 0),
            0,
        );
        // Our own Hello goes out first.
        assert!(matches!(
            session.poll_action(),
            Some(Action::Send(Message::Hello(_)))
        ));
        let limit = if before_hello {
            MAX_HELLO_FRAME
        } else {
            session.handle(
                machine::Input::Frame(Message::Hello(peer_hello_in(version))),
                0,
            );
            let actions: Vec<Action> = std::iter::from_fn(|| session.poll_action()).collect();
            assert!(
                actions
                    .iter()
                    .any(|a| matches!(a, Action::SetFrameLimit(MAX_FRAME))),
                "the harness's own Hello was refused: {actions:?}"
            );
            MAX_FRAME
        };
        let mut decoder = FrameDecoder::with_limit(limit);
        decoder.set_compressed(protocol::compresses(version));
        Run {
            stream,
            fed: 0,
            decoder,
            version,
            limit,
            session,
            messages: Vec::new(),
            valid_batches: 0,
        }
    }

    fn finish(self, end: End) -> Outcome {
        Outcome {
            messages: self.messages,
            valid_batches: self.valid_batches,
            end,
        }
    }

    /// Takes messages until the decoder needs more bytes (`None`) or
    /// something refuses (`Some(end)`).
    fn drain(&mut self) -> Option<End> {
        loop {
            let consumed = usize::try_from(self.decoder.bytes_decoded).unwrap();
            assert!(
                consumed <= self.fed,
                "decoded {consumed} of {} bytes fed",
                self.fed
            );
            // The decoder holds exactly what was fed and not yet decoded.
            assert_eq!(self.decoder.pending(), self.fed - consumed);
            let rest = &self.stream[consumed..self.fed];
            let announced = rest
                .get(..LENGTH_BYTES)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let result = self.decoder.next_message();
            let after = usize::try_from(self.decoder.bytes_decoded).unwrap();
            match result {
                Ok(None) => {
                    // Ok(None) means more bytes are needed: a partial length
                    // prefix, or a valid length whose body is incomplete.
                    if let Some(len) = announced {
                        assert!(
                            (1..=self.limit).contains(&len),
                            "waiting on a frame of {len} bytes (limit {})",
                            self.limit
                        );
                        assert!(
                            rest.len() < LENGTH_BYTES + len,
                            "waiting with a whole {len}-byte frame buffered"
                        );
                    }
                    assert_eq!(after, consumed, "Ok(None) consumed bytes");
                    assert_eq!(self.decoder.pending(), rest.len());
                    // Never more than one frame's worth held once drained.
                    assert!(self.decoder.pending() < LENGTH_BYTES + self.limit);
                    return None;
                }
                Err(violation) => {
                    let len = announced.expect("an error before a whole length prefix arrived");
                    let expected = if len > self.limit {
                        ErrorCode::FrameTooLarge
                    } else if len == 0 {
                        ErrorCode::MalformedFrame
                    } else {
                        assert!(
                            rest.len() >= LENGTH_BYTES + len,
                            "an error on an incomplete frame: {violation}"
                        );
                        let format = rest[LENGTH_BYTES];
                        let stated = rest
                            .get(LENGTH_BYTES + 1..LENGTH_BYTES + 5)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                        if !KNOWN_FORMATS.contains(&format)
                            || (format == FORMAT_COMPRESSED && self.version < 3)
                        {
                            ErrorCode::UnknownMessageVersion
                        } else if format == FORMAT_COMPRESSED
                            && len >= 5
                            && stated.is_some_and(|n| n > self.limit)
                        {
                            // A bomb: refused by its stated size.
                            ErrorCode::FrameTooLarge
                        } else if format == FORMAT_COMPRESSED
                            && violation.code == ErrorCode::UnknownMessageVersion
                        {
                            // The body inside has a format this node does not read.
                            ErrorCode::UnknownMessageVersion
                        } else {
                            ErrorCode::MalformedFrame
                        }
                    };
                    assert_eq!(violation.code, expected, "{violation}");
                    assert!(!violation.reason.is_empty());
                    return Some(End::Decoder(violation.code));
                }
                Ok(Some(message)) => {
                    let len = announced.expect("a message before a whole length prefix arrived");
                    assert!((1..=self.limit).contains(&len));
                    assert!(rest.len() >= LENGTH_BYTES + len);
                    assert!(KNOWN_FORMATS.contains(&rest[LENGTH_BYTES]));
                    assert_eq!(after, consumed + LENGTH_BYTES + len, "consumed one frame");
                    // The frame alone decodes to the same message.
                    let alone = protocol::decode_body(&rest[LENGTH_BYTES..LENGTH_BYTES + len])
                        .expect("decode_body refuses a frame the decoder accepted");
                    assert_eq!(protocol::encode(&alone), protocol::encode(&message));
                    check_round_trip(&message);
                    if let Some(end) = self.receive(message) {
                        return Some(end);
                    }
                }
            }
        }
    }

    fn receive(&mut self, message: Message) -> Option<End> {
        let kind = message.kind();
        self.messages.push(kind);
        let handshaken = self.session.peer().is_some();
        let now_ms = self.messages.len() as u64;
        self.session.handle(machine::Input::Frame(message), now_ms);
        // Carry out what the session asks, as the executor does.
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::SetFrameLimit(limit) => {
                    assert!(!handshaken && kind == "hello", "limit raised by a {kind}");
                    let hello = self
                        .session
                        .peer()
                        .expect("a limit follows an accepted Hello");
                    assert_eq!(hello.protocol, self.session.version());
                    assert_eq!(hello.schema_hash, schema().hash());
                    assert_ne!(hello.site, LOCAL_SITE);
                    self.limit = limit;
                    self.decoder.set_limit(limit);
                }
                Action::Validate {
                    batch,
                    cursor,
                    complete,
                    head,
                } => {
                    assert!(
                        handshaken && kind == "batch",
                        "validation asked for a {kind}"
                    );
                    match self.validate(batch) {
                        Ok(batch) => self.session.handle(
                            machine::Input::Validated(Ok(Received {
                                batch,
                                cursor,
                                complete,
                                head,
                            })),
                            now_ms,
                        ),
                        Err(end) => return Some(end),
                    }
                }
                Action::Bind(site) => {
                    assert!(!handshaken && kind == "hello", "bind asked for a {kind}");
                    assert_eq!(self.session.peer().map(|h| h.site), Some(site));
                    self.session.handle(machine::Input::Bound(Ok(())), now_ms);
                }
                Action::Apply { .. } => self.session.handle(
                    machine::Input::Applied(Ok(machine::GroupApplied::default())),
                    now_ms,
                ),
                Action::Close(violation) => {
                    let allowed: &[ErrorCode] = if handshaken || kind == "versions" {
                        &[ErrorCode::UnexpectedMessage, ErrorCode::Flood]
                    } else if kind == "hello" {
                        &[
                            ErrorCode::ProtocolMismatch,
                            ErrorCode::SchemaMismatch,
                            ErrorCode::SameSite,
                        ]
                    } else {
                        &[ErrorCode::UnexpectedMessage]
                    };
                    assert!(
                        allowed.contains(&violation.code),
                        "a {kind} message refused with {violation}"
                    );
                    if handshaken && kind == "hello" {
                        assert_eq!(violation.code, ErrorCode::UnexpectedMessage);
                    }
                    assert!(!violation.reason.is_empty());
                    return Some(End::Session(violation.code));
                }
                Action::Send(_)
                | Action::SendPull
                | Action::SendState
                | Action::Pump { .. }
                | Action::Report(_) => {}
            }
        }
        None
    }

    fn validate(&mut self, batch: Batch) -> Result<store::Validated, End> {
        match store::validate(schema(), &peer_ref(), batch.clone()) {
            Ok(validated) => {
                assert_eq!(batch_bytes(validated.batch()), batch_bytes(&batch));
                assert_well_formed(&batch);
                self.valid_batches += 1;
                Ok(validated)
            }
            Err(StoreError::InvalidBatch { reason, .. }) => {
                assert!(!reason.is_empty());
                Err(End::InvalidBatch)
            }
            Err(other) => panic!("validate failed with something else than InvalidBatch: {other}"),
        }
    }
}

/// A decoded message encodes to a frame that decodes to the same message
/// (compared as encodings, so a NaN real compares equal to itself).
pub fn check_round_trip(message: &Message) {
    let frame = protocol::encode(message).expect("a decoded message encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    let again = decoder
        .next_message()
        .expect("an encoded message decodes")
        .expect("an encoded message is one whole frame");
    assert_eq!(decoder.pending(), 0);
    assert_eq!(decoder.bytes_decoded, frame.len() as u64);
    assert_eq!(protocol::encode(&again).expect("re-encodes"), frame);
    assert_eq!(again.kind(), message.kind());
}

/// A batch's encoding, to compare batches bit for bit (a NaN real is not
/// equal to itself).
fn batch_bytes(batch: &Batch) -> Vec<u8> {
    protocol::encode(&Message::Batch {
        batch: batch.clone(),
        cursor: Default::default(),
        complete: false,
        head: 0,
    })
    .expect("a decoded batch encodes")
}

/// What `store::validate` promises of a batch it accepts, checked
/// independently: known tables and columns, valid ids, site indices inside
/// a dictionary without repeats, non-zero timestamps, age files in sealed
/// columns.
fn assert_well_formed(batch: &Batch) {
    let schema = schema();
    let distinct: HashSet<_> = batch.sites.iter().collect();
    assert_eq!(distinct.len(), batch.sites.len(), "accepted repeated sites");
    let sites = batch.sites.len();
    for change in &batch.changes {
        match change {
            Change::Tombstone {
                table,
                id,
                hlc,
                site,
            } => {
                assert!(usize::from(*table) < schema.tables.len(), "table {table}");
                assert!(store::valid_id(id), "accepted id {id:?}");
                assert!(
                    (*site as usize) < sites && hlc.0 != 0,
                    "accepted a bad tombstone"
                );
            }
            Change::Row { table, id, cells } => {
                let def = &schema.tables[usize::from(*table)];
                assert!(store::valid_id(id), "accepted id {id:?}");
                for cell in cells {
                    let column = &def.columns[usize::from(cell.column)];
                    assert!((cell.site as usize) < sites && cell.hlc.0 != 0);
                    if column.is_sealed() {
                        assert!(
                            matches!(&cell.value, Value::Blob(b) if b.starts_with(seal::AGE_MAGIC)),
                            "accepted a {} in sealed column {}",
                            cell.value.kind(),
                            column.name
                        );
                    }
                }
            }
        }
    }
}
