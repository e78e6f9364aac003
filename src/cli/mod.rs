//! The command-line edge: each `puente` subcommand as a function.
//!
//! Owns: turning parsed arguments into calls on the library and printing
//! results for people (or JSON for scripts). `anyhow` lives here only.
//! Must not: hold logic the daemon or tests need (that lives in the library).

pub mod bulk;
pub mod demo;
pub mod held;
pub mod life;
pub mod local;
pub mod progress;
pub mod remote;
pub mod rows_view;
pub mod schedule;
pub mod schema;
pub mod staff;
pub mod wait;

use std::path::Path;

pub fn bench(opts: &crate::bench::BenchOptions, json: Option<&Path>) -> anyhow::Result<()> {
    // In-process daemons log like `puente run` when RUST_LOG asks for it.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let report = crate::bench::run(opts)?;
    print!("{}", crate::bench::report::render(&report));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

pub use local::{check, id, init, keygen, peer_add, storage_encrypt, storage_rekey};
pub use remote::{parse_assignment, rows_delete, rows_get, rows_list, rows_put, status, sync_now};

/// `puente run`: logging to stdout (journald), then the daemon.
pub fn run_daemon(config: &Path) -> anyhow::Result<()> {
    let cfg = crate::config::NodeConfig::load(config)?;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .map_err(|e| anyhow::anyhow!("log_level `{}` is not a valid filter: {e}", cfg.log_level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // A reload (SIGHUP) swaps the filter for the new log_level.
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .with_ansi(ansi),
        )
        .init();
    let log: crate::daemon::LogReload = Box::new(move |level: &str| {
        if from_env {
            return Err("RUST_LOG is set and overrides log_level".into());
        }
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("puente")
        .build()?;
    runtime.block_on(crate::daemon::run_with(config, Some(log)))?;
    Ok(())
}
