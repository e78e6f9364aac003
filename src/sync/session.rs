//! One sync session as a state machine without IO.
//!
//! Owns: every decision of a session: what arrives in which order (Hello
//! first and once, checked by `rules`), when to bind the peer's site to
//! its office (once its Hello passed, before anything else), when to ask
//! for the peer's changes (a bound Hello leads to Pull), when to raise the
//! frame limit (after Hello), when to read and send our changes (Pull
//! starts or restarts the pump; catch-up runs batch after batch; live
//! pushes follow the head, paced), how large a batch is and which frames
//! are compressed (batches on a connection of version 3, never control
//! frames), in which order frames leave (`Outbox`: control frames before
//! waiting batches, a bounded number of batches waiting), how much of the
//! stream one read takes (what arrived, up to `Limits::read_ahead`, so
//! that batches which queued up are decoded together), how received
//! batches are grouped into transactions (those read together, and those
//! queued while a group is being applied, go together, up to a bound),
//! when to stop taking frames (the queue is full), when to settle the
//! replica (after a group that reaches the sender's head), when to
//! announce our State (debounced after our head moves, at once after a
//! caught-up group) and when to close, with which code (a failed step, a
//! rule broken, a flood of changes the peer's office may not make).
//!
//! Inputs are fed by an executor with the time (`now_ms`, from a monotonic
//! clock: a wall clock stepped back must not stall a session) as an
//! argument;
//! outputs are `Action`s it polls and carries out, reporting back with
//! `Input::Bound`, `Input::Validated`, `Input::Applied` and
//! `Input::Pumped`. The real executor is sync/peer.rs (tokio, quinn); the
//! seeded simulator in tests/sim drives the same machine, with the same
//! `Outbox`, over a simulated network.
//! Must not: read sockets, clocks or randomness, or touch the replica.

use std::collections::VecDeque;

use super::protocol::{ErrorCode, Hello, MAX_FRAME, Message, Violation, compresses};
use super::rules::{FloodBudget, LocalInfo, check_hello, no_common_version, schema_differences};
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, Digest, StoreError, Validated};

mod outbox;

pub use outbox::{Lane, Outbox, QUEUED_BATCHES, Queued};

/// Sizes of what a session sends and applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rows (and tombstones) per batch the pump sends, at most.
    pub batch_rows: usize,
    /// Bytes per batch the pump sends, about.
    pub batch_bytes: usize,
    /// Changes the receiver applies in one transaction, about: a group is
    /// closed once it reaches this.
    pub group_changes: usize,
    /// Bytes one read takes from the stream ahead of decoding, about
    /// (about one group): batches that queued up while the last group was
    /// applied are decoded together, so they are grouped together.
    pub read_ahead: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_rows: 1_000,
            batch_bytes: 1 << 20,
            group_changes: 5_000,
            read_ahead: 2 << 20,
        }
    }
}

/// The session's clocks, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The peer's Hello must arrive within this.
    pub hello_timeout_ms: u64,
    /// State announcements wait this long after our head moves, so that a
    /// burst of commits makes one announcement.
    pub state_debounce_ms: u64,
    /// Live pushes (after catch-up) start at most once per this interval.
    pub live_pace_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            hello_timeout_ms: 5_000,
            state_debounce_ms: 20,
            live_pace_ms: 1,
        }
    }
}

/// A batch the executor validated, with what came with it.
#[derive(Debug)]
pub struct Received {
    pub batch: Validated,
    /// The cursor the receiver stores with it.
    pub cursor: Cursor,
    /// Whether it reached the sender's head.
    pub complete: bool,
    /// The sender's head when it read the batch.
    pub head: u64,
}

impl Received {
    fn changes(&self) -> usize {
        self.batch.batch().changes.len()
    }
}

/// What the replica did with one `Action::Apply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupApplied {
    /// Changes held for review (the peer's office may not make them).
    pub held: usize,
    /// Changes that should have been held but were dropped: the held list
    /// is full.
    pub dropped: usize,
}

