//! `puente bench`: the figures, each next to its baseline from the same
//! run, printed and optionally written as JSON.
//!
//! Owns: the command's arguments and where the report goes.
//! Must not: measure anything itself (bench/ does).

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Rows for catch-up and merge figures.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Sealed puts per seal measurement.
    #[arg(long, default_value_t = 4_000)]
    seal_count: usize,
    /// Samples per live-latency measurement.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Seconds the daemons sit idle for the CPU figure.
    #[arg(long, default_value_t = 30.0)]
    idle_seconds: f64,
    /// Repetitions of the merge and catch-up measurements (medians).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Outreach events behind the web agenda figures.
    #[arg(long, default_value_t = 2_000)]
    web_events: usize,
    /// Comma-separated subset: merge, rights, schema, catchup, latency, seal, idle, web, wan,
    /// backup, reseal; `million` (only when named) runs the million-row catch-up.
    #[arg(long)]
    only: Option<String>,
    /// Rows of the million-row catch-up.
    #[arg(long, default_value_t = 1_000_000)]
    million_rows: usize,
    /// A receiver to compare in the million-row catch-up, as
    /// LABEL:PATH[:K=V,K=V] (an empty PATH is this binary); repeatable.
    #[arg(long = "million-variant")]
    million_variants: Vec<String>,
    /// Seconds watched after the million-row catch-up (RSS at the
    /// middle and the end, CPU in six windows).
    #[arg(long, default_value_t = 60.0)]
    million_after_seconds: f64,
    /// Also write the figures as JSON to FILE.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bin = std::env::current_exe()?;
    let million_variants = args
        .million_variants
        .iter()
        .map(|v| crate::bench::million::Variant::parse(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    bench(
        &crate::bench::BenchOptions {
            million_rows: args.million_rows,
            million_variants,
            million_after_seconds: args.million_after_seconds,
            rows: args.rows,
            only: args.only,
            seal_count: args.seal_count,
            latency_samples: args.latency_samples,
            idle_seconds: args.idle_seconds,
            repeat: args.repeat,
            web_events: args.web_events,
            bin,
        },
        args.json.as_deref(),
    )
}

fn bench(opts: &crate::bench::BenchOptions, json: Option<&Path>) -> anyhow::Result<()> {
    // In-process daemons log like `puente run` when RUST_LOG asks for it.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let report = crate::bench::run(opts)?;
    print!("{}", crate::bench::report::render(&report));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}
