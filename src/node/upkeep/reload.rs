//! Live reload (`systemctl reload puente`, SIGHUP): which changes of the
//! node config and the schema a running node takes, which need a restart,
//! which are refused — and putting the accepted ones in force on the node
//! and its replica.
//!
//! Owns: `plan`, the comparison of the running config and schema with the
//! new ones, without IO (peers added, removed or changed; identities;
//! recipients; log level; settings that need a restart, said in words),
//! and `Node::reload`, which has the replica adopt the schema as at start
//! (`Store::reload_schema`: additive changes and shared → sealed; a drop,
//! an unseal, a new seal group or type refused in the words of `puente
//! schema plan`, the running schema and config kept), then swaps the
//! config and schema in the node. The sync layer follows the new peer list
//! (`SyncHandle::apply_peers`) and reconnects every session after a schema
//! change (the daemon calls both).
//! Must not: read files (the daemon's preflight does).

use std::sync::Arc;

use crate::config::{NodeConfig, PeerConfig, Schema};
use crate::node::Node;
use crate::seal::Keyring;
use crate::store::StoreError;

/// What a reload changes, in words and as flags for the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Lines for the log and status, one per change or setting left alone.
    pub messages: Vec<String>,
    /// The peer list changed: pins, dialers and connections follow it.
    pub peers_changed: bool,
    /// Names of peers removed or re-pinned (their connections close).
    pub peers_dropped: Vec<String>,
    /// The schema changed (recipients, tables or columns): sessions
    /// reconnect so that each side's Hello carries the new schema.
    pub schema_changed: bool,
    /// The identity files changed.
    pub identities_changed: bool,
    /// The log level to set, when it changed.
    pub log_level: Option<String>,
}

/// The first 16 hex digits of a schema hash (`puente check` prints it
/// whole, `puente status --json` as `schema_hash`).
fn short_hash(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

fn same_peer(a: &PeerConfig, b: &PeerConfig) -> bool {
    a.name == b.name && a.fingerprint == b.fingerprint && a.address == b.address
}

/// Compares the running config and schema with the new ones. What the
/// replica makes of a changed schema's tables and columns is the store's
/// to say (`Node::reload` adds it).
pub fn plan(
    old: &NodeConfig,
    old_schema: &Schema,
    new: &NodeConfig,
    new_schema: &Schema,
) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    for p in &new.peers {
        match old.peers.iter().find(|o| o.name == p.name) {
            None => plan
                .messages
                .push(format!("peer {} pinned ({})", p.name, p.fingerprint)),
            Some(o) if same_peer(o, p) => {}
            Some(o) => {
                plan.peers_dropped.push(p.name.clone());
                let what = if o.fingerprint != p.fingerprint {
                    format!("re-pinned to {}", p.fingerprint)
                } else {
                    format!(
                        "now dialled at {}",
                        p.address.as_deref().unwrap_or("no address (it dials us)")
                    )
                };
                plan.messages.push(format!("peer {} {what}", p.name));
            }
        }
    }
    for o in &old.peers {
        if !new.peers.iter().any(|p| p.name == o.name) {
            plan.peers_dropped.push(o.name.clone());
            plan.messages.push(format!(
                "peer {} removed: its connection is closed and it is refused from now on",
                o.name
            ));
        }
    }
    plan.peers_changed = new.peers.len() != old.peers.len()
        || new
            .peers
            .iter()
            .any(|p| !old.peers.iter().any(|o| same_peer(o, p)));
    if old_schema.hash() != new_schema.hash() {
        plan.schema_changed = true;
        plan.messages.push(format!(
            "schema hash {} (was {}): sessions reconnect so that peers see the new schema; every office needs the same file",
            short_hash(new_schema.hash()),
            short_hash(old_schema.hash())
        ));
        for (name, group) in &new_schema.groups {
            let before = old_schema
                .group(name)
                .map(|g| g.recipient_keys.clone())
                .unwrap_or_default();
            if before != group.recipient_keys {
                let added = group
                    .recipient_keys
                    .iter()
                    .filter(|k| !before.contains(k))
                    .count();
                let removed = before
                    .iter()
                    .filter(|k| !group.recipient_keys.contains(k))
                    .count();
                plan.messages.push(format!(
                    "group {name}: {added} recipient(s) added, {removed} removed; new sealed values go to the new set (`puente reseal` moves the existing ones)"
                ));
            }
        }
    }
    if old.identities != new.identities {
        plan.identities_changed = true;
        plan.messages.push(format!(
            "identities: {} file(s) now ({} before)",
            new.identities.len(),
            old.identities.len()
        ));
    }
    if old.log_level != new.log_level {
        plan.log_level = Some(new.log_level.clone());
        plan.messages.push(format!("log level: {}", new.log_level));
    }
    let restart = [
        ("name", old.name != new.name),
        ("listen", old.listen != new.listen),
        ("data_dir", old.data_dir != new.data_dir),
        ("admin_socket", old.admin_socket != new.admin_socket),
        (
            "schema (the file's path)",
            old.schema_file != new.schema_file,
        ),
        (
            "[tls]",
            old.tls_cert != new.tls_cert || old.tls_key != new.tls_key,
        ),
        ("[storage]", old.replica_key != new.replica_key),
        ("[access]", old.access != new.access),
        ("[web]", old.web != new.web),
        (
            "[debug]",
            old.clock_offset_ms != new.clock_offset_ms
                || old.max_db_pages != new.max_db_pages
                || old.protocols != new.protocols,
        ),
    ];
    for (what, changed) in restart {
        if changed {
            plan.messages.push(format!(
                "{what} changed: not applied by a reload; restart to apply it (systemctl restart puente)"
            ));
        }
    }
    plan
}

