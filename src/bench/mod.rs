//! `puente bench`: every performance figure next to the baseline measured
//! in the same run.
//!
//! Owns: orchestrating the measurements and collecting figures; figures
//! that pair a subject with a baseline are measured `repeat` times, each
//! time both, and reported as medians (the ratio is the median of the
//! pairwise ratios, which holds when the machine's speed drifts).
//! Must not: be used by the daemon; it only drives the library and, for
//! sync figures, real daemons on 127.0.0.1.

pub mod catchup;
pub mod data;
pub mod latency;
pub mod maintenance;
pub mod merge;
pub mod million;
pub mod million_figures;
pub mod proc_stat;
pub mod report;
pub mod rights;
pub mod schema;
pub mod seal;
pub mod wan;
pub mod web;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

pub use report::{BenchReport, Figure, Machine};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub rows: usize,
    pub only: Option<String>,
    /// Sealed puts per seal measurement.
    pub seal_count: usize,
    /// Samples per latency measurement.
    pub latency_samples: usize,
    /// Seconds the daemons sit idle for the CPU figure.
    pub idle_seconds: f64,
    /// Repetitions of the merge and catch-up pairs.
    pub repeat: usize,
    /// Outreach events behind the web agenda figures.
    pub web_events: usize,
    /// The `puente` binary to run daemons with.
    pub bin: PathBuf,
    /// Rows of the million-row catch-up (`--only million`; never run
    /// unless asked for by name).
    pub million_rows: usize,
    /// Receiver builds and settings the million-row catch-up compares;
    /// empty: this binary as it is.
    pub million_variants: Vec<million::Variant>,
    /// Seconds watched after the million-row catch-up (60: RSS at 30 s,
    /// CPU in six windows).
    pub million_after_seconds: f64,
}

/// Requests per web figure.
const WEB_SAMPLES: usize = 40;

/// Cells re-sealed per `--seal-count` (4,000 by default: 16,000 cells, long
/// enough for a few hundred live puts during the reseal).
const RESEAL_CELLS_PER_SEAL: usize = 4;

mod maintenance_figures;

fn wanted(opts: &BenchOptions, name: &str) -> bool {
    opts.only
        .as_deref()
        .is_none_or(|o| o.split(',').any(|p| p.trim() == name))
}

/// The median (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A subject/baseline pair measured several times.
fn paired(
    key: &str,
    label: &str,
    unit: &str,
    subject: &[f64],
    baseline: &[f64],
    bound: f64,
) -> Figure {
    let ratios: Vec<f64> = subject.iter().zip(baseline).map(|(s, b)| s / b).collect();
    let ratio = median(&ratios);
    Figure::new(key, label, median(subject), unit)
        .baseline(median(baseline))
        .ratio(ratio)
        .target(&format!("ratio <= {bound}"), ratio <= bound)
        .samples(subject.to_vec())
}

pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let repeat = opts.repeat.max(1);
    let mut figures = Vec::new();
    if wanted(opts, "merge") {
        // One transaction for the whole change set, as the baseline insert.
        let runs = (0..repeat)
            .map(|i| merge::run(opts.rows, opts.rows, i % 2 == 1))
            .collect::<Result<Vec<_>>>()?;
        merge_figures(&mut figures, &runs, opts.rows);
    }
    if wanted(opts, "rights") {
        let runs = (0..repeat)
            .map(|i| rights::run(opts.rows, i % 2 == 0))
            .collect::<Result<Vec<_>>>()?;
        rights_figures(&mut figures, &runs, opts.rows);
    }
    if wanted(opts, "schema") {
        schema_figures(&mut figures, &schema::run(opts.rows)?);
    }
    if wanted(opts, "seal") {
        for recipients in [1, 2] {
            seal_figures(&mut figures, &seal::run(recipients, opts.seal_count)?);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if wanted(opts, "latency") {
        for (key, delay) in [
            ("direct", None),
            ("relay_20ms", Some(Duration::from_millis(20))),
        ] {
            let f = runtime.block_on(latency::run(&opts.bin, opts.latency_samples, delay))?;
            let bound = delay.map_or(0.0, |d| d.as_secs_f64() * 1000.0) + 2.0;
            let label = match delay {
                None => "live latency, direct".to_string(),
                Some(d) => format!("live latency, {} ms one-way relay", d.as_millis()),
            };
            figures.push(
                Figure::new(
                    &format!("latency.{key}.p50_ms"),
                    &format!("{label}: p50"),
                    f.p50_ms,
                    "ms",
                )
                .target(&format!("<= {bound:.0} ms"), f.p50_ms <= bound),
            );
            figures.push(Figure::new(
                &format!("latency.{key}.p99_ms"),
                &format!("{label}: p99"),
                f.p99_ms,
                "ms",
            ));
            figures.push(Figure::new(
                &format!("latency.{key}.max_ms"),
                &format!("{label}: max ({} samples)", f.samples),
                f.max_ms,
                "ms",
            ));
        }
    }
    // Issue 16: a catch-up through a WAN-shaped relay, protocol 2 against
    // this build's newest (see wan.rs).
    if wanted(opts, "wan") {
        let (mut plain, mut compressed) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            plain.push(runtime.block_on(wan::run(&opts.bin, opts.rows, Some(&[1, 2])))?);
            compressed.push(runtime.block_on(wan::run(&opts.bin, opts.rows, None))?);
        }
        figures.extend(wan::figures(&plain, &compressed, opts.rows));
    }
    if wanted(opts, "web") {
        let f = runtime.block_on(web::run(opts.web_events, WEB_SAMPLES))?;
        figures.extend(web::figures(&f));
    }
    if wanted(opts, "backup") {
        let runs = maintenance::backups(opts.rows, repeat)?;
        maintenance_figures::backup(&mut figures, &runs, opts.rows);
    }
    if wanted(opts, "reseal") {
        let cells = opts.seal_count * RESEAL_CELLS_PER_SEAL;
        let runs = (0..repeat)
            .map(|_| runtime.block_on(maintenance::reseal(cells)))
            .collect::<Result<Vec<_>>>()?;
        maintenance_figures::reseal(&mut figures, &runs);
        let puts =
            runtime.block_on(maintenance::puts_during_reseal(cells, opts.latency_samples))?;
        maintenance_figures::puts(&mut figures, &puts);
    }
    if wanted(opts, "catchup") || wanted(opts, "idle") {
        let (mut plain, mut encrypted) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            // The idle window follows the last catch-up only, between
            // encrypted replicas (how offices run).
            let idle = if i + 1 == repeat {
                opts.idle_seconds
            } else {
                0.0
            };
            plain.push(runtime.block_on(catchup::run(&opts.bin, opts.rows, 0.0, false))?);
            encrypted.push(runtime.block_on(catchup::run(&opts.bin, opts.rows, idle, true))?);
        }
        catchup_figures(&mut figures, &plain, &encrypted, opts.rows);
    }
    // Long (minutes at 1,000,000 rows): only when named.
    if opts
        .only
        .as_deref()
        .is_some_and(|o| o.split(',').any(|p| p.trim() == "million"))
    {
        let variants = if opts.million_variants.is_empty() {
            vec![million::Variant::parse("this-build")?]
        } else {
            opts.million_variants.clone()
        };
        let f = runtime.block_on(million::run(
            &opts.bin,
            opts.million_rows,
            opts.million_after_seconds,
            &variants,
        ))?;
        figures.extend(million_figures::figures(&f));
    }
    Ok(BenchReport {
        puente_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: Machine::this(),
        parameters: serde_json::json!({
            "rows": opts.rows,
            "seal_count": opts.seal_count,
            "latency_samples": opts.latency_samples,
            "idle_seconds": opts.idle_seconds,
            "repeat": repeat,
            "web_events": opts.web_events,
            "million_rows": opts.million_rows,
        }),
        figures,
    })
}

/// The bound on encrypted / unencrypted time, for apply and catch-up.
const AT_REST_BOUND: f64 = 1.25;
/// The bound on apply with / without the drift check (a comparison per
/// stamp: within the noise).
const DRIFT_CHECK_BOUND: f64 = 1.1;
/// The bound on opening an encrypted replica with its raw key.
const OPEN_BOUND_MS: f64 = 50.0;

