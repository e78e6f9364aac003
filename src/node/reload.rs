//! Live reload (`systemctl reload puente`, SIGHUP): which changes of the
//! node config and the schema a running node takes, which need a restart,
//! which are refused — and putting the accepted ones in force on the node
//! and its replica.
//!
//! Owns: `plan`, the comparison of the running config and schema with the
//! new ones, without IO (peers added, removed or changed; identities;
//! recipients; log level; settings that need a restart, said in words),
//! and `Node::reload`, which swaps the config, schema and keyring in the
//! node and the store. The sync layer follows the new peer list
//! (`SyncHandle::apply_peers`, called by the daemon).
//! Must not: read files (the daemon's preflight does), or accept a schema
//! whose tables, columns or privacy classes changed: that is a migration
//! (issue 13 hooks it in here, in place of the refusal).

use std::sync::Arc;

use crate::config::{NodeConfig, PeerConfig, Schema};
use crate::node::Node;
use crate::seal::Keyring;

/// What a reload changes, in words and as flags for the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Lines for the log and status, one per change or setting left alone.
    pub messages: Vec<String>,
    /// The peer list changed: pins, dialers and connections follow it.
    pub peers_changed: bool,
    /// Names of peers removed or re-pinned (their connections close).
    pub peers_dropped: Vec<String>,
    /// The schema's recipients changed (sessions reconnect so that each
    /// side's Hello carries the new schema).
    pub recipients_changed: bool,
    /// The identity files changed.
    pub identities_changed: bool,
    /// The log level to set, when it changed.
    pub log_level: Option<String>,
}

fn same_peer(a: &PeerConfig, b: &PeerConfig) -> bool {
    a.name == b.name && a.fingerprint == b.fingerprint && a.address == b.address
}

/// Compares the running config and schema with the new ones. Refuses (with
/// the sentence to show) a schema whose layout changed.
pub fn plan(
    old: &NodeConfig,
    old_schema: &Schema,
    new: &NodeConfig,
    new_schema: &Schema,
) -> Result<Plan, String> {
    if old_schema.layout_hash() != new_schema.layout_hash() {
        let differences = crate::config::diff::differences(
            &old_schema.canonical(),
            &new_schema.canonical(),
            "the reloaded file",
        );
        return Err(format!(
            "{}: the schema's tables, columns or privacy classes changed ({}); a reload applies recipient changes only: restart to apply table/column changes (systemctl restart puente)",
            new.schema_file.display(),
            differences.join("; ")
        ));
    }
    let mut plan = Plan::default();
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
        plan.recipients_changed = true;
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
    if plan.messages.is_empty() {
        plan.messages.push("nothing changed".into());
    }
    Ok(plan)
}

impl Node {
    /// Puts a reloaded config, schema and keyring in force: checks the plan
    /// (a layout change is refused and nothing changes), then swaps the
    /// schema and keyring in the replica and the config and schema in the
    /// node. Sync follows through the daemon (`SyncHandle::apply_peers`).
    pub async fn reload(
        self: &Arc<Self>,
        config: NodeConfig,
        schema: Arc<Schema>,
        keyring: Arc<Keyring>,
    ) -> Result<Plan, String> {
        let plan = plan(&self.config(), &self.schema(), &config, &schema)?;
        let for_store = schema.clone();
        self.with_store(move |s| s.set_schema_and_keyring(for_store, keyring))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
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
        let p = plan(&config(CONFIG), &schema(""), &config(CONFIG), &schema("")).unwrap();
        assert_eq!(p.messages, ["nothing changed"]);
        assert!(!p.peers_changed && !p.recipients_changed && p.log_level.is_none());
    }

    #[test]
    fn peers_identities_recipients_and_log_level_apply_live() {
        let new = CONFIG.replace(
            "address = \"127.0.0.1:7442\"",
            "address = \"127.0.0.1:7442\"\n[[peers]]\nname = \"ensenada\"\nfingerprint = \"sha256:2222222222222222222222222222222222222222222222222222222222222222\"",
        )
        .replace("schema = \"schema.toml\"", "schema = \"schema.toml\"\nlog_level = \"debug\"\n[privacy]\nidentities = [\"keys/mx.key\"]");
        let more = schema(", \"age1s3qh2ae5svz38yeexsl600cyzq6663seetmnuwjt6vzu9w0lef9qjaraxf\"");
        let p = plan(&config(CONFIG), &schema(""), &config(&new), &more).unwrap();
        assert!(p.peers_changed && p.peers_dropped.is_empty());
        assert!(p.recipients_changed && p.identities_changed);
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
        let p = plan(&config(CONFIG), &schema(""), &config(&removed), &schema("")).unwrap();
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
        )
        .unwrap();
        assert_eq!(p.peers_dropped, ["san-diego"]);
        assert!(p.messages[0].contains("re-pinned"), "{:?}", p.messages);
    }

    #[test]
    fn a_layout_change_is_refused_and_restart_settings_are_named() {
        let mut wider = crate::config::schema::DEFAULT_SCHEMA.replace(
            "title = \"shared\"",
            "title = \"shared\"\nroom = \"shared\"",
        );
        wider = wider.replace(
            "mx = []",
            "mx = [\"age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw\"]",
        );
        let wider = Schema::parse(Path::new("schema.toml"), &wider).unwrap();
        let e = plan(&config(CONFIG), &schema(""), &config(CONFIG), &wider).unwrap_err();
        assert!(
            e.contains("restart to apply table/column changes") && e.contains("room"),
            "{e}"
        );
        let moved = CONFIG.replace("127.0.0.1:7441", "127.0.0.1:7449");
        let p = plan(&config(CONFIG), &schema(""), &config(&moved), &schema("")).unwrap();
        assert!(
            p.messages[0].starts_with("listen changed: not applied by a reload"),
            "{:?}",
            p.messages
        );
    }
}
