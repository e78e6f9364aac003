//! Owns: the maintenance figures (backup, reseal) as `puente bench` reports
//! them (keys in docs/performance.md).
//!
//! Must not: measure anything.

use super::maintenance::{self, BackupRun, PutsDuringReseal, ResealRun};
use super::{Figure, median};

/// Backup time over the baseline's, at most.
const BACKUP_BOUND: f64 = 1.5;
/// Reseal rate over raw age's, at least.
const RESEAL_BOUND: f64 = 0.7;
/// Put latency during a reseal, p99, at most.
const PUT_P99_BOUND_MS: f64 = 50.0;

pub(super) fn backup(figures: &mut Vec<Figure>, runs: &[BackupRun], rows: usize) {
    let subject: Vec<f64> = runs.iter().map(|r| r.puente_s).collect();
    let label = format!(
        "backup: a {rows}-row encrypted replica ({:.0} MiB) to a file, synced (baseline: SQLite's online backup of the same file)",
        runs.first()
            .map_or(0.0, |r| r.bytes as f64 / (1 << 20) as f64)
    );
    let mut figure =
        Figure::new("backup.s", &label, median(&subject), "s").samples(subject.clone());
    let baselines: Option<Vec<f64>> = runs.iter().map(|r| r.baseline_s).collect();
    match baselines {
        Some(b) => {
            let ratios: Vec<f64> = subject.iter().zip(&b).map(|(s, b)| s / b).collect();
            let ratio = median(&ratios);
            figure = figure
                .baseline(median(&b))
                .ratio(ratio)
                .target(&format!("ratio <= {BACKUP_BOUND}"), ratio <= BACKUP_BOUND);
        }
        None => {
            let why = maintenance::baseline_missing().unwrap_or_default();
            figure.label.push_str(&format!("; baseline skipped: {why}"));
        }
    }
    figures.push(figure);
}

pub(super) fn reseal(figures: &mut Vec<Figure>, runs: &[ResealRun]) {
    let rates: Vec<f64> = runs.iter().map(|r| r.reseal_per_s).collect();
    let raw: Vec<f64> = runs.iter().map(|r| r.raw_per_s).collect();
    let ratios: Vec<f64> = rates.iter().zip(&raw).map(|(s, b)| s / b).collect();
    let ratio = median(&ratios);
    let cells = runs.first().map_or(0, |r| r.cells);
    figures.push(
        Figure::new(
            "reseal.cells_per_s",
            &format!(
                "reseal: {cells} cells, 1 to 2 recipients, through the running node on every core (baseline: raw age decrypt+encrypt on every core)"
            ),
            median(&rates),
            "cells/s",
        )
        .baseline(median(&raw))
        .ratio(ratio)
        .target(&format!("ratio >= {RESEAL_BOUND}"), ratio >= RESEAL_BOUND)
        .samples(rates),
    );
}

pub(super) fn puts(figures: &mut Vec<Figure>, p: &PutsDuringReseal) {
    let p99 = maintenance::quantile(&p.during_ms, 0.99);
    figures.push(
        Figure::new(
            "reseal.put_p99_ms",
            &format!(
                "reseal: live put (1 sealed cell) p99 while it runs, {} puts (baseline: p99 without a reseal)",
                p.during_ms.len()
            ),
            p99,
            "ms",
        )
        .baseline(maintenance::quantile(&p.idle_ms, 0.99))
        .target(&format!("< {PUT_P99_BOUND_MS} ms"), p99 < PUT_P99_BOUND_MS),
    );
    figures.push(Figure::new(
        "reseal.put_p50_ms",
        "reseal: live put p50 while it runs",
        maintenance::quantile(&p.during_ms, 0.5),
        "ms",
    ));
    figures.push(Figure::new(
        "reseal.put_max_ms",
        "reseal: live put max while it runs",
        p.during_ms.iter().copied().fold(0.0, f64::max),
        "ms",
    ));
}
