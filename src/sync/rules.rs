//! The rules a peer's messages are held to, without IO or state beyond a
//! token bucket: the handshake checks (protocol version, schema hash, a
//! site id different from ours) and flood control on tiny batches.
//!
//! Must not: read clocks (time is an argument), sockets or the replica;
//! the session machine (session.rs) calls these and decides what follows.

use super::protocol::{ErrorCode, Hello, PROTOCOL_VERSION, Violation};
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
}

/// Checks a peer's Hello against this node.
pub fn check_hello(local: &LocalInfo, hello: &Hello) -> Result<(), Violation> {
    if hello.protocol != PROTOCOL_VERSION {
        return Err(Violation::new(
            ErrorCode::ProtocolMismatch,
            format!(
                "peer `{}` speaks protocol {}, this node speaks {PROTOCOL_VERSION}; run the same puente version at both offices",
                hello.node, hello.protocol
            ),
        ));
    }
    if hello.schema_hash != local.schema_hash {
        return Err(Violation::new(
            ErrorCode::SchemaMismatch,
            format!(
                "peer `{}` has schema {}, this node has {}; copy the same schema file to every office (`puente check` prints the hash)",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalInfo {
        LocalInfo {
            site: SiteId([1; 16]),
            node: "tijuana".into(),
            schema_hash: "hash-a".into(),
        }
    }

    fn hello(site: u8, schema: &str, protocol: u16) -> Hello {
        Hello {
            protocol,
            site: SiteId([site; 16]),
            node: "san-diego".into(),
            schema_hash: schema.into(),
            head: 0,
            wall_ms: 0,
        }
    }

    #[test]
    fn handshake_checks() {
        let code = |h: Hello| check_hello(&local(), &h).unwrap_err().code;
        assert_eq!(code(hello(2, "hash-a", 2)), ErrorCode::ProtocolMismatch);
        assert_eq!(code(hello(2, "hash-b", 1)), ErrorCode::SchemaMismatch);
        assert_eq!(code(hello(1, "hash-a", 1)), ErrorCode::SameSite);
        assert!(check_hello(&local(), &hello(2, "hash-a", 1)).is_ok());
        let e = check_hello(&local(), &hello(2, "hash-b", 1)).unwrap_err();
        assert!(e.reason.contains("same schema file"), "{e}");
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
}
