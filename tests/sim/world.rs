//! The simulated world: offices (each a real `Store` in a temp dir), the
//! links between them, the connections with a real session machine at
//! each end, simulated time and one queue of events ordered by (time,
//! sequence). Everything random comes from the seed, so a run replays.
//!
//! The network model is the one the sessions see over QUIC: each
//! direction of a connection is an ordered stream of frames with per-link
//! delay and jitter, written one at a time from the session's `Outbox`
//! at the scenario's speed; a lost packet delays its frame and every frame
//! behind it (QUIC resends it; the stream stays ordered); a cut link
//! freezes the stream and, if it lasts longer than the idle timeout, ends
//! the connection at both ends. Duplicated and reordered changes come from
//! where QUIC cannot hide them: several paths between offices (relays),
//! two connections at once when both sides dial, sessions that restart
//! from an older cursor after a crash.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use puente::clock::ManualClock;
use puente::config::Schema;
use puente::seal::Keyring;
use puente::stamp::SiteId;
use puente::store::{Cursor, Store};
use puente::sync::policy::{self, Attempt, Dialler, Ending};
use puente::sync::protocol::FrameDecoder;
use puente::sync::session::{Outbox, Pumped, Received, Session};
use rand::Rng;
use rand::rngs::StdRng;

use super::dishonest::{Key, RightsPlan};
use super::model::Model;
use super::scenario::{LinkSpec, Scenario};

/// Simulated wall clocks start here (unix ms, in 2027).
pub const WALL_BASE_MS: i64 = 1_800_000_000_000;
/// The drift bound of every simulated office: more than an honest
/// office's worst clock (a day of skew and two jumps of two hours), so an
/// honest office's changes are never held for their stamps, while the
/// dishonest office's stamps from years ahead are.
pub const SIM_MAX_DRIFT_MS: u64 = 2 * 24 * 3_600_000;
/// A connection whose link stays cut this long times out at both ends
/// (the daemon's QUIC idle timeout).
pub const IDLE_TIMEOUT_MS: u64 = policy::IDLE_TIMEOUT.as_millis() as u64;
/// A dial with no answer gives up after this (the daemon's).
pub const HANDSHAKE_TIMEOUT_MS: u64 = policy::HANDSHAKE_TIMEOUT.as_millis() as u64;
/// Extra wait of a frame whose packet was lost (a retransmission).
pub const RETRANSMIT_MS: u64 = 200;
/// The size the simulator counts for one change in a batch frame, when it
/// writes the frame (time) and reads it ahead (`Session::reads_ahead`); a
/// sealed cell is an age file of some 250 to 450 bytes. Not the frame's
/// own length: age adds a stanza of random length to every file, and a run
/// must replay from its seed. (Control frames count their own length.)
pub const CHANGE_BYTES: u64 = 300;

pub struct Office {
    pub name: String,
    pub site: SiteId,
    pub path: PathBuf,
    pub store: Option<Store>,
    pub clock: Arc<ManualClock>,
    /// Wall clock minus simulated time.
    pub offset_ms: i64,
    /// Bumped by every crash: work started before it is void.
    pub epoch: u64,
    /// Stands in for the certificate fingerprint in the duplicate
    /// tie-break.
    pub rank: u64,
    /// The live connection kept per peer (the daemon's registry).
    pub registry: policy::Registry<usize, u64>,
    /// The dialler of each peer (the daemon's).
    pub diallers: BTreeMap<usize, Dialler>,
    pub disk_full: bool,
    pub restart_at: Option<u64>,
    /// The sync protocol versions it speaks (some offices run an older
    /// puente that speaks only version 1).
    pub versions: Vec<u16>,
    /// The site ids it had before restores (restore.rs), oldest first.
    pub retired: Vec<SiteId>,
    /// Set while it is down for a restore: it starts a new history when
    /// it comes back.
    pub restoring: bool,
}

impl Office {
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("the office is up")
    }

    pub fn store_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("the office is up")
    }

    pub fn is_up(&self) -> bool {
        self.store.is_some()
    }
}

/// One end of a connection.
pub struct Side {
    pub office: usize,
    pub epoch: u64,
    pub session: Session,
    pub decoder: FrameDecoder,
    /// When a tick is scheduled for it.
    pub tick_at: Option<u64>,
    /// Frames waiting for this end's writer, in the daemon's order.
    pub outbox: Outbox,
    /// Whether a write is scheduled (the writer is busy or about to be).
    pub writing: bool,
    /// A pump's frame waiting for room in the outbox, its answer and its
    /// size as the simulator counts it.
    pub parked: Option<(Vec<u8>, Pumped, u64)>,
    /// The sizes of the batches waiting in the outbox, in order.
    pub batch_sizes: VecDeque<u64>,
    /// When the session started, and whether it was established.
    pub started_ms: u64,
    pub handshaken: bool,
}

