//! Owns: catch-up over QUIC on loopback between two real daemon processes
//! (both replicas unencrypted, or both encrypted at rest), next to a plain
//! SQLite insert of the same rows in the same run; and the daemons at rest
//! (memory after start and after the catch-up, CPU while idle).
//!
//! Must not: bind anything but 127.0.0.1.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::data;
use super::merge::{TempDir, plain_insert};
use crate::config::Schema;
use crate::lab::{Lab, Office};
use crate::stamp::SiteId;
use crate::store::{Cursor, PeerRef};

pub struct CatchupFigures {
    pub rows: usize,
    pub seconds: f64,
    pub plain_insert_s: f64,
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    pub payload_bytes: u64,
    pub rss_source_start_kib: u64,
    pub rss_empty_start_kib: u64,
    pub rss_empty_after_kib: u64,
    pub idle_seconds: f64,
    pub idle_cpu_source_s: f64,
    pub idle_cpu_empty_s: f64,
    pub rss_empty_after_idle_kib: u64,
}

/// Fills an office's replica (with its key, if any) with `rows` as if a
/// third office had sent them.
fn fill(office: &Office, rows: &data::Rows) -> Result<()> {
    let mut store = office.open_store()?;
    let site = SiteId::random();
    let peer = PeerRef {
        site,
        name: "bench-origin".into(),
    };
    let batches = data::batches(rows, 5_000, site);
    let n = batches.len() as u64;
    store.apply_group(
        &peer,
        batches.into_iter().map(|b| (b, Cursor::at(n))).collect(),
    )?;
    Ok(())
}

async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        anyhow::ensure!(started.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

pub async fn run(
    bin: &Path,
    rows: usize,
    idle_seconds: f64,
    encrypted: bool,
) -> Result<CatchupFigures> {
    let tmp = TempDir::new()?;
    let mut lab = Lab::create_at_rest(
        &tmp.path().join("lab"),
        bin,
        &[("source", false), ("empty", false)],
        &data::schema_template(),
        encrypted,
    )?;
    lab.link(0, 1)?;
    let schema = Arc::new(Schema::parse(Path::new("<bench>"), &lab.schema_text)?);
    let pool_schema = data::schema(&[age::x25519::Identity::generate().to_public().to_string()]);
    let pool = data::ciphertext_pool(&pool_schema, 64);
    let generated = data::rows(&schema, rows, &pool, 11);
    let plain_insert_s = plain_insert(tmp.path(), &schema, &generated)?;
    fill(&lab[0], &generated).context("filling the source replica")?;
    drop(generated);

    lab[0].start().await?;
    let source_digest = lab[0].client().status().await?.digest;
    let rss_source_start_kib = lab[0].rss_kib().unwrap_or(0);

    let started = Instant::now();
    lab[1].start().await?;
    let rss_empty_start_kib = lab[1].rss_kib().unwrap_or(0);
    let client = lab[1].client();
    wait_until(
        "the empty office to catch up",
        Duration::from_secs(600),
        || {
            let client = client.clone();
            let want = source_digest.clone();
            async move { client.status().await.is_ok_and(|s| s.digest == want) }
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    // Wire counters are refreshed every second.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let status = client.status().await?;
    let peer = status
        .peers
        .first()
        .context("the empty office lists its peer")?;
    let rss_empty_after_kib = lab[1].rss_kib().unwrap_or(0);

    let cpu0 = (
        lab[0].cpu_seconds().unwrap_or(0.0),
        lab[1].cpu_seconds().unwrap_or(0.0),
    );
    let idle_started = Instant::now();
    if idle_seconds > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(idle_seconds)).await;
    }
    let idle = if idle_seconds > 0.0 {
        idle_started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let cpu1 = (
        lab[0].cpu_seconds().unwrap_or(0.0),
        lab[1].cpu_seconds().unwrap_or(0.0),
    );
    let rss_empty_after_idle_kib = lab[1].rss_kib().unwrap_or(0);
    let figures = CatchupFigures {
        rows,
        seconds,
        plain_insert_s,
        udp_bytes_in: peer.counters.udp_bytes_in,
        udp_bytes_out: peer.counters.udp_bytes_out,
        payload_bytes: peer.counters.bytes_in,
        rss_source_start_kib,
        rss_empty_start_kib,
        rss_empty_after_kib,
        idle_seconds: idle,
        idle_cpu_source_s: cpu1.0 - cpu0.0,
        idle_cpu_empty_s: cpu1.1 - cpu0.1,
        rss_empty_after_idle_kib,
    };
    for o in &mut lab.offices {
        o.stop()?;
    }

    Ok(figures)
}
