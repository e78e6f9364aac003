//! Owns: the rules a peer's messages are held to, without IO or state beyond a
//! token bucket: the handshake checks (protocol version, schema hash, a
//! site id different from ours), flood control on tiny batches, and the
//! throttle on log lines for failed handshakes (`LogThrottle`).
//!
//! Must not: read clocks (time is an argument), sockets or the replica;
//! the session machine (session.rs) calls these and decides what follows.

use super::protocol::{ErrorCode, Hello, MAX_VERSIONS, Violation, list_versions};
use crate::stamp::SiteId;

/// Batches with fewer changes than this count against the flood budget.
pub const TINY_BATCH: usize = 16;
/// Tiny batches a peer may send in a burst.
pub const FLOOD_BURST: f64 = 3_000.0;
/// Tiny batches per second a peer may send in the long run. The sender
/// paces live pushes at one per millisecond, well inside this.
pub const FLOOD_RATE_PER_S: f64 = 2_000.0;

/// What this node says about itself in its Hello.
#[derive(Debug, Clone)]
pub struct LocalInfo {
    pub site: SiteId,
    pub node: String,
    pub schema_hash: String,
    /// The schema in canonical text (sent from protocol version 2).
    pub schema: String,
    /// The protocol versions this node speaks, oldest first.
    pub versions: Vec<u16>,
}

/// The newest version both lists hold.
pub fn highest_common(ours: &[u16], theirs: &[u16]) -> Option<u16> {
    ours.iter().filter(|v| theirs.contains(v)).max().copied()
}

/// The refusal of a connection on which the two sides speak no version in
/// common, naming both.
pub fn no_common_version(local: &LocalInfo, peer: &str, theirs: &[u16]) -> Violation {
    Violation::new(
        ErrorCode::ProtocolMismatch,
        format!(
            "no protocol version in common: peer `{peer}` speaks {}, this node speaks {}; upgrade the office running the older puente",
            list_versions(theirs),
            list_versions(&local.versions)
        ),
    )
}

/// Checks the versions a peer advertises against the version the
/// connection negotiated (TLS ALPN): a sane list that contains it, and
/// nothing newer that both sides speak.
fn check_versions(local: &LocalInfo, hello: &Hello, negotiated: u16) -> Result<(), Violation> {
    let sane = !hello.versions.is_empty()
        && hello.versions.len() <= MAX_VERSIONS
        && hello.versions.windows(2).all(|w| w[0] < w[1])
        && hello.versions[0] > 0;
    if hello.protocol != negotiated
        || !sane
        || highest_common(&local.versions, &hello.versions) != Some(negotiated)
    {
        let shown: Vec<u16> = hello.versions.iter().take(MAX_VERSIONS).copied().collect();
        return Err(Violation::new(
            ErrorCode::ProtocolMismatch,
            format!(
                "peer `{}` sent a protocol {} Hello advertising versions [{}]{}, which does not agree with version {negotiated} negotiated for this connection (this node speaks {}); is the peer's puente damaged?",
                hello.node,
                hello.protocol,
                list_versions(&shown),
                if hello.versions.len() > MAX_VERSIONS {
                    " …"
                } else {
                    ""
                },
                list_versions(&local.versions)
            ),
        ));
    }
    Ok(())
}

/// Checks a peer's Hello against this node, on a connection that
/// negotiated protocol `negotiated`.
pub fn check_hello(local: &LocalInfo, hello: &Hello, negotiated: u16) -> Result<(), Violation> {
    check_versions(local, hello, negotiated)?;
    if hello.schema_hash != local.schema_hash {
        let what = match schema_differences(local, hello) {
            Some(d) if !d.is_empty() => format!(": {}", d.join("; ")),
            _ => String::new(),
        };
        return Err(Violation::new(
            ErrorCode::SchemaMismatch,
            format!(
                "peer `{}` has schema {}, this node has {}{what}; copy the same schema file to every office (`puente check` prints the hash)",
                hello.node,
                short(&hello.schema_hash),
                short(&local.schema_hash)
            ),
        ));
    }
    if hello.site == local.site {
        return Err(Violation::new(
            ErrorCode::SameSite,
            format!(
                "peer `{}` has this replica's own site id {}; its data dir was copied from this node — give it an empty data dir",
                hello.node, hello.site
            ),
        ));
    }
    Ok(())
}

