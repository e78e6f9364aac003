//! Re-sealing: the replica's side of moving sealed cells to a group's
//! current recipients.
//!
//! Owns: finding rows whose cells of a group carry another keyset marker
//! than the group's current one (a bounded read, resumable by table and
//! id), reserving a fresh HLC for each such row (the new ciphertext's
//! envelope binds it), sealing the batch on every core with the store's
//! lock released (`seal_batch`, a free function), and writing the new
//! versions in one transaction through the ordinary merge — skipping any
//! cell that changed since it was read, so nothing newer is overwritten.
//! Also: which of a group's columns this office may not update (the
//! schema's rights), so that a reseal is refused where its versions would
//! be held.
//! Must not: decide when to run or how big a batch is (node/reseal.rs
//! does), or let a plaintext out of `seal::reseal`.

use crate::clock::Hlc;
use crate::config::Schema;
use crate::config::rights::WriteAction;
use crate::seal::{self, Binding, Keyring, SealError, keyset_id, marker_of};
use crate::stamp::SiteId;
use crate::store::cells::lww::IncomingCell;
use crate::store::layout::quote;
use crate::store::{SqlContext, Store, StoreError};
use crate::value::Value;

/// Where a reseal pass stands: the next table, and the last rowid done in
/// it. Rows are read in rowid (storage) order, so that the rows of one
/// step share table pages and its write dirties few of them (in id order,
/// random ids put nearly every row on a page of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealCursor {
    pub table: usize,
    pub after: i64,
}

/// One cell to re-seal, as read.
#[derive(Debug, Clone)]
pub struct StaleCell {
    /// Its slot and name.
    pub column: usize,
    pub column_name: String,
    pub hlc: Hlc,
    pub site: SiteId,
    pub value: Vec<u8>,
}

/// A row with stale cells and the HLC reserved for its new versions.
#[derive(Debug, Clone)]
pub struct StaleRow {
    pub table: usize,
    pub table_name: String,
    pub id: String,
    pub cells: Vec<StaleCell>,
    pub new_hlc: Hlc,
}

/// What one bounded read found.
#[derive(Debug, Clone)]
pub struct StaleBatch {
    pub rows: Vec<StaleRow>,
    /// Where the next read starts; None when the pass reached the end.
    pub next: Option<ResealCursor>,
    /// This replica's site id (the new versions' writer).
    pub site: SiteId,
}

/// A re-sealed cell ready to write, named (a reload may have changed the
/// schema while it was sealed: it is found again by name).
#[derive(Debug, Clone)]
pub struct Resealed {
    pub table: String,
    pub id: String,
    pub column: String,
    pub group: String,
    /// The version it replaces (skipped if the cell moved on).
    pub was: (Hlc, SiteId),
    pub hlc: Hlc,
    pub value: Vec<u8>,
}

/// Cells written and cells skipped because they changed meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealWritten {
    pub written: u64,
    pub skipped: u64,
}

