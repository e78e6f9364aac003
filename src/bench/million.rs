//! Owns: `puente bench --only million`: a catch-up of 1,000,000 rows (by
//! default) between two real `puente run` daemons with replicas encrypted
//! at rest, next to a plain SQLite insert of the same rows in the same run;
//! what the receiving daemon holds during and after it (peak RSS from
//! VmHWM, RSS 30 s and 60 s after), how fast status and metrics answer
//! while it runs, the CPU it uses in the minute after, the WAL's size; and
//! a status read at 100,000 rows against one at the full count (the digest
//! is O(1)).
//!
//! Variants (another binary, other environment variables, e.g. allocator
//! settings) run the same catch-up from the same source, one after the
//! other, so they are compared within one run.
//!
//! Must not: bind anything but 127.0.0.1; hold the whole row set in
//! memory (rows are made and written in chunks).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::data;
use super::merge::TempDir;
use super::proc_stat::{cpu_seconds, status_kib};
use crate::config::Schema;
use crate::lab::{Lab, Office};
use crate::stamp::SiteId;
use crate::store::{Cursor, PeerRef};

/// Rows made and written at a time.
const CHUNK: usize = 50_000;
/// Status and metrics are polled this often during the catch-up.
const POLL: Duration = Duration::from_millis(50);
/// The window after the catch-up (`after` seconds, 60 by default) is
/// measured in this many parts: CPU per part, RSS at the middle and end.
const WINDOWS: u32 = 6;
/// Status reads timed at rest, per replica size.
const STATUS_READS: usize = 50;

/// A daemon build and environment to run the receiving office with.
#[derive(Debug, Clone)]
pub struct Variant {
    pub label: String,
    /// `None`: the binary running the bench.
    pub bin: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// `LABEL:PATH[:K=V,K=V]` (an empty PATH is this binary).
    pub fn parse(text: &str) -> Result<Variant> {
        let mut parts = text.splitn(3, ':');
        let label = parts.next().unwrap_or_default().trim();
        anyhow::ensure!(
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "a million-row variant is LABEL:PATH[:K=V,K=V] with a label of letters, digits, - and _; got {text:?}"
        );
        let bin = parts.next().filter(|p| !p.is_empty()).map(PathBuf::from);
        let env = parts
            .next()
            .map(|e| {
                e.split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .with_context(|| format!("{kv:?} in variant {label} is not K=V"))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Variant {
            label: label.to_string(),
            bin,
            env,
        })
    }
}

/// One catch-up of the receiving office, as one variant runs it.
#[derive(Debug, Clone)]
pub struct CatchupRun {
    pub label: String,
    pub seconds: f64,
    pub peak_rss_kib: u64,
    pub rss_after_kib: u64,
    pub rss_30s_kib: u64,
    pub rss_60s_kib: u64,
    /// Milliseconds per request, polled during the catch-up.
    pub status_ms: Vec<f64>,
    pub metrics_ms: Vec<f64>,
    /// Seconds of each CPU window after the catch-up.
    pub window_s: f64,
    /// CPU seconds of the receiver and of the source per window after the
    /// catch-up.
    pub cpu_receiver: Vec<f64>,
    pub cpu_source: Vec<f64>,
    pub wal_peak_bytes: u64,
    pub wal_after_bytes: u64,
}

pub struct MillionFigures {
    pub rows: usize,
    pub plain_insert_s: f64,
    /// Median status read on the source at rest with 100,000 rows (or a
    /// tenth of `rows`) and with `rows`.
    pub status_small_ms: f64,
    pub status_small_rows: usize,
    pub status_full_ms: f64,
    pub runs: Vec<CatchupRun>,
}

/// The chunk `index` of the row set (deterministic).
fn chunk(schema: &Schema, pool: &[Vec<u8>], index: usize, n: usize) -> data::Rows {
    data::rows(schema, n, pool, 1_000 + index as u64)
}

fn chunk_sizes(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..rows.div_ceil(CHUNK)).map(move |i| (i, CHUNK.min(rows - i * CHUNK)))
}

