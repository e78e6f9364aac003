//! `puente init`: lay out a new node in one folder.
//!
//! Owns: creating DIR/puente.toml (all paths inside DIR), a copy of the
//! built-in schema, DIR/certs with a new TLS identity, and DIR/data.
//! Must not: touch an existing node: if any of its files exist, it refuses
//! before creating anything.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::schema::DEFAULT_SCHEMA;
use crate::fingerprint::Fingerprint;
use crate::fsutil;
use crate::node_identity;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7441";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists: {dir} already holds a puente node; refusing to touch it (use another --dir)", path.display(), dir = dir.display())]
    Exists { dir: PathBuf, path: PathBuf },
    #[error(
        "`{0}` is not a node name; use lowercase letters, digits, '-' or '_', starting with a letter (e.g. tijuana)"
    )]
    BadName(String),
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] node_identity::IdentityError),
}

#[derive(Debug)]
pub struct Initialized {
    pub config_file: PathBuf,
    pub fingerprint: Fingerprint,
}

pub fn init_node(dir: &Path, name: &str, listen: SocketAddr) -> Result<Initialized, InitError> {
    if !crate::config::is_identifier(name, true) {
        return Err(InitError::BadName(name.to_string()));
    }
    let config_file = dir.join("puente.toml");
    let schema_file = dir.join("schema.toml");
    let certs = dir.join("certs");
    let data = dir.join("data");
    let cert = certs.join("node.crt");
    let key = certs.join("node.key");
    for path in [
        &config_file,
        &schema_file,
        &cert,
        &key,
        &data.join("puente.db"),
    ] {
        if path.exists() {
            return Err(InitError::Exists {
                dir: dir.to_path_buf(),
                path: path.clone(),
            });
        }
    }
    let mkdir = |path: &Path, mode: u32| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|source| InitError::Create {
                path: path.to_path_buf(),
                source,
            })
    };
    mkdir(dir, 0o755)?;
    mkdir(&certs, 0o700)?;
    mkdir(&data, 0o700)?;
    let fingerprint = node_identity::generate(name, &cert, &key)?;
    let write = |path: &Path, text: &str| {
        fsutil::create_new_with_mode(path, text.as_bytes(), 0o644).map_err(|source| {
            InitError::Create {
                path: path.to_path_buf(),
                source,
            }
        })
    };
    write(&schema_file, DEFAULT_SCHEMA)?;
    write(&config_file, &config_text(name, listen))?;
    Ok(Initialized {
        config_file,
        fingerprint,
    })
}

fn config_text(name: &str, listen: SocketAddr) -> String {
    format!(
        r#"# puente node config for `{name}`, made by `puente init`.
# Relative paths are relative to this file's folder.

name = "{name}"
# QUIC (UDP) address other offices dial.
listen = "{listen}"
# The SQLite replica lives here.
data_dir = "data"
# Local admin socket (HTTP over a Unix socket; mode 0660).
admin_socket = "admin.sock"
# The shared schema: identical at every office (`puente check` prints its hash).
schema = "schema.toml"
# Log level when RUST_LOG is not set: error, warn, info, debug, trace.
log_level = "info"

[tls]
cert = "certs/node.crt"
key = "certs/node.key"

# Only on a node allowed to read sealed values (the Tijuana office):
# [privacy]
# identities = ["keys/mx.key"]

# Pinned peers. Add each other office with
#   puente peer add --config THIS_FILE --name NAME --fingerprint sha256:… --address HOST:PORT
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    #[test]
    fn init_makes_a_valid_self_contained_node_and_refuses_to_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tj");
        let made = init_node(&dir, "tijuana", "127.0.0.1:7441".parse().unwrap()).unwrap();
        let cfg = NodeConfig::load(&made.config_file).unwrap();
        for p in [
            &cfg.data_dir,
            &cfg.admin_socket,
            &cfg.schema_file,
            &cfg.tls_cert,
            &cfg.tls_key,
        ] {
            assert!(p.starts_with(&dir), "{}", p.display());
        }
        assert_eq!(
            crate::node_identity::certificate_fingerprint(&cfg.tls_cert).unwrap(),
            made.fingerprint
        );
        let before = std::fs::read(&made.config_file).unwrap();
        let e = init_node(&dir, "tijuana", "127.0.0.1:7441".parse().unwrap()).unwrap_err();
        assert!(matches!(e, InitError::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&made.config_file).unwrap(), before);
    }
}