/// What one `Action::Pump` did: the batch it sent and where it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    /// The pump this answers (see `Action::Pump`).
    pub generation: u64,
    /// The cursor the peer stores once it applied the batch sent.
    pub cursor: Cursor,
    /// Whether the batch reached our head.
    pub complete: bool,
    /// Our head when the batch was read.
    pub head: u64,
}

#[derive(Debug)]
pub enum Input {
    /// A decoded message from the peer.
    Frame(Message),
    /// The executor handed over every message of one read (see
    /// `Session::wants_frames` and `Session::reads_ahead`): batches waiting
    /// in the queue may start as a group.
    FramesDrained,
    /// The answer to `Action::Bind`.
    Bound(Result<(), Violation>),
    /// The answer to `Action::Validate`.
    Validated(Result<Received, Violation>),
    /// The answer to `Action::Apply`: committed, with what was held.
    Applied(Result<GroupApplied, Violation>),
    /// The answer to `Action::Pump`, once its frame is in the `Outbox`.
    Pumped(Result<Pumped, Violation>),
    /// Our replica's head sequence moved (a commit, local or from a peer).
    HeadMoved(u64),
    /// Time passed (see `Session::poll_timeout`).
    Tick,
}

/// Something for status, not for the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The peer's Hello passed the checks (its `wall_ms` gives the skew).
    Established { hello: Hello },
    /// The peer's schema differs from ours: what differs, in words (empty
    /// when its Hello says only that the hash differs: version 1).
    SchemaDiffers { differences: Vec<String> },
    /// The peer's State; `wall_ms` is its wall clock when it sent it.
    PeerState {
        head: u64,
        digest: Digest,
        applied: Cursor,
        wall_ms: u64,
    },
}

/// Control frames (`Send`, `SendPull`, `SendState`) are never compressed
/// and go into the `Outbox`'s control lane, ahead of waiting batches.
#[derive(Debug)]
pub enum Action {
    /// Send this message.
    Send(Message),
    /// Send a Pull with the cursor stored for the peer's site.
    SendPull,
    /// Send our State: head, digest, and the cursor stored for the peer.
    SendState,
    /// Accept frames up to this size from now on.
    SetFrameLimit(usize),
    /// Bind the peer's site (from its Hello) to the office this connection
    /// is pinned as; answer with `Input::Bound` before feeding anything
    /// else. A site bound to another office here is refused (`same_site`).
    Bind(SiteId),
    /// Check this batch against the schema; answer with `Input::Validated`.
    Validate {
        batch: Batch,
        cursor: Cursor,
        complete: bool,
        head: u64,
    },
    /// Apply these batches in one transaction with the last cursor; answer
    /// with `Input::Applied`. `settle`: the group reaches the sender's head
    /// (a catch-up or a burst ends here), so once it has committed, fold a
    /// grown WAL into the database and free the cache (`Store::settle`;
    /// the batches are committed already: a failure there is worth a
    /// warning, not the session).
    Apply { group: Vec<Received>, settle: bool },
    /// Read our changes after `from` (leaving out what the peer wrote or
    /// sent us), at most `max_rows` rows and about `max_bytes` bytes, and
    /// put them as one Batch frame (compressed where it pays if
    /// `compress`) into the `Outbox`'s batch lane, waiting for room; then
    /// answer with `Input::Pumped`.
    Pump {
        from: Cursor,
        generation: u64,
        max_rows: usize,
        max_bytes: usize,
        compress: bool,
    },
    /// Show this in status.
    Report(Report),
    /// Close the connection with this code and reason; nothing follows.
    Close(Violation),
}

/// Where the pump stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpState {
    /// No Pull yet.
    Stopped,
    /// A `Pump` action is out.
    Reading,
    /// Caught up with our head as of `head`; waiting for it to move.
    CaughtUp { head: u64 },
}

