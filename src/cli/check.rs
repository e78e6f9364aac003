//! `puente check`: the node config and schema validated, everything a
//! node loads before it runs loaded once, and what an admin should know
//! printed (the schema hash, which groups this node can unseal, warnings).
//!
//! Owns: the command's argument and its report.
//! Must not: open the replica or any socket (node/preflight.rs loads).

use std::path::PathBuf;

use anyhow::Result;

use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::preflight;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub fn run(args: CheckArgs) -> Result<()> {
    let c = preflight::load(&args.config)?;
    println!(
        "config ok: {} (node {}, listen {}, {} pinned peer(s))",
        c.config.file.display(),
        c.config.name,
        c.config.listen,
        c.config.peers.len()
    );
    println!(
        "schema ok: {} ({} tables, {} group(s))",
        c.config.schema_file.display(),
        c.schema.tables.len(),
        c.schema.groups.len()
    );
    println!("fingerprint: {}", c.identity.fingerprint);
    match &c.config.replica_key {
        Some(source) => println!("at rest: encrypted, {source} ok"),
        None => println!("at rest: NOT encrypted"),
    }
    let readable: Vec<&str> = c
        .schema
        .groups
        .values()
        .filter(|g| c.keyring.can_unseal(g))
        .map(|g| g.name.as_str())
        .collect();
    if readable.is_empty() {
        println!("sealed values: this node cannot unseal any group");
    } else {
        println!(
            "sealed values: this node can unseal {}",
            readable.join(", ")
        );
    }
    for w in &c.warnings {
        println!("warning: {w}");
    }
    println!("schema hash: {}", c.schema.hash());
    Ok(())
}
