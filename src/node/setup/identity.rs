//! A node's TLS identity: the self-signed certificate and key that
//! `puente init` makes, loaded again by the daemon, fingerprinted for pins.
//!
//! Owns: generating (rcgen, ECDSA P-256), writing (key mode 0600) and
//! loading the PEM files.
//! Must not: decide who is trusted (transport checks pins).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::fingerprint::Fingerprint;
use crate::fsutil;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the TLS certificate {}: {reason}; check [tls] cert in the node config (`puente init` makes one)", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS key {}: {reason}; check [tls] key in the node config and that puente may read it", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("cannot make a TLS certificate: {0}")]
    Generate(String),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The certificate and key of this node, ready for rustls.
#[derive(Debug)]
pub struct NodeIdentity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

/// Reads a PEM certificate and returns its fingerprint.
pub fn certificate_fingerprint(cert: &Path) -> Result<Fingerprint, IdentityError> {
    let der = CertificateDer::from_pem_file(cert).map_err(|e| IdentityError::Certificate {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Fingerprint::of_der(&der))
}

/// Loads the certificate and key files named in the node config.
pub fn load(cert: &Path, key: &Path) -> Result<NodeIdentity, IdentityError> {
    let cert_der = CertificateDer::from_pem_file(cert).map_err(|e| IdentityError::Certificate {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| IdentityError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(NodeIdentity {
        fingerprint: Fingerprint::of_der(&cert_der),
        cert: cert_der,
        key: key_der,
    })
}

/// Makes a new self-signed certificate for `name` and writes both files
/// (the key with mode 0600), refusing to overwrite either.
pub fn generate(name: &str, cert: &Path, key: &Path) -> Result<Fingerprint, IdentityError> {
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()])
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    let key_pem = zeroize::Zeroizing::new(made.signing_key.serialize_pem());
    fsutil::create_new_with_mode(key, key_pem.as_bytes(), 0o600).map_err(|source| {
        IdentityError::Write {
            path: key.to_path_buf(),
            source,
        }
    })?;
    fsutil::create_new_with_mode(cert, made.cert.pem().as_bytes(), 0o644).map_err(|source| {
        IdentityError::Write {
            path: cert.to_path_buf(),
            source,
        }
    })?;
    Ok(Fingerprint::of_der(made.cert.der()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_loads_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("n.crt"), dir.path().join("n.key"));
        let fp = generate("tijuana", &c, &k).unwrap();
        assert_eq!(fsutil::mode_of(&k).unwrap(), 0o600);
        let loaded = load(&c, &k).unwrap();
        assert_eq!(loaded.fingerprint, fp);
        assert_eq!(certificate_fingerprint(&c).unwrap(), fp);
        assert!(generate("tijuana", &c, &k).is_err());
        let e = load(&dir.path().join("none.crt"), &k)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.crt"), "{e}");
    }
}
