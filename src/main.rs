//! The `puente` command.
//!
//! Owns: the list of commands and dispatching each to its file in cli/,
//! and printing an error with each cause once.
//! Must not: hold a command's arguments or logic (cli/ does).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use puente::cli;

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

/// Each command's arguments and its `run` are in its own file in cli/.
#[derive(Subcommand)]
enum Command {
    /// Create a new node in DIR: config, schema copy, TLS certificate,
    /// replica key, data dir.
    Init(cli::init::InitArgs),
    /// Print this node's certificate fingerprint (one line, to pin elsewhere).
    Id(cli::id::IdArgs),
    /// Write a new age identity (mode 0600) and print its recipient.
    Keygen(cli::keygen::KeygenArgs),
    /// Validate the node config and schema; print the schema hash.
    Check(cli::check::CheckArgs),
    /// Measure performance; each figure next to its baseline from the same run.
    Bench(cli::bench::BenchArgs),
    /// Manage pinned peers.
    #[command(subcommand)]
    Peer(cli::peer::PeerCommand),
    /// Encrypt the replica at rest, or change its key (stop the daemon first).
    #[command(subcommand)]
    Storage(cli::storage::StorageCommand),
    /// Schema changes the daemon does not adopt by itself: drops, and
    /// unsealing a column (stop the daemon first).
    #[command(subcommand)]
    Schema(cli::schema::SchemaCommand),
    /// Run the daemon (as a systemd service: Type=notify) until SIGTERM.
    Run(cli::run::RunArgs),
    /// Show the node's status and one line per peer.
    Status(cli::status::StatusArgs),
    /// Read and write rows through the running daemon.
    #[command(subcommand)]
    Rows(cli::rows::RowsCommand),
    /// Two offices on 127.0.0.1 in a temp dir, seeded and shown side by side.
    Demo(cli::demo::DemoArgs),
    /// Upcoming outreach events as an agenda by day, in local time.
    Schedule(cli::schedule::ScheduleArgs),
    /// Web logins of this office's staff (admin role on the socket).
    #[command(subcommand)]
    Staff(cli::staff::StaffCommand),
    /// Changes peers sent that their office may not make: review them
    /// (admin role on the socket).
    #[command(subcommand)]
    Held(cli::held::HeldCommand),
    /// Ask the daemon to contact its peers and catch up now.
    Sync(cli::sync::SyncArgs),
    /// Take a consistent backup of the replica while the daemon runs (or of
    /// a stopped node), or check one (`backup verify FILE`).
    Backup(cli::backup::BackupArgs),
    /// Restore a backup into this (stopped) node: it starts a new history
    /// (a new site id) and its peers send back everything newer.
    Restore(cli::restore::RestoreArgs),
    /// Re-encrypt sealed cells to the schema's current recipients (after a
    /// key was added or removed), as new versions that sync everywhere.
    Reseal(cli::reseal::ResealArgs),
    /// Fold the WAL into the database and truncate it (after forgetting a
    /// resident, so no old page of theirs stays in the WAL).
    Checkpoint(cli::checkpoint::CheckpointArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Init(args) => cli::init::run(args),
        Command::Id(args) => cli::id::run(args),
        Command::Keygen(args) => cli::keygen::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Peer(command) => cli::peer::run(command),
        Command::Storage(command) => cli::storage::run(command),
        Command::Schema(command) => cli::schema::run(command),
        Command::Run(args) => cli::run::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Rows(command) => cli::rows::run(command),
        Command::Demo(args) => cli::demo::run(args),
        Command::Schedule(args) => cli::schedule::run(args),
        Command::Staff(command) => cli::staff::run(command),
        Command::Held(command) => cli::held::run(command),
        Command::Sync(args) => cli::sync::run(args),
        Command::Backup(args) => cli::backup::run(args),
        Command::Restore(args) => cli::restore::run(args),
        Command::Reseal(args) => cli::reseal::run(args),
        Command::Checkpoint(args) => cli::checkpoint::run(args),
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
