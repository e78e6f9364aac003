//! Binding and serving the web agenda on TCP, with TLS when configured.
//!
//! Owns: loading the TLS certificate chain and key (rustls with ring, TLS
//! 1.3, ALPN http/1.1), the TLS handshake of each connection, and the
//! rules of its connections (a cap on open ones, a header read timeout,
//! a bound on the request head, the shutdown grace) for the accept loop
//! of serve.rs, which hands the client's address to each request.
//! Must not: hold page logic (routes do) or log request contents.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::WebError;
use crate::config::web::WebTls;
use crate::serve::{self, ConnectionRules};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// A connection that sends no complete request head in this time is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish in this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS server config from PEM files.
pub fn tls_acceptor(tls: &WebTls) -> Result<TlsAcceptor, WebError> {
    let bad = |path: &Path, detail: String| WebError::Tls {
        path: path.to_path_buf(),
        detail,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&tls.cert, "it holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                &tls.key,
                format!("the key does not fit the certificate ({e})"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` completes; requests in
/// flight then get a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let rules = ConnectionRules {
        name: "web",
        max_connections: Some(MAX_CONNECTIONS),
        header_read_timeout: HEADER_TIMEOUT,
        max_buf_size: Some(64 * 1024),
    };
    let draining = serve::accept_until(listener, &rules, shutdown, |stream, peer, stop| {
        let (app, tls, rules) = (app.clone(), tls.clone(), rules.clone());
        async move {
            let Some(tls) = tls else {
                return serve::serve_connection(stream, app, peer, &rules, stop).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve::serve_connection(stream, app, peer, &rules, stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "web: TLS handshake failed"),
                Err(_) => tracing::debug!("web: TLS handshake timed out"),
            }
        }
    })
    .await;
    draining.finish(Duration::from_secs(5)).await;
    tracing::info!("web agenda closed");
}
