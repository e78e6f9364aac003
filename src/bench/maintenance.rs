//! Owns: maintenance figures: a backup of a replica next to SQLite's own
//! online backup of the same file, re-sealing next to raw age
//! decrypt+encrypt on every core, and the latency of live puts while a
//! reseal runs.
//!
//! The baseline backup is SQLCipher's `sqlite3_backup` driven by a client
//! nobody here wrote (Python's `sqlcipher3`, its `Connection.backup`, the
//! call the shell's `.backup` makes): Debian 12's `sqlcipher` shell is
//! SQLCipher 3.4, which cannot open a SQLCipher 4 file. Without python3
//! and sqlcipher3 the figure is reported without its baseline.
//! Must not: use the network, or be used by the daemon.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::data;
use super::merge::{self, TempDir};
use crate::clock::{Hlc, SystemClock, WallClock};
use crate::config::{NodeConfig, Schema};
use crate::node::Node;
use crate::node::backup;
use crate::seal::{self, Binding, Keyring};
use crate::stamp::SiteId;
use crate::store::{AtRest, ReplicaKey, RowPut, Store};
use crate::value::Plaintext;

/// One backup measurement: puente's, and the baseline's if it ran.
pub struct BackupRun {
    pub puente_s: f64,
    pub baseline_s: Option<f64>,
    pub bytes: u64,
}

/// Why the baseline did not run (None: it did).
pub fn baseline_missing() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sqlcipher3"])
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some("python3 has no sqlcipher3 (pip install sqlcipher3-binary)".into()),
        Err(e) => Some(format!("no python3 ({e})")),
    }
}

const PYTHON_BACKUP: &str = r#"
import sqlcipher3, sys, time
src, dst = sys.argv[1], sys.argv[2]
key = sys.stdin.readline().strip()
def keyed(path):
    c = sqlcipher3.connect(path)
    c.execute("PRAGMA key = \"x'%s'\"" % key)
    c.execute("PRAGMA cipher_page_size = 8192")
    return c
s = keyed(src)
s.execute("SELECT count(*) FROM sqlite_schema").fetchone()
d = keyed(dst)
t = time.perf_counter()
s.backup(d)
d.close()
print(time.perf_counter() - t)
"#;

