//! Shared helpers for integration tests: schemas with test keys, replicas in
//! temp dirs, syncing two stores directly, byte scans.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use puente::clock::{ManualClock, WallClock};
use puente::config::Schema;
use puente::seal::Keyring;
use puente::store::{Cursor, PeerRef, Store};
use puente::value::Plaintext;

/// A fixed test identity (never used outside tests) and its recipient.
pub const TEST_IDENTITY: &str =
    "AGE-SECRET-KEY-1W539HM490WMYDJZXZ03FYN0HLYEKX3MJLDMXG4HU8HJKD6JWJSTQMMKXT7";
pub const TEST_RECIPIENT: &str = "age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw";
/// A second (recovery) identity.
pub const RECOVERY_IDENTITY: &str =
    "AGE-SECRET-KEY-1KPCYU8THVPHV2VWMQUAUW0CH5AGMCPTSF0MTP6S50WVC2JXLRNPSJFA0R6";
pub const RECOVERY_RECIPIENT: &str =
    "age1s3qh2ae5svz38yeexsl600cyzq6663seetmnuwjt6vzu9w0lef9qjaraxf";

/// The built-in schema with the test recipients in group mx.
pub fn schema_text(recipients: &[&str]) -> String {
    let list = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    puente::config::schema::DEFAULT_SCHEMA.replace("mx = []", &format!("mx = [{list}]"))
}

pub fn schema(recipients: &[&str]) -> Arc<Schema> {
    Arc::new(Schema::parse(Path::new("schema.toml"), &schema_text(recipients)).unwrap())
}

/// Writes an identity file and returns a keyring holding it.
pub fn keyring_with(dir: &Path, secret: &str) -> Arc<Keyring> {
    let file = dir.join("mx.key");
    puente::fsutil::create_new_with_mode(&file, format!("{secret}\n").as_bytes(), 0o600).unwrap();
    Arc::new(Keyring::load(&[file]).unwrap().0)
}

pub struct Replica {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub name: String,
}

impl Replica {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn peer_ref(&self) -> PeerRef {
        PeerRef {
            site: self.store.site_id(),
            name: self.name.clone(),
        }
    }
}

/// A replica in a fresh temp dir; `identity` gives it the mx key.
pub fn replica(name: &str, schema: Arc<Schema>, identity: Option<&str>, start_ms: u64) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let keyring = match identity {
        Some(secret) => {
            let keys = dir.path().join("keys");
            std::fs::create_dir(&keys).unwrap();
            keyring_with(&keys, secret)
        }
        None => Arc::new(Keyring::empty()),
    };
    let clock = ManualClock::new(start_ms);
    let store = Store::open(
        &data.join("puente.db"),
        schema,
        keyring,
        clock.clone() as Arc<dyn WallClock>,
    )
    .unwrap();
    Replica {
        dir,
        store,
        clock,
        name: name.to_string(),
    }
}

pub fn text(s: &str) -> Plaintext {
    Plaintext::text(s)
}

pub fn cells(pairs: &[(&str, &str)]) -> Vec<(String, Plaintext)> {
    pairs
        .iter()
        .map(|(c, v)| (c.to_string(), text(v)))
        .collect()
}

/// Sends everything `from` has that `to` lacks, the way a session does:
/// from `to`'s stored cursor, in bounded batches, skipping `to`'s own
/// writes. Returns the number of batches.
pub fn sync(from: &Replica, to: &mut Replica, max_rows: usize) -> usize {
    let peer = from.peer_ref();
    let mut batches = 0;
    loop {
        let cursor: Cursor = to.store.cursor_for(&peer.site).unwrap();
        let out = from
            .store
            .changes_since(cursor, max_rows, 1 << 20, Some(to.store.site_id()))
            .unwrap();
        to.store.apply(&peer, out.batch, out.cursor).unwrap();
        batches += 1;
        if out.complete {
            return batches;
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The needle as UTF-8 and as UTF-16 (LE and BE).
pub fn encodings(needle: &str) -> Vec<Vec<u8>> {
    let le: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let be: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    vec![needle.as_bytes().to_vec(), le, be]
}

/// Files under `dir` containing any encoding of any needle: (file, needle).
pub fn plaintext_hits(dir: &Path, needles: &[&str]) -> Vec<(PathBuf, String)> {
    let mut hits = Vec::new();
    for file in files_under(dir) {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for needle in needles {
            if encodings(needle)
                .iter()
                .any(|enc| bytes.windows(enc.len()).any(|w| w == enc.as_slice()))
            {
                hits.push((file.clone(), needle.to_string()));
            }
        }
    }
    hits
}
