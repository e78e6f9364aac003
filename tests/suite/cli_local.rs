//! The file-only commands, run as the real binary: init, id, keygen,
//! check, peer add — including their refusals.

use std::path::Path;
use std::process::{Command, Output};

fn puente(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_puente"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run puente")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn init_then_id_print_the_same_fingerprint_and_init_refuses_to_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tijuana");
    let out = puente(&[
        "init",
        "--dir",
        path(&dir),
        "--name",
        "tijuana",
        "--listen",
        "127.0.0.1:7441",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fp = stdout(&out).lines().last().unwrap().to_string();
    assert!(fp.starts_with("sha256:") && fp.len() == 71, "{fp}");
    let key = dir.join("certs/node.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config = dir.join("puente.toml");
    let id = puente(&["id", "--config", path(&config)]);
    assert!(id.status.success(), "{}", stderr(&id));
    assert_eq!(stdout(&id), format!("{fp}\n"));

    let before = std::fs::read(&key).unwrap();
    let again = puente(&["init", "--dir", path(&dir), "--name", "tijuana"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn keygen_writes_a_private_identity_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mx.key");
    let out = puente(&["keygen", "--out", path(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("# public key: {recipient}")));
    assert!(text.lines().last().unwrap().starts_with("AGE-SECRET-KEY-1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = puente(&["keygen", "--out", path(&file)]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn check_prints_the_schema_hash_and_peer_add_keeps_comments() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert!(
        puente(&[
            "init",
            "--dir",
            path(&a),
            "--name",
            "tijuana",
            "--listen",
            "127.0.0.1:7441"
        ])
        .status
        .success()
    );
    assert!(
        puente(&[
            "init",
            "--dir",
            path(&b),
            "--name",
            "san-diego",
            "--listen",
            "127.0.0.1:7442"
        ])
        .status
        .success()
    );
    let config_a = a.join("puente.toml");
    let check = puente(&["check", "--config", path(&config_a)]);
    assert!(check.status.success(), "{}", stderr(&check));
    let text = stdout(&check);
    let hash_line = text
        .lines()
        .find(|l| l.starts_with("schema hash: "))
        .unwrap();
    assert_eq!(hash_line.len(), "schema hash: ".len() + 64);
    // The same built-in schema gives the same hash at the other node.
    let check_b = stdout(&puente(&[
        "check",
        "--config",
        path(&b.join("puente.toml")),
    ]));
    assert!(check_b.contains(hash_line));

    let fp_b = stdout(&puente(&["id", "--config", path(&b.join("puente.toml"))]))
        .trim()
        .to_string();
    let add = puente(&[
        "peer",
        "add",
        "--config",
        path(&config_a),
        "--name",
        "san-diego",
        "--fingerprint",
        &fp_b,
        "--address",
        "127.0.0.1:7442",
    ]);
    assert!(add.status.success(), "{}", stderr(&add));
    let edited = std::fs::read_to_string(&config_a).unwrap();
    assert!(
        edited.contains("# QUIC (UDP) address other offices dial."),
        "{edited}"
    );
    assert!(edited.contains(&fp_b) && edited.contains("[[peers]]"));
    let check = puente(&["check", "--config", path(&config_a)]);
    assert!(
        stdout(&check).contains("1 pinned peer"),
        "{}",
        stdout(&check)
    );
    let all = format!("{}{}", stdout(&check), stderr(&check));
    assert!(!all.contains("do not list"), "{all}");
    // A node the schema's rights do not name is warned about.
    let c = tmp.path().join("c");
    let init = puente(&[
        "init",
        "--dir",
        path(&c),
        "--name",
        "ensenada",
        "--listen",
        "127.0.0.1:7443",
    ]);
    assert!(init.status.success(), "{}", stderr(&init));
    let check = puente(&["check", "--config", path(&c.join("puente.toml"))]);
    let all = format!("{}{}", stdout(&check), stderr(&check));
    assert!(
        all.contains("this node is named `ensenada`, which the schema's offices (san-diego, tijuana) do not list"),
        "{all}"
    );

    // A malformed fingerprint is refused and the file is unchanged.
    let bad = puente(&[
        "peer",
        "add",
        "--config",
        path(&config_a),
        "--name",
        "x",
        "--fingerprint",
        "sha256:12",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("puente id"), "{}", stderr(&bad));
    assert_eq!(std::fs::read_to_string(&config_a).unwrap(), edited);
}

#[test]
fn bad_configs_give_one_line_errors_naming_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    assert!(
        puente(&["init", "--dir", path(&dir), "--name", "tijuana"])
            .status
            .success()
    );
    let config = dir.join("puente.toml");
    let original = std::fs::read_to_string(&config).unwrap();

    let cases: Vec<(String, &str)> = vec![
        (
            original.replace(
                "log_level = \"info\"",
                "log_level = \"info\"\ncolour = \"red\"",
            ),
            "colour",
        ),
        (
            original.replace("name = \"tijuana\"", "name = \"tijuana"),
            "puente.toml:",
        ),
        (
            original.replace("listen = \"0.0.0.0:7441\"", "listen = \"everywhere\""),
            "listen",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(&config, &text).unwrap();
        let out = puente(&["check", "--config", path(&config)]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(needle) && err.contains("puente.toml:"),
            "{err}"
        );
    }
    std::fs::write(&config, &original).unwrap();

    // The schema: a sealed column naming an unknown group.
    let schema = dir.join("schema.toml");
    let s = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        s.replace("phone = { sealed = \"mx\" }", "phone = { sealed = \"us\" }"),
    )
    .unwrap();
    let out = puente(&["check", "--config", path(&config)]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("schema.toml:")
            && err.contains("residents.columns.phone")
            && err.contains("`us`"),
        "{err}"
    );

    let missing = puente(&["check", "--config", path(&tmp.path().join("nope.toml"))]);
    assert!(
        stderr(&missing).contains("nope.toml"),
        "{}",
        stderr(&missing)
    );
}