fn python_backup(src: &Path, dst: &Path, key: &ReplicaKey) -> Result<f64> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON_BACKUP])
        .arg(src)
        .arg(dst)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(key.to_hex().as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the baseline backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Fills an encrypted replica with `rows` rows and takes `repeat` backups
/// of it the way `puente backup` does for a stopped node (snapshot, read
/// its head, write it out: sync, rename), each next to the baseline.
pub fn backups(rows: usize, repeat: usize) -> Result<Vec<BackupRun>> {
    let dir = TempDir::new()?;
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let schema = data::schema(&[recipient]);
    let pool = data::ciphertext_pool(&schema, 64);
    let filled = data::rows(&schema, rows, &pool, 11);
    let key = ReplicaKey::generate();
    let at_rest = AtRest::Encrypted {
        key: key.clone(),
        source: "bench key".into(),
    };
    let db = dir.path().join("puente.db");
    merge::apply(&db, &at_rest, schema.clone(), &filled, 1000)?;
    drop(filled);
    Store::open(
        &db,
        crate::store::StoreOptions::new(
            schema.clone(),
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&at_rest),
    )?
    .checkpoint()?;
    let skip_baseline = baseline_missing().is_some();
    let mut runs = Vec::new();
    for i in 0..repeat.max(1) {
        let dest = dir.path().join(format!("b{i}.backup"));
        let start = Instant::now();
        let made = backup::make(
            &db,
            &at_rest,
            schema.clone(),
            "bench",
            &dir.path().join("work"),
            &[],
            0,
        )?;
        backup::write_out(&dest, |f| {
            let mut from =
                std::fs::File::open(&made.file).map_err(|e| backup::BackupError::Io {
                    path: made.file.clone(),
                    action: "reading",
                    source: e,
                })?;
            std::io::copy(&mut from, f).map_err(|e| backup::BackupError::Io {
                path: dest.clone(),
                action: "writing",
                source: e,
            })
        })?;
        let puente_s = start.elapsed().as_secs_f64();
        backup::remove_work_file(&made.file, false);
        let bytes = std::fs::metadata(&dest)?.len();
        std::fs::remove_file(&dest)?;
        let baseline_s = if skip_baseline {
            None
        } else {
            let b = dir.path().join(format!("b{i}.sqlite-backup"));
            let s = python_backup(&db, &b, &key)?;
            std::fs::remove_file(&b)?;
            Some(s)
        };
        runs.push(BackupRun {
            puente_s,
            baseline_s,
            bytes,
        });
    }
    Ok(runs)
}

/// A node over a replica of `rows` rows whose one sealed cell each is
/// sealed to recipient set A and must move to set B (A plus a new key),
/// with the identity of A held.
struct Stale {
    _dir: TempDir,
    node: Arc<Node>,
    /// The old set's group and identity, and the new set's group, for the
    /// raw baseline.
    old: Schema,
    new: Arc<Schema>,
    identity: age::x25519::Identity,
}

fn stale_node(rows: usize) -> Result<Stale> {
    let dir = TempDir::new()?;
    let identity = age::x25519::Identity::generate();
    let held = identity.to_public().to_string();
    let other = age::x25519::Identity::generate().to_public().to_string();
    let old = data::schema(std::slice::from_ref(&held));
    let new = data::schema(&[held, other]);
    let key_file = dir.path().join("mx.key");
    {
        use age::secrecy::ExposeSecret;
        crate::fsutil::create_new_with_mode(
            &key_file,
            format!("{}\n", identity.to_string().expose_secret()).as_bytes(),
            0o600,
        )?;
    }
    let keyring = Arc::new(Keyring::load(&[key_file])?.0);
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir)?;
    let at_rest = AtRest::Encrypted {
        key: ReplicaKey::generate(),
        source: "bench key".into(),
    };
    let mut store = Store::open(
        &data_dir.join("puente.db"),
        crate::store::StoreOptions::new(
            old.clone(),
            keyring.clone(),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        )
        .at_rest(&at_rest),
    )?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let mut left = rows;
    while left > 0 {
        let n = left.min(500);
        let batch: Vec<RowPut> = (0..n)
            .map(|_| {
                let [name, _, _] = data::sealed_plaintexts(&mut rng);
                (
                    data::row_id(&mut rng),
                    vec![
                        ("full_name".to_string(), name),
                        ("status".to_string(), Plaintext::text("active")),
                    ],
                )
            })
            .collect();
        store.put_many(data::TABLE, batch)?;
        left -= n;
    }
    store.reload_schema(new.clone(), keyring)?;
    let config = NodeConfig::parse(
        &dir.path().join("puente.toml"),
        "name = \"bench\"\nlisten = \"127.0.0.1:7441\"\ndata_dir = \"data\"\nadmin_socket = \"admin.sock\"\nschema = \"schema.toml\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n",
    )?;
    let node = Node::new(
        config,
        new.clone(),
        crate::fingerprint::Fingerprint([0; 32]),
        Arc::new(SystemClock) as Arc<dyn WallClock>,
        store,
    );
    Ok(Stale {
        _dir: dir,
        node,
        old: (*old).clone(),
        new,
        identity,
    })
}

