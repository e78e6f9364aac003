//! Runs one sync session over an established QUIC connection: the thin
//! executor of the session machine.
//!
//! Owns: the stream (one bidirectional stream; each direction an ordered
//! sequence of frames), the writer task, reading and decoding frames,
//! feeding the machine its inputs (frames, finished tasks, head changes,
//! ticks with the node's time) and carrying out its actions (push.rs and
//! receive.rs do the replica work), the session's end, and what status
//! shows about it.
//! Must not: decide protocol rules, grouping, read-ahead, pacing or order
//! (session.rs and its outbox do), whether an end is a problem (policy.rs
//! does) or merges (store/).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, ConnectionError, RecvStream, SendStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::context::{Shared, SharedOutbox};
use super::pinning::negotiated_version;
pub use super::policy::Direction;
use super::policy::Ending;
use super::protocol::{ErrorCode, FrameDecoder, MAX_HELLO_FRAME, Violation, compresses};
use super::push::{PumpOrder, pump_once, send_pull, send_state};
use super::receive::{apply_group, bind_peer, validate_batch};
use super::rules::LocalInfo;
use super::session::{Action, GroupApplied, Input, Limits, Pumped, Report, Session, Timing};
use crate::config::PeerConfig;
use crate::node::Node;
use crate::stamp::SiteId;

/// The peer must open its stream within this.
const STREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// How a session ended.
#[derive(Debug)]
pub struct Ended {
    /// Why, in a sentence (for logs and status).
    pub reason: String,
    /// Who closed it, with which code, or how it was lost.
    pub ending: Ending,
    /// Whether it reached the point of exchanging changes.
    pub handshaken: bool,
    pub lasted: Duration,
}

