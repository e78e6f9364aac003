//! One scrape: the status document, the node's counters and the replica's
//! file sizes, written as Prometheus families.
//!
//! Owns: the names, types, help and labels of every metric (names and
//! units by Prometheus' conventions: `puente_…`, counters `_total`, base
//! units `_seconds` and `_bytes`; labels `peer`, `table`, `code`, `state`).
//! Must not: read anything itself; the caller gathers the inputs.

use std::sync::atomic::Ordering;

use super::NodeMetrics;
use super::text::{Exposition, Kind};
use crate::node::histogram::HistogramSnapshot;
use crate::node::status::{PeerState, Status};

/// What a scrape shows besides the status document.
#[derive(Debug, Clone)]
pub struct Extra {
    /// Unix milliseconds now and when the node started.
    pub now_ms: u64,
    pub started_ms: u64,
    pub database_bytes: u64,
    pub wal_bytes: u64,
    pub revealed_cells: u64,
    pub refused_connections: u64,
    pub apply: HistogramSnapshot,
    pub commit: HistogramSnapshot,
}

impl Extra {
    /// The counters of `metrics`, with the times and sizes given.
    pub fn of(
        metrics: &NodeMetrics,
        now_ms: u64,
        started_ms: u64,
        database_bytes: u64,
        wal_bytes: u64,
    ) -> Extra {
        Extra {
            now_ms,
            started_ms,
            database_bytes,
            wal_bytes,
            revealed_cells: metrics.revealed_cells.load(Ordering::Relaxed),
            refused_connections: metrics.refused_connections.load(Ordering::Relaxed),
            apply: metrics.apply_seconds.snapshot(),
            commit: metrics.commit_seconds.snapshot(),
        }
    }
}

const STATES: [(PeerState, &str); 4] = [
    (PeerState::Connected, "connected"),
    (PeerState::Connecting, "connecting"),
    (PeerState::Refused, "refused"),
    (PeerState::Waiting, "waiting"),
];

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The scrape in the text exposition format.
pub fn render(s: &Status, x: &Extra) -> String {
    let mut e = Exposition::new();
    node_families(&mut e, s, x);
    peer_families(&mut e, s, x);
    e.finish()
}

fn node_families(e: &mut Exposition, s: &Status, x: &Extra) {
    e.family(
        "puente_build_info",
        Kind::Gauge,
        "Always 1; the labels name this node and its puente version.",
    )
    .sample(&[("node", &s.node), ("version", &s.version)], 1.0);
    e.family(
        "puente_start_time_seconds",
        Kind::Gauge,
        "When the daemon started, in seconds since the Unix epoch.",
    )
    .sample(&[], x.started_ms as f64 / 1000.0);
    e.family(
        "puente_head_sequence",
        Kind::Gauge,
        "The replica's head change sequence (grows with every change written here).",
    )
    .sample(&[], s.head as f64);
    let mut rows = e.family("puente_rows", Kind::Gauge, "Live rows per table.");
    for (table, n) in &s.rows {
        rows.sample(&[("table", table)], *n as f64);
    }
    e.family(
        "puente_sealed_cells",
        Kind::Gauge,
        "Cells of sealed columns holding ciphertext.",
    )
    .sample(&[], s.sealed_cells as f64);
    e.family(
        "puente_tombstones",
        Kind::Gauge,
        "Deleted rows (permanent tombstones).",
    )
    .sample(&[], s.tombstones as f64);
    e.family(
        "puente_database_size_bytes",
        Kind::Gauge,
        "Size of the replica's database file.",
    )
    .sample(&[], x.database_bytes as f64);
    e.family(
        "puente_wal_size_bytes",
        Kind::Gauge,
        "Size of the replica's write-ahead log.",
    )
    .sample(&[], x.wal_bytes as f64);
    e.family(
        "puente_revealed_cells_total",
        Kind::Counter,
        "Sealed cells revealed through the admin socket (each is in the audit log).",
    )
    .sample(&[], x.revealed_cells as f64);
    e.family(
        "puente_refused_connections_total",
        Kind::Counter,
        "Connections refused before a session: unpinned certificates, failed handshakes.",
    )
    .sample(&[], x.refused_connections as f64);
    e.family(
        "puente_garbage_datagrams_total",
        Kind::Counter,
        "UDP datagrams on the sync port that were not QUIC (dropped).",
    )
    .sample(&[], s.garbage_datagrams as f64);
    e.family(
        "puente_apply_duration_seconds",
        Kind::Histogram,
        "Time to apply one group of a peer's batches in one transaction.",
    )
    .histogram(&[], &x.apply);
    e.family(
        "puente_commit_duration_seconds",
        Kind::Histogram,
        "Time of each COMMIT of the replica (the durable write).",
    )
    .histogram(&[], &x.commit);
}

