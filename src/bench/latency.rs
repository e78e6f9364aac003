//! Owns: live latency: from a put acknowledged at one office to the row
//! visible (committed) at the other, with both daemons running in this
//! process over real QUIC on loopback — directly, or through the lab relay
//! adding a one-way delay.
//!
//! Must not: bind anything but 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::merge::TempDir;
use crate::daemon;
use crate::lab::Lab;
use crate::lab::relay::{Conditions, Relay};
use crate::node::status::PeerState;
use crate::sync::session::Limits;
use crate::value::Plaintext;

pub struct LatencyFigures {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn run(
    bin: &Path,
    samples: usize,
    one_way_delay: Option<Duration>,
) -> Result<LatencyFigures> {
    let tmp = TempDir::new()?;
    let lab = Lab::create(
        &tmp.path().join("lab"),
        bin,
        &[("a", false), ("b", false)],
        crate::config::schema::DEFAULT_SCHEMA,
    )?;
    let relay = match one_way_delay {
        Some(delay) => {
            let relay = Relay::start(lab[1].addr()).await?;
            relay.set(Conditions::delayed(delay));
            // a dials b through the relay; b only accepts, so the one
            // connection crosses the delayed link.
            lab.pin_via(0, 1, relay.addr())?;
            crate::config::node::add_peer(&lab[1].config, &lab[0].name, &lab[0].fingerprint, None)?;
            Some(relay)
        }
        None => {
            lab.link(0, 1)?;
            None
        }
    };
    let a = daemon::start(&lab[0].config, Limits::default()).await?;
    let b = daemon::start(&lab[1].config, Limits::default()).await?;
    let started = Instant::now();
    while a.node.peer("b").map(|p| p.state) != Some(PeerState::Connected)
        || b.node.peer("a").map(|p| p.state) != Some(PeerState::Connected)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the offices did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut head_b = b.node.subscribe_head();
    let mut measured = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let before = *head_b.borrow_and_update();
        a.node
            .put(
                "outreach_events".into(),
                format!("latency-{i}"),
                vec![
                    ("title".into(), Plaintext::text(format!("sample {i}"))),
                    // The shipped schema requires a start.
                    ("starts_at".into(), Plaintext::text("2030-01-01T10:00:00Z")),
                ],
            )
            .await
            .context("a put at a")?;
        let acked = Instant::now();
        while *head_b.borrow_and_update() <= before {
            tokio::time::timeout(Duration::from_secs(10), head_b.changed())
                .await
                .context("the row did not reach b within 10 s")??;
        }
        // The first ten warm up the connection and caches.
        if i >= 10 {
            measured.push(acked.elapsed().as_secs_f64() * 1000.0);
        }
    }
    a.shutdown().await;
    b.shutdown().await;
    drop(relay);
    measured.sort_by(|x, y| x.total_cmp(y));
    Ok(LatencyFigures {
        samples,
        p50_ms: percentile(&measured, 50.0),
        p99_ms: percentile(&measured, 99.0),
        max_ms: measured.last().copied().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::percentile(&v, 50.0), 50.0);
        assert_eq!(super::percentile(&v, 99.0), 99.0);
        assert_eq!(super::percentile(&[3.0], 99.0), 3.0);
    }
}
