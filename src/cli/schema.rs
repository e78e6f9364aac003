//! `puente schema plan | apply | unseal`: schema changes a stopped node
//! adopts only when told (the daemon adopts additive changes by itself at
//! start), in words for people or JSON for scripts.
//!
//! Must not: hold the logic (node/schema_change.rs and store/ do).

use std::path::Path;

use anyhow::Result;

use crate::node::schema_change;

fn print_changes(changes: &[String], none: &str) {
    if changes.is_empty() {
        println!("{none}");
    }
    for c in changes {
        println!("  {c}");
    }
}

pub fn plan(config: &Path, json: bool) -> Result<()> {
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

pub fn apply(config: &Path, allow_drop: bool) -> Result<()> {
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

pub fn unseal(config: &Path, table: &str, column: &str) -> Result<()> {
    let outcome = schema_change::unseal(config, table, column)?;
    for n in outcome.notes {
        println!("{n}");
    }
    println!("start the daemon again (systemctl start puente)");
    Ok(())
}
