//! Hybrid logical clock and the injectable wall clock.
//!
//! Owns: the HLC value layout (unix milliseconds << 16 | logical counter),
//! ticking for local writes, observing remote timestamps, skew arithmetic,
//! and the `WallClock` trait through which all time enters the core.
//! Must not: read the system time anywhere but `SystemClock`, or persist
//! anything (the store persists the HLC in the transaction that uses it).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::mutants::{self, Mutant};

/// Number of low bits that hold the logical counter.
pub const LOGICAL_BITS: u32 = 16;

/// The largest unix millisecond an `Hlc` can hold (2^48 - 1: the year
/// 10889).
pub const MAX_MILLIS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// The default bound on how far a peer's stamp may lie ahead of this
/// office's clock before its change is held instead of applied (five
/// minutes: docs/sync.md says why).
pub const DEFAULT_MAX_DRIFT_MS: u64 = 5 * 60 * 1000;

/// A local write could not be stamped: the clock has no later timestamp
/// to give (it reached the largest one, or the wall clock is beyond it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this office's clock cannot stamp a new write: its last timestamp is {last} and the wall clock reads {now_ms} ms, and no later timestamp exists; nothing was written. The replica adopted a stamp from the far future (an earlier puente took it from a peer), or the system clock is wrong: check the system clock, and restore a backup taken before the bad stamp arrived"
)]
pub struct ClockExhausted {
    pub last: Hlc,
    pub now_ms: u64,
}

/// A hybrid logical clock timestamp. Zero means "never written".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hlc(pub u64);

impl Hlc {
    pub const ZERO: Hlc = Hlc(0);

    /// The largest timestamp.
    pub const MAX: Hlc = Hlc(u64::MAX);

    /// Millis beyond `MAX_MILLIS` are cut to it (no bit is lost into the
    /// counter): callers that must not saturate check first.
    pub fn from_parts(millis: u64, logical: u16) -> Hlc {
        Hlc((millis.min(MAX_MILLIS) << LOGICAL_BITS) | u64::from(logical))
    }

    /// The physical part: unix milliseconds.
    pub fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({}.{})", self.millis(), self.logical())
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

impl std::str::FromStr for Hlc {
    type Err = String;

    /// Parses the `Display` form, `MILLIS.LOGICAL`.
    fn from_str(s: &str) -> Result<Hlc, String> {
        let bad = || format!("`{s}` is not a timestamp (MILLIS.LOGICAL)");
        let (millis, logical) = s.split_once('.').ok_or_else(bad)?;
        let millis: u64 = millis.parse().map_err(|_| bad())?;
        let logical: u16 = logical.parse().map_err(|_| bad())?;
        if millis >= 1 << (64 - LOGICAL_BITS) {
            return Err(bad());
        }
        Ok(Hlc::from_parts(millis, logical))
    }
}

/// Where the core gets "now" from. Tests inject their own.
pub trait WallClock: Send + Sync {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock shifted by an adjustable offset: lets tests and the
/// daemon's `clock_offset_ms` setting model an office whose clock is wrong.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn new(offset_ms: i64) -> Arc<Self> {
        Arc::new(OffsetClock {
            offset_ms: AtomicI64::new(offset_ms),
        })
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

impl WallClock for OffsetClock {
    fn now_ms(&self) -> u64 {
        let now = SystemClock.now_ms() as i64;
        now.saturating_add(self.offset_ms.load(Ordering::Relaxed))
            .max(0) as u64
    }
}

/// A clock that only moves when told to: for deterministic tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            now_ms: std::sync::atomic::AtomicU64::new(now_ms),
        })
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl WallClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

/// The clock state of one replica: the last timestamp issued or observed.
///
/// Invariant: `last` never decreases. The store loads it from the replica
/// on open and saves it in every transaction that issued or observed a
/// timestamp, so it never goes backwards across restarts either.
#[derive(Debug, Clone, Copy)]
pub struct HlcState {
    last: Hlc,
}

