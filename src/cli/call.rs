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

/// This machine's time zone (UTC if it cannot tell).
pub fn local_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)
}