fn peer_families(e: &mut Exposition, s: &Status, x: &Extra) {
    let peers = &s.peers;
    let mut f = e.family(
        "puente_peer_up",
        Kind::Gauge,
        "1 while a sync session with the peer is up.",
    );
    for p in peers {
        f.sample(&[("peer", &p.name)], flag(p.state == PeerState::Connected));
    }
    let mut f = e.family(
        "puente_peer_state",
        Kind::Gauge,
        "1 for the peer's connection state (connected, connecting, refused, waiting), 0 for the others.",
    );
    for p in peers {
        for (state, name) in STATES {
            f.sample(
                &[("peer", &p.name), ("state", name)],
                flag(p.state == state),
            );
        }
    }
    let mut f = e.family(
        "puente_peer_in_sync",
        Kind::Gauge,
        "1 when both digests are equal and nothing is owed either way (absent until known).",
    );
    for p in peers {
        if let Some(b) = p.in_sync {
            f.sample(&[("peer", &p.name)], flag(b));
        }
    }
    let counter =
        |e: &mut Exposition, name, help, get: &dyn Fn(&crate::node::status::PeerStatus) -> u64| {
            let mut f = e.family(name, Kind::Counter, help);
            for p in peers {
                f.sample(&[("peer", &p.name)], get(p) as f64);
            }
        };
    counter(
        e,
        "puente_peer_sessions_total",
        "Sync sessions started with the peer.",
        &|p| p.counters.sessions,
    );
    counter(
        e,
        "puente_peer_received_rows_total",
        "Row changes received from the peer and applied.",
        &|p| p.counters.rows_in,
    );
    counter(
        e,
        "puente_peer_received_cells_total",
        "Cell changes received from the peer and applied.",
        &|p| p.counters.cells_in,
    );
    counter(
        e,
        "puente_peer_received_batches_total",
        "Batches received from the peer and applied.",
        &|p| p.counters.batches_in,
    );
    counter(
        e,
        "puente_peer_received_bytes_total",
        "Bytes of sync frames received from the peer.",
        &|p| p.counters.bytes_in,
    );
    counter(
        e,
        "puente_peer_sent_rows_total",
        "Row changes sent to the peer.",
        &|p| p.counters.rows_out,
    );
    counter(
        e,
        "puente_peer_sent_batches_total",
        "Batches sent to the peer.",
        &|p| p.counters.batches_out,
    );
    counter(
        e,
        "puente_peer_sent_bytes_total",
        "Bytes of sync frames sent to the peer.",
        &|p| p.counters.bytes_out,
    );
    counter(
        e,
        "puente_peer_refusals_total",
        "Dial attempts refused by pinning (either side) or for want of a common protocol version.",
        &|p| p.counters.refusals,
    );
    counter(
        e,
        "puente_peer_held_dropped_total",
        "Changes from the peer that its office may not make, dropped because the held list was full (a flood).",
        &|p| p.counters.held_dropped,
    );
    counter(
        e,
        "puente_peer_changes_ahead_total",
        "Changes from the peer stamped further ahead of this node's clock than [sync] max_clock_drift_s allows: held until this clock catches up, never applied before.",
        &|p| p.counters.ahead,
    );
    let mut f = e.family(
        "puente_peer_held_changes",
        Kind::Gauge,
        "Changes from the peer that its office may not make, held for review (`puente held list`).",
    );
    for p in peers {
        f.sample(&[("peer", &p.name)], p.held as f64);
    }
    let mut f = e.family(
        "puente_peer_session_errors_total",
        Kind::Counter,
        "Sessions with the peer ended by an error, by error code.",
    );
    for p in peers {
        for (code, n) in &p.counters.errors {
            f.sample(&[("peer", &p.name), ("code", code)], *n as f64);
        }
    }
    let gauge = |e: &mut Exposition,
                 name,
                 help,
                 get: &dyn Fn(&crate::node::status::PeerStatus) -> Option<f64>| {
        let mut f = e.family(name, Kind::Gauge, help);
        for p in peers {
            if let Some(v) = get(p) {
                f.sample(&[("peer", &p.name)], v);
            }
        }
    };
    gauge(
        e,
        "puente_peer_changes_to_send",
        "Changes this node has that the peer has not applied yet (from its last State).",
        &|p| p.we_owe.map(|n| n as f64),
    );
    gauge(
        e,
        "puente_peer_changes_to_receive",
        "Changes the peer has that this node has not applied yet.",
        &|p| p.they_owe.map(|n| n as f64),
    );
    gauge(
        e,
        "puente_peer_last_contact_age_seconds",
        "Seconds since the last message from the peer.",
        &|p| {
            p.last_contact_ms
                .map(|t| x.now_ms.saturating_sub(t) as f64 / 1000.0)
        },
    );
    gauge(
        e,
        "puente_peer_last_contact_timestamp_seconds",
        "When the last message from the peer arrived, in seconds since the Unix epoch.",
        &|p| p.last_contact_ms.map(|t| t as f64 / 1000.0),
    );
    gauge(
        e,
        "puente_peer_rtt_seconds",
        "Round-trip time of the connection to the peer.",
        &|p| p.rtt_ms.map(|ms| ms / 1000.0),
    );
    gauge(
        e,
        "puente_peer_clock_skew_seconds",
        "How far the peer's clock is ahead of this node's (negative: behind).",
        &|p| p.clock_skew_ms.map(|ms| ms as f64 / 1000.0),
    );
    gauge(
        e,
        "puente_peer_clock_ahead_seconds",
        "How far ahead of this node's clock the furthest change the peer sent beyond the drift bound was stamped (last seen; absent when none was).",
        &|p| p.clock_ahead.as_ref().map(|a| a.ahead_ms as f64 / 1000.0),
    );
    gauge(
        e,
        "puente_peer_catch_up_remaining_seconds",
        "Estimated seconds until this node has applied what the peer owes it (while catching up).",
        &|p| p.receiving.as_ref().and_then(|c| c.eta_s),
    );
}
