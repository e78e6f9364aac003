//! Owns: sealed puts per second next to raw age encryptions per second,
//! with one and two recipients, on one thread and on every core, in the
//! same run.
//!
//! Must not: use the network.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::data;
use super::merge::TempDir;
use crate::clock::{Hlc, SystemClock, WallClock};
use crate::seal::{self, Binding};
use crate::stamp::SiteId;
use crate::store::{RowPut, Store};
use crate::value::Plaintext;

pub struct SealFigures {
    pub recipients: usize,
    pub raw_one_thread: f64,
    pub raw_all_cores: f64,
    pub puts_one_thread: f64,
    pub puts_all_cores: f64,
    pub cores: usize,
}

fn recipients(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| age::x25519::Identity::generate().to_public().to_string())
        .collect()
}

/// Raw age encryptions per second of an envelope of a typical sealed value.
pub(super) fn raw_rate(
    schema: &crate::config::Schema,
    count: usize,
    threads: usize,
) -> Result<f64> {
    let group = schema
        .group("mx")
        .ok_or_else(|| anyhow::anyhow!("bench group missing"))?;
    let binding = Binding {
        table: data::TABLE,
        id: "6f1c0b7e-3a9d-4a61-9c55-0e2a7d3c1b11",
        column: "full_name",
        hlc: Hlc::from_parts(1_700_000_000_000, 0),
        site: SiteId([1; 16]),
    };
    let value = Plaintext::text("Nombre Apellido 4821");
    let envelope = seal::envelope::encode(&binding, &value)?;
    let per_thread = count / threads;
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let envelope = &envelope;
                scope.spawn(move || -> Result<()> {
                    for _ in 0..per_thread {
                        let enc = age::Encryptor::with_recipients(
                            group.recipients.iter().map(|r| r as &dyn age::Recipient),
                        )?;
                        let mut out = Vec::with_capacity(512);
                        let mut w = enc.wrap_output(&mut out)?;
                        std::io::Write::write_all(&mut w, envelope)?;
                        w.finish()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a bench thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((per_thread * threads) as f64 / start.elapsed().as_secs_f64())
}

/// Sealed puts per second: bulk puts of rows with one sealed cell each,
/// committed in batches of 500 rows.
fn put_rate(schema: Arc<crate::config::Schema>, count: usize, threads: usize) -> Result<f64> {
    let dir = TempDir::new()?;
    let mut store = Store::open(
        &dir.path().join("puente.db"),
        crate::store::StoreOptions::new(
            schema,
            Arc::new(crate::seal::Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        ),
    )?;
    store.set_seal_threads(threads);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let batches: Vec<Vec<RowPut>> = (0..count.div_ceil(500))
        .map(|_| {
            (0..500)
                .map(|_| {
                    let [name, _, _] = data::sealed_plaintexts(&mut rng);
                    (
                        data::row_id(&mut rng),
                        vec![("full_name".to_string(), name)],
                    )
                })
                .collect()
        })
        .collect();
    let rows: usize = batches.iter().map(Vec::len).sum();
    let start = Instant::now();
    for batch in batches {
        store.put_many(data::TABLE, batch)?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

pub fn run(recipient_count: usize, count: usize) -> Result<SealFigures> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let schema = data::schema(&recipients(recipient_count));
    Ok(SealFigures {
        recipients: recipient_count,
        raw_one_thread: raw_rate(&schema, count, 1)?,
        puts_one_thread: put_rate(schema.clone(), count, 1)?,
        raw_all_cores: raw_rate(&schema, count, cores)?,
        puts_all_cores: put_rate(schema, count, cores)?,
        cores,
    })
}
