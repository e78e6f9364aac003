//! `puente init`: a new node in one folder.
//!
//! Owns: the command's arguments and what it prints (the config, the
//! replica key, the fingerprint to give the other offices).
//! Must not: lay the node out itself (node/init.rs does).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

use crate::node::init::{self, InitOptions};

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    name: String,
    /// QUIC address to listen on.
    #[arg(long, default_value = init::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Replica folder (default DIR/data); e.g. /var/lib/puente for the
    /// systemd unit, which creates it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Admin socket (default DIR/admin.sock); e.g. /run/puente/admin.sock.
    #[arg(long)]
    admin_socket: Option<PathBuf>,
    /// Do not encrypt the replica at rest (by default a random key is
    /// written to DIR/keys/replica.key). Anyone who copies the data dir
    /// can then read it.
    #[arg(long)]
    unencrypted: bool,
}

pub fn run(args: InitArgs) -> Result<()> {
    init(&InitOptions {
        dir: args.dir,
        name: args.name,
        listen: args.listen,
        data_dir: args.data_dir,
        admin_socket: args.admin_socket,
        encrypted: !args.unencrypted,
    })
}

fn init(options: &InitOptions) -> Result<()> {
    let (dir, name) = (&options.dir, &options.name);
    let made = init::init_node(options)?;
    println!("created node `{name}` in {}", dir.display());
    println!("config: {}", made.config_file.display());
    if options.encrypted {
        println!(
            "replica key: {} (mode 0600); keep a copy offline: without it the replica cannot be opened",
            dir.join(crate::node::replica_key::DEFAULT_KEY_FILE)
                .display()
        );
    } else {
        println!("warning: {}", crate::node::replica_key::UNENCRYPTED_WARNING);
    }
    println!("fingerprint (give it to the other offices for `puente peer add`):");
    println!("{}", made.fingerprint);
    Ok(())
}