/// A frame on its way, when it arrives, and its size as the simulator
/// counts it (see `CHANGE_BYTES`).
pub struct Flying {
    pub at: u64,
    pub frame: Vec<u8>,
    pub size: u64,
}

pub struct Conn {
    /// Offices at each end: 0 dialled, 1 accepted.
    pub ends: [usize; 2],
    pub sides: [Option<Side>; 2],
    /// Frames on their way to each end, in order.
    pub inflight: [VecDeque<Flying>; 2],
}

impl Conn {
    pub fn side_of(&self, office: usize) -> usize {
        if self.ends[0] == office { 0 } else { 1 }
    }
}

pub struct Link {
    pub spec: LinkSpec,
    pub cut: bool,
    /// Bumped by every cut: a timeout scheduled for an earlier cut is void.
    pub cut_epoch: u64,
}

#[derive(Debug)]
pub enum Ev {
    Deliver {
        conn: u64,
        to: usize,
    },
    Tick {
        conn: u64,
        side: usize,
    },
    ApplyDone {
        conn: u64,
        side: usize,
        epoch: u64,
        group: Vec<Received>,
        settle: bool,
    },
    PumpDone {
        conn: u64,
        side: usize,
        epoch: u64,
        order: PumpOrder,
    },
    /// The end's writer takes its next frame.
    WriteFrame {
        conn: u64,
        side: usize,
    },
    /// The dialler's rest is over (or the office has just started).
    Rested {
        from: usize,
        to: usize,
        epoch: u64,
    },
    /// A dial attempt came to this (with no session).
    Attempted {
        from: usize,
        to: usize,
        epoch: u64,
        attempt: Attempt,
    },
    Establish {
        dialer: usize,
        acceptor: usize,
        epoch: u64,
    },
    /// The end `side` of `conn` learns that the connection is gone, and how.
    Lost {
        conn: u64,
        side: usize,
        ending: Ending,
    },
    Write {
        office: usize,
    },
    Crash {
        office: usize,
        down_ms: u64,
    },
    Restart {
        office: usize,
    },
    /// The office stops, is restored from a backup taken as it stopped,
    /// and starts again `down_ms` later under a new site id.
    Restore {
        office: usize,
        down_ms: u64,
    },
    Cut {
        link: usize,
        for_ms: u64,
    },
    Heal {
        link: usize,
    },
    IdleTimeout {
        conn: u64,
        link: usize,
        cut_epoch: u64,
    },
    ClockJump {
        office: usize,
        delta_ms: i64,
    },
    Disk {
        office: usize,
        full: bool,
    },
    Check,
}

