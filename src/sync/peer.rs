//! Drives one sync session over an established QUIC connection.
//!
//! Owns: the stream (one bidirectional stream; each direction an ordered
//! sequence of frames), the reader (decode, check with `Session`, apply
//! batches — those that arrived together in one transaction), the pump
//! (catch-up from the peer's cursor in bounded batches, then live push the
//! moment a commit lands), State announcements, and what status shows
//! about the session.
//! Must not: decide protocol rules (session.rs) or merges (store/).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::sync::{mpsc, watch};

use super::protocol::{
    ErrorCode, FrameDecoder, MAX_FRAME, MAX_HELLO_FRAME, Message, Violation, encode,
};
use super::session::{Event, LocalInfo, Session};
use crate::clock::lead_ms;
use crate::config::PeerConfig;
use crate::node::{Node, NodeError};
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, PeerRef, StoreError, Validated, validate};

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
const STATE_DEBOUNCE: Duration = Duration::from_millis(20);
/// Live pushes are paced at one per this interval at most.
const LIVE_PACE: Duration = Duration::from_millis(1);
/// Bytes taken from the stream ahead of decoding, at most (about one group).
const READ_AHEAD: usize = 2 << 20;
/// A clock this far off is logged as a warning.
const SKEW_WARNING_MS: i64 = 60_000;

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

