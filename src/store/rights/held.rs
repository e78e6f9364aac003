//! Changes held for review: what a peer sent that its office may not make
//! (or that carries this replica's own site id). They are not applied;
//! they wait in `_puente_held` and `_puente_held_cells`, tables local to
//! this replica that sync never reads, until an admin accepts or discards
//! them. Cells are kept as they came (a sealed cell is its age file, so
//! no plaintext is ever held), with their original stamps, so that
//! accepting applies the change exactly as if it had been allowed.
//!
//! Owns: recording a held change (once: the same change arriving again is
//! not held twice), the bound on what is held (entries and bytes; beyond
//! it a change is dropped and counted), which held changes wait for this
//! office's clock (`_puente_held_ahead`: stamped beyond the drift bound;
//! merge/release.rs applies them when due), dropping a held change once it
//! would change nothing (a newer version or a tombstone came), the list
//! and the summary for status. Accepting and discarding: merge/review.rs.
//! Must not: judge changes (judge.rs), or put a value into an error or a
//! log line.

use rusqlite::{OptionalExtension, params};

use crate::clock::Hlc;
use crate::config::rights::WriteAction;
use crate::stamp::{SiteId, Stamp};
use crate::store::cells::clocks::CellClock;
use crate::store::cells::lww;
use crate::store::rights::judge::Refused;
use crate::store::{SqlContext, Store, StoreError};
use crate::value::Value;

const HELD_DDL: &str = "
CREATE TABLE IF NOT EXISTS _puente_held (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    peer TEXT NOT NULL,
    peer_site BLOB NOT NULL,
    origin TEXT NOT NULL,
    origin_site BLOB NOT NULL,
    tbl TEXT NOT NULL,
    row_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    why TEXT NOT NULL,
    held_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_by INTEGER,
    decided_ms INTEGER,
    diverges INTEGER NOT NULL DEFAULT 0,
    note TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS _puente_held_row ON _puente_held (tbl, row_id);
CREATE TABLE IF NOT EXISTS _puente_held_cells (
    held INTEGER NOT NULL,
    col TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    value ANY,
    PRIMARY KEY (held, col)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _puente_held_ahead (
    held INTEGER PRIMARY KEY,
    stamp_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS _puente_held_ahead_stamp ON _puente_held_ahead (stamp_ms);
";

/// Held changes kept at most (beyond: dropped and counted).
pub const MAX_HELD_ENTRIES: u64 = 10_000;
/// Bytes of held changes kept at most.
pub const MAX_HELD_BYTES: u64 = 64 << 20;

/// One held cell, as judged during a merge.
#[derive(Debug)]
pub(in crate::store) struct HeldCell {
    pub column: usize,
    pub clock: CellClock,
    pub value: Value,
    pub refused: Refused,
}

/// A held change as the list shows it (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldChange {
    pub id: i64,
    /// The pinned peer that sent it.
    pub peer: String,
    /// The office it is judged as (or what its site is).
    pub origin: String,
    pub origin_site: SiteId,
    pub table: String,
    pub row: String,
    /// "insert", "update" or "delete".
    pub kind: String,
    /// Its columns and their stamps' clocks (empty for a delete).
    pub columns: Vec<(String, Hlc)>,
    /// The newest clock of the change.
    pub hlc: Hlc,
    pub why: String,
    pub held_ms: u64,
    /// "held", "accepted" or "discarded".
    pub state: String,
    /// The uid of the admin who decided, when decided on the socket.
    pub decided_by: Option<u32>,
    pub decided_ms: Option<u64>,
    /// Whether the peer keeps a version this office does not (a discarded
    /// delete or insert): digests with it stay different.
    pub diverges: bool,
    pub note: Option<String>,
}

/// Held changes from one peer, for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldFrom {
    pub peer: String,
    /// Waiting for review.
    pub held: u64,
    /// Discarded, but kept by the peer.
    pub diverged: u64,
    /// Why they are held: a few distinct reasons, oldest first.
    pub reasons: Vec<String>,
}

/// What an admin's decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub change: HeldChange,
    /// Cells or tombstones written here.
    pub written: usize,
}

fn kind_name(action: WriteAction) -> &'static str {
    action.name()
}

impl Store {
    pub(in crate::store) fn ensure_held(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(HELD_DDL)
            .ctx("creating the held tables")
    }