#[derive(Debug)]
pub struct Session {
    local: LocalInfo,
    /// The protocol version the connection negotiated (0: none in common).
    version: u16,
    limits: Limits,
    timing: Timing,
    hello_deadline_ms: u64,
    peer: Option<Hello>,
    flood: FloodBudget,
    closed: bool,
    actions: VecDeque<Action>,

    /// Validated batches waiting for the next group, and their changes.
    queued: Vec<Received>,
    queued_changes: usize,
    /// Whether an `Apply` is out.
    applying: bool,
    /// Whether that group reaches the sender's head.
    applying_complete: bool,

    pump: PumpState,
    /// Where the next pump reads from.
    pump_cursor: Cursor,
    /// Bumped by every Pull: answers to older pumps only end them.
    pump_generation: u64,
    /// Our latest head.
    local_head: u64,
    last_live_ms: Option<u64>,
    /// When a paced live push is due.
    live_due_ms: Option<u64>,
    /// When the debounced State is due.
    state_due_ms: Option<u64>,
}

impl Session {
    /// A new session at monotonic time `now_ms` on a connection that
    /// negotiated protocol `version` (0: no version in common). Its first
    /// action sends our Hello in that version, with our head and our wall
    /// clock (`wall_ms`) — or, without a common version, the versions we
    /// speak.
    pub fn new(
        local: LocalInfo,
        limits: Limits,
        timing: Timing,
        version: u16,
        now: (u64, u64),
        head: u64,
    ) -> Session {
        let (now_ms, wall_ms) = now;
        let first = if version == 0 {
            Message::Versions {
                versions: local.versions.clone(),
                node: local.node.clone(),
            }
        } else {
            Message::Hello(Hello {
                protocol: version,
                versions: if version >= 2 {
                    local.versions.clone()
                } else {
                    vec![1]
                },
                site: local.site,
                node: local.node.clone(),
                schema_hash: local.schema_hash.clone(),
                schema: (version >= 2).then(|| local.schema.clone()),
                head,
                wall_ms,
            })
        };
        Session {
            local,
            version,
            limits,
            timing,
            hello_deadline_ms: now_ms.saturating_add(timing.hello_timeout_ms),
            peer: None,
            flood: FloodBudget::default(),
            closed: false,
            actions: VecDeque::from([Action::Send(first)]),
            queued: Vec::new(),
            queued_changes: 0,
            applying: false,
            applying_complete: false,
            pump: PumpState::Stopped,
            pump_cursor: Cursor::ZERO,
            pump_generation: 0,
            local_head: head,
            last_live_ms: None,
            live_due_ms: None,
            state_due_ms: None,
        }
    }

    /// The protocol version of the connection (0: none in common).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The peer's Hello, once it passed the checks.
    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the session next needs an `Input::Tick`, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        if self.peer.is_none() {
            return Some(self.hello_deadline_ms);
        }
        [self.live_due_ms, self.state_due_ms]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the executor should read more frames now: false while a
    /// group is being applied and the next one is already full, so that a
    /// peer sending faster than this node applies waits (QUIC flow control
    /// carries the wait back to it).
    ///
    /// One read takes what has arrived — at least one chunk, then more
    /// while `reads_ahead` — hands every whole message in it over
    /// (`Input::Frame`, carrying out the actions after each), then says
    /// `Input::FramesDrained`.
    pub fn wants_frames(&self) -> bool {
        !(self.closed || (self.applying && self.queued_changes >= self.limits.group_changes))
    }

    /// Whether the read under way should take more of what has already
    /// arrived, with `pending` bytes taken and not yet decoded.
    pub fn reads_ahead(&self, pending: usize) -> bool {
        pending < self.limits.read_ahead
    }

