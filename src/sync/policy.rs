//! Owns: the connection policy, without IO: how long a handshake and a silent
//! connection may take, which of two connections to the same peer both
//! sides keep (and the registry of the one kept per peer), whether an
//! ended session was a problem, and each peer's dialler: when to dial
//! (only while no connection to the peer is up), what an attempt came to
//! (refused, failed, a healthy session or not), how long to wait before
//! the next (exponential backoff with jitter drawn from an injected random
//! source, started over after a healthy session or `puente sync`).
//!
//! Must not: sleep, read clocks (time is an argument), draw from a global
//! random source or hold connections (sync/manager.rs and the simulator in
//! tests/sim do what these decide).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;

use super::protocol::ErrorCode;
use crate::mutants::{self, Mutant};

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no packet from the peer for this long is gone (QUIC's
/// idle timeout; keep-alives go out well within it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// A session that lasted this long was healthy, whatever ended it.
pub const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// Which side opened a connection.
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

/// The first wait after a failed dial, and the longest.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Waits between dial attempts: each the current delay with jitter (50–100
/// %), then the delay doubles up to `BACKOFF_MAX`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// After a healthy session (or an explicit `puente sync`), start over.
    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// The next wait.
    pub fn wait(&mut self, rng: &mut impl Rng) -> Duration {
        let jitter = 0.5 + rng.random::<f64>() * 0.5;
        let wait = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Whether this node dials the connection both sides keep when both dial
/// at once: the node with the lower certificate fingerprint does.
pub fn we_dial_the_winner<F: Ord>(ours: &F, theirs: &F) -> bool {
    ours < theirs
}

/// Two connections to the same peer admitted within this of each other
/// are a race (both sides dialled at once); a later one means the peer
/// lost the first (it restarted, or saw it die).
pub const DUPLICATE_RACE: Duration = Duration::from_secs(3);

/// Whether a new connection to a peer replaces the live one, admitted
/// `existing_age` ago. The same side dialling again means the old one is
/// stale, and so does a peer dialling long after the old one came up (a
/// peer dials only when it has no connection: it restarted, or lost it).
/// When both sides dialled at once, both keep the connection dialled by the
/// node with the lower certificate fingerprint (`we_dial_the_winner` when
/// that is this node), so they agree without talking.
pub fn keeps_new_connection(
    existing: Direction,
    existing_age: Duration,
    new: Direction,
    we_dial_the_winner: bool,
) -> bool {
    if existing == new || existing_age >= DUPLICATE_RACE {
        return true;
    }
    (new == Direction::Outbound) == we_dial_the_winner
}

/// The connection kept for a peer.
#[derive(Debug, Clone)]
pub struct Kept<C> {
    pub conn: C,
    pub direction: Direction,
    /// When it was admitted (ms of the caller's monotonic clock).
    pub admitted_ms: u64,
}

/// What `Registry::admit` decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<C> {
    /// The live connection stays; close the new one as a duplicate.
    Refused,
    /// The new connection is the one kept; close the one it replaces (with
    /// `duplicate_connection`), if one was alive.
    Admitted { replaced: Option<C> },
}

/// The single live connection per peer, `C` standing for a connection.
#[derive(Debug)]
pub struct Registry<P, C> {
    active: BTreeMap<P, Kept<C>>,
}

impl<P, C> Default for Registry<P, C> {
    fn default() -> Self {
        Registry {
            active: BTreeMap::new(),
        }
    }
}

impl<P: Ord, C> Registry<P, C> {
    /// Admits `conn` for `peer` unless the connection kept for it is alive
    /// (`alive`) and wins by `keeps_new_connection`.
    pub fn admit(
        &mut self,
        peer: P,
        conn: C,
        direction: Direction,
        now_ms: u64,
        we_dial_the_winner: bool,
        alive: impl Fn(&C) -> bool,
    ) -> Admission<C> {
        if let Some(kept) = self.active.get(&peer)
            && alive(&kept.conn)
            && !keeps_new_connection(
                kept.direction,
                Duration::from_millis(now_ms.saturating_sub(kept.admitted_ms)),
                direction,
                we_dial_the_winner,
            )
        {
            return Admission::Refused;
        }
        let new = Kept {
            conn,
            direction,
            admitted_ms: now_ms,
        };
        let replaced = self
            .active
            .insert(peer, new)
            .map(|old| old.conn)
            .filter(|old| alive(old));
        Admission::Admitted { replaced }
    }

    /// Forgets the connection kept for `peer` if `is_it` says it is the one
    /// that ended; whether it was.
    pub fn release(&mut self, peer: &P, is_it: impl Fn(&C) -> bool) -> bool {
        if self.active.get(peer).is_some_and(|k| is_it(&k.conn)) {
            self.active.remove(peer);
            return true;
        }
        false
    }

    /// The connection kept for `peer`.
    pub fn get(&self, peer: &P) -> Option<&Kept<C>> {
        self.active.get(peer)
    }

    /// Every connection kept.
    pub fn connections(&self) -> impl Iterator<Item = &C> {
        self.active.values().map(|k| &k.conn)
    }

    /// Forgets every connection (they went with the process).
    pub fn clear(&mut self) {
        self.active.clear();
    }
}

/// How a session's connection ended, as its executor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// This node's session closed it with this code.
    Closed(ErrorCode),
    /// This node closed it from outside the session: a duplicate replaced,
    /// a peer unpinned or the schema reloaded, a shutdown.
    ClosedHere,
    /// The peer closed it, with this code (None: one this build does not
    /// know).
    ClosedByPeer(Option<ErrorCode>),
    /// It timed out, was reset or failed, or the peer's stream ended.
    Lost,
}

