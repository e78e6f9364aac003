//! The accept loop every HTTP listener of the daemon runs: the admin
//! socket (Unix), the web agenda (TCP, TLS when configured) and the
//! `[metrics]` listener (TCP).
//!
//! Owns: accepting until shutdown (an accept error is logged and backed
//! off briefly rather than spun on), a bound on open connections where
//! the listener has one, one HTTP/1.1 connection per task with a header
//! read timeout, the connection's peer handed to handlers as
//! `ConnectInfo`, and at shutdown: the listener closed, then every open
//! connection asked to finish its request, a grace period, the rest cut
//! off.
//! Must not: hold routes, read a request, or decide who may connect
//! (each server's own file does).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long to wait after a failed accept (out of file descriptors and
/// the like) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How one listener serves its connections.
#[derive(Debug, Clone)]
pub struct ConnectionRules {
    /// The listener's name in log lines ("admin socket", "web", "metrics").
    pub name: &'static str,
    /// Connections served at once (none: no bound); more wait in the
    /// kernel's backlog.
    pub max_connections: Option<usize>,
    /// A connection that sends no complete request head in this time
    /// (an idle keep-alive connection included) is closed.
    pub header_read_timeout: Duration,
    /// The most a request head may buffer (none: hyper's default).
    pub max_buf_size: Option<usize>,
}

/// A listener the loop accepts from.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Addr: Send + 'static;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send {
        self.accept()
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send {
        self.accept()
    }
}

/// The connections still open once the listener is closed.
pub struct Draining {
    name: &'static str,
    stop: watch::Sender<bool>,
    connections: JoinSet<()>,
}

impl Draining {
    /// Asks every open connection to finish its request, waits up to
    /// `grace` for them, and cuts off the rest; returns how many were cut
    /// off.
    pub async fn finish(mut self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        let connections = &mut self.connections;
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_ok() {
            return 0;
        }
        let open = self.connections.len();
        tracing::debug!(open, "{}: connections cut off at shutdown", self.name);
        self.connections.abort_all();
        open
    }
}

/// Accepts from `listener` until `shutdown` completes, running `handle`
/// for each connection on a task of its own (with a slot of
/// `rules.max_connections` held while it runs), then closes the listener
/// and returns the connections still open. `handle` gets the connection,
/// its peer address and a signal that turns true when they should finish.
pub async fn accept_until<L, F, Fut>(
    listener: L,
    rules: &ConnectionRules,
    shutdown: impl Future<Output = ()>,
    handle: F,
) -> Draining
where
    L: Accept,
    F: Fn(L::Io, L::Addr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let slots = rules.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = match &slots {
            None => None,
            Some(slots) => tokio::select! {
                () = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => Some(p),
                    Err(_) => break,
                },
            },
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept_one() => match accepted {
                Ok((io, addr)) => {
                    let connection = handle(io, addr, stopped.clone());
                    connections.spawn(async move {
                        let _permit = permit;
                        connection.await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{}: accept failed", rules.name);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    tracing::error!("{}: a connection task panicked; the daemon keeps serving", rules.name);
                }
            }
        }
    }
    drop(listener);
    Draining {
        name: rules.name,
        stop,
        connections,
    }
}

/// Serves one HTTP/1.1 connection until the client leaves, the header
/// read timeout fires, or `stop` asks it to finish its current request.
/// Handlers find `peer` in the request's `ConnectInfo`.
pub async fn serve_connection<S, P>(
    io: S,
    app: Router,
    peer: P,
    rules: &ConnectionRules,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Clone + Send + Sync + 'static,
{
    let service = TowerToHyperService::new(app);
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer.clone()));
        service.call(req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(rules.header_read_timeout);
    if let Some(bytes) = rules.max_buf_size {
        builder.max_buf_size(bytes);
    }
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "{}: connection closed", rules.name);
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
