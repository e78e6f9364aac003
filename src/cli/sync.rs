//! `puente sync [--wait]`: ask the daemon to contact its peers now; with
//! `--wait`, then wait until every pinned peer is connected and in sync,
//! showing the catch-up as it goes.
//!
//! Owns: the command's arguments, polling status, the progress bar of
//! changes done and left, and the sentence when time runs out (which
//! peers, and why).
//! Must not: decide what "in sync" means (status does).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::call::{self, DaemonTarget, emit, emit_json};
use super::progress::Progress;
use crate::admin::Client;
use crate::api;
use crate::node::status::{PeerState, Status};

#[derive(clap::Args)]
pub struct SyncArgs {
    /// Wait until every pinned peer is connected and in sync, with a
    /// progress bar on a terminal.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600, requires = "wait")]
    timeout: u64,
    #[command(flatten)]
    target: DaemonTarget,
    #[arg(long)]
    json: bool,
}

pub fn run(args: SyncArgs) -> Result<()> {
    let socket = args.target.socket()?;
    if args.wait {
        sync_and_wait(&socket, Duration::from_secs(args.timeout), args.json)
    } else {
        sync_now(&socket, args.json)
    }
}

fn sync_now(socket: &Path, json: bool) -> Result<()> {
    call::run(async { Ok(Client::new(socket).sync_now().await?) })?;
    if json {
        return emit_json(&api::Accepted { ok: true });
    }
    emit(b"asked the daemon to contact its peers now; `puente status` shows progress")
}

/// How often status is asked while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Changes done and in all, over every peer's catch-up in both directions.
fn totals(s: &Status) -> (u64, u64) {
    let mut done = 0;
    let mut all = 0;
    for c in s
        .peers
        .iter()
        .flat_map(|p| [&p.receiving, &p.sending])
        .flatten()
    {
        done += c.done;
        all += c.done + c.left;
    }
    (done, all)
}

/// Why a peer is not in sync yet, in a few words.
fn waiting_for(s: &Status) -> Vec<String> {
    s.peers
        .iter()
        .filter(|p| p.in_sync != Some(true))
        .map(|p| {
            let why = match p.state {
                PeerState::Connected => match (p.they_owe, p.we_owe) {
                    (Some(they), Some(we)) => format!("{they} changes to receive, {we} to send"),
                    _ => "connected, comparing".to_string(),
                },
                PeerState::Connecting => match &p.detail {
                    Some(d) => format!("not connected ({d})"),
                    None => "not connected yet".to_string(),
                },
                PeerState::Waiting => "waiting for it to connect".to_string(),
                PeerState::Refused => format!(
                    "refused: {}",
                    p.detail.as_deref().unwrap_or("no reason given")
                ),
            };
            format!("{}: {why}", p.name)
        })
        .collect()
}

fn sync_and_wait(socket: &Path, timeout: Duration, json: bool) -> Result<()> {
    let client = Client::new(socket);
    let status = call::run(async {
        client.sync_now().await?;
        let progress = Progress::bar("catching up", 0, "changes", json);
        let started = Instant::now();
        loop {
            let status = client.status().await?;
            if status.peers.is_empty() {
                progress.clear();
                bail!(
                    "this node pins no peer, so there is nothing to sync; `puente peer add` pins one"
                );
            }
            let missing = waiting_for(&status);
            if missing.is_empty() {
                progress.clear();
                return Ok(status);
            }
            let (done, all) = totals(&status);
            progress.set(done, all.max(done));
            progress.message(&missing.join("; "));
            if started.elapsed() >= timeout {
                progress.clear();
                bail!(
                    "not in sync after {} s: {}; `puente status` shows more",
                    timeout.as_secs(),
                    missing.join("; ")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    })?;
    if json {
        return emit_json(&status);
    }
    let names: Vec<&str> = status.peers.iter().map(|p| p.name.as_str()).collect();
    println!(
        "in sync with {} (head {}, digest {}…)",
        names.join(", "),
        status.head,
        status.digest.get(..16).unwrap_or(&status.digest)
    );
    Ok(())
}
