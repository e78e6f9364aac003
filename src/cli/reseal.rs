//! `puente reseal`: sealed cells re-encrypted to the schema's current
//! recipients by the running daemon, followed until done (or started and
//! left with `--no-wait`).
//!
//! Owns: the command's arguments, following the progress, and how a
//! reseal's progress reads (which `puente status` shows too).
//! Must not: reseal anything itself (node/reseal.rs does).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Result, bail};

use super::call::{self, DaemonTarget, emit, emit_json};
use crate::admin::Client;
use crate::node::status::ResealStatus;

#[derive(clap::Args)]
pub struct ResealArgs {
    /// Only this seal group (default: every group with sealed columns).
    #[arg(long)]
    pub group: Option<String>,
    /// Start it and return; `puente status` shows its progress.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub target: DaemonTarget,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn progress_line(r: &ResealStatus) -> String {
    let mut line = format!(
        "reseal {} {}: {} of {} cells re-sealed",
        r.groups.join(", "),
        r.state,
        r.done,
        r.total
    );
    if r.skipped > 0 {
        let _ = write!(line, ", {} changed meanwhile", r.skipped);
    }
    if r.failed > 0 {
        let _ = write!(line, ", {} could not be opened", r.failed);
    }
    if let Some(m) = &r.message {
        let _ = write!(line, " ({m})");
    }
    line
}

pub fn run(args: ResealArgs) -> Result<()> {
    let client = Client::new(args.target.socket()?);
    let started = call::run(async { Ok(client.reseal(args.group.as_deref()).await?) })?;
    if args.no_wait {
        if args.json {
            return emit_json(&started);
        }
        return emit(progress_line(&started).as_bytes());
    }
    let mut last = String::new();
    let finished = call::run(async {
        loop {
            let now = client.reseal_status().await?;
            let line = progress_line(&now);
            if !args.json && line != last {
                eprintln!("{line}");
                last = line;
            }
            if now.state != "running" {
                return Ok(now);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })?;
    if args.json {
        return emit_json(&finished);
    }
    if finished.state != "done" {
        bail!("{}", progress_line(&finished));
    }
    emit(
        "every cell of the group is sealed to its current recipients here; once the offices have synced, a removed identity opens nothing current"
            .as_bytes(),
    )
}