    /// Takes one input at monotonic time `now_ms`.
    pub fn handle(&mut self, input: Input, now_ms: u64) {
        if self.closed {
            return;
        }
        let result = match input {
            Input::Frame(message) => self.on_message(message, now_ms),
            Input::FramesDrained => {
                self.start_group();
                Ok(())
            }
            Input::Bound(result) => result.map(|()| self.on_bound()),
            Input::Validated(received) => received.map(|r| self.on_validated(r)),
            Input::Applied(result) => result.and_then(|a| self.on_applied(a)),
            Input::Pumped(result) => result.map(|p| self.on_pumped(p, now_ms)),
            Input::HeadMoved(head) => {
                self.on_head(head, now_ms);
                Ok(())
            }
            Input::Tick => self.on_tick(now_ms),
        };
        if let Err(violation) = result {
            self.close(violation);
        }
    }

    fn close(&mut self, violation: Violation) {
        self.closed = true;
        self.actions.push_back(Action::Close(violation));
    }

    fn on_message(&mut self, message: Message, now_ms: u64) -> Result<(), Violation> {
        match (message, self.peer.is_some()) {
            (Message::Versions { versions, node }, false) if self.version == 0 => {
                Err(no_common_version(&self.local, &node, &versions))
            }
            (Message::Versions { .. }, _) => Err(Violation::new(
                ErrorCode::UnexpectedMessage,
                "a Versions message on a connection with a version in common",
            )),
            (Message::Hello(hello), false) => {
                if hello.schema_hash != self.local.schema_hash {
                    let differences = schema_differences(&self.local, &hello).unwrap_or_default();
                    self.actions
                        .push_back(Action::Report(Report::SchemaDiffers { differences }));
                }
                check_hello(&self.local, &hello, self.version)?;
                let site = hello.site;
                self.peer = Some(hello);
                self.actions.push_back(Action::SetFrameLimit(MAX_FRAME));
                self.actions.push_back(Action::Bind(site));
                Ok(())
            }
            (Message::Hello(_), true) => Err(Violation::new(
                ErrorCode::UnexpectedMessage,
                "a second Hello",
            )),
            (other, false) => Err(Violation::new(
                ErrorCode::UnexpectedMessage,
                format!("a {} message before Hello", other.kind()),
            )),
            (Message::Pull { cursor }, true) => {
                self.pump_cursor = cursor;
                self.pump_generation += 1;
                self.live_due_ms = None;
                // A pump still out ends when it answers; the new one starts then.
                if self.pump != PumpState::Reading {
                    self.start_pump();
                }
                Ok(())
            }
            (
                Message::Batch {
                    batch,
                    cursor,
                    complete,
                    head,
                },
                true,
            ) => {
                self.flood.spend(batch.changes.len(), now_ms)?;
                self.actions.push_back(Action::Validate {
                    batch,
                    cursor,
                    complete,
                    head,
                });
                Ok(())
            }
            (
                Message::State {
                    head,
                    digest,
                    applied,
                    wall_ms,
                },
                true,
            ) => {
                self.actions.push_back(Action::Report(Report::PeerState {
                    head,
                    digest,
                    applied,
                    wall_ms,
                }));
                Ok(())
            }
        }
    }

    /// The peer's site is bound to its office: the session is established.
    fn on_bound(&mut self) {
        if let Some(hello) = self.peer.clone() {
            self.actions
                .push_back(Action::Report(Report::Established { hello }));
            self.actions.push_back(Action::SendPull);
        }
    }

    fn on_validated(&mut self, received: Received) {
        self.queued_changes += received.changes();
        self.queued.push(received);
        // A full queue goes as soon as the group out returns; otherwise it
        // waits for `FramesDrained`, so that batches read together apply
        // together.
        if self.queued_changes >= self.limits.group_changes {
            self.start_group();
        }
    }

