//! The staff web agenda and calendar feed, served by the daemon over HTTP
//! (TLS when `[web]` names a certificate; loopback only without one).
//!
//! Owns: one file per concern; the decisions in files without IO, tested
//! without sockets:
//! - `agenda` (which days and events a page shows), `form` (reading and
//!   checking the event form), `ics` (the RFC 5545 feed), `sessions`
//!   (sign-in sessions, injected time), `ratelimit` (token buckets,
//!   injected time), `i18n` (every word in Spanish and English), `pages/`
//!   (the HTML);
//! - the shell: `server` (TLS and the rules of its connections; the
//!   accept loop is `crate::serve`'s), `routes` and `events` (thin
//!   handlers), `http` (request context, forms, answers, middlewares),
//!   `state` (what requests share, reading the node).
//!
//! Staff roles and tokens are `crate::access::staff_tokens`, the edit log
//! `crate::audit::edits`: rooms below this one, which the admin socket
//! uses too.
//!
//! Must not: show, accept or log a sealed value: the web reads the store
//! with `Reveal::No` and keeps shared values only; a form naming a sealed
//! column and any ask to reveal are refused. Nor may it log a token.

pub mod agenda;
pub mod events;
pub mod form;
pub mod http;
pub mod i18n;
pub mod ics;
pub mod pages;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use jiff::tz::TimeZone;
use tokio::sync::watch;

use crate::config::web::WebConfig;
use crate::node::Node;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot listen for the web agenda on {addr}: {source}; another program may use that port: change [web] listen in the node config"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot use the web TLS file {}: {detail}; give [web] tls_cert as a PEM certificate chain and tls_key as its PEM private key, readable by the user puente runs as", path.display()
    )]
    Tls { path: PathBuf, detail: String },
}

/// The running web agenda.
pub struct WebServer {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Stops accepting and lets requests in flight finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(6), self.task).await;
    }
}

/// The agenda's zone: the office's (`time_zone` of the node config), else
/// the system's, else UTC.
pub fn zone(office_time_zone: Option<&str>) -> (TimeZone, String) {
    crate::config::node::office_zone(office_time_zone)
}

/// Binds `[web] listen` and serves the agenda (call inside a tokio
/// runtime).
pub async fn start(node: Arc<Node>, config: &WebConfig) -> Result<WebServer, WebError> {
    let tls = config.tls.as_ref().map(server::tls_acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| WebError::Bind {
        addr: config.listen,
        source,
    })?;
    let (tz, zone_name) = zone(node.config().time_zone.as_deref());
    let state = Arc::new(state::WebState::new(
        node,
        tz,
        zone_name.clone(),
        config.https(),
        config.trusted_proxies.clone(),
    ));
    let app = routes::router(state);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, app, tls, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    tracing::info!(
        address = %local_addr,
        tls = config.tls.is_some(),
        zone = %zone_name,
        "web agenda ready"
    );
    Ok(WebServer {
        local_addr,
        stop,
        task,
    })
}
