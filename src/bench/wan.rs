//! A border link: a catch-up between two real daemon processes through the
//! lab relay shaped as a WAN (a bandwidth limit with a router queue, 30 ms
//! one way, 1 % loss, jitter, seeded), judged against the link's own limit
//! (the bytes that must cross ÷ the bandwidth), once with the daemons
//! speaking protocol 2 (frames as they are) and once speaking this
//! build's newest version (batch frames compressed where it pays).
//!
//! Owns: the WAN catch-up run and the bench data's sealed cells made
//! unique (the shared pool of 64 age files would compress away, which no
//! real replica does).
//! Must not: bind anything but 127.0.0.1.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use rand::{RngCore, SeedableRng};

use super::merge::TempDir;
use super::report::Figure;
use super::{data, median};
use crate::config::Schema;
use crate::lab::Lab;
use crate::lab::relay::{Conditions, Relay};
use crate::stamp::SiteId;
use crate::store::{Cursor, PeerRef};
use crate::value::Value;

/// The link of the benchmark: 20 Mbit/s each way.
pub const MBIT: f64 = 20.0;

/// The relay's randomness (loss, jitter) is the same in every run.
const SEED: u64 = 16;

pub struct WanFigures {
    pub seconds: f64,
    /// Frame bytes the receiver read from the stream (what had to cross).
    pub frame_bytes: u64,
    /// The same frames decoded (uncompressed size).
    pub payload_bytes: u64,
    /// Datagram bytes the relay forwarded, source to receiver.
    pub wire_down_bytes: u64,
    /// Datagram bytes the relay forwarded, receiver to source.
    pub wire_up_bytes: u64,
    /// Datagrams the relay dropped (loss and full queue), both ways.
    pub dropped: u64,
    pub overflowed: u64,
    /// The link's rate, bytes/s.
    pub rate: u64,
    pub protocol: Option<u16>,
}

impl WanFigures {
    /// The time the link needs to carry the frames at its rate.
    pub fn limit_s(&self) -> f64 {
        self.frame_bytes as f64 / self.rate as f64
    }
}

/// Gives every sealed cell its own random bytes where a real age file has
/// them (ephemeral share, wrapped key, MAC, payload), keeping the layout:
/// each stays an age file the receiver accepts, and none repeats another.
pub fn unique_sealed(rows: &mut data::Rows, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for row in &mut rows.values {
        for v in row.iter_mut() {
            if let Value::Blob(bytes) = v
                && let Some(fresh) = fresh_age_file(bytes, &mut rng)
            {
                *bytes = fresh;
            }
        }
    }
}

