//! How far a catch-up with a peer has come, in one direction: the changes
//! done since it began, the changes left and an estimate of the time left.
//!
//! Owns: the decision when a catch-up begins (something is owed) and ends
//! (nothing is), and the estimate (the average rate since it began), from
//! observations with the time passed in.
//! Must not: read a clock or the replica; the node feeds it.

use serde::{Deserialize, Serialize};

/// No estimate before the catch-up has run this long (a rate measured over
/// a few milliseconds says nothing).
const MIN_ESTIMATE_MS: u64 = 1_000;

/// What status shows of one direction of a catch-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatchUp {
    /// Changes done since the catch-up began (change sequences of the
    /// sending replica).
    pub done: u64,
    /// Changes still owed.
    pub left: u64,
    /// Changes per second since it began (when it has run long enough).
    pub rate_per_s: Option<f64>,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
}

/// One direction of one peer: observations in, a `CatchUp` out.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// When the running catch-up began and the position then.
    began: Option<(u64, u64)>,
    /// The last observation: position and changes left.
    last: Option<(u64, u64)>,
}

impl Tracker {
    /// Notes that the receiving side has applied up to `position` (a
    /// sequence that only grows) and that `left` changes are still owed.
    pub fn observe(&mut self, now_ms: u64, position: u64, left: u64) {
        if left == 0 {
            self.began = None;
        } else if self.began.is_none() {
            self.began = Some((now_ms, position));
        }
        self.last = Some((position, left));
    }

    /// Forgets the running catch-up (a new session starts a new one).
    pub fn reset(&mut self) {
        *self = Tracker::default();
    }

    /// The running catch-up, if one is.
    pub fn view(&self, now_ms: u64) -> Option<CatchUp> {
        let (began_ms, start) = self.began?;
        let (position, left) = self.last?;
        let done = position.saturating_sub(start);
        let elapsed = now_ms.saturating_sub(began_ms);
        let rate =
            (elapsed >= MIN_ESTIMATE_MS && done > 0).then(|| done as f64 * 1000.0 / elapsed as f64);
        Some(CatchUp {
            done,
            left,
            rate_per_s: rate,
            eta_s: rate.map(|r| left as f64 / r),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_up_begins_when_something_is_owed_and_ends_when_nothing_is() {
        let mut t = Tracker::default();
        t.observe(0, 100, 0);
        assert_eq!(t.view(0), None, "nothing owed");
        t.observe(1_000, 100, 10_000);
        let v = t.view(1_000).unwrap();
        assert_eq!((v.done, v.left, v.eta_s), (0, 10_000, None));
        t.observe(1_500, 600, 9_500);
        assert_eq!(t.view(1_500).unwrap().eta_s, None, "too early to say");
        t.observe(3_000, 2_100, 8_000);
        let v = t.view(3_000).unwrap();
        assert_eq!((v.done, v.left), (2_000, 8_000));
        assert_eq!(v.rate_per_s, Some(1_000.0));
        assert_eq!(v.eta_s, Some(8.0));
        // New writes while catching up: more left, the same rate.
        t.observe(4_000, 3_100, 9_000);
        assert_eq!(t.view(4_000).unwrap().eta_s, Some(9.0));
        t.observe(5_000, 12_100, 0);
        assert_eq!(t.view(5_000), None, "caught up");
        t.observe(6_000, 12_100, 5);
        assert_eq!(t.view(6_000).unwrap().done, 0, "a new catch-up");
        t.reset();
        assert_eq!(t.view(6_000), None);
    }
}
