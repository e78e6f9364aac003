//! `puente check`: the node config and schema validated, everything a
//! node loads before it runs loaded once, and what an admin should know
//! printed (the schema hash, which groups this node can unseal, warnings).
//!
//! Owns: the command's arguments and its report, and with `--as-service`
//! (or when run as root) whether the daemon's user can use every file
//! (`node::service_access` judges).
//! Must not: open the replica or any socket (node/preflight.rs loads).

use std::path::PathBuf;

use anyhow::Result;

use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::{preflight, service_access};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Also check that the user the daemon runs as (default `puente`) can
    /// read every file it needs and write its data dir; done anyway when
    /// run as root and that user exists.
    #[arg(long, value_name = "USER", num_args = 0..=1, default_missing_value = service_access::SERVICE_USER)]
    as_service: Option<String>,
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
    let user = match args.as_service {
        Some(user) => Some(user),
        None if service_access::running_as_root() => {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            passwd
                .lines()
                .any(|l| l.split(':').next() == Some(service_access::SERVICE_USER))
                .then(|| service_access::SERVICE_USER.to_string())
        }
        None => None,
    };
    if let Some(user) = user {
        let problems = service_access::check(&c.config, &user).map_err(anyhow::Error::msg)?;
        if problems.is_empty() {
            println!(
                "files: the daemon's user `{user}` can read every file it needs and write its data dir"
            );
        } else {
            for p in &problems {
                eprintln!("error: {}", p.message);
            }
            anyhow::bail!(
                "the daemon, running as `{user}`, could not use {} of its files (listed above with the command that fixes each)",
                problems.len()
            );
        }
    }
    Ok(())
}
