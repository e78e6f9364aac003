//! A lab of offices on one machine, for the demo, benchmarks and tests:
//! each office laid out in a folder the way `puente init` does it,
//! listening on 127.0.0.1 only, run as a child process and driven through
//! its admin socket.
//!
//! Owns: creating offices (TLS identity, replica key — encrypted at rest
//! unless asked otherwise — age identity for key holders, one shared
//! schema, pins), starting, stopping (SIGTERM), reloading (SIGHUP) and
//! killing (SIGKILL) their daemons, opening a stopped office's replica with its key, and reading
//! their memory and CPU from /proc.
//! Must not: be used by the daemon itself, or bind anything but 127.0.0.1.

pub mod relay;
pub mod scan;
pub mod shaper;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::admin::Client;
use crate::clock::{SystemClock, WallClock};
use crate::config::node::add_peer;
use crate::config::{NodeConfig, Schema};
use crate::fingerprint::Fingerprint;
use crate::node::init::{InitOptions, init_node};
use crate::seal::{Keyring, generate_identity_file};
use crate::store::{AtRest, Store};

/// How long a daemon may take to answer on its socket after start.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

impl LabError {
    fn from<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> LabError + '_ {
        move |e| LabError(format!("{context}: {e}"))
    }
}

/// Free UDP ports on 127.0.0.1 (each held until all are chosen).
pub fn free_ports(n: usize) -> Result<Vec<u16>, LabError> {
    let sockets = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LabError::from("binding 127.0.0.1:0"))?;
    sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LabError::from("reading a local port"))
}

pub struct Office {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub fingerprint: Fingerprint,
    pub has_key: bool,
    /// The daemon's stdout and stderr.
    pub log: PathBuf,
    /// RUST_LOG for the daemon.
    pub log_filter: String,
    /// The web agenda's address, once `Lab::enable_web` gave it one.
    pub web: Option<SocketAddr>,
    /// Extra environment for the daemon (benchmark variants: allocator
    /// settings); set after `MALLOC_ARENA_MAX`, so it may override it.
    pub env: Vec<(String, String)>,
    bin: PathBuf,
    child: Option<Child>,
}

impl Office {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// An office for a node folder laid out by `puente init` (its config
    /// is DIR/puente.toml), run with the binary `bin`.
    pub fn from_dir(dir: &Path, bin: &Path) -> Result<Office, LabError> {
        let config = dir.join("puente.toml");
        let cfg = NodeConfig::load(&config).map_err(LabError::from("reading the config"))?;
        let fingerprint = crate::node::identity::certificate_fingerprint(&cfg.tls_cert)
            .map_err(LabError::from("reading the certificate"))?;
        Ok(Office {
            name: cfg.name.clone(),
            config,
            socket: cfg.admin_socket.clone(),
            log: dir.join("daemon.log"),
            dir: dir.to_path_buf(),
            port: cfg.listen.port(),
            fingerprint,
            has_key: !cfg.identities.is_empty(),
            log_filter: "info".into(),
            web: cfg.web.as_ref().map(|w| w.listen),
            env: Vec::new(),
            bin: bin.to_path_buf(),
            child: None,
        })
    }

    /// How this office's replica is stored, with its key, as its config
    /// says.
    pub fn at_rest(&self) -> Result<AtRest, LabError> {
        let config =
            NodeConfig::load(&self.config).map_err(LabError::from("reading the config"))?;
        crate::node::replica_key::at_rest(&config)
            .map_err(LabError::from("reading the replica key"))
    }

