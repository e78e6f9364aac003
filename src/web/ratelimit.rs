//! Rate limits for guessing tokens: failed sign-in attempts and calendar
//! feed addresses with an unknown token, per client and for everyone
//! together (token buckets). Only failures count, so a guesser never
//! locks out staff whose tokens are good. A client is its address, an
//! IPv6 client its /64 (one machine may hold a whole /64); behind a
//! trusted reverse proxy, the right-most `X-Forwarded-For` address that is
//! not a trusted proxy.
//!
//! Per address: 10 attempts at once, then one every 6 seconds. In total:
//! 60 at once, then 2 a second. A 160-bit token is not guessable anyway;
//! the limits keep a guesser from costing the office CPU and log space.
//!
//! Owns: the buckets, with the time passed in; who the client of a
//! request is (from the connection's address, the header's values and the
//! trusted proxies, passed in).
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

/// The client of a request from `peer` (the connection's address) and the
/// values of its `X-Forwarded-For` headers, in order: `peer` itself unless
/// it is one of `trusted`; then the right-most forwarded address that is
/// not a trusted proxy (the one the nearest trusted proxy saw connect),
/// or `peer` when the header names none that can be read.
pub fn client_of(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|t| canonical(*t) == peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Not an address: the proxy's own word is all there is.
            return peer;
        };
        let ip = canonical(ip);
        if !trusted.iter().any(|t| canonical(*t) == ip) {
            return ip;
        }
    }
    peer
}

/// One `X-Forwarded-For` entry: an address, or an address with a port
/// (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client's attempts are counted under: an IPv4 address itself,
/// an IPv6 address its /64.
pub fn key(client: IpAddr) -> IpAddr {
    match canonical(client) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
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
        let client = key(client);
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
        let client = key(client);
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

    #[test]
    fn an_ipv6_client_is_its_64_and_cannot_rotate_out_of_the_limit() {
        let mut l = Limiter::new(PER_CLIENT, GLOBAL, 0);
        let a = |low: u64| {
            IpAddr::from(std::net::Ipv6Addr::from(
                (0x2001_0db8_0000_0001u128 << 64) | u128::from(low),
            ))
        };
        for n in 0..10 {
            l.attempt(a(n * 7919 + 1), 0).unwrap();
        }
        // A fresh address in the same /64 is the same client.
        assert_eq!(l.attempt(a(0xdead_beef), 0), Err(6));
        // The next /64 is another client.
        let other = IpAddr::from(std::net::Ipv6Addr::from(
            (0x2001_0db8_0000_0002u128 << 64) | 1,
        ));
        l.attempt(other, 0).unwrap();
        assert_eq!(key(a(5)), key(a(u64::MAX)));
        assert_ne!(key(a(5)), key(other));
        // IPv4 and IPv4-mapped IPv6 are one client; IPv4 keeps all 32 bits.
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
        assert_eq!(key(mapped), ip(9));
        assert_ne!(key(ip(9)), key(ip(10)));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy = ip(1);
        let trusted = [proxy];
        let client: IpAddr = "127.0.0.77".parse().unwrap();
        // Untrusted peer: the header is ignored.
        assert_eq!(client_of(ip(5), &["127.0.0.77"], &trusted), ip(5));
        assert_eq!(client_of(ip(5), &["127.0.0.77"], &[]), ip(5));
        // Trusted: the right-most address that is not a trusted proxy; a
        // client cannot choose its key by writing the header itself.
        assert_eq!(client_of(proxy, &["127.0.0.77"], &trusted), client);
        assert_eq!(
            client_of(proxy, &["127.0.0.99, 127.0.0.77"], &trusted),
            client
        );
        assert_eq!(
            client_of(proxy, &["127.0.0.99", "127.0.0.77, 127.0.0.1"], &trusted),
            client
        );
        assert_eq!(client_of(proxy, &["127.0.0.77:4431"], &trusted), client);
        assert_eq!(
            client_of(proxy, &["[::1]:80"], &trusted),
            "::1".parse::<IpAddr>().unwrap()
        );
        // Missing or unreadable: the proxy itself.
        assert_eq!(client_of(proxy, &[], &trusted), proxy);
        assert_eq!(client_of(proxy, &["unknown"], &trusted), proxy);
        assert_eq!(client_of(proxy, &["127.0.0.1"], &trusted), proxy);
    }
}
