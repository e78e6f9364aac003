//! Benchmark figures and their presentation.
//!
//! Owns: the `Figure` record (value, unit, baseline measured in the same
//! run, ratio, target and whether it was met), the table printed for
//! people and the JSON written for comparison across versions.
//! Must not: measure anything.

use serde::Serialize;

/// One measured figure. JSON keys are stable (see docs/performance.md).
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable key, e.g. `merge.rows_per_s`.
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: String,
    /// The baseline measured in the same run, if the figure has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// value / baseline (or the figure's own ratio definition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The target, as text (e.g. "ratio <= 3").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Every measurement behind a median figure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

impl Figure {
    pub fn new(key: &str, label: &str, value: f64, unit: &str) -> Figure {
        Figure {
            key: key.to_string(),
            label: label.to_string(),
            value,
            unit: unit.to_string(),
            baseline: None,
            ratio: None,
            target: None,
            met: None,
            samples: Vec::new(),
        }
    }

    pub fn samples(mut self, samples: Vec<f64>) -> Figure {
        self.samples = samples;
        self
    }

    pub fn baseline(mut self, baseline: f64) -> Figure {
        self.baseline = Some(baseline);
        self
    }

    pub fn ratio(mut self, ratio: f64) -> Figure {
        self.ratio = Some(ratio);
        self
    }

    pub fn target(mut self, target: &str, met: bool) -> Figure {
        self.target = Some(target.to_string());
        self.met = Some(met);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub puente_version: String,
    pub machine: Machine,
    pub parameters: serde_json::Value,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    pub os: String,
}

impl Machine {
    pub fn this() -> Machine {
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .and_then(|kb| kb.parse::<u64>().ok())
                    })
            })
            .map_or(0, |kb| kb / 1024);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            os: std::env::consts::OS.to_string(),
        }
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The human table.
pub fn render(report: &BenchReport) -> String {
    let mut out = format!(
        "puente {} bench on {} cores, {} MiB\n\n",
        report.puente_version, report.machine.cores, report.machine.memory_mib
    );
    let width = report
        .figures
        .iter()
        .map(|f| f.label.len())
        .max()
        .unwrap_or(10);
    for f in &report.figures {
        let value = format!("{} {}", format_value(f.value), f.unit);
        let baseline = f
            .baseline
            .map(|b| format!("baseline {}", format_value(b)))
            .unwrap_or_default();
        let ratio = f.ratio.map(|r| format!("ratio {r:.2}")).unwrap_or_default();
        let target = match (&f.target, f.met) {
            (Some(t), Some(true)) => format!("target {t}: met"),
            (Some(t), Some(false)) => format!("target {t}: MISSED"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<width$}  {:>16}  {:>18}  {:>12}  {}\n",
            f.label, value, baseline, ratio, target
        ));
    }
    out
}