/// Raw age on every core: decrypt each of `cells` ciphertexts (sealed to
/// the old set) with the identity and encrypt it to the new set; cells/s.
fn raw_reseal_rate(stale: &Stale, cells: usize, threads: usize) -> Result<f64> {
    let (Some(old), Some(new)) = (stale.old.group("mx"), stale.new.group("mx")) else {
        bail!("bench group missing");
    };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(9);
    let sealed: Vec<Vec<u8>> = (0..cells)
        .map(|i| {
            let [name, _, _] = data::sealed_plaintexts(&mut rng);
            let b = Binding {
                table: data::TABLE,
                id: &format!("raw-{i}"),
                column: "full_name",
                hlc: Hlc(1 << 16),
                site: SiteId([1; 16]),
            };
            Ok(seal::seal(old, &b, &name)?)
        })
        .collect::<Result<_>>()?;
    let chunk = cells.div_ceil(threads.max(1)).max(1);
    let identity = &stale.identity;
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = sealed
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<()> {
                    for c in part {
                        let plain = zeroize::Zeroizing::new(age::decrypt(identity, c)?);
                        let enc = age::Encryptor::with_recipients(
                            new.recipients.iter().map(|r| r as &dyn age::Recipient),
                        )?;
                        let mut out = Vec::with_capacity(c.len() + 200);
                        let mut w = enc.wrap_output(&mut out)?;
                        w.write_all(&plain)?;
                        w.finish()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a bench thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(cells as f64 / start.elapsed().as_secs_f64())
}

/// Re-sealing through the running node (bounded steps, sealing on every
/// core, writes as new versions) against raw age on every core.
pub struct ResealRun {
    pub cells: usize,
    pub reseal_per_s: f64,
    pub raw_per_s: f64,
}

pub async fn reseal(cells: usize) -> Result<ResealRun> {
    let stale = stale_node(cells)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw_per_s = raw_reseal_rate(&stale, cells, threads)?;
    let start = Instant::now();
    stale.node.start_reseal(None).await?;
    let done = wait_reseal(&stale.node).await?;
    let elapsed = start.elapsed().as_secs_f64();
    if done != cells as u64 {
        bail!("the reseal did {done} of {cells} cells");
    }
    Ok(ResealRun {
        cells,
        reseal_per_s: cells as f64 / elapsed,
        raw_per_s,
    })
}

async fn wait_reseal(node: &Arc<Node>) -> Result<u64> {
    loop {
        let r = node.long_work.reseal().context("no reseal")?;
        match r.state.as_str() {
            "running" => tokio::time::sleep(Duration::from_millis(2)).await,
            "done" => return Ok(r.done),
            _ => bail!("the reseal failed: {:?}", r.message),
        }
    }
}

/// Put latencies (ms) while a reseal runs, and without one on the same
/// replica.
pub struct PutsDuringReseal {
    pub idle_ms: Vec<f64>,
    pub during_ms: Vec<f64>,
}

/// One staff write: a row with a sealed cell.
async fn timed_put(node: &Arc<Node>, i: usize) -> Result<f64> {
    let start = Instant::now();
    node.put(
        data::TABLE.to_string(),
        format!("live-{i}"),
        vec![
            (
                "full_name".to_string(),
                Plaintext::text(format!("Nombre {i}")),
            ),
            ("status".to_string(), Plaintext::text("active")),
        ],
    )
    .await?;
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

/// `samples` puts one after another (a short pause between them) before
/// the reseal, then as many as fit while a reseal of `cells` cells runs.
pub async fn puts_during_reseal(cells: usize, samples: usize) -> Result<PutsDuringReseal> {
    let stale = stale_node(cells)?;
    let node = stale.node.clone();
    let pause = Duration::from_millis(2);
    let mut idle_ms = Vec::new();
    for i in 0..samples {
        idle_ms.push(timed_put(&node, i).await?);
        tokio::time::sleep(pause).await;
    }
    node.start_reseal(None).await?;
    let mut during_ms = Vec::new();
    let mut i = samples;
    // The first put starts as the reseal does; more while it runs.
    loop {
        during_ms.push(timed_put(&node, i).await?);
        i += 1;
        if node.long_work.reseal().is_none_or(|r| r.state != "running") {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    wait_reseal(&node).await?;
    Ok(PutsDuringReseal { idle_ms, during_ms })
}

/// The `q` quantile (0..1) of `values`, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}
