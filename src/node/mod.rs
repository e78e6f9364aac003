//! The node: one office's daemon state and what makes it, in four
//! sub-rooms around the `Node` this file holds.
//!
//! Owns: the running node (`Node`: the replica behind a lock, blocking
//! work on tokio's blocking pool, every commit announced on a watch
//! channel, per-peer live state, recent refusals, building the status
//! document from the snapshot so it never waits for the store), and:
//! - `live/`: what the running node keeps and shows without waiting for
//!   the store: the replica snapshot, catch-up progress, the status
//!   document's shape, the counters and histograms metrics read, the
//!   reports of long work (a reseal's progress, the last reload);
//!   `peer_live.rs`: what the sync layer knows about each peer;
//! - `setup/`: a node on disk and loading it before it runs: `puente
//!   init`, the TLS identity, the replica key's file or credential, the
//!   data-dir lock, the checks of `puente check` (preflight);
//! - `upkeep/`: work a running node does when asked: backups, reseals,
//!   reloads;
//! - `stopped/`: commands on a stopped node's replica under the data-dir
//!   lock: `puente storage`, `puente schema`, `puente restore`.
//!
//! Each module is reached as `node::NAME` (re-exported here), whatever
//! its sub-room.
//! Must not: speak QUIC or HTTP (sync/ and admin/ do), decide merges
//! (store/ does) or decide trust (transport does).

mod live;
pub mod peer_live;
mod setup;
mod stopped;
mod upkeep;

pub use live::{counters, histogram, long_work, progress, snapshot, status};
pub use peer_live::PeerLive;
pub use setup::{identity, init, lock, preflight, replica_key, service_access};
pub use stopped::{restore, schema_change, storage};
pub use upkeep::{backup, reload, reseal};

// The file helpers and fingerprints moved to the crate's root (config and
// seal use them too); tests still name them here.
pub use crate::{fingerprint, fsutil};

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use tokio::sync::{Notify, watch};

use crate::clock::WallClock;
use crate::config::{NodeConfig, Schema};
use crate::fingerprint::Fingerprint;
use crate::node::counters::NodeMetrics;
use crate::node::snapshot::ReplicaSnapshot;
use crate::node::status::{AtRestStatus, PeerStatus, Refusal, Status};
use crate::stamp::SiteId;
use crate::store::{Store, StoreError, Written};
use crate::value::Plaintext;

/// How many refused connections status remembers.
const REFUSALS_KEPT: usize = 20;

