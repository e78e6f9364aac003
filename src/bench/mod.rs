//! `puente bench`: every performance figure next to the baseline measured
//! in the same run.
//!
//! Owns: orchestrating the measurements and collecting figures.
//! Must not: be used by the daemon; it only drives the library and, for
//! sync figures, real daemons on 127.0.0.1.

pub mod data;
pub mod merge;
pub mod report;
pub mod seal;

use anyhow::Result;

pub use report::{Figure, Machine, Report};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub rows: usize,
    pub batch_rows: usize,
    pub only: Option<String>,
    /// Sealed puts per seal measurement.
    pub seal_count: usize,
}

fn wanted(opts: &BenchOptions, name: &str) -> bool {
    opts.only
        .as_deref()
        .is_none_or(|o| o.split(',').any(|p| p.trim() == name))
}

pub fn run(opts: &BenchOptions) -> Result<Report> {
    let mut figures = Vec::new();
    if wanted(opts, "merge") {
        // One transaction for the whole change set, as the baseline insert.
        let m = merge::run(opts.rows, opts.rows)?;
        let ratio = m.apply_s / m.plain_insert_s;
        figures.push(
            Figure::new(
                "merge.apply_s",
                &format!("merge: apply {} rows x 8 cols", m.rows),
                m.apply_s,
                "s",
            )
            .baseline(m.plain_insert_s)
            .ratio(ratio)
            .target("ratio <= 2", ratio <= 2.0),
        );
        figures.push(Figure::new(
            "merge.rows_per_s",
            "merge: rows/s",
            m.rows as f64 / m.apply_s,
            "rows/s",
        ));
    }
    if wanted(opts, "seal") {
        for recipients in [1, 2] {
            let f = seal::run(recipients, opts.seal_count)?;
            let r = format!("{recipients}r");
            let one = f.puts_one_thread / f.raw_one_thread;
            figures.push(
                Figure::new(
                    &format!("seal.{r}.puts_per_s_1_thread"),
                    &format!("sealed puts/s, {recipients} recipient(s), 1 thread"),
                    f.puts_one_thread,
                    "puts/s",
                )
                .baseline(f.raw_one_thread)
                .ratio(one)
                .target(">= 0.8 of raw", one >= 0.8),
            );
            let all = f.puts_all_cores / f.raw_all_cores;
            figures.push(
                Figure::new(
                    &format!("seal.{r}.puts_per_s_all_cores"),
                    &format!(
                        "sealed puts/s, {recipients} recipient(s), {} cores",
                        f.cores
                    ),
                    f.puts_all_cores,
                    "puts/s",
                )
                .baseline(f.raw_all_cores)
                .ratio(all)
                .target(">= 0.8 of raw", all >= 0.8),
            );
            let speedup = f.puts_all_cores / f.puts_one_thread;
            let floor = 0.8 * f.cores as f64;
            figures.push(
                Figure::new(
                    &format!("seal.{r}.core_speedup"),
                    &format!("sealed puts, {recipients} recipient(s): all cores / 1 thread"),
                    speedup,
                    "x",
                )
                .target(&format!(">= {floor:.1} (0.8 x cores)"), speedup >= floor),
            );
        }
    }
    Ok(Report {
        puente_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: Machine::this(),
        parameters: serde_json::json!({ "rows": opts.rows, "batch_rows": opts.batch_rows }),
        figures,
    })
}
