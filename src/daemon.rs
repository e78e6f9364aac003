//! `puente run`: wiring the node together and running it as a service.
//!
//! Owns: the start-up order (preflight, data-dir lock, replica, admin
//! socket, sync), systemd notifications (READY, RELOADING, STATUS,
//! WATCHDOG, STOPPING), signals (TERM and INT stop, HUP reloads: the
//! files are read and checked again, and what `node/reload.rs` accepts is
//! put in force on the node, the sync layer and the log filter), and an
//! orderly shutdown: stop accepting, close peer connections with a code,
//! let the open transaction finish, exit.
//! Must not: contain protocol or storage logic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::admin::{self, AdminError};
use crate::clock::{OffsetClock, WallClock};
use crate::node::Node;
use crate::node::lock::{self, DataDirLock, LockError};
use crate::node::preflight::{self, PreflightError};
use crate::node::status::ReloadStatus;
use crate::store::{Store, StoreError};
use crate::sync::manager::{self, SyncError};
use crate::sync::session::Limits;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::server::BindError),
    #[error(
        "cannot start the admin socket's thread: {0}; the system is out of threads or memory for this user (check ulimit -u and TasksMax=)"
    )]
    AdminThread(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(
        "a start-up task of the daemon failed ({task}): {detail}; this is a bug in puente, not damage to the replica — report it with the daemon's log"
    )]
    TaskFailed { task: &'static str, detail: String },
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(states);
}

/// Sets the log filter (from a reloaded `log_level`); says why not.
pub type LogReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A started node: replica open, admin socket serving, sync running.
pub struct Running {
    pub node: Arc<Node>,
    sync: manager::SyncHandle,
    admin: tokio::task::JoinHandle<()>,
    stop_admin: watch::Sender<bool>,
    /// The thread the admin socket and the metrics listener run on.
    admin_runtime: admin::runtime::AdminRuntime,
    web: Option<crate::web::WebServer>,
    metrics: Option<crate::metrics::server::MetricsServer>,
    _lock: DataDirLock,
}

impl Running {
    /// The address the sync endpoint listens on.
    pub fn sync_addr(&self) -> std::net::SocketAddr {
        self.sync.local_addr
    }

    /// Stops accepting, closes peer connections with `shutting_down`, lets
    /// an open transaction finish and checkpoints the WAL.
    /// The address the web agenda listens on, if it is served.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().map(|w| w.local_addr)
    }

    /// The address of the `[metrics]` listener, if there is one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr)
    }

    /// Reads the node config and the schema again and puts what a reload
    /// may change in force; a file that does not load, or a change a
    /// reload refuses, keeps the running config. The outcome is logged and
    /// kept for status.
    pub async fn reload(&mut self, config_path: &Path, log: Option<&LogReload>) -> ReloadStatus {
        let at_ms = self.node.now_ms();
        let refused = |why: String| {
            tracing::error!("reload refused, the running config is kept: {why}");
            ReloadStatus {
                at_ms,
                applied: false,
                messages: vec![why],
            }
        };
        let status = match preflight::load(config_path) {
            Err(e) => refused(e.to_string()),
            Ok(checked) => {
                let level = checked.config.log_level.clone();
                let bad_level = tracing_subscriber::EnvFilter::try_new(&level).err();
                match bad_level {
                    Some(e) => refused(format!(
                        "{}: log_level `{level}` is not a valid filter ({e})",
                        checked.config.file.display()
                    )),
                    None => self.apply(checked, log).await.unwrap_or_else(refused),
                }
            }
        };
        self.node.long_work.set_reload(status.clone());
        status
    }

    async fn apply(
        &mut self,
        checked: preflight::Checked,
        log: Option<&LogReload>,
    ) -> Result<ReloadStatus, String> {
        for w in &checked.warnings {
            tracing::warn!("{w}");
        }
        let plan = self
            .node
            .reload(checked.config, checked.schema, checked.keyring)
            .await?;
        let mut messages = plan.messages.clone();
        if plan.peers_changed {
            let peers = self.node.config().peers.clone();
            // The schema may be adopted already: a failure here is said,
            // not turned into a refusal of what was applied.
            if let Err(e) = self.sync.apply_peers(&peers, &plan.peers_dropped) {
                messages.push(format!(
                    "peers not fully applied ({e}); restart to apply them (systemctl restart puente)"
                ));
            }
        }
        if plan.schema_changed {
            self.sync.reconnect_all();
        }
        if let Some(level) = &plan.log_level {
            match log.map(|set| set(level)) {
                Some(Err(why)) => messages.push(format!("log level not changed: {why}")),
                None => messages.push(
                    "log level not changed: this process has no reloadable log filter".into(),
                ),
                Some(Ok(())) => {}
            }
        }
        for m in &messages {
            tracing::info!("reload: {m}");
        }
        Ok(ReloadStatus {
            at_ms: self.node.now_ms(),
            applied: true,
            messages,
        })
    }

    pub async fn shutdown(self) {
        if let Some(web) = self.web {
            web.stop().await;
        }
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
        let _ = self.stop_admin.send(true);
        self.sync.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.admin).await;
        self.admin_runtime.stop().await;
        // Waits for the store lock: a transaction in progress finishes first.
        let _ = self.node.with_store(|s| s.checkpoint()).await;
    }
}

