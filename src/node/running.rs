//! The running node's shared state: the replica behind a lock, change
//! notifications, and what the sync layer reports for status.
//!
//! Owns: serialising access to the `Store` (blocking work runs on tokio's
//! blocking pool), announcing every commit on a watch channel (live push
//! waits on it: no polling), per-peer live state, recent refusals, and
//! building the status document.
//! Must not: speak QUIC or HTTP (sync/ and admin/ do).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use crate::clock::WallClock;
use crate::config::{NodeConfig, Schema};
use crate::node::fingerprint::Fingerprint;
use crate::node::status::{AtRestStatus, PeerCounters, PeerState, PeerStatus, Refusal, Status};
use crate::stamp::SiteId;
use crate::store::{Cursor, Digest, Store, StoreError, Written};
use crate::value::Plaintext;

/// How many refused connections status remembers.
const REFUSALS_KEPT: usize = 20;

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
    pub last_error: Option<String>,
    /// The protocol version the last session negotiated.
    pub protocol: Option<u16>,
    /// How the peer's schema differs from ours, in words (while it does).
    pub schema_differences: Vec<String>,
    pub counters: PeerCounters,
}

impl PeerLive {
    fn new(has_address: bool) -> PeerLive {
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
            last_error: None,
            protocol: None,
            schema_differences: Vec::new(),
            counters: PeerCounters::default(),
        }
    }
}

pub struct Node {
    pub config: NodeConfig,
    /// The wall clock the replica uses (sessions read time from it too).
    pub clock: Arc<dyn WallClock>,
    pub schema: Arc<Schema>,
    pub fingerprint: Fingerprint,
    started: Instant,
    store: Arc<Mutex<Store>>,
    site: SiteId,
    head: watch::Sender<u64>,
    peers: Mutex<BTreeMap<String, PeerLive>>,
    refused: Mutex<VecDeque<Refusal>>,
    garbage_datagrams: AtomicU64,
    at_rest: AtRestStatus,
    /// Woken by `POST /v1/sync`: dialers retry at once.
    pub sync_now: Notify,
    /// Bumped whenever a web staff login is removed: the web server then
    /// checks its sessions against the staff table before serving them.
    pub staff_epoch: AtomicU64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .finish()
    }
}

