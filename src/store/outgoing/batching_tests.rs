//! Tests of the batching decision against a model replica held in memory:
//! no SQLite. The model plays the SQL reads `since.rs` makes.
//!
//! Owns: the model and the properties every batch keeps (oldest first,
//! bounded, never empty, echoes left out, the cursor the peer stores).
//! Must not: open a database.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::store::cells::clocks::CellClock;

const COLUMNS: usize = 3;
const SITES: [SiteId; 3] = [SiteId([0; 16]), SiteId([1; 16]), SiteId([2; 16])];

/// A sender's replica: rows with per-cell clocks and tombstones. Every
/// write's value is its own sequence, so a receiver can tell versions
/// apart.
#[derive(Default)]
struct Model {
    rows: BTreeMap<(usize, String), RowClocks>,
    tombstones: BTreeMap<(usize, String), CellClock>,
    head: u64,
}

fn row_seq(clocks: &RowClocks) -> u64 {
    clocks.0.iter().map(|c| c.seq).max().unwrap_or(0)
}

impl Model {
    fn write(&mut self, t: usize, id: &str, columns: &[usize], site: u32, via: u32) {
        let key = (t, id.to_string());
        if self.tombstones.contains_key(&key) {
            return;
        }
        self.head += 1;
        let clock = CellClock {
            hlc: Hlc(self.head),
            site,
            via,
            seq: self.head,
        };
        let row = self
            .rows
            .entry(key)
            .or_insert_with(|| RowClocks::new(COLUMNS));
        for &c in columns {
            row.0[c] = clock;
        }
    }

    fn delete(&mut self, t: usize, id: &str, site: u32) {
        let key = (t, id.to_string());
        if self.tombstones.contains_key(&key) {
            return;
        }
        self.rows.remove(&key);
        self.head += 1;
        let clock = CellClock {
            hlc: Hlc(self.head),
            site,
            via: site,
            seq: self.head,
        };
        self.tombstones.insert(key, clock);
    }

    /// What `since.rs` reads: per table and for tombstones, the oldest
    /// `fetch` entries after `progress`.
    fn candidates(&self, progress: u64, fetch: usize) -> Vec<(u64, Candidate)> {
        let mut out = Vec::new();
        for t in 0..2 {
            let mut rows: Vec<_> = self
                .rows
                .iter()
                .filter(|((table, _), c)| *table == t && row_seq(c) > progress)
                .collect();
            rows.sort_by_key(|(_, c)| row_seq(c));
            for ((_, id), clocks) in rows.into_iter().take(fetch) {
                let values = clocks
                    .0
                    .iter()
                    .map(|c| match c.is_written() {
                        true => Value::Integer(c.seq as i64),
                        false => Value::Null,
                    })
                    .collect();
                out.push((
                    row_seq(clocks),
                    Candidate::Row {
                        t,
                        id: id.clone(),
                        clocks: clocks.clone(),
                        values,
                    },
                ));
            }
        }
        let mut tombs: Vec<_> = self
            .tombstones
            .iter()
            .filter(|(_, c)| c.seq > progress)
            .collect();
        tombs.sort_by_key(|(_, c)| c.seq);
        for ((t, id), c) in tombs.into_iter().take(fetch) {
            out.push((
                c.seq,
                Candidate::Tombstone {
                    t: *t,
                    id: id.clone(),
                    hlc: c.hlc,
                    site: c.site,
                    via: c.via,
                },
            ));
        }
        out
    }

    fn read(&self, request: Request) -> Outgoing {
        let from = start(request.from, self.head);
        let candidates = self.candidates(from.progress, fetch_limit(request.max_rows));
        assemble(candidates, Request { from, ..request }, self.head, &SITES)
    }
}

/// What a receiver holds: per cell the sequence of the version it got.
#[derive(Default)]
struct Receiver {
    cells: BTreeMap<(usize, String, usize), u64>,
    tombstones: BTreeSet<(usize, String)>,
    cursor: Cursor,
}