fn merge_figures(figures: &mut Vec<Figure>, runs: &[merge::MergeTimes], rows: usize) {
    let plain: Vec<f64> = runs.iter().map(|m| m.apply_s).collect();
    let encrypted: Vec<f64> = runs.iter().map(|m| m.apply_encrypted_s).collect();
    let insert: Vec<f64> = runs.iter().map(|m| m.plain_insert_s).collect();
    let what = format!("apply {rows} rows x 8 cols (3 sealed) from memory");
    figures.push(paired(
        "merge.apply_s",
        &format!("merge: {what}, unencrypted replica"),
        "s",
        &plain,
        &insert,
        2.0,
    ));
    figures.push(Figure::new(
        "merge.rows_per_s",
        "merge: rows/s, unencrypted replica",
        rows as f64 / median(&plain),
        "rows/s",
    ));
    figures.push(paired(
        "merge.encrypted.apply_s",
        &format!("merge: {what}, encrypted replica (baseline: unencrypted)"),
        "s",
        &encrypted,
        &plain,
        AT_REST_BOUND,
    ));
    let unchecked: Vec<f64> = runs.iter().map(|m| m.apply_unchecked_s).collect();
    figures.push(paired(
        "merge.drift_check.apply_s",
        &format!("merge: {what}, unencrypted, with the drift check (baseline: without it)"),
        "s",
        &plain,
        &unchecked,
        DRIFT_CHECK_BOUND,
    ));
    let to_insert: Vec<f64> = encrypted.iter().zip(&insert).map(|(e, i)| e / i).collect();
    figures.push(Figure::new(
        "merge.encrypted.vs_plain_insert",
        "merge: encrypted apply / plain SQLite insert (unencrypted)",
        median(&to_insert),
        "x",
    ));
    figures.push(Figure::new(
        "merge.encrypted.rows_per_s",
        "merge: rows/s, encrypted replica",
        rows as f64 / median(&encrypted),
        "rows/s",
    ));
    let open_plain: Vec<f64> = runs.iter().map(|m| m.open_plain_ms).collect();
    let open: Vec<f64> = runs.iter().map(|m| m.open_encrypted_ms).collect();
    let open_ms = median(&open);
    figures.push(
        Figure::new(
            "open.encrypted_ms",
            &format!("open the encrypted replica ({rows} rows) with its raw key"),
            open_ms,
            "ms",
        )
        .baseline(median(&open_plain))
        .target(&format!("< {OPEN_BOUND_MS:.0} ms"), open_ms < OPEN_BOUND_MS)
        .samples(open),
    );
}

/// The bound on applying with rights / without (the issue's 5 %).
const RIGHTS_BOUND: f64 = 1.05;

fn rights_figures(figures: &mut Vec<Figure>, runs: &[rights::RightsTimes], rows: usize) {
    let pick = |f: fn(&rights::RightsTimes) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    figures.push(paired(
        "rights.apply_s",
        &format!("rights: apply {rows} new rows from a peer that may insert them, schema with rights (baseline: without)"),
        "s",
        &pick(|r| r.insert_s),
        &pick(|r| r.insert_open_s),
        RIGHTS_BOUND,
    ));
    figures.push(paired(
        "rights.update_s",
        &format!("rights: apply updates of 2 columns of {rows} rows from a peer that may make them, with rights (baseline: without)"),
        "s",
        &pick(|r| r.update_s),
        &pick(|r| r.update_open_s),
        RIGHTS_BOUND,
    ));
}

/// Adding a column rewrites no row: it must take under a second.
const ADD_COLUMN_BOUND_S: f64 = 1.0;
/// Sealing a shared column's values, against raw age encryption.
const SEAL_COLUMN_BOUND: f64 = 0.7;

fn schema_figures(figures: &mut Vec<Figure>, f: &schema::SchemaFigures) {
    figures.push(
        Figure::new(
            "schema.add_column_s",
            &format!(
                "schema: add a column to a {}-row table (encrypted replica)",
                f.rows
            ),
            f.add_column_s,
            "s",
        )
        .target(
            &format!("< {ADD_COLUMN_BOUND_S} s"),
            f.add_column_s < ADD_COLUMN_BOUND_S,
        ),
    );
    let ratio = f.seal_cells_per_s / f.raw_per_s_all_cores;
    figures.push(
        Figure::new(
            "schema.seal_column.cells_per_s",
            &format!(
                "schema: shared -> sealed, {} values sealed anew, {} cores (baseline: raw age encryptions/s)",
                f.sealed_cells, f.cores
            ),
            f.seal_cells_per_s,
            "cells/s",
        )
        .baseline(f.raw_per_s_all_cores)
        .ratio(ratio)
        .target(
            &format!(">= {SEAL_COLUMN_BOUND} of raw"),
            ratio >= SEAL_COLUMN_BOUND,
        ),
    );
}