impl Node {
    /// Puts a reloaded config, schema and keyring in force: the replica
    /// takes the keyring and adopts the schema (a change it may not make
    /// by itself is refused, and then nothing changes: the running config,
    /// schema and keyring stay), then the node swaps its config and
    /// schema. Sync follows through the daemon.
    pub async fn reload(
        self: &Arc<Self>,
        config: NodeConfig,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
    ) -> Result<ReloadPlan, String> {
        let mut plan = plan(&self.config(), &self.schema(), &config, &schema);
        let for_store = schema.clone();
        let node = self.clone();
        let (planned, adopted) = self
            .with_store(move |s| {
                let planned = s.schema_plan(&for_store);
                let adopted = s.reload_schema(for_store, keyring);
                if adopted.is_ok() {
                    node.refresh_after_reload(s);
                }
                (planned, adopted)
            })
            .await
            .map_err(|e| e.to_string())?;
        let file = config.schema_file.display().to_string();
        match adopted {
            Ok(done) => plan
                .messages
                .extend(done.describe().into_iter().map(|c| format!("schema: {c}"))),
            Err(StoreError::SchemaChangeRefused { why, .. }) => {
                let changes = planned.map(|p| p.describe()).unwrap_or_default();
                return Err(format!(
                    "{file}: a reload adopts additive schema changes only; adopting this schema would {}. {why}. The running schema is kept",
                    changes.join("; ")
                ));
            }
            Err(e) => return Err(format!("{file}: {e}. The running schema is kept")),
        }
        if plan.messages.is_empty() {
            plan.messages.push("nothing changed".into());
        }
        self.swap_config(config, schema);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
name = "tijuana"
listen = "127.0.0.1:7441"
data_dir = "data"
admin_socket = "admin.sock"
schema = "schema.toml"
[tls]
cert = "c"
key = "k"
[[peers]]
name = "san-diego"
fingerprint = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
address = "127.0.0.1:7442"
"#;

    fn config(text: &str) -> NodeConfig {
        NodeConfig::parse(Path::new("/etc/puente/puente.toml"), text).unwrap()
    }

    fn schema(extra: &str) -> Schema {
        let text = crate::config::schema::DEFAULT_SCHEMA.replace(
            "mx = []",
            &format!(
                "mx = [\"age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw\"{extra}]"
            ),
        );
        Schema::parse(Path::new("schema.toml"), &text).unwrap()
    }

    #[test]
    fn an_unchanged_reload_changes_nothing() {
        let p = plan(&config(CONFIG), &schema(""), &config(CONFIG), &schema(""));
        assert!(p.messages.is_empty(), "{:?}", p.messages);
        assert!(!p.peers_changed && !p.schema_changed && p.log_level.is_none());
    }

    #[test]
    fn peers_identities_recipients_and_log_level_apply_live() {
        let new = CONFIG.replace(
            "address = \"127.0.0.1:7442\"",
            "address = \"127.0.0.1:7442\"\n[[peers]]\nname = \"ensenada\"\nfingerprint = \"sha256:2222222222222222222222222222222222222222222222222222222222222222\"",
        )
        .replace("schema = \"schema.toml\"", "schema = \"schema.toml\"\nlog_level = \"debug\"\n[privacy]\nidentities = [\"keys/mx.key\"]");
        let more = schema(", \"age1s3qh2ae5svz38yeexsl600cyzq6663seetmnuwjt6vzu9w0lef9qjaraxf\"");
        let p = plan(&config(CONFIG), &schema(""), &config(&new), &more);
        assert!(p.peers_changed && p.peers_dropped.is_empty());
        assert!(p.schema_changed && p.identities_changed);
        assert_eq!(p.log_level.as_deref(), Some("debug"));
        let text = p.messages.join("\n");
        for want in [
            "peer ensenada pinned",
            "group mx: 1 recipient(s) added, 0 removed",
            "identities: 1 file(s)",
            "log level: debug",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }

    #[test]
    fn a_removed_or_repinned_peer_is_dropped() {
        let removed = CONFIG.split("[[peers]]").next().unwrap().to_string();
        let p = plan(&config(CONFIG), &schema(""), &config(&removed), &schema(""));
        assert_eq!(p.peers_dropped, ["san-diego"]);
        assert!(p.peers_changed);
        assert!(
            p.messages[0].contains("refused from now on"),
            "{:?}",
            p.messages
        );
        let repinned = CONFIG.replace("sha256:1111", "sha256:3333");
        let p = plan(
            &config(CONFIG),
            &schema(""),
            &config(&repinned),
            &schema(""),
        );
        assert_eq!(p.peers_dropped, ["san-diego"]);
        assert!(p.messages[0].contains("re-pinned"), "{:?}", p.messages);
    }

    #[test]
    fn a_layout_change_reconnects_sessions_and_restart_settings_are_named() {
        let mut wider = crate::config::schema::DEFAULT_SCHEMA.replace(
            "description = \"shared\"",
            "description = \"shared\"\nroom = \"shared\"",
        );
        wider = wider.replace(
            "mx = []",
            "mx = [\"age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw\"]",
        );
        let wider = Schema::parse(Path::new("schema.toml"), &wider).unwrap();
        // What the replica makes of the new column is the store's to say.
        let p = plan(&config(CONFIG), &schema(""), &config(CONFIG), &wider);
        assert!(p.schema_changed, "{p:?}");
        assert_eq!(p.messages.len(), 1, "{p:?}");
        assert!(p.messages[0].starts_with("schema hash "), "{p:?}");
        let moved = CONFIG.replace("127.0.0.1:7441", "127.0.0.1:7449");
        let p = plan(&config(CONFIG), &schema(""), &config(&moved), &schema(""));
        assert!(
            p.messages[0].starts_with("listen changed: not applied by a reload"),
            "{:?}",
            p.messages
        );
    }
}
