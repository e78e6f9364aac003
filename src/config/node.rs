//! The node config: one per office.
//!
//! Owns: parsing and validating the node TOML (name, addresses, paths,
//! pinned peers, identity files), resolving relative paths against the
//! config file's folder, and editing the file in place (`peer add`) with
//! toml_edit so comments survive.
//! Must not: read certificates, keys or identities (it only names them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::access::{AccessConfig, AccessFile};
use super::web::{WebConfig, WebFile};
use super::{ConfigError, is_identifier, read_text};
use crate::node::fingerprint::Fingerprint;

/// Where a packaged install keeps its config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/puente/puente.toml";

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub name: String,
    pub fingerprint: Fingerprint,
    /// `HOST:PORT` to dial; without it this node only accepts the peer.
    pub address: Option<String>,
}

/// Where the replica's SQLCipher key comes from (`[storage]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the raw key as 64 hex digits, mode 0600.
    File(PathBuf),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`, loaded by the
    /// unit's `LoadCredentialEncrypted=NAME:…`.
    Credential(String),
}

impl KeySource {
    /// "file" or "credential", as status shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            KeySource::File(_) => "file",
            KeySource::Credential(_) => "credential",
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "key file {}", p.display()),
            KeySource::Credential(n) => write!(f, "key credential `{n}`"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The config file itself (absolute).
    pub file: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_socket: PathBuf,
    pub schema_file: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub peers: Vec<PeerConfig>,
    /// Age identity files; only on nodes allowed to read sealed values.
    pub identities: Vec<PathBuf>,
    /// The replica's key (`[storage]`); `None`: the replica is not
    /// encrypted at rest (nodes made before encryption, or with
    /// `puente init --unencrypted`).
    pub replica_key: Option<KeySource>,
    /// Default tracing filter when RUST_LOG is not set.
    pub log_level: String,
    /// Shifts this node's wall clock (tests of clock trouble; 0 in production).
    pub clock_offset_ms: i64,
    /// Caps the replica's size in pages (tests of a full disk; none in
    /// production).
    pub max_db_pages: Option<u64>,
    /// The sync protocol versions this node speaks, oldest first (all this
    /// build speaks, unless `[debug] protocols` narrows or widens the list
    /// to test version negotiation).
    pub protocols: Vec<u16>,
    /// Roles on the admin socket (`[access]`).
    pub access: AccessConfig,
    /// The staff agenda over HTTP (`[web]`); off without that section.
    pub web: Option<WebConfig>,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = read_text(path)?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        NodeConfig::parse(&absolute, &text)
    }

    /// Parses node config text; relative paths resolve against `file`'s folder.
    pub fn parse(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        let raw: NodeFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let err = |span, message: String| ConfigError::at(file, text, Some(span), message);
        let base = file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Spanned<String>| -> Result<PathBuf, ConfigError> {
            if p.get_ref().trim().is_empty() {
                return Err(err(
                    p.span(),
                    "the path is empty; give a file or folder path".into(),
                ));
            }
            Ok(base.join(p.get_ref()))
        };

        if !is_identifier(raw.name.get_ref(), true) {
            return Err(err(
                raw.name.span(),
                format!(
                    "name: `{}` is not a node name; use lowercase letters, digits, '-' or '_', starting with a letter (e.g. tijuana)",
                    raw.name.get_ref()
                ),
            ));
        }
        let listen = raw.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            err(
                raw.listen.span(),
                format!(
                    "listen: `{}` is not a socket address; write IP:PORT such as 0.0.0.0:7441",
                    raw.listen.get_ref()
                ),
            )
        })?;

        let mut peers: Vec<PeerConfig> = Vec::new();
        for peer in &raw.peers {
            let name = peer.name.get_ref();
            if !is_identifier(name, true) {
                return Err(err(
                    peer.name.span(),
                    format!(
                        "peers.name: `{name}` is not a node name; use lowercase letters, digits, '-' or '_'"
                    ),
                ));
            }
            if name == raw.name.get_ref() {
                return Err(err(
                    peer.name.span(),
                    format!(
                        "peers.name: `{name}` is this node's own name; a peer must be another office"
                    ),
                ));
            }
            let fingerprint = peer
                .fingerprint
                .get_ref()
                .parse::<Fingerprint>()
                .map_err(|e| {
                    err(
                        peer.fingerprint.span(),
                        format!("peers.fingerprint ({name}): {e}"),
                    )
                })?;
            if let Some(other) = peers.iter().find(|p| p.name == *name) {
                return Err(err(
                    peer.name.span(),
                    format!(
                        "peers.name: `{}` is listed twice; keep one entry per office",
                        other.name
                    ),
                ));
            }
            if let Some(other) = peers.iter().find(|p| p.fingerprint == fingerprint) {
                return Err(err(
                    peer.fingerprint.span(),
                    format!(
                        "peers.fingerprint ({name}): the same fingerprint is already pinned for `{}`; each office has its own certificate",
                        other.name
                    ),
                ));
            }
            let address = match &peer.address {
                Some(a) => {
                    validate_host_port(a.get_ref())
                        .map_err(|m| err(a.span(), format!("peers.address ({name}): {m}")))?;
                    Some(a.get_ref().clone())
                }
                None => None,
            };
            peers.push(PeerConfig {
                name: name.clone(),
                fingerprint,
                address,
            });
        }

        let protocols = match &raw.debug.protocols {
            None => crate::sync::protocol::SPOKEN.to_vec(),
            Some(list) => {
                let mut versions = list.get_ref().clone();
                versions.sort_unstable();
                versions.dedup();
                if versions.is_empty() || versions[0] == 0 {
                    return Err(ConfigError::at(
                        file,
                        text,
                        Some(list.span()),
                        "debug.protocols: list protocol versions from 1 up, e.g. [1, 2] (or leave it out)".into(),
                    ));
                }
                versions
            }
        };

        let identities = raw
            .privacy
            .identities
            .iter()
            .map(&resolve)
            .collect::<Result<Vec<_>, _>>()?;

        let access = match raw.access {
            Some(a) => a.check(file, text)?,
            None => AccessConfig::default(),
        };
        let web = raw.web.map(|w| w.check(file, text, base)).transpose()?;
        let replica_key = match raw.storage {
            None => None,
            Some(storage) => Some(parse_storage(storage, &resolve, &err, file)?),
        };

        Ok(NodeConfig {
            file: file.to_path_buf(),
            name: raw.name.into_inner(),
            listen,
            data_dir: resolve(&raw.data_dir)?,
            admin_socket: resolve(&raw.admin_socket)?,
            schema_file: resolve(&raw.schema)?,
            tls_cert: resolve(&raw.tls.cert)?,
            tls_key: resolve(&raw.tls.key)?,
            peers,
            identities,
            replica_key,
            log_level: raw
                .log_level
                .map_or_else(|| "info".to_string(), Spanned::into_inner),
            clock_offset_ms: raw.debug.clock_offset_ms,
            max_db_pages: raw.debug.max_db_pages,
            protocols,
            access,
            web,
        })
    }

    pub fn peer_by_fingerprint(&self, fp: &Fingerprint) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| &p.fingerprint == fp)
    }

    /// The replica's database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("puente.db")
    }
}

/// `[storage]`: exactly one of `key_file` and `key_credential`.
fn parse_storage(
    storage: StorageFile,
    resolve: &dyn Fn(&Spanned<String>) -> Result<PathBuf, ConfigError>,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    file: &Path,
) -> Result<KeySource, ConfigError> {
    match (storage.key_file, storage.key_credential) {
        (Some(path), None) => Ok(KeySource::File(resolve(&path)?)),
        (None, Some(name)) => {
            let n = name.get_ref();
            let valid = !n.is_empty()
                && n.len() <= 255
                && n != "."
                && n != ".."
                && n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
            if !valid {
                return Err(err(
                    name.span(),
                    format!(
                        "storage.key_credential: `{n}` is not a credential name; use letters, digits, '-', '_', '.' or '@' (e.g. puente-replica-key), as in the unit's LoadCredentialEncrypted="
                    ),
                ));
            }
            Ok(KeySource::Credential(n.clone()))
        }
        (Some(path), Some(_)) => Err(err(
            path.span(),
            "storage: give key_file or key_credential, not both".into(),
        )),
        (None, None) => Err(ConfigError::File {
            path: file.to_path_buf(),
            message: "[storage] names no key: set key_file (or key_credential) for an encrypted replica, or remove the section for an unencrypted one".into(),
        }),
    }
}

/// Checks `HOST:PORT` (a hostname, IPv4 or bracketed IPv6, and a port).
fn validate_host_port(s: &str) -> Result<(), String> {
    let bad =
        || format!("`{s}` is not HOST:PORT; write e.g. office.example.org:7441 or 127.0.0.1:7441");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

// ---- file format -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    name: Spanned<String>,
    listen: Spanned<String>,
    data_dir: Spanned<String>,
    admin_socket: Spanned<String>,
    schema: Spanned<String>,
    #[serde(default)]
    log_level: Option<Spanned<String>>,
    tls: TlsFile,
    #[serde(default)]
    peers: Vec<PeerFile>,
    #[serde(default)]
    privacy: PrivacyFile,
    #[serde(default)]
    storage: Option<StorageFile>,
    #[serde(default)]
    debug: DebugFile,
    #[serde(default)]
    access: Option<AccessFile>,
    #[serde(default)]
    web: Option<WebFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    #[serde(default)]
    key_file: Option<Spanned<String>>,
    #[serde(default)]
    key_credential: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    name: Spanned<String>,
    fingerprint: Spanned<String>,
    #[serde(default)]
    address: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PrivacyFile {
    #[serde(default)]
    identities: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DebugFile {
    #[serde(default)]
    clock_offset_ms: i64,
    #[serde(default)]
    max_db_pages: Option<u64>,
    #[serde(default)]
    protocols: Option<Spanned<Vec<u16>>>,
}

// ---- editing in place --------------------------------------------------

/// Adds (or replaces, by name) a pinned peer in the node config file,
/// keeping every comment and the layout of the rest of the file. The result
/// is validated before it is written; the write is atomic (temp + rename).
pub fn add_peer(
    config_file: &Path,
    name: &str,
    fingerprint: &Fingerprint,
    address: Option<&str>,
) -> Result<(), ConfigError> {
    let text = read_text(config_file)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        ConfigError::at(config_file, &text, e.span(), e.message().trim().to_string())
    })?;
    let peers = doc
        .entry("peers")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let peers = peers
        .as_array_of_tables_mut()
        .ok_or_else(|| ConfigError::File {
            path: config_file.to_path_buf(),
            message: "`peers` is not an array of [[peers]] tables; fix it by hand first".into(),
        })?;
    let mut entry = toml_edit::Table::new();
    entry["name"] = toml_edit::value(name);
    entry["fingerprint"] = toml_edit::value(fingerprint.to_string());
    if let Some(address) = address {
        entry["address"] = toml_edit::value(address);
    }
    let existing = peers
        .iter()
        .position(|t| t.get("name").and_then(|v| v.as_str()) == Some(name));
    match existing {
        Some(i) => {
            if let Some(t) = peers.get_mut(i) {
                // Keep the old entry's decor (comments above it).
                let decor = t.decor().clone();
                *t = entry;
                *t.decor_mut() = decor;
            }
        }
        None => peers.push(entry),
    }
    let new_text = doc.to_string();
    let absolute = std::path::absolute(config_file).unwrap_or_else(|_| config_file.to_path_buf());
    NodeConfig::parse(&absolute, &new_text)?;
    crate::node::fsutil::write_atomically(config_file, new_text.as_bytes(), None).map_err(
        |source| ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        },
    )
}

/// Names the replica's key file in the node config (`[storage] key_file`,
/// as `puente storage encrypt` does), keeping comments; `key_file` is
/// written as given (relative paths resolve against the config's folder).
/// Validated before the atomic write.
pub fn set_key_file(config_file: &Path, key_file: &str) -> Result<(), ConfigError> {
    let text = read_text(config_file)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        ConfigError::at(config_file, &text, e.span(), e.message().trim().to_string())
    })?;
    let mut storage = toml_edit::Table::new();
    storage.decor_mut().set_prefix(
        "\n# The replica is encrypted at rest (SQLCipher) with the raw key in this\n# file (mode 0600). Keep a copy offline: without it the replica is lost.\n",
    );
    storage["key_file"] = toml_edit::value(key_file);
    doc.insert("storage", toml_edit::Item::Table(storage));
    let new_text = doc.to_string();
    let absolute = std::path::absolute(config_file).unwrap_or_else(|_| config_file.to_path_buf());
    NodeConfig::parse(&absolute, &new_text)?;
    crate::node::fsutil::write_atomically(config_file, new_text.as_bytes(), None).map_err(
        |source| ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> String {
        Fingerprint([n; 32]).to_string()
    }

    fn sample() -> String {
        format!(
            r#"# Tijuana office
name = "tijuana"
listen = "127.0.0.1:7441"
data_dir = "data"
admin_socket = "run/admin.sock"
schema = "schema.toml"

[tls]
cert = "certs/node.crt"
key = "certs/node.key"

[privacy]
identities = ["keys/mx.key"]

# San Diego, pinned
[[peers]]
name = "san-diego"
fingerprint = "{}"
address = "127.0.0.1:7442"
"#,
            fp(1)
        )
    }

    #[test]
    fn paths_resolve_against_the_config_folder() {
        let cfg = NodeConfig::parse(Path::new("/etc/puente/puente.toml"), &sample()).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/etc/puente/data"));
        assert_eq!(
            cfg.identities,
            vec![PathBuf::from("/etc/puente/keys/mx.key")]
        );
        assert_eq!(cfg.peers[0].address.as_deref(), Some("127.0.0.1:7442"));
        assert_eq!(cfg.log_level, "info");
        let abs = sample().replace("\"data\"", "\"/var/lib/puente\"");
        let cfg = NodeConfig::parse(Path::new("/etc/puente/puente.toml"), &abs).unwrap();
        assert_eq!(cfg.data_dir, Path::new("/var/lib/puente"));
    }

    fn error_of(text: &str) -> String {
        NodeConfig::parse(Path::new("/x/node.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_node_configs_name_file_line_and_key() {
        let e = error_of(&sample().replace("listen = \"127.0.0.1:7441\"", "listen = \"here\""));
        assert!(
            e.starts_with("/x/node.toml:3:") && e.contains("listen"),
            "{e}"
        );
        let e = error_of(&format!(
            "{}\ncolour = \"blue\"\n",
            sample().replace("[tls]", "colour = 1\n[tls]")
        ));
        assert!(e.contains("colour"), "{e}");
        let e = error_of(&sample().replace(&fp(1), "sha256:1234"));
        assert!(
            e.contains("peers.fingerprint") && e.contains("puente id"),
            "{e}"
        );
        let e = error_of(&sample().replace("127.0.0.1:7442", "nowhere"));
        assert!(e.contains("peers.address"), "{e}");
        let e = error_of(&sample().replace("name = \"san-diego\"", "name = \"tijuana\""));
        assert!(e.contains("own name"), "{e}");
        let e = error_of(&sample().replace("[tls]\ncert = \"certs/node.crt\"\n", "[tls]\n"));
        assert!(e.contains("cert"), "{e}");
        let twice = format!(
            "{}\n[[peers]]\nname = \"ensenada\"\nfingerprint = \"{}\"\n",
            sample(),
            fp(1)
        );
        assert!(error_of(&twice).contains("already pinned"));
    }

    #[test]
    fn storage_names_one_key_source() {
        let parse = |extra: &str| {
            NodeConfig::parse(
                Path::new("/etc/puente/puente.toml"),
                &format!("{}{extra}", sample()),
            )
        };
        assert_eq!(parse("").unwrap().replica_key, None);
        assert_eq!(
            parse("[storage]\nkey_file = \"keys/replica.key\"\n")
                .unwrap()
                .replica_key,
            Some(KeySource::File("/etc/puente/keys/replica.key".into()))
        );
        let cred = parse("[storage]\nkey_credential = \"puente-replica-key\"\n")
            .unwrap()
            .replica_key
            .unwrap();
        assert_eq!(cred.kind(), "credential");
        assert_eq!(cred.to_string(), "key credential `puente-replica-key`");
        for (extra, expected) in [
            ("[storage]\n", "names no key"),
            (
                "[storage]\nkey_file = \"k\"\nkey_credential = \"c\"\n",
                "not both",
            ),
            (
                "[storage]\nkey_credential = \"a/b\"\n",
                "not a credential name",
            ),
            ("[storage]\nkey = \"00\"\n", "unknown field"),
            ("[storage]\nkey_file = \"\"\n", "empty"),
        ] {
            let e = parse(extra).unwrap_err().to_string();
            assert!(e.contains(expected), "{extra}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn set_key_file_adds_storage_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("puente.toml");
        std::fs::write(&file, sample()).unwrap();
        set_key_file(&file, "keys/replica.key").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("# San Diego, pinned"), "{text}");
        let cfg = NodeConfig::load(&file).unwrap();
        assert_eq!(
            cfg.replica_key,
            Some(KeySource::File(dir.path().join("keys/replica.key")))
        );
        assert_eq!(cfg.peers.len(), 1);
    }

    #[test]
    fn add_peer_keeps_comments_and_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("puente.toml");
        std::fs::write(&file, sample()).unwrap();
        add_peer(&file, "ensenada", &Fingerprint([2; 32]), None).unwrap();
        add_peer(
            &file,
            "san-diego",
            &Fingerprint([3; 32]),
            Some("127.0.0.1:9000"),
        )
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("# Tijuana office") && text.contains("# San Diego, pinned"),
            "{text}"
        );
        let cfg = NodeConfig::load(&file).unwrap();
        assert_eq!(cfg.peers.len(), 2);
        let sd = cfg.peers.iter().find(|p| p.name == "san-diego").unwrap();
        assert_eq!(sd.fingerprint, Fingerprint([3; 32]));
        assert_eq!(sd.address.as_deref(), Some("127.0.0.1:9000"));
        // An invalid edit is refused and the file stays as it was.
        let before = std::fs::read_to_string(&file).unwrap();
        assert!(add_peer(&file, "tijuana", &Fingerprint([4; 32]), None).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }
}

#[cfg(test)]
mod shipped_examples {
    use super::*;

    #[test]
    fn the_example_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let tj = NodeConfig::load(&root.join("tijuana.toml")).unwrap();
        assert_eq!(tj.identities.len(), 1);
        assert_eq!(tj.peers[0].name, "san-diego");
        let sd = NodeConfig::load(&root.join("san-diego.toml")).unwrap();
        assert!(sd.identities.is_empty());
        for cfg in [&tj, &sd] {
            assert_eq!(
                cfg.replica_key,
                Some(KeySource::File(root.join("keys/replica.key")))
            );
        }
        assert_eq!(sd.peers[0].name, "tijuana");
        // The packaged roles: the puente group reads and writes, reveal is a
        // group of its own, root is admin; the web agenda stays on loopback.
        use crate::config::access::{Principal, Role, Who};
        for cfg in [&tj, &sd] {
            let holders = |role| cfg.access.holders(role).cloned().collect::<Vec<_>>();
            let group = |n: &str| Principal::Group(Who::Name(n.into()));
            assert_eq!(holders(Role::Read), [group("puente")]);
            assert_eq!(holders(Role::Write), [group("puente")]);
            assert_eq!(holders(Role::Reveal), [group("puente-reveal")]);
            assert_eq!(
                holders(Role::Admin),
                [Principal::User(Who::Name("root".into()))]
            );
            let web = cfg.web.as_ref().unwrap();
            assert!(web.listen.ip().is_loopback() && web.tls.is_none());
        }
    }
}
