//! `puente storage encrypt | rekey`: the replica of a stopped node put
//! under a new key.
//!
//! Owns: the commands' arguments and what they print.
//! Must not: convert anything itself (node/storage.rs does), or print a
//! key.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::node::DEFAULT_CONFIG_PATH;

#[derive(clap::Subcommand)]
pub enum StorageCommand {
    /// Encrypt an unencrypted replica with a new key in keys/replica.key
    /// (or the key [storage] names) and name it in the config. Safe to
    /// run again after a crash: it finishes the work.
    Encrypt {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Put the encrypted replica under a new random key and write it over
    /// the key file. Safe to run again after a crash.
    Rekey {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

pub fn run(command: StorageCommand) -> Result<()> {
    match command {
        StorageCommand::Encrypt { config } => encrypt(&config),
        StorageCommand::Rekey { config } => rekey(&config),
    }
}

fn encrypt(config: &Path) -> Result<()> {
    let notes = crate::node::storage::encrypt(config, &Default::default())?;
    for n in notes {
        println!("{n}");
    }
    println!("the replica is encrypted at rest; start the daemon again (systemctl start puente)");
    Ok(())
}

fn rekey(config: &Path) -> Result<()> {
    let notes = crate::node::storage::rekey(config, &Default::default())?;
    for n in notes {
        println!("{n}");
    }
    println!("the replica has a new key; start the daemon again (systemctl start puente)");
    Ok(())
}
