//! Named bugs that the seeded simulator (`tests/sim/mutants.rs`) switches
//! on one at a time, to show that it catches each of them.
//!
//! Each mutant is one `if mutants::active(Mutant::…)` beside the code it
//! breaks. With the cargo feature `mutants` (off by default, never in a
//! release build or the Debian package), `active` reads a thread-local
//! switch that only `switch_on`, called by code on the same thread, sets:
//! no environment variable, flag, config key or request can reach it, so a
//! daemon built with the feature behaves exactly as one built without.
//! Without the feature `active` is a `const fn` that answers false, and
//! the hooks compile away.
//!
//! Owns: the list of mutants (names and what each breaks) and the switch.
//! Must not: be set from anywhere but the thread that runs a simulated
//! seed, or import any other room.

/// A bug that can be switched on by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// A relay's pump leaves out only the changes the peer sent it, not
    /// those the peer wrote (`store/outgoing/batching.rs`).
    RelayEchoesToWriter,
    /// An update stamped after a row's tombstone brings the row back
    /// (`store/merge/row.rs`).
    TombstoneLosesToLaterUpdate,
    /// The cursor is stored in a statement of its own before the batch's
    /// transaction (`store/merge/apply.rs`).
    CursorBeforeCommit,
    /// An incomplete batch's cursor moves its base up to its progress,
    /// past rows written again during the catch-up
    /// (`store/outgoing/batching.rs`).
    ResumableBasePastRewrites,
    /// The pump moves a cursor that is not complete past a run of the
    /// peer's own changes (`store/outgoing/echo.rs` without its first
    /// condition).
    EchoSkipsIncompleteCursor,
    /// The outbox hands waiting batches out newest first
    /// (`sync/session/outbox.rs`).
    OutboxNewestFirst,
    /// A dialler whose attempt failed stays `Dialling` and never dials
    /// again (`sync/policy.rs`).
    DiallerStuckAfterFailure,
    /// An apply does not check the drift bound: a far-future stamp is
    /// applied and moves this office's clock (`store/merge/apply.rs`).
    DriftUnchecked,
    /// A change carrying a site id this replica retired at a restore is
    /// judged by the office it was bound to (`store/rights/bindings.rs`).
    RetiredSiteKeepsBinding,
    /// When the wall clock reads behind the last stamp (it stepped back,
    /// or a peer's stamp was ahead), a local write is stamped from the
    /// wall clock alone, below the last stamp (`clock.rs`).
    ClockIgnoresLastStamp,
}

impl Mutant {
    /// Every mutant, in the order of the table in docs/simulation.md.
    pub const ALL: [Mutant; 10] = [
        Mutant::RelayEchoesToWriter,
        Mutant::TombstoneLosesToLaterUpdate,
        Mutant::CursorBeforeCommit,
        Mutant::ResumableBasePastRewrites,
        Mutant::EchoSkipsIncompleteCursor,
        Mutant::OutboxNewestFirst,
        Mutant::DiallerStuckAfterFailure,
        Mutant::DriftUnchecked,
        Mutant::RetiredSiteKeepsBinding,
        Mutant::ClockIgnoresLastStamp,
    ];

