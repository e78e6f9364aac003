//! `puente peer add | remove`: pinning and unpinning another office in
//! the node config, keeping its comments.
//!
//! Owns: the commands' arguments and what they print (what to do next).
//! Must not: edit the config itself (config/node.rs does).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::call::emit;
use crate::config::node::{self, DEFAULT_CONFIG_PATH};
use crate::fingerprint::Fingerprint;

#[derive(clap::Subcommand)]
pub enum PeerCommand {
    /// Pin another office (or replace its pin), keeping the config's comments.
    Add {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        fingerprint: String,
        /// HOST:PORT to dial; leave out to only accept this peer.
        #[arg(long)]
        address: Option<String>,
    },
    /// Unpin an office (then reload the daemon: its connection closes).
    Remove {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}

pub fn run(command: PeerCommand) -> Result<()> {
    match command {
        PeerCommand::Add {
            config,
            name,
            fingerprint,
            address,
        } => add(&config, &name, &fingerprint, address.as_deref()),
        PeerCommand::Remove { config, name } => remove(&config, &name),
    }
}

fn add(config: &Path, name: &str, fingerprint: &str, address: Option<&str>) -> Result<()> {
    let fp: Fingerprint = fingerprint.parse()?;
    node::add_peer(config, name, &fp, address).with_context(|| format!("adding peer `{name}`"))?;
    println!(
        "pinned `{name}` ({fp}){} in {}; run `systemctl reload puente` (or send the daemon SIGHUP) to use it: a reload applies pinned peers, no restart needed",
        address.map(|a| format!(" at {a}")).unwrap_or_default(),
        config.display()
    );
    Ok(())
}

/// Unpins a peer in the config file.
fn remove(config: &Path, name: &str) -> Result<()> {
    if !node::remove_peer(config, name)? {
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
