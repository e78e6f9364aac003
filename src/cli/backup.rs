//! `puente backup [--out FILE | --dir DIR] [--to AGE1…]` and `puente
//! backup verify FILE`: a consistent backup of the replica, through the
//! daemon's socket where a daemon runs, or directly of a stopped node;
//! and checking one.
//!
//! Owns: the command's arguments (and the keys that open a backup, which
//! `restore` takes too), and printing what a backup holds for people (or
//! JSON with `--json`).
//! Must not: hold logic the daemon or tests need (node/backup.rs and
//! node/restore.rs do), or print a key.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::call::{self, DaemonTarget, emit, emit_json};
use crate::admin::{Client, ClientError};
use crate::config::NodeConfig;
use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::backup::{self, BackupInfo};
use crate::node::lock;
use crate::node::restore::{self, Keys};

#[derive(clap::Args)]
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
    pub target: DaemonTarget,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
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
#[derive(clap::Args, Clone, Default)]
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
    pub(super) fn keys(&self) -> Keys {
        Keys {
            key_file: self.key_file.clone(),
            identities: self.identity.clone(),
        }
    }
}

pub fn run(args: BackupArgs) -> Result<()> {
    match &args.command {
        Some(BackupCommand::Verify {
            file,
            config,
            keys,
            json,
        }) => verify(file, config, keys, *json),
        None => make(&args),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

pub(super) fn describe(info: &BackupInfo) -> String {
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
        let through_daemon = call::run(async {
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
