//! What the sync layer knows about one configured peer while the node
//! runs: its state, address, site, clocks, cursors, counters and the
//! catch-up in each direction; status is built from it.
//!
//! Owns: `PeerLive` and what is owed each way.
//! Must not: decide anything about the session (sync/ does) or read the
//! replica.

use crate::node::progress::Tracker;
use crate::node::status::{PeerCounters, PeerState};
use crate::stamp::SiteId;
use crate::store::{Cursor, Digest};

/// What the sync layer knows about one configured peer.
#[derive(Debug, Clone)]
pub struct PeerLive {
    pub state: PeerState,
    pub detail: Option<String>,
    pub direction: Option<&'static str>,
    pub remote_address: Option<String>,
    pub site: Option<SiteId>,
    pub rtt_ms: Option<f64>,
    pub last_contact_ms: Option<u64>,
    pub peer_head: Option<u64>,
    pub peer_digest: Option<Digest>,
    /// The peer's cursor of this node (how far it applied our changes).
    pub peer_applied: Option<Cursor>,
    pub skew_ms: Option<i64>,
    /// The last changes stamped beyond the drift bound.
    pub clock_ahead: Option<crate::node::status::ClockAhead>,
    pub last_error: Option<String>,
    /// The protocol version the last session negotiated.
    pub protocol: Option<u16>,
    /// How the peer's schema differs from ours, in words (while it does).
    pub schema_differences: Vec<String>,
    pub counters: PeerCounters,
    /// Our cursor of the peer's changes, as last read or stored (how far
    /// we applied its changes).
    pub our_cursor: Option<Cursor>,
    /// Catch-ups in each direction.
    pub receiving: Tracker,
    pub sending: Tracker,
}

impl PeerLive {
    /// Changes we have that the peer has not applied (from its last
    /// State), and changes it has that we have not applied.
    pub(super) fn owed(&self, head: u64) -> (Option<u64>, Option<u64>) {
        let we_owe = self.peer_applied.map(|c| head.saturating_sub(c.progress));
        let they_owe = match (self.peer_head, self.our_cursor) {
            (Some(h), Some(c)) => Some(h.saturating_sub(c.progress)),
            _ => None,
        };
        (we_owe, they_owe)
    }

    /// Feeds both catch-up trackers what is owed now.
    pub(super) fn observe_progress(&mut self, head: u64, now_ms: u64) {
        let (we_owe, they_owe) = self.owed(head);
        if let (Some(left), Some(c)) = (they_owe, self.our_cursor) {
            self.receiving.observe(now_ms, c.progress, left);
        }
        if let (Some(left), Some(c)) = (we_owe, self.peer_applied) {
            self.sending.observe(now_ms, c.progress, left);
        }
    }
}

impl PeerLive {
    pub(super) fn new(has_address: bool) -> PeerLive {
        PeerLive {
            state: if has_address {
                PeerState::Connecting
            } else {
                PeerState::Waiting
            },
            detail: None,
            direction: None,
            remote_address: None,
            site: None,
            rtt_ms: None,
            last_contact_ms: None,
            peer_head: None,
            peer_digest: None,
            peer_applied: None,
            skew_ms: None,
            clock_ahead: None,
            last_error: None,
            protocol: None,
            schema_differences: Vec::new(),
            counters: PeerCounters::default(),
            our_cursor: None,
            receiving: Tracker::default(),
            sending: Tracker::default(),
        }
    }
}
