//! Rate limits for guessing tokens: sign-in attempts and calendar feed
//! addresses with an unknown token, per client address and for everyone
//! together (token buckets).
//!
//! Per address: 10 attempts at once, then one every 6 seconds. In total:
//! 60 at once, then 2 a second. A 160-bit token is not guessable anyway;
//! the limits keep a guesser from costing the office CPU and log space.
//!
//! Owns: the buckets, with the time passed in.
//! Must not: read the clock or know HTTP.

use std::collections::HashMap;
use std::net::IpAddr;

/// A token bucket: `capacity` at once, `per_s` refilled each second.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub capacity: f64,
    pub per_s: f64,
}

pub const PER_CLIENT: Rate = Rate {
    capacity: 10.0,
    per_s: 1.0 / 6.0,
};
pub const GLOBAL: Rate = Rate {
    capacity: 60.0,
    per_s: 2.0,
};

/// Addresses remembered at most (idle full buckets are dropped first).
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    fn full(rate: Rate, now_ms: u64) -> Bucket {
        Bucket {
            tokens: rate.capacity,
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: Rate, now_ms: u64) {
        let secs = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + secs * rate.per_s).min(rate.capacity);
        self.at_ms = now_ms.max(self.at_ms);
    }

    /// Seconds until one token is there.
    fn wait_s(&self, rate: Rate) -> u64 {
        ((1.0 - self.tokens) / rate.per_s).ceil().max(1.0) as u64
    }
}

#[derive(Debug)]
pub struct Limiter {
    per_client: Rate,
    global: Rate,
    clients: HashMap<IpAddr, Bucket>,
    all: Bucket,
}

impl Limiter {
    pub fn new(per_client: Rate, global: Rate, now_ms: u64) -> Limiter {
        Limiter {
            per_client,
            global,
            clients: HashMap::new(),
            all: Bucket::full(global, now_ms),
        }
    }

    /// Whether `client` may try now (nothing is spent): Err(seconds to wait).
    pub fn check(&mut self, client: IpAddr, now_ms: u64) -> Result<(), u64> {
        self.all.refill(self.global, now_ms);
        if self.all.tokens < 1.0 {
            return Err(self.all.wait_s(self.global));
        }
        if let Some(b) = self.clients.get_mut(&client) {
            b.refill(self.per_client, now_ms);
            if b.tokens < 1.0 {
                return Err(b.wait_s(self.per_client));
            }
        }
        Ok(())
    }

    /// Spends one attempt of `client` (after `check` allowed it).
    pub fn spend(&mut self, client: IpAddr, now_ms: u64) {
        self.all.refill(self.global, now_ms);
        self.all.tokens = (self.all.tokens - 1.0).max(0.0);
        let per = self.per_client;
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            self.clients.retain(|_, b| {
                b.refill(per, now_ms);
                b.tokens < per.capacity
            });
        }
        let b = self
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(per, now_ms));
        b.refill(per, now_ms);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// `check`, then `spend` if allowed.
    pub fn attempt(&mut self, client: IpAddr, now_ms: u64) -> Result<(), u64> {
        self.check(client, now_ms)?;
        self.spend(client, now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn one_client_gets_ten_tries_then_one_every_six_seconds() {
        let mut l = Limiter::new(PER_CLIENT, GLOBAL, 0);
        for _ in 0..10 {
            l.attempt(ip(1), 0).unwrap();
        }
        assert_eq!(l.attempt(ip(1), 0), Err(6));
        assert_eq!(l.attempt(ip(1), 3_000), Err(3));
        l.attempt(ip(1), 6_000).unwrap();
        assert!(l.attempt(ip(1), 6_001).is_err());
        // Another address is not held up.
        l.attempt(ip(2), 6_001).unwrap();
        // Checking spends nothing.
        for _ in 0..20 {
            l.check(ip(3), 7_000).unwrap();
        }
    }

    #[test]
    fn everyone_together_is_limited_too() {
        let mut l = Limiter::new(PER_CLIENT, GLOBAL, 0);
        for n in 0..60u32 {
            l.attempt(IpAddr::from([10, 0, (n / 250) as u8, (n % 250) as u8]), 0)
                .unwrap();
        }
        assert_eq!(l.attempt(ip(9), 0), Err(1));
        l.attempt(ip(9), 500).unwrap();
    }
}
