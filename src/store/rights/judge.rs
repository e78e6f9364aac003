//! Owns: whether a peer's change may be applied here, decided without
//! SQLite: the office each cell or tombstone comes from (the site in its
//! stamp, as bound to an office by a pinned peer's Hello), whether it
//! inserts, updates or deletes, and the schema's rights.
//!
//! The rules (docs/design.md, "Rights"):
//! - a stamp with this replica's own site id is forged (an honest peer
//!   never sends an office its own changes): held; one with a site id
//!   this replica retired at a restore keeps no office's rights (its
//!   `Origin` is `Unbound`: the strictest reading below);
//! - a site bound to a listed office: that office's rights; a site bound
//!   to a node the schema does not list, or bound to nobody (a change
//!   relayed from an office this one never met): the strictest reading,
//!   what every listed office may do;
//! - a tombstone deletes; in a row this replica has neither as a row nor
//!   as a tombstone, the cells of the change's oldest stamp insert it (an
//!   insert writes its columns with one stamp) and newer cells update it;
//!   in a row it has, every cell updates (column-level rights apply).
//!
//! Must not: touch SQLite, decide which version wins (cells/lww.rs) or record
//! what is held (held.rs).

use crate::config::rights::{Actor, Rights, WriteAction};
use crate::stamp::{SiteId, Stamp};
use crate::store::cells::clocks::CellClock;

/// How changes stamped with one site are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This replica's own site id.
    Own,
    /// Bound to a listed office (its index in `Rights::offices`).
    Office(u8),
    /// Bound to a node the schema does not list.
    Stranger,
    /// No pinned peer has said whose it is.
    Unbound,
}

impl Origin {
    /// The actor a change is judged as; None for a forged change.
    pub fn actor(self) -> Option<Actor> {
        match self {
            Origin::Own => None,
            Origin::Office(i) => Some(Actor::Office(i)),
            Origin::Stranger | Origin::Unbound => Some(Actor::Unknown),
        }
    }
}

/// Why one cell or tombstone may not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// What it would do here.
    pub action: WriteAction,
    /// It carries this replica's own site id.
    pub forged: bool,
    /// Its stamp lies beyond the drift bound (store/merge/apply.rs decides
    /// that, not the rights): held until this office's clock catches up.
    pub ahead: bool,
}

impl Refused {
    /// A change held because its stamp lies too far ahead.
    pub const fn ahead(action: WriteAction) -> Refused {
        Refused {
            action,
            forged: false,
            ahead: true,
        }
    }
}

/// Judges one tombstone of table `t` from a site judged as `origin`.
pub(in crate::store) fn tombstone(rights: &Rights, t: usize, origin: Origin) -> Option<Refused> {
    let refused = Refused {
        action: WriteAction::Delete,
        forged: origin == Origin::Own,
        ahead: false,
    };
    match origin.actor() {
        None => Some(refused),
        Some(actor) => (!rights.allows(t, WriteAction::Delete, None, actor)).then_some(refused),
    }
}

