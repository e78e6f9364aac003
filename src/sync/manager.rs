//! Connections to every pinned peer: listen, accept, dial, retry.
//!
//! Owns: the QUIC endpoint (guarded UDP socket, TLS with pins), the accept
//! loop (refusals logged and kept for status), one dialler task per peer
//! with an address (carrying out `policy::Dialler`: woken early by
//! `POST /v1/sync`, showing its verdicts in status), the registry of
//! connections behind a lock (`policy::Registry` decides which of two both
//! sides keep; this closes the loser), and following a reloaded peer list
//! (`apply_peers`: new pins, diallers started and stopped, a removed
//! peer's connection closed at once).
//! Must not: interpret messages (peer.rs and session.rs do), or decide
//! which connection to keep, when to dial, how long to wait or whether a
//! session was healthy (policy.rs does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, VarInt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::peer;
use super::pinning::{self, LastRefused, PinFailure, PinSet, classify, peer_fingerprint};
use super::policy::{
    self, Admission, Attempt, Dialler, Direction, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, SessionEnded,
    Verdict, we_dial_the_winner,
};
use super::protocol::{ErrorCode, list_versions};
use super::session::Limits;
use super::udp_guard::{GarbageReport, GuardedSocket};
use crate::config::PeerConfig;
use crate::node::Node;
use crate::node::identity::NodeIdentity;
use crate::node::status::PeerState;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "cannot listen for peers on {addr}: {source}; is another process using the port, or is the address not on this machine?"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] pinning::TlsSetupError),
}

/// The single live connection per peer: `policy::Registry` behind a lock,
/// with the connections it decides to drop closed here.
struct LiveConnections {
    /// The registry's monotonic time is milliseconds since this.
    epoch: Instant,
    active: Mutex<policy::Registry<String, Connection>>,
    changed: Notify,
}

impl Default for LiveConnections {
    fn default() -> Self {
        LiveConnections {
            epoch: Instant::now(),
            active: Mutex::default(),
            changed: Notify::new(),
        }
    }
}

fn alive(conn: &Connection) -> bool {
    conn.close_reason().is_none()
}

impl LiveConnections {
    fn active(&self) -> std::sync::MutexGuard<'_, policy::Registry<String, Connection>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits `conn` for `peer` unless the connection kept is the better
    /// one; closes the one it replaces.
    fn admit(
        &self,
        peer: &str,
        conn: &Connection,
        direction: Direction,
        we_dial_the_winner: bool,
    ) -> bool {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        // (A connection the peer lost in a restart does not linger: the
        // restarted node answers its packets with a stateless reset it
        // accepts, see `stateless_reset_key`.)
        let admission = self.active().admit(
            peer.to_string(),
            conn.clone(),
            direction,
            now_ms,
            we_dial_the_winner,
            alive,
        );
        match admission {
            Admission::Refused => false,
            Admission::Admitted { replaced } => {
                if let Some(old) = replaced {
                    old.close(
                        ErrorCode::DuplicateConnection.code().into(),
                        b"replaced by the connection both sides keep",
                    );
                }
                true
            }
        }
    }

    fn release(&self, peer: &str, conn: &Connection) {
        self.active()
            .release(&peer.to_string(), |c| c.stable_id() == conn.stable_id());
        self.changed.notify_waiters();
    }

    fn is_connected(&self, peer: &str) -> bool {
        self.active()
            .get(&peer.to_string())
            .is_some_and(|k| alive(&k.conn))
    }

    fn close_all(&self, code: ErrorCode, reason: &[u8]) {
        for conn in self.active().connections() {
            conn.close(code.code().into(), reason);
        }
    }

    /// Closes the connection to `peer`, if one is up.
    fn close(&self, peer: &str, code: ErrorCode, reason: &[u8]) {
        if let Some(kept) = self.active().get(&peer.to_string()) {
            kept.conn.close(code.code().into(), reason);
        }
    }
}

/// The running sync service.
pub struct SyncHandle {
    endpoint: Endpoint,
    registry: Arc<LiveConnections>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// One dialler per peer with an address: its config and task.
    dialers: HashMap<String, (PeerConfig, JoinHandle<()>)>,
    /// Who may connect (the server verifier reads it at each handshake).
    pins: PinSet,
    links: Links,
    identity: NodeIdentity,
    versions: Vec<u16>,
    pub local_addr: SocketAddr,
}

