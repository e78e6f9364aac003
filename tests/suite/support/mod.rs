//! Shared helpers for integration tests: schemas with test keys, replicas in
//! temp dirs, syncing two stores directly, byte scans.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use puente::clock::{ManualClock, WallClock};
use puente::config::Schema;
use puente::seal::Keyring;
use puente::store::{Cursor, PeerRef, Store};
use puente::value::Plaintext;

/// A fixed test identity (never used outside tests) and its recipient.
pub const TEST_IDENTITY: &str =
    "AGE-SECRET-KEY-1W539HM490WMYDJZXZ03FYN0HLYEKX3MJLDMXG4HU8HJKD6JWJSTQMMKXT7";
pub const TEST_RECIPIENT: &str = "age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw";
/// A second (recovery) identity.
pub const RECOVERY_IDENTITY: &str =
    "AGE-SECRET-KEY-1KPCYU8THVPHV2VWMQUAUW0CH5AGMCPTSF0MTP6S50WVC2JXLRNPSJFA0R6";
pub const RECOVERY_RECIPIENT: &str =
    "age1s3qh2ae5svz38yeexsl600cyzq6663seetmnuwjt6vzu9w0lef9qjaraxf";

/// The built-in schema with the test recipients in group mx.
pub fn schema_text(recipients: &[&str]) -> String {
    let list = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    unrequired(puente::config::schema::DEFAULT_SCHEMA).replace("mx = []", &format!("mx = [{list}]"))
}

/// `schema` without its `required = true` marks: most tests write partial
/// events (a title alone, a description alone) to test sync, rights or
/// storage, not what a row must hold. The tests of required columns
/// (`required.rs`, `office_zone.rs`) use the shipped schema as it is.
pub fn unrequired(schema: &str) -> String {
    let text = schema
        .replace("title = { required = true }", "title = \"shared\"")
        .replace(", required = true }", " }");
    assert!(
        !text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("required = true")),
        "a `required = true` the test schema does not know how to drop"
    );
    text
}

pub fn schema(recipients: &[&str]) -> Arc<Schema> {
    Arc::new(Schema::parse(Path::new("schema.toml"), &schema_text(recipients)).unwrap())
}

/// Writes an identity file and returns a keyring holding it.
pub fn keyring_with(dir: &Path, secret: &str) -> Arc<Keyring> {
    let file = dir.join("mx.key");
    puente::node::fsutil::create_new_with_mode(&file, format!("{secret}\n").as_bytes(), 0o600)
        .unwrap();
    Arc::new(Keyring::load(&[file]).unwrap().0)
}

pub struct Replica {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub name: String,
}

impl Replica {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn peer_ref(&self) -> PeerRef {
        PeerRef {
            site: self.store.site_id(),
            name: self.name.clone(),
        }
    }
}

/// A replica in a fresh temp dir; `identity` gives it the mx key.
pub fn replica(name: &str, schema: Arc<Schema>, identity: Option<&str>, start_ms: u64) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let keyring = match identity {
        Some(secret) => {
            let keys = dir.path().join("keys");
            std::fs::create_dir(&keys).unwrap();
            keyring_with(&keys, secret)
        }
        None => Arc::new(Keyring::empty()),
    };
    let clock = ManualClock::new(start_ms);
    let mut store = Store::open(
        &data.join("puente.db"),
        puente::store::StoreOptions::new(schema, keyring, clock.clone() as Arc<dyn WallClock>),
    )
    .unwrap();
    // The replica writes as the office `name` (with the shipped schema,
    // only tijuana may update and delete residents).
    store.set_office(name).unwrap();
    Replica {
        dir,
        store,
        clock,
        name: name.to_string(),
    }
}

pub fn text(s: &str) -> Plaintext {
    Plaintext::text(s)
}

pub fn cells(pairs: &[(&str, &str)]) -> Vec<(String, Plaintext)> {
    pairs
        .iter()
        .map(|(c, v)| (c.to_string(), text(v)))
        .collect()
}

/// Sends everything `from` has that `to` lacks, the way a session does:
/// from `to`'s stored cursor, in bounded batches, skipping `to`'s own
/// writes. Returns the number of batches.
pub fn sync(from: &Replica, to: &mut Replica, max_rows: usize) -> usize {
    let peer = from.peer_ref();
    let mut batches = 0;
    loop {
        let cursor: Cursor = to.store.cursor_for(&peer.site).unwrap();
        let out = from
            .store
            .changes_since(cursor, max_rows, 1 << 20, Some(to.store.site_id()))
            .unwrap();
        to.store.apply(&peer, out.batch, out.cursor).unwrap();
        batches += 1;
        if out.complete {
            return batches;
        }
    }
}

/// The one byte scanner (forbidden values, positive controls).
#[allow(unused_imports)]
pub use puente::lab::scan::{Control, Scan, encodings, files_under, plant_control};

// ---- admin socket (tests/suite/admin_*.rs) ----------------------------------------

/// A `Node` serving its admin socket in the current tokio runtime, in a
/// fresh temp dir (`data/`, `run/admin.sock`).
pub struct AdminNode {
    pub dir: tempfile::TempDir,
    pub node: Arc<puente::node::Node>,
    pub socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), puente::admin::AdminError>>>,
}

