//! The status document: what `GET /v1/status` returns and `puente status`
//! prints.
//!
//! Owns: the serialisable shape of node and peer status (stable JSON keys).
//! Must not: compute anything; the daemon fills it in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::progress::CatchUp;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub node: String,
    pub version: String,
    pub uptime_s: u64,
    pub site_id: String,
    pub fingerprint: String,
    pub listen: String,
    /// The office's time zone (IANA name): `puente schedule`, the web
    /// agenda and every date a person reads at this office use it.
    #[serde(default)]
    pub time_zone: String,
    pub schema_hash: String,
    /// The replica's head change sequence.
    pub head: u64,
    /// Order-independent digest of all live cells and tombstones.
    pub digest: String,
    pub rows: BTreeMap<String, u64>,
    pub sealed_cells: u64,
    pub tombstones: u64,
    /// Seal groups this node holds an identity for (empty: cannot unseal).
    pub can_unseal: Vec<String>,
    pub peers: Vec<PeerStatus>,
    /// Recent connections refused before a session started.
    pub refused: Vec<Refusal>,
    /// UDP datagrams on the sync port that were not QUIC v1 (dropped).
    pub garbage_datagrams: u64,
    /// How the replica is stored on disk.
    #[serde(default)]
    pub at_rest: AtRestStatus,
    /// Per seal group: live cells still sealed to a recipient set other
    /// than the schema's (a reseal moves them).
    #[serde(default)]
    pub sealed_to_old_keys: BTreeMap<String, u64>,
    /// The running or last reseal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseal: Option<ResealStatus>,
    /// The last reload (SIGHUP, `systemctl reload puente`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadStatus>,
    /// Site ids this replica had before it was restored from backups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_sites: Vec<String>,
    /// Changes peers sent that their office may not make, waiting for
    /// review (`puente held list`).
    #[serde(default)]
    pub held: u64,
}

/// Progress of re-sealing cells to their group's current recipients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResealStatus {
    /// The groups being re-sealed.
    pub groups: Vec<String>,
    /// "running", "done" or "failed".
    pub state: String,
    /// Cells that were sealed to an old recipient set when it started.
    pub total: u64,
    /// Cells re-sealed so far (new versions written).
    pub done: u64,
    /// Cells left alone because they changed meanwhile (a later pass or
    /// run takes them if they still need it).
    pub skipped: u64,
    /// Cells this node could not open (sealed to keys it does not hold, or
    /// damaged); they stay as they are.
    pub failed: u64,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// What went wrong, or the first cells that could not be opened.
    pub message: Option<String>,
}

/// The outcome of a reload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Unix ms.
    pub at_ms: u64,
    /// False: the files were refused and the running config kept.
    pub applied: bool,
    /// What changed, what was refused and why, what needs a restart.
    pub messages: Vec<String>,
}

/// Whether the replica (database and WAL) is encrypted at rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AtRestStatus {
    pub encrypted: bool,
    /// The SQLCipher version, e.g. "4.20.0 community" (when encrypted).
    pub cipher: Option<String>,
    /// Where the key came from: "file" or "credential" (when encrypted).
    pub key_source: Option<String>,
    /// What an admin should know, e.g. that an unencrypted replica is
    /// readable by anyone who copies it.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// A session is up.
    Connected,
    /// Dialling, or waiting to retry.
    Connecting,
    /// The last attempt was refused (see `detail`).
    Refused,
    /// No address to dial; waiting for the peer to connect.
    Waiting,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub fingerprint: String,
    pub address: Option<String>,
    pub state: PeerState,
    /// Why a peer is refused, or what the daemon is waiting for.
    pub detail: Option<String>,
    /// "outbound" when this node dialled, "inbound" when the peer did.
    pub direction: Option<String>,
    pub remote_address: Option<String>,
    pub site_id: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Unix milliseconds of the last message from the peer.
    pub last_contact_ms: Option<u64>,
    /// Changes this node has that the peer has not applied yet.
    pub we_owe: Option<u64>,
    /// Changes the peer has that this node has not applied yet.
    pub they_owe: Option<u64>,
    pub peer_head: Option<u64>,
    pub peer_digest: Option<String>,
    /// Both digests equal and nothing owed either way.
    pub in_sync: Option<bool>,
    /// How far the peer's clock is ahead of ours (negative: behind), from
    /// its last message and the newest timestamp it sent.
    pub clock_skew_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The sync protocol version of the last session.
    #[serde(default)]
    pub protocol: Option<u16>,
    /// While the peer's schema differs from ours: what differs, in words,
    /// and what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_differences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_advice: Option<String>,
    /// Changes from this peer held here for review.
    #[serde(default)]
    pub held: u64,
    /// Changes from this peer discarded here that it keeps (a delete
    /// cannot be undone): digests stay different.
    #[serde(default)]
    pub held_diverged: u64,
    /// Why they are held (a few distinct reasons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_reasons: Vec<String>,
    /// Why the digests differ although neither side is behind (held or
    /// discarded changes), in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_note: Option<String>,
    /// The last time this peer sent changes stamped further ahead of this
    /// office's clock than the drift bound allows: whose clock, how far
    /// ahead; such changes are held until this clock catches up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ahead: Option<ClockAhead>,
    pub counters: PeerCounters,
    /// While this node catches up with the peer's changes: done, left,
    /// estimated time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving: Option<CatchUp>,
    /// While the peer catches up with this node's changes (as its State
    /// messages say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<CatchUp>,
}

/// Changes a peer sent stamped beyond the drift bound, as last seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClockAhead {
    /// The office whose clock stamped them (or "site …" when no pinned
    /// peer has said whose the site is).
    pub office: String,
    /// How far the furthest lay ahead of this office's clock.
    pub ahead_ms: u64,
    /// The bound it exceeded (`[sync] max_clock_drift_s`).
    pub max_drift_ms: u64,
    /// Unix milliseconds when it arrived.
    pub seen_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerCounters {
    pub sessions: u64,
    pub batches_in: u64,
    pub rows_in: u64,
    pub cells_in: u64,
    pub bytes_in: u64,
    pub batches_out: u64,
    pub rows_out: u64,
    pub bytes_out: u64,
    /// UDP payload bytes of the current or last connection (QUIC and TLS
    /// overhead included).
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    /// Sessions ended by an error, per error code name.
    pub errors: BTreeMap<String, u64>,
    /// Changes from this peer held for review since the daemon started.
    #[serde(default)]
    pub held: u64,
    /// Changes from this peer that should have been held, dropped because
    /// the held list was full (a flood), since the daemon started.
    #[serde(default)]
    pub held_dropped: u64,
    /// Changes from this peer stamped beyond the drift bound (held, or
    /// dropped when the held list was full), since the daemon started.
    #[serde(default)]
    pub ahead: u64,
    /// Dial attempts refused by pinning (either side) or by having no
    /// protocol version in common.
    #[serde(default)]
    pub refusals: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Refusal {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub remote_address: String,
    pub reason: String,
}
