//! Owns: runs of this replica's change sequence that only hold what one
//! peer sent: what lets the pump back to that peer skip them without
//! reading.
//!
//! A group of batches from peer P is applied in one transaction, and every
//! cell and tombstone that transaction writes gets a sequence in
//! `(head before, head after]` and records P as the peer that delivered it.
//! Later writes only take higher sequences. So, for as long as the replica
//! lives, every change numbered in that run is P's, and a peer whose cursor
//! is complete at a point of the run (`base == progress`, everything up to
//! it sent) is owed nothing in the rest of it: the pump may move that
//! cursor to the run's end. Without this, after a catch-up of a million
//! rows the pump back to the source read all million rows again to find
//! that none was owed. Kept in memory only: after a restart the pump reads
//! as before.
//!
//! Must not: move a cursor that is not complete (`base < progress`: a row
//! of the run may hold a cell numbered before it that was not sent yet),
//! or claim a run for a transaction that did not commit.

use std::collections::HashMap;

use crate::mutants::{self, Mutant};
use crate::stamp::SiteId;
use crate::store::batch::Cursor;

/// Per delivering peer, its latest run `(start, end]` (consecutive runs
/// of the same peer are joined).
#[derive(Debug, Default, Clone)]
pub(in crate::store) struct EchoRuns {
    runs: HashMap<SiteId, (u64, u64)>,
}

impl EchoRuns {
    /// Records that a committed apply from `peer` moved the head from
    /// `before` to `after`.
    pub(in crate::store) fn record(&mut self, peer: SiteId, before: u64, after: u64) {
        if after <= before {
            return;
        }
        let run = self.runs.entry(peer).or_insert((before, after));
        if run.1 == before {
            run.1 = after;
        } else {
            *run = (before, after);
        }
    }

    /// Where a pump to `peer` from `from` may start reading: past the end
    /// of `peer`'s run when `from` is complete at a point inside it.
    pub(in crate::store) fn skip(&self, peer: Option<SiteId>, from: Cursor) -> Cursor {
        let Some((start, end)) = peer.and_then(|p| self.runs.get(&p).copied()) else {
            return from;
        };
        let complete =
            from.base == from.progress || mutants::active(Mutant::EchoSkipsIncompleteCursor);
        if complete && start <= from.progress && from.progress < end {
            Cursor::at(end)
        } else {
            from
        }
    }

    /// Forgets every run (the sequence was renumbered or replaced).
    pub(in crate::store) fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(n: u8) -> SiteId {
        SiteId([n; 16])
    }

    #[test]
    fn a_complete_cursor_inside_a_run_of_its_own_peer_moves_to_the_end() {
        let mut echo = EchoRuns::default();
        echo.record(site(1), 10, 20);
        echo.record(site(1), 20, 35); // joined: (10, 35]
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(10)), Cursor::at(35));
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(27)), Cursor::at(35));
        // At or past the end, before the start: unchanged.
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(35)), Cursor::at(35));
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(9)), Cursor::at(9));
        // Another peer, or no peer: the run is owed to them.
        assert_eq!(echo.skip(Some(site(2)), Cursor::at(10)), Cursor::at(10));
        assert_eq!(echo.skip(None, Cursor::at(10)), Cursor::at(10));
    }

    #[test]
    fn an_incomplete_cursor_is_never_moved() {
        let mut echo = EchoRuns::default();
        echo.record(site(1), 10, 20);
        let partial = Cursor {
            base: 8,
            progress: 12,
        };
        assert_eq!(echo.skip(Some(site(1)), partial), partial);
    }

    #[test]
    fn a_write_between_two_applies_starts_a_new_run() {
        let mut echo = EchoRuns::default();
        echo.record(site(1), 10, 20);
        // Sequence 21 is a local write: the next apply is (21, 30].
        echo.record(site(1), 21, 30);
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(15)), Cursor::at(15));
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(21)), Cursor::at(30));
        echo.record(site(1), 30, 30); // nothing written: no change
        echo.clear();
        assert_eq!(echo.skip(Some(site(1)), Cursor::at(21)), Cursor::at(21));
    }
}