    /// Opens this office's replica (its daemon must be stopped) with its
    /// key and schema, creating it if it does not exist yet.
    pub fn open_store(&self) -> Result<Store, LabError> {
        let schema = Schema::load(&self.dir.join("schema.toml"))
            .map_err(LabError::from("reading the schema"))?;
        Store::open(
            &self.data_dir().join("puente.db"),
            crate::store::StoreOptions::new(
                std::sync::Arc::new(schema),
                std::sync::Arc::new(Keyring::empty()),
                std::sync::Arc::new(SystemClock) as std::sync::Arc<dyn WallClock>,
            )
            .at_rest(&self.at_rest()?),
        )
        .map_err(LabError::from("opening the replica"))
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket).with_timeout(Duration::from_secs(10))
    }

    /// Runs this office with another `puente` binary from its next start.
    pub fn set_bin(&mut self, bin: &Path) {
        self.bin = bin.to_path_buf();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Spawns `puente run` without waiting for it.
    pub fn spawn(&mut self) -> Result<(), LabError> {
        if self.child.is_some() {
            return Err(LabError(format!("{} is already running", self.name)));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(LabError::from("opening the daemon log"))?;
        let err = log
            .try_clone()
            .map_err(LabError::from("opening the daemon log"))?;
        let mut command = Command::new(&self.bin);
        // An empty filter leaves RUST_LOG unset: the config's log_level
        // applies (and a reload can change it).
        if self.log_filter.is_empty() {
            command.env_remove("RUST_LOG");
        } else {
            command.env("RUST_LOG", &self.log_filter);
        }
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            // As the systemd unit sets it (config/puente.service).
            .env("MALLOC_ARENA_MAX", "2")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(LabError::from("starting puente run"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the daemon and waits until its admin socket answers.
    pub async fn start(&mut self) -> Result<(), LabError> {
        self.spawn()?;
        self.wait_ready().await
    }

    pub async fn wait_ready(&mut self) -> Result<(), LabError> {
        let client = self.client();
        let started = Instant::now();
        loop {
            if client.health().await.is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(LabError(format!(
                    "{} exited at start-up:\n{}",
                    self.name,
                    self.logs()
                )));
            }
            if started.elapsed() > START_DEADLINE {
                return Err(LabError(format!(
                    "{} did not answer on its socket in time",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> Result<Option<i32>, LabError> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(LabError::from("sending SIGTERM"))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status.code());
            }
            if started.elapsed() > START_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError(format!(
                    "{} did not stop after SIGTERM",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGHUP: the daemon reloads its config and schema (as `systemctl
    /// reload puente` does).
    pub fn reload(&self) -> Result<(), LabError> {
        let pid = self
            .pid()
            .ok_or_else(|| LabError(format!("{} is not running", self.name)))?;
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .map_err(LabError::from("sending SIGHUP"))?;
        if !status.success() {
            return Err(LabError(format!("kill -HUP {pid} failed")));
        }
        Ok(())
    }

    /// Lets the daemon run on after this handle is dropped (`demo --keep`);
    /// returns its pid.
    pub fn detach(&mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
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

    /// Resident memory of the running daemon, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// CPU seconds (user + system) the daemon has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // Clock ticks; Linux reports USER_HZ = 100 to user space.
        Some((utime + stime) / 100.0)
    }
}

impl Drop for Office {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Offices sharing one schema under `root`.
pub struct Lab {
    pub root: PathBuf,
    pub offices: Vec<Office>,
    pub schema_text: String,
}

impl Lab {
    /// Lays out offices under `root` (which must not exist yet), each with
    /// its replica encrypted at rest. Offices marked `true` hold the mx
    /// identity; every office gets `schema_template` with the key holders'
    /// recipients in group mx (the template's `mx = []`).
    pub fn create(
        root: &Path,
        bin: &Path,
        specs: &[(&str, bool)],
        schema_template: &str,
    ) -> Result<Lab, LabError> {
        Lab::create_at_rest(root, bin, specs, schema_template, true)
    }

    /// As `create`; `encrypted: false` makes offices whose replicas are
    /// plain SQLite (`puente init --unencrypted`), for comparisons.
    pub fn create_at_rest(
        root: &Path,
        bin: &Path,
        specs: &[(&str, bool)],
        schema_template: &str,
        encrypted: bool,
    ) -> Result<Lab, LabError> {
        std::fs::create_dir_all(root).map_err(LabError::from("creating the lab folder"))?;
        let ports = free_ports(specs.len())?;
        let mut offices = Vec::new();
        let mut recipients = Vec::new();
        for ((name, has_key), port) in specs.iter().zip(ports) {
            let dir = root.join(name);
            let mut options =
                InitOptions::new(&dir, name, SocketAddr::from(([127, 0, 0, 1], port)));
            options.encrypted = encrypted;
            let made = init_node(&options).map_err(LabError::from("laying out an office"))?;
            if *has_key {
                let keys = dir.join("keys");
                std::fs::create_dir_all(&keys)
                    .map_err(LabError::from("creating the keys folder"))?;
                let recipient =
                    generate_identity_file(&keys.join("mx.key"), jiff::Timestamp::now())
                        .map_err(LabError::from("making the mx identity"))?;
                recipients.push(recipient);
                let mut config = std::fs::read_to_string(&made.config_file)
                    .map_err(LabError::from("reading the node config"))?;
                config.push_str("\n[privacy]\nidentities = [\"keys/mx.key\"]\n");
                std::fs::write(&made.config_file, config)
                    .map_err(LabError::from("writing the node config"))?;
            }
            offices.push(Office {
                name: name.to_string(),
                config: made.config_file,
                socket: dir.join("admin.sock"),
                log: dir.join("daemon.log"),
                dir,
                port,
                fingerprint: made.fingerprint,
                has_key: *has_key,
                log_filter: "info".into(),
                web: None,
                env: Vec::new(),
                bin: bin.to_path_buf(),
                child: None,
            });
        }
        let list = recipients
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let schema_text = schema_template.replace("mx = []", &format!("mx = [{list}]"));
        for o in &offices {
            std::fs::write(o.dir.join("schema.toml"), &schema_text)
                .map_err(LabError::from("writing the schema"))?;
        }
        Ok(Lab {
            root: root.to_path_buf(),
            offices,
            schema_text,
        })
    }

    /// Office `a` pins office `b` at its address (so `a` dials `b`).
    pub fn pin(&self, a: usize, b: usize) -> Result<(), LabError> {
        let (from, to) = (&self.offices[a], &self.offices[b]);
        add_peer(
            &from.config,
            &to.name,
            &to.fingerprint,
            Some(&to.addr().to_string()),
        )
        .map_err(LabError::from("pinning a peer"))
    }

    /// `a` pins `b` at `address` (e.g. a relay in front of `b`).
    pub fn pin_via(&self, a: usize, b: usize, address: SocketAddr) -> Result<(), LabError> {
        let (from, to) = (&self.offices[a], &self.offices[b]);
        add_peer(
            &from.config,
            &to.name,
            &to.fingerprint,
            Some(&address.to_string()),
        )
        .map_err(LabError::from("pinning a peer"))
    }

    /// Gives office `i` a web agenda on a free 127.0.0.1 port, shown in
    /// `zone` (before it starts).
    pub fn enable_web(&mut self, i: usize, zone: &str) -> Result<SocketAddr, LabError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(LabError::from("finding a free TCP port"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let office = &mut self.offices[i];
        let mut config = std::fs::read_to_string(&office.config)
            .map_err(LabError::from("reading the node config"))?;
        config.push_str(&format!(
            "\n[web]\nlisten = \"{addr}\"\ntime_zone = \"{zone}\"\n"
        ));
        std::fs::write(&office.config, config)
            .map_err(LabError::from("writing the node config"))?;
        office.web = Some(addr);
        Ok(addr)
    }

    /// Both pin each other; both dial.
    pub fn link(&self, a: usize, b: usize) -> Result<(), LabError> {
        self.pin(a, b)?;
        self.pin(b, a)
    }
}

impl std::ops::Index<usize> for Lab {
    type Output = Office;
    fn index(&self, i: usize) -> &Office {
        &self.offices[i]
    }
}

impl std::ops::IndexMut<usize> for Lab {
    fn index_mut(&mut self, i: usize) -> &mut Office {
        &mut self.offices[i]
    }
}
