//! Last-writer-wins: which version of a cell or tombstone every replica
//! keeps, decided without SQLite.
//!
//! Owns: the order of two cell versions (greater (hlc, site id) stamp wins;
//! an exact tie, which only a damaged history can make, goes to the greater
//! value encoding so every replica still picks the same one), the order of
//! two tombstones, and resolving a row's incoming versions among themselves
//! and against the row as stored. `merge/row.rs` reads and writes SQL around
//! these decisions.
//! Must not: touch SQLite, the digest or the change sequence.

use std::cmp::Ordering;

use crate::clock::Hlc;
use crate::stamp::{SiteId, Stamp};
use crate::store::cells::clocks::{CellClock, RowClocks};
use crate::value::Value;

/// A cell version about to be merged; `site` and `via` are local site
/// indices.
#[derive(Debug, Clone)]
pub(in crate::store) struct IncomingCell {
    pub column: usize,
    pub hlc: Hlc,
    pub site: u32,
    /// The local index of the site this version arrived from.
    pub via: u32,
    pub value: Value,
}

/// The order of two cell versions: by stamp, then by value encoding.
/// A total order: equal only for the same stamp and the same value.
pub fn compare(a: Stamp, a_value: &Value, b: Stamp, b_value: &Value) -> Ordering {
    a.cmp(&b).then_with(|| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a_value.encode_into(&mut x);
        b_value.encode_into(&mut y);
        x.cmp(&y)
    })
}

/// Whether version `new` replaces `current` (`None`: never written).
pub fn replaces(new: (Stamp, &Value), current: Option<(Stamp, &Value)>) -> bool {
    current.is_none_or(|(stamp, value)| compare(new.0, new.1, stamp, value) == Ordering::Greater)
}

/// Whether a tombstone stamped `new` replaces the one standing (an equal
/// stamp is the same tombstone again).
pub fn tombstone_replaces(new: Stamp, standing: Option<Stamp>) -> bool {
    standing.is_none_or(|s| new > s)
}

/// Whether an update of a row may be written: a tombstone beats every
/// update of its id, earlier, concurrent or later.
pub fn update_allowed(tombstone: Option<Stamp>) -> bool {
    tombstone.is_none()
}

/// The clocks and values of one row, indexed by canonical column.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::store) struct RowCells {
    pub clocks: RowClocks,
    pub values: Vec<Value>,
}

/// What merging did to one column of a stored row.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::store) enum CellOutcome {
    /// The stored version stands (or nothing came for the column).
    Kept,
    /// The column had never been written; it now is.
    Filled,
    /// A stored version lost; here it is, for the digest.
    Replaced { clock: CellClock, value: Value },
}

impl CellOutcome {
    pub fn changed(&self) -> bool {
        !matches!(self, CellOutcome::Kept)
    }
}

fn stamp_of(clock: &CellClock, sites: &[SiteId]) -> Stamp {
    Stamp {
        hlc: clock.hlc,
        site: sites[clock.site as usize],
    }
}

fn current_of<'a>(
    clock: &CellClock,
    value: &'a Value,
    sites: &[SiteId],
) -> Option<(Stamp, &'a Value)> {
    clock.is_written().then(|| (stamp_of(clock, sites), value))
}

/// Resolves a row's incoming versions among themselves, as for a row not
/// yet stored. `sites` maps local site indices to ids. `None` if the
/// change carries no version at all. Sequences are left at 0.
pub(in crate::store) fn resolve_incoming(
    columns: usize,
    incoming: Vec<IncomingCell>,
    sites: &[SiteId],
) -> Option<RowCells> {
    let mut row = RowCells {
        clocks: RowClocks::new(columns),
        values: vec![Value::Null; columns],
    };
    for cell in incoming {
        let c = cell.column;
        let new = Stamp {
            hlc: cell.hlc,
            site: sites[cell.site as usize],
        };
        let current = current_of(&row.clocks.0[c], &row.values[c], sites);
        if replaces((new, &cell.value), current) {
            row.clocks.0[c] = CellClock {
                hlc: cell.hlc,
                site: cell.site,
                via: cell.via,
                seq: 0,
            };
            row.values[c] = cell.value;
        }
    }
    row.clocks
        .0
        .iter()
        .any(CellClock::is_written)
        .then_some(row)
}

