//! What every command that talks to the daemon shares: which daemon
//! (`DaemonTarget`: the node config's admin socket, or one named), one client
//! call on a small runtime of its own, and writing the answer to standard
//! output (text, or JSON from a buffer wiped afterwards).
//!
//! Owns: those, once for all commands.
//! Must not: hold a command, or put a value into an error message.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::NodeConfig;
use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::secret_buf;

/// Which daemon to talk to.
#[derive(clap::Args, Clone)]
pub struct DaemonTarget {
    /// The node config; its admin_socket is used.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Talk to this admin socket instead of the config's.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl DaemonTarget {
    /// The admin socket: the one named, or the node config's.
    pub fn socket(&self) -> Result<PathBuf> {
        match &self.socket {
            Some(s) => Ok(s.clone()),
            None => Ok(NodeConfig::load(&self.config)?.admin_socket),
        }
    }
}

/// Runs one async client call on a small runtime of its own.
pub fn run<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(call)
}

/// Writes `text` to stdout (with a final newline).
pub fn emit(text: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)
        .and_then(|()| {
            if text.ends_with(b"\n") {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

/// Prints `value` as indented JSON from a buffer wiped afterwards.
pub fn emit_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = secret_buf::to_json_pretty(value).context("cannot encode the answer as JSON")?;
    emit(text.as_slice())
}

/// The zone dates are shown in: `--tz` when given (checked), else the
/// office's as the daemon at `socket` says (its status), else this
/// machine's, else UTC. People at one office read one day and hour,
/// whatever the shell's TZ.
pub fn office_zone(socket: &std::path::Path, tz: Option<&str>) -> Result<jiff::tz::TimeZone> {
    use jiff::tz::TimeZone;
    if let Some(name) = tz {
        return TimeZone::get(name).map_err(|_| {
            anyhow::anyhow!(
                "--tz: `{name}` is not a time zone this machine knows; write an IANA name such as America/Tijuana or America/Los_Angeles"
            )
        });
    }
    let named = run(async { Ok(crate::admin::Client::new(socket).status().await?) })?.time_zone;
    Ok(TimeZone::get(&named)
        .or_else(|_| TimeZone::try_system())
        .unwrap_or(TimeZone::UTC))
}
