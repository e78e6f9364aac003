//! Applying a peer's batch.
//!
//! Owns: validating a whole batch before anything is written (known tables
//! and columns, valid ids and site references, age files in sealed
//! columns), then merging it and storing the peer's cursor in the same
//! transaction, so a batch is applied entirely or not at all. Under the
//! schema's rights, what the change's office may not do is held instead
//! (rights/judge.rs decides, rights/held.rs keeps it) while the rest applies and the
//! cursor moves on: sync never stalls on a held change. A change stamped
//! further ahead of this office's clock than the drift bound allows is
//! held too (waiting for the clock: merge/release.rs applies it when due),
//! and this office's clock moves only with the stamps it writes (the
//! merge observes them), never with what a batch merely carries.
//! Must not: decrypt anything (merge never needs a key).

use std::collections::HashSet;

use rusqlite::params;

use crate::clock::Hlc;
use crate::config::Schema;
use crate::config::rights::WriteAction;
use crate::mutants::{self, Mutant};
use crate::seal;
use crate::store::batch::{Batch, Change, Cursor, PeerRef};
use crate::store::cells::clocks::CellClock;
use crate::store::cells::lww::{self, IncomingCell};
use crate::store::rights::bounds::MAX_SITES_PER_BATCH;
use crate::store::rights::held::{HeldCell, words_for_ms};
use crate::store::rights::judge;
use crate::store::{SqlContext, Store, StoreError, valid_id};
use crate::value::Value;

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub rows_written: usize,
    pub cells_written: usize,
    pub tombstones_written: usize,
    /// The greatest timestamp in the batch (for clock-skew reporting).
    pub max_hlc: Hlc,
    /// Changes held for review (their office may not make them).
    pub held: usize,
    /// Changes that should have been held but were dropped: the held list
    /// is full (a flood of forbidden changes).
    pub held_dropped: usize,
    /// Changes stamped beyond the drift bound (held, or dropped when the
    /// held list is full; counted in `held`/`held_dropped` too).
    pub ahead: usize,
    /// Entries of the held list they made (the rest of `held` is for the
    /// rights).
    pub ahead_held: usize,
    /// How far the furthest of them lies ahead of this office's clock.
    pub ahead_ms: u64,
    /// The office (or site) that stamped the furthest of them.
    pub ahead_office: Option<String>,
    /// Held changes stamped ahead that came due and were applied (or held
    /// again under the rights) in this transaction.
    pub released: usize,
}

impl Store {
    /// Applies `batch` from `peer` and records `cursor` for that peer, in
    /// one transaction. An invalid batch is rejected whole.
    pub fn apply(
        &mut self,
        peer: &PeerRef,
        batch: Batch,
        cursor: Cursor,
    ) -> Result<Applied, StoreError> {
        self.apply_group(peer, vec![(batch, cursor)])
    }

