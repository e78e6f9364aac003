//! `puente init`: lay out a new node in one folder.
//!
//! Owns: creating DIR/puente.toml (all paths inside DIR), a copy of the
//! built-in schema, DIR/certs with a new TLS identity, DIR/keys with a new
//! random replica key (unless the node is made unencrypted on purpose),
//! and DIR/data, each with an explicit mode whatever the umask; given the
//! service account (`puente init` run as root where user `puente`
//! exists, or `--service-user`), the secrets and the data belong to it
//! alone (TLS and replica keys 0600 in folders 0700, DIR/data 0700) and
//! the config and schema are readable by its group (0640 and 0644,
//! root-owned): an admin in group `puente` reads the config, never a key.
//! Must not: touch an existing node: if any of its files exist, it refuses
//! before creating anything.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::schema::DEFAULT_SCHEMA;
use crate::fingerprint::Fingerprint;
use crate::fsutil;
use crate::node::identity;
use crate::node::replica_key;
use crate::store::ReplicaKey;

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
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Key(#[from] replica_key::ReplicaKeyError),
}

/// What `puente init` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    /// Where the replica lives; default DIR/data (made by init). A packaged
    /// install passes /var/lib/puente, which systemd's StateDirectory makes.
    pub data_dir: Option<PathBuf>,
    /// Default DIR/admin.sock; a packaged install passes
    /// /run/puente/admin.sock (systemd's RuntimeDirectory).
    pub admin_socket: Option<PathBuf>,
    /// Encrypt the replica at rest with a new random key in
    /// DIR/keys/replica.key (the default). `false` only when asked for
    /// (`--unencrypted`).
    pub encrypted: bool,
    /// The office's time zone (an IANA name, checked by the caller);
    /// `None` leaves `time_zone` commented out (the system's is used).
    pub time_zone: Option<String>,
    /// The account the daemon runs as: it owns the secrets and the data,
    /// its group reads the config and schema (`None`: files stay the
    /// caller's, owner-only where secret).
    pub service: Option<ServiceOwner>,
}

impl InitOptions {
    pub fn new(dir: &Path, name: &str, listen: SocketAddr) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            listen,
            data_dir: None,
            admin_socket: None,
            encrypted: true,
            time_zone: None,
            service: None,
        }
    }
}

#[derive(Debug)]
pub struct Initialized {
    pub config_file: PathBuf,
    pub fingerprint: Fingerprint,
}

pub fn init_node(options: &InitOptions) -> Result<Initialized, InitError> {
    let (dir, name) = (options.dir.as_path(), options.name.as_str());
    if !crate::config::is_identifier(name, true) {
        return Err(InitError::BadName(name.to_string()));
    }
    let config_file = dir.join("puente.toml");
    let schema_file = dir.join("schema.toml");
    let certs = dir.join("certs");
    let data = options.data_dir.clone().unwrap_or_else(|| dir.join("data"));
    let cert = certs.join("node.crt");
    let key = certs.join("node.key");
    let replica_key_file = dir.join(replica_key::DEFAULT_KEY_FILE);
    for path in [
        &config_file,
        &schema_file,
        &cert,
        &key,
        &replica_key_file,
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
    let dir_is_new = !dir.exists();
    mkdir(dir, 0o755)?;
    if dir_is_new {
        settle(dir, 0o755, None)?;
    }
    mkdir(&certs, 0o700)?;
    if options.data_dir.is_none() {
        mkdir(&data, 0o700)?;
    }
    let fingerprint = identity::generate(name, &cert, &key)?;
    if options.encrypted {
        replica_key::write_new(&replica_key_file, &ReplicaKey::generate())?;
    }
    let write = |path: &Path, text: &str| {
        fsutil::create_new_with_mode(path, text.as_bytes(), 0o644).map_err(|source| {
            InitError::Create {
                path: path.to_path_buf(),
                source,
            }
        })
    };
    write(&schema_file, DEFAULT_SCHEMA)?;
    write(&config_file, &config_text(options))?;
    let made_dir = |path: &Path, mode: u32| -> Result<(), InitError> { settle(path, mode, None) };
    made_dir(&certs, 0o700)?;
    if options.data_dir.is_none() {
        made_dir(&data, 0o700)?;
    }
    if let Some(owner) = options.service {
        let root_owned = Some((None, owner.gid));
        let service_owned = Some((Some(owner.uid), owner.gid));
        settle(&config_file, 0o640, root_owned)?;
        settle(&schema_file, 0o644, root_owned)?;
        settle(&certs, 0o700, service_owned)?;
        settle(&cert, 0o644, service_owned)?;
        settle(&key, 0o600, service_owned)?;
        if options.encrypted {
            if let Some(keys) = replica_key_file.parent() {
                settle(keys, 0o700, service_owned)?;
            }
            settle(&replica_key_file, 0o600, service_owned)?;
        }
        if options.data_dir.is_none() {
            settle(&data, 0o700, service_owned)?;
        }
    }
    Ok(Initialized {
        config_file,
        fingerprint,
    })
}

/// The account the daemon runs as, from /etc/passwd and /etc/group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOwner {
    pub uid: u32,
    /// Group `puente` when it exists, else the user's own group.
    pub gid: u32,
}

/// Gives `path` exactly `mode` (the umask narrowed it at creation) and,
/// with `owner`, that (user, group): the user stays when it is `None`.
fn settle(path: &Path, mode: u32, owner: Option<(Option<u32>, u32)>) -> Result<(), InitError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |source| InitError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, uid, Some(gid)).map_err(failed)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(failed)
}

