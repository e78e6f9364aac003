//! `puente restore --from FILE`: a backup restored into this stopped node,
//! which starts a new history (a new site id) so its peers send back
//! everything newer.
//!
//! Owns: the command's arguments and what it prints.
//! Must not: restore anything itself (node/restore.rs does), or print a
//! key.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;

use super::backup::{KeyArgs, describe};
use super::call::{emit, emit_json};
use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::restore;

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (plain, encrypted, or age-encrypted with --to).
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Replace the replica that is there, moving it aside first.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RestoreArgs) -> Result<()> {
    let restored = restore::restore(&args.config, &args.from, &args.keys.keys(), args.force)?;
    if args.json {
        return emit_json(&serde_json::json!({
            "backup": restored.info,
            "site_id": restored.new_site.to_string(),
            "retired_site_id": restored.retired_site.to_string(),
            "moved_aside": restored.moved_aside,
        }));
    }
    let mut text = format!(
        "restored {} into this node\n{}\nnew site id {} (the backup's {} is retired)\n",
        args.from.display(),
        describe(&restored.info),
        restored.new_site,
        restored.retired_site
    );
    if let Some(aside) = &restored.moved_aside {
        let _ = writeln!(text, "the replaced replica is kept in {}", aside.display());
    }
    text.push_str("start the daemon (systemctl start puente): its peers send it everything newer than the backup, its own later writes included");
    emit(text.as_bytes())
}
