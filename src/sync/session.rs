//! One sync session's rules, without IO: what may arrive when, and what it
//! means.
//!
//! Owns: the handshake checks (protocol version, schema hash, a site id
//! different from ours), message order (Hello first and once), and flood
//! control (a token bucket on tiny batches, time injected by the caller).
//! Must not: read sockets or clocks, or touch the replica; the driver in
//! peer.rs does what the returned events ask.

use super::protocol::{ErrorCode, Hello, Message, PROTOCOL_VERSION, Violation};
use crate::stamp::SiteId;
use crate::store::{Batch, Cursor, Digest};

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

/// A message that passed the session's checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The peer introduced itself; answer with a Pull from its cursor.
    Hello(Hello),
    /// Start (or restart) pushing changes after `cursor`.
    Pull(Cursor),
    Batch {
        batch: Batch,
        cursor: Cursor,
        complete: bool,
        head: u64,
    },
    State {
        head: u64,
        digest: Digest,
        applied: Cursor,
        wall_ms: u64,
    },
}

#[derive(Debug)]
pub struct Session {
    local: LocalInfo,
    peer: Option<Hello>,
    tokens: f64,
    last_refill_ms: Option<u64>,
}

impl Session {
    pub fn new(local: LocalInfo) -> Session {
        Session {
            local,
            peer: None,
            tokens: FLOOD_BURST,
            last_refill_ms: None,
        }
    }

    /// Our Hello.
    pub fn hello(&self, head: u64, wall_ms: u64) -> Message {
        Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            site: self.local.site,
            node: self.local.node.clone(),
            schema_hash: self.local.schema_hash.clone(),
            head,
            wall_ms,
        })
    }

    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    /// Checks one incoming message; `now_ms` is the driver's clock.
    pub fn receive(&mut self, message: Message, now_ms: u64) -> Result<Event, Violation> {
        match (message, &self.peer) {
            (Message::Hello(hello), None) => {
                if hello.protocol != PROTOCOL_VERSION {
                    return Err(Violation::new(
                        ErrorCode::ProtocolMismatch,
                        format!(
                            "peer `{}` speaks protocol {}, this node speaks {PROTOCOL_VERSION}; run the same puente version at both offices",
                            hello.node, hello.protocol
                        ),
                    ));
                }
                if hello.schema_hash != self.local.schema_hash {
                    return Err(Violation::new(
                        ErrorCode::SchemaMismatch,
                        format!(
                            "peer `{}` has schema {}, this node has {}; copy the same schema file to every office (`puente check` prints the hash)",
                            hello.node,
                            short(&hello.schema_hash),
                            short(&self.local.schema_hash)
                        ),
                    ));
                }
                if hello.site == self.local.site {
                    return Err(Violation::new(
                        ErrorCode::SameSite,
                        format!(
                            "peer `{}` has this replica's own site id {}; its data dir was copied from this node — give it an empty data dir",
                            hello.node, hello.site
                        ),
                    ));
                }
                self.peer = Some(hello.clone());
                Ok(Event::Hello(hello))
            }
            (Message::Hello(_), Some(_)) => Err(Violation::new(
                ErrorCode::UnexpectedMessage,
                "a second Hello",
            )),
            (other, None) => Err(Violation::new(
                ErrorCode::UnexpectedMessage,
                format!("a {} message before Hello", other.kind()),
            )),
            (Message::Pull { cursor }, Some(_)) => Ok(Event::Pull(cursor)),
            (
                Message::Batch {
                    batch,
                    cursor,
                    complete,
                    head,
                },
                Some(_),
            ) => {
                if batch.changes.len() < TINY_BATCH {
                    self.spend_token(now_ms)?;
                }
                Ok(Event::Batch {
                    batch,
                    cursor,
                    complete,
                    head,
                })
            }
            (
                Message::State {
                    head,
                    digest,
                    applied,
                    wall_ms,
                },
                Some(_),
            ) => Ok(Event::State {
                head,
                digest,
                applied,
                wall_ms,
            }),
        }
    }

    fn spend_token(&mut self, now_ms: u64) -> Result<(), Violation> {
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

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
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

    fn hello_from(site: u8, schema: &str, protocol: u16) -> Message {
        Message::Hello(Hello {
            protocol,
            site: SiteId([site; 16]),
            node: "san-diego".into(),
            schema_hash: schema.into(),
            head: 0,
            wall_ms: 0,
        })
    }

    fn tiny() -> Message {
        Message::Batch {
            batch: Batch::default(),
            cursor: Cursor::ZERO,
            complete: false,
            head: 0,
        }
    }

    #[test]
    fn handshake_checks() {
        let code = |m: Message| Session::new(local()).receive(m, 0).unwrap_err().code;
        assert_eq!(
            code(hello_from(2, "hash-a", 2)),
            ErrorCode::ProtocolMismatch
        );
        assert_eq!(code(hello_from(2, "hash-b", 1)), ErrorCode::SchemaMismatch);
        assert_eq!(code(hello_from(1, "hash-a", 1)), ErrorCode::SameSite);
        assert_eq!(
            code(Message::Pull {
                cursor: Cursor::ZERO
            }),
            ErrorCode::UnexpectedMessage
        );
        let mut s = Session::new(local());
        assert!(matches!(
            s.receive(hello_from(2, "hash-a", 1), 0),
            Ok(Event::Hello(_))
        ));
        assert_eq!(
            s.receive(hello_from(2, "hash-a", 1), 0).unwrap_err().code,
            ErrorCode::UnexpectedMessage
        );
        assert_eq!(
            s.receive(
                Message::Pull {
                    cursor: Cursor::at(3)
                },
                0
            ),
            Ok(Event::Pull(Cursor::at(3)))
        );
        let e = Session::new(local())
            .receive(hello_from(2, "hash-b", 1), 0)
            .unwrap_err();
        assert!(e.reason.contains("same schema file"), "{e}");
    }

    #[test]
    fn a_burst_of_tiny_batches_is_a_flood_but_a_steady_stream_is_not() {
        let mut s = Session::new(local());
        s.receive(hello_from(2, "hash-a", 1), 0).unwrap();
        // Ten thousand tiny batches within 200 ms.
        let mut flooded = None;
        for i in 0..10_000u64 {
            if let Err(v) = s.receive(tiny(), i / 50) {
                flooded = Some((i, v.code));
                break;
            }
        }
        let (at, code) = flooded.expect("a flood is detected");
        assert_eq!(code, ErrorCode::Flood);
        assert!(at >= FLOOD_BURST as u64, "{at}");

        // One tiny batch per millisecond for ten seconds is fine.
        let mut s = Session::new(local());
        s.receive(hello_from(2, "hash-a", 1), 0).unwrap();
        for ms in 0..10_000u64 {
            s.receive(tiny(), ms).unwrap();
        }
    }
}