/// Judges each written cell of a row change (`clocks` by storage slot,
/// `canonical` the schema's column index of each slot, as rights are
/// indexed; site indices resolve through `sites` and `origins`): `None`
/// where the cell may be written. `new_row`: this replica has neither the
/// row nor its tombstone.
pub(in crate::store) fn row(
    rights: &Rights,
    t: usize,
    clocks: &[CellClock],
    canonical: &[Option<u16>],
    sites: &[SiteId],
    origins: &[Origin],
    new_row: bool,
) -> Vec<Option<Refused>> {
    let stamp = |clock: &CellClock| Stamp {
        hlc: clock.hlc,
        site: sites[clock.site as usize],
    };
    let creation = if new_row {
        clocks.iter().filter(|c| c.is_written()).map(stamp).min()
    } else {
        None
    };
    let restricts = rights.restricts(t);
    clocks
        .iter()
        .enumerate()
        .map(|(c, clock)| {
            if !clock.is_written() {
                return None;
            }
            let origin = origins
                .get(clock.site as usize)
                .copied()
                .unwrap_or(Origin::Unbound);
            if origin != Origin::Own && !restricts {
                return None;
            }
            let action = if creation == Some(stamp(clock)) {
                WriteAction::Insert
            } else {
                WriteAction::Update
            };
            let refused = Refused {
                action,
                forged: origin == Origin::Own,
                ahead: false,
            };
            match origin.actor() {
                None => Some(refused),
                Some(actor) => {
                    // A slot the schema no longer lists (a drop not yet
                    // applied) is judged by the table's `update` right.
                    let column = match action {
                        WriteAction::Update => canonical.get(c).copied().flatten().map(usize::from),
                        _ => None,
                    };
                    (!rights.allows(t, action, column, actor)).then_some(refused)
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::clock::Hlc;
    use crate::config::Schema;

    const TJ: SiteId = SiteId([1; 16]);
    const SD: SiteId = SiteId([2; 16]);
    const OWN: SiteId = SiteId([3; 16]);
    const STRANGE: SiteId = SiteId([4; 16]);

    fn schema() -> Schema {
        Schema::parse(
            Path::new("schema.toml"),
            "offices = [\"tijuana\", \"san-diego\"]\n\
             [tables.residents.columns]\nnotes = \"shared\"\nstatus = \"shared\"\n\
             [tables.residents.rights]\ninsert = [\"tijuana\", \"san-diego\"]\nupdate = [\"tijuana\"]\ndelete = [\"tijuana\"]\n\
             [tables.residents.rights.columns]\nstatus = [\"tijuana\", \"san-diego\"]\n",
        )
        .unwrap()
    }

    /// Sites by local index and how each is judged.
    fn world(schema: &Schema) -> (Vec<SiteId>, Vec<Origin>) {
        let r = &schema.rights;
        let office = |n| Origin::Office(r.office_index(n).unwrap());
        (
            vec![TJ, SD, OWN, STRANGE],
            vec![
                office("tijuana"),
                office("san-diego"),
                Origin::Own,
                Origin::Unbound,
            ],
        )
    }

    fn clock(hlc: u64, site: u32) -> CellClock {
        CellClock {
            hlc: Hlc(hlc),
            site,
            via: 1,
            seq: 0,
        }
    }

    const NONE: CellClock = CellClock {
        hlc: Hlc(0),
        site: 0,
        via: 0,
        seq: 0,
    };

    /// Slots in the schema's column order (notes, status).
    const IDENTITY: [Option<u16>; 2] = [Some(0), Some(1)];

    const fn refused(action: WriteAction) -> Option<Refused> {
        Some(Refused {
            action,
            forged: false,
            ahead: false,
        })
    }

    #[test]
    fn san_diego_may_insert_a_resident_and_set_its_status_but_not_change_its_notes() {
        let s = schema();
        let (sites, origins) = world(&s);
        let judge =
            |clocks: &[CellClock], new| row(&s.rights, 0, clocks, &IDENTITY, &sites, &origins, new);
        // notes, status by column index.
        assert_eq!(judge(&[clock(5, 1), clock(5, 1)], true), [None, None]);
        assert_eq!(
            judge(&[clock(5, 1), clock(5, 1)], false),
            [refused(WriteAction::Update), None]
        );
        // A new row with San Diego's update newer than Tijuana's insert: the
        // update is judged as one, whichever column.
        assert_eq!(
            judge(&[clock(9, 1), clock(5, 0)], true),
            [refused(WriteAction::Update), None]
        );
        assert_eq!(judge(&[clock(5, 0), clock(9, 1)], true), [None, None]);
        assert_eq!(judge(&[NONE, clock(9, 1)], false), [None, None]);
    }

    #[test]
    fn own_sites_are_forged_and_unknown_sites_get_what_every_office_may() {
        let s = schema();
        let (sites, origins) = world(&s);
        let judge =
            |clocks: &[CellClock], new| row(&s.rights, 0, clocks, &IDENTITY, &sites, &origins, new);
        let forged = Some(Refused {
            action: WriteAction::Insert,
            forged: true,
            ahead: false,
        });
        assert_eq!(judge(&[clock(5, 2), NONE], true), [forged, None]);
        // Unknown: may insert (both may) and set the status (both may), not
        // update the notes (only Tijuana).
        assert_eq!(judge(&[clock(5, 3), clock(5, 3)], true), [None, None]);
        assert_eq!(
            judge(&[clock(5, 3), clock(5, 3)], false),
            [refused(WriteAction::Update), None]
        );
        let r = &s.rights;
        assert_eq!(tombstone(r, 0, origins[0]), None);
        assert_eq!(tombstone(r, 0, origins[1]), refused(WriteAction::Delete));
        assert_eq!(
            tombstone(r, 0, Origin::Unbound),
            refused(WriteAction::Delete)
        );
        assert_eq!(
            tombstone(r, 0, Origin::Stranger),
            refused(WriteAction::Delete)
        );
        assert!(tombstone(r, 0, Origin::Own).is_some_and(|r| r.forged));
    }

    #[test]
    fn without_rights_only_forged_cells_are_refused() {
        let s = schema();
        let (sites, origins) = world(&s);
        let open = s.without_rights();
        let j = row(
            &open.rights,
            0,
            &[clock(5, 1), clock(5, 2)],
            &IDENTITY,
            &sites,
            &origins,
            false,
        );
        assert_eq!(j[0], None);
        assert!(j[1].is_some_and(|r| r.forged));
        assert_eq!(tombstone(&open.rights, 0, Origin::Unbound), None);
    }

    #[test]
    fn column_rights_follow_the_slot_to_its_schema_column() {
        // A replica whose slots differ from the schema's order (a column
        // added in the middle): slot 0 holds `status`, slot 1 `notes`.
        let s = schema();
        let (sites, origins) = world(&s);
        let swapped = [Some(1), Some(0)];
        let j = row(
            &s.rights,
            0,
            &[clock(5, 1), clock(5, 1)],
            &swapped,
            &sites,
            &origins,
            false,
        );
        assert_eq!(j, [None, refused(WriteAction::Update)]);
    }
}