fn seal_figures(figures: &mut Vec<Figure>, f: &seal::SealFigures) {
    let r = format!("{}r", f.recipients);
    let recipients = f.recipients;
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

fn catchup_figures(
    figures: &mut Vec<Figure>,
    plain: &[catchup::CatchupFigures],
    runs: &[catchup::CatchupFigures],
    rows: usize,
) {
    let seconds: Vec<f64> = plain.iter().map(|r| r.seconds).collect();
    let baseline: Vec<f64> = plain.iter().map(|r| r.plain_insert_s).collect();
    let label = format!("catch-up of {rows} rows x 8 cols (3 sealed) over QUIC");
    figures.push(paired(
        "catchup.seconds",
        &format!("{label}, unencrypted replicas"),
        "s",
        &seconds,
        &baseline,
        3.0,
    ));
    figures.push(Figure::new(
        "catchup.rows_per_s",
        "catch-up: rows/s, unencrypted replicas",
        rows as f64 / median(&seconds),
        "rows/s",
    ));
    let encrypted: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    figures.push(paired(
        "catchup.encrypted.seconds",
        &format!("{label}, encrypted replicas (baseline: unencrypted)"),
        "s",
        &encrypted,
        &seconds,
        AT_REST_BOUND,
    ));
    let insert: Vec<f64> = runs.iter().map(|r| r.plain_insert_s).collect();
    let to_insert: Vec<f64> = encrypted.iter().zip(&insert).map(|(e, i)| e / i).collect();
    figures.push(Figure::new(
        "catchup.encrypted.vs_plain_insert",
        "catch-up, encrypted / plain SQLite insert (unencrypted)",
        median(&to_insert),
        "x",
    ));
    figures.push(Figure::new(
        "catchup.encrypted.rows_per_s",
        "catch-up: rows/s, encrypted replicas",
        rows as f64 / median(&encrypted),
        "rows/s",
    ));
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let wire: Vec<f64> = runs
        .iter()
        .map(|r| mib(r.udp_bytes_in + r.udp_bytes_out))
        .collect();
    figures.push(Figure::new(
        "catchup.wire_mib",
        "catch-up: UDP payload both ways at the receiver",
        median(&wire),
        "MiB",
    ));
    let frames: Vec<f64> = runs.iter().map(|r| mib(r.payload_bytes)).collect();
    figures.push(Figure::new(
        "catchup.frames_mib",
        "catch-up: frame bytes received",
        median(&frames),
        "MiB",
    ));
    let kib_to_mib = |kib: u64| kib as f64 / 1024.0;
    let Some(last) = runs.last() else { return };
    let rss = [
        (
            "daemon.rss_start_mib",
            "daemon RSS after start (empty replica)".to_string(),
            last.rss_empty_start_kib,
        ),
        (
            "daemon.rss_start_full_mib",
            format!("daemon RSS after start ({rows} rows)"),
            last.rss_source_start_kib,
        ),
        (
            "daemon.rss_after_catchup_mib",
            "daemon RSS right after the catch-up".to_string(),
            last.rss_empty_after_kib,
        ),
    ];
    for (key, label, kib) in rss {
        let v = kib_to_mib(kib);
        figures.push(Figure::new(key, &label, v, "MiB").target("<= 40 MiB", v <= 40.0));
    }
    if last.idle_seconds > 0.0 {
        let cpu = last.idle_cpu_empty_s.max(last.idle_cpu_source_s) * 30.0 / last.idle_seconds;
        figures.push(
            Figure::new(
                "daemon.idle_cpu_s_per_30s",
                &format!(
                    "idle CPU per 30 s, busier daemon (measured over {:.0} s)",
                    last.idle_seconds
                ),
                cpu,
                "s",
            )
            .target("<= 0.3 s (1 %)", cpu <= 0.3),
        );
        let v = kib_to_mib(last.rss_empty_after_idle_kib);
        figures.push(
            Figure::new(
                "daemon.rss_idle_after_catchup_mib",
                "daemon RSS after the idle window",
                v,
                "MiB",
            )
            .target("<= 40 MiB", v <= 40.0),
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(&[]), 0.0);
    }
}