fn quoted(path: &Path) -> String {
    toml::Value::String(path.to_string_lossy().into_owned()).to_string()
}

fn config_text(options: &InitOptions) -> String {
    let (name, listen) = (&options.name, options.listen);
    let data_dir = options
        .data_dir
        .as_deref()
        .map_or_else(|| "\"data\"".to_string(), quoted);
    let admin_socket = options
        .admin_socket
        .as_deref()
        .map_or_else(|| "\"admin.sock\"".to_string(), quoted);
    let time_zone = match &options.time_zone {
        Some(zone) => format!("time_zone = {}", quoted(Path::new(zone))),
        None => "# time_zone = \"America/Tijuana\"".to_string(),
    };
    let storage = if options.encrypted {
        format!(
            r#"# The replica is encrypted at rest (SQLCipher) with the raw key in this
# file (mode 0600). Keep a copy offline: without it the replica is lost.
# Under systemd the key can come from an encrypted credential instead:
# key_credential = "puente-replica-key" (see the README).
[storage]
key_file = "{}"
"#,
            replica_key::DEFAULT_KEY_FILE
        )
    } else {
        "# The replica is NOT encrypted at rest (made with `puente init --unencrypted`):
# anyone who copies the data dir can read it. `puente storage encrypt`
# encrypts it and adds a [storage] section here.
"
        .to_string()
    };
    format!(
        r#"# puente node config for `{name}`, made by `puente init`.
# Relative paths are relative to this file's folder.

name = "{name}"
# QUIC (UDP) address other offices dial.
listen = "{listen}"
# The SQLite replica lives here.
data_dir = {data_dir}
# Local admin socket (HTTP over a Unix socket; mode 0660).
admin_socket = {admin_socket}
# The shared schema: identical at every office (`puente check` prints its hash).
schema = "schema.toml"
# Log level when RUST_LOG is not set: error, warn, info, debug, trace.
log_level = "info"
# The office's time zone (IANA name): `puente schedule`, the web agenda,
# the calendar feed's display hints and every date shown here use it,
# whatever the shell's TZ (`--tz` looks with another).
{time_zone}

[tls]
cert = "certs/node.crt"
key = "certs/node.key"

{storage}
# Only on a node allowed to read sealed values (the Tijuana office):
# [privacy]
# identities = ["keys/mx.key"]

# Who may use the admin socket, by local user or group (root and the user
# the daemon runs as may always do everything). The package makes both groups.
[access]
read = ["group:puente"]
write = ["group:puente"]
reveal = ["group:puente-reveal"]
admin = ["user:root"]

# The staff web agenda and calendar feed (off until this section is
# uncommented; any address but 127.0.0.1 also needs tls_cert and tls_key):
# [web]
# listen = "127.0.0.1:7480"
# The address staff open (links from `puente staff add` start with it):
# url = "https://agenda.tijuana.example.org"

# Pinned peers. Add each other office with
#   puente peer add --config THIS_FILE --name NAME --fingerprint sha256:… --address HOST:PORT
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn packaged_paths_are_written_as_given_and_not_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc");
        let mut options = InitOptions::new(&dir, "san-diego", "127.0.0.1:7442".parse().unwrap());
        options.data_dir = Some(tmp.path().join("var lib/puente"));
        options.admin_socket = Some(tmp.path().join("run/admin \"x\".sock"));
        let made = init_node(&options).unwrap();
        let cfg = NodeConfig::load(&made.config_file).unwrap();
        assert_eq!(cfg.data_dir, tmp.path().join("var lib/puente"));
        assert_eq!(cfg.admin_socket, tmp.path().join("run/admin \"x\".sock"));
        assert!(!cfg.data_dir.exists());
    }

    use super::*;
    use crate::config::NodeConfig;

    #[test]
    fn init_makes_a_valid_self_contained_node_and_refuses_to_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tj");
        let made = init_node(&InitOptions::new(
            &dir,
            "tijuana",
            "127.0.0.1:7441".parse().unwrap(),
        ))
        .unwrap();
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
            crate::node::identity::certificate_fingerprint(&cfg.tls_cert).unwrap(),
            made.fingerprint
        );
        let before = std::fs::read(&made.config_file).unwrap();
        let e = init_node(&InitOptions::new(
            &dir,
            "tijuana",
            "127.0.0.1:7441".parse().unwrap(),
        ))
        .unwrap_err();
        assert!(matches!(e, InitError::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&made.config_file).unwrap(), before);
    }

    #[test]
    fn a_new_node_is_encrypted_unless_asked_not_to_be() {
        use crate::config::node::KeySource;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tj");
        let made = init_node(&InitOptions::new(
            &dir,
            "tijuana",
            "127.0.0.1:7441".parse().unwrap(),
        ))
        .unwrap();
        let cfg = NodeConfig::load(&made.config_file).unwrap();
        let file = dir.join("keys/replica.key");
        assert_eq!(cfg.replica_key, Some(KeySource::File(file.clone())));
        assert_eq!(crate::fsutil::mode_of(&file).unwrap(), 0o600);
        assert!(replica_key::load_file(&file).is_ok());

        let plain = tmp.path().join("sd");
        let mut options = InitOptions::new(&plain, "san-diego", "127.0.0.1:7442".parse().unwrap());
        options.encrypted = false;
        let made = init_node(&options).unwrap();
        let cfg = NodeConfig::load(&made.config_file).unwrap();
        assert_eq!(cfg.replica_key, None);
        assert!(!plain.join("keys").exists());
        let text = std::fs::read_to_string(&made.config_file).unwrap();
        assert!(text.contains("NOT encrypted"), "{text}");
    }
}
