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

/// Number of low bits that hold the logical counter.
pub const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock timestamp. Zero means "never written".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hlc(pub u64);

impl Hlc {
    pub const ZERO: Hlc = Hlc(0);

    pub fn from_parts(millis: u64, logical: u16) -> Hlc {
        Hlc((millis << LOGICAL_BITS) | u64::from(logical))
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
    /// replica has issued or seen, and not behind the wall clock.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let physical = Hlc::from_parts(now_ms, 0);
        self.last = if physical > self.last {
            physical
        } else {
            Hlc(self.last.0 + 1)
        };
        self.last
    }

    /// Takes note of a timestamp written elsewhere so that later local
    /// writes order after it. A remote timestamp far ahead is still
    /// accepted (data is never dropped); callers report it as skew.
    pub fn observe(&mut self, remote: Hlc) {
        if remote > self.last {
            self.last = remote;
        }
    }
}

/// How far a timestamp's physical part lies ahead of `now_ms` (negative if
/// behind), in milliseconds.
pub fn lead_ms(stamp: Hlc, now_ms: u64) -> i64 {
    stamp.millis() as i64 - now_ms as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_when_the_wall_clock_steps_back() {
        let mut state = HlcState::resume(Hlc::ZERO);
        let a = state.tick(10_000);
        let b = state.tick(10_000);
        let c = state.tick(9_000); // wall clock stepped back
        let d = state.tick(9_500);
        assert!(a < b && b < c && c < d);
        assert_eq!(a, Hlc::from_parts(10_000, 0));
        assert_eq!(c.millis(), 10_000);
        let e = state.tick(20_000);
        assert_eq!(e, Hlc::from_parts(20_000, 0));
    }

    #[test]
    fn resuming_from_a_persisted_value_never_goes_back() {
        let mut first = HlcState::resume(Hlc::ZERO);
        let issued = first.tick(50_000);
        // The process restarts and the wall clock is now behind.
        let mut second = HlcState::resume(issued);
        assert!(second.tick(1_000) > issued);
    }

    #[test]
    fn observing_a_remote_stamp_orders_later_writes_after_it() {
        let mut state = HlcState::resume(Hlc::ZERO);
        state.tick(1_000);
        let remote = Hlc::from_parts(86_401_000, 3); // a day ahead
        state.observe(remote);
        assert!(state.tick(1_001) > remote);
        // Observing something older changes nothing.
        let before = state.last();
        state.observe(Hlc::from_parts(5, 0));
        assert_eq!(state.last(), before);
    }

    #[test]
    fn logical_counter_overflow_carries_into_millis_and_stays_monotonic() {
        let mut state = HlcState::resume(Hlc::from_parts(7, u16::MAX));
        let next = state.tick(7);
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
    fn lead_is_signed() {
        assert_eq!(lead_ms(Hlc::from_parts(1_500, 9), 1_000), 500);
        assert_eq!(lead_ms(Hlc::from_parts(500, 0), 1_000), -500);
    }
}