/// The plain insert of `merge::plain_insert`, one transaction, rows made
/// chunk by chunk; only the inserts and the commit are timed.
fn plain_insert(dir: &Path, schema: &Schema, pool: &[Vec<u8>], rows: usize) -> Result<f64> {
    let (conn, sql) = super::merge::plain_table(dir, schema)?;
    let mut timed = Duration::ZERO;
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare(&sql)?;
        for (i, n) in chunk_sizes(rows) {
            let part = chunk(schema, pool, i, n);
            let start = Instant::now();
            super::merge::insert_plain(&mut stmt, &part)?;
            timed += start.elapsed();
        }
    }
    let start = Instant::now();
    tx.commit()?;
    timed += start.elapsed();
    Ok(timed.as_secs_f64())
}

/// Fills the source's replica with the chunks `from..to` as if a third
/// office had sent them (one transaction per chunk), then checkpoints.
fn fill(
    office: &Office,
    schema: &Schema,
    pool: &[Vec<u8>],
    site: SiteId,
    chunks: &[(usize, usize)],
) -> Result<()> {
    let mut store = office.open_store()?;
    let peer = PeerRef {
        site,
        name: "bench-origin".into(),
    };
    for &(i, n) in chunks {
        let part = chunk(schema, pool, i, n);
        let batches = data::batches(&part, 5_000, site);
        let first = (i * CHUNK / 5_000) as u64;
        store.apply_group(
            &peer,
            batches
                .into_iter()
                .enumerate()
                .map(|(k, b)| (b, Cursor::at(first + k as u64 + 1)))
                .collect(),
        )?;
    }
    store.checkpoint()?;
    Ok(())
}

