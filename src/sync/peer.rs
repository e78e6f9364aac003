//! Drives one sync session over an established QUIC connection.
//!
//! Owns: the stream (one bidirectional stream; each direction an ordered
//! sequence of frames), the writer, the reader (decode, check with
//! `Session`, hand batches to `receive::Applier`, answer Hello and Pull,
//! record State), the session's end and what status shows about it. The
//! sending side lives in push.rs, the applying side in receive.rs.
//! Must not: decide protocol rules (session.rs) or merges (store/).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::sync::{mpsc, watch};

use super::protocol::{
    ErrorCode, FrameDecoder, MAX_FRAME, MAX_HELLO_FRAME, Message, Violation, encode,
};
use super::push::{announce, run_pump};
use super::receive::{Applier, validate_off_thread};
use super::session::{Event, LocalInfo, Session};
use crate::config::PeerConfig;
use crate::node::{Node, NodeError};
use crate::stamp::SiteId;
use crate::store::StoreError;

/// Rows and bytes per batch the pump sends.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub batch_rows: usize,
    pub batch_bytes: usize,
    /// Changes the receiver applies in one transaction at most.
    pub group_changes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_rows: 1_000,
            batch_bytes: 1 << 20,
            group_changes: 5_000,
        }
    }
}

/// Hello must arrive within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// State announcements wait this long after a commit, to coalesce bursts.
pub(super) const STATE_DEBOUNCE: Duration = Duration::from_millis(20);
/// Live pushes are paced at one per this interval at most.
pub(super) const LIVE_PACE: Duration = Duration::from_millis(1);
/// Bytes taken from the stream ahead of decoding, at most (about one group).
const READ_AHEAD: usize = 2 << 20;
/// A clock this far off is logged as a warning.
pub(super) const SKEW_WARNING_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub struct Ended {
    /// Why, in a sentence (for logs and status).
    pub reason: String,
    /// The error code, if either side closed with one.
    pub code: Option<ErrorCode>,
    /// Whether the end is a problem worth showing (not a shutdown, a
    /// replaced duplicate or this node closing).
    pub error: bool,
    /// Whether it reached the point of exchanging changes.
    pub handshaken: bool,
    pub lasted: Duration,
}

pub(super) struct Shared {
    pub(super) node: Arc<Node>,
    pub(super) peer: PeerConfig,
    pub(super) frames: mpsc::Sender<Vec<u8>>,
}

impl Shared {
    pub(super) fn update(&self, f: impl FnOnce(&mut crate::node::PeerLive)) {
        self.node.update_peer(&self.peer.name, f);
    }

    pub(super) async fn send(&self, message: &Message) -> Result<(), Violation> {
        let frame = encode(message)?;
        self.frames
            .send(frame)
            .await
            .map_err(|_| Violation::new(ErrorCode::Normal, "the connection closed"))
    }
}

