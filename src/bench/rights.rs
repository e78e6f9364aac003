//! Owns: what checking rights costs on apply: the same change set applied
//! into a replica whose schema sets rights (every change judged: its site's
//! office, insert or update, the column's rights) and into one whose schema
//! sets none, in the same run, order alternating. Two passes: new rows from
//! San Diego (inserts, which it may make), then an update of two columns of
//! every row from Tijuana (which it may make); nothing is held, so the
//! figure is the price of judging alone.
//!
//! Must not: use the network.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};

use super::data;
use super::merge::tempfile_dir;
use crate::clock::{Hlc, SystemClock, WallClock};
use crate::config::Schema;
use crate::seal::Keyring;
use crate::stamp::SiteId;
use crate::store::{Batch, CellChange, Change, Cursor, PeerRef, Store};
use crate::value::Value;

/// Rows per batch: what a session sends (each one transaction here).
const PER_BATCH: usize = 1_000;

pub struct RightsTimes {
    pub rows: usize,
    /// Inserts, with and without rights.
    pub insert_s: f64,
    pub insert_open_s: f64,
    /// Updates of two columns of every row, with and without rights.
    pub update_s: f64,
    pub update_open_s: f64,
}

/// The bench schema with offices and rights on its table.
pub fn schema_with_rights(recipient: &str) -> Result<Arc<Schema>> {
    let text = format!(
        "offices = [\"tijuana\", \"san-diego\"]\n{}\
         [tables.{t}.rights]\ninsert = [\"tijuana\", \"san-diego\"]\nupdate = [\"tijuana\"]\ndelete = [\"tijuana\"]\n\
         [tables.{t}.rights.columns]\nstatus = [\"tijuana\", \"san-diego\"]\n",
        data::schema_template().replace("mx = []", &format!("mx = [\"{recipient}\"]")),
        t = data::TABLE
    );
    Ok(Arc::new(Schema::parse(Path::new("<bench schema>"), &text)?))
}

/// Updates of `status` and `office` of every row, one stamp each, later
/// than the inserts.
fn updates(rows: &data::Rows, schema: &Schema) -> Result<Vec<Batch>> {
    let Some(table) = schema.table(data::TABLE) else {
        bail!("bench table missing");
    };
    let columns = [table.column_index("status"), table.column_index("office")];
    // Stamped now (after the inserts' 2023, within the drift bound: a
    // stamp from the future would be held, not measured).
    let mut hlc = Hlc::from_parts(SystemClock.now_ms(), 0);
    let mut out = Vec::new();
    for chunk in rows.ids.chunks(PER_BATCH) {
        let changes = chunk
            .iter()
            .map(|id| {
                hlc = Hlc(hlc.0 + 1);
                Change::Row {
                    table: 0,
                    id: id.clone(),
                    cells: columns
                        .iter()
                        .flatten()
                        .map(|c| CellChange {
                            column: *c as u16,
                            hlc,
                            site: 0,
                            value: Value::Text("moved".into()),
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(Batch {
            sites: vec![SiteId([2; 16])],
            changes,
        });
    }
    Ok(out)
}

/// Inserts from San Diego then updates from Tijuana into a new replica of
/// `schema` (Tijuana's); seconds of each pass.
fn passes(
    dir: &Path,
    name: &str,
    schema: Arc<Schema>,
    inserts: &[Batch],
    updates: &[Batch],
) -> Result<(f64, f64)> {
    let mut store = Store::open(
        &dir.join(format!("{name}.db")),
        crate::store::StoreOptions::new(
            schema,
            Arc::new(Keyring::empty()),
            Arc::new(SystemClock) as Arc<dyn WallClock>,
        ),
    )?;
    store.set_office("ensenada")?;
    let mut timed = |peer: &PeerRef, batches: &[Batch]| -> Result<f64> {
        let start = Instant::now();
        for (i, batch) in batches.iter().enumerate() {
            let applied = store.apply(peer, batch.clone(), Cursor::at(i as u64 + 1))?;
            if applied.held > 0 {
                bail!("the rights bench held a change: it measures allowed changes only");
            }
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let san_diego = PeerRef {
        site: SiteId([1; 16]),
        name: "san-diego".into(),
    };
    let tijuana = PeerRef {
        site: SiteId([2; 16]),
        name: "tijuana".into(),
    };
    let insert = timed(&san_diego, inserts)?;
    let update = timed(&tijuana, updates)?;
    Ok((insert, update))
}

/// One measurement of both replicas (`rights_first` alternates the order).
pub fn run(n: usize, rights_first: bool) -> Result<RightsTimes> {
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let with = schema_with_rights(&recipient)?;
    let open = Arc::new(with.without_rights());
    let pool = data::ciphertext_pool(&with, 64);
    let rows = data::rows(&with, n, &pool, 1);
    let inserts = data::batches(&rows, PER_BATCH, SiteId([1; 16]));
    let updates = updates(&rows, &with)?;
    let dir = tempfile_dir()?;
    let (rights, none) = if rights_first {
        let r = passes(dir.path(), "rights", with, &inserts, &updates)?;
        (r, passes(dir.path(), "open", open, &inserts, &updates)?)
    } else {
        let o = passes(dir.path(), "open", open, &inserts, &updates)?;
        (passes(dir.path(), "rights", with, &inserts, &updates)?, o)
    };
    Ok(RightsTimes {
        rows: n,
        insert_s: rights.0,
        insert_open_s: none.0,
        update_s: rights.1,
        update_open_s: none.1,
    })
}