impl HlcState {
    pub fn resume(persisted: Hlc) -> Self {
        HlcState { last: persisted }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A new timestamp for a local write: later than every timestamp this
    /// replica has issued or seen, and not behind the wall clock. Checked:
    /// when no later timestamp exists (the last one is the largest, or the
    /// wall clock reads beyond `MAX_MILLIS`), nothing changes and the
    /// write must be refused.
    pub fn tick(&mut self, now_ms: u64) -> Result<Hlc, ClockExhausted> {
        let exhausted = ClockExhausted {
            last: self.last,
            now_ms,
        };
        if now_ms > MAX_MILLIS {
            return Err(exhausted);
        }
        let physical = Hlc::from_parts(now_ms, 0);
        let ignore_last = physical < self.last && mutants::active(Mutant::ClockIgnoresLastStamp);
        let next = if physical > self.last || ignore_last {
            physical
        } else {
            Hlc(self.last.0.checked_add(1).ok_or(exhausted)?)
        };
        self.last = next;
        Ok(next)
    }

    /// Takes note of a timestamp of a change applied here (a peer's, or a
    /// held one accepted) so that later local writes order after it.
    /// Callers observe only what they apply: a peer's stamp beyond the
    /// drift bound is held (`beyond_drift`), never observed.
    pub fn observe(&mut self, remote: Hlc) {
        if remote > self.last {
            self.last = remote;
        }
    }
}

/// How far a timestamp's physical part lies ahead of `now_ms` (negative if
/// behind), in milliseconds. Both are below 2^48, so it cannot overflow.
pub fn lead_ms(stamp: Hlc, now_ms: u64) -> i64 {
    stamp.millis() as i64 - now_ms.min(MAX_MILLIS) as i64
}

/// Whether `stamp` lies further ahead of `now_ms` than `max_drift_ms`
/// allows: such a change is held, and does not move this office's clock.
/// Saturating: a wall clock or bound near the maximum never wraps.
pub fn beyond_drift(stamp: Hlc, now_ms: u64, max_drift_ms: u64) -> bool {
    stamp.millis() > now_ms.saturating_add(max_drift_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_when_the_wall_clock_steps_back() {
        let mut state = HlcState::resume(Hlc::ZERO);
        let a = state.tick(10_000).unwrap();
        let b = state.tick(10_000).unwrap();
        let c = state.tick(9_000).unwrap(); // wall clock stepped back
        let d = state.tick(9_500).unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(a, Hlc::from_parts(10_000, 0));
        assert_eq!(c.millis(), 10_000);
        let e = state.tick(20_000).unwrap();
        assert_eq!(e, Hlc::from_parts(20_000, 0));
    }

    #[test]
    fn resuming_from_a_persisted_value_never_goes_back() {
        let mut first = HlcState::resume(Hlc::ZERO);
        let issued = first.tick(50_000).unwrap();
        // The process restarts and the wall clock is now behind.
        let mut second = HlcState::resume(issued);
        assert!(second.tick(1_000).unwrap() > issued);
    }

    #[test]
    fn observing_a_remote_stamp_orders_later_writes_after_it() {
        let mut state = HlcState::resume(Hlc::ZERO);
        state.tick(1_000).unwrap();
        let remote = Hlc::from_parts(86_401_000, 3); // a day ahead
        state.observe(remote);
        assert!(state.tick(1_001).unwrap() > remote);
        // Observing something older changes nothing.
        let before = state.last();
        state.observe(Hlc::from_parts(5, 0));
        assert_eq!(state.last(), before);
    }

    #[test]
    fn logical_counter_overflow_carries_into_millis_and_stays_monotonic() {
        let mut state = HlcState::resume(Hlc::from_parts(7, u16::MAX));
        let next = state.tick(7).unwrap();
        assert_eq!(next, Hlc::from_parts(8, 0));
    }

    #[test]
    fn display_round_trips() {
        let h = Hlc::from_parts(1_795_661_520_515, 3);
        assert_eq!(h.to_string().parse::<Hlc>(), Ok(h));
        assert!("12".parse::<Hlc>().is_err());
        assert!("1.99999".parse::<Hlc>().is_err());
    }

    #[test]
    fn a_clock_at_the_maximum_refuses_to_tick_and_stays_where_it_is() {
        let mut state = HlcState::resume(Hlc::MAX);
        let refused = state.tick(1_000).unwrap_err();
        assert_eq!(refused.last, Hlc::MAX);
        assert_eq!(state.last(), Hlc::MAX, "a refused tick moves nothing");
        assert!(refused.to_string().contains("nothing was written"));
        // One below the maximum still ticks once, then refuses.
        let mut state = HlcState::resume(Hlc(u64::MAX - 1));
        assert_eq!(state.tick(1_000), Ok(Hlc::MAX));
        assert!(state.tick(1_000).is_err());
        // A wall clock beyond what a timestamp holds is refused too, not
        // cut into the counter.
        let mut state = HlcState::resume(Hlc::ZERO);
        assert!(state.tick(MAX_MILLIS + 1).is_err());
        assert_eq!(state.tick(MAX_MILLIS).unwrap().millis(), MAX_MILLIS);
        assert_eq!(Hlc::from_parts(u64::MAX, 0).millis(), MAX_MILLIS);
    }

    #[test]
    fn the_drift_bound_saturates_and_counts_from_the_wall_clock() {
        let now = 1_000_000;
        assert!(!beyond_drift(
            Hlc::from_parts(now + 300_000, 9),
            now,
            300_000
        ));
        assert!(beyond_drift(
            Hlc::from_parts(now + 300_001, 0),
            now,
            300_000
        ));
        assert!(beyond_drift(Hlc::MAX, now, 300_000));
        assert!(!beyond_drift(Hlc::MAX, u64::MAX, u64::MAX));
        assert!(!beyond_drift(Hlc::from_parts(5, 0), now, 0));
        assert_eq!(lead_ms(Hlc::MAX, 0), MAX_MILLIS as i64);
        assert_eq!(lead_ms(Hlc::ZERO, u64::MAX), -(MAX_MILLIS as i64));
    }

    #[test]
    fn lead_is_signed() {
        assert_eq!(lead_ms(Hlc::from_parts(1_500, 9), 1_000), 500);
        assert_eq!(lead_ms(Hlc::from_parts(500, 0), 1_000), -500);
    }
}