/// What an `Action::Pump` asked for.
#[derive(Debug, Clone, Copy)]
pub struct PumpOrder {
    pub from: Cursor,
    pub generation: u64,
    pub max_rows: usize,
    pub max_bytes: usize,
    pub compress: bool,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct World {
    pub rng: StdRng,
    /// Draws the dishonest office's stamps from the future (a generator of
    /// its own, so that seeds without one replay as before).
    pub clock_rng: StdRng,
    /// Draws the event edits the dishonest office stamps far ahead (a
    /// generator of its own too).
    pub ahead_rng: StdRng,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    pub scenario: Scenario,
    pub schema: Arc<Schema>,
    /// The identity that opens sealed values (for checking them).
    pub keyring: Arc<Keyring>,
    pub offices: Vec<Office>,
    pub links: Vec<Link>,
    pub conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    pub model: Model,
    /// Whether the run has rights, and a dishonest office.
    pub plan: RightsPlan,
    /// The schema the dishonest office's own store uses (no rights).
    pub dishonest_schema: Arc<Schema>,
    /// Forbidden changes the dishonest office sent, per receiver.
    pub forbidden_sent: BTreeMap<usize, std::collections::BTreeSet<Key>>,
    /// The changes the dishonest office stamped with a receiver's own
    /// retired site id, per receiver (restore.rs): they look exactly like
    /// that office's old versions relayed back, so only the forger knows.
    pub retired_forged: BTreeMap<usize, std::collections::BTreeSet<Key>>,
    /// Numbers ids that only one office writes.
    pub fresh: u64,
    /// The first broken invariant, if any.
    pub failure: Option<String>,
    /// The last events, for the failure report.
    pub trace: VecDeque<String>,
    pub tracing: bool,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub events: u64,
    pub frames: u64,
    pub sessions: u64,
    pub crashes: u64,
    /// Honest writes refused for want of a right.
    pub refused: u64,
    /// Changes held on apply.
    pub held: u64,
    /// Changes held at the end (honest offices).
    pub held_at_end: u64,
    /// Cells and tombstones a stored cursor promised, checked against the
    /// receiver after an apply (`check::cursor_is_not_ahead`).
    pub cursor_promises_checked: u64,
    /// Event edits the dishonest office sent stamped far ahead.
    pub ahead_sent: u64,
    /// Restores of an office from a backup (restore.rs).
    pub restores: u64,
    /// Changes the dishonest office sent stamped with the receiver's own
    /// retired site id.
    pub retired_forged: u64,
    /// Of the changes held at the end, those forged with the holder's own
    /// retired site id.
    pub retired_held_at_end: u64,
}

impl World {
    pub fn new(
        rng: StdRng,
        scenario: Scenario,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
        offices: Vec<Office>,
        plan: RightsPlan,
    ) -> World {
        let links = scenario
            .links
            .iter()
            .map(|spec| Link {
                spec: spec.clone(),
                cut: false,
                cut_epoch: 0,
            })
            .collect();
        World {
            rng,
            clock_rng: rand::SeedableRng::seed_from_u64(0),
            ahead_rng: rand::SeedableRng::seed_from_u64(0),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            scenario,
            schema: schema.clone(),
            keyring,
            offices,
            links,
            conns: BTreeMap::new(),
            next_conn: 1,
            model: Model::default(),
            dishonest_schema: Arc::new(schema.without_rights()),
            plan,
            forbidden_sent: BTreeMap::new(),
            retired_forged: BTreeMap::new(),
            fresh: 0,
            failure: None,
            trace: VecDeque::new(),
            tracing: false,
            stats: Stats::default(),
        }
    }

    pub fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    pub fn after(&mut self, delay: u64, ev: Ev) {
        self.at(self.now + delay, ev);
    }

    pub fn pop(&mut self) -> Option<Ev> {
        let Reverse(next) = self.queue.pop()?;
        self.now = next.at;
        self.stats.events += 1;
        Some(next.ev)
    }

    /// The schema an office's own store uses (the dishonest office's
    /// checks no rights).
    pub fn schema_of(&self, office: usize) -> Arc<Schema> {
        if self.plan.is_dishonest(office) {
            self.dishonest_schema.clone()
        } else {
            self.schema.clone()
        }
    }

    /// A local write refused for a reason other than the row's state or a
    /// right: only a full disk excuses it.
    pub fn refused_write(&mut self, office: usize, e: puente::store::StoreError) {
        if !self.offices[office].disk_full {
            self.fail(format!("a local write failed: {e}"));
        }
    }

    /// Records a broken invariant (the first one wins).
    pub fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.note(format!("FAILED: {what}"));
            self.failure = Some(what);
        }
    }

    pub fn note(&mut self, line: String) {
        let line = format!("{:>8} ms  {line}", self.now);
        if self.tracing {
            eprintln!("{line}");
        }
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    pub fn new_conn_id(&mut self) -> u64 {
        self.next_conn += 1;
        self.next_conn
    }

    /// The office's wall clock now.
    pub fn wall(&self, office: usize) -> u64 {
        (self.now as i64 + WALL_BASE_MS + self.offices[office].offset_ms) as u64
    }

    /// Sets the office's clock to its wall time (before it does anything).
    pub fn sync_clock(&self, office: usize) {
        self.offices[office].clock.set(self.wall(office));
    }

    pub fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| (l.spec.a == a && l.spec.b == b) || (l.spec.a == b && l.spec.b == a))
    }

    pub fn peers_of(&self, office: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter_map(|l| {
                if l.spec.a == office {
                    Some(l.spec.b)
                } else if l.spec.b == office {
                    Some(l.spec.a)
                } else {
                    None
                }
            })
            .collect()
    }

    /// How long a frame takes over the link now (delay, jitter, and a
    /// retransmission now and then).
    pub fn transit(&mut self, link: usize) -> u64 {
        let spec = self.links[link].spec.clone();
        let mut t = spec.delay_ms + self.rng.random_range(0..=spec.jitter_ms);
        while spec.loss > 0.0 && self.rng.random_bool(spec.loss) {
            t += RETRANSMIT_MS;
        }
        t
    }
}
