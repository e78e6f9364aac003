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
use super::metrics::{MetricsConfig, MetricsFile};
use super::web::{WebConfig, WebFile};
use super::{ConfigError, is_identifier, read_text};
use crate::fingerprint::Fingerprint;

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
    /// How far ahead of this office's clock a peer's change may be stamped
    /// and still be applied (`[sync] max_clock_drift_s`; five minutes by
    /// default); a change stamped further ahead is held until this clock
    /// catches up.
    pub max_clock_drift_ms: u64,
    /// Shifts this node's wall clock (tests of clock trouble; 0 in production).
    pub clock_offset_ms: i64,
    /// Caps the replica's size in pages (tests of a full disk; none in
    /// production).
    pub max_db_pages: Option<u64>,
    /// Lowers the bound on changes held for review (tests of a flood of
    /// forbidden changes; the built-in bound in production).
    pub max_held: Option<u64>,
    /// The sync protocol versions this node speaks, oldest first (all this
    /// build speaks, unless `[debug] protocols` narrows or widens the list
    /// to test version negotiation).
    pub protocols: Vec<u16>,
    /// Roles on the admin socket (`[access]`).
    pub access: AccessConfig,
    /// The staff agenda over HTTP (`[web]`); off without that section.
    pub web: Option<WebConfig>,
    /// A TCP listener for Prometheus (`[metrics]`); off without that section.
    pub metrics: Option<MetricsConfig>,
    /// The office's time zone (IANA name) as written: the top-level
    /// `time_zone`, else `[web] time_zone` of configs written before it.
    /// Every date a person reads at this office is shown in it
    /// (`office_zone`).
    pub time_zone: Option<String>,
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
            None => crate::versions::SPOKEN.to_vec(),
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

        let max_clock_drift_ms = match &raw.sync.max_clock_drift_s {
            None => crate::clock::DEFAULT_MAX_DRIFT_MS,
            Some(s) if (1..=MAX_CLOCK_DRIFT_S).contains(s.get_ref()) => s.get_ref() * 1000,
            Some(s) => {
                return Err(err(
                    s.span(),
                    format!(
                        "sync.max_clock_drift_s: {} is out of range; give seconds from 1 to {MAX_CLOCK_DRIFT_S} (a day), e.g. 300 (the default, five minutes)",
                        s.get_ref()
                    ),
                ));
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
        let metrics = raw.metrics.map(|m| m.check(file, text)).transpose()?;
        let time_zone = match &raw.time_zone {
            None => web.as_ref().and_then(|w| w.time_zone.clone()),
            Some(z) => {
                if jiff::tz::TimeZone::get(z.get_ref()).is_err() {
                    return Err(err(
                        z.span(),
                        format!(
                            "time_zone: `{}` is not a time zone this machine knows; write an IANA name such as America/Tijuana or America/Los_Angeles",
                            z.get_ref()
                        ),
                    ));
                }
                if let Some(other) = web.as_ref().and_then(|w| w.time_zone.as_ref())
                    && other != z.get_ref()
                {
                    return Err(err(
                        z.span(),
                        format!(
                            "time_zone: `{}` here but `{other}` under [web]; an office has one time zone: remove time_zone from [web]",
                            z.get_ref()
                        ),
                    ));
                }
                Some(z.get_ref().clone())
            }
        };
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
            max_clock_drift_ms,
            clock_offset_ms: raw.debug.clock_offset_ms,
            max_db_pages: raw.debug.max_db_pages,
            max_held: raw.debug.max_held,
            protocols,
            access,
            web,
            metrics,
            time_zone,
        })
    }

    /// The office's time zone and its name: `time_zone`, else the
    /// system's, else UTC.
    pub fn office_zone(&self) -> (jiff::tz::TimeZone, String) {
        office_zone(self.time_zone.as_deref())
    }

    pub fn peer_by_fingerprint(&self, fp: &Fingerprint) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| &p.fingerprint == fp)
    }

    /// The replica's database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("puente.db")
    }
}

/// The zone named `configured` (checked when the config was read), else
/// the system's, else UTC; with the name to show for it.
pub fn office_zone(configured: Option<&str>) -> (jiff::tz::TimeZone, String) {
    use jiff::tz::TimeZone;
    let tz = configured
        .and_then(|name| TimeZone::get(name).ok())
        .or_else(|| TimeZone::try_system().ok())
        .unwrap_or(TimeZone::UTC);
    let name = tz
        .iana_name()
        .map(str::to_string)
        .or_else(|| configured.map(str::to_string))
        .unwrap_or_else(|| "UTC".to_string());
    (tz, name)
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
    #[serde(default)]
    time_zone: Option<Spanned<String>>,
    tls: TlsFile,
    #[serde(default)]
    peers: Vec<PeerFile>,
    #[serde(default)]
    privacy: PrivacyFile,
    #[serde(default)]
    storage: Option<StorageFile>,
    #[serde(default)]
    sync: SyncFile,
    #[serde(default)]
    debug: DebugFile,
    #[serde(default)]
    access: Option<AccessFile>,
    #[serde(default)]
    web: Option<WebFile>,
    #[serde(default)]
    metrics: Option<MetricsFile>,
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

/// The largest `[sync] max_clock_drift_s`: a day. A larger bound would let
/// a peer's wrong clock stamp writes that win over a day of this office's.
pub const MAX_CLOCK_DRIFT_S: u64 = 86_400;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncFile {
    #[serde(default)]
    max_clock_drift_s: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DebugFile {
    #[serde(default)]
    clock_offset_ms: i64,
    #[serde(default)]
    max_db_pages: Option<u64>,
    #[serde(default)]
    max_held: Option<u64>,
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
    crate::fsutil::write_atomically(config_file, new_text.as_bytes(), None).map_err(|source| {
        ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        }
    })
}

/// Removes the pinned peer `name` from the node config file, keeping
/// every comment; the result is validated before the atomic write. Returns
/// false (and writes nothing) if no such peer is pinned.
pub fn remove_peer(config_file: &Path, name: &str) -> Result<bool, ConfigError> {
    let text = read_text(config_file)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        ConfigError::at(config_file, &text, e.span(), e.message().trim().to_string())
    })?;
    let Some(peers) = doc
        .get_mut("peers")
        .and_then(|p| p.as_array_of_tables_mut())
    else {
        return Ok(false);
    };
    let Some(i) = peers
        .iter()
        .position(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
    else {
        return Ok(false);
    };
    peers.remove(i);
    if peers.is_empty() {
        doc.remove("peers");
    }
    let new_text = doc.to_string();
    let absolute = std::path::absolute(config_file).unwrap_or_else(|_| config_file.to_path_buf());
    NodeConfig::parse(&absolute, &new_text)?;
    crate::fsutil::write_atomically(config_file, new_text.as_bytes(), None).map_err(|source| {
        ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        }
    })?;
    Ok(true)
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
    crate::fsutil::write_atomically(config_file, new_text.as_bytes(), None).map_err(|source| {
        ConfigError::Read {
            path: config_file.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
