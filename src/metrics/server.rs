//! The optional `[metrics]` listener: plain HTTP on TCP (loopback unless
//! the config allows more), answering `GET /metrics` with the scrape.
//!
//! Owns: binding, the accept loop (a few connections at once, a header
//! read timeout), the one route, shutdown.
//! Must not: serve anything but the scrape (no rows, no status, no
//! writes), or read the replica.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::node::Node;

/// Scrapes served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for metrics on {addr}: {source}; choose a free address in [metrics] listen, or remove the section"
)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// A running metrics listener.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let node = node.clone();
                async move {
                    let body = super::scrape(&node).await;
                    ([(header::CONTENT_TYPE, super::text::CONTENT_TYPE)], body)
                }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "only GET /metrics is served here; the admin socket has the rest\n",
            )
                .into_response()
        })
}

/// Binds `listen` and serves the scrape (call inside a tokio runtime).
pub async fn start(node: Arc<Node>, listen: SocketAddr) -> Result<MetricsServer, BindError> {
    let bind_error = |source| BindError {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let app = router(node);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, app, stopped));
    tracing::info!(address = %local_addr, "metrics listener ready");
    Ok(MetricsServer {
        local_addr,
        stop,
        task,
    })
}

async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let mut stopped = pin!(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = &mut stopped => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = app.clone();
                    connections.spawn(async move {
                        let _permit = permit;
                        let service = TowerToHyperService::new(app);
                        let mut builder = http1::Builder::new();
                        builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = pin!(conn).await {
                            tracing::debug!(error = %e, "metrics connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Scrapes are short: give them a moment, then cut them off.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}