/// What differs between our schema and the one in a peer's Hello, in
/// words (None when the Hello carries no schema: protocol version 1).
pub fn schema_differences(local: &LocalInfo, hello: &Hello) -> Option<Vec<String>> {
    let theirs = hello.schema.as_deref()?;
    Some(crate::config::diff::differences(
        &local.schema,
        theirs,
        &hello.node,
    ))
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// A token bucket on tiny batches: a burst of `FLOOD_BURST`, refilled at
/// `FLOOD_RATE_PER_S`.
#[derive(Debug, Clone)]
pub struct FloodBudget {
    tokens: f64,
    last_refill_ms: Option<u64>,
}

impl Default for FloodBudget {
    fn default() -> Self {
        FloodBudget {
            tokens: FLOOD_BURST,
            last_refill_ms: None,
        }
    }
}

impl FloodBudget {
    /// Counts a batch of `changes` changes received at `now_ms`.
    pub fn spend(&mut self, changes: usize, now_ms: u64) -> Result<(), Violation> {
        if changes >= TINY_BATCH {
            return Ok(());
        }
        if let Some(last) = self.last_refill_ms {
            let elapsed_s = now_ms.saturating_sub(last) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed_s * FLOOD_RATE_PER_S).min(FLOOD_BURST);
        }
        self.last_refill_ms = Some(now_ms);
        if self.tokens < 1.0 {
            return Err(Violation::new(
                ErrorCode::Flood,
                format!(
                    "more than {FLOOD_BURST} tiny batches in a burst (limit {FLOOD_RATE_PER_S}/s)"
                ),
            ));
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// Warnings for failed handshakes a node writes per second at most; the
/// rest are counted and the next line written says how many.
pub const HANDSHAKE_WARNINGS_PER_S: u32 = 5;

/// A rate limit on one kind of log line: at most `per_window` lines in
/// each window of `window_ms`; the lines beyond are suppressed and
/// counted, and the next line admitted carries the count. Time is an
/// argument (the shell passes the node's clock).
#[derive(Debug, Clone)]
pub struct LogThrottle {
    window_ms: u64,
    per_window: u32,
    window_start: Option<u64>,
    written: u32,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(per_window: u32, window_ms: u64) -> LogThrottle {
        LogThrottle {
            window_ms,
            per_window,
            window_start: None,
            written: 0,
            suppressed: 0,
        }
    }

    /// The throttle for failed handshakes.
    pub fn handshakes() -> LogThrottle {
        LogThrottle::new(HANDSHAKE_WARNINGS_PER_S, 1_000)
    }

    /// Whether to write a line now: `Some(n)` with the lines suppressed
    /// since the last one written, `None` to suppress this one.
    pub fn admit(&mut self, now_ms: u64) -> Option<u64> {
        let new_window = self
            .window_start
            .is_none_or(|start| now_ms < start || now_ms - start >= self.window_ms);
        if new_window {
            self.window_start = Some(now_ms);
            self.written = 0;
        }
        if self.written >= self.per_window {
            self.suppressed += 1;
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// ", and N similar warnings were suppressed" (or nothing).
pub fn suppressed_note(suppressed: u64) -> String {
    match suppressed {
        0 => String::new(),
        1 => " (1 similar warning suppressed before this one)".into(),
        n => format!(" ({n} similar warnings suppressed before this one)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalInfo {
        LocalInfo {
            site: SiteId([1; 16]),
            node: "tijuana".into(),
            schema_hash: "hash-a".into(),
            schema: String::new(),
            versions: vec![1, 2],
        }
    }

    fn hello(site: u8, schema: &str, protocol: u16) -> Hello {
        Hello {
            protocol,
            versions: (1..=protocol).collect(),
            site: SiteId([site; 16]),
            node: "san-diego".into(),
            schema_hash: schema.into(),
            schema: None,
            head: 0,
            wall_ms: 0,
        }
    }

    #[test]
    fn handshake_checks() {
        let code = |h: Hello, negotiated| check_hello(&local(), &h, negotiated).unwrap_err().code;
        assert_eq!(code(hello(2, "hash-a", 1), 2), ErrorCode::ProtocolMismatch);
        assert_eq!(code(hello(2, "hash-b", 2), 2), ErrorCode::SchemaMismatch);
        assert_eq!(code(hello(1, "hash-a", 2), 2), ErrorCode::SameSite);
        assert!(check_hello(&local(), &hello(2, "hash-a", 2), 2).is_ok());
        assert!(check_hello(&local(), &hello(2, "hash-a", 1), 1).is_ok());
        let e = check_hello(&local(), &hello(2, "hash-b", 2), 2).unwrap_err();
        assert!(e.reason.contains("same schema file"), "{e}");
    }

    #[test]
    fn advertised_versions_must_agree_with_the_negotiated_one() {
        let check = |versions: Vec<u16>, protocol: u16, negotiated: u16| {
            let mut h = hello(2, "hash-a", protocol);
            h.versions = versions;
            check_hello(&local(), &h, negotiated)
        };
        // A newer peer: 1..3, negotiated 2 (the newest this node speaks).
        assert!(check(vec![1, 2, 3], 2, 2).is_ok());
        // Garbage: empty, unsorted, zero, too many, missing the negotiated
        // one, or hiding a newer common version (a downgrade).
        for (versions, negotiated) in [
            (vec![], 2),
            (vec![2, 1], 2),
            (vec![0, 2], 2),
            ((1..=40).collect(), 2),
            (vec![1, 3], 2),
            (vec![1, 2], 1),
        ] {
            let e = check(versions.clone(), negotiated, negotiated).unwrap_err();
            assert_eq!(e.code, ErrorCode::ProtocolMismatch, "{versions:?}");
            assert!(e.reason.contains("does not agree"), "{e}");
        }
        assert!(
            check(vec![1, 2], 1, 2).is_err(),
            "a Hello of another version"
        );
        let e = no_common_version(&local(), "future", &[3, 4]);
        assert!(
            e.reason.contains("speaks 3, 4, this node speaks 1, 2"),
            "{e}"
        );
        assert_eq!(highest_common(&[1, 2], &[2, 3]), Some(2));
        assert_eq!(highest_common(&[1], &[2, 3]), None);
    }

    #[test]
    fn a_burst_of_tiny_batches_is_a_flood_but_a_steady_stream_is_not() {
        let mut budget = FloodBudget::default();
        // Ten thousand tiny batches within 200 ms.
        let flooded = (0..10_000u64).find_map(|i| budget.spend(1, i / 50).err().map(|v| (i, v)));
        let (at, v) = flooded.expect("a flood is detected");
        assert_eq!(v.code, ErrorCode::Flood);
        assert!(at >= FLOOD_BURST as u64, "{at}");

        // One tiny batch per millisecond for ten seconds is fine.
        let mut budget = FloodBudget::default();
        for ms in 0..10_000u64 {
            budget.spend(1, ms).unwrap();
        }
        // Full batches never count.
        let mut budget = FloodBudget::default();
        for _ in 0..10_000 {
            budget.spend(TINY_BATCH, 0).unwrap();
        }
    }

    #[test]
    fn failed_handshake_warnings_are_throttled_and_say_how_many_were_suppressed() {
        let mut t = LogThrottle::handshakes();
        let per = HANDSHAKE_WARNINGS_PER_S as usize;
        // At the limit: every one written, none suppressed.
        let first: Vec<_> = (0..per).map(|i| t.admit(10_000 + i as u64)).collect();
        assert_eq!(first, vec![Some(0); per]);
        // One over (and more) in the same second: suppressed, counted.
        assert_eq!(t.admit(10_500), None);
        for _ in 0..99 {
            assert_eq!(t.admit(10_999), None);
        }
        // The next second: written, carrying the count once.
        assert_eq!(t.admit(11_000), Some(100));
        assert_eq!(t.admit(11_001), Some(0));
        assert_eq!(
            suppressed_note(100),
            " (100 similar warnings suppressed before this one)"
        );
        assert_eq!(suppressed_note(0), "");
        // A clock that steps back starts a new window instead of stalling.
        let mut t = LogThrottle::new(1, 1_000);
        assert_eq!(t.admit(5_000), Some(0));
        assert_eq!(t.admit(5_001), None);
        assert_eq!(t.admit(1_000), Some(1));
    }
}
