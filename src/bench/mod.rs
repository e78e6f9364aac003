//! `puente bench`: every performance figure next to the baseline measured
//! in the same run.
//!
//! Owns: orchestrating the measurements and collecting figures.
//! Must not: be used by the daemon; it only drives the library and, for
//! sync figures, real daemons on 127.0.0.1.

pub mod catchup;
pub mod data;
pub mod latency;
pub mod merge;
pub mod report;
pub mod seal;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

pub use report::{Figure, Machine, Report};

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
    /// The `puente` binary to run daemons with.
    pub bin: PathBuf,
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
    if wanted(opts, "catchup") || wanted(opts, "idle") {
        let f = runtime.block_on(catchup::run(&opts.bin, opts.rows, opts.idle_seconds))?;
        let ratio = f.seconds / f.plain_insert_s;
        figures.push(
            Figure::new(
                "catchup.seconds",
                &format!("catch-up of {} rows x 8 cols (3 sealed) over QUIC", f.rows),
                f.seconds,
                "s",
            )
            .baseline(f.plain_insert_s)
            .ratio(ratio)
            .target("ratio <= 3", ratio <= 3.0),
        );
        figures.push(Figure::new(
            "catchup.rows_per_s",
            "catch-up: rows/s",
            f.rows as f64 / f.seconds,
            "rows/s",
        ));
        figures.push(Figure::new(
            "catchup.wire_mib",
            "catch-up: UDP bytes both ways at the receiver",
            (f.udp_bytes_in + f.udp_bytes_out) as f64 / 1_048_576.0,
            "MiB",
        ));
        figures.push(Figure::new(
            "catchup.payload_mib",
            "catch-up: frame bytes received",
            f.payload_bytes as f64 / 1_048_576.0,
            "MiB",
        ));
        let mib = |kib: u64| kib as f64 / 1024.0;
        figures.push(
            Figure::new(
                "daemon.rss_start_mib",
                "daemon RSS after start (empty replica)",
                mib(f.rss_empty_start_kib),
                "MiB",
            )
            .target("<= 40 MiB", mib(f.rss_empty_start_kib) <= 40.0),
        );
        figures.push(
            Figure::new(
                "daemon.rss_start_full_mib",
                &format!("daemon RSS after start ({} rows)", f.rows),
                mib(f.rss_source_start_kib),
                "MiB",
            )
            .target("<= 40 MiB", mib(f.rss_source_start_kib) <= 40.0),
        );
        figures.push(
            Figure::new(
                "daemon.rss_after_catchup_mib",
                "daemon RSS after the catch-up",
                mib(f.rss_empty_after_kib),
                "MiB",
            )
            .target("<= 40 MiB", mib(f.rss_empty_after_kib) <= 40.0),
        );
        let per_30s = |cpu: f64| cpu * 30.0 / f.idle_seconds.max(0.001);
        figures.push(
            Figure::new(
                "daemon.idle_cpu_s_per_30s",
                &format!("idle CPU per 30 s (measured over {:.0} s)", f.idle_seconds),
                per_30s(f.idle_cpu_empty_s.max(f.idle_cpu_source_s)),
                "s",
            )
            .target(
                "<= 0.3 s (1 %)",
                per_30s(f.idle_cpu_empty_s.max(f.idle_cpu_source_s)) <= 0.3,
            ),
        );
    }
    Ok(Report {
        puente_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: Machine::this(),
        parameters: serde_json::json!({
            "rows": opts.rows,
            "seal_count": opts.seal_count,
            "latency_samples": opts.latency_samples,
            "idle_seconds": opts.idle_seconds,
        }),
        figures,
    })
}
