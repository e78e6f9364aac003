//! The `puente` command: argument parsing and dispatch only.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use puente::cli;
use puente::config::node::DEFAULT_CONFIG_PATH;

/// jemalloc with background purging: memory freed after a catch-up goes
/// back to the system within seconds (glibc's malloc keeps it in its
/// arenas). See docs/performance.md, "Memory after a burst".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "puente",
    version,
    about = "Sync daemon for offices on both sides of a border"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new node in DIR: config, schema copy, TLS certificate,
    /// replica key, data dir.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// QUIC address to listen on.
        #[arg(long, default_value = puente::node::init::DEFAULT_LISTEN)]
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
    },
    /// Print this node's certificate fingerprint (one line, to pin elsewhere).
    Id {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Write a new age identity (mode 0600) and print its recipient.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate the node config and schema; print the schema hash.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Measure performance; each figure next to its baseline from the same run.
    Bench {
        /// Rows for catch-up and merge figures.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Sealed puts per seal measurement.
        #[arg(long, default_value_t = 4_000)]
        seal_count: usize,
        /// Samples per live-latency measurement.
        #[arg(long, default_value_t = 200)]
        latency_samples: usize,
        /// Seconds the daemons sit idle for the CPU figure.
        #[arg(long, default_value_t = 30.0)]
        idle_seconds: f64,
        /// Repetitions of the merge and catch-up measurements (medians).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Outreach events behind the web agenda figures.
        #[arg(long, default_value_t = 2_000)]
        web_events: usize,
        /// Comma-separated subset: merge, rights, schema, catchup, latency, seal, idle, web, wan;
        /// `million` (only when named) runs the million-row catch-up.
        #[arg(long)]
        only: Option<String>,
        /// Rows of the million-row catch-up.
        #[arg(long, default_value_t = 1_000_000)]
        million_rows: usize,
        /// A receiver to compare in the million-row catch-up, as
        /// LABEL:PATH[:K=V,K=V] (an empty PATH is this binary); repeatable.
        #[arg(long = "million-variant")]
        million_variants: Vec<String>,
        /// Seconds watched after the million-row catch-up (RSS at the
        /// middle and the end, CPU in six windows).
        #[arg(long, default_value_t = 60.0)]
        million_after_seconds: f64,
        /// Also write the figures as JSON to FILE.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Manage pinned peers.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Encrypt the replica at rest, or change its key (stop the daemon first).
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Schema changes the daemon does not adopt by itself: drops, and
    /// unsealing a column (stop the daemon first).
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Run the daemon (as a systemd service: Type=notify) until SIGTERM.
    Run {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Show the node's status and one line per peer.
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Read and write rows through the running daemon.
    Rows {
        #[command(subcommand)]
        command: RowsCommand,
    },
    /// Two offices on 127.0.0.1 in a temp dir, seeded and shown side by side.
    Demo {
        /// Leave both offices running and print how to talk to them.
        #[arg(long)]
        keep: bool,
    },
    /// Upcoming outreach events as an agenda by day, in local time.
    Schedule {
        /// How many days ahead.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// es or en (default: from the locale).
        #[arg(long)]
        lang: Option<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
        /// For tests: the agenda as of this instant (RFC 3339 with offset)
        /// instead of the clock's.
        #[arg(long, hide = true, value_name = "INSTANT")]
        now: Option<jiff::Timestamp>,
    },
    /// Web logins of this office's staff (admin role on the socket).
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Changes peers sent that their office may not make: review them
    /// (admin role on the socket).
    Held {
        #[command(subcommand)]
        command: HeldCommand,
    },
    /// Ask the daemon to contact its peers and catch up now.
    Sync {
        /// Wait until every pinned peer is connected and in sync, with a
        /// progress bar on a terminal.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600, requires = "wait")]
        timeout: u64,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// Which daemon to talk to.
#[derive(clap::Args, Clone)]
struct Target {
    /// The node config; its admin_socket is used.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Talk to this admin socket instead of the config's.
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> anyhow::Result<PathBuf> {
        match &self.socket {
            Some(s) => Ok(s.clone()),
            None => Ok(puente::config::NodeConfig::load(&self.config)?.admin_socket),
        }
    }
}

#[derive(Subcommand)]
enum RowsCommand {
    /// List live rows of a table, ordered by id.
    List {
        table: String,
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        /// Decrypt sealed cells (only where this node holds the group's key; audited).
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Show one row.
    Get {
        table: String,
        id: String,
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Write some columns of a row: `col=text` or `col:=JSON` (e.g. capacity:=25).
    Put {
        table: String,
        id: String,
        #[arg(required = true)]
        assignments: Vec<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Delete a row for good (its id can never be used again).
    Delete {
        table: String,
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Write the rows of a CSV file (with a header line naming `id` and the
    /// columns) or a JSON Lines file: all of them in one transaction, or
    /// none when any line is bad (each bad line is listed).
    Import {
        table: String,
        file: PathBuf,
        /// csv or jsonl (default: from the file name).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Write a table's rows as CSV or JSON Lines: shared columns, and
    /// sealed ones only with --reveal (reveal role; audited).
    Export {
        table: String,
        /// csv or jsonl (default: from --output's name, else csv).
        #[arg(long)]
        format: Option<String>,
        /// Comma-separated columns (default: all the export may show).
        #[arg(long)]
        columns: Option<String>,
        /// Include sealed columns, decrypted (only where this node holds the
        /// group's key; the export is written to the audit log).
        #[arg(long)]
        reveal: bool,
        /// Write to this new file (mode 0600) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Give one person a login link for the web agenda and a calendar feed
    /// address (both shown once).
    Add {
        name: String,
        /// viewer (reads), editor (also creates, edits and cancels events)
        /// or admin (also sees sync status).
        #[arg(long)]
        role: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// List the staff who have a login.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Remove a login: their link and feed stop working, their sessions end.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HeldCommand {
    /// List the changes held for review, oldest first.
    List {
        /// Also those already accepted or discarded.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Apply a held change as if its office had been allowed to make it.
    Accept {
        /// Its number in `puente held list`.
        id: i64,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Drop a held change and keep this office's version (written again
    /// so that the peer takes it back, where that can be done).
    Discard {
        /// Its number in `puente held list`.
        id: i64,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// What adopting the schema file would change in the replica.
    Plan {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Adopt the schema file; with --allow-drop, erase the tables and
    /// columns it no longer lists.
    Apply {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(long)]
        allow_drop: bool,
    },
    /// Take a column the schema file now lists as shared from sealed to
    /// shared: where an identity of its group is held, every value is
    /// opened (audited) and written back shared.
    Unseal {
        table: String,
        column: String,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
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

#[derive(Subcommand)]
enum PeerCommand {
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
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match args.command {
        Command::Init {
            dir,
            name,
            listen,
            data_dir,
            admin_socket,
            unencrypted,
        } => cli::init(&puente::node::init::InitOptions {
            dir,
            name,
            listen,
            data_dir,
            admin_socket,
            encrypted: !unencrypted,
        }),
        Command::Id { config } => cli::id(&config),
        Command::Keygen { out } => cli::keygen(&out),
        Command::Check { config } => cli::check(&config),
        Command::Bench {
            rows,
            seal_count,
            latency_samples,
            idle_seconds,
            repeat,
            web_events,
            only,
            million_rows,
            million_variants,
            million_after_seconds,
            json,
        } => std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|bin| {
                let million_variants = million_variants
                    .iter()
                    .map(|v| puente::bench::million::Variant::parse(v))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                cli::bench(
                    &puente::bench::BenchOptions {
                        million_rows,
                        million_variants,
                        million_after_seconds,
                        rows,
                        only,
                        seal_count,
                        latency_samples,
                        idle_seconds,
                        repeat,
                        web_events,
                        bin,
                    },
                    json.as_deref(),
                )
            }),
        Command::Peer {
            command:
                PeerCommand::Add {
                    config,
                    name,
                    fingerprint,
                    address,
                },
        } => cli::peer_add(&config, &name, &fingerprint, address.as_deref()),
        Command::Storage {
            command: StorageCommand::Encrypt { config },
        } => cli::storage_encrypt(&config),
        Command::Storage {
            command: StorageCommand::Rekey { config },
        } => cli::storage_rekey(&config),
        Command::Schema { command } => match command {
            SchemaCommand::Plan { config, json } => cli::schema::plan(&config, json),
            SchemaCommand::Apply { config, allow_drop } => cli::schema::apply(&config, allow_drop),
            SchemaCommand::Unseal {
                table,
                column,
                config,
            } => cli::schema::unseal(&config, &table, &column),
        },
        Command::Run { config } => cli::run_daemon(&config),
        Command::Status { target, json } => {
            target.socket().and_then(|s| cli::remote::status(&s, json))
        }
        Command::Sync {
            wait,
            timeout,
            target,
            json,
        } => target.socket().and_then(|s| {
            if wait {
                cli::wait::sync_and_wait(&s, std::time::Duration::from_secs(timeout), json)
            } else {
                cli::remote::sync_now(&s, json)
            }
        }),
        Command::Rows { command } => rows(command),
        Command::Staff { command } => staff(command),
        Command::Held { command } => held(command),
        Command::Demo { keep } => cli::demo::demo(keep),
        Command::Schedule {
            days,
            lang,
            target,
            json,
            now,
        } => target
            .socket()
            .and_then(|s| cli::schedule::schedule(&s, days, lang.as_deref(), json, now)),
    };
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many errors already name their source.
            let mut text = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if text.contains(&cause) {
                    continue;
                }
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&cause);
            }
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
    }
}

fn rows(command: RowsCommand) -> anyhow::Result<()> {
    use cli::remote;
    match command {
        RowsCommand::List {
            table,
            after,
            limit,
            reveal,
            target,
            json,
        } => remote::rows_list(
            &target.socket()?,
            &table,
            after.as_deref(),
            limit,
            reveal,
            json,
        ),
        RowsCommand::Get {
            table,
            id,
            reveal,
            target,
            json,
        } => remote::rows_get(&target.socket()?, &table, &id, reveal, json),
        RowsCommand::Put {
            table,
            id,
            assignments,
            target,
            json,
        } => remote::rows_put(&target.socket()?, &table, &id, &assignments, json),
        RowsCommand::Delete {
            table,
            id,
            target,
            json,
        } => remote::rows_delete(&target.socket()?, &table, &id, json),
        RowsCommand::Import {
            table,
            file,
            format,
            target,
            json,
        } => cli::bulk::import(&target.socket()?, &table, &file, format.as_deref(), json),
        RowsCommand::Export {
            table,
            format,
            columns,
            reveal,
            output,
            target,
        } => cli::bulk::export(
            &target.socket()?,
            &table,
            &cli::bulk::ExportTo {
                format: format.as_deref(),
                columns: columns.as_deref(),
                reveal,
                output: output.as_deref(),
            },
        ),
    }
}

fn held(command: HeldCommand) -> anyhow::Result<()> {
    use cli::held;
    match command {
        HeldCommand::List { all, target, json } => held::list(&target.socket()?, all, json),
        HeldCommand::Accept { id, target, json } => held::decide(&target.socket()?, id, true, json),
        HeldCommand::Discard { id, target, json } => {
            held::decide(&target.socket()?, id, false, json)
        }
    }
}

fn staff(command: StaffCommand) -> anyhow::Result<()> {
    use cli::staff;
    match command {
        StaffCommand::Add {
            name,
            role,
            target,
            json,
        } => staff::add(&target.socket()?, &name, &role, json),
        StaffCommand::List { target, json } => staff::list(&target.socket()?, json),
        StaffCommand::Remove { name, target, json } => {
            staff::remove(&target.socket()?, &name, json)
        }
    }
}
