//! Owns: `puente schema plan | apply | unseal`: schema changes a stopped
//! node adopts only when told (the daemon adopts additive changes by itself
//! at start), in words for people or JSON for scripts.
//!
//! Must not: hold the logic (node/schema_change.rs and store/ do).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::node::DEFAULT_CONFIG_PATH;
use crate::node::schema_change;

#[derive(clap::Subcommand)]
pub enum SchemaCommand {
    /// What adopting the schema file would change in the replica.
    AdoptionPlan {
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

pub fn run(command: SchemaCommand) -> Result<()> {
    match command {
        SchemaCommand::AdoptionPlan { config, json } => plan(&config, json),
        SchemaCommand::Apply { config, allow_drop } => apply(&config, allow_drop),
        SchemaCommand::Unseal {
            table,
            column,
            config,
        } => unseal(&config, &table, &column),
    }
}

fn print_changes(changes: &[String], none: &str) {
    if changes.is_empty() {
        println!("{none}");
    }
    for c in changes {
        println!("  {c}");
    }
}

fn plan(config: &Path, json: bool) -> Result<()> {
    let plan = schema_change::plan(config)?;
    let changes = plan.describe();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "changes": changes }))?
        );
        return Ok(());
    }
    if !changes.is_empty() {
        println!("adopting the schema file would:");
    }
    print_changes(
        &changes,
        "the replica already has the schema file's tables and columns",
    );
    Ok(())
}

fn apply(config: &Path, allow_drop: bool) -> Result<()> {
    let outcome = schema_change::apply(config, allow_drop)?;
    let changes = outcome.plan.describe();
    if !changes.is_empty() {
        println!("adopted the schema file:");
    }
    print_changes(
        &changes,
        "nothing to change: the replica already has the schema file's tables and columns",
    );
    for n in outcome.notes {
        println!("{n}");
    }
    println!("start the daemon again (systemctl start puente)");
    Ok(())
}

fn unseal(config: &Path, table: &str, column: &str) -> Result<()> {
    let outcome = schema_change::unseal(config, table, column)?;
    for n in outcome.notes {
        println!("{n}");
    }
    println!("start the daemon again (systemctl start puente)");
    Ok(())
}