/// Starts a node from its config: preflight, data-dir lock, replica, admin
/// socket, sync. `limits` tunes batch sizes.
pub async fn start(config_path: &Path, limits: Limits) -> Result<Running, DaemonError> {
    let checked = preflight::load(config_path)?;
    for w in &checked.warnings {
        tracing::warn!("{w}");
    }
    let config = checked.config;
    let db = config.database_path();
    // The key is checked before the lock is taken, so a wrong or missing
    // key (or a plain replica where the config names a key) writes
    // nothing, not even the lock file. A check that fails while another
    // daemon holds the replica reports that daemon instead.
    if let Err(e) = crate::store::cipher::probe(&db, &checked.at_rest) {
        if lock::is_held(&config.data_dir) {
            return Err(LockError::Held {
                dir: config.data_dir.clone(),
            }
            .into());
        }
        return Err(e.into());
    }
    let lock = lock::lock(&config.data_dir)?;
    // Backups a crash interrupted left their work files here.
    crate::node::backup::clear_work_dir(&config.data_dir);
    let clock: Arc<dyn WallClock> = OffsetClock::new(config.clock_offset_ms);
    if config.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = config.clock_offset_ms,
            "this node's clock is shifted by [debug] clock_offset_ms"
        );
    }
    let store = {
        let schema = checked.schema.clone();
        let keyring = checked.keyring.clone();
        let clock = clock.clone();
        let at_rest = checked.at_rest;
        let office = config.name.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = Store::open(
                &db,
                crate::store::StoreOptions::new(schema, keyring, clock).at_rest(&at_rest),
            )?;
            // A WAL left large (a crash after a burst, or a tool that wrote
            // while the daemon was stopped) is folded in now, at start-up,
            // rather than by the first commit after it, in a quiet moment.
            store.settle()?;
            // Local writes are held to this office's rights.
            store.set_office(&office)?;
            Ok::<_, crate::store::StoreError>(store)
        })
        .await
        .map_err(|e| DaemonError::TaskFailed {
            task: "opening the replica",
            detail: e.to_string(),
        })??
    };
    let mut store = store;
    store.set_max_clock_drift(Some(config.max_clock_drift_ms));
    if let Some(held) = config.max_held {
        tracing::warn!(held, "the held list is capped by [debug] max_held");
        store.set_held_limits(held, crate::store::MAX_HELD_BYTES);
    }
    if let Some(pages) = config.max_db_pages {
        tracing::warn!(pages, "the replica is capped by [debug] max_db_pages");
        store.limit_pages(pages)?;
    }
    tracing::info!(
        node = %config.name,
        site = %store.site_id(),
        head = store.head(),
        digest = %store.digest(),
        can_unseal = !checked.keyring.is_empty(),
        at_rest = store.cipher_version().map_or("NOT encrypted", |_| "encrypted"),
        "replica open"
    );
    // The admin socket and the metrics listener are served on a thread of
    // their own, so they answer while sync keeps the main runtime busy.
    let admin_runtime = admin::runtime::AdminRuntime::start().map_err(DaemonError::AdminThread)?;
    let listener = {
        let _inside = admin_runtime.handle().enter();
        admin::bind(&config.admin_socket)?
    };
    let node = Node::new(
        config,
        checked.schema,
        checked.identity.fingerprint,
        clock,
        store,
    );
    let web = match &node.config().web {
        Some(config) => Some(crate::web::start(node.clone(), config).await?),
        None => None,
    };
    let metrics = match node.config().metrics.as_ref().map(|m| m.listen) {
        Some(listen) => Some(
            admin_runtime
                .handle()
                .spawn(crate::metrics::server::start(node.clone(), listen))
                .await
                .map_err(|e| DaemonError::TaskFailed {
                    task: "starting the metrics listener",
                    detail: e.to_string(),
                })??,
        ),
        None => None,
    };
    let sync = manager::start(node.clone(), checked.identity, limits)?;
    // A reseal an earlier run left unfinished goes on.
    if let Err(e) = node.resume_reseal().await {
        tracing::error!("cannot resume the unfinished reseal: {e}");
    }
    let (stop_admin, stop_rx) = watch::channel(false);
    let admin = {
        let node = node.clone();
        let mut stop = stop_rx;
        admin_runtime.handle().spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = admin::serve(listener, node, shutdown).await {
                tracing::error!("admin socket: {e}");
            }
        })
    };
    Ok(Running {
        node,
        sync,
        admin,
        stop_admin,
        admin_runtime,
        web,
        metrics,
        _lock: lock,
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: &Path) -> Result<(), DaemonError> {
    run_with(config_path, None).await
}

/// As `run`; `log` lets a reload change the log filter.
pub async fn run_with(config_path: &Path, log: Option<LogReload>) -> Result<(), DaemonError> {
    let mut running = start(config_path, Limits::default()).await?;
    let node = running.node.clone();
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving {} peer(s)", node.config().peers.len())),
    ]);
    tracing::info!(node = %node.config().name, sync = %running.sync_addr(), "puente is running");

    let watchdog = watchdog_period();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    // Changes held because their stamps were ahead are applied once this
    // clock catches up (an apply does it too; this covers a quiet node).
    let mut release_tick = tokio::time::interval(RELEASE_PERIOD);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config and the schema");
                notify(&[sd_notify::NotifyState::Reloading]);
                let status = running.reload(config_path, log.as_ref()).await;
                let line = if status.applied { "reloaded" } else { "reload refused: running config kept" };
                notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(&format!("{line}; serving {} peer(s)", node.config().peers.len())),
                ]);
            }
            _ = release_tick.tick() => {
                match node.with_store(|s| s.release_due()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("applying held changes whose time has come failed (tried again in {} s): {e}", RELEASE_PERIOD.as_secs()),
                    Err(e) => tracing::warn!("applying held changes whose time has come failed: {e}"),
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                // Only report alive if the replica answers.
                let alive = tokio::time::timeout(Duration::from_secs(5), node.with_store(|s| s.head())).await;
                if matches!(alive, Ok(Ok(_))) {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!("the replica did not answer within 5 s; not feeding the watchdog");
                }
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often held changes stamped ahead are checked for being due.
const RELEASE_PERIOD: Duration = Duration::from_secs(30);

/// Half the systemd watchdog interval, if the unit sets WatchdogSec.
fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}
