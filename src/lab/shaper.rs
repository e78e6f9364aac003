//! The decisions of the lab relay, without sockets or clocks: for each
//! datagram, given its size and when it arrived, whether it is dropped and
//! when each copy leaves the relay. A shaped direction is a WAN: a
//! bottleneck of `rate` bytes/s with a router queue of `buffer` bytes in
//! front of it (tail drop beyond), then the path's delay, jitter and loss.
//!
//! Owns: the conditions of one direction, the seeded randomness and the
//! state of the bottleneck (when it is free again, the last delivery).
//! Must not: do IO or read clocks (time is passed in as the duration since
//! the relay started; relay.rs is the shell).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What happens to datagrams in one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Each datagram is delayed by an extra uniform amount in
    /// [-jitter, +jitter] (never below zero). Unshaped (no `rate`), this
    /// reorders datagrams; shaped, datagrams stay in order (the jitter of a
    /// real path comes from queues, which keep order).
    pub jitter: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Drop everything (a cut link).
    pub cut: bool,
    /// The bottleneck's rate in bytes per second (`None`: unlimited).
    pub rate: Option<u64>,
    /// Bytes the router queue in front of the bottleneck holds; a datagram
    /// that does not fit is dropped (only with `rate`).
    pub buffer: usize,
}

impl Conditions {
    pub const CLEAN: Conditions = Conditions {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss: 0.0,
        duplicate: 0.0,
        cut: false,
        rate: None,
        buffer: 0,
    };

    pub fn delayed(delay: Duration) -> Conditions {
        Conditions {
            delay,
            ..Conditions::CLEAN
        }
    }