    /// Held changes that wait for this office's clock.
    pub(in crate::store) fn ahead_total(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM _puente_held_ahead a JOIN _puente_held h ON h.id = a.held WHERE h.state = 'held'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .ctx("counting held changes stamped ahead")
    }

    /// The physical time of a held change's stamp, if it waits for this
    /// office's clock.
    pub(in crate::store) fn ahead_stamp_ms(&self, held: i64) -> Result<Option<u64>, StoreError> {
        self.conn
            .prepare_cached("SELECT stamp_ms FROM _puente_held_ahead WHERE held = ?1")
            .and_then(|mut s| s.query_row([held], |r| r.get::<_, i64>(0)).optional())
            .map(|ms| ms.map(|ms| ms.max(0) as u64))
            .ctx("reading a held change stamped ahead")
    }

    /// A held change no longer waits for this office's clock (released,
    /// decided or dropped).
    pub(in crate::store) fn unmark_ahead(&mut self, held: i64) -> Result<(), StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM _puente_held_ahead WHERE held = ?1")
            .and_then(|mut s| s.execute([held]))
            .ctx("releasing a held change stamped ahead")?;
        if removed > 0 {
            self.state.guard.ahead_entries = self.state.guard.ahead_entries.saturating_sub(1);
        }
        Ok(())
    }

    /// Held changes stamped ahead whose stamp is now within `limit_ms`
    /// (this office's clock plus the drift bound), oldest stamp first.
    pub(in crate::store) fn ahead_due(&self, limit_ms: u64) -> Result<Vec<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT held FROM _puente_held_ahead WHERE stamp_ms <= ?1 ORDER BY stamp_ms, held",
            )
            .and_then(|mut s| {
                s.query_map([limit_ms.min(i64::MAX as u64) as i64], |r| r.get(0))?
                    .collect()
            })
            .ctx("finding held changes now due")
    }

    /// How many changes wait for this office's clock.
    pub fn held_ahead_count(&self) -> u64 {
        self.state.guard.ahead_entries
    }

    pub(in crate::store) fn held_totals(&self) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM _puente_held WHERE state = 'held'",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .ctx("counting held changes")
    }

    /// Lowers the bound on held changes (tests of a flood).
    pub fn set_held_limits(&mut self, entries: u64, bytes: u64) {
        self.held_limits = (entries, bytes);
    }

    /// Records a held change (inside the apply's transaction). Returns
    /// whether it was kept: false when it was already held, or when the
    /// bound is reached (then `dropped` counts it).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::store) fn hold(
        &mut self,
        peer: &crate::store::PeerRef,
        t: usize,
        id: &str,
        site: u32,
        refused: Refused,
        hlc: Hlc,
        cells: &[HeldCell],
        dropped: &mut usize,
    ) -> Result<bool, StoreError> {
        let table = &self.schema.tables[t];
        let origin_site = self.state.sites[site as usize];
        let kind = kind_name(refused.action);
        let mut key = Vec::with_capacity(64);
        for part in [table.name.as_bytes(), id.as_bytes(), kind.as_bytes()] {
            key.extend_from_slice(part);
            key.push(0);
        }
        key.extend_from_slice(&origin_site.0);
        key.extend_from_slice(&hlc.0.to_le_bytes());
        let mut bytes = 128 + id.len() as u64;
        for cell in cells {
            key.extend_from_slice(self.tables[t].defs[cell.column].name.as_bytes());
            key.push(0);
            key.extend_from_slice(&cell.clock.hlc.0.to_le_bytes());
            cell.value.encode_into(&mut key);
            bytes += 32 + cell.value.encoded_len() as u64;
        }
        let key = ring::digest::digest(&ring::digest::SHA256, &key);
        let known: bool = self
            .conn
            .prepare_cached("SELECT count(*) FROM _puente_held WHERE key = ?1")
            .and_then(|mut s| s.query_row([key.as_ref()], |r| r.get::<_, i64>(0)))
            .ctx("looking up a held change")?
            > 0;
        if known {
            return Ok(false);
        }
        let (max_entries, max_bytes) = self.held_limits;
        let guard = &self.state.guard;
        if guard.held_entries + 1 > max_entries || guard.held_bytes + bytes > max_bytes {
            *dropped += 1;
            return Ok(false);
        }
        let slots: Vec<usize> = cells.iter().map(|c| c.column).collect();
        let columns = self.canonical_columns(t, &slots);
        let now_ms = self.clock.now_ms();
        let (origin, why) = if refused.ahead {
            self.describe_ahead(peer, site, hlc, now_ms)
        } else {
            self.describe_refusal(peer, t, site, refused, &columns)
        };
        let now = now_ms as i64;
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_held (key, peer, peer_site, origin, origin_site, tbl, row_id, kind, hlc, why, held_ms, bytes, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'held')",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.as_ref(),
                    peer.name,
                    &peer.site.0[..],
                    origin,
                    &origin_site.0[..],
                    table.name,
                    id,
                    kind,
                    hlc.0 as i64,
                    why,
                    now,
                    bytes as i64
                ])
            })
            .ctx("holding a change")?;
        let held = self.conn.last_insert_rowid();
        for cell in cells {
            self.conn
                .prepare_cached(
                    "INSERT INTO _puente_held_cells (held, col, hlc, value) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        held,
                        self.tables[t].defs[cell.column].name,
                        cell.clock.hlc.0 as i64,
                        &cell.value
                    ])
                })
                .ctx("holding a change")?;
        }
        if refused.ahead {
            self.conn
                .prepare_cached("INSERT INTO _puente_held_ahead (held, stamp_ms) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![held, hlc.millis() as i64]))
                .ctx("holding a change stamped ahead")?;
            self.state.guard.ahead_entries += 1;
        }
        self.state.guard.held_entries += 1;
        self.state.guard.held_bytes += bytes;
        self.state.guard.held_version += 1;
        tracing::debug!(peer = %peer.name, %origin, table = %self.schema.tables[t].name, row = id, kind, "held a change: {why}");
        Ok(true)
    }

    /// The schema's column indices (as rights are indexed) of storage
    /// slots; a slot the schema no longer lists is left out.
    pub(in crate::store) fn canonical_columns(&self, t: usize, slots: &[usize]) -> Vec<usize> {
        let canonical = &self.tables[t].canonical_of;
        slots
            .iter()
            .filter_map(|&s| canonical.get(s).copied().flatten().map(usize::from))
            .collect()
    }

    /// The office whose clock stamped a change ahead, in words, and why it
    /// is held.
    fn describe_ahead(
        &self,
        peer: &crate::store::PeerRef,
        site: u32,
        hlc: Hlc,
        now_ms: u64,
    ) -> (String, String) {
        let origin_site = self.state.sites[site as usize];
        let origin = self.office_or_site(&origin_site);
        let lead = crate::clock::lead_ms(hlc, now_ms).max(0) as u64;
        let drift = self.max_drift_ms.unwrap_or(0);
        let why = if hlc.millis() >= crate::clock::MAX_MILLIS {
            format!(
                "it is stamped at the largest timestamp there is ({hlc}), which no honest clock reaches: {origin}'s clock is broken or the change is forged (sent by {}); it is never applied by itself: discard it, and check {origin}'s clock",
                peer.name
            )
        } else {
            format!(
                "it is stamped {} ahead of this office's clock, more than the {} the node config allows ([sync] max_clock_drift_s): {origin}'s clock is ahead (sent by {}); it is applied by itself once this clock is within {} of its stamp, or discard it; check the clocks of both offices (NTP)",
                words_for_ms(lead),
                words_for_ms(drift),
                peer.name,
                words_for_ms(drift)
            )
        };
        (origin, why)
    }

    /// The office a site is bound to, or the site id in words.
    pub(in crate::store) fn office_or_site(&self, site: &SiteId) -> String {
        match self.state.guard.bound.get(site) {
            Some(office) => office.clone(),
            None => format!("site {site}"),
        }
    }

    /// The office a held change is judged as, in words, and why it is held.
    /// `columns`: the schema's column indices.
    fn describe_refusal(
        &self,
        peer: &crate::store::PeerRef,
        t: usize,
        site: u32,
        refused: Refused,
        columns: &[usize],
    ) -> (String, String) {
        let origin_site = self.state.sites[site as usize];
        if !refused.ahead && self.state.guard.retired.contains(&origin_site) {
            return (
                "a site id this office retired".into(),
                format!(
                    "the change carries site id {origin_site}, which this office used before it was restored from a backup and has retired, so it keeps no office's rights: it is this office's own write made after that backup, coming back from {0}, or it is forged by {0}; no replica can tell which: accept it if this office made it, discard it otherwise",
                    peer.name
                ),
            );
        }
        if refused.forged {
            return (
                "this office's own site id".into(),
                format!(
                    "the change carries this office's own site id {origin_site}, which no honest peer sends back: it is forged, or {} runs on a copy of this replica",
                    peer.name
                ),
            );
        }
        let (origin, who, unknown) = match self.state.guard.bound.get(&origin_site) {
            Some(office) if self.schema.rights.office_index(office).is_some() => {
                (office.clone(), office.clone(), false)
            }
            Some(office) => (
                format!("{office} (not an office of the schema)"),
                format!("{office}, which the schema's offices do not list,"),
                true,
            ),
            None => (
                format!("unknown site {origin_site}"),
                format!(
                    "a change from site {origin_site}, whose office this node cannot tell (relayed by {} from an office this node never connected to, or forged),",
                    peer.name
                ),
                true,
            ),
        };
        let table = &self.schema.tables[t];
        let mut why = self
            .schema
            .rights
            .refusal(table, t, refused.action, columns, &who);
        if unknown {
            why.push_str(
                "; a change whose office is not a listed office may only do what every office may",
            );
        }
        (origin, why)
    }

    /// Drops the held changes of row `id` of table `t` that would no longer
    /// change anything (a newer version or a tombstone arrived since).
    pub(in crate::store) fn recheck_held(&mut self, t: usize, id: &str) -> Result<(), StoreError> {
        let table = self.schema.tables[t].name.clone();
        let entries: Vec<(i64, String, Hlc, SiteId, u64)> = self
            .conn
            .prepare_cached(
                "SELECT id, kind, hlc, origin_site, bytes FROM _puente_held WHERE tbl = ?1 AND row_id = ?2 AND state = 'held'",
            )
            .and_then(|mut s| {
                s.query_map(params![table, id], |r| {
                    let site: Vec<u8> = r.get(3)?;
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        Hlc(r.get::<_, i64>(2)? as u64),
                        SiteId(site.try_into().unwrap_or([0; 16])),
                        r.get::<_, i64>(4)? as u64,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .ctx("reading held changes")?;
        if entries.is_empty() {
            return Ok(());
        }
        let tombstone = self.tombstone_of(t, id)?.map(|s| self.stamp(s));
        let row = self.read_row_cells(t, id)?;
        for (held, kind, hlc, site, bytes) in entries {
            let effective = if kind == "delete" {
                lww::tombstone_replaces(Stamp { hlc, site }, tombstone)
            } else if tombstone.is_some() {
                false
            } else {
                let cells = self.held_cells_of(held)?;
                cells.iter().any(|(column, hlc, value)| {
                    let Some(c) = self.tables[t].slot(column) else {
                        return false;
                    };
                    let current = row.as_ref().and_then(|r| {
                        r.clocks.0[c].is_written().then(|| {
                            (
                                self.stamp((r.clocks.0[c].hlc, r.clocks.0[c].site)),
                                &r.values[c],
                            )
                        })
                    });
                    lww::replaces((Stamp { hlc: *hlc, site }, value), current)
                })
            };
            if !effective {
                self.forget_held(held, bytes)?;
                tracing::debug!(table = %table, row = id, "a held change would change nothing any more; dropped from the list");
            }
        }
        Ok(())
    }

    pub(in crate::store) fn forget_held(
        &mut self,
        held: i64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM _puente_held_cells WHERE held = ?1")
            .and_then(|mut s| s.execute([held]))
            .ctx("dropping a held change")?;
        self.conn
            .prepare_cached("DELETE FROM _puente_held WHERE id = ?1")
            .and_then(|mut s| s.execute([held]))
            .ctx("dropping a held change")?;
        self.unmark_ahead(held)?;
        self.state.guard.held_entries = self.state.guard.held_entries.saturating_sub(1);
        self.state.guard.held_version += 1;
        self.state.guard.held_bytes = self.state.guard.held_bytes.saturating_sub(bytes);
        Ok(())
    }

    pub(in crate::store) fn held_cells_of(
        &self,
        held: i64,
    ) -> Result<Vec<(String, Hlc, Value)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT col, hlc, value FROM _puente_held_cells WHERE held = ?1 ORDER BY col",
            )
            .and_then(|mut s| {
                s.query_map([held], |r| {
                    Ok((
                        r.get(0)?,
                        Hlc(r.get::<_, i64>(1)? as u64),
                        r.get::<_, Value>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .ctx("reading a held change")
    }

    /// Held changes, oldest first: those waiting for review, or (`all`)
    /// also those decided.
    pub fn held_list(&self, all: bool) -> Result<Vec<HeldChange>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare(if all {
                "SELECT id FROM _puente_held ORDER BY id"
            } else {
                "SELECT id FROM _puente_held WHERE state = 'held' ORDER BY id"
            })
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .ctx("listing held changes")?;
        ids.into_iter()
            .filter_map(|id| self.held_get(id).transpose())
            .collect()
    }

    /// One held change.
    pub fn held_get(&self, id: i64) -> Result<Option<HeldChange>, StoreError> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT peer, origin, origin_site, tbl, row_id, kind, hlc, why, held_ms, state, decided_by, decided_ms, diverges, note
                 FROM _puente_held WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    let site: Vec<u8> = r.get(2)?;
                    Ok(HeldChange {
                        id,
                        peer: r.get(0)?,
                        origin: r.get(1)?,
                        origin_site: SiteId(site.try_into().unwrap_or([0; 16])),
                        table: r.get(3)?,
                        row: r.get(4)?,
                        kind: r.get(5)?,
                        columns: Vec::new(),
                        hlc: Hlc(r.get::<_, i64>(6)? as u64),
                        why: r.get(7)?,
                        held_ms: r.get::<_, i64>(8)?.max(0) as u64,
                        state: r.get(9)?,
                        decided_by: r.get::<_, Option<i64>>(10)?.map(|u| u as u32),
                        decided_ms: r.get::<_, Option<i64>>(11)?.map(|m| m.max(0) as u64),
                        diverges: r.get::<_, i64>(12)? != 0,
                        note: r.get(13)?,
                    })
                })
                .optional()
            })
            .ctx("reading a held change")?;
        let Some(mut change) = found else {
            return Ok(None);
        };
        change.columns = self
            .held_cells_of(id)?
            .into_iter()
            .map(|(c, hlc, _)| (c, hlc))
            .collect();
        Ok(Some(change))
    }

    /// Held and diverged changes per peer (for status).
    pub fn held_summary(&self) -> Result<Vec<HeldFrom>, StoreError> {
        let summary = self
            .conn
            .prepare_cached(
                "SELECT peer, sum(state = 'held'), sum(state = 'discarded' AND diverges) FROM _puente_held GROUP BY peer ORDER BY peer",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(HeldFrom {
                        peer: r.get(0)?,
                        held: r.get::<_, i64>(1)? as u64,
                        diverged: r.get::<_, i64>(2)? as u64,
                        reasons: Vec::new(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .ctx("summing up held changes")?;
        let mut out: Vec<HeldFrom> = summary
            .into_iter()
            .filter(|h| h.held + h.diverged > 0)
            .collect();
        for from in out.iter_mut().filter(|h| h.held > 0) {
            from.reasons = self
                .conn
                .prepare_cached(
                    "SELECT why FROM _puente_held WHERE peer = ?1 AND state = 'held' GROUP BY why ORDER BY min(id) LIMIT 5",
                )
                .and_then(|mut s| s.query_map([&from.peer], |r| r.get(0))?.collect())
                .ctx("summing up held changes")?;
        }
        Ok(out)
    }

    /// A number that moves whenever the held list changes (what status
    /// shows of it is read again only then).
    pub fn held_version(&self) -> u64 {
        self.state.guard.held_version
    }

    /// How many changes are held now.
    pub fn held_count(&self) -> u64 {
        self.state.guard.held_entries
    }

    /// Reads a row's clocks and values, if it is live.
    fn read_row_cells(&self, t: usize, id: &str) -> Result<Option<lww::RowCells>, StoreError> {
        Ok(self.read_for_merge(t, id)?.map(|e| e.row))
    }
}

/// A duration in words: "3 min 20 s", "10 days 4 h", "250 ms".
pub fn words_for_ms(ms: u64) -> String {
    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const DAY: u64 = 24 * H;
    const YEAR: u64 = 365 * DAY;
    match ms {
        ms if ms >= YEAR => format!("{} years {} days", ms / YEAR, ms % YEAR / DAY),
        ms if ms >= DAY => format!("{} days {} h", ms / DAY, ms % DAY / H),
        ms if ms >= H => format!("{} h {} min", ms / H, ms % H / MIN),
        ms if ms >= MIN => format!("{} min {} s", ms / MIN, ms % MIN / S),
        ms if ms >= S => format!("{} s", ms / S),
        ms => format!("{ms} ms"),
    }
}