/// Runs a session until it ends; closes the connection with a code.
pub async fn run(
    node: Arc<Node>,
    peer: PeerConfig,
    conn: Connection,
    direction: Direction,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> Ended {
    let started = Instant::now();
    let (frames_tx, frames_rx) = mpsc::channel::<Vec<u8>>(16);
    let shared = Arc::new(Shared {
        node: node.clone(),
        peer: peer.clone(),
        frames: frames_tx,
    });
    let mut handshaken = false;
    let outcome = tokio::select! {
        r = drive(shared.clone(), &conn, direction, limits, frames_rx, &mut handshaken) => r,
        _ = shutdown.wait_for(|stop| *stop) => Err(Violation::new(ErrorCode::ShuttingDown, "this node is shutting down")),
    };
    let ended = match outcome {
        Ok(()) => Ended {
            reason: "the session ended".into(),
            code: None,
            error: false,
            handshaken,
            lasted: started.elapsed(),
        },
        Err(v) => close_with(&conn, &peer.name, v, handshaken, started.elapsed()),
    };
    let stats = conn.stats();
    node.update_peer(&peer.name, |p| {
        p.counters.udp_bytes_in = stats.udp_rx.bytes;
        p.counters.udp_bytes_out = stats.udp_tx.bytes;
        if ended.error {
            if let Some(code) = ended.code {
                *p.counters
                    .errors
                    .entry(code.name().to_string())
                    .or_default() += 1;
            }
            p.last_error = Some(ended.reason.clone());
        }
    });
    ended
}

/// Closes the connection for `violation` (unless the peer already closed
/// it) and describes the end.
fn close_with(
    conn: &Connection,
    peer: &str,
    violation: Violation,
    handshaken: bool,
    lasted: Duration,
) -> Ended {
    // A violation carrying `Normal` means the connection went away under us.
    if violation.code == ErrorCode::Normal {
        let (reason, code, error) = describe_close(conn.close_reason());
        if error {
            tracing::warn!(
                peer,
                code = code.map_or("none", ErrorCode::name),
                "session ended: {reason}"
            );
        } else {
            tracing::info!(peer, "session ended: {reason}");
        }
        return Ended {
            reason,
            code,
            error,
            handshaken,
            lasted,
        };
    }
    conn.close(violation.code.code().into(), violation.reason.as_bytes());
    match violation.code {
        ErrorCode::ShuttingDown | ErrorCode::DuplicateConnection => {
            tracing::info!(
                peer,
                code = violation.code.name(),
                "closed the session: {}",
                violation.reason
            )
        }
        ErrorCode::ApplyFailed | ErrorCode::Internal => {
            tracing::error!(
                peer,
                code = violation.code.name(),
                "closed the session: {}",
                violation.reason
            )
        }
        _ => tracing::warn!(
            peer,
            code = violation.code.name(),
            "closed the session: {}",
            violation.reason
        ),
    }
    Ended {
        reason: violation.to_string(),
        code: Some(violation.code),
        error: !matches!(
            violation.code,
            ErrorCode::ShuttingDown | ErrorCode::DuplicateConnection
        ),
        handshaken,
        lasted,
    }
}

/// Turns a connection's close reason into a sentence, a code, and whether
/// it is a problem (rather than a shutdown or a replaced duplicate).
pub fn describe_close(reason: Option<ConnectionError>) -> (String, Option<ErrorCode>, bool) {
    match reason {
        Some(ConnectionError::ApplicationClosed(close)) => {
            let code = ErrorCode::from_code(close.error_code.into_inner());
            let text = String::from_utf8_lossy(&close.reason).into_owned();
            let name = code.map_or("unknown code", ErrorCode::name);
            let error = !matches!(
                code,
                Some(ErrorCode::Normal | ErrorCode::ShuttingDown | ErrorCode::DuplicateConnection)
            );
            (
                format!("the peer closed the connection: {text} ({name})"),
                code,
                error,
            )
        }
        Some(ConnectionError::TimedOut) => (
            "the connection timed out (no packets from the peer)".into(),
            None,
            true,
        ),
        Some(ConnectionError::LocallyClosed) => {
            ("this node closed the connection".into(), None, false)
        }
        Some(other) => (format!("the connection failed: {other}"), None, true),
        None => ("the stream ended".into(), None, true),
    }
}

async fn drive(
    shared: Arc<Shared>,
    conn: &Connection,
    direction: Direction,
    limits: Limits,
    frames_rx: mpsc::Receiver<Vec<u8>>,
    handshaken: &mut bool,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let (send, recv) = match direction {
        Direction::Outbound => conn.open_bi().await,
        Direction::Inbound => match tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
            Ok(r) => r,
            Err(_) => {
                return Err(Violation::new(
                    ErrorCode::Timeout,
                    "the peer opened no stream in time",
                ));
            }
        },
    }
    .map_err(|_| Violation::new(ErrorCode::Normal, "the connection closed"))?;

    let local = LocalInfo {
        site: node.site(),
        node: node.config.name.clone(),
        schema_hash: node.schema.hash().to_string(),
    };
    let mut session = Session::new(local);
    let head = *node.subscribe_head().borrow();
    let writer = tokio::spawn(write_frames(send, frames_rx, shared.clone()));
    shared.send(&session.hello(head, node.now_ms())).await?;

    let mut pump: Option<tokio::task::JoinHandle<Result<(), Violation>>> = None;
    let mut announcer: Option<tokio::task::JoinHandle<()>> = None;
    let result = read_loop(
        &shared,
        conn,
        recv,
        &mut session,
        limits,
        &mut pump,
        &mut announcer,
        handshaken,
    )
    .await;
    if let Some(p) = pump {
        p.abort();
    }
    if let Some(a) = announcer {
        a.abort();
    }
    writer.abort();
    result
}