impl SyncHandle {
    /// Closes every connection with `ShuttingDown` and waits briefly for
    /// the peers to acknowledge.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.registry
            .close_all(ErrorCode::ShuttingDown, b"the node is shutting down");
        self.endpoint.close(
            VarInt::from_u32(ErrorCode::ShuttingDown.code()),
            b"the node is shutting down",
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        for t in self.tasks {
            t.abort();
        }
        for (_, (_, t)) in self.dialers {
            t.abort();
        }
    }

    /// Follows a reloaded peer list (the node's config is already the new
    /// one): the pins change for the next handshake, the diallers of
    /// removed or changed peers stop and their connections close at once
    /// (`dropped`), new ones start.
    pub fn apply_peers(
        &mut self,
        peers: &[PeerConfig],
        dropped: &[String],
    ) -> Result<(), SyncError> {
        self.pins.replace(peers.iter().map(|p| p.fingerprint));
        for name in dropped {
            if let Some((_, task)) = self.dialers.remove(name) {
                task.abort();
            }
            self.registry.close(
                name,
                ErrorCode::Normal,
                b"this office is no longer pinned here (reload)",
            );
        }
        let gone: Vec<String> = self
            .dialers
            .keys()
            .filter(|n| !peers.iter().any(|p| &p.name == *n && p.address.is_some()))
            .cloned()
            .collect();
        for name in gone {
            if let Some((_, task)) = self.dialers.remove(&name) {
                task.abort();
            }
        }
        for peer in peers.iter().filter(|p| p.address.is_some()) {
            if !self.dialers.contains_key(&peer.name) {
                let task = self.dial(peer)?;
                self.dialers.insert(peer.name.clone(), (peer.clone(), task));
            }
        }
        Ok(())
    }

    /// Closes every connection so that each side's next Hello carries the
    /// reloaded schema; diallers reconnect at once.
    pub fn reconnect_all(&self) {
        self.registry.close_all(
            ErrorCode::Normal,
            b"the schema changed here (reload); reconnecting",
        );
    }

    /// Starts the dialler of one peer.
    fn dial(&self, peer: &PeerConfig) -> Result<JoinHandle<()>, SyncError> {
        let refused = Arc::new(LastRefused::default());
        let client = pinning::client_crypto(
            &self.identity,
            peer.fingerprint,
            refused.clone(),
            &self.versions,
        )?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport());
        let dialer = Dialer {
            links: self.links.clone(),
            client,
            peer: peer.clone(),
            refused,
        };
        Ok(tokio::spawn(dialer.run()))
    }
}

/// The key for QUIC stateless resets, derived from the node's TLS key so
/// it survives a restart: packets that arrive for a connection the previous
/// run had are answered with a reset the peer accepts, and the peer drops
/// the dead connection at once instead of waiting for the idle timeout.
fn stateless_reset_key(identity: &NodeIdentity) -> ring::hmac::Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"puente stateless reset key v1");
    ctx.update(identity.key.secret_der());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref())
}

/// The sync connection's transport. Congestion control is BBR, not
/// quinn's default CUBIC: offices are joined by ordinary internet links
/// that lose packets without being congested, and a loss-based controller
/// at 1 % random loss and a 60 ms round trip keeps its window near a dozen
/// packets (about 2 Mbit/s whatever the link's bandwidth), while BBR paces
/// at the bandwidth it measures (`puente bench --only wan`).
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    t.max_idle_timeout(Some(
        VarInt::from_u32(IDLE_TIMEOUT.as_millis() as u32).into(),
    ));
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.stream_receive_window(VarInt::from_u32(8 << 20));
    t.receive_window(VarInt::from_u32(12 << 20));
    t.send_window(8 << 20);
    t.max_concurrent_bidi_streams(VarInt::from_u32(2));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    Arc::new(t)
}