impl Store {
    /// Reads rows after `from` whose cells of `group` are sealed to another
    /// recipient set than the schema's: at most `max_rows` such rows, and
    /// at most `max_scan` rows looked at. Reserves one new HLC per row
    /// found.
    pub fn reseal_read(
        &mut self,
        group: &str,
        from: &ResealCursor,
        max_rows: usize,
        max_scan: usize,
    ) -> Result<StaleBatch, StoreError> {
        let current = self
            .schema
            .group(group)
            .map(|g| keyset_id(&g.recipient_keys))
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut scanned = 0usize;
        let mut cursor = from.clone();
        while cursor.table < self.tables.len() {
            let t = cursor.table;
            // Slots of the group's columns.
            let columns: Vec<usize> = self.tables[t]
                .defs
                .iter()
                .enumerate()
                .filter(|(_, c)| c.group() == Some(group))
                .map(|(i, _)| i)
                .collect();
            if columns.is_empty() {
                cursor = ResealCursor {
                    table: t + 1,
                    after: 0,
                };
                continue;
            }
            let names: Vec<String> = columns
                .iter()
                .map(|&c| quote(&self.tables[t].defs[c].name))
                .collect();
            let sql = format!(
                "SELECT rowid, id, _puente_clocks, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                names.join(", "),
                quote(&self.tables[t].name)
            );
            let limit = (max_scan - scanned).max(1);
            let read: Vec<(i64, String, Vec<u8>, Vec<Value>)> = {
                let mut stmt = self.conn.prepare_cached(&sql).ctx("reading sealed cells")?;
                stmt.query_map(rusqlite::params![cursor.after, limit as i64], |r| {
                    let mut values = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        values.push(r.get::<_, Value>(i + 3)?);
                    }
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, values))
                })
                .ctx("reading sealed cells")?
                .collect::<Result<_, _>>()
                .ctx("reading sealed cells")?
            };
            let exhausted = read.len() < limit;
            for (rowid, id, clocks, values) in read {
                scanned += 1;
                cursor.after = rowid;
                let clocks = self.decode_clocks(t, &id, &clocks)?;
                let mut cells = Vec::new();
                for (&c, value) in columns.iter().zip(values) {
                    let clock = clocks.0[c];
                    let Value::Blob(bytes) = value else { continue };
                    if !clock.is_written() || marker_of(&bytes) == Some(current.as_str()) {
                        continue;
                    }
                    cells.push(StaleCell {
                        column: c,
                        column_name: self.tables[t].defs[c].name.clone(),
                        hlc: clock.hlc,
                        site: self.state.sites[clock.site as usize],
                        value: bytes,
                    });
                }
                if !cells.is_empty() {
                    let now = self.clock.now_ms();
                    rows.push(StaleRow {
                        table: t,
                        table_name: self.tables[t].name.clone(),
                        id,
                        cells,
                        new_hlc: self.state.hlc.tick(now)?,
                    });
                }
                if rows.len() >= max_rows || scanned >= max_scan {
                    return Ok(StaleBatch {
                        rows,
                        next: Some(cursor),
                        site: self.state.site,
                    });
                }
            }
            if exhausted {
                cursor = ResealCursor {
                    table: t + 1,
                    after: 0,
                };
            }
        }
        Ok(StaleBatch {
            rows,
            next: None,
            site: self.state.site,
        })
    }

    /// Writes re-sealed cells as new versions written here, in one
    /// transaction; a cell whose version is no longer the one read (written
    /// or deleted meanwhile) is skipped.
    pub fn reseal_write(&mut self, cells: Vec<Resealed>) -> Result<ResealWritten, StoreError> {
        self.transaction(|store| {
            let mut out = ResealWritten::default();
            let local = store.state.local_site;
            let mut i = 0;
            while i < cells.len() {
                // The cells of one row arrive together.
                let (table, id) = (cells[i].table.clone(), cells[i].id.clone());
                let mut j = i;
                while j < cells.len() && cells[j].table == table && cells[j].id == id {
                    j += 1;
                }
                let row = &cells[i..j];
                i = j;
                let Some(t) = store.tables.iter().position(|s| s.name == table) else {
                    out.skipped += row.len() as u64;
                    continue;
                };
                let current = store.read_cell_stamps(t, &id)?;
                let mut incoming = Vec::new();
                for cell in row {
                    // Still a column sealed to that group, still the version read.
                    let slot = store.tables[t]
                        .defs
                        .iter()
                        .position(|d| d.name == cell.column && d.group() == Some(&cell.group));
                    let unchanged = slot
                        .zip(current.as_ref())
                        .is_some_and(|(c, stamps)| stamps.get(c) == Some(&Some(cell.was)));
                    match slot {
                        Some(c) if unchanged => incoming.push(IncomingCell {
                            column: c,
                            hlc: cell.hlc,
                            site: local,
                            via: local,
                            value: Value::Blob(cell.value.clone()),
                        }),
                        _ => out.skipped += 1,
                    }
                }
                if !incoming.is_empty() {
                    let n = incoming.len() as u64;
                    let written = store.merge_row(t, &id, incoming, false)?.written as u64;
                    out.written += written;
                    out.skipped += n - written;
                }
            }
            Ok(out)
        })
    }

    /// The columns sealed to `group` that this office may not update (the
    /// schema's write rights), as `table.column`: re-sealed versions of
    /// them would be held for review at every other office.
    pub fn reseal_forbidden(&self, group: &str) -> Vec<String> {
        let rights = &self.schema.rights;
        let actor = self.own_actor();
        let mut out = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            if !rights.restricts(t) {
                continue;
            }
            for (slot, def) in table.defs.iter().enumerate() {
                let canonical = table.canonical_of.get(slot).copied().flatten();
                if def.group() == Some(group)
                    && let Some(c) = canonical
                    && !rights.allows(t, WriteAction::Update, Some(usize::from(c)), actor)
                {
                    out.push(format!("{}.{}", table.name, def.name));
                }
            }
        }
        out
    }

    /// Remembers the groups of a reseal until it finishes (empty: none
    /// pending), so a restarted daemon resumes it.
    pub fn set_pending_reseal(&mut self, groups: &[String]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO _puente_meta (key, value) VALUES ('reseal_pending', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [groups.join(",")],
            )
            .ctx("recording a pending reseal")?;
        Ok(())
    }

    /// The groups of an unfinished reseal.
    pub fn pending_reseal(&self) -> Result<Vec<String>, StoreError> {
        use rusqlite::OptionalExtension;
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM _puente_meta WHERE key = 'reseal_pending'",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading a pending reseal")?;
        Ok(text
            .unwrap_or_default()
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The (hlc, site) of each cell of a row (None: never written), or
    /// None if the row is gone.
    fn read_cell_stamps(&self, t: usize, id: &str) -> Result<Option<Vec<CellStamp>>, StoreError> {
        if self.tombstone_of(t, id)?.is_some() {
            return Ok(None);
        }
        let blob: Option<Vec<u8>> = {
            use rusqlite::OptionalExtension;
            self.conn
                .prepare_cached(&format!(
                    "SELECT _puente_clocks FROM {} WHERE id = ?1",
                    quote(&self.tables[t].name)
                ))
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .ctx("reading a row's clocks")?
        };
        let Some(blob) = blob else { return Ok(None) };
        let clocks = self.decode_clocks(t, id, &blob)?;
        Ok(Some(
            clocks
                .0
                .iter()
                .map(|c| {
                    c.is_written()
                        .then(|| (c.hlc, self.state.sites[c.site as usize]))
                })
                .collect(),
        ))
    }
}

