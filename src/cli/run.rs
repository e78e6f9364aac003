//! `puente run`: the daemon, logging to standard output (journald) at the
//! config's `log_level` (or `RUST_LOG`), which a reload can change.
//!
//! Owns: the command's argument, the log subscriber, the runtime.
//! Must not: hold any of the daemon's logic (daemon.rs does).

use std::path::PathBuf;

use crate::config::node::DEFAULT_CONFIG_PATH;

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

/// Logging to stdout (journald), then the daemon.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = &args.config;
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
