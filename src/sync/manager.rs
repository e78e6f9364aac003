//! Connections to every pinned peer: listen, accept, dial, retry.
//!
//! Owns: the QUIC endpoint (guarded UDP socket, TLS with pins), the accept
//! loop (refusals logged and kept for status), one dialler per peer with an
//! address (exponential backoff with jitter, woken early by `POST /v1/sync`),
//! and the registry that keeps exactly one connection per peer even when
//! both sides dial: the connection dialled by the node with the lower
//! certificate fingerprint wins, on both sides alike.
//! Must not: interpret messages (peer.rs and session.rs do).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, VarInt};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::peer::{self, Direction, Limits};
use super::pinning::{self, peer_fingerprint};
use super::protocol::ErrorCode;
use super::udp_guard::{GarbageReport, GuardedSocket};
use crate::config::PeerConfig;
use crate::node::Node;
use crate::node::identity::NodeIdentity;
use crate::node::status::PeerState;

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between dial attempts.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

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

/// The single live connection per peer.
#[derive(Default)]
struct Registry {
    active: Mutex<HashMap<String, (Connection, Direction, Instant)>>,
    changed: Notify,
}

impl Registry {
    /// Admits `conn` for `peer` unless a better one is up; closes the one
    /// that loses.
    fn admit(
        &self,
        peer: &str,
        conn: &Connection,
        direction: Direction,
        we_dial_the_winner: bool,
    ) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((existing, existing_direction, _)) = active.get(peer)
            && existing.close_reason().is_none()
        {
            // The same side dialled again: the old one is stale. Otherwise
            // both dialled; both sides keep the same one. (A connection the
            // peer lost in a restart does not linger: the restarted node
            // answers its packets with a stateless reset it accepts, see
            // `stateless_reset_key`.)
            let keep_new = if *existing_direction == direction {
                true
            } else {
                (direction == Direction::Outbound) == we_dial_the_winner
            };
            if !keep_new {
                return false;
            }
            existing.close(
                ErrorCode::DuplicateConnection.code().into(),
                b"replaced by the connection both sides keep",
            );
        }
        active.insert(peer.to_string(), (conn.clone(), direction, Instant::now()));
        true
    }

    fn release(&self, peer: &str, conn: &Connection) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active
            .get(peer)
            .is_some_and(|(c, _, _)| c.stable_id() == conn.stable_id())
        {
            active.remove(peer);
        }
        drop(active);
        self.changed.notify_waiters();
    }

    fn is_connected(&self, peer: &str) -> bool {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active
            .get(peer)
            .is_some_and(|(c, _, _)| c.close_reason().is_none())
    }

    fn close_all(&self, code: ErrorCode, reason: &[u8]) {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for (conn, _, _) in active.values() {
            conn.close(code.code().into(), reason);
        }
    }
}

/// The running sync service.
pub struct SyncHandle {
    endpoint: Endpoint,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
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

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(VarInt::from_u32(15_000).into()));
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
    let listen = node.config.listen;
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
    let pinned = node.config.peers.iter().map(|p| p.fingerprint);
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(pinning::server_crypto(&identity, pinned)?));
    server.transport_config(transport());
    let endpoint =
        Endpoint::new_with_abstract_socket(endpoint_config, Some(server), socket, runtime)
            .map_err(|source| SyncError::Bind {
                addr: listen,
                source,
            })?;
    let local_addr = endpoint.local_addr().unwrap_or(listen);
    tracing::info!(%local_addr, peers = node.config.peers.len(), "listening for peers");

    let registry = Arc::new(Registry::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(accept_loop(
        endpoint.clone(),
        node.clone(),
        registry.clone(),
        limits,
        stop_rx.clone(),
    )));
    for peer in node.config.peers.iter().filter(|p| p.address.is_some()) {
        let client = pinning::client_crypto(&identity, peer.fingerprint)?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport());
        tasks.push(tokio::spawn(dial_loop(
            endpoint.clone(),
            client,
            node.clone(),
            peer.clone(),
            registry.clone(),
            limits,
            stop_rx.clone(),
        )));
    }
    Ok(SyncHandle {
        endpoint,
        registry,
        stop,
        tasks,
        local_addr,
    })
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

fn we_dial_the_winner(node: &Node, peer: &PeerConfig) -> bool {
    node.fingerprint < peer.fingerprint
}