/// A cell's (hlc, site), None if never written.
type CellStamp = Option<(Hlc, SiteId)>;

/// A cell that could not be re-sealed (its value is not shown).
#[derive(Debug, Clone)]
pub struct ResealFailure {
    pub table: String,
    pub id: String,
    pub column: String,
    pub error: SealError,
}

/// Re-seals a batch on `threads` threads, without the store: each stale
/// cell is opened with `keyring` and sealed to the group's current
/// recipients, bound to its row's reserved HLC and `batch.site`.
pub fn seal_batch(
    schema: &Schema,
    keyring: &Keyring,
    group: &str,
    batch: &StaleBatch,
    threads: usize,
) -> (Vec<Resealed>, Vec<ResealFailure>) {
    let Some(g) = schema.group(group) else {
        return (Vec::new(), Vec::new());
    };
    let jobs: Vec<(&StaleRow, &StaleCell)> = batch
        .rows
        .iter()
        .flat_map(|r| r.cells.iter().map(move |c| (r, c)))
        .collect();
    let one = |(row, cell): &(&StaleRow, &StaleCell)| -> Result<Resealed, Box<ResealFailure>> {
        let column = &cell.column_name;
        let old = Binding {
            table: &row.table_name,
            id: &row.id,
            column,
            hlc: cell.hlc,
            site: cell.site,
        };
        let new = Binding {
            hlc: row.new_hlc,
            site: batch.site,
            ..old
        };
        seal::reseal(keyring, g, &old, &new, &cell.value)
            .map(|value| Resealed {
                table: row.table_name.clone(),
                id: row.id.clone(),
                column: column.clone(),
                group: group.to_string(),
                was: (cell.hlc, cell.site),
                hlc: row.new_hlc,
                value,
            })
            .map_err(|error| {
                Box::new(ResealFailure {
                    table: row.table_name.clone(),
                    id: row.id.clone(),
                    column: column.clone(),
                    error,
                })
            })
    };
    let threads = threads.max(1).min(jobs.len().max(1));
    let results: Vec<Result<Resealed, Box<ResealFailure>>> = if threads == 1 {
        jobs.iter().map(one).collect()
    } else {
        let chunk = jobs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    let mut done = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(x) => done.push(x),
            Err(f) => failed.push(*f),
        }
    }
    (done, failed)
}