    /// Applies consecutive batches from one peer in a single transaction
    /// (the receiver groups batches that arrived together), storing the last
    /// cursor. Every batch is validated before anything is written; any
    /// invalid batch rejects the whole group.
    pub fn apply_group(
        &mut self,
        peer: &PeerRef,
        group: Vec<(Batch, Cursor)>,
    ) -> Result<Applied, StoreError> {
        let validated = group
            .into_iter()
            .map(|(batch, cursor)| Ok((validate(&self.schema, peer, batch)?, cursor)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.apply_validated(peer, validated)
    }

    /// Applies batches already checked by `validate` (the sync layer checks
    /// each batch as it arrives, on another thread, while the previous group
    /// is being applied), in one transaction with the last cursor.
    pub fn apply_validated(
        &mut self,
        peer: &PeerRef,
        group: Vec<(Validated, Cursor)>,
    ) -> Result<Applied, StoreError> {
        let max_hlc = group
            .iter()
            .map(|(v, _)| v.max_hlc)
            .max()
            .unwrap_or(Hlc::ZERO);
        let before = self.state.head;
        if mutants::active(Mutant::CursorBeforeCommit)
            && let Some((_, cursor)) = group.last()
        {
            self.save_cursor(peer, *cursor)?;
        }
        let applied = self.transaction(|store| {
            // Nothing here observes `max_hlc`: a stamp moves this office's
            // clock only when the merge writes it.
            // Held changes whose stamp this clock has caught up with go
            // first, in the order they were stamped.
            let released = store.release_due_in_transaction()?;
            // The batch comes over a connection pinned to `peer`, whose
            // Hello gave its site: that binds the site to the office.
            store.bind_in_transaction(peer.site, &peer.name)?;
            let mut applied = Applied {
                max_hlc,
                released,
                ..Applied::default()
            };
            let mut last_cursor = None;
            for (validated, cursor) in group {
                store.merge_batch(peer, validated.batch, &mut applied)?;
                last_cursor = Some(cursor);
            }
            if let Some(cursor) = last_cursor {
                store.save_cursor(peer, cursor)?;
                if applied.ahead > 0 {
                    let office = applied.ahead_office.as_deref().unwrap_or("?");
                    tracing::warn!(
                        peer = %peer.name,
                        ahead = applied.ahead,
                        ahead_ms = applied.ahead_ms,
                        "{} changes from {} are stamped up to {} ahead of this office's clock, beyond the bound of {} ([sync] max_clock_drift_s): {office}'s clock is ahead, so they are held until this clock catches up (`puente held list`); check NTP at both offices",
                        applied.ahead,
                        peer.name,
                        words_for_ms(applied.ahead_ms),
                        words_for_ms(store.max_drift_ms.unwrap_or(0)),
                    );
                }
                let for_rights = applied.held - applied.ahead_held;
                if for_rights > 0 || applied.held_dropped > 0 {
                    tracing::warn!(
                        peer = %peer.name,
                        held = for_rights,
                        dropped = applied.held_dropped,
                        "held changes {} may not make (`puente held list` shows them){}",
                        peer.name,
                        if applied.held_dropped > 0 {
                            "; the held list is full, so the excess was dropped"
                        } else {
                            ""
                        }
                    );
                }
                tracing::trace!(
                    peer = %peer.name,
                    rows = applied.rows_written,
                    cells = applied.cells_written,
                    tombstones = applied.tombstones_written,
                    progress = cursor.progress,
                    "applied a batch"
                );
            }
            Ok(applied)
        })?;
        // Committed: every change numbered since `before` is the peer's.
        self.echo.record(peer.site, before, self.state.head);
        Ok(applied)
    }

    /// Sets how far ahead of this office's clock a peer's stamp may lie
    /// (`None`: not checked; only `puente bench` measures without it).
    pub fn set_max_clock_drift(&mut self, max_drift_ms: Option<u64>) {
        self.max_drift_ms = max_drift_ms;
    }

    /// The drift bound in force (`None`: not checked).
    pub fn max_clock_drift(&self) -> Option<u64> {
        self.max_drift_ms
    }

    pub(in crate::store) fn merge_batch(
        &mut self,
        peer: &PeerRef,
        batch: Batch,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let via = self.intern_site(peer.site)?;
        // Only the sites a change refers to are kept (a dictionary entry
        // nothing uses is never interned), each new one counted against
        // the peer's bound (rights/bounds.rs).
        let mut used = vec![false; batch.sites.len()];
        for change in &batch.changes {
            match change {
                Change::Row { cells, .. } => {
                    for c in cells {
                        used[c.site as usize] = true;
                    }
                }
                Change::Tombstone { site, .. } => used[*site as usize] = true,
            }
        }
        let mut sites = Vec::with_capacity(batch.sites.len());
        for (site, used) in batch.sites.iter().zip(used) {
            sites.push(if used {
                self.intern_from_peer(*site, peer.site, &peer.name)?
            } else {
                u32::MAX
            });
        }
        let judging = self.schema.rights.is_active();
        // Read once per batch: a stamp beyond `now + drift` is held.
        let now = self.clock.now_ms();
        let drift = self.max_drift_ms;
        let beyond = |hlc: Hlc| {
            drift.is_some_and(|d| crate::clock::beyond_drift(hlc, now, d))
                && !mutants::active(Mutant::DriftUnchecked)
        };
        for change in batch.changes {
            match change {
                Change::Row {
                    table,
                    id,
                    mut cells,
                } => {
                    let t = table as usize;
                    if cells.iter().any(|c| beyond(c.hlc)) {
                        let (ahead, within): (Vec<_>, Vec<_>) =
                            cells.into_iter().partition(|c| beyond(c.hlc));
                        cells = within;
                        let ahead = ahead
                            .into_iter()
                            .map(|c| {
                                (
                                    self.tables[t].slot_of[c.column as usize],
                                    c.hlc,
                                    sites[c.site as usize],
                                    c.value,
                                )
                            })
                            .collect();
                        self.hold_ahead_cells(peer, t, &id, ahead, via, now, applied)?;
                        if cells.is_empty() {
                            continue;
                        }
                    }
                    let incoming = cells
                        .into_iter()
                        .map(|c| IncomingCell {
                            // The wire's canonical index → this replica's slot.
                            column: self.tables[table as usize].slot_of[c.column as usize],
                            hlc: c.hlc,
                            site: sites[c.site as usize],
                            via,
                            value: c.value,
                        })
                        .collect();
                    let merged = self.merge_row(t, &id, incoming, true)?;
                    if merged.written > 0 {
                        applied.rows_written += 1;
                        applied.cells_written += merged.written;
                    }
                    if !merged.held.is_empty() {
                        self.hold_cells(peer, t, &id, merged.held, applied)?;
                    }
                }
                Change::Tombstone {
                    table,
                    id,
                    hlc,
                    site,
                } => {
                    let (t, site) = (table as usize, sites[site as usize]);
                    if beyond(hlc) {
                        let standing = self.tombstone_of(t, &id)?.map(|s| self.stamp(s));
                        if lww::tombstone_replaces(self.stamp((hlc, site)), standing) {
                            self.note_ahead(site, hlc, now, applied);
                            let refused = judge::Refused::ahead(WriteAction::Delete);
                            if self.hold(
                                peer,
                                t,
                                &id,
                                site,
                                refused,
                                hlc,
                                &[],
                                &mut applied.held_dropped,
                            )? {
                                applied.held += 1;
                                applied.ahead_held += 1;
                            }
                        }
                        continue;
                    }
                    let origin = self.state.guard.origins[site as usize];
                    if judging
                        && let Some(refused) = judge::tombstone(&self.schema.rights, t, origin)
                    {
                        let standing = self.tombstone_of(t, &id)?.map(|s| self.stamp(s));
                        if lww::tombstone_replaces(self.stamp((hlc, site)), standing)
                            && self.hold(
                                peer,
                                t,
                                &id,
                                site,
                                refused,
                                hlc,
                                &[],
                                &mut applied.held_dropped,
                            )?
                        {
                            applied.held += 1;
                        }
                        continue;
                    }
                    if self.merge_tombstone(t, &id, hlc, site, via)? {
                        applied.tombstones_written += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Holds the cells of one row change stamped beyond the drift bound
    /// (slot, stamp, site index, value): not applied, this office's clock
    /// untouched. Moot against a tombstone (it changes nothing), so not
    /// held then.
    #[allow(clippy::too_many_arguments)]
    fn hold_ahead_cells(
        &mut self,
        peer: &PeerRef,
        t: usize,
        id: &str,
        cells: Vec<(usize, Hlc, u32, Value)>,
        via: u32,
        now: u64,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        if self.tombstone_of(t, id)?.is_some() {
            return Ok(());
        }
        let action = if self.read_for_merge(t, id)?.is_some() {
            WriteAction::Update
        } else {
            WriteAction::Insert
        };
        let mut held = Vec::with_capacity(cells.len());
        for (column, hlc, site, value) in cells {
            self.note_ahead(site, hlc, now, applied);
            held.push(HeldCell {
                column,
                clock: CellClock {
                    hlc,
                    site,
                    via,
                    seq: 0,
                },
                value,
                refused: judge::Refused::ahead(action),
            });
        }
        let before = applied.held;
        self.hold_cells(peer, t, id, held, applied)?;
        applied.ahead_held += applied.held - before;
        Ok(())
    }

    /// Counts a change stamped ahead and keeps the furthest for status.
    fn note_ahead(&self, site: u32, hlc: Hlc, now: u64, applied: &mut Applied) {
        applied.ahead += 1;
        let lead = crate::clock::lead_ms(hlc, now).max(0) as u64;
        if applied.ahead_office.is_none() || lead > applied.ahead_ms {
            applied.ahead_ms = lead;
            applied.ahead_office = Some(self.office_or_site(&self.state.sites[site as usize]));
        }
    }

    /// Holds the refused cells of one row change, one entry per site and
    /// kind of change.
    fn hold_cells(
        &mut self,
        peer: &PeerRef,
        t: usize,
        id: &str,
        cells: Vec<HeldCell>,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        let mut groups: Vec<Vec<HeldCell>> = Vec::new();
        for cell in cells {
            let same = |g: &Vec<HeldCell>| {
                g[0].clock.site == cell.clock.site && g[0].refused == cell.refused
            };
            match groups.iter_mut().find(|g| same(g)) {
                Some(g) => g.push(cell),
                None => groups.push(vec![cell]),
            }
        }
        for group in groups {
            let (site, refused) = (group[0].clock.site, group[0].refused);
            let hlc = group.iter().map(|c| c.clock.hlc).max().unwrap_or(Hlc::ZERO);
            if self.hold(
                peer,
                t,
                id,
                site,
                refused,
                hlc,
                &group,
                &mut applied.held_dropped,
            )? {
                applied.held += 1;
            }
        }
        Ok(())
    }

    /// Records how far a peer's changes have been applied, never moving an
    /// existing cursor backwards.
    fn save_cursor(&self, peer: &PeerRef, cursor: Cursor) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_cursors (peer, base, progress) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer) DO UPDATE SET base = excluded.base, progress = excluded.progress
                 WHERE excluded.progress > progress OR (excluded.progress = progress AND excluded.base > base)",
            )
            .and_then(|mut s| s.execute(params![&peer.site.0[..], cursor.base as i64, cursor.progress as i64]))
            .ctx("saving a peer cursor")?;
        Ok(())
    }
}

/// A batch that passed `validate`; only `validate` makes one.
#[derive(Debug)]
pub struct Validated {
    batch: Batch,
    max_hlc: Hlc,
}

impl Validated {
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    pub(in crate::store) fn into_batch(self) -> Batch {
        self.batch
    }
}

/// Checks a whole batch from `peer` against the schema (known tables and
/// columns, valid ids, sites and timestamps, an age file in every sealed
/// column). Pure: needs no replica, so it can run on any thread.
pub fn validate(schema: &Schema, peer: &PeerRef, batch: Batch) -> Result<Validated, StoreError> {
    let max_hlc = check(schema, peer, &batch)?;
    Ok(Validated { batch, max_hlc })
}

fn check(schema: &Schema, peer: &PeerRef, batch: &Batch) -> Result<Hlc, StoreError> {
    let reject = |table: &str, id: &str, column: &str, reason: String| StoreError::InvalidBatch {
        peer: peer.name.clone(),
        table: table.to_string(),
        id: id.to_string(),
        column: column.to_string(),
        reason,
    };
    if batch.sites.len() > MAX_SITES_PER_BATCH {
        return Err(reject(
            "-",
            "-",
            "-",
            format!(
                "the batch names {} site ids, more than the {MAX_SITES_PER_BATCH} a batch may (an honest office has met a handful of replicas)",
                batch.sites.len()
            ),
        ));
    }
    let distinct: HashSet<_> = batch.sites.iter().collect();
    if distinct.len() != batch.sites.len() {
        return Err(reject(
            "-",
            "-",
            "-",
            "the site dictionary repeats a site".into(),
        ));
    }
    let mut max_hlc = Hlc::ZERO;
    let site_ok = |site: u32| (site as usize) < batch.sites.len();
    for change in &batch.changes {
        let (table, id) = match change {
            Change::Row { table, id, .. } | Change::Tombstone { table, id, .. } => {
                (*table as usize, id)
            }
        };
        let Some(def) = schema.tables.get(table) else {
            return Err(reject(
                &format!("#{table}"),
                id,
                "-",
                format!(
                    "unknown table number {table} (this schema has {})",
                    schema.tables.len()
                ),
            ));
        };
        if !valid_id(id) {
            return Err(reject(&def.name, "-", "-", "invalid row id".into()));
        }
        match change {
            Change::Tombstone { hlc, site, .. } => {
                if !site_ok(*site) || *hlc == Hlc::ZERO {
                    return Err(reject(
                        &def.name,
                        id,
                        "-",
                        "tombstone with an invalid site or timestamp".into(),
                    ));
                }
                max_hlc = max_hlc.max(*hlc);
            }
            Change::Row { cells, .. } => {
                for cell in cells {
                    let Some(column) = def.columns.get(cell.column as usize) else {
                        return Err(reject(
                            &def.name,
                            id,
                            &format!("#{}", cell.column),
                            format!(
                                "unknown column number {} (the table has {})",
                                cell.column,
                                def.columns.len()
                            ),
                        ));
                    };
                    if !site_ok(cell.site) || cell.hlc == Hlc::ZERO {
                        return Err(reject(
                            &def.name,
                            id,
                            &column.name,
                            "cell with an invalid site or timestamp".into(),
                        ));
                    }
                    if column.is_sealed() {
                        let ok = matches!(&cell.value, Value::Blob(b) if seal::is_age_file(b));
                        if !ok {
                            return Err(reject(
                                &def.name,
                                id,
                                &column.name,
                                format!(
                                    "a sealed column carries a {} that is not an age file (fail closed: is the sending node misconfigured?)",
                                    cell.value.kind()
                                ),
                            ));
                        }
                    } else if let Some(ty) = &column.ty
                        && !ty.holds(&cell.value)
                    {
                        // An office of this schema stores only values in
                        // their typed form; anything else is refused, as a
                        // store would turn it into another value.
                        return Err(reject(
                            &def.name,
                            id,
                            &column.name,
                            format!(
                                "a {} that is not {} in its stored form",
                                cell.value.kind(),
                                ty.expected()
                            ),
                        ));
                    }
                    max_hlc = max_hlc.max(cell.hlc);
                }
            }
        }
    }
    Ok(max_hlc)
}