async fn accept_loop(
    endpoint: Endpoint,
    node: Arc<Node>,
    registry: Arc<Registry>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let node = node.clone();
        let registry = registry.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    let reason = format!("handshake failed: {e}");
                    tracing::warn!(%remote, "refused a connection: {reason}");
                    node.record_refusal(remote.to_string(), reason, node.now_ms());
                    return;
                }
                Err(_) => {
                    tracing::warn!(%remote, "refused a connection: the handshake did not finish in time");
                    node.record_refusal(
                        remote.to_string(),
                        "handshake timed out".into(),
                        node.now_ms(),
                    );
                    return;
                }
            };
            // The verifier admitted only pinned certificates.
            let Some(peer) = peer_fingerprint(&conn)
                .and_then(|fp| node.config.peer_by_fingerprint(&fp).cloned())
            else {
                conn.close(ErrorCode::Internal.code().into(), b"no pinned certificate");
                return;
            };
            serve(
                conn,
                node,
                peer,
                Direction::Inbound,
                registry,
                limits,
                stop,
                remote,
            )
            .await;
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    conn: Connection,
    node: Arc<Node>,
    peer: PeerConfig,
    direction: Direction,
    registry: Arc<Registry>,
    limits: Limits,
    stop: watch::Receiver<bool>,
    remote: SocketAddr,
) -> Option<peer::Ended> {
    if !registry.admit(
        &peer.name,
        &conn,
        direction,
        we_dial_the_winner(&node, &peer),
    ) {
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
        limits,
        stop,
    )
    .await;
    registry.release(&peer.name, &conn);
    if !registry.is_connected(&peer.name) {
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

struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// The next wait: the current delay with jitter (50–100 %), then doubled.
    fn wait(&mut self) -> Duration {
        let jitter = 0.5 + rand::random::<f64>() * 0.5;
        let wait = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

async fn dial_loop(
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    node: Arc<Node>,
    peer: PeerConfig,
    registry: Arc<Registry>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let Some(address) = peer.address.clone() else {
        return;
    };
    let mut backoff = Backoff::new();
    loop {
        // Wait while a connection (either direction) is up.
        loop {
            let changed = registry.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !registry.is_connected(&peer.name) {
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
        let healthy = dial_once(
            &endpoint, &client, &node, &peer, &address, &registry, limits, &stop,
        )
        .await;
        if healthy {
            backoff.reset();
        }
        let wait = backoff.wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = node.sync_now.notified() => { backoff.reset(); }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One attempt; true if it led to a healthy session.
#[allow(clippy::too_many_arguments)]
async fn dial_once(
    endpoint: &Endpoint,
    client: &quinn::ClientConfig,
    node: &Arc<Node>,
    peer: &PeerConfig,
    address: &str,
    registry: &Arc<Registry>,
    limits: Limits,
    stop: &watch::Receiver<bool>,
) -> bool {
    let set = |state: PeerState, detail: Option<String>, error: Option<String>| {
        node.update_peer(&peer.name, |p| {
            p.state = state;
            p.detail = detail;
            if error.is_some() {
                p.last_error = error;
            }
        })
    };
    let addr = match tokio::net::lookup_host(address).await.map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) | Err(_) => {
            let e =
                format!("cannot resolve {address}; check the peer's address in the node config");
            tracing::warn!(peer = %peer.name, "{e}");
            set(PeerState::Connecting, Some(e.clone()), Some(e));
            return false;
        }
    };
    set(
        PeerState::Connecting,
        Some(format!("dialling {addr}")),
        None,
    );
    let connecting = match endpoint.connect_with(client.clone(), addr, "puente") {
        Ok(c) => c,
        Err(e) => {
            let e = format!("cannot dial {addr}: {e}");
            set(PeerState::Connecting, Some(e.clone()), Some(e));
            return false;
        }
    };
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let text = e.to_string();
            let refused = text.contains("is pinned for it") || text.contains("not pinned");
            let reason = if text.contains("is pinned for it") {
                format!("refused {addr}: {text}")
            } else if refused {
                format!(
                    "{addr} refused this node's certificate: pin this node's fingerprint there with `puente peer add`"
                )
            } else {
                format!("cannot connect to {addr}: {text}")
            };
            tracing::warn!(peer = %peer.name, "{reason}");
            let state = if refused {
                PeerState::Refused
            } else {
                PeerState::Connecting
            };
            set(state, Some(reason.clone()), Some(reason));
            return false;
        }
        Err(_) => {
            let e = format!(
                "no answer from {addr} within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            tracing::debug!(peer = %peer.name, "{e}");
            set(PeerState::Connecting, Some(e.clone()), Some(e));
            return false;
        }
    };
    match serve(
        conn,
        node.clone(),
        peer.clone(),
        Direction::Outbound,
        registry.clone(),
        limits,
        stop.clone(),
        addr,
    )
    .await
    {
        Some(ended) => ended.handshaken && (ended.lasted >= HEALTHY_SESSION || !ended.error),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let mut ceiling = BACKOFF_START;
        for _ in 0..12 {
            let w = b.wait();
            assert!(
                w >= ceiling / 2 && w <= ceiling,
                "{w:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(BACKOFF_MAX);
        }
        assert!(b.wait() <= BACKOFF_MAX);
        b.reset();
        assert!(b.wait() <= BACKOFF_START);
    }
}