/// Binds the sync port and starts accepting and dialling.
pub fn start(
    node: Arc<Node>,
    identity: NodeIdentity,
    limits: Limits,
) -> Result<SyncHandle, SyncError> {
    let listen = node.config().listen;
    let socket = std::net::UdpSocket::bind(listen).map_err(|source| SyncError::Bind {
        addr: listen,
        source,
    })?;
    let runtime = Arc::new(quinn::TokioRuntime);
    let inner = quinn::Runtime::wrap_udp_socket(runtime.as_ref(), socket).map_err(|source| {
        SyncError::Bind {
            addr: listen,
            source,
        }
    })?;
    let report = garbage_reporter(node.clone());
    let socket = GuardedSocket::new(inner, report);
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(stateless_reset_key(&identity)));
    endpoint_config.grease_quic_bit(false);
    let config = node.config();
    let pins = PinSet::new(config.peers.iter().map(|p| p.fingerprint));
    let refused_clients = Arc::new(LastRefused::default());
    let versions = config.protocols.clone();
    let server_crypto =
        pinning::server_crypto(&identity, pins.clone(), refused_clients.clone(), &versions)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport());
    let endpoint =
        Endpoint::new_with_abstract_socket(endpoint_config, Some(server), socket, runtime)
            .map_err(|source| SyncError::Bind {
                addr: listen,
                source,
            })?;
    let local_addr = endpoint.local_addr().unwrap_or(listen);
    tracing::info!(%local_addr, peers = node.config().peers.len(), "listening for peers");

    let registry = Arc::new(LiveConnections::default());
    let (stop, stop_rx) = watch::channel(false);
    let links = Links {
        endpoint: endpoint.clone(),
        node: node.clone(),
        registry: registry.clone(),
        limits,
        stop: stop_rx,
    };
    let tasks = vec![tokio::spawn(accept_loop(links.clone(), refused_clients))];
    let mut handle = SyncHandle {
        endpoint,
        registry,
        stop,
        tasks,
        dialers: HashMap::new(),
        pins,
        links,
        identity,
        versions,
        local_addr,
    };
    handle.apply_peers(&config.peers, &[])?;
    Ok(handle)
}

/// Counts non-QUIC datagrams; logs the first and then at most one line
/// every ten seconds.
fn garbage_reporter(node: Arc<Node>) -> GarbageReport {
    let last_log = Arc::new(Mutex::new(None::<std::time::Instant>));
    Arc::new(move |from: SocketAddr, n: u64| {
        let total = node.count_garbage_datagrams(n);
        let mut last = last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(%from, total, "dropped datagrams on the sync port that are not QUIC v1");
        }
    })
}