impl Ending {
    /// The code either side closed with, if one did.
    pub fn code(self) -> Option<ErrorCode> {
        match self {
            Ending::Closed(code) => Some(code),
            Ending::ClosedByPeer(code) => code,
            Ending::ClosedHere | Ending::Lost => None,
        }
    }

    /// Whether the end is a problem worth showing (and counting): not an
    /// orderly close, a shutdown, a replaced duplicate or this node
    /// closing; an unknown code is one.
    pub fn is_problem(self) -> bool {
        match self {
            Ending::Closed(code) => code.is_problem(),
            Ending::ClosedByPeer(code) => code.is_none_or(ErrorCode::is_problem),
            Ending::ClosedHere => false,
            Ending::Lost => true,
        }
    }
}

/// A session that ran on a dialled connection, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnded {
    pub ending: Ending,
    /// Whether both Hellos passed (the session was established).
    pub handshaken: bool,
    pub lasted: Duration,
    /// Whether the connection's close is a TLS refusal (with TLS 1.3 the
    /// client's handshake ends before the server has checked the client's
    /// certificate, so the server's refusal arrives as the close).
    pub refused_by_tls: bool,
}

/// What one dial attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No connection: no answer, an address that does not resolve, a
    /// handshake that failed.
    Failed,
    /// TLS refused it: a certificate not pinned at either end, or no
    /// protocol version in common.
    Refused,
    /// The connection came up and was dropped at once: the connection both
    /// sides keep is up.
    Duplicate,
    /// A session ran on it and ended.
    Ended(SessionEnded),
}

/// What status shows after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused (shown as refused, with why, through the retries that
    /// follow until a session is up or another failure happens).
    Refused,
    /// No session; dialling again.
    Failed,
    /// A session ran; a healthy one starts the backoff over.
    Served { healthy: bool },
}

impl Attempt {
    pub fn verdict(self) -> Verdict {
        match self {
            Attempt::Failed => Verdict::Failed,
            Attempt::Refused => Verdict::Refused,
            // Dropped for the connection both sides keep: all is well.
            Attempt::Duplicate => Verdict::Served { healthy: true },
            Attempt::Ended(end) => {
                // Refused before Hello passed: by TLS (seen only as the
                // close), or by the peer's session for our version or schema.
                let refused = !end.handshaken
                    && (end.refused_by_tls
                        || matches!(
                            end.ending.code(),
                            Some(ErrorCode::ProtocolMismatch | ErrorCode::SchemaMismatch)
                        ));
                if refused {
                    Verdict::Refused
                } else {
                    Verdict::Served {
                        healthy: end.handshaken
                            && (end.lasted >= HEALTHY_SESSION || !end.ending.is_problem()),
                    }
                }
            }
        }
    }
}

/// Where a dialler stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialState {
    /// Dials as soon as no connection to the peer is up (in either
    /// direction: while one is, it waits for it to end).
    Ready,
    /// An attempt is under way (a session on it included).
    Dialling,
    /// Waiting out the backoff after an attempt.
    Resting,
}

/// One peer's dialler: dial while no connection is up, rest the backoff
/// after each attempt.
#[derive(Debug, Clone)]
pub struct Dialler {
    backoff: Backoff,
    state: DialState,
}

impl Default for Dialler {
    fn default() -> Self {
        Dialler {
            backoff: Backoff::default(),
            state: DialState::Ready,
        }
    }
}

impl Dialler {
    pub fn state(&self) -> DialState {
        self.state
    }

    /// Whether to dial now, with `connected` saying whether a connection to
    /// the peer (either direction) is up.
    pub fn wants_to_dial(&self, connected: bool) -> bool {
        self.state == DialState::Ready && !connected
    }

    /// An attempt starts.
    pub fn dialling(&mut self) {
        self.state = DialState::Dialling;
    }

    /// The attempt ended: what status shows, and how long to rest before
    /// the next (after a healthy session, the backoff starts over first).
    pub fn attempted(&mut self, attempt: Attempt, rng: &mut impl Rng) -> (Verdict, Duration) {
        let verdict = attempt.verdict();
        if verdict == (Verdict::Served { healthy: true }) {
            self.backoff.reset();
        }
        self.state = DialState::Resting;
        if verdict == Verdict::Failed && mutants::active(Mutant::DiallerStuckAfterFailure) {
            self.state = DialState::Dialling;
        }
        (verdict, self.backoff.wait(rng))
    }

    /// The rest is over.
    pub fn rested(&mut self) {
        if self.state == DialState::Resting {
            self.state = DialState::Ready;
        }
    }

    /// `puente sync` asked for a dial now: a rest is cut short and the
    /// backoff starts over (an attempt under way, or waiting while a
    /// connection is up, is left alone). Whether it cut a rest short.
    pub fn sync_now(&mut self) -> bool {
        if self.state != DialState::Resting {
            return false;
        }
        self.backoff.reset();
        self.state = DialState::Ready;
        true
    }
}

#[cfg(test)]
mod tests;
