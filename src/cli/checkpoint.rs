//! `puente checkpoint`: the WAL folded into the database and truncated by
//! the running daemon (after forgetting a resident, so no old page of
//! theirs stays in the WAL).
//!
//! Owns: the command's arguments and what it prints.
//! Must not: touch the replica itself (the daemon does).

use anyhow::Result;

use super::call::{self, DaemonTarget, emit, emit_json};
use crate::admin::Client;

#[derive(clap::Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    target: DaemonTarget,
    #[arg(long)]
    json: bool,
}

pub fn run(args: CheckpointArgs) -> Result<()> {
    let socket = args.target.socket()?;
    let done = call::run(async { Ok(Client::new(socket).checkpoint().await?) })?;
    if args.json {
        return emit_json(&done);
    }
    emit(
        format!(
            "checkpointed: the WAL ({} bytes) is folded into the database and truncated",
            done.wal_bytes_before
        )
        .as_bytes(),
    )
}