/// The node config text of an admin test node (paths relative to its dir).
pub const ADMIN_NODE_CONFIG: &str = r#"
name = "tijuana"
listen = "127.0.0.1:7441"
data_dir = "data"
admin_socket = "run/admin.sock"
schema = "schema.toml"

[tls]
cert = "certs/node.crt"
key = "certs/node.key"
"#;

/// Builds a node (with the mx identity if `identity`) without serving it.
pub fn admin_test_node(
    identity: Option<&str>,
) -> (tempfile::TempDir, Arc<puente::node::Node>, PathBuf) {
    let s = schema(&[TEST_RECIPIENT]);
    let Replica {
        dir, store, clock, ..
    } = replica("tijuana", s.clone(), identity, 1_000);
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let config =
        puente::config::NodeConfig::parse(&dir.path().join("puente.toml"), ADMIN_NODE_CONFIG)
            .unwrap();
    let socket = config.admin_socket.clone();
    let node = puente::node::Node::new(
        config,
        s,
        puente::node::fingerprint::Fingerprint([0; 32]),
        clock as Arc<dyn WallClock>,
        store,
    );
    (dir, node, socket)
}

/// Builds a node and serves its admin socket (inside a tokio runtime).
pub fn admin_node(identity: Option<&str>) -> AdminNode {
    admin_node_with(identity, puente::admin::ServeOptions::default())
}

pub fn admin_node_with(identity: Option<&str>, options: puente::admin::ServeOptions) -> AdminNode {
    let (dir, node, socket) = admin_test_node(identity);
    let listener = puente::admin::bind(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(puente::admin::serve_with(
        listener,
        node.clone(),
        async move {
            let _ = stopped.await;
        },
        options,
    ));
    AdminNode {
        dir,
        node,
        socket,
        stop: Some(stop),
        task: Some(task),
    }
}

impl AdminNode {
    pub fn client(&self) -> puente::admin::Client {
        puente::admin::Client::new(&self.socket)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.data_dir().join("audit.log")
    }

    /// Stops serving and waits for the server to return; gives back the
    /// temp dir (dropping it removes it).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.dir
    }
}

/// One raw HTTP/1.1 exchange on the socket (`Connection: close`): the
/// status code and the body as text.
pub async fn raw_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The server may answer (and stop reading) before the whole body is
    // sent, e.g. when it is too large: the answer is still there to read.
    let sent = match stream.write_all(head.as_bytes()).await {
        Ok(()) => stream.write_all(body).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
    }
    // After such an early answer the server closes with our body unread,
    // and Linux reports that as a reset once the answer has been read.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break;
            }
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, body.to_string())
}

/// The uid this test process runs as (the owner of a file it creates).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::metadata(dir.path()).unwrap().uid()
}

/// Whether a test that needs root may run. As root: yes. Otherwise the
/// test fails with a sentence, unless `PUENTE_SKIP_ROOT_TESTS` is set (as
/// `tools/test` does for a user who is not root, saying so once): a test
/// that needs root never passes silently without having run. CI runs as
/// root, so there every such test runs.
pub fn runs_as_root(what: &str) -> bool {
    if own_uid() == 0 {
        return true;
    }
    if std::env::var_os("PUENTE_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipped (not root, PUENTE_SKIP_ROOT_TESTS set): {what}");
        return false;
    }
    panic!(
        "this test needs root ({what}); run the suite as root, as CI does, \
         or set PUENTE_SKIP_ROOT_TESTS=1 to skip it knowingly"
    );
}

/// Collects everything a tracing subscriber writes, for log scans.
#[derive(Clone, Default)]
pub struct LogCapture(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs a global TRACE subscriber writing here, so threads spawned
    /// by the code under test are captured too. Only in a test run by
    /// [`in_a_process_of_its_own`]: the subscriber is the process's, and
    /// every other test of the suite shares this process.
    pub fn install_global() -> LogCapture {
        assert!(
            std::env::var_os(OWN_PROCESS).is_some(),
            "LogCapture::install_global sets the subscriber of the whole test process: \
             run the test's body with support::in_a_process_of_its_own"
        );
        let capture = LogCapture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        capture
    }
}

/// Set in the child process [`in_a_process_of_its_own`] starts, to the
/// name of the one test it runs.
const OWN_PROCESS: &str = "PUENTE_TEST_OWN_PROCESS";

/// Runs `body` in a process of its own, for a test that changes what a
/// process shares (the global tracing subscriber): the suite's binary is
/// started again to run only the test `path` (`module_path!()::test`), and
/// `body` runs there. Fails if the child fails or did not run exactly that
/// one test (a wrong path would otherwise pass without running anything).
pub fn in_a_process_of_its_own(path: &str, body: impl FnOnce()) {
    // `suite::sealed_logs::test` is `sealed_logs::test` to the harness.
    let name = path.split_once("::").map_or(path, |(_crate, rest)| rest);
    if std::env::var_os(OWN_PROCESS).is_some_and(|running| running == name) {
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS, name)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Printed here so the harness shows it when this test fails.
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{name} failed in its own process ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child process did not run {name} (exactly one test); its output is above"
    );
}