    /// A border link: `mbit` Mbit/s each way, 30 ms one way, 1 % loss, 3 ms
    /// of jitter, and a router queue of 100 ms at that rate.
    pub fn wan(mbit: f64) -> Conditions {
        let rate = (mbit * 1_000_000.0 / 8.0) as u64;
        Conditions {
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(3),
            loss: 0.01,
            duplicate: 0.0,
            cut: false,
            rate: Some(rate),
            buffer: (rate / 10) as usize,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DatagramCounts {
    pub forwarded: u64,
    /// Every datagram dropped (lost, cut, or a full queue).
    pub dropped: u64,
    /// Of those, dropped because the router queue was full.
    pub overflowed: u64,
    pub duplicated: u64,
    /// Bytes of the datagrams forwarded (each copy counted).
    pub bytes: u64,
}

/// One direction's bottleneck and randomness.
#[derive(Debug)]
pub struct Shaper {
    rng: StdRng,
    /// When the bottleneck has sent everything queued so far.
    free_at: Duration,
    /// The latest delivery so far (shaped directions deliver in order).
    last_delivery: Duration,
    pub counts: DatagramCounts,
}

impl Shaper {
    pub fn new(seed: u64) -> Shaper {
        Shaper {
            rng: StdRng::seed_from_u64(seed),
            free_at: Duration::ZERO,
            last_delivery: Duration::ZERO,
            counts: DatagramCounts::default(),
        }
    }

    /// The times (since the relay started) at which copies of a datagram of
    /// `size` bytes that arrived at `now` leave the relay: none when it is
    /// dropped, two when it is duplicated.
    pub fn admit(&mut self, c: &Conditions, size: usize, now: Duration) -> Vec<Duration> {
        if c.cut {
            self.counts.dropped += 1;
            return Vec::new();
        }
        let sent = match c.rate {
            None => now,
            Some(rate) => {
                let rate = rate.max(1) as f64;
                let start = self.free_at.max(now);
                let queued = (start - now).as_secs_f64() * rate;
                if queued + size as f64 > c.buffer as f64 {
                    self.counts.dropped += 1;
                    self.counts.overflowed += 1;
                    return Vec::new();
                }
                self.free_at = start + Duration::from_secs_f64(size as f64 / rate);
                self.free_at
            }
        };
        // Lost on the path, after it used the bottleneck.
        if c.loss > 0.0 && self.rng.random::<f64>() < c.loss {
            self.counts.dropped += 1;
            return Vec::new();
        }
        let copies = if c.duplicate > 0.0 && self.rng.random::<f64>() < c.duplicate {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(copies);
        for _ in 0..copies {
            let jitter = c.jitter.as_secs_f64() * (self.rng.random::<f64>() * 2.0 - 1.0);
            let mut at = Duration::from_secs_f64(
                (sent.as_secs_f64() + c.delay.as_secs_f64() + jitter).max(sent.as_secs_f64()),
            );
            if c.rate.is_some() {
                at = at.max(self.last_delivery);
                self.last_delivery = at;
            }
            self.counts.forwarded += 1;
            self.counts.bytes += size as u64;
            out.push(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn shaped(rate: u64, buffer: usize) -> Conditions {
        Conditions {
            rate: Some(rate),
            buffer,
            ..Conditions::delayed(ms(30))
        }
    }

    #[test]
    fn a_shaped_link_sends_at_its_rate_then_adds_the_delay() {
        // 1,000 bytes/s: a 100-byte datagram takes 100 ms on the bottleneck.
        let c = shaped(1_000, 10_000);
        let mut s = Shaper::new(1);
        assert_eq!(s.admit(&c, 100, ms(0)), vec![ms(130)]);
        // Queued behind the first.
        assert_eq!(s.admit(&c, 100, ms(10)), vec![ms(230)]);
        // The link idled in between: no queue.
        assert_eq!(s.admit(&c, 50, ms(1_000)), vec![ms(1_080)]);
        assert_eq!(s.counts.forwarded, 3);
        assert_eq!(s.counts.bytes, 250);
    }

    #[test]
    fn a_full_router_queue_drops_the_datagram_and_keeps_the_rest() {
        // 1,000 bytes/s, 250 bytes of queue.
        let c = shaped(1_000, 250);
        let mut s = Shaper::new(1);
        assert_eq!(s.admit(&c, 100, ms(0)).len(), 1);
        assert_eq!(s.admit(&c, 100, ms(0)).len(), 1);
        // 200 bytes queued: 100 more do not fit.
        assert!(s.admit(&c, 100, ms(0)).is_empty());
        assert_eq!(s.counts.overflowed, 1);
        // A smaller one fits; the dropped one took no time on the link.
        assert_eq!(s.admit(&c, 50, ms(0)), vec![ms(280)]);
        // Once the queue drained, a full-size datagram fits again.
        assert_eq!(s.admit(&c, 100, ms(250)), vec![ms(380)]);
        assert_eq!(s.counts.dropped, 1);
    }

    #[test]
    fn a_saturated_link_carries_exactly_its_rate() {
        let c = shaped(2_500_000, 250_000);
        let mut s = Shaper::new(3);
        let mut last = Duration::ZERO;
        // A sender pushing 1,200-byte datagrams every 100 us (12 MB/s).
        for i in 0..10_000u64 {
            for at in s.admit(&c, 1_200, Duration::from_micros(100 * i)) {
                last = last.max(at);
            }
        }
        let carried = s.counts.bytes as f64;
        let seconds = (last - ms(30)).as_secs_f64();
        let rate = carried / seconds;
        assert!(
            (rate - 2_500_000.0).abs() < 25_000.0,
            "{rate} bytes/s over {seconds} s"
        );
        assert!(s.counts.overflowed > 5_000, "{:?}", s.counts);
    }

    #[test]
    fn loss_and_jitter_are_seeded_and_shaped_links_keep_order() {
        let c = Conditions::wan(20.0);
        let run = |seed| {
            let mut s = Shaper::new(seed);
            let out: Vec<Vec<Duration>> = (0..5_000u64)
                .map(|i| s.admit(&c, 1_200, Duration::from_micros(600 * i)))
                .collect();
            (out, s.counts)
        };
        let (a, counts) = run(9);
        assert_eq!(a, run(9).0, "the same seed gives the same fates");
        assert_ne!(a, run(10).0);
        // About 1 % lost (50 of 5,000; binomial sd ~7).
        assert!(
            (20..=80).contains(&counts.dropped),
            "{} dropped",
            counts.dropped
        );
        assert_eq!(
            counts.overflowed, 0,
            "600 us per 1,200 bytes is under 20 Mbit/s"
        );
        // Jitter spreads the delay: 30 ms +- 3 ms past the bottleneck.
        let mut extra = Vec::new();
        for (i, copies) in a.iter().enumerate() {
            for at in copies {
                extra.push(at.as_secs_f64() - (600 * i as u64) as f64 / 1e6);
            }
        }
        assert!(extra.iter().all(|e| *e >= 0.026 && *e < 0.040), "{extra:?}");
        assert!(extra.iter().any(|e| *e > 0.0325), "jitter spreads delays");
        let times: Vec<Duration> = a.into_iter().flatten().collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
    }

    #[test]
    fn unshaped_jitter_reorders_and_a_cut_drops_everything() {
        let c = Conditions {
            jitter: ms(10),
            ..Conditions::delayed(ms(20))
        };
        let mut s = Shaper::new(4);
        let times: Vec<Duration> = (0..200u64)
            .flat_map(|i| s.admit(&c, 100, Duration::from_micros(100 * i)))
            .collect();
        assert!(times.windows(2).any(|w| w[0] > w[1]), "some reordered");
        assert!(
            times
                .iter()
                .enumerate()
                .all(|(i, t)| *t >= Duration::from_micros(100 * i as u64 + 10_000))
        );
        let cut = Conditions {
            cut: true,
            ..Conditions::CLEAN
        };
        assert!(s.admit(&cut, 100, ms(50)).is_empty());
        assert_eq!(s.counts.dropped, 1);
    }
}