/// Median milliseconds of a status read of a daemon at rest.
async fn status_at_rest(office: &Office) -> Result<f64> {
    let client = office.client();
    let mut samples = Vec::with_capacity(STATUS_READS);
    for _ in 0..STATUS_READS {
        let start = Instant::now();
        client.status().await?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(super::median(&samples))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

pub async fn run(
    bin: &Path,
    rows: usize,
    after_seconds: f64,
    variants: &[Variant],
) -> Result<MillionFigures> {
    let window = Duration::from_secs_f64(after_seconds.max(0.6) / f64::from(WINDOWS));
    let tmp = TempDir::new()?;
    let mut specs = vec![("source".to_string(), false)];
    specs.extend(variants.iter().map(|v| (format!("to-{}", v.label), false)));
    let spec_refs: Vec<(&str, bool)> = specs.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    let mut lab = Lab::create_at_rest(
        &tmp.path().join("lab"),
        bin,
        &spec_refs,
        &data::schema_template(),
        true,
    )?;
    for i in 1..lab.offices.len() {
        lab.link(0, i)?;
    }
    let schema = Arc::new(Schema::parse(Path::new("<bench>"), &lab.schema_text)?);
    let pool_schema = data::schema(&[age::x25519::Identity::generate().to_public().to_string()]);
    let pool = data::ciphertext_pool(&pool_schema, 64);

    let plain_insert_s = plain_insert(tmp.path(), &schema, &pool, rows)?;
    let _ = std::fs::remove_file(tmp.path().join("plain.db"));

    // The source at a tenth (at most 100,000 rows), then full: a status
    // read at each size shows the digest is not recomputed.
    let all: Vec<(usize, usize)> = chunk_sizes(rows).collect();
    let small_chunks = all.len().div_ceil(10).clamp(1, 100_000 / CHUNK);
    let small_chunks = small_chunks.min(all.len());
    let site = SiteId::random();
    fill(&lab[0], &schema, &pool, site, &all[..small_chunks]).context("filling the source")?;
    lab[0].start().await?;
    let status_small_ms = status_at_rest(&lab[0]).await?;
    lab[0].stop()?;
    fill(&lab[0], &schema, &pool, site, &all[small_chunks..]).context("filling the source")?;
    lab[0].start().await?;
    let status_full_ms = status_at_rest(&lab[0]).await?;
    let source_digest = lab[0].client().status().await?.digest;

    let mut runs = Vec::new();
    for (k, variant) in variants.iter().enumerate() {
        let office = &mut lab.offices[k + 1];
        if let Some(b) = &variant.bin {
            office.set_bin(b);
        }
        office.env = variant.env.clone();
        let run = catch_up(&mut lab, k + 1, &variant.label, &source_digest, window).await;
        let office = &mut lab.offices[k + 1];
        office.stop()?;
        // The receiver's replica is not needed again: give the disk back.
        let _ = std::fs::remove_dir_all(office.data_dir());
        runs.push(run?);
    }
    for o in &mut lab.offices {
        o.stop()?;
    }
    Ok(MillionFigures {
        rows,
        plain_insert_s,
        status_small_ms,
        status_small_rows: all[..small_chunks].iter().map(|c| c.1).sum(),
        status_full_ms,
        runs,
    })
}

async fn catch_up(
    lab: &mut Lab,
    receiver: usize,
    label: &str,
    want: &str,
    window: Duration,
) -> Result<CatchupRun> {
    let started = Instant::now();
    lab.offices[receiver].spawn()?;
    let office = &lab.offices[receiver];
    let wal = office.data_dir().join("puente.db-wal");
    let client = office.client();
    let (mut status_ms, mut metrics_ms) = (Vec::new(), Vec::new());
    let mut wal_peak = 0u64;
    let deadline = Duration::from_secs(3_600);
    loop {
        anyhow::ensure!(
            started.elapsed() < deadline,
            "{label}: timed out waiting for the catch-up"
        );
        let tick = Instant::now();
        wal_peak = wal_peak.max(file_size(&wal));
        let t0 = Instant::now();
        let status = client.status().await;
        let t1 = Instant::now();
        let Ok(status) = status else {
            // Not listening yet.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let metrics = client.metrics().await;
        let t2 = Instant::now();
        status_ms.push((t1 - t0).as_secs_f64() * 1000.0);
        if metrics.is_ok() {
            metrics_ms.push((t2 - t1).as_secs_f64() * 1000.0);
        }
        if status.digest == want {
            break;
        }
        tokio::time::sleep(POLL.saturating_sub(tick.elapsed())).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let pid = office.pid().context("the receiver is running")?;
    let source = lab.offices[0].pid().context("the source is running")?;
    let peak_rss_kib = status_kib(pid, "VmHWM").unwrap_or(0);
    let rss_after_kib = status_kib(pid, "VmRSS").unwrap_or(0);
    let done = Instant::now();
    let (mut cpu_receiver, mut cpu_source) = (Vec::new(), Vec::new());
    let (mut r0, mut s0) = (
        cpu_seconds(pid).unwrap_or(0.0),
        cpu_seconds(source).unwrap_or(0.0),
    );
    let mut rss_30s_kib = 0;
    for k in 1..=WINDOWS {
        let next = done + window * k;
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
        let (r1, s1) = (
            cpu_seconds(pid).unwrap_or(0.0),
            cpu_seconds(source).unwrap_or(0.0),
        );
        cpu_receiver.push(r1 - r0);
        cpu_source.push(s1 - s0);
        (r0, s0) = (r1, s1);
        if k == WINDOWS / 2 {
            rss_30s_kib = status_kib(pid, "VmRSS").unwrap_or(0);
        }
    }
    Ok(CatchupRun {
        label: label.to_string(),
        seconds,
        window_s: window.as_secs_f64(),
        peak_rss_kib: status_kib(pid, "VmHWM").unwrap_or(peak_rss_kib),
        rss_after_kib,
        rss_30s_kib,
        rss_60s_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        status_ms,
        metrics_ms,
        cpu_receiver,
        cpu_source,
        wal_peak_bytes: wal_peak,
        wal_after_bytes: file_size(&wal),
    })
}
