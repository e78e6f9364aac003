//! Commands that work on local files only: init, id, keygen, check,
//! peer add, storage encrypt and rekey. They need no running daemon
//! (storage commands need a stopped one).

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{NodeConfig, node};
use crate::fingerprint::Fingerprint;
use crate::node::identity;
use crate::node::init;
use crate::node::preflight;
use crate::seal::generate_identity_file;

pub fn init(options: &init::InitOptions) -> Result<()> {
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

pub fn id(config: &Path) -> Result<()> {
    let cfg = NodeConfig::load(config)?;
    let fp = identity::certificate_fingerprint(&cfg.tls_cert)?;
    println!("{fp}");
    Ok(())
}

pub fn keygen(out: &Path) -> Result<()> {
    let recipient = generate_identity_file(out, jiff::Timestamp::now())?;
    eprintln!(
        "wrote a new age identity to {} (mode 0600); keep it only in Mexico, and list it under [privacy] identities",
        out.display()
    );
    eprintln!("its recipient (add it to the schema's group, e.g. mx = [\"…\"]):");
    println!("{recipient}");
    Ok(())
}

pub fn check(config: &Path) -> Result<()> {
    let c = preflight::load(config)?;
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

pub fn peer_add(config: &Path, name: &str, fingerprint: &str, address: Option<&str>) -> Result<()> {
    let fp: Fingerprint = fingerprint.parse()?;
    node::add_peer(config, name, &fp, address).with_context(|| format!("adding peer `{name}`"))?;
    println!(
        "pinned `{name}` ({fp}){} in {}; restart the daemon to use it",
        address.map(|a| format!(" at {a}")).unwrap_or_default(),
        config.display()
    );
    Ok(())
}

pub fn storage_encrypt(config: &Path) -> Result<()> {
    let notes = crate::node::storage::encrypt(config, &Default::default())?;
    for n in notes {
        println!("{n}");
    }
    println!("the replica is encrypted at rest; start the daemon again (systemctl start puente)");
    Ok(())
}

pub fn storage_rekey(config: &Path) -> Result<()> {
    let notes = crate::node::storage::rekey(config, &Default::default())?;
    for n in notes {
        println!("{n}");
    }
    println!("the replica has a new key; start the daemon again (systemctl start puente)");
    Ok(())
}
