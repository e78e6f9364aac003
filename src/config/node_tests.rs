//! Tests of `config::node` (a separate file to keep node.rs short).
//!
//! Owns: parsing node configs that are right, wrong and at their limits,
//! and the in-place edits of `peer add`, `peer remove` and `[storage]`.
//! Must not: write outside a temp dir.

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
        assert_eq!(tj.office_zone().1, "America/Tijuana");
        assert_eq!(sd.office_zone().1, "America/Los_Angeles");
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

#[test]
fn the_office_time_zone_is_one_and_known() {
    let top = format!("time_zone = \"America/Tijuana\"\n{}", sample());
    let c = NodeConfig::parse(Path::new("/etc/puente/puente.toml"), &top).unwrap();
    assert_eq!(c.time_zone.as_deref(), Some("America/Tijuana"));
    assert_eq!(c.office_zone().1, "America/Tijuana");
    // The older spelling under [web] still names it.
    let web = format!("{}\n[web]\ntime_zone = \"America/Los_Angeles\"\n", sample());
    let c = NodeConfig::parse(Path::new("/etc/puente/puente.toml"), &web).unwrap();
    assert_eq!(c.office_zone().1, "America/Los_Angeles");
    // Two zones that disagree, or one that does not exist, are refused.
    let both = format!(
        "time_zone = \"America/Tijuana\"\n{}\n[web]\ntime_zone = \"America/Los_Angeles\"\n",
        sample()
    );
    let e = error_of(&both);
    assert!(
        e.contains("an office has one time zone") && e.contains("remove time_zone from [web]"),
        "{e}"
    );
    let e = error_of(&format!("time_zone = \"Mars/Olympus\"\n{}", sample()));
    assert!(
        e.starts_with("/x/node.toml:1:")
            && e.contains("time_zone: `Mars/Olympus` is not a time zone"),
        "{e}"
    );
}
