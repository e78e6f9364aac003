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
    /// The user the daemon runs as (run as root: it gets the TLS and
    /// replica keys and the data dir, mode 0600/0700; its group reads the
    /// config). Default: `puente` when that user exists.
    #[arg(long, value_name = "USER")]
    service_user: Option<String>,
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
        service: service_owner(args.service_user.as_deref())?,
    })
}

/// The account the daemon runs as, when run as root: the user named (it
/// must exist), else `puente` when it exists (the package makes it). Its
/// gid is group `puente` when that exists, else the user's own group.
fn service_owner(named: Option<&str>) -> Result<Option<init::ServiceOwner>> {
    use crate::node::service_access;
    if !service_access::running_as_root() {
        if let Some(user) = named {
            anyhow::bail!(
                "--service-user {user}: only root can give files to another user; run `sudo puente init …`"
            );
        }
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = named.unwrap_or(service_access::SERVICE_USER);
    let Some(account) = service_access::account(&passwd, &group, user) else {
        if named.is_some() {
            anyhow::bail!(
                "there is no user `{user}` on this machine; make it first (sudo adduser --system --group --no-create-home {user}) or name another with --service-user"
            );
        }
        return Ok(None);
    };
    let gid = service_access::group_id(&group, service_access::SERVICE_GROUP)
        .or_else(|| account.gids.first().copied())
        .unwrap_or(account.uid);
    Ok(Some(init::ServiceOwner {
        uid: account.uid,
        gid,
    }))
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
    if options.service.is_some() {
        println!(
            "files: the TLS and replica keys and the data belong to the daemon's user alone (0600, folders 0700); the config and schema are readable by its group (0640, 0644)"
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
