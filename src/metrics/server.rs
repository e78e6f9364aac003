//! The optional `[metrics]` listener: plain HTTP on TCP (loopback unless
//! the config allows more), answering `GET /metrics` with the scrape.
//!
//! Owns: binding, the rules of its connections (a few at once, a header
//! read timeout) for the accept loop of serve.rs, the one route, shutdown.
//! Must not: serve anything but the scrape (no rows, no status, no
//! writes), or read the replica.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node::Node;
use crate::serve::{self, ConnectionRules};

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
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let rules = ConnectionRules {
        name: "metrics",
        max_connections: Some(MAX_CONNECTIONS),
        header_read_timeout: HEADER_TIMEOUT,
        max_buf_size: None,
    };
    let draining = serve::accept_until(listener, &rules, stopped, |stream, _, stop| {
        let (app, rules) = (app.clone(), rules.clone());
        async move { serve::serve_connection(stream, app, (), &rules, stop).await }
    })
    .await;
    // Scrapes are short: give them a moment, then cut them off.
    draining.finish(Duration::from_secs(2)).await;
}
