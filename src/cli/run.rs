//! `puente run`: the daemon, logging to standard output (journald) at the
//! config's `log_level` (or `RUST_LOG`), which a reload can change.
//!
//! Owns: the command's argument, marking the process non-dumpable (no
//! core dump, no ptrace by its user) before anything secret is read, the
//! log subscriber, the runtime.
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
    // Before any key is read: the daemon holds the replica key, the mx
    // identity and revealed values, so it never dumps core (and no other
    // process of its user may ptrace it or read its memory in /proc).
    let dumpable =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
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
    match dumpable.and_then(|()| rustix::process::dumpable_behavior()) {
        Ok(rustix::process::DumpableBehavior::NotDumpable) => {
            tracing::info!("core dumps are off: the daemon is not dumpable")
        }
        Ok(_) => tracing::warn!(
            "could not mark the daemon non-dumpable (it still reads back as dumpable); a crash could write its keys into a core dump: keep LimitCORE=0 in the systemd unit"
        ),
        Err(e) => tracing::warn!(
            "could not mark the daemon non-dumpable (prctl PR_SET_DUMPABLE: {e}); a crash could write its keys into a core dump: keep LimitCORE=0 in the systemd unit"
        ),
    }
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