impl Receiver {
    fn take(&mut self, out: &Outgoing, skip: Option<SiteId>) {
        for change in &out.batch.changes {
            match change {
                Change::Row { table, id, cells } => {
                    for cell in cells {
                        assert_ne!(Some(out.batch.sites[cell.site as usize]), skip);
                        let Value::Integer(seq) = cell.value else {
                            panic!("model values are integers")
                        };
                        let key = (*table as usize, id.clone(), cell.column as usize);
                        self.cells.insert(key, seq as u64);
                    }
                }
                Change::Tombstone {
                    table, id, site, ..
                } => {
                    assert_ne!(Some(out.batch.sites[*site as usize]), skip);
                    self.tombstones.insert((*table as usize, id.clone()));
                }
            }
        }
        self.cursor = out.cursor;
    }

    /// The `Cursor` invariant, checked against the sender as it is now.
    fn check(&self, model: &Model, skip: Option<SiteId>) -> Result<(), TestCaseError> {
        let Cursor { base, progress } = self.cursor;
        let skipped = |c: &CellClock| {
            skip.is_some_and(|s| s == SITES[c.site as usize] || s == SITES[c.via as usize])
        };
        for ((t, id), clocks) in &model.rows {
            let seq = row_seq(clocks);
            for (c, clock) in clocks.0.iter().enumerate() {
                if !clock.is_written() || skipped(clock) {
                    continue;
                }
                let due = clock.seq <= base || (seq > base && seq <= progress);
                if due {
                    prop_assert_eq!(
                        self.cells.get(&(*t, id.clone(), c)),
                        Some(&clock.seq),
                        "cell {}/{}/{} seq {} missing at cursor {:?}",
                        t,
                        id,
                        c,
                        clock.seq,
                        self.cursor
                    );
                }
            }
        }
        for (key, clock) in &model.tombstones {
            if clock.seq <= progress && !skipped(clock) {
                prop_assert!(self.tombstones.contains(key), "tombstone {:?} missing", key);
            }
        }
        Ok(())
    }
}

fn request(from: Cursor, max_rows: usize, max_bytes: usize) -> Request {
    Request {
        from,
        max_rows,
        max_bytes,
        skip_site: None,
    }
}

fn ids(out: &Outgoing) -> Vec<String> {
    out.batch
        .changes
        .iter()
        .map(|c| match c {
            Change::Row { id, .. } | Change::Tombstone { id, .. } => id.clone(),
        })
        .collect()
}

#[test]
fn a_cursor_beyond_the_head_or_malformed_starts_over() {
    let c = |base, progress| Cursor { base, progress };
    assert_eq!(start(c(3, 5), 5), c(3, 5));
    assert_eq!(start(c(3, 6), 5), Cursor::ZERO);
    assert_eq!(start(c(4, 3), 5), Cursor::ZERO);
    assert_eq!(fetch_limit(0), 2);
    assert_eq!(fetch_limit(10), 11);
}

#[test]
fn rows_come_oldest_first_within_the_row_bound_and_the_cursor_says_where() {
    let mut m = Model::default();
    for id in ["a", "b", "c"] {
        m.write(0, id, &[0], 0, 0);
    }
    m.write(1, "x", &[1], 0, 0);
    m.write(0, "a", &[2], 0, 0); // a moves to seq 5
    let out = m.read(request(Cursor::ZERO, 2, usize::MAX));
    assert_eq!(ids(&out), ["b", "c"]);
    assert!(!out.complete);
    assert_eq!(
        out.cursor,
        Cursor {
            base: 0,
            progress: 3
        }
    );
    let out = m.read(request(out.cursor, 2, usize::MAX));
    assert_eq!(ids(&out), ["x", "a"]);
    assert!(out.complete);
    assert_eq!((out.cursor, out.head), (Cursor::at(5), 5));
}

#[test]
fn the_byte_bound_still_lets_one_change_through() {
    let mut m = Model::default();
    m.write(0, "a", &[0, 1, 2], 0, 0);
    m.write(0, "b", &[0], 0, 0);
    let out = m.read(request(Cursor::ZERO, 100, 1));
    assert_eq!(ids(&out), ["a"]);
    assert_eq!(
        out.cursor,
        Cursor {
            base: 0,
            progress: 1
        }
    );
}