/// What the accept loop and every dialler share.
#[derive(Clone)]
struct Links {
    endpoint: Endpoint,
    node: Arc<Node>,
    registry: Arc<LiveConnections>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Links {
    fn we_dial_the_winner(&self, peer: &PeerConfig) -> bool {
        we_dial_the_winner(&self.node.fingerprint, &peer.fingerprint)
    }

    /// Runs a session on `conn` unless a better connection to the peer is
    /// up; None if this one was dropped as the duplicate.
    async fn serve(
        &self,
        conn: Connection,
        peer: &PeerConfig,
        direction: Direction,
        remote: SocketAddr,
    ) -> Option<peer::Ended> {
        let node = &self.node;
        if !self
            .registry
            .admit(&peer.name, &conn, direction, self.we_dial_the_winner(peer))
        {
            tracing::debug!(peer = %peer.name, "dropping a second connection; the other one is kept");
            conn.close(
                ErrorCode::DuplicateConnection.code().into(),
                b"a connection to this peer is already up",
            );
            return None;
        }
        node.update_peer(&peer.name, |p| {
            p.state = PeerState::Connected;
            p.detail = None;
            p.direction = Some(direction.name());
            p.remote_address = Some(remote.to_string());
            p.counters.sessions += 1;
        });
        tracing::debug!(peer = %peer.name, %remote, direction = direction.name(), "connected");
        let ended = peer::run(
            node.clone(),
            peer.clone(),
            conn.clone(),
            direction,
            self.limits,
            self.stop.clone(),
        )
        .await;
        self.registry.release(&peer.name, &conn);
        if !self.registry.is_connected(&peer.name) {
            node.update_peer(&peer.name, |p| {
                p.state = if peer.address.is_some() {
                    PeerState::Connecting
                } else {
                    PeerState::Waiting
                };
                p.rtt_ms = None;
            });
        }
        Some(ended)
    }
}

async fn accept_loop(links: Links, refused: Arc<LastRefused>) {
    // One throttle for every failed handshake's warning: anyone who can
    // send UDP to the sync port could otherwise fill the log.
    let throttle = Arc::new(std::sync::Mutex::new(
        super::rules::LogThrottle::handshakes(),
    ));
    while let Some(incoming) = links.endpoint.accept().await {
        let links = links.clone();
        let refused = refused.clone();
        let throttle = throttle.clone();
        let warn_refused = move |remote: std::net::SocketAddr, reason: &str, now_ms: u64| {
            let admitted = throttle
                .lock()
                .map(|mut t| t.admit(now_ms))
                .unwrap_or(Some(0));
            if let Some(suppressed) = admitted {
                tracing::warn!(
                    %remote,
                    suppressed,
                    "refused a connection: {reason}{}",
                    super::rules::suppressed_note(suppressed)
                );
            }
        };
        tokio::spawn(async move {
            let node = &links.node;
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    let reason = match (classify(&e), refused.get()) {
                        (PinFailure::WeRefused, Some(fp)) => format!(
                            "certificate {fp} is not pinned in this node's config; if it is a new office, pin it with `puente peer add`"
                        ),
                        (PinFailure::WeRefused, None) => {
                            "its certificate is not pinned in this node's config".to_string()
                        }
                        (PinFailure::NoCommonVersion, _) => format!(
                            "it offered no sync protocol version this node speaks ({}); upgrade the office running the older puente",
                            list_versions(&node.config().protocols)
                        ),
                        _ => format!("handshake failed: {e}"),
                    };
                    warn_refused(remote, &reason, node.now_ms());
                    node.record_refusal(remote.to_string(), reason, node.now_ms());
                    return;
                }
                Err(_) => {
                    warn_refused(
                        remote,
                        "the handshake did not finish in time",
                        node.now_ms(),
                    );
                    node.record_refusal(
                        remote.to_string(),
                        "handshake timed out".into(),
                        node.now_ms(),
                    );
                    return;
                }
            };
            // The verifier admitted only certificates pinned at that moment;
            // a reload may have unpinned one since.
            let fingerprint = peer_fingerprint(&conn);
            let Some(peer) =
                fingerprint.and_then(|fp| node.config().peer_by_fingerprint(&fp).cloned())
            else {
                let reason = match fingerprint {
                    Some(fp) => format!("certificate {fp} is not pinned in this node's config"),
                    None => "it presented no certificate".to_string(),
                };
                warn_refused(remote, &reason, node.now_ms());
                node.record_refusal(remote.to_string(), reason, node.now_ms());
                conn.close(ErrorCode::Internal.code().into(), b"no pinned certificate");
                return;
            };
            links.serve(conn, &peer, Direction::Inbound, remote).await;
        });
    }
}

/// Dials one peer, again and again while no connection to it is up.
struct Dialer {
    links: Links,
    client: quinn::ClientConfig,
    peer: PeerConfig,
    /// The certificate our verifier last refused for this peer.
    refused: Arc<LastRefused>,
}