/// Errors of node operations: the store's, or the blocking task failing.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Node {
    pub fn new(
        config: NodeConfig,
        schema: Arc<Schema>,
        fingerprint: Fingerprint,
        clock: Arc<dyn WallClock>,
        store: Store,
    ) -> Arc<Node> {
        let peers = config
            .peers
            .iter()
            .map(|p| (p.name.clone(), PeerLive::new(p.address.is_some())))
            .collect();
        let head = store.head();
        let site = store.site_id();
        let at_rest = match store.cipher_version() {
            Some(version) => AtRestStatus {
                encrypted: true,
                cipher: Some(version.to_string()),
                key_source: config.replica_key.as_ref().map(|k| k.kind().to_string()),
                warning: None,
            },
            None => AtRestStatus {
                encrypted: false,
                cipher: None,
                key_source: None,
                warning: Some(crate::node::replica_key::UNENCRYPTED_WARNING.to_string()),
            },
        };
        Arc::new(Node {
            config,
            clock,
            schema,
            fingerprint,
            started: Instant::now(),
            store: Arc::new(Mutex::new(store)),
            site,
            head: watch::Sender::new(head),
            peers: Mutex::new(peers),
            refused: Mutex::new(VecDeque::new()),
            garbage_datagrams: AtomicU64::new(0),
            at_rest,
            sync_now: Notify::new(),
            staff_epoch: AtomicU64::new(0),
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn site(&self) -> SiteId {
        self.site
    }

    fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (the transaction rolls back), so a poisoned lock is still usable.
        store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the replica in tokio's blocking pool; announces the new
    /// head if it changed.
    pub async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.with_store_blocking(f))
            .await
            .map_err(|e| NodeError::Internal(format!("a database task failed: {e}")))
    }

    /// Runs `f` on the replica on the current thread (for callers already
    /// on a blocking thread).
    pub fn with_store_blocking<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = Self::lock(&self.store);
        let out = f(&mut store);
        let head = store.head();
        drop(store);
        self.head.send_if_modified(|h| {
            let changed = *h != head;
            *h = head;
            changed
        });
        out
    }

    /// Subscribes to the head sequence: changes on every commit.
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub async fn put(
        self: &Arc<Self>,
        table: String,
        id: String,
        cells: Vec<(String, Plaintext)>,
    ) -> Result<Written, NodeError> {
        Ok(self
            .with_store(move |s| s.put(&table, &id, cells))
            .await??)
    }

    pub async fn delete(self: &Arc<Self>, table: String, id: String) -> Result<Written, NodeError> {
        Ok(self.with_store(move |s| s.delete(&table, &id)).await??)
    }

    /// Updates what status shows for a peer.
    pub fn update_peer(&self, name: &str, f: impl FnOnce(&mut PeerLive)) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = peers.get_mut(name) {
            f(p);
        }
    }

    /// The office that owns replica `site`: this node, or a peer whose
    /// Hello gave that site id since the daemon started.
    pub fn office_of(&self, site: SiteId) -> Option<String> {
        if site == self.site {
            return Some(self.config.name.clone());
        }
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .iter()
            .find(|(_, p)| p.site == Some(site))
            .map(|(name, _)| name.clone())
    }

    pub fn peer(&self, name: &str) -> Option<PeerLive> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(name).cloned()
    }

    /// Remembers a connection refused before any session (unpinned
    /// certificate, failed handshake).
    pub fn record_refusal(&self, remote_address: String, reason: String, now_ms: u64) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.len() >= REFUSALS_KEPT {
            refused.pop_front();
        }
        refused.push_back(Refusal {
            at_ms: now_ms,
            remote_address,
            reason,
        });
    }

    pub fn count_garbage_datagrams(&self, n: u64) -> u64 {
        self.garbage_datagrams.fetch_add(n, Ordering::Relaxed) + n
    }

    /// The status document.
    pub async fn status(self: &Arc<Self>) -> Result<Status, NodeError> {
        let peer_sites: Vec<(String, Option<SiteId>)> = {
            let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.iter().map(|(n, p)| (n.clone(), p.site)).collect()
        };
        let (head, digest, stats, can_unseal, cursors, held) = self
            .with_store(move |s| -> Result<_, StoreError> {
                let stats = s.stats()?;
                let groups: Vec<String> = s
                    .schema()
                    .groups
                    .keys()
                    .filter(|g| s.can_unseal(g))
                    .cloned()
                    .collect();
                let mut cursors = BTreeMap::new();
                for (name, site) in peer_sites {
                    if let Some(site) = site {
                        cursors.insert(name, s.cursor_for(&site)?);
                    }
                }
                let held = s.held_summary()?;
                Ok((s.head(), s.digest(), stats, groups, cursors, held))
            })
            .await??;
        let held_total: u64 = held.iter().map(|h| h.held).sum();
        let peers = {
            let live = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            self.config
                .peers
                .iter()
                .map(|p| {
                    let l = live
                        .get(&p.name)
                        .cloned()
                        .unwrap_or_else(|| PeerLive::new(p.address.is_some()));
                    let ours = cursors.get(&p.name).copied();
                    let we_owe = l.peer_applied.map(|c| head.saturating_sub(c.progress));
                    let they_owe = match (l.peer_head, ours) {
                        (Some(h), Some(c)) => Some(h.saturating_sub(c.progress)),
                        (Some(h), None) => Some(h),
                        _ => None,
                    };
                    let in_sync = l
                        .peer_digest
                        .map(|d| d == digest && we_owe == Some(0) && they_owe == Some(0));
                    let from = held
                        .iter()
                        .find(|h| h.peer == p.name)
                        .cloned()
                        .unwrap_or_default();
                    let caught_up = we_owe == Some(0) && they_owe == Some(0);
                    let held_note = (in_sync == Some(false) && caught_up)
                        .then(|| held_note(&p.name, from.held, from.diverged))
                        .flatten();
                    PeerStatus {
                        name: p.name.clone(),
                        fingerprint: p.fingerprint.to_string(),
                        address: p.address.clone(),
                        state: l.state,
                        detail: l.detail.clone(),
                        direction: l.direction.map(str::to_string),
                        remote_address: l.remote_address.clone(),
                        site_id: l.site.map(|s| s.to_string()),
                        rtt_ms: l.rtt_ms,
                        last_contact_ms: l.last_contact_ms,
                        we_owe,
                        they_owe,
                        peer_head: l.peer_head,
                        peer_digest: l.peer_digest.map(|d| d.to_string()),
                        in_sync,
                        clock_skew_ms: l.skew_ms,
                        protocol: l.protocol,
                        schema_differences: l.schema_differences.clone(),
                        schema_advice: (!l.schema_differences.is_empty())
                            .then(|| crate::config::diff::advice(&p.name)),
                        last_error: l.last_error.clone(),
                        held: from.held,
                        held_diverged: from.diverged,
                        held_reasons: from.reasons.clone(),
                        held_note,
                        counters: l.counters.clone(),
                    }
                })
                .collect()
        };
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        Ok(Status {
            node: self.config.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            site_id: self.site.to_string(),
            fingerprint: self.fingerprint.to_string(),
            listen: self.config.listen.to_string(),
            schema_hash: self.schema.hash().to_string(),
            head,
            digest: digest.to_string(),
            rows: stats.rows.into_iter().collect(),
            sealed_cells: stats.sealed_cells,
            tombstones: stats.tombstones,
            can_unseal,
            peers,
            refused,
            garbage_datagrams: self.garbage_datagrams.load(Ordering::Relaxed),
            at_rest: self.at_rest.clone(),
            held: held_total,
        })
    }
}

/// Why two caught-up replicas' digests differ, when changes from that
/// peer are held or were discarded here (not that either is behind).
fn held_note(peer: &str, held: u64, diverged: u64) -> Option<String> {
    let plural = |n: u64| if n == 1 { "change" } else { "changes" };
    match (held, diverged) {
        (0, 0) => None,
        (h, 0) => Some(format!(
            "digests differ because {h} {} from {peer} {} held for review (`puente held list`)",
            plural(h),
            if h == 1 { "is" } else { "are" }
        )),
        (0, d) => Some(format!(
            "digests differ because {peer} keeps {d} discarded {} this office could not undo (`puente held list --all`)",
            plural(d)
        )),
        (h, d) => Some(format!(
            "digests differ because {h} {} from {peer} {} held for review and {peer} keeps {d} discarded {} (`puente held list --all`)",
            plural(h),
            if h == 1 { "is" } else { "are" },
            plural(d)
        )),
    }
}