/// An age file laid out like `template` with fresh random tokens and
/// payload; `None` if the template is not laid out as expected.
fn fresh_age_file(template: &[u8], rng: &mut impl RngCore) -> Option<Vec<u8>> {
    let mac_line = find(template, b"\n--- ")?;
    let header_end = mac_line + 1 + find(&template[mac_line + 1..], b"\n")? + 1;
    let header = std::str::from_utf8(&template[..header_end]).ok()?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut token = |len: usize| {
        let mut raw = vec![0u8; len * 3 / 4];
        rng.fill_bytes(&mut raw);
        b64.encode(raw)
    };
    let mut out = String::with_capacity(header.len());
    for line in header.split_inclusive('\n') {
        let words: Vec<&str> = line.trim_end_matches('\n').split(' ').collect();
        let fresh: Vec<String> = words
            .iter()
            .map(|w| {
                if w.len() == 43 && b64.decode(w).is_ok() {
                    token(43)
                } else {
                    (*w).to_string()
                }
            })
            .collect();
        out.push_str(&fresh.join(" "));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    let mut file = out.into_bytes();
    let mut payload = vec![0u8; template.len() - header_end];
    rng.fill_bytes(&mut payload);
    file.extend(payload);
    crate::seal::is_age_file(&file).then_some(file)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Adds `[debug] protocols` to an office's config (before it starts).
fn speak(config: &Path, versions: &[u16]) -> Result<()> {
    let mut text = std::fs::read_to_string(config)?;
    let list = versions
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    anyhow::ensure!(
        !text.contains("[debug]"),
        "the lab config has a [debug] table"
    );
    text.push_str(&format!("\n[debug]\nprotocols = [{list}]\n"));
    std::fs::write(config, text)?;
    Ok(())
}

/// One catch-up of `rows` through the WAN; `versions` narrows what both
/// daemons speak (`None`: all this build speaks).
pub async fn run(bin: &Path, rows: usize, versions: Option<&[u16]>) -> Result<WanFigures> {
    let tmp = TempDir::new()?;
    let mut lab = Lab::create_at_rest(
        &tmp.path().join("lab"),
        bin,
        &[("source", false), ("empty", false)],
        &data::schema_template(),
        true,
    )?;
    let relay = Relay::start_seeded(lab[0].addr(), SEED).await?;
    let conditions = Conditions::wan(MBIT);
    relay.set(conditions);
    // The empty office dials the source through the relay; the source
    // only accepts, so the one connection crosses the WAN.
    lab.pin_via(1, 0, relay.addr())?;
    crate::config::node::add_peer(&lab[0].config, &lab[1].name, &lab[1].fingerprint, None)?;
    if let Some(v) = versions {
        speak(&lab[0].config, v)?;
        speak(&lab[1].config, v)?;
    }

    let schema = Arc::new(Schema::parse(Path::new("<bench>"), &lab.schema_text)?);
    let pool_schema = data::schema(&[age::x25519::Identity::generate().to_public().to_string()]);
    let pool = data::ciphertext_pool(&pool_schema, 64);
    let mut generated = data::rows(&schema, rows, &pool, 11);
    unique_sealed(&mut generated, 12);
    {
        let mut store = lab[0].open_store()?;
        let site = SiteId::random();
        let peer = PeerRef {
            site,
            name: "bench-origin".into(),
        };
        let batches = data::batches(&generated, 5_000, site);
        let n = batches.len() as u64;
        store
            .apply_group(
                &peer,
                batches.into_iter().map(|b| (b, Cursor::at(n))).collect(),
            )
            .context("filling the source replica")?;
    }
    drop(generated);

    lab[0].start().await?;
    let want = lab[0].client().status().await?.digest;
    let started = Instant::now();
    lab[1].start().await?;
    let client = lab[1].client();
    loop {
        if client.status().await.is_ok_and(|s| s.digest == want) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1_800),
            "the empty office did not catch up through the WAN in 30 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (up, down) = relay.counts_each();
    let status = client.status().await?;
    let peer = status
        .peers
        .first()
        .context("the empty office lists its peer")?;
    let figures = WanFigures {
        seconds,
        frame_bytes: peer.counters.bytes_in,
        payload_bytes: peer.counters.bytes_in,
        wire_down_bytes: down.bytes,
        wire_up_bytes: up.bytes,
        dropped: up.dropped + down.dropped,
        overflowed: up.overflowed + down.overflowed,
        rate: conditions.rate.unwrap_or(1),
        protocol: peer.protocol,
    };
    for o in &mut lab.offices {
        o.stop()?;
    }
    drop(relay);
    Ok(figures)
}

/// The bound on catch-up time / the link's limit.
pub const LIMIT_BOUND: f64 = 1.3;

/// Figures from `repeat` pairs: protocol 2 (frames as they are) and this
/// build's newest (batch frames compressed where it pays).
pub fn figures(plain: &[WanFigures], compressed: &[WanFigures], rows: usize) -> Vec<Figure> {
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let link = format!("{MBIT} Mbit/s, 30 ms one way, 1 % loss, 3 ms jitter");
    let mut out = Vec::new();
    for (key, runs, what) in [
        ("wan.uncompressed", plain, "protocol 2, frames as they are"),
        ("wan", compressed, "this build, batch frames compressed"),
    ] {
        let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        let limits: Vec<f64> = runs.iter().map(WanFigures::limit_s).collect();
        let ratios: Vec<f64> = seconds.iter().zip(&limits).map(|(s, l)| s / l).collect();
        let ratio = median(&ratios);
        let protocol = runs.last().and_then(|r| r.protocol).unwrap_or(0);
        out.push(
            Figure::new(
                &format!("{key}.seconds"),
                &format!("WAN catch-up of {rows} rows ({link}), {what} (protocol {protocol}; baseline: frame bytes / bandwidth)"),
                median(&seconds),
                "s",
            )
            .baseline(median(&limits))
            .ratio(ratio)
            .target(&format!("ratio <= {LIMIT_BOUND}"), ratio <= LIMIT_BOUND)
            .samples(seconds),
        );
        let frames: Vec<f64> = runs.iter().map(|r| mib(r.frame_bytes)).collect();
        out.push(Figure::new(
            &format!("{key}.frames_mib"),
            &format!("WAN catch-up: frame bytes received, {what}"),
            median(&frames),
            "MiB",
        ));
        let wire: Vec<f64> = runs
            .iter()
            .map(|r| mib(r.wire_down_bytes + r.wire_up_bytes))
            .collect();
        let per_frame: Vec<f64> = runs
            .iter()
            .map(|r| (r.wire_down_bytes + r.wire_up_bytes) as f64 / r.frame_bytes.max(1) as f64)
            .collect();
        out.push(
            Figure::new(
                &format!("{key}.wire_mib"),
                &format!("WAN catch-up: datagram bytes both ways, {what} (baseline: frames)"),
                median(&wire),
                "MiB",
            )
            .baseline(median(&frames))
            .ratio(median(&per_frame)),
        );
        let dropped: Vec<f64> = runs.iter().map(|r| r.dropped as f64).collect();
        out.push(Figure::new(
            &format!("{key}.dropped"),
            &format!("WAN catch-up: datagrams dropped by the link (loss and a full queue), {what}"),
            median(&dropped),
            "datagrams",
        ));
    }
    let shrink: Vec<f64> = plain
        .iter()
        .zip(compressed)
        .map(|(p, c)| c.frame_bytes as f64 / p.frame_bytes.max(1) as f64)
        .collect();
    out.push(Figure::new(
        "wan.compressed_vs_uncompressed",
        "WAN catch-up: frame bytes compressed / uncompressed",
        median(&shrink),
        "x",
    ));
    let faster: Vec<f64> = plain
        .iter()
        .zip(compressed)
        .map(|(p, c)| c.seconds / p.seconds)
        .collect();
    out.push(Figure::new(
        "wan.time_vs_uncompressed",
        "WAN catch-up: time compressed / uncompressed",
        median(&faster),
        "x",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_sealed_cells_stay_age_files_and_differ() {
        let schema = data::schema(&[age::x25519::Identity::generate().to_public().to_string()]);
        let pool = data::ciphertext_pool(&schema, 4);
        let mut rows = data::rows(&schema, 20, &pool, 1);
        let before: Vec<Vec<u8>> = blobs(&rows);
        unique_sealed(&mut rows, 2);
        let after = blobs(&rows);
        assert_eq!(after.len(), 60);
        let distinct: std::collections::BTreeSet<&Vec<u8>> = after.iter().collect();
        assert_eq!(distinct.len(), 60, "every sealed cell is its own");
        for (a, b) in before.iter().zip(&after) {
            assert_ne!(a, b);
            assert_eq!(a.len(), b.len());
            assert!(crate::seal::is_age_file(b));
        }
    }

    fn blobs(rows: &data::Rows) -> Vec<Vec<u8>> {
        rows.values
            .iter()
            .flatten()
            .filter_map(|v| match v {
                Value::Blob(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_limit_is_the_frames_at_the_link_rate() {
        let f = WanFigures {
            seconds: 1.0,
            frame_bytes: 5_000_000,
            payload_bytes: 5_000_000,
            wire_down_bytes: 0,
            wire_up_bytes: 0,
            dropped: 0,
            overflowed: 0,
            rate: 2_500_000,
            protocol: Some(2),
        };
        assert_eq!(f.limit_s(), 2.0);
    }
}