impl Dialer {
    async fn run(self) {
        let Some(address) = self.peer.address.clone() else {
            return;
        };
        let mut stop = self.links.stop.clone();
        let registry = self.links.registry.clone();
        let mut dialler = Dialler::default();
        let mut rng = StdRng::from_os_rng();
        loop {
            // Wait while a connection (either direction) is up.
            loop {
                let changed = registry.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if dialler.wants_to_dial(registry.is_connected(&self.peer.name)) {
                    break;
                }
                tokio::select! {
                    _ = changed => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            if *stop.borrow() {
                return;
            }
            dialler.dialling();
            let (attempt, reason) = self.attempt(&address).await;
            let (verdict, rest) = dialler.attempted(attempt, &mut rng);
            match verdict {
                Verdict::Refused => {
                    if let Attempt::Ended(SessionEnded {
                        refused_by_tls: true,
                        ..
                    }) = attempt
                    {
                        tracing::warn!(peer = %self.peer.name, "{reason}");
                    }
                    self.show_failure(reason, true);
                }
                Verdict::Failed => self.show_failure(reason, false),
                Verdict::Served { .. } => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(rest) => dialler.rested(),
                _ = self.links.node.sync_now.notified() => { dialler.sync_now(); }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Shows a failed attempt in status. A pinning refusal stays `refused`
    /// (with why) through the retries that follow, until a session is up or
    /// another kind of failure happens.
    fn show_failure(&self, reason: String, refused: bool) {
        let state = if refused {
            PeerState::Refused
        } else {
            PeerState::Connecting
        };
        self.links.node.update_peer(&self.peer.name, |p| {
            p.state = state;
            p.detail = Some(reason.clone());
            p.last_error = Some(reason);
            if refused {
                p.counters.refusals += 1;
            }
        });
    }

    fn refusal_reason(&self, failure: PinFailure, addr: SocketAddr) -> Option<String> {
        match failure {
            PinFailure::WeRefused => Some(match self.refused.get() {
                Some(fp) => format!(
                    "refused {addr}: it presented certificate {fp}, but {} is pinned for it; check the fingerprint with `puente id` at that office",
                    self.peer.fingerprint
                ),
                None => format!(
                    "refused {addr}: its certificate is not the one pinned for it ({})",
                    self.peer.fingerprint
                ),
            }),
            PinFailure::TheyRefused => Some(format!(
                "{addr} refused this node's certificate: pin this node's fingerprint there with `puente peer add`"
            )),
            PinFailure::NoCommonVersion => Some(format!(
                "no sync protocol version in common with {addr}: this node speaks {} and the peer none of them (puente 0.1.0 speaks only 1); upgrade the office running the older puente",
                list_versions(&self.links.node.config().protocols)
            )),
            PinFailure::Other => None,
        }
    }

    /// One attempt, and a sentence for status should it be a failure or a
    /// refusal.
    async fn attempt(&self, address: &str) -> (Attempt, String) {
        let node = &self.links.node;
        let name = &self.peer.name;
        let addr = match tokio::net::lookup_host(address).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => addr,
            Ok(None) | Err(_) => {
                let reason = format!(
                    "cannot resolve {address}; check the peer's address in the node config"
                );
                tracing::warn!(peer = %name, "{reason}");
                return (Attempt::Failed, reason);
            }
        };
        node.update_peer(name, |p| {
            if p.state != PeerState::Refused {
                p.state = PeerState::Connecting;
                p.detail = Some(format!("dialling {addr}"));
            }
        });
        let connecting = match self
            .links
            .endpoint
            .connect_with(self.client.clone(), addr, "puente")
        {
            Ok(c) => c,
            Err(e) => return (Attempt::Failed, format!("cannot dial {addr}: {e}")),
        };
        let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let (attempt, reason) = match self.refusal_reason(classify(&e), addr) {
                    Some(reason) => (Attempt::Refused, reason),
                    None => (Attempt::Failed, format!("cannot connect to {addr}: {e}")),
                };
                tracing::warn!(peer = %name, "{reason}");
                return (attempt, reason);
            }
            Err(_) => {
                let reason = format!(
                    "no answer from {addr} within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                );
                tracing::debug!(peer = %name, "{reason}");
                return (Attempt::Failed, reason);
            }
        };
        let Some(ended) = self
            .links
            .serve(conn.clone(), &self.peer, Direction::Outbound, addr)
            .await
        else {
            return (Attempt::Duplicate, String::new());
        };
        // A refusal by TLS may arrive as the connection's close (see
        // `SessionEnded::refused_by_tls`).
        let tls_refusal = conn
            .close_reason()
            .and_then(|e| self.refusal_reason(classify(&e), addr));
        let attempt = Attempt::Ended(SessionEnded {
            ending: ended.ending,
            handshaken: ended.handshaken,
            lasted: ended.lasted,
            refused_by_tls: tls_refusal.is_some(),
        });
        (attempt, tls_refusal.unwrap_or(ended.reason))
    }
}
