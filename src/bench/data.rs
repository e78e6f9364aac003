//! Benchmark data: a table of 8 columns (3 sealed) and rows for it.
//!
//! Owns: the benchmark schema, deterministic row values, and a pool of real
//! age ciphertexts (sealed cells carry genuine age files of realistic size;
//! merge and sync never decrypt, so a pool of distinct files is reused).
//! Must not: measure or print.

use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};

use crate::clock::Hlc;
use crate::config::Schema;
use crate::seal::{self, Binding};
use crate::stamp::SiteId;
use crate::store::{Batch, CellChange, Change};
use crate::value::{Plaintext, Value};

pub const TABLE: &str = "bench_rows";
pub const SHARED: [&str; 5] = [
    "arrival_date",
    "household_size",
    "office",
    "status",
    "language",
];
pub const SEALED: [&str; 3] = ["full_name", "phone", "case_notes"];

/// The benchmark schema's text with `mx = []` (filled in by `schema` or
/// by the lab).
pub fn schema_template() -> String {
    let mut text = format!("[groups]\nmx = []\n[tables.{TABLE}.columns]\n");
    for c in SHARED {
        text.push_str(&format!("{c} = \"shared\"\n"));
    }
    for c in SEALED {
        text.push_str(&format!("{c} = {{ sealed = \"mx\" }}\n"));
    }
    text
}

/// The benchmark schema with `recipients` in group mx.
pub fn schema(recipients: &[String]) -> Arc<Schema> {
    let list = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = schema_template().replace("mx = []", &format!("mx = [{list}]"));
    // Invariant: the template is a valid schema (the bench smoke test runs it).
    Arc::new(Schema::parse(Path::new("<bench schema>"), &text).expect("the bench schema is valid"))
}

pub fn row_id(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// Shared values of a row, in SHARED order.
pub fn shared_values(rng: &mut impl Rng) -> [Value; 5] {
    let offices = ["tijuana", "san-diego"];
    let statuses = ["active", "moved", "waiting"];
    [
        Value::Text(format!(
            "2026-{:02}-{:02}",
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        )),
        Value::Integer(rng.random_range(1..8)),
        Value::Text(offices[rng.random_range(0..2)].to_string()),
        Value::Text(statuses[rng.random_range(0..3)].to_string()),
        Value::Text(["es", "en", "es,en"][rng.random_range(0..3)].to_string()),
    ]
}

/// Realistic sealed plaintexts (a name, a phone number, a case note).
pub fn sealed_plaintexts(rng: &mut impl Rng) -> [Plaintext; 3] {
    [
        Plaintext::text(format!("Nombre Apellido {}", rng.random_range(1000..9999))),
        Plaintext::text(format!(
            "+52 664 {:03} {:04}",
            rng.random_range(0..1000),
            rng.random_range(0..10000)
        )),
        Plaintext::text("x".repeat(rng.random_range(40..200))),
    ]
}

/// `n` real age files (sealed to `schema`'s group mx) to reuse as sealed cells.
pub fn ciphertext_pool(schema: &Schema, n: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let Some(group) = schema.group("mx") else {
        return Vec::new();
    };
    (0..n)
        .filter_map(|i| {
            let p = &sealed_plaintexts(&mut rng)[i % 3];
            let b = Binding {
                table: TABLE,
                id: "pool",
                column: SEALED[i % 3],
                hlc: Hlc(1 << 16),
                site: SiteId([0; 16]),
            };
            seal::seal(group, &b, p).ok()
        })
        .collect()
}

/// The rows of a change set: id and all 8 values in canonical column order.
pub struct Rows {
    pub ids: Vec<String>,
    /// Values per row, indexed by the table's canonical column index.
    pub values: Vec<Vec<Value>>,
}

pub fn rows(schema: &Schema, n: usize, pool: &[Vec<u8>], seed: u64) -> Rows {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Some(table) = schema.table(TABLE) else {
        return Rows {
            ids: vec![],
            values: vec![],
        };
    };
    let mut ids = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(row_id(&mut rng));
        let shared = shared_values(&mut rng);
        let mut row = vec![Value::Null; table.columns.len()];
        for (c, v) in SHARED.iter().zip(shared) {
            if let Some(idx) = table.column_index(c) {
                row[idx] = v;
            }
        }
        for (k, c) in SEALED.iter().enumerate() {
            if let Some(idx) = table.column_index(c) {
                row[idx] = Value::Blob(pool[(i * 3 + k) % pool.len().max(1)].clone());
            }
        }
        values.push(row);
    }
    Rows { ids, values }
}

/// The same rows as batches of `per_batch` rows from one site.
pub fn batches(rows: &Rows, per_batch: usize, site: SiteId) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut hlc = Hlc::from_parts(1_700_000_000_000, 0);
    for chunk in rows
        .ids
        .iter()
        .zip(&rows.values)
        .collect::<Vec<_>>()
        .chunks(per_batch.max(1))
    {
        let changes = chunk
            .iter()
            .map(|(id, values)| {
                hlc = Hlc(hlc.0 + 1);
                Change::Row {
                    table: 0,
                    id: (*id).clone(),
                    cells: values
                        .iter()
                        .enumerate()
                        .map(|(c, v)| CellChange {
                            column: c as u16,
                            hlc,
                            site: 0,
                            value: v.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(Batch {
            sites: vec![site],
            changes,
        });
    }
    out
}