async fn write_frames(
    mut send: SendStream,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    while let Some(frame) = frames.recv().await {
        if send.write_all(&frame).await.is_err() {
            return;
        }
        let n = frame.len() as u64;
        shared.update(|p| p.counters.bytes_out += n);
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    shared: &Arc<Shared>,
    conn: &Connection,
    mut recv: RecvStream,
    session: &mut Session,
    limits: Limits,
    pump: &mut Option<tokio::task::JoinHandle<Result<(), Violation>>>,
    announcer: &mut Option<tokio::task::JoinHandle<()>>,
    handshaken: &mut bool,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let mut decoder = FrameDecoder::with_limit(MAX_HELLO_FRAME);
    let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    // Replaced at Hello (batches before Hello are refused by the session).
    let mut applier = Applier::new(SiteId([0; 16]), limits.group_changes);
    loop {
        let read = if session.peer().is_none() {
            match tokio::time::timeout_at(hello_deadline, recv.read_chunk(usize::MAX, true)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Violation::new(
                        ErrorCode::Timeout,
                        "no Hello from the peer in time",
                    ));
                }
            }
        } else {
            tokio::select! {
                r = recv.read_chunk(usize::MAX, true) => r,
                r = wait_task(pump) => return r,
                r = applier.progress(shared) => {
                    r?;
                    continue;
                }
            }
        };
        let mut n = match read {
            Ok(Some(chunk)) => {
                decoder.push(&chunk.bytes);
                chunk.bytes.len()
            }
            Ok(None) => {
                return Err(Violation::new(
                    ErrorCode::Normal,
                    "the peer finished its stream",
                ));
            }
            Err(_) => return Err(Violation::new(ErrorCode::Normal, "the connection closed")),
        };
        // Take whatever else has already arrived, without waiting, so that
        // batches that queued up while the last group was being applied
        // are applied together. (`timeout` polls the read once first.)
        while decoder.pending() < READ_AHEAD {
            match tokio::time::timeout(Duration::ZERO, recv.read_chunk(usize::MAX, true)).await {
                Ok(Ok(Some(chunk))) => {
                    decoder.push(&chunk.bytes);
                    n += chunk.bytes.len();
                }
                _ => break,
            }
        }
        shared.update(|p| p.counters.bytes_in += n as u64);
        tracing::trace!(peer = %shared.peer.name, bytes = n, "read from the stream");
        while let Some(message) = decoder.next_message()? {
            let event = session.receive(message, node.now_ms())?;
            if let Event::Batch {
                batch,
                cursor,
                complete,
                head,
            } = event
            {
                let validated = validate_off_thread(shared, session, batch).await?;
                applier
                    .push(shared, (validated, cursor, complete, head))
                    .await?;
                continue;
            }
            // Keep order: apply what came before this message first.
            applier.drain(shared).await?;
            match event {
                Event::Hello(hello) => {
                    *handshaken = true;
                    applier = Applier::new(hello.site, limits.group_changes);
                    decoder.set_limit(MAX_FRAME);
                    let skew = hello.wall_ms as i64 - node.now_ms() as i64;
                    note_skew(shared, skew);
                    let site = hello.site;
                    shared.update(|p| {
                        p.site = Some(site);
                        p.peer_head = Some(hello.head);
                        p.last_contact_ms = Some(node.now_ms());
                    });
                    tracing::info!(peer = %shared.peer.name, site = %site, head = hello.head, "session established");
                    let cursor = node
                        .with_store(move |s| s.cursor_for(&site))
                        .await
                        .map_err(internal)?
                        .map_err(store_violation)?;
                    shared.send(&Message::Pull { cursor }).await?;
                    *announcer = Some(tokio::spawn(announce(shared.clone(), conn.clone(), site)));
                }
                Event::Pull(cursor) => {
                    if let Some(p) = pump.take() {
                        p.abort();
                    }
                    let site = session.peer().map(|h| h.site).unwrap_or(SiteId([0; 16]));
                    *pump = Some(tokio::spawn(run_pump(shared.clone(), site, cursor, limits)));
                }
                Event::State {
                    head,
                    digest,
                    applied,
                    wall_ms,
                } => {
                    note_skew(shared, wall_ms as i64 - node.now_ms() as i64);
                    shared.update(|p| {
                        p.peer_head = Some(head);
                        p.peer_digest = Some(digest);
                        p.peer_applied = Some(applied);
                        p.last_contact_ms = Some(node.now_ms());
                    });
                }
                Event::Batch { .. } => {}
            }
        }
        applier.kick(shared);
    }
}

/// Waits for the pump task to end (forever if there is none).
async fn wait_task(
    task: &mut Option<tokio::task::JoinHandle<Result<(), Violation>>>,
) -> Result<(), Violation> {
    match task {
        Some(handle) => match handle.await {
            Ok(r) => {
                *task = None;
                r
            }
            Err(e) => {
                *task = None;
                Err(Violation::new(
                    ErrorCode::Internal,
                    format!("the sending task failed: {e}"),
                ))
            }
        },
        None => std::future::pending().await,
    }
}

pub(super) fn internal(e: NodeError) -> Violation {
    Violation::new(ErrorCode::Internal, e.to_string())
}

pub(super) fn store_violation(e: StoreError) -> Violation {
    match e {
        StoreError::InvalidBatch { .. } => Violation::new(ErrorCode::InvalidBatch, e.to_string()),
        other => Violation::new(
            ErrorCode::ApplyFailed,
            format!("could not store the peer's changes: {other}"),
        ),
    }
}

pub(super) fn note_skew(shared: &Shared, skew_ms: i64) {
    if skew_ms.abs() >= SKEW_WARNING_MS {
        let previous = shared.node.peer(&shared.peer.name).and_then(|p| p.skew_ms);
        if previous.is_none_or(|p| (p - skew_ms).abs() >= SKEW_WARNING_MS) {
            tracing::warn!(
                peer = %shared.peer.name,
                skew_s = skew_ms / 1000,
                "the peer's clock differs from ours by {} s; hybrid logical clocks keep the order, but check NTP at both offices",
                skew_ms / 1000
            );
        }
    }
    shared.update(|p| p.skew_ms = Some(skew_ms));
}
