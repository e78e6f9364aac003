//! `puente schema plan | apply | unseal` on a stopped node: what adopting
//! the node's schema file would change, adopting it with the changes that
//! need a word from the admin (dropping columns or tables; taking a column
//! from sealed to shared), and the audit line an unseal leaves.
//!
//! Owns: loading the node (config, schema, identities, replica key),
//! taking the data-dir lock the daemon takes, and opening the replica with
//! what the admin allowed.
//! Must not: run beside a daemon, or put a value into a message or the
//! audit log.

use std::path::Path;
use std::sync::Arc;

use crate::audit::{AuditError, AuditLog, Caller, RevealedCell};
use crate::clock::{SystemClock, WallClock};
use crate::node::lock::{self, LockError};
use crate::node::preflight::{self, PreflightError};
use crate::store::{AdoptionPlan, Allow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SchemaChangeError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(
        "the schema file does not make `{table}.{column}` shared: edit it first (change `{{ sealed = \"…\" }}` to \"shared\" for that column), then run this command again"
    )]
    NotSharedInSchema { table: String, column: String },
}

/// What a command did: the changes adopted, and notes for people.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plan: AdoptionPlan,
    pub notes: Vec<String>,
}

/// What adopting the node's schema file would change. Nothing of the
/// replica's content changes (a format migration still happens first, as
/// at any start of this build).
pub fn plan(config: &Path) -> Result<AdoptionPlan, SchemaChangeError> {
    let checked = preflight::load(config)?;
    let _lock = lock::lock(&checked.config.data_dir)?;
    // Open with the schema the replica already has (no adoption), then plan.
    let store = open_as_it_is(&checked)?;
    Ok(store.schema_plan(&checked.schema)?)
}

fn open_as_it_is(checked: &preflight::Checked) -> Result<Store, SchemaChangeError> {
    Ok(Store::open(
        &checked.config.database_path(),
        crate::store::StoreOptions::new(
            checked.schema.clone(),
            checked.keyring.clone(),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&checked.at_rest)
        .unadopted(),
    )?)
}

/// Adopts the node's schema file, erasing dropped tables and columns if
/// `allow_drop`.
pub fn apply(config: &Path, allow_drop: bool) -> Result<Outcome, SchemaChangeError> {
    let checked = preflight::load(config)?;
    let _lock = lock::lock(&checked.config.data_dir)?;
    let mut store = open_as_it_is(&checked)?;
    let allow = Allow {
        drop: allow_drop,
        unseal: Vec::new(),
    };
    let plan = store.adopt_schema(checked.schema.clone(), &allow)?;
    let mut notes = Vec::new();
    if plan.erases() {
        notes.push(
            "erased values are gone from this replica (database and WAL); copies made before, such as backups, still hold them".to_string(),
        );
    }
    notes.extend(missing_required_note(&store)?);
    Ok(Outcome { plan, notes })
}

/// Rows listed in the note about required columns.
const MISSING_LISTED: usize = 20;

/// Says which rows lack a value the schema requires. They are kept (a
/// required column is the writer's check: rows written before the rule,
/// or by an office that does not have it yet, are never refused or
/// lost); writes made here from now on must give the value.
fn missing_required_note(store: &Store) -> Result<Option<String>, SchemaChangeError> {
    let (total, listed) = store.missing_required(MISSING_LISTED)?;
    if total == 0 {
        return Ok(None);
    }
    let mut note = format!(
        "{total} {} no value in a column the schema marks `required` (kept as they are; new writes here must give it):",
        if total == 1 { "row has" } else { "rows have" }
    );
    for (table, id, column) in &listed {
        note.push_str(&format!("\n  {table}/{id}: {column}"));
    }
    if total > listed.len() as u64 {
        note.push_str(&format!("\n  … and {} more", total - listed.len() as u64));
    }
    note.push_str("\nfill each in once the daemon runs: puente rows put TABLE ID COLUMN=VALUE");
    Ok(Some(note))
}

/// Takes `table.column` from sealed to shared. At an office holding an
/// identity of its group every value is opened and written back shared
/// (one audit line per value, never the value); elsewhere the column is
/// relabelled and the shared values arrive from the office that opened
/// them.
pub fn unseal(config: &Path, table: &str, column: &str) -> Result<Outcome, SchemaChangeError> {
    let checked = preflight::load(config)?;
    let shared_in_schema = checked
        .schema
        .table(table)
        .and_then(|t| t.columns.iter().find(|c| c.name == column))
        .is_some_and(|c| !c.is_sealed());
    if !shared_in_schema {
        return Err(SchemaChangeError::NotSharedInSchema {
            table: table.into(),
            column: column.into(),
        });
    }
    let _lock = lock::lock(&checked.config.data_dir)?;
    let mut store = open_as_it_is(&checked)?;
    let before = store.head();
    let allow = Allow {
        drop: false,
        unseal: vec![(table.to_string(), column.to_string())],
    };
    let plan = store.adopt_schema(checked.schema.clone(), &allow)?;
    let opened = store.rows_written_since(table, column, before)?;
    let mut notes = Vec::new();
    if opened.is_empty() {
        notes.push(format!(
            "relabelled `{table}.{column}` as shared; this office holds no identity of its group, so the shared values arrive from the office that opened them (run this command there too)"
        ));
    } else {
        let cells: Vec<RevealedCell> = opened
            .into_iter()
            .map(|id| RevealedCell {
                id,
                column: column.to_string(),
            })
            .collect();
        AuditLog::new(&checked.config.data_dir).record(
            Caller {
                uid: own_uid(),
                pid: Some(std::process::id() as i32),
            },
            table,
            &cells,
        )?;
        notes.push(format!(
            "opened {} values of `{table}.{column}` and wrote them back shared, as new versions that reach every office; each is in the reveal audit log",
            cells.len()
        ));
    }
    Ok(Outcome { plan, notes })
}

/// This process's user id (the owner of what it creates).
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}
