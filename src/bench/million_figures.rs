//! Owns: the figures of the million-row catch-up (`million.*` keys), each
//! next to its bound from issue 16: the first variant is the build as
//! shipped; the others are reported under `million.alt.LABEL.*` for
//! comparison.
//!
//! Must not: measure anything.

use super::Figure;
use super::million::{CatchupRun, MillionFigures};

/// Catch-up time against a plain insert of the same rows.
const CATCHUP_BOUND: f64 = 2.5;
const PEAK_RSS_BOUND_MIB: f64 = 160.0;
const RSS_AFTER_BOUND_MIB: f64 = 40.0;
/// Status and metrics during the catch-up, p99.
const ANSWER_BOUND_MS: f64 = 10.0;
/// CPU of the busier daemon, 30 to 60 s after the catch-up.
const IDLE_CPU_BOUND_PCT: f64 = 1.0;

/// Nearest-rank percentile of unsorted samples.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU percent of the busier daemon over the windows `from..to` (a sixth
/// of the minute after each).
fn cpu_pct(run: &CatchupRun, from: usize, to: usize) -> f64 {
    let sum = |v: &[f64]| v.iter().skip(from).take(to - from).sum::<f64>();
    let windows = run.cpu_receiver.len().min(to).saturating_sub(from).max(1);
    sum(&run.cpu_receiver).max(sum(&run.cpu_source)) * 100.0
        / (windows as f64 * run.window_s.max(1e-9))
}

pub fn figures(f: &MillionFigures) -> Vec<Figure> {
    let mut out = Vec::new();
    let Some((first, rest)) = f.runs.split_first() else {
        return out;
    };
    let rows = f.rows;
    let ratio = first.seconds / f.plain_insert_s;
    out.push(
        Figure::new(
            "million.catchup_s",
            &format!(
                "catch-up of {rows} rows x 8 cols (3 sealed), encrypted replicas, {} (baseline: plain SQLite insert)",
                first.label
            ),
            first.seconds,
            "s",
        )
        .baseline(f.plain_insert_s)
        .ratio(ratio)
        .target(&format!("ratio <= {CATCHUP_BOUND}"), ratio <= CATCHUP_BOUND),
    );
    out.push(Figure::new(
        "million.rows_per_s",
        "million: catch-up rows/s",
        rows as f64 / first.seconds.max(1e-9),
        "rows/s",
    ));
    out.extend(run_figures("million", first));
    for (key, what, samples) in [
        ("status", "GET /v1/status", &first.status_ms),
        ("metrics", "GET /v1/metrics", &first.metrics_ms),
    ] {
        let n = samples.len();
        out.push(
            Figure::new(
                &format!("million.{key}_p50_ms"),
                &format!("million: {what} during the catch-up, p50 ({n} polls)"),
                percentile(samples, 50.0),
                "ms",
            )
            .samples(samples.clone()),
        );
        let p99 = percentile(samples, 99.0);
        out.push(
            Figure::new(
                &format!("million.{key}_p99_ms"),
                &format!("million: {what} during the catch-up, p99"),
                p99,
                "ms",
            )
            .target(&format!("< {ANSWER_BOUND_MS} ms"), p99 < ANSWER_BOUND_MS),
        );
        out.push(Figure::new(
            &format!("million.{key}_max_ms"),
            &format!("million: {what} during the catch-up, max"),
            percentile(samples, 100.0),
            "ms",
        ));
    }
    out.push(Figure::new(
        "million.wal_peak_mib",
        "million: the receiver's WAL, largest seen during the catch-up",
        first.wal_peak_bytes as f64 / 1_048_576.0,
        "MiB",
    ));
    out.push(Figure::new(
        "million.wal_after_mib",
        "million: the receiver's WAL a minute after the catch-up",
        first.wal_after_bytes as f64 / 1_048_576.0,
        "MiB",
    ));
    let ratio = f.status_full_ms / f.status_small_ms.max(1e-9);
    out.push(
        Figure::new(
            "million.status_at_rest_ms",
            &format!(
                "million: status (with the digest) at rest, {rows} rows (baseline: {} rows)",
                f.status_small_rows
            ),
            f.status_full_ms,
            "ms",
        )
        .baseline(f.status_small_ms)
        .ratio(ratio),
    );
    for run in rest {
        let prefix = format!("million.alt.{}", run.label);
        out.push(Figure::new(
            &format!("{prefix}.catchup_s"),
            &format!("million, {}: catch-up", run.label),
            run.seconds,
            "s",
        ));
        out.extend(run_figures(&prefix, run));
    }
    out
}

/// Memory and CPU figures of one receiver.
fn run_figures(prefix: &str, run: &CatchupRun) -> Vec<Figure> {
    let label = &run.label;
    let peak = mib(run.peak_rss_kib);
    let at30 = mib(run.rss_30s_kib);
    let cpu_late = cpu_pct(run, 3, 6);
    let mut samples = run.cpu_receiver.clone();
    samples.extend(&run.cpu_source);
    vec![
        Figure::new(
            &format!("{prefix}.peak_rss_mib"),
            &format!("million, {label}: receiver peak RSS (VmHWM)"),
            peak,
            "MiB",
        )
        .target(
            &format!("<= {PEAK_RSS_BOUND_MIB} MiB"),
            peak <= PEAK_RSS_BOUND_MIB,
        ),
        Figure::new(
            &format!("{prefix}.rss_after_mib"),
            &format!("million, {label}: receiver RSS right after"),
            mib(run.rss_after_kib),
            "MiB",
        ),
        Figure::new(
            &format!("{prefix}.rss_30s_mib"),
            &format!("million, {label}: receiver RSS 30 s after"),
            at30,
            "MiB",
        )
        .target(
            &format!("<= {RSS_AFTER_BOUND_MIB} MiB"),
            at30 <= RSS_AFTER_BOUND_MIB,
        ),
        Figure::new(
            &format!("{prefix}.rss_60s_mib"),
            &format!("million, {label}: receiver RSS 60 s after"),
            mib(run.rss_60s_kib),
            "MiB",
        ),
        Figure::new(
            &format!("{prefix}.idle_cpu_pct_0_30s"),
            &format!("million, {label}: CPU of the busier daemon 0-30 s after"),
            cpu_pct(run, 0, 3),
            "%",
        )
        .samples(samples),
        Figure::new(
            &format!("{prefix}.idle_cpu_pct_30_60s"),
            &format!("million, {label}: CPU of the busier daemon 30-60 s after"),
            cpu_late,
            "%",
        )
        .target(
            &format!("<= {IDLE_CPU_BOUND_PCT} %"),
            cpu_late <= IDLE_CPU_BOUND_PCT,
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::percentile(&v, 50.0), 50.0);
        assert_eq!(super::percentile(&v, 99.0), 99.0);
        assert_eq!(super::percentile(&v, 100.0), 100.0);
        assert_eq!(super::percentile(&[], 99.0), 0.0);
    }
}