#[test]
fn cells_at_or_below_base_are_not_sent_again() {
    let mut m = Model::default();
    m.write(0, "a", &[0, 1], 0, 0); // seq 1
    m.write(0, "a", &[2], 0, 0); // seq 2
    let out = m.read(request(
        Cursor {
            base: 1,
            progress: 1,
        },
        10,
        usize::MAX,
    ));
    let Change::Row { cells, .. } = &out.batch.changes[0] else {
        panic!("a row")
    };
    assert_eq!(cells.iter().map(|c| c.column).collect::<Vec<_>>(), [2]);
}

#[test]
fn what_the_peer_wrote_or_sent_is_left_out_but_passed_over() {
    let mut m = Model::default();
    m.write(0, "theirs", &[0], 2, 2);
    m.write(0, "relayed", &[0], 1, 2);
    m.write(0, "ours", &[0], 0, 0);
    m.delete(1, "gone", 2);
    let out = m.read(Request {
        skip_site: Some(SITES[2]),
        ..request(Cursor::ZERO, 10, usize::MAX)
    });
    assert_eq!(ids(&out), ["ours"]);
    assert_eq!(out.batch.sites, [SITES[0]]);
    assert!(out.complete);
    assert_eq!(out.cursor, Cursor::at(4));
    // A batch of skipped changes only still moves the cursor.
    let out = m.read(Request {
        skip_site: Some(SITES[2]),
        ..request(Cursor::ZERO, 2, usize::MAX)
    });
    assert!(out.batch.is_empty());
    assert_eq!(
        out.cursor,
        Cursor {
            base: 0,
            progress: 2
        }
    );
}

#[derive(Debug, Clone)]
enum ModelStep {
    Write {
        t: usize,
        id: u8,
        columns: Vec<usize>,
        site: u32,
        via: u32,
    },
    Delete {
        t: usize,
        id: u8,
        site: u32,
    },
    Page {
        max_rows: usize,
        max_bytes: usize,
    },
}

fn step() -> impl Strategy<Value = ModelStep> {
    prop_oneof![
        6 => (0..2usize, 0..6u8, proptest::collection::vec(0..COLUMNS, 1..3), 0..3u32, 0..3u32)
            .prop_map(|(t, id, columns, site, via)| ModelStep::Write { t, id, columns, site, via }),
        1 => (0..2usize, 0..6u8, 0..3u32).prop_map(|(t, id, site)| ModelStep::Delete { t, id, site }),
        3 => (1..4usize, prop_oneof![Just(1usize), Just(40), Just(usize::MAX)])
            .prop_map(|(max_rows, max_bytes)| ModelStep::Page { max_rows, max_bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Writes interleaved with pages, as when a replica keeps changing
    /// during catch-up: after every batch the receiver's cursor keeps the
    /// `Cursor` invariant, and paging to the end delivers every current
    /// version the peer lacks.
    #[test]
    fn every_cursor_keeps_its_invariant_and_paging_delivers_everything(
        steps in proptest::collection::vec(step(), 1..40),
        skip in prop_oneof![Just(None), Just(Some(SITES[2]))],
    ) {
        let mut m = Model::default();
        let mut r = Receiver::default();
        let page = |m: &Model, r: &mut Receiver, max_rows, max_bytes| {
            let out = m.read(Request { from: r.cursor, max_rows, max_bytes, skip_site: skip });
            r.take(&out, skip);
            out.complete
        };
        for s in steps {
            match s {
                ModelStep::Write { t, id, columns, site, via } => m.write(t, &id.to_string(), &columns, site, via),
                ModelStep::Delete { t, id, site } => m.delete(t, &id.to_string(), site),
                ModelStep::Page { max_rows, max_bytes } => {
                    page(&m, &mut r, max_rows, max_bytes);
                    r.check(&m, skip)?;
                }
            }
        }
        let mut pages = 0;
        while !page(&m, &mut r, 2, 40) {
            r.check(&m, skip)?;
            pages += 1;
            prop_assert!(pages <= m.head + 1, "paging does not end");
        }
        prop_assert_eq!(r.cursor, Cursor::at(m.head));
        r.check(&m, skip)?;
    }
}
