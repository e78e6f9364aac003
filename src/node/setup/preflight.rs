//! Everything a node needs before it can run, loaded and checked once:
//! node config, schema, TLS identity, age identities, the replica key.
//!
//! Owns: `Checked` and the warnings an admin should see (`puente check`
//! prints them, `puente run` logs them).
//! Must not: open the replica or any socket.

use std::path::Path;
use std::sync::Arc;

use crate::config::{ConfigError, NodeConfig, Schema};
use crate::node::identity::{self, IdentityError, NodeIdentity};
use crate::node::replica_key::{self, ReplicaKeyError};
use crate::seal::{KeyError, Keyring};
use crate::store::AtRest;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    ReplicaKey(#[from] ReplicaKeyError),
    #[error("{}: a pinned peer (`{peer}`) has this node's own fingerprint; pin the other office's (`puente id` on that node)", file.display())]
    PinnedSelf {
        file: std::path::PathBuf,
        peer: String,
    },
}

pub struct Checked {
    pub config: NodeConfig,
    pub schema: Arc<Schema>,
    pub keyring: Arc<Keyring>,
    pub identity: NodeIdentity,
    /// How the replica is stored (with its key, if encrypted).
    pub at_rest: AtRest,
    pub warnings: Vec<String>,
}

/// Offices the schema's rights do not list: this node (its own writes are
/// then held to what every office may) and its peers (their changes too).
fn office_warnings(config: &NodeConfig, schema: &Schema) -> Vec<String> {
    let rights = &schema.rights;
    if !rights.is_active() {
        return Vec::new();
    }
    let listed = rights.offices().join(", ");
    let mut out = Vec::new();
    if !rights.knows(&config.name) {
        out.push(format!(
            "this node is named `{}`, which the schema's offices ({listed}) do not list: it may only make the writes every office may; name it as the schema does, or add it to `offices` in the schema at every office",
            config.name
        ));
    }
    for p in config.peers.iter().filter(|p| !rights.knows(&p.name)) {
        out.push(format!(
            "peer `{}` is not one of the schema's offices ({listed}): its changes are held to what every office may; name the peer as the schema does (`puente peer add --name`)",
            p.name
        ));
    }
    out
}

pub fn load(config: &Path) -> Result<Checked, PreflightError> {
    let config = NodeConfig::load(config)?;
    let schema = Arc::new(Schema::load(&config.schema_file)?);
    let identity = identity::load(&config.tls_cert, &config.tls_key)?;
    let (keyring, mut warnings) = Keyring::load(&config.identities)?;
    let at_rest = replica_key::at_rest(&config)?;
    if !at_rest.is_encrypted() {
        warnings.push(replica_key::UNENCRYPTED_WARNING.to_string());
    }
    for p in crate::node::storage::leftovers(&config) {
        warnings.push(format!(
            "{} was left by an interrupted `puente storage encrypt` or `rekey`; stop the daemon and run that command again to finish",
            p.display()
        ));
    }
    warnings.extend(keyring.unused_warnings(schema.groups.values()));
    for group in schema.groups.values() {
        if group.recipients.is_empty() {
            warnings.push(format!(
                "group `{}` has no recipients yet: sealed writes are refused until one is added to the schema",
                group.name
            ));
        }
    }
    if let Some(p) = config
        .peers
        .iter()
        .find(|p| p.fingerprint == identity.fingerprint)
    {
        return Err(PreflightError::PinnedSelf {
            file: config.file.clone(),
            peer: p.name.clone(),
        });
    }
    warnings.extend(office_warnings(&config, &schema));
    // Names in [access] that this machine does not know grant nothing.
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let (_, unknown) = crate::access::socket_roles::Access::resolve(
        &config.access,
        &read("/etc/passwd"),
        &read("/etc/group"),
        0,
        config.file.clone(),
    );
    warnings.extend(unknown);
    if let Some(web) = &config.web
        && web.listen.ip().is_unspecified()
        && web.url.is_none()
    {
        warnings.push(format!(
            "{}: [web] listens on {} without `url`: the links `puente staff add` prints will name that address, which staff cannot open; set [web] url to the address they type (e.g. https://agenda.tijuana.example.org)",
            config.file.display(),
            web.listen
        ));
    }
    if !config.data_dir.is_dir() {
        warnings.push(format!(
            "data dir {} does not exist yet; create it before `puente run`",
            config.data_dir.display()
        ));
    }
    Ok(Checked {
        config,
        schema,
        keyring: Arc::new(keyring),
        identity,
        at_rest,
        warnings,
    })
}