impl Ended {
    /// Whether the end is a problem worth showing (`Ending::is_problem`).
    pub fn error(&self) -> bool {
        self.ending.is_problem()
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
    let shared = Arc::new(Shared {
        node: node.clone(),
        peer: peer.clone(),
        schema: node.schema(),
        outgoing: SharedOutbox::default(),
    });
    let mut handshaken = false;
    let outcome = tokio::select! {
        r = drive(shared.clone(), &conn, direction, limits, &mut handshaken) => r,
        _ = shutdown.wait_for(|stop| *stop) => Err(Violation::new(ErrorCode::ShuttingDown, "this node is shutting down")),
    };
    shared.outgoing.close();
    let ended = match outcome {
        Ok(()) => Ended {
            reason: "the session ended".into(),
            ending: Ending::ClosedHere,
            handshaken,
            lasted: started.elapsed(),
        },
        Err(v) => close_with(&conn, &peer.name, v, handshaken, started.elapsed()),
    };
    let stats = conn.stats();
    node.update_peer(&peer.name, |p| {
        p.counters.udp_bytes_in = stats.udp_rx.bytes;
        p.counters.udp_bytes_out = stats.udp_tx.bytes;
        if ended.error() {
            if let Some(code) = ended.ending.code() {
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
        let (reason, ending) = describe_close(conn.close_reason());
        if ending.is_problem() {
            tracing::warn!(
                peer,
                code = ending.code().map_or("none", ErrorCode::name),
                "session ended: {reason}"
            );
        } else {
            tracing::info!(peer, "session ended: {reason}");
        }
        return Ended {
            reason,
            ending,
            handshaken,
            lasted,
        };
    }
    conn.close(violation.code.code().into(), violation.reason.as_bytes());
    let quiet = !violation.code.is_problem();
    match violation.code {
        _ if quiet => tracing::info!(
            peer,
            code = violation.code.name(),
            "closed the session: {}",
            violation.reason
        ),
        ErrorCode::ApplyFailed | ErrorCode::Internal => tracing::error!(
            peer,
            code = violation.code.name(),
            "closed the session: {}",
            violation.reason
        ),
        _ => tracing::warn!(
            peer,
            code = violation.code.name(),
            "closed the session: {}",
            violation.reason
        ),
    }
    Ended {
        reason: violation.to_string(),
        ending: Ending::Closed(violation.code),
        handshaken,
        lasted,
    }
}

/// Turns a connection's close reason into a sentence and how it ended.
pub fn describe_close(reason: Option<ConnectionError>) -> (String, Ending) {
    match reason {
        Some(ConnectionError::ApplicationClosed(close)) => {
            let code = ErrorCode::from_code(close.error_code.into_inner());
            let text = String::from_utf8_lossy(&close.reason).into_owned();
            let name = code.map_or("unknown code", ErrorCode::name);
            (
                format!("the peer closed the connection: {text} ({name})"),
                Ending::ClosedByPeer(code),
            )
        }
        Some(ConnectionError::TimedOut) => (
            "the connection timed out (no packets from the peer)".into(),
            Ending::Lost,
        ),
        Some(ConnectionError::LocallyClosed) => {
            ("this node closed the connection".into(), Ending::ClosedHere)
        }
        Some(other) => (format!("the connection failed: {other}"), Ending::Lost),
        None => ("the stream ended".into(), Ending::Lost),
    }
}

async fn drive(
    shared: Arc<Shared>,
    conn: &Connection,
    direction: Direction,
    limits: Limits,
    handshaken: &mut bool,
) -> Result<(), Violation> {
    let (send, recv) = match direction {
        Direction::Outbound => conn.open_bi().await,
        Direction::Inbound => match tokio::time::timeout(STREAM_TIMEOUT, conn.accept_bi()).await {
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
    // The handshake negotiated the version (ALPN); a connection without one
    // does not get this far.
    let version = negotiated_version(conn).ok_or_else(|| {
        Violation::new(
            ErrorCode::ProtocolMismatch,
            "the connection negotiated no puente protocol version",
        )
    })?;
    shared.update(|p| p.protocol = (version > 0).then_some(version));
    let writer = tokio::spawn(write_frames(send, shared.clone()));
    let mut executor = Executor::new(shared, conn.clone(), limits, version);
    let result = executor.run(recv, handshaken).await;
    executor.stop();
    writer.abort();
    result
}

/// Writes the frames the outbox hands out, in its order, as they come;
/// closes the outbox when the stream fails.
async fn write_frames(mut send: SendStream, shared: Arc<Shared>) {
    while let Some(frame) = shared.outgoing.next_frame().await {
        if send.write_all(&frame).await.is_err() {
            break;
        }
        let n = frame.len() as u64;
        shared.update(|p| p.counters.bytes_out += n);
    }
    shared.outgoing.close();
}

/// The session machine and the tasks carrying out its actions.
struct Executor {
    /// The session's monotonic time is milliseconds since this.
    epoch: Instant,
    shared: Arc<Shared>,
    conn: Connection,
    session: Session,
    decoder: FrameDecoder,
    applying: Option<JoinHandle<Result<GroupApplied, Violation>>>,
    pumping: Option<JoinHandle<Result<Pumped, Violation>>>,
}

impl Executor {
    fn new(shared: Arc<Shared>, conn: Connection, limits: Limits, version: u16) -> Executor {
        let node = &shared.node;
        let local = LocalInfo {
            site: node.site(),
            node: node.config().name.clone(),
            schema_hash: shared.schema.hash().to_string(),
            schema: shared.schema.canonical(),
            versions: node.config().protocols.clone(),
        };
        let head = *node.subscribe_head().borrow();
        let epoch = Instant::now();
        let mut decoder = FrameDecoder::with_limit(MAX_HELLO_FRAME);
        decoder.set_compressed(compresses(version));
        let session = Session::new(
            local,
            limits,
            Timing::default(),
            version,
            (0, node.now_ms()),
            head,
        );
        Executor {
            epoch,
            shared,
            conn,
            session,
            decoder,
            applying: None,
            pumping: None,
        }
    }

    /// Ends the tasks still out (the connection is closing).
    fn stop(&mut self) {
        if let Some(task) = self.applying.take() {
            task.abort();
        }
        if let Some(task) = self.pumping.take() {
            task.abort();
        }
    }

    /// The session's monotonic time.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn feed(&mut self, input: Input) {
        let now = self.now();
        self.session.handle(input, now);
    }

    fn peer_site(&self) -> SiteId {
        // Actions that need the peer's site only follow its Hello.
        self.session.peer().map_or(SiteId([0; 16]), |h| h.site)
    }

    async fn run(&mut self, mut recv: RecvStream, handshaken: &mut bool) -> Result<(), Violation> {
        let mut head = self.shared.node.subscribe_head();
        head.borrow_and_update();
        let mut stats = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.perform(handshaken).await?;
            let sleep = match self.session.poll_timeout() {
                Some(at) => Duration::from_millis(at.saturating_sub(self.now())),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                read = recv.read_chunk(usize::MAX, true), if self.session.wants_frames() => {
                    self.take_frames(read, &mut recv, handshaken).await?;
                }
                r = wait(&mut self.applying, "applying a group") => self.feed(Input::Applied(r)),
                r = wait(&mut self.pumping, "reading changes") => self.feed(Input::Pumped(r)),
                changed = head.changed() => {
                    if changed.is_err() {
                        return Err(Violation::new(ErrorCode::ShuttingDown, "the node is stopping"));
                    }
                    let h = *head.borrow_and_update();
                    self.feed(Input::HeadMoved(h));
                }
                _ = tokio::time::sleep(sleep) => self.feed(Input::Tick),
                _ = stats.tick() => self.record_link_stats(),
            }
        }
    }

    /// Decodes what arrived (and whatever else is already there, as far as
    /// the session reads ahead) and hands every message to the session in
    /// order.
    async fn take_frames(
        &mut self,
        read: Result<Option<quinn::Chunk>, quinn::ReadError>,
        recv: &mut RecvStream,
        handshaken: &mut bool,
    ) -> Result<(), Violation> {
        let mut n = match read {
            Ok(Some(chunk)) => {
                self.decoder.push(&chunk.bytes);
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
        // Batches that queued up while the last group was applied are
        // decoded together, so the session groups them (`timeout` polls
        // the read once first).
        while self.session.reads_ahead(self.decoder.pending()) {
            match tokio::time::timeout(Duration::ZERO, recv.read_chunk(usize::MAX, true)).await {
                Ok(Ok(Some(chunk))) => {
                    self.decoder.push(&chunk.bytes);
                    n += chunk.bytes.len();
                }
                _ => break,
            }
        }
        self.shared.update(|p| p.counters.bytes_in += n as u64);
        tracing::trace!(peer = %self.shared.peer.name, bytes = n, "read from the stream");
        while let Some(message) = self.decoder.next_message()? {
            self.feed(Input::Frame(message));
            self.perform(handshaken).await?;
        }
        self.feed(Input::FramesDrained);
        Ok(())
    }

    /// Carries out every action the session has asked for.
    async fn perform(&mut self, handshaken: &mut bool) -> Result<(), Violation> {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(message) => self.shared.send_control(&message)?,
                Action::SendPull => send_pull(&self.shared, self.peer_site()).await?,
                Action::SendState => send_state(&self.shared, self.peer_site()).await?,
                Action::SetFrameLimit(limit) => self.decoder.set_limit(limit),
                Action::Bind(site) => {
                    let bound = bind_peer(&self.shared, site).await;
                    self.feed(Input::Bound(bound));
                }
                Action::Validate {
                    batch,
                    cursor,
                    complete,
                    head,
                } => {
                    let site = self.peer_site();
                    let received =
                        validate_batch(&self.shared, site, batch, cursor, complete, head).await;
                    self.feed(Input::Validated(received));
                }
                Action::Apply { group, settle } => {
                    let task = apply_group(self.shared.clone(), self.peer_site(), group, settle);
                    self.applying = Some(tokio::spawn(task));
                }
                Action::Pump {
                    from,
                    generation,
                    max_rows,
                    max_bytes,
                    compress,
                } => {
                    let order = PumpOrder {
                        peer_site: self.peer_site(),
                        from,
                        generation,
                        max_rows,
                        max_bytes,
                        compress,
                    };
                    self.pumping = Some(tokio::spawn(pump_once(self.shared.clone(), order)));
                }
                Action::Report(report) => self.report(report, handshaken),
                Action::Close(violation) => return Err(violation),
            }
        }
        Ok(())
    }

    fn report(&self, report: Report, handshaken: &mut bool) {
        let now = self.shared.node.now_ms();
        match report {
            Report::Established { hello } => {
                *handshaken = true;
                self.shared.note_skew(hello.wall_ms as i64 - now as i64);
                let site = hello.site;
                self.shared.update(|p| {
                    p.schema_differences.clear();
                    p.site = Some(site);
                    p.peer_head = Some(hello.head);
                    p.last_contact_ms = Some(now);
                    // A new session: its catch-ups are measured afresh.
                    p.receiving.reset();
                    p.sending.reset();
                });
                tracing::info!(peer = %self.shared.peer.name, site = %site, head = hello.head, "session established");
            }
            Report::SchemaDiffers { differences } => {
                self.shared.update(|p| p.schema_differences = differences);
            }
            Report::PeerState {
                head,
                digest,
                applied,
                wall_ms,
            } => {
                self.shared.note_skew(wall_ms as i64 - now as i64);
                self.shared.update(|p| {
                    p.peer_head = Some(head);
                    p.peer_digest = Some(digest);
                    p.peer_applied = Some(applied);
                    p.last_contact_ms = Some(now);
                });
                self.shared.node.observe_progress(&self.shared.peer.name);
            }
        }
    }

    fn record_link_stats(&self) {
        let stats = self.conn.stats();
        let rtt = self.conn.rtt().as_secs_f64() * 1000.0;
        self.shared.update(|p| {
            p.rtt_ms = Some(rtt);
            p.counters.udp_bytes_in = stats.udp_rx.bytes;
            p.counters.udp_bytes_out = stats.udp_tx.bytes;
        });
    }
}

/// Waits for a task to finish (forever if there is none) and takes it.
async fn wait<T>(
    task: &mut Option<JoinHandle<Result<T, Violation>>>,
    what: &str,
) -> Result<T, Violation> {
    let Some(handle) = task else {
        return std::future::pending().await;
    };
    let result = handle.await;
    *task = None;
    result.map_err(|e| super::context::task_failed(what, e))?
}
