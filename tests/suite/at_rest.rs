//! The replica encrypted at rest, from the outside: `puente init` makes an
//! encrypted node; every bad key situation is a one-line error naming the
//! key's source that writes nothing (bytes and mtimes of every file of the
//! node compared before and after); a systemd credential works in place of
//! the key file without the key reaching the process's arguments or
//! environment; a SQLCipher client nobody here wrote (the Python
//! `sqlcipher3` package, which `tools/test` installs) reads a shared column
//! with the key, and fails with a wrong key or none.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use puente::clock::{SystemClock, WallClock};
use puente::config::{NodeConfig, Schema};
use puente::node::replica_key;
use puente::seal::Keyring;
use puente::store::{AtRest, ReplicaKey, Store, StoreError};
use support::{cells, files_under};

const BIN: &str = env!("CARGO_BIN_EXE_puente");

fn puente(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "off")
        .env_remove(replica_key::CREDENTIALS_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run puente")
}

/// A node made by `puente init` in `root/NAME`; returns its config file.
fn init(root: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let dir = root.join(name);
    let mut args = vec![
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend(extra);
    let out = puente(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("puente.toml")
}

/// Opens the node's replica the way its config says and writes one event.
fn write_event(config: &Path, id: &str, title: &str) -> Option<String> {
    let cfg = NodeConfig::load(config).unwrap();
    let at_rest = replica_key::at_rest(&cfg).unwrap();
    let mut store = Store::open(
        &cfg.database_path(),
        puente::store::StoreOptions::new(
            Arc::new(Schema::load(&cfg.schema_file).unwrap()),
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&at_rest),
    )
    .unwrap();
    store
        .put(
            "outreach_events",
            id,
            // The shipped schema requires a start.
            cells(&[("title", title), ("starts_at", "2030-03-04T10:00:00-08:00")]),
        )
        .unwrap();
    store.cipher_version().map(str::to_string)
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
            (f, (bytes, mtime))
        })
        .collect()
}

/// `puente run` fails at once with one line on stderr that contains every
/// `expected` piece, and leaves every file of the node as it was.
fn refused(config: &Path, env: &[(&str, &Path)], expected: &[&str]) -> String {
    let dir = config.parent().unwrap();
    let before = snapshot(dir);
    let out = puente(&["run", "--config", config.to_str().unwrap()], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the daemon started: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    for piece in expected {
        assert!(stderr.contains(piece), "missing `{piece}` in: {stderr}");
    }
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files were created or removed"
    );
    for (file, was) in &before {
        assert!(after[file] == *was, "{} was modified", file.display());
    }
    stderr
}

