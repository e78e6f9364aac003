//! The commands for living with a node for years: backup (and verify),
//! restore, reseal, checkpoint, peer removal.
//!
//! Owns: their arguments (flattened into `puente`'s command list), running
//! them (through the daemon's socket where a daemon runs; a backup of a
//! stopped node is taken directly), and printing what they did for people
//! (or JSON with `--json`).
//! Must not: hold logic the daemon or tests need (node/backup.rs,
//! node/restore.rs, node/reseal.rs do), or print a key.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::remote::{emit, emit_json, run};
use crate::admin::{Client, ClientError};
use crate::config::NodeConfig;
use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::backup::{self, BackupInfo};
use crate::node::lock;
use crate::node::restore::{self, Keys};
use crate::node::status::{ResealStatus, Status};

#[derive(Subcommand)]
pub enum LifeCommand {
    /// Take a consistent backup of the replica while the daemon runs (or of
    /// a stopped node), or check one (`backup verify FILE`).
    Backup(BackupArgs),
    /// Restore a backup into this (stopped) node: it starts a new history
    /// (a new site id) and its peers send back everything newer.
    Restore(RestoreArgs),
    /// Re-encrypt sealed cells to the schema's current recipients (after a
    /// key was added or removed), as new versions that sync everywhere.
    Reseal(ResealArgs),
    /// Fold the WAL into the database and truncate it (after forgetting a
    /// resident, so no old page of theirs stays in the WAL).
    Checkpoint {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// Which daemon to talk to.
#[derive(Args, Clone)]
pub struct Target {
    /// The node config; its admin_socket (and data dir) are used.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Talk to this admin socket instead of the config's.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> Result<PathBuf> {
        match &self.socket {
            Some(s) => Ok(s.clone()),
            None => Ok(NodeConfig::load(&self.config)?.admin_socket),
        }
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Write the backup to FILE (never overwritten).
    #[arg(long, conflicts_with = "dir")]
    pub out: Option<PathBuf>,
    /// Write it into DIR as puente-NODE-TIME.backup (nightly backups).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// With --dir: keep the N newest backups of this node there, remove
    /// older ones.
    #[arg(long, requires = "dir")]
    pub keep: Option<usize>,
    /// Also encrypt it with age to this offsite recipient (repeatable), so
    /// it restores on a machine that never held the replica key.
    #[arg(long, value_name = "AGE1…")]
    pub to: Vec<String>,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Check a backup: SQLite's integrity check, the digest recomputed from
    /// every cell; print its office, head, digest, rows and time.
    Verify {
        file: PathBuf,
        /// The node config (its schema, and its replica key).
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        #[arg(long)]
        json: bool,
    },
}

/// Keys to open a backup that the node's own replica key does not.
#[derive(Args, Clone, Default)]
pub struct KeyArgs {
    /// An age identity for a backup taken with --to (repeatable).
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// The replica key file of the office the backup was taken at, when
    /// it is not this node's own.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn keys(&self) -> Keys {
        Keys {
            key_file: self.key_file.clone(),
            identities: self.identity.clone(),
        }
    }
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file (plain, encrypted, or age-encrypted with --to).
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Replace the replica that is there, moving it aside first.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ResealArgs {
    /// Only this seal group (default: every group with sealed columns).
    #[arg(long)]
    pub group: Option<String>,
    /// Start it and return; `puente status` shows its progress.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

pub fn run_command(command: LifeCommand) -> Result<()> {
    match command {
        LifeCommand::Backup(args) => match args.command {
            Some(BackupCommand::Verify {
                file,
                config,
                keys,
                json,
            }) => verify(&file, &config, &keys, json),
            None => make(&args),
        },
        LifeCommand::Restore(args) => restore(&args),
        LifeCommand::Reseal(args) => reseal(&args),
        LifeCommand::Checkpoint { target, json } => {
            let done = run(async { Ok(Client::new(target.socket()?).checkpoint().await?) })?;
            if json {
                return emit_json(&done);
            }
            emit(
                format!(
                    "checkpointed: the WAL ({} bytes) is folded into the database and truncated",
                    done.wal_bytes_before
                )
                .as_bytes(),
            )
        }
    }
}

/// `puente peer remove`: unpins a peer in the config file.
pub fn peer_remove(config: &Path, name: &str) -> Result<()> {
    if !crate::config::node::remove_peer(config, name)? {
        bail!(
            "no peer `{name}` is pinned in {}; `puente status` lists the pinned peers",
            config.display()
        );
    }
    emit(
        format!(
            "unpinned {name} in {}; run `systemctl reload puente` (or send the daemon SIGHUP): its connection closes at once and it is refused from then on",
            config.display()
        )
        .as_bytes(),
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn describe(info: &BackupInfo) -> String {
    let rows: Vec<String> = info.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let at = jiff::Timestamp::from_millisecond(info.taken_ms as i64)
        .map_or_else(|_| "an unknown time".to_string(), |t| t.to_string());
    let form = match (info.wrapped, info.encrypted) {
        (true, _) => "age-encrypted to the offsite recipients (it carries the replica key)",
        (false, true) => "encrypted with the replica key",
        (false, false) => "NOT encrypted (the replica is not)",
    };
    let mut out = String::new();
    let _ = writeln!(out, "office     {} (site {})", info.node, info.site_id);
    let _ = writeln!(out, "taken      {at}");
    let _ = writeln!(out, "head       {}", info.head);
    let _ = writeln!(out, "digest     {}", info.digest);
    let _ = writeln!(out, "rows       {}", rows.join(", "));
    let _ = writeln!(
        out,
        "           {} sealed cells, {} deleted rows",
        info.sealed_cells, info.tombstones
    );
    let _ = writeln!(out, "size       {}", mib(info.bytes));
    let _ = write!(out, "form       {form}");
    out
}

/// `puente backup --out FILE | --dir DIR [--keep N]`.
fn make(args: &BackupArgs) -> Result<()> {
    let config = NodeConfig::load(&args.target.config).ok();
    let dest = match (&args.out, &args.dir) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => {
            let Some(config) = &config else {
                bail!(
                    "--dir names each backup after the node, so it needs the node config: cannot read {}",
                    args.target.config.display()
                );
            };
            dir.join(backup::timed_name(
                &config.name,
                jiff::Timestamp::now(),
                !args.to.is_empty(),
            ))
        }
        (None, None) => {
            bail!("say where the backup goes: --out FILE, or --dir DIR for timed names")
        }
    };
    backup::parse_recipients(&args.to)?;
    let socket = match &args.target.socket {
        Some(s) => s.clone(),
        None => config
            .as_ref()
            .map(|c| c.admin_socket.clone())
            .with_context(|| format!("cannot read {}", args.target.config.display()))?,
    };
    let info = backup::write_out(&dest, |file| {
        let through_daemon = run(async {
            Ok(Client::new(&socket)
                .backup(&args.to, |chunk| file.write_all(chunk))
                .await)
        })
        .map_err(|e| backup::BackupError::Io {
            path: dest.clone(),
            action: "talking to the daemon",
            source: std::io::Error::other(e.to_string()),
        })?;
        match through_daemon {
            Ok(info) => Ok(info),
            // No daemon: take it directly (with the data-dir lock, which
            // a running daemon would hold).
            Err(ClientError::Connect { .. }) if config.is_some() => match &config {
                Some(config) => offline(config, &args.to, file),
                None => Err(backup::BackupError::Io {
                    path: dest.clone(),
                    action: "reading the node config",
                    source: std::io::Error::other("no config"),
                }),
            },
            Err(e) => Err(backup::BackupError::Io {
                path: dest.clone(),
                action: "taking the backup through the daemon",
                source: std::io::Error::other(e.to_string()),
            }),
        }
    })?;
    let pruned = match (&args.dir, args.keep, &config) {
        (Some(dir), Some(keep), Some(config)) => backup::prune(dir, &config.name, keep)?,
        _ => Vec::new(),
    };
    if args.json {
        return emit_json(&serde_json::json!({
            "file": dest,
            "backup": info,
            "removed": pruned,
        }));
    }
    let mut text = format!("wrote {}\n{}\n", dest.display(), describe(&info));
    for p in &pruned {
        let _ = writeln!(text, "removed the older backup {}", p.display());
    }
    emit(text.as_bytes())
}

/// A backup of a stopped node, taken directly (with the data-dir lock).
fn offline(
    config: &NodeConfig,
    to: &[String],
    file: &mut std::fs::File,
) -> Result<BackupInfo, backup::BackupError> {
    let io = |action: &'static str| {
        let path = config.data_dir.clone();
        move |e: String| backup::BackupError::Io {
            path,
            action,
            source: std::io::Error::other(e),
        }
    };
    let _lock =
        lock::lock(&config.data_dir).map_err(|e| io("locking the data dir")(e.to_string()))?;
    let schema = std::sync::Arc::new(
        crate::config::Schema::load(&config.schema_file)
            .map_err(|e| io("reading the schema")(e.to_string()))?,
    );
    let at_rest = crate::node::replica_key::at_rest(config)
        .map_err(|e| io("reading the replica key")(e.to_string()))?;
    let recipients = backup::parse_recipients(to)?;
    let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
    let made = backup::make(
        &config.database_path(),
        &at_rest,
        schema,
        &config.name,
        &config.data_dir.join(backup::WORK_DIR),
        &recipients,
        now,
    )?;
    let copied = std::fs::File::open(&made.file).and_then(|mut f| std::io::copy(&mut f, file));
    backup::remove_work_file(&made.file, made.plain);
    copied.map_err(|e| io("copying the backup")(e.to_string()))?;
    Ok(made.info)
}

fn verify(file: &Path, config: &Path, keys: &KeyArgs, json: bool) -> Result<()> {
    let config = NodeConfig::load(config)?;
    let verified = restore::verify(&config, file, &keys.keys())?;
    if json {
        return emit_json(&verified.info);
    }
    emit(
        format!(
            "{} is sound: SQLite's integrity check passed and the digest recomputed from every cell matches\n{}",
            file.display(),
            describe(&verified.info)
        )
        .as_bytes(),
    )
}

fn restore(args: &RestoreArgs) -> Result<()> {
    let restored = restore::restore(&args.config, &args.from, &args.keys.keys(), args.force)?;
    if args.json {
        return emit_json(&serde_json::json!({
            "backup": restored.info,
            "site_id": restored.new_site.to_string(),
            "retired_site_id": restored.retired_site.to_string(),
            "moved_aside": restored.moved_aside,
        }));
    }
    let mut text = format!(
        "restored {} into this node\n{}\nnew site id {} (the backup's {} is retired)\n",
        args.from.display(),
        describe(&restored.info),
        restored.new_site,
        restored.retired_site
    );
    if let Some(aside) = &restored.moved_aside {
        let _ = writeln!(text, "the replaced replica is kept in {}", aside.display());
    }
    text.push_str("start the daemon (systemctl start puente): its peers send it everything newer than the backup, its own later writes included");
    emit(text.as_bytes())
}

fn progress_line(r: &ResealStatus) -> String {
    let mut line = format!(
        "reseal {} {}: {} of {} cells re-sealed",
        r.groups.join(", "),
        r.state,
        r.done,
        r.total
    );
    if r.skipped > 0 {
        let _ = write!(line, ", {} changed meanwhile", r.skipped);
    }
    if r.failed > 0 {
        let _ = write!(line, ", {} could not be opened", r.failed);
    }
    if let Some(m) = &r.message {
        let _ = write!(line, " ({m})");
    }
    line
}

fn reseal(args: &ResealArgs) -> Result<()> {
    let client = Client::new(args.target.socket()?);
    let started = run(async { Ok(client.reseal(args.group.as_deref()).await?) })?;
    if args.no_wait {
        if args.json {
            return emit_json(&started);
        }
        return emit(progress_line(&started).as_bytes());
    }
    let mut last = String::new();
    let finished = run(async {
        loop {
            let now = client.reseal_status().await?;
            let line = progress_line(&now);
            if !args.json && line != last {
                eprintln!("{line}");
                last = line;
            }
            if now.state != "running" {
                return Ok(now);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })?;
    if args.json {
        return emit_json(&finished);
    }
    if finished.state != "done" {
        bail!("{}", progress_line(&finished));
    }
    emit(
        "every cell of the group is sealed to its current recipients here; once the offices have synced, a removed identity opens nothing current"
            .as_bytes(),
    )
}

/// Status lines for keys, reseal, reload and retired site ids.
pub(super) fn render_life(out: &mut String, s: &Status) {
    let old: Vec<String> = s
        .sealed_to_old_keys
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    if !old.is_empty() {
        let _ = writeln!(
            out,
            "{:<11} {} cells sealed to an old recipient set (`puente reseal` at an office holding the key)",
            "old keys",
            old.join(", ")
        );
    }
    if let Some(r) = &s.reseal {
        let _ = writeln!(out, "{:<11} {}", "reseal", progress_line(r));
    }
    if let Some(r) = &s.reload {
        let at = jiff::Timestamp::from_millisecond(r.at_ms as i64)
            .map_or_else(|_| r.at_ms.to_string(), |t| t.to_string());
        let what = if r.applied {
            "applied"
        } else {
            "REFUSED (running config kept)"
        };
        let _ = writeln!(out, "{:<11} {at} {what}", "reload");
        for m in &r.messages {
            let _ = writeln!(out, "{:<11}   {m}", "");
        }
    }
    if !s.retired_sites.is_empty() {
        let _ = writeln!(
            out,
            "{:<11} {} (restored from a backup)",
            "retired ids",
            s.retired_sites.join(", ")
        );
    }
}
