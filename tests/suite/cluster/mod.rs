//! Real daemons for integration tests: offices made with `puente init` in
//! a temp dir, listening on 127.0.0.1, started as child processes and
//! driven through their admin sockets. Waiting is always polling a
//! condition with a deadline.
#![allow(dead_code)]

pub mod model;
pub mod rogue;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use puente::node::status::{PeerState, Status};
use puente::value::Plaintext;

pub const BIN: &str = env!("CARGO_BIN_EXE_puente");

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn puente(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run puente");
    assert!(
        out.status.success(),
        "puente {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Free UDP ports on 127.0.0.1 (held until all are chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

pub use puente::lab::{Lab, Office};

/// Helpers tests use on an office.
pub trait OfficeExt {
    async fn status(&self) -> Status;
    async fn put(&self, table: &str, id: &str, cells: &[(&str, &str)]);
}

impl OfficeExt for Office {
    async fn status(&self) -> Status {
        self.client().status().await.expect("status")
    }

    async fn put(&self, table: &str, id: &str, cells: &[(&str, &str)]) {
        let cells = cells
            .iter()
            .map(|(c, v)| (c.to_string(), Plaintext::text(*v)))
            .collect();
        self.client().put_row(table, id, cells).await.expect("put");
    }
}

/// A lab in a temp dir whose daemons' logs are printed if the test fails.
pub struct Cluster {
    pub lab: Lab,
    pub tmp: tempfile::TempDir,
}

impl Cluster {
    /// Offices named `names`; those marked `true` hold the mx identity.
    /// Their replicas are encrypted at rest.
    pub fn new(specs: &[(&str, bool)]) -> Cluster {
        Cluster::create(specs, true)
    }

    /// As `new`, with plain SQLite replicas (`init --unencrypted`): for
    /// byte scans that must see shared plaintext in the database and WAL
    /// (a positive control) while proving sealed plaintext absent.
    pub fn new_unencrypted(specs: &[(&str, bool)]) -> Cluster {
        Cluster::create(specs, false)
    }

    fn create(specs: &[(&str, bool)], encrypted: bool) -> Cluster {
        let schema = crate::support::unrequired(puente::config::schema::DEFAULT_SCHEMA);
        Cluster::with_schema(specs, &schema, encrypted)
    }

    /// As `new`, every office with `schema` (e.g. the shipped schema as it
    /// is, with its required columns; `new` drops them).
    pub fn with_schema(specs: &[(&str, bool)], schema: &str, encrypted: bool) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut lab = Lab::create_at_rest(
            &tmp.path().join("lab"),
            Path::new(BIN),
            specs,
            schema,
            encrypted,
        )
        .unwrap();
        for o in &mut lab.offices {
            o.log_filter = "info,puente=debug".into();
        }
        Cluster { lab, tmp }
    }

    pub fn pin(&self, a: usize, b: usize) {
        self.lab.pin(a, b).unwrap();
    }

    pub fn link(&self, a: usize, b: usize) {
        self.lab.link(a, b).unwrap();
    }

    pub async fn start_all(&mut self) {
        for o in &mut self.lab.offices {
            o.start().await.unwrap();
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn offices(&self) -> &[Office] {
        &self.lab.offices
    }

    /// `a` dials `b` through a relay; `b` only accepts `a`. Every packet of
    /// their one connection crosses the relay.
    pub async fn link_via_relay(&self, a: usize, b: usize) -> puente::lab::relay::Relay {
        let relay = puente::lab::relay::Relay::start(self[b].addr())
            .await
            .unwrap();
        self.lab.pin_via(a, b, relay.addr()).unwrap();
        puente::config::node::add_peer(&self[b].config, &self[a].name, &self[a].fingerprint, None)
            .unwrap();
        relay
    }

    /// Adds `[debug]` settings to an office's config before it starts.
    /// Adds `line` to the `[sync]` section of an office's node config
    /// (placed before `[debug]`, which `debug_setting` appends to).
    pub fn sync_setting(&self, office: usize, line: &str) {
        let path = &self[office].config;
        let text = std::fs::read_to_string(path).unwrap();
        let section = format!("\n[sync]\n{line}\n");
        let text = match text.find("\n[debug]") {
            Some(i) => format!("{}{section}{}", &text[..i], &text[i..]),
            None => format!("{text}{section}"),
        };
        std::fs::write(path, text).unwrap();
    }

    pub fn debug_setting(&self, office: usize, line: &str) {
        let path = &self[office].config;
        let mut text = std::fs::read_to_string(path).unwrap();
        if !text.contains("[debug]") {
            text.push_str("\n[debug]\n");
        }
        text.push_str(line);
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }
}

impl std::ops::Index<usize> for Cluster {
    type Output = Office;
    fn index(&self, i: usize) -> &Office {
        &self.lab.offices[i]
    }
}

impl std::ops::IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Office {
        &mut self.lab.offices[i]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for o in &mut self.lab.offices {
            o.kill9();
            if failing {
                let logs = o.logs();
                let tail: Vec<&str> = logs.lines().rev().take(60).collect();
                eprintln!("---- last lines of {} ----", o.name);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Polls `check` every 20 ms until it holds; fails the test after `DEADLINE`.
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGHUP to `o` and waits for the reload's outcome in its status.
pub async fn reload(o: &Office) -> puente::node::status::ReloadStatus {
    let before = o.status().await.reload.map(|r| r.at_ms);
    o.reload().unwrap();
    let started = Instant::now();
    loop {
        if let Some(r) = o.client().status().await.ok().and_then(|s| s.reload)
            && Some(r.at_ms) != before
        {
            return r;
        }
        assert!(started.elapsed() < DEADLINE, "no reload outcome in status");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True when every office has the same digest and sees every peer in sync.
pub async fn converged(offices: &[&Office]) -> bool {
    let mut digest = None;
    for o in offices {
        let Ok(s) = o.client().status().await else {
            return false;
        };
        if digest.get_or_insert(s.digest.clone()) != &s.digest {
            return false;
        }
        if !s.peers.iter().all(|p| p.in_sync == Some(true)) {
            return false;
        }
    }
    true
}

pub async fn connected(o: &Office, peer: &str) -> bool {
    match o.client().status().await {
        Ok(s) => s
            .peers
            .iter()
            .any(|p| p.name == peer && p.state == PeerState::Connected),
        Err(_) => false,
    }
}

/// The text of a shared (or revealed) cell, if the row exists.
pub async fn cell(o: &Office, table: &str, id: &str, column: &str, reveal: bool) -> Option<String> {
    let row = o.client().get_row(table, id, reveal).await.ok()?;
    match row.cell(column)? {
        puente::admin::api::Cell::Value(p) => match p.expose() {
            puente::value::Value::Text(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        },
        puente::admin::api::Cell::Sealed => Some("<sealed>".into()),
    }
}

/// Waits until `offices` converge (same digest, every peer in sync).
pub async fn wait_converged(what: &str, offices: &[&Office]) {
    let started = Instant::now();
    while !converged(offices).await {
        if started.elapsed() > DEADLINE {
            let mut report = String::new();
            for o in offices {
                if let Ok(s) = o.client().status().await {
                    report.push_str(&format!(
                        "\n{}: head {} digest {} peers {:?}",
                        s.node, s.head, s.digest, s.peers
                    ));
                }
            }
            panic!("timed out waiting for: {what}{report}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a stopped office's replica (with its key, as its config says)
/// and checks it is sound: SQLite's integrity check, and the digest and
/// counts kept with every transaction equal to a full recomputation
/// (nothing was ever half applied).
pub fn assert_replica_sound(office: &Office, schema_text: &str) {
    assert_eq!(
        std::fs::read_to_string(office.dir.join("schema.toml")).unwrap(),
        schema_text
    );
    let store = office.open_store().unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok", "{}", office.name);
    assert_eq!(
        store.recompute_digest().unwrap(),
        store.digest(),
        "{}: the incremental digest drifted",
        office.name
    );
    let (rows, sealed) = store.recount().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        stats.rows.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        rows,
        "{}",
        office.name
    );
    assert_eq!(stats.sealed_cells, sealed, "{}", office.name);
    assert_eq!(
        store.sealed_to_old_keys(),
        store.recount_sealed_to_old_keys().unwrap(),
        "{}: the keyset counts drifted",
        office.name
    );
}