    /// Starts the queued batches as one group unless one is out.
    fn start_group(&mut self) {
        if self.applying || self.queued.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.queued);
        self.queued_changes = 0;
        self.applying = true;
        // Reaching the sender's head ends a catch-up (or a burst).
        self.applying_complete = group.iter().any(|r| r.complete);
        self.actions.push_back(Action::Apply {
            group,
            settle: self.applying_complete,
        });
    }

    fn on_applied(&mut self, applied: GroupApplied) -> Result<(), Violation> {
        self.applying = false;
        if applied.dropped > 0 {
            // What was held is committed and the cursor moved on; the peer
            // is told why the session ends.
            return Err(Violation::new(
                ErrorCode::ForbiddenFlood,
                format!(
                    "the peer sent more changes its office may not make than this node holds for review: {} dropped (review the held list with `puente held list`)",
                    applied.dropped
                ),
            ));
        }
        if self.applying_complete {
            // Caught up with the peer: tell it where we stand.
            self.actions.push_back(Action::SendState);
        }
        self.start_group();
        Ok(())
    }

    fn start_pump(&mut self) {
        self.pump = PumpState::Reading;
        self.actions.push_back(Action::Pump {
            from: self.pump_cursor,
            generation: self.pump_generation,
            max_rows: self.limits.batch_rows,
            max_bytes: self.limits.batch_bytes,
            compress: compresses(self.version),
        });
    }

    fn on_pumped(&mut self, pumped: Pumped, now_ms: u64) {
        if pumped.generation != self.pump_generation {
            // A Pull arrived while this pump was out: start over from it.
            self.start_pump();
            return;
        }
        self.pump_cursor = pumped.cursor;
        if !pumped.complete {
            self.start_pump();
            return;
        }
        self.pump = PumpState::CaughtUp { head: pumped.head };
        self.maybe_push_live(now_ms);
    }

    fn on_head(&mut self, head: u64, now_ms: u64) {
        self.local_head = self.local_head.max(head);
        if self.peer.is_some() && self.state_due_ms.is_none() {
            self.state_due_ms = Some(now_ms.saturating_add(self.timing.state_debounce_ms));
        }
        self.maybe_push_live(now_ms);
    }

    /// Sends what committed since the pump caught up, at most once per
    /// `live_pace_ms`.
    fn maybe_push_live(&mut self, now_ms: u64) {
        let PumpState::CaughtUp { head } = self.pump else {
            return;
        };
        if self.local_head <= head {
            return;
        }
        let due = self
            .last_live_ms
            .map_or(now_ms, |at| at.saturating_add(self.timing.live_pace_ms));
        if now_ms >= due {
            self.live_due_ms = None;
            self.last_live_ms = Some(now_ms);
            self.start_pump();
        } else {
            self.live_due_ms = Some(due);
        }
    }

    fn on_tick(&mut self, now_ms: u64) -> Result<(), Violation> {
        if self.peer.is_none() {
            if now_ms >= self.hello_deadline_ms {
                return Err(Violation::new(
                    ErrorCode::Timeout,
                    "no Hello from the peer in time",
                ));
            }
            return Ok(());
        }
        if self.state_due_ms.is_some_and(|due| now_ms >= due) {
            self.state_due_ms = None;
            self.actions.push_back(Action::SendState);
        }
        if self.live_due_ms.is_some_and(|due| now_ms >= due) {
            self.maybe_push_live(now_ms);
        }
        Ok(())
    }
}

/// The code and sentence a session closes with when a replica step it
/// asked for fails: a batch the schema refuses, a site bound to another
/// office, or anything else that kept the replica from storing.
pub fn store_violation(e: StoreError) -> Violation {
    match e {
        // A peer naming more site ids than it may is its fault, like a
        // malformed batch; one presenting more site ids than an office
        // may have is refused like one presenting a copied site id.
        StoreError::InvalidBatch { .. } | StoreError::TooManySites { .. } => {
            Violation::new(ErrorCode::InvalidBatch, e.to_string())
        }
        StoreError::SiteOfAnotherOffice { .. } | StoreError::TooManyBindings { .. } => {
            Violation::new(ErrorCode::SameSite, e.to_string())
        }
        other => Violation::new(
            ErrorCode::ApplyFailed,
            format!("could not store the peer's changes: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests;