/// One office's running daemon state, shared by the sync layer, the admin
/// socket and the web.
pub struct Node {
    /// The node config and the schema in force; a reload swaps them
    /// (`reload.rs`), so readers take a snapshot with `config()` and
    /// `schema()`.
    config: RwLock<Arc<NodeConfig>>,
    /// The wall clock the replica uses (sessions read time from it too).
    pub clock: Arc<dyn WallClock>,
    schema: RwLock<Arc<Schema>>,
    pub fingerprint: Fingerprint,
    started: Instant,
    store: Arc<Mutex<Store>>,
    /// Head, digest and counts as of the last commit (status and metrics
    /// read this, never waiting for the store).
    replica: Mutex<ReplicaSnapshot>,
    /// Seal groups this node holds an identity of (a reload may change
    /// the identities).
    can_unseal: RwLock<Vec<String>>,
    /// Site ids the replica had before restores (a restore happens with
    /// the daemon stopped: read once).
    retired_sites: Vec<String>,
    /// Unix milliseconds when the node started.
    started_ms: u64,
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
    /// Long work and its reports: reseal progress, the last reload.
    pub long_work: long_work::LongWork,
    /// Counters and histograms for `GET /v1/metrics`.
    pub metrics: NodeMetrics,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config().name)
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
        mut store: Store,
    ) -> Arc<Node> {
        let peers = config
            .peers
            .iter()
            .map(|p| (p.name.clone(), PeerLive::new(p.address.is_some())))
            .collect();
        let head = store.head();
        let site = store.site_id();
        let metrics = NodeMetrics::default();
        let commits = metrics.commit_seconds.clone();
        store.observe_commits(Arc::new(move |d| commits.observe(d)));
        let replica = Mutex::new(ReplicaSnapshot::of(&store));
        let can_unseal = RwLock::new(groups_held(&store));
        // Unreadable, status shows none: it reads and writes nothing else.
        let retired_sites = store
            .retired_sites()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        let started_ms = clock.now_ms();
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
            config: RwLock::new(Arc::new(config)),
            clock,
            schema: RwLock::new(schema),
            fingerprint,
            started: Instant::now(),
            store: Arc::new(Mutex::new(store)),
            replica,
            can_unseal,
            retired_sites,
            started_ms,
            site,
            head: watch::Sender::new(head),
            peers: Mutex::new(peers),
            refused: Mutex::new(VecDeque::new()),
            garbage_datagrams: AtomicU64::new(0),
            at_rest,
            sync_now: Notify::new(),
            staff_epoch: AtomicU64::new(0),
            long_work: Default::default(),
            metrics,
        })
    }

    /// The node config in force.
    pub fn config(&self) -> Arc<NodeConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The schema in force.
    pub fn schema(&self) -> Arc<Schema> {
        self.schema
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a new config and schema in force (a reload, `reload.rs`); the
    /// peers' live state follows the new peer list.
    pub(crate) fn swap_config(&self, config: NodeConfig, schema: Arc<Schema>) {
        {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|name, _| config.peers.iter().any(|p| &p.name == name));
            for p in &config.peers {
                peers
                    .entry(p.name.clone())
                    .or_insert_with(|| PeerLive::new(p.address.is_some()));
            }
        }
        *self.schema.write().unwrap_or_else(|e| e.into_inner()) = schema;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
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
        {
            // Counts and digest change only with the head, the held
            // summary only with the held list.
            let mut replica = self.replica.lock().unwrap_or_else(|e| e.into_inner());
            replica.refresh(&store);
        }
        drop(store);
        self.head.send_if_modified(|h| {
            let changed = *h != head;
            *h = head;
            changed
        });
        out
    }

    /// Takes the replica snapshot and the groups this node can open again
    /// (after a reload changed the schema or the keyring, which need not
    /// move the head).
    pub(crate) fn refresh_after_reload(&self, store: &Store) {
        *self.replica.lock().unwrap_or_else(|e| e.into_inner()) = ReplicaSnapshot::of(store);
        *self.can_unseal.write().unwrap_or_else(|e| e.into_inner()) = groups_held(store);
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
            return Some(self.config().name.clone());
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
        self.metrics
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
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

    /// The replica as of its last commit (never waits for the store).
    pub fn replica(&self) -> ReplicaSnapshot {
        self.replica
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Unix milliseconds when the node started.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Feeds a peer's catch-up trackers what is owed now (after an apply,
    /// a peer's State, or a new cursor).
    pub fn observe_progress(&self, name: &str) {
        let head = self.replica.lock().unwrap_or_else(|e| e.into_inner()).head;
        let now = self.now_ms();
        self.update_peer(name, |p| p.observe_progress(head, now));
    }

    /// The status document. It reads the replica snapshot and the live
    /// peer state only, so it answers at once even while a long apply
    /// holds the store.
    pub async fn status(self: &Arc<Self>) -> Result<Status, NodeError> {
        Ok(self.status_now())
    }

    fn status_now(&self) -> Status {
        let replica = self.replica();
        let (head, digest) = (replica.head, replica.digest);
        let held_total: u64 = replica.held.iter().map(|h| h.held).sum();
        let now = self.now_ms();
        let peers = {
            let mut live = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            self.config()
                .peers
                .iter()
                .map(|p| {
                    let l = live
                        .entry(p.name.clone())
                        .or_insert_with(|| PeerLive::new(p.address.is_some()));
                    l.observe_progress(head, now);
                    let (we_owe, they_owe) = l.owed(head);
                    let in_sync = l
                        .peer_digest
                        .map(|d| d == digest && we_owe == Some(0) && they_owe == Some(0));
                    let from = replica
                        .held
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
                        clock_ahead: l.clock_ahead.clone(),
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
                        receiving: l.receiving.view(now),
                        sending: l.sending.view(now),
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
        Status {
            node: self.config().name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            site_id: self.site.to_string(),
            fingerprint: self.fingerprint.to_string(),
            listen: self.config().listen.to_string(),
            time_zone: self.config().office_zone().1,
            schema_hash: self.schema().hash().to_string(),
            head,
            digest: digest.to_string(),
            rows: replica.rows.into_iter().collect(),
            sealed_cells: replica.sealed_cells,
            tombstones: replica.tombstones,
            can_unseal: self
                .can_unseal
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            peers,
            refused,
            garbage_datagrams: self.garbage_datagrams.load(Ordering::Relaxed),
            at_rest: self.at_rest.clone(),
            sealed_to_old_keys: replica.sealed_to_old_keys,
            reseal: self.long_work.reseal(),
            reload: self.long_work.reload(),
            retired_sites: self.retired_sites.clone(),
            held: held_total,
        }
    }
}

/// The seal groups of the store's schema it holds an identity of.
fn groups_held(store: &Store) -> Vec<String> {
    store
        .schema()
        .groups
        .keys()
        .filter(|g| store.can_unseal(g))
        .cloned()
        .collect()
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