    /// The name the simulator's table and `PUENTE_SIM_MUTANT` use.
    pub const fn name(self) -> &'static str {
        match self {
            Mutant::RelayEchoesToWriter => "relay_echoes_to_writer",
            Mutant::TombstoneLosesToLaterUpdate => "tombstone_loses_to_later_update",
            Mutant::CursorBeforeCommit => "cursor_before_commit",
            Mutant::ResumableBasePastRewrites => "resumable_base_past_rewrites",
            Mutant::EchoSkipsIncompleteCursor => "echo_skips_incomplete_cursor",
            Mutant::OutboxNewestFirst => "outbox_newest_first",
            Mutant::DiallerStuckAfterFailure => "dialler_stuck_after_failure",
            Mutant::DriftUnchecked => "drift_unchecked",
            Mutant::RetiredSiteKeepsBinding => "retired_site_keeps_binding",
            Mutant::ClockIgnoresLastStamp => "clock_ignores_last_stamp",
        }
    }

    /// The bug in words, for the table.
    pub const fn bug(self) -> &'static str {
        match self {
            Mutant::RelayEchoesToWriter => {
                "a relay sends a change back to the office that wrote it (`store/outgoing/batching.rs` leaves out only what the peer sent, not what it wrote)"
            }
            Mutant::TombstoneLosesToLaterUpdate => {
                "a tombstone loses to a later update (the row comes back; `store/merge/row.rs`)"
            }
            Mutant::CursorBeforeCommit => {
                "the cursor is stored before the batch commits (own statement; `store/merge/apply.rs`)"
            }
            Mutant::ResumableBasePastRewrites => {
                "the resumable cursor's base moves past rows written again mid-catch-up (`store/outgoing/batching.rs`)"
            }
            Mutant::EchoSkipsIncompleteCursor => {
                "the pump back to a peer skips a run of that peer's changes from a cursor that is not complete (`store/outgoing/echo.rs` without `base == progress`)"
            }
            Mutant::OutboxNewestFirst => {
                "the outbox hands waiting batches out newest first (`sync/session/outbox.rs`)"
            }
            Mutant::DiallerStuckAfterFailure => {
                "a dialler whose attempt failed never dials again (`sync/policy.rs`: `Dialling` after `Verdict::Failed`)"
            }
            Mutant::DriftUnchecked => {
                "an apply does not check the drift bound: a far-future stamp is applied and moves the clock (`store/merge/apply.rs`)"
            }
            Mutant::RetiredSiteKeepsBinding => {
                "a change carrying a retired site id is judged by its old binding (`store/rights/bindings.rs::origin_for`)"
            }
            Mutant::ClockIgnoresLastStamp => {
                "a local write is stamped from the wall clock alone when it reads behind the last stamp (stepped back, or a peer ahead), so below the version it replaces (`clock.rs`: `HlcState::tick`)"
            }
        }
    }

    /// The mutant of that name.
    pub fn named(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(feature = "mutants")]
mod switch {
    use std::cell::Cell;
    use std::marker::PhantomData;

    use super::Mutant;

    thread_local! {
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    /// Whether `mutant` is switched on for this thread.
    pub fn active(mutant: Mutant) -> bool {
        ACTIVE.with(|a| a.get() == Some(mutant))
    }

    /// Switches `mutant` on for the current thread until the guard is
    /// dropped (on the same thread: the guard is not `Send`).
    pub fn switch_on(mutant: Mutant) -> Switched {
        let previous = ACTIVE.with(|a| a.replace(Some(mutant)));
        Switched {
            previous,
            _this_thread: PhantomData,
        }
    }

    /// A mutant switched on; dropping it puts back what was on before.
    #[must_use = "the mutant is switched off again when this is dropped"]
    #[derive(Debug)]
    pub struct Switched {
        previous: Option<Mutant>,
        _this_thread: PhantomData<*const ()>,
    }

    impl Drop for Switched {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(self.previous));
        }
    }
}

#[cfg(feature = "mutants")]
pub use switch::{Switched, active, switch_on};

/// Whether `mutant` is switched on: never, in a build without the feature
/// `mutants`.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub const fn active(_mutant: Mutant) -> bool {
    false
}

#[cfg(all(test, feature = "mutants"))]
mod tests {
    use super::*;

    #[test]
    fn a_mutant_is_on_only_in_its_thread_and_while_its_guard_lives() {
        assert!(!active(Mutant::OutboxNewestFirst));
        {
            let _on = switch_on(Mutant::OutboxNewestFirst);
            assert!(active(Mutant::OutboxNewestFirst));
            assert!(!active(Mutant::DriftUnchecked));
            let other = std::thread::spawn(|| active(Mutant::OutboxNewestFirst));
            assert!(!other.join().unwrap());
        }
        assert!(!active(Mutant::OutboxNewestFirst));
    }

    #[test]
    fn every_name_finds_its_mutant() {
        for m in Mutant::ALL {
            assert_eq!(Mutant::named(m.name()), Some(m));
        }
        assert_eq!(Mutant::named("no_such_bug"), None);
    }
}
