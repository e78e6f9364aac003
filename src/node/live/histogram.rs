//! A duration histogram cheap enough to record on every commit: fixed
//! buckets, one relaxed atomic add per bucket hit, no lock.
//!
//! Owns: recording durations and reading a consistent-enough copy for the
//! exposition (Prometheus tolerates a scrape racing a record: counts only
//! grow).
//! Must not: allocate or lock on the recording path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets of every duration histogram: from
/// half a millisecond (a small commit on a fast disk) to ten seconds (a
/// large catch-up group on a slow one).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of durations per bucket (not cumulative; the exposition sums),
/// their total in nanoseconds, and how many.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One more than `BUCKETS`: the last counts what is above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// A copy of a histogram, cumulative as the exposition writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or under it), ascending.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        for (i, bound) in BUCKETS.iter().enumerate() {
            running += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let above = self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // The +Inf bucket must equal the count: take both from the buckets.
            count: running + above,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_count_matches_inf() {
        let h = Histogram::default();
        for ms in [0.2, 0.7, 3.0, 3.0, 40.0, 20_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[1], (0.001, 2));
        assert_eq!(s.buckets[3], (0.005, 4));
        assert_eq!(s.buckets[6], (0.05, 5));
        assert_eq!(s.buckets.last().unwrap().1, 5, "20 s is above every bound");
        assert!((s.sum_seconds - 20.0469).abs() < 1e-6, "{}", s.sum_seconds);
    }
}