struct Shared {
    node: Arc<Node>,
    peer: PeerConfig,
    frames: mpsc::Sender<Vec<u8>>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut crate::node::PeerLive)) {
        self.node.update_peer(&self.peer.name, f);
    }

    async fn send(&self, message: &Message) -> Result<(), Violation> {
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

/// One received, validated batch with its cursor, completeness and the
/// sender's head.
type Received = (Validated, Cursor, bool, u64);

/// Checks a batch against the schema on a blocking thread, so that it
/// overlaps the SQLite work of the group being applied.
async fn validate_off_thread(
    shared: &Arc<Shared>,
    session: &Session,
    batch: Batch,
) -> Result<Validated, Violation> {
    let Some(hello) = session.peer() else {
        return Err(Violation::new(
            ErrorCode::UnexpectedMessage,
            "a batch before Hello",
        ));
    };
    let schema = shared.node.schema.clone();
    let peer = PeerRef {
        site: hello.site,
        name: shared.peer.name.clone(),
    };
    tokio::task::spawn_blocking(move || validate(&schema, &peer, batch))
        .await
        .map_err(|e| Violation::new(ErrorCode::Internal, format!("validating failed: {e}")))?
        .map_err(store_violation)
}

/// Applies received batches in order, one group at a time, while the
/// reader goes on reading and decoding: batches arriving during an apply
/// queue up and go into the next group (up to `limit` changes), so a
/// catch-up burst becomes few, large transactions and decoding overlaps
/// SQLite work.
struct Applier {
    peer_site: SiteId,
    limit: usize,
    pending: Vec<Received>,
    pending_changes: usize,
    in_flight: Option<tokio::task::JoinHandle<Result<(), Violation>>>,
}

impl Applier {
    fn new(peer_site: SiteId, limit: usize) -> Applier {
        Applier {
            peer_site,
            limit,
            pending: Vec::new(),
            pending_changes: 0,
            in_flight: None,
        }
    }

    fn launch(&mut self, shared: &Arc<Shared>) {
        let group = std::mem::take(&mut self.pending);
        self.pending_changes = 0;
        self.in_flight = Some(tokio::spawn(apply_group(
            shared.clone(),
            self.peer_site,
            group,
        )));
    }

    /// Waits for the group in flight (cancel-safe: the handle stays until
    /// it completes).
    async fn finish(&mut self) -> Result<(), Violation> {
        if let Some(handle) = &mut self.in_flight {
            let result = handle.await;
            self.in_flight = None;
            return result.map_err(|e| {
                Violation::new(ErrorCode::Internal, format!("applying failed: {e}"))
            })?;
        }
        Ok(())
    }

    /// Queues a batch; when the queue is full, waits for the group in
    /// flight and starts the queue.
    async fn push(&mut self, shared: &Arc<Shared>, received: Received) -> Result<(), Violation> {
        self.pending_changes += received.0.batch().changes.len();
        self.pending.push(received);
        if self.pending_changes >= self.limit {
            self.finish().await?;
            self.launch(shared);
        }
        Ok(())
    }

    /// Starts the queue if nothing is in flight.
    fn kick(&mut self, shared: &Arc<Shared>) {
        if self.in_flight.is_none() && !self.pending.is_empty() {
            self.launch(shared);
        }
    }

    /// Applies everything received so far.
    async fn drain(&mut self, shared: &Arc<Shared>) -> Result<(), Violation> {
        self.finish().await?;
        if !self.pending.is_empty() {
            self.launch(shared);
            self.finish().await?;
        }
        Ok(())
    }

    /// Completes when the group in flight does, then starts the queue;
    /// never completes while nothing is in flight.
    async fn progress(&mut self, shared: &Arc<Shared>) -> Result<(), Violation> {
        if self.in_flight.is_none() {
            return std::future::pending().await;
        }
        self.finish().await?;
        self.kick(shared);
        Ok(())
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

fn internal(e: NodeError) -> Violation {
    Violation::new(ErrorCode::Internal, e.to_string())
}

fn store_violation(e: StoreError) -> Violation {
    match e {
        StoreError::InvalidBatch { .. } => Violation::new(ErrorCode::InvalidBatch, e.to_string()),
        other => Violation::new(
            ErrorCode::ApplyFailed,
            format!("could not store the peer's changes: {other}"),
        ),
    }
}

fn note_skew(shared: &Shared, skew_ms: i64) {
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

/// Applies batches that arrived together in one transaction.
async fn apply_group(
    shared: Arc<Shared>,
    peer_site: SiteId,
    group: Vec<Received>,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let peer = PeerRef {
        site: peer_site,
        name: shared.peer.name.clone(),
    };
    let batches = group.len() as u64;
    let complete = group.iter().any(|g| g.2);
    let head = group.iter().map(|g| g.3).max().unwrap_or(0);
    let rows: u64 = group.iter().map(|g| g.0.batch().changes.len() as u64).sum();
    let cells: u64 = group.iter().map(|g| g.0.batch().cell_count() as u64).sum();
    let items: Vec<(Validated, Cursor)> = group.into_iter().map(|(b, c, _, _)| (b, c)).collect();
    tracing::debug!(peer = %shared.peer.name, batches, rows, "applying a group of batches");
    let applied = node
        .with_store(move |s| s.apply_validated(&peer, items))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    let now = node.now_ms();
    let lead = lead_ms(applied.max_hlc, now);
    if applied.max_hlc.0 != 0 && lead >= SKEW_WARNING_MS {
        note_skew(&shared, lead);
    }
    shared.update(|p| {
        p.counters.batches_in += batches;
        p.counters.rows_in += rows;
        p.counters.cells_in += cells;
        p.peer_head = Some(head.max(p.peer_head.unwrap_or(0)));
        p.last_contact_ms = Some(now);
    });
    if complete {
        send_state(&shared, peer_site).await?;
    }
    Ok(())
}

async fn send_state(shared: &Arc<Shared>, peer_site: SiteId) -> Result<(), Violation> {
    let (head, digest, applied) = shared
        .node
        .with_store(move |s| s.cursor_for(&peer_site).map(|c| (s.head(), s.digest(), c)))
        .await
        .map_err(internal)?
        .map_err(store_violation)?;
    shared
        .send(&Message::State {
            head,
            digest,
            applied,
            wall_ms: shared.node.now_ms(),
        })
        .await
}

/// Tells the peer our head and digest after our replica changes
/// (debounced), and keeps the session's RTT and wire bytes in status.
async fn announce(shared: Arc<Shared>, conn: Connection, peer_site: SiteId) {
    let mut head = shared.node.subscribe_head();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(STATE_DEBOUNCE).await;
                head.borrow_and_update();
                if send_state(&shared, peer_site).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                let stats = conn.stats();
                let rtt = conn.rtt().as_secs_f64() * 1000.0;
                shared.update(|p| {
                    p.rtt_ms = Some(rtt);
                    p.counters.udp_bytes_in = stats.udp_rx.bytes;
                    p.counters.udp_bytes_out = stats.udp_tx.bytes;
                });
            }
        }
    }
}

/// Sends changes after `cursor`: catch-up in bounded batches, then one
/// batch per commit as commits land.
async fn run_pump(
    shared: Arc<Shared>,
    peer_site: SiteId,
    mut cursor: Cursor,
    limits: Limits,
) -> Result<(), Violation> {
    let node = shared.node.clone();
    let mut head = node.subscribe_head();
    let mut last_live: Option<Instant> = None;
    loop {
        head.borrow_and_update();
        let from = cursor;
        let (frame, next, complete, rows) = node
            .with_store(move |s| -> Result<_, Violation> {
                let out = s
                    .changes_since(from, limits.batch_rows, limits.batch_bytes, Some(peer_site))
                    .map_err(|e| {
                        Violation::new(ErrorCode::Internal, format!("could not read changes: {e}"))
                    })?;
                let rows = out.batch.changes.len() as u64;
                let frame = encode(&Message::Batch {
                    batch: out.batch,
                    cursor: out.cursor,
                    complete: out.complete,
                    head: out.head,
                })?;
                Ok((frame, out.cursor, out.complete, rows))
            })
            .await
            .map_err(internal)??;
        if shared.frames.send(frame).await.is_err() {
            return Ok(());
        }
        shared.update(|p| {
            p.counters.batches_out += 1;
            p.counters.rows_out += rows;
        });
        cursor = next;
        if complete {
            if head.changed().await.is_err() {
                return Ok(());
            }
            if let Some(at) = last_live {
                let since = at.elapsed();
                if since < LIVE_PACE {
                    tokio::time::sleep(LIVE_PACE - since).await;
                }
            }
            last_live = Some(Instant::now());
        }
    }
}
