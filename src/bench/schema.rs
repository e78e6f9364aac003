//! Owns: schema changes on a replica of `rows` rows (encrypted at rest, as
//! offices run): adding a column (no row rewritten), and sealing a shared
//! column's every value next to raw age encryptions per second on every
//! core, in the same run.
//!
//! Must not: use the network.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::data;
use super::merge::{self, TempDir};
use crate::config::Schema;
use crate::store::{Allow, AtRest, ReplicaKey};

pub struct SchemaFigures {
    pub rows: usize,
    pub add_column_s: f64,
    pub sealed_cells: usize,
    pub seal_cells_per_s: f64,
    pub raw_per_s_all_cores: f64,
    pub cores: usize,
}

fn parse(text: &str) -> Result<Arc<Schema>> {
    Ok(Arc::new(Schema::parse(Path::new("<bench schema>"), text)?))
}

pub fn run(rows: usize) -> Result<SchemaFigures> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let schema = data::schema(std::slice::from_ref(&recipient));
    let pool = data::ciphertext_pool(&schema, 64);
    let data_rows = data::rows(&schema, rows, &pool, 5);
    let dir = TempDir::new()?;
    let path = dir.path().join("puente.db");
    let at_rest = AtRest::Encrypted {
        key: ReplicaKey::generate(),
        source: "bench key".into(),
    };
    merge::apply(&path, &at_rest, schema.clone(), &data_rows, 1_000)?;
    let text = data::schema_template().replace("mx = []", &format!("mx = [\"{recipient}\"]"));
    let mut store = merge::open(&path, &at_rest, schema.clone())?;

    // A column added (shared, in the middle of the name order).
    let added = parse(&text.replace(
        "household_size = \"shared\"",
        "household_size = \"shared\"\nbus_route = \"shared\"",
    ))?;
    let start = Instant::now();
    store.adopt_schema(added.clone(), &Allow::default())?;
    let add_column_s = start.elapsed().as_secs_f64();

    // Every value of `status` (one per row) sealed anew.
    let sealed_cells = rows;
    let sealing = parse(
        &text
            .replace(
                "household_size = \"shared\"",
                "household_size = \"shared\"\nbus_route = \"shared\"",
            )
            .replace("status = \"shared\"", "status = { sealed = \"mx\" }"),
    )?;
    let start = Instant::now();
    store.adopt_schema(sealing, &Allow::default())?;
    let seal_s = start.elapsed().as_secs_f64();
    drop(store);
    let raw = super::seal::raw_rate(&schema, (4_000 * cores).max(2_000), cores)?;
    Ok(SchemaFigures {
        rows,
        add_column_s,
        sealed_cells,
        seal_cells_per_s: sealed_cells as f64 / seal_s,
        raw_per_s_all_cores: raw,
        cores,
    })
}
