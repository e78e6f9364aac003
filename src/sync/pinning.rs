//! TLS for sync: TLS 1.3 with the ring provider, and certificate pinning on
//! both sides.
//!
//! Owns: the rustls server config (a client is accepted only if its
//! certificate's fingerprint is pinned) and the per-peer client config (the
//! server must present exactly the fingerprint pinned for the peer dialled),
//! and the quinn crypto configs built from them. rustls still checks every
//! handshake signature against the presented certificate.
//! Must not: look at certificate names, chains or dates: the pin is the
//! whole trust decision.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use quinn::{ConnectionError, TransportErrorCode};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};

use super::protocol::alpn_list;
use crate::fingerprint::Fingerprint;
use crate::node::identity::NodeIdentity;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "the TLS key or certificate cannot be used: {0}; make a new pair with `puente init` or check [tls] in the node config"
    )]
    Rustls(#[from] rustls::Error),
    #[error("QUIC cannot use this TLS configuration: {0}")]
    Quic(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate a verifier last refused, for logs and status (the TLS
/// error itself only says "access denied").
#[derive(Debug, Default)]
pub struct LastRefused(Mutex<Option<Fingerprint>>);

impl LastRefused {
    fn record(&self, fp: Fingerprint) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp);
    }

    /// The fingerprint refused last, if any.
    pub fn get(&self) -> Option<Fingerprint> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The refusal every pin check answers with: rustls turns it into the TLS
/// alert `access_denied`, which is how both sides recognise a pinning
/// refusal by its type.
fn refusal() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Why a handshake failed, as far as trust and versions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFailure {
    /// This node refused the peer's certificate.
    WeRefused,
    /// The peer refused this node's certificate.
    TheyRefused,
    /// No protocol version in common (an ALPN mismatch: only with a peer
    /// that does not offer the bare `puente` fallback, i.e. puente 0.1.0).
    NoCommonVersion,
    /// Anything else (unreachable, timeout, protocol error).
    Other,
}

/// Classifies a connection error by its QUIC/TLS code.
pub fn classify(error: &ConnectionError) -> PinFailure {
    let denied = TransportErrorCode::crypto(u8::from(AlertDescription::AccessDenied));
    let no_alpn = TransportErrorCode::crypto(u8::from(AlertDescription::NoApplicationProtocol));
    match error {
        ConnectionError::TransportError(e) if e.code == denied => PinFailure::WeRefused,
        ConnectionError::ConnectionClosed(c) if c.error_code == denied => PinFailure::TheyRefused,
        ConnectionError::TransportError(e) if e.code == no_alpn => PinFailure::NoCommonVersion,
        ConnectionError::ConnectionClosed(c) if c.error_code == no_alpn => {
            PinFailure::NoCommonVersion
        }
        _ => PinFailure::Other,
    }
}

/// The protocol version a connection negotiated: `Some(0)` for the bare
/// `puente` fallback (no version in common), None if it negotiated none.
pub fn negotiated_version(conn: &quinn::Connection) -> Option<u16> {
    let data = conn.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    super::protocol::version_of_alpn(data.protocol.as_deref()?)
}

/// The handshake signature checks both verifiers share: rustls verifies
/// every handshake signature against the presented certificate.
#[derive(Debug)]
struct Signatures(Arc<CryptoProvider>);

impl Signatures {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The fingerprints a node accepts clients with, shared with its server
/// verifier: rustls configs are immutable, so a reload replaces the set
/// inside, and the next handshake sees it.
#[derive(Debug, Clone, Default)]
pub struct PinSet(Arc<RwLock<BTreeSet<Fingerprint>>>);

impl PinSet {
    pub fn new(pinned: impl IntoIterator<Item = Fingerprint>) -> PinSet {
        PinSet(Arc::new(RwLock::new(pinned.into_iter().collect())))
    }

    /// Puts a new set in force (a reload).
    pub fn replace(&self, pinned: impl IntoIterator<Item = Fingerprint>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = pinned.into_iter().collect();
    }

    pub fn contains(&self, fp: &Fingerprint) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(fp)
    }
}

/// Accepts a client whose certificate fingerprint is in `pinned`.
#[derive(Debug)]
struct PinnedClients {
    pinned: PinSet,
    signatures: Signatures,
    refused: Arc<LastRefused>,
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        if self.pinned.contains(&fp) {
            Ok(ClientCertVerified::assertion())
        } else {
            self.refused.record(fp);
            Err(refusal())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// Accepts a server only if it presents the pinned fingerprint.
#[derive(Debug)]
struct PinnedServer {
    expected: Fingerprint,
    signatures: Signatures,
    refused: Arc<LastRefused>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        if fp == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            self.refused.record(fp);
            Err(refusal())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

/// The TLS server side: this node's certificate, clients pinned in
/// `pinned` only (read at every handshake); of the ALPN names the client
/// offers, the newest version this node speaks is chosen (rustls picks by
/// the server's order).
pub fn server_crypto(
    identity: &NodeIdentity,
    pinned: PinSet,
    refused: Arc<LastRefused>,
    versions: &[u16],
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsSetupError> {
    let provider = provider();
    let verifier = Arc::new(PinnedClients {
        pinned,
        signatures: Signatures(provider.clone()),
        refused,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    config.alpn_protocols = alpn_list(versions);
    config.max_early_data_size = 0;
    // No session resumption: a resumed TLS 1.3 handshake skips the client
    // certificate check, so a peer unpinned by a reload could come back on
    // a ticket of its last session. Every handshake is a full one (one
    // per connection, which lives for hours).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|e| TlsSetupError::Quic(e.to_string()))
}

/// The TLS client side for dialling one peer: present our certificate,
/// accept only `expected`.
pub fn client_crypto(
    identity: &NodeIdentity,
    expected: Fingerprint,
    refused: Arc<LastRefused>,
    versions: &[u16],
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServer {
        expected,
        signatures: Signatures(provider.clone()),
        refused,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    config.alpn_protocols = alpn_list(versions);
    config.enable_early_data = false;
    // Every handshake checks the pinned certificate (see server_crypto).
    config.resumption = rustls::client::Resumption::disabled();
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|e| TlsSetupError::Quic(e.to_string()))
}

/// The fingerprint of the certificate a connection's peer presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| Fingerprint::of_der(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::ConnectionClose;

    fn closed_by_peer(alert: AlertDescription) -> ConnectionError {
        ConnectionError::ConnectionClosed(ConnectionClose {
            error_code: TransportErrorCode::crypto(u8::from(alert)),
            frame_type: None,
            reason: Default::default(),
        })
    }

    #[test]
    fn refusals_are_told_apart_by_their_tls_alert() {
        assert_eq!(
            classify(&closed_by_peer(AlertDescription::AccessDenied)),
            PinFailure::TheyRefused
        );
        assert_eq!(
            classify(&closed_by_peer(AlertDescription::NoApplicationProtocol)),
            PinFailure::NoCommonVersion
        );
        assert_eq!(
            classify(&closed_by_peer(AlertDescription::HandshakeFailure)),
            PinFailure::Other
        );
        assert_eq!(classify(&ConnectionError::TimedOut), PinFailure::Other);
        // Our verifiers refuse with the error that becomes access_denied.
        let alert = match refusal() {
            rustls::Error::InvalidCertificate(e) => AlertDescription::from(e),
            other => panic!("{other:?}"),
        };
        assert_eq!(alert, AlertDescription::AccessDenied);
    }
}