/// Merges resolved incoming versions into a stored row, column by column.
/// Returns, per column, what happened; `stored` becomes the merged row
/// (changed columns carry sequence 0 until the caller numbers them).
pub(in crate::store) fn resolve_against(
    stored: &mut RowCells,
    incoming: RowCells,
    sites: &[SiteId],
) -> Vec<CellOutcome> {
    let RowCells { clocks, values } = incoming;
    clocks
        .0
        .into_iter()
        .zip(values)
        .enumerate()
        .map(|(c, (clock, value))| {
            if !clock.is_written() {
                return CellOutcome::Kept;
            }
            let current = current_of(&stored.clocks.0[c], &stored.values[c], sites);
            if !replaces((stamp_of(&clock, sites), &value), current) {
                return CellOutcome::Kept;
            }
            let was_written = current.is_some();
            let old_clock =
                std::mem::replace(&mut stored.clocks.0[c], CellClock { seq: 0, ..clock });
            let old_value = std::mem::replace(&mut stored.values[c], value);
            if was_written {
                CellOutcome::Replaced {
                    clock: old_clock,
                    value: old_value,
                }
            } else {
                CellOutcome::Filled
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: SiteId = SiteId([1; 16]);
    const B: SiteId = SiteId([2; 16]);

    fn s(hlc: u64, site: SiteId) -> Stamp {
        Stamp {
            hlc: Hlc(hlc),
            site,
        }
    }

    fn text(t: &str) -> Value {
        Value::Text(t.into())
    }

    #[test]
    fn the_later_clock_wins_then_the_greater_site_then_the_greater_value() {
        assert!(replaces((s(6, A), &text("a")), Some((s(5, B), &text("z")))));
        assert!(!replaces(
            (s(5, B), &text("z")),
            Some((s(6, A), &text("a")))
        ));
        assert!(replaces((s(5, B), &text("a")), Some((s(5, A), &text("z")))));
        assert!(replaces((s(5, A), &text("b")), Some((s(5, A), &text("a")))));
        // The same version again changes nothing.
        assert!(!replaces(
            (s(5, A), &text("a")),
            Some((s(5, A), &text("a")))
        ));
        // Anything fills a never-written cell, Null included.
        assert!(replaces((s(1, A), &Value::Null), None));
    }

    #[test]
    fn a_tombstone_replaces_only_a_smaller_one_and_bars_every_update() {
        assert!(tombstone_replaces(s(1, A), None));
        assert!(tombstone_replaces(s(2, A), Some(s(1, B))));
        assert!(!tombstone_replaces(s(1, B), Some(s(2, A))));
        assert!(!tombstone_replaces(s(2, A), Some(s(2, A))));
        assert!(update_allowed(None));
        assert!(!update_allowed(Some(s(1, A))));
    }

    fn incoming(column: usize, hlc: u64, site: u32, value: Value) -> IncomingCell {
        IncomingCell {
            column,
            hlc: Hlc(hlc),
            site,
            via: site,
            value,
        }
    }

    #[test]
    fn incoming_versions_of_one_column_keep_the_greatest() {
        let sites = [A, B];
        let row = resolve_incoming(
            3,
            vec![
                incoming(0, 5, 1, text("b5")),
                incoming(0, 5, 0, text("a5")),
                incoming(2, 1, 0, text("x")),
            ],
            &sites,
        )
        .unwrap();
        assert_eq!(row.values, vec![text("b5"), Value::Null, text("x")]);
        assert_eq!(row.clocks.0[0].site, 1);
        assert!(!row.clocks.0[1].is_written());
        assert!(row.clocks.0.iter().all(|c| c.seq == 0));
        assert_eq!(resolve_incoming(3, vec![], &sites), None);
    }

    #[test]
    fn merging_into_a_stored_row_reports_each_column() {
        let sites = [A, B];
        let mut stored = resolve_incoming(
            3,
            vec![
                incoming(0, 5, 0, text("old")),
                incoming(1, 9, 0, text("kept")),
            ],
            &sites,
        )
        .unwrap();
        stored.clocks.0[0].seq = 7;
        let old0 = stored.clocks.0[0];
        let new = resolve_incoming(
            3,
            vec![
                incoming(0, 6, 1, text("new")),
                incoming(1, 8, 1, text("late")),
                incoming(2, 1, 1, text("first")),
            ],
            &sites,
        )
        .unwrap();
        let outcome = resolve_against(&mut stored, new, &sites);
        assert_eq!(
            outcome,
            vec![
                CellOutcome::Replaced {
                    clock: old0,
                    value: text("old")
                },
                CellOutcome::Kept,
                CellOutcome::Filled,
            ]
        );
        assert_eq!(
            stored.values,
            vec![text("new"), text("kept"), text("first")]
        );
        assert_eq!(
            (stored.clocks.0[0].hlc, stored.clocks.0[0].seq),
            (Hlc(6), 0)
        );
        assert_eq!(stored.clocks.0[1].hlc, Hlc(9));
    }

    // ---- properties ----------------------------------------------------

    fn stamp() -> impl Strategy<Value = Stamp> {
        (1..5u64, 0..3u8).prop_map(|(h, site)| s(h, SiteId([site; 16])))
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            (0..3i64).prop_map(Value::Integer),
            "[ab]{0,2}".prop_map(Value::Text),
            proptest::collection::vec(0..2u8, 0..2).prop_map(Value::Blob),
        ]
    }

    #[derive(Debug, Clone)]
    enum ModelEvent {
        Update {
            column: usize,
            stamp: Stamp,
            value: Value,
        },
        Delete(Stamp),
    }

    fn event() -> impl Strategy<Value = ModelEvent> {
        prop_oneof![
            4 => (0..3usize, stamp(), value())
                .prop_map(|(column, stamp, value)| ModelEvent::Update { column, stamp, value }),
            1 => stamp().prop_map(ModelEvent::Delete),
        ]
    }

    /// One row on one replica, folded through the same decisions
    /// `merge_row` and `merge_tombstone` take.
    #[derive(Debug, Default, PartialEq)]
    struct ModelRow {
        cells: Option<RowCells>,
        tombstone: Option<Stamp>,
    }

    fn apply(row: &mut ModelRow, event: &ModelEvent, sites: &[SiteId]) {
        match event {
            ModelEvent::Update {
                column,
                stamp,
                value,
            } => {
                if !update_allowed(row.tombstone) {
                    return;
                }
                let site = sites.iter().position(|s| *s == stamp.site).unwrap() as u32;
                let cell = incoming(*column, stamp.hlc.0, site, value.clone());
                let Some(new) = resolve_incoming(3, vec![cell], sites) else {
                    return;
                };
                match &mut row.cells {
                    None => row.cells = Some(new),
                    Some(stored) => {
                        resolve_against(stored, new, sites);
                    }
                }
            }
            ModelEvent::Delete(stamp) => {
                if tombstone_replaces(*stamp, row.tombstone) {
                    row.tombstone = Some(*stamp);
                    row.cells = None;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn versions_are_totally_ordered(
            a in (stamp(), value()), b in (stamp(), value()), c in (stamp(), value())
        ) {
            let ab = compare(a.0, &a.1, b.0, &b.1);
            // Antisymmetric.
            prop_assert_eq!(ab, compare(b.0, &b.1, a.0, &a.1).reverse());
            // Equal only for the same version.
            prop_assert_eq!(ab == Ordering::Equal, a.0 == b.0 && a.1 == b.1);
            // Transitive.
            let bc = compare(b.0, &b.1, c.0, &c.1);
            if ab != Ordering::Less && bc != Ordering::Less {
                prop_assert_ne!(compare(a.0, &a.1, c.0, &c.1), Ordering::Less);
            }
            // Exactly one of two different versions replaces the other.
            if ab != Ordering::Equal {
                prop_assert!(replaces((a.0, &a.1), Some((b.0, &b.1))) ^ replaces((b.0, &b.1), Some((a.0, &a.1))));
            }
        }

        #[test]
        fn any_order_of_updates_and_deletes_ends_alike_and_a_tombstone_dominates(
            events in proptest::collection::vec(event(), 1..12),
            order in any::<u64>(),
        ) {
            let sites: Vec<SiteId> = (0..3u8).map(|b| SiteId([b; 16])).collect();
            let mut forward = ModelRow::default();
            for e in &events {
                apply(&mut forward, e, &sites);
            }
            // The same events shuffled, some delivered twice.
            let mut shuffled: Vec<&ModelEvent> = events.iter().chain(events.iter().step_by(2)).collect();
            let mut seed = order;
            for i in (1..shuffled.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let mut other = ModelRow::default();
            for e in shuffled {
                apply(&mut other, e, &sites);
            }
            prop_assert_eq!(&forward, &other);
            let greatest_delete = events.iter().filter_map(|e| match e {
                ModelEvent::Delete(s) => Some(*s),
                ModelEvent::Update { .. } => None,
            }).max();
            match greatest_delete {
                Some(t) => {
                    prop_assert_eq!(forward.tombstone, Some(t));
                    prop_assert!(forward.cells.is_none());
                }
                None => {
                    // Every column holds its greatest version.
                    let cells = forward.cells.as_ref().unwrap();
                    for c in 0..3 {
                        let best = events.iter().filter_map(|e| match e {
                            ModelEvent::Update { column, stamp, value } if *column == c => Some((*stamp, value)),
                            _ => None,
                        }).max_by(|x, y| compare(x.0, x.1, y.0, y.1));
                        match best {
                            Some((stamp, value)) => {
                                prop_assert_eq!(stamp_of(&cells.clocks.0[c], &sites), stamp);
                                prop_assert_eq!(&cells.values[c], value);
                            }
                            None => prop_assert!(!cells.clocks.0[c].is_written()),
                        }
                    }
                }
            }
        }
    }
}