fn key_file(config: &Path) -> PathBuf {
    config.parent().unwrap().join(replica_key::DEFAULT_KEY_FILE)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The config text with its `[storage]` section replaced by `storage`.
fn with_storage(config: &Path, storage: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let kept: String = match text.find("[storage]") {
        Some(start) => {
            let rest = &text[start..];
            let end = rest.find("\n\n").map_or(text.len(), |e| start + e + 1);
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text,
    };
    std::fs::write(config, format!("{kept}\n{storage}")).unwrap();
}

#[test]
fn init_encrypts_by_default_and_only_an_explicit_flag_makes_a_plain_node() {
    let tmp = tempfile::tempdir().unwrap();
    let config = init(tmp.path(), "tijuana", &[]);
    let out = puente(&["check", "--config", config.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("at rest: encrypted, key file"), "{text}");
    assert!(!text.contains("NOT encrypted"), "{text}");
    assert!(write_event(&config, "ev-1", "Clínica legal").is_some());
    let db = std::fs::read(config.parent().unwrap().join("data/puente.db")).unwrap();
    assert_ne!(&db[..16], b"SQLite format 3\0");

    let plain = init(tmp.path(), "san-diego", &["--unencrypted"]);
    let out = puente(&["check", "--config", plain.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("at rest: NOT encrypted")
            && text.contains("warning: the replica is NOT encrypted at rest: anyone who copies the data dir can read it"),
        "{text}"
    );
    assert!(write_event(&plain, "ev-1", "Clínica legal").is_none());
    let db = std::fs::read(plain.parent().unwrap().join("data/puente.db")).unwrap();
    assert_eq!(&db[..16], b"SQLite format 3\0");
}

#[test]
fn every_bad_key_is_a_one_line_error_naming_its_source_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();

    // A missing key file, before the replica exists: nothing is created.
    let config = init(tmp.path(), "fresh", &[]);
    let key = key_file(&config);
    std::fs::remove_file(&key).unwrap();
    refused(&config, &[], &[&key.display().to_string(), "is missing"]);
    assert!(!config.parent().unwrap().join("data/puente.db").exists());

    // A missing key file for an existing replica.
    let config = init(tmp.path(), "missing", &[]);
    write_event(&config, "ev-1", "Taller");
    let key = key_file(&config);
    std::fs::remove_file(&key).unwrap();
    refused(&config, &[], &[&key.display().to_string(), "is missing"]);

    // A wrong key (a valid key file, not this replica's).
    let config = init(tmp.path(), "wrong", &[]);
    write_event(&config, "ev-1", "Taller");
    let key = key_file(&config);
    std::fs::remove_file(&key).unwrap();
    let other = ReplicaKey::generate();
    replica_key::write_new(&key, &other).unwrap();
    let e = refused(
        &config,
        &[],
        &[
            &format!("with the key file {}", key.display()),
            "the key is wrong",
        ],
    );
    assert!(!e.contains(other.to_hex().as_str()));

    // A key file that others may read.
    let config = init(tmp.path(), "loose", &[]);
    write_event(&config, "ev-1", "Taller");
    let key = key_file(&config);
    set_mode(&key, 0o644);
    refused(
        &config,
        &[],
        &[&key.display().to_string(), "mode 0644", "chmod 600"],
    );

    // A credential that is not there: no credentials folder at all, then
    // a folder without it.
    let config = init(tmp.path(), "credential", &[]);
    write_event(&config, "ev-1", "Taller");
    with_storage(
        &config,
        "[storage]\nkey_credential = \"puente-replica-key\"\n",
    );
    refused(
        &config,
        &[],
        &["`puente-replica-key`", "$CREDENTIALS_DIRECTORY is not set"],
    );
    let creds = tmp.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    refused(
        &config,
        &[(replica_key::CREDENTIALS_ENV, &creds)],
        &["`puente-replica-key`", "is not in"],
    );

    // An encrypted replica where the config names no key (what a build
    // without encryption would also see: not a plain SQLite file).
    let config = init(tmp.path(), "unnamed", &[]);
    write_event(&config, "ev-1", "Taller");
    with_storage(&config, "");
    refused(
        &config,
        &[],
        &["is not a plain SQLite database", "[storage] key_file"],
    );

    // A plain replica where the config names a key.
    let config = init(tmp.path(), "plain", &["--unencrypted"]);
    write_event(&config, "ev-1", "Taller");
    replica_key::write_new(&key_file(&config), &ReplicaKey::generate()).unwrap();
    with_storage(&config, "[storage]\nkey_file = \"keys/replica.key\"\n");
    refused(
        &config,
        &[],
        &["is NOT encrypted", "key file", "puente storage encrypt"],
    );
}

#[test]
fn a_build_that_opens_without_a_key_refuses_an_encrypted_replica_and_writes_nothing() {
    // Every build of puente has SQLCipher; one that opened the replica
    // without a key would take the plain path below (as release 0.1.0
    // does: it checks the SQLite header first and refuses).
    let tmp = tempfile::tempdir().unwrap();
    let config = init(tmp.path(), "tijuana", &[]);
    write_event(&config, "ev-1", "Taller");
    let cfg = NodeConfig::load(&config).unwrap();
    let before = snapshot(&cfg.data_dir);
    let e = Store::open(
        &cfg.database_path(),
        puente::store::StoreOptions::new(
            Arc::new(Schema::load(&cfg.schema_file).unwrap()),
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&AtRest::Plain),
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::NotSqlite { .. }), "{e}");
    assert!(e.to_string().contains("name its key"), "{e}");
    assert!(snapshot(&cfg.data_dir) == before);
}

/// Waits until the daemon at `config` answers on its socket.
fn wait_ready(config: &Path, child: &mut std::process::Child) -> puente::node::status::Status {
    let socket = NodeConfig::load(config).unwrap().admin_socket;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Ok(s) = runtime.block_on(puente::admin::Client::new(&socket).status()) {
            return s;
        }
        assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_systemd_credential_holds_the_key_and_the_key_stays_out_of_arguments_and_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let config = init(tmp.path(), "tijuana", &[]);
    write_event(&config, "ev-1", "Taller");
    let key = replica_key::load_file(&key_file(&config)).unwrap();
    // What systemd does for LoadCredentialEncrypted=puente-replica-key:…:
    // the decrypted credential, read-only, in a private folder named by
    // $CREDENTIALS_DIRECTORY.
    let creds = tmp.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let credential = creds.join("puente-replica-key");
    std::fs::copy(key_file(&config), &credential).unwrap();
    set_mode(&credential, 0o400);
    std::fs::remove_file(key_file(&config)).unwrap();
    with_storage(
        &config,
        "[storage]\nkey_credential = \"puente-replica-key\"\n",
    );

    let log = std::fs::File::create(tmp.path().join("daemon.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .env(replica_key::CREDENTIALS_ENV, &creds)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = wait_ready(&config, &mut child);
    let hex = key.to_hex();
    let proc = |what: &str| std::fs::read(format!("/proc/{}/{what}", child.id())).unwrap();
    let (cmdline, environ) = (proc("cmdline"), proc("environ"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.at_rest.encrypted);
    assert_eq!(status.at_rest.key_source.as_deref(), Some("credential"));
    assert!(
        status
            .at_rest
            .cipher
            .as_deref()
            .is_some_and(|c| c.starts_with("4."))
    );
    for (what, bytes) in [
        ("arguments", cmdline),
        ("environment", environ),
        ("log", std::fs::read(tmp.path().join("daemon.log")).unwrap()),
    ] {
        assert!(
            !puente::lab::scan::contains(&bytes, hex.as_str()),
            "the key is in the daemon's {what}"
        );
    }
    // The scan can see: the credential folder holds the key as text.
    assert!(puente::lab::scan::contains(
        &std::fs::read(&credential).unwrap(),
        hex.as_str()
    ));
}

/// Runs the Python `sqlcipher3` client on `db` with `key` on its stdin
/// (empty: no key), giving the page size puente uses (or not), and returns
/// (success, stdout, stderr).
fn python_sqlcipher(db: &Path, key: &str, page_size: bool, sql: &str) -> (bool, String, String) {
    const SCRIPT: &str = r#"
import sys
import sqlcipher3
key = sys.stdin.readline().strip()
con = sqlcipher3.connect(sys.argv[1])
if key:
    con.execute("PRAGMA key = \"x'%s'\"" % key)
if sys.argv[3]:
    con.execute("PRAGMA cipher_page_size = %s" % sys.argv[3])
for row in con.execute(sys.argv[2]):
    print(row[0])
"#;
    let size = if page_size {
        puente::store::cipher::CIPHER_PAGE_SIZE.to_string()
    } else {
        String::new()
    };
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, db.to_str().unwrap(), sql, &size])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (tools/test installs it with the sqlcipher3-binary package)");
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{key}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("No module named 'sqlcipher3'"),
        "the Python sqlcipher3 package is missing: `python3 -m pip install sqlcipher3-binary` (tools/test does)"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn a_standard_sqlcipher_client_reads_a_shared_column_with_the_key_and_nothing_without() {
    let tmp = tempfile::tempdir().unwrap();
    let config = init(tmp.path(), "san-diego", &[]);
    write_event(&config, "ev-2026-12-01", "Clínica legal: asilo y citas");
    let cfg = NodeConfig::load(&config).unwrap();
    let db = cfg.database_path();
    // The key as the admin reads it from the key file.
    let key = std::fs::read_to_string(key_file(&config)).unwrap();
    let sql = "SELECT title FROM outreach_events WHERE id = 'ev-2026-12-01'";
    let (ok, out, err) = python_sqlcipher(&db, key.trim(), true, sql);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Clínica legal: asilo y citas");
    let (ok, out, err) = python_sqlcipher(&db, key.trim(), true, "PRAGMA cipher_version");
    assert!(ok && out.starts_with("4."), "{out}{err}");
    // SQLCipher 4 defaults otherwise: AES-256 with HMAC-SHA512 on pages
    // of 8 KiB.
    let (ok, out, err) = python_sqlcipher(&db, key.trim(), true, "PRAGMA cipher_hmac_algorithm");
    assert!(ok && out.trim() == "HMAC_SHA512", "{out}{err}");
    let (_, out, _) = python_sqlcipher(&db, key.trim(), true, "PRAGMA page_size");
    assert_eq!(out.trim(), "8192");

    let no_page_size = python_sqlcipher(&db, key.trim(), false, sql);
    for (ok, out, err) in [
        python_sqlcipher(&db, &ReplicaKey::generate().to_hex(), true, sql),
        python_sqlcipher(&db, "", true, sql),
        // The right key with SQLCipher's default page size: the docs say
        // to give the page size.
        no_page_size,
    ] {
        assert!(!ok, "read: {out}");
        assert!(err.contains("file is not a database"), "{err}");
    }
}
