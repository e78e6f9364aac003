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
    /// The office's time zone, an IANA name such as America/Tijuana or
    /// America/Los_Angeles (asked when standard input is a terminal;
    /// default: this machine's).
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
}

pub fn run(args: InitArgs) -> Result<()> {
    let time_zone = office_zone(args.time_zone)?;
    init(&InitOptions {
        dir: args.dir,
        name: args.name,
        listen: args.listen,
        data_dir: args.data_dir,
        admin_socket: args.admin_socket,
        encrypted: !args.unencrypted,
        time_zone: Some(time_zone),
        group: daemon_group(),
    })
}

/// The daemon's group when run as root and group `puente` exists (the
/// package makes it): the files the daemon reads are then readable by it,
/// whatever the umask.
fn daemon_group() -> Option<u32> {
    use crate::node::service_access;
    if !service_access::running_as_root() {
        return None;
    }
    let group = std::fs::read_to_string("/etc/group").ok()?;
    service_access::group_id(&group, service_access::SERVICE_GROUP)
}

/// The office's zone: the one given, else asked on a terminal with this
/// machine's as the default, else this machine's (UTC when it has none).
fn office_zone(given: Option<String>) -> Result<String> {
    use std::io::IsTerminal as _;
    let known = |name: &str| -> Result<String> {
        let tz = jiff::tz::TimeZone::get(name.trim()).map_err(|_| {
            anyhow::anyhow!(
                "`{}` is not a time zone this machine knows; give an IANA name such as America/Tijuana or America/Los_Angeles (`timedatectl list-timezones` lists them)",
                name.trim()
            )
        })?;
        Ok(tz.iana_name().unwrap_or(name.trim()).to_string())
    };
    if let Some(name) = given {
        return known(&name);
    }
    let system = jiff::tz::TimeZone::try_system()
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_string))
        .unwrap_or_else(|| "UTC".to_string());
    if std::io::stdin().is_terminal() {
        eprint!("The office's time zone (every date staff read is shown in it) [{system}]: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().is_empty() {
            return known(&answer);
        }
    }
    Ok(system)
}

fn init(options: &InitOptions) -> Result<()> {
    let (dir, name) = (&options.dir, &options.name);
    let made = init::init_node(options)?;
    println!("created node `{name}` in {}", dir.display());
    println!("config: {}", made.config_file.display());
    if options.group.is_some() {
        println!(
            "files: what the daemon reads is readable by group `puente` (config, certs and keys 0640, their folders 0750)"
        );
    }
    if let Some(zone) = &options.time_zone {
        println!(
            "time zone: {zone} (every date at this office is shown in it; change time_zone in the config if the office is elsewhere)"
        );
    }
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
