//! Real daemons for integration tests: offices made with `puente init` in
//! a temp dir, listening on 127.0.0.1, started as child processes and
//! driven through their admin sockets. Waiting is always polling a
//! condition with a deadline.
#![allow(dead_code)]

pub mod rogue;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use puente::admin::Client;
use puente::status::{PeerState, Status};
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

pub struct Office {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub fingerprint: String,
    pub has_key: bool,
    pub log: PathBuf,
    pub log_filter: String,
    child: Option<Child>,
}

impl Office {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket).with_timeout(Duration::from_secs(10))
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the daemon and waits until its admin socket answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start puente run");
        self.child = Some(child);
        let client = self.client();
        let name = self.name.clone();
        let started = Instant::now();
        loop {
            if client.health().await.is_ok() {
                return;
            }
            if !self.is_running() {
                panic!("{name} exited at start-up:\n{}", self.logs());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{name} did not answer on its socket:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("{} did not stop within the deadline", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn status(&self) -> Status {
        self.client().status().await.expect("status")
    }

    pub async fn put(&self, table: &str, id: &str, cells: &[(&str, &str)]) {
        let cells = cells
            .iter()
            .map(|(c, v)| (c.to_string(), Plaintext::text(*v)))
            .collect();
        self.client().put_row(table, id, cells).await.expect("put");
    }
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub offices: Vec<Office>,
}

impl Cluster {
    /// Offices named `names`; those marked `true` hold the mx identity.
    /// Every office gets the same schema with the key holders' recipients.
    pub fn new(specs: &[(&str, bool)]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let ports = free_ports(specs.len());
        let mut offices = Vec::new();
        let mut recipients = Vec::new();
        for ((name, has_key), port) in specs.iter().zip(ports) {
            let dir = tmp.path().join(name);
            let out = puente(&[
                "init",
                "--dir",
                dir.to_str().unwrap(),
                "--name",
                name,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ]);
            let fingerprint = out.lines().last().unwrap().trim().to_string();
            if *has_key {
                std::fs::create_dir(dir.join("keys")).unwrap();
                let key = dir.join("keys/mx.key");
                recipients.push(
                    puente(&["keygen", "--out", key.to_str().unwrap()])
                        .trim()
                        .to_string(),
                );
                let mut config = std::fs::read_to_string(dir.join("puente.toml")).unwrap();
                config.push_str("\n[privacy]\nidentities = [\"keys/mx.key\"]\n");
                std::fs::write(dir.join("puente.toml"), config).unwrap();
            }
            offices.push(Office {
                name: name.to_string(),
                config: dir.join("puente.toml"),
                socket: dir.join("admin.sock"),
                log: dir.join("daemon.log"),
                dir,
                port,
                fingerprint,
                has_key: *has_key,
                log_filter: "info,puente=debug".into(),
                child: None,
            });
        }
        let list = recipients
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let schema =
            puente::config::schema::DEFAULT_SCHEMA.replace("mx = []", &format!("mx = [{list}]"));
        for o in &offices {
            std::fs::write(o.dir.join("schema.toml"), &schema).unwrap();
        }
        Cluster { tmp, offices }
    }

    /// `a` pins `b` (with b's address, so a dials b).
    pub fn pin(&self, a: usize, b: usize) {
        let (from, to) = (&self.offices[a], &self.offices[b]);
        puente(&[
            "peer",
            "add",
            "--config",
            from.config.to_str().unwrap(),
            "--name",
            &to.name,
            "--fingerprint",
            &to.fingerprint,
            "--address",
            &to.addr(),
        ]);
    }

    /// Both pin each other, both dial.
    pub fn link(&self, a: usize, b: usize) {
        self.pin(a, b);
        self.pin(b, a);
    }

    pub async fn start_all(&mut self) {
        for o in &mut self.offices {
            o.start().await;
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
}

impl std::ops::Index<usize> for Cluster {
    type Output = Office;
    fn index(&self, i: usize) -> &Office {
        &self.offices[i]
    }
}

impl std::ops::IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Office {
        &mut self.offices[i]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for o in &mut self.offices {
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
