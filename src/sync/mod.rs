//! Sync between offices over QUIC with pinned mutual TLS.
//!
//! Owns: without IO, and every decision of the protocol: `protocol`
//! (messages, versions, codes), `frame` and `compress` (their bytes),
//! `rules` (handshake checks, flood budget), `session` (the session as a
//! state machine: inputs in, actions out, time injected; with its
//! `Outbox`, the order frames leave in) and `policy` (timeouts, which
//! duplicate connection to keep, whether an end was a problem, each peer's
//! dialler with injected randomness). The shell carries those decisions
//! out and reports back: `pinning` builds TLS; `udp_guard` watches the
//! socket; `peer` executes one session's actions over a QUIC stream, with
//! `push` and `receive` doing the replica work and `context` what they
//! share; `manager` accepts, runs the diallers and the registry. The
//! seeded simulator (tests/sim) runs the pure part with its own network.
//!
//! Imports run one way: manager → peer → push, receive → context →
//! protocol; nothing imports peer or manager back.
//! Must not: decide merges (store/ does) or import back up that chain.

mod compress;
mod context;
mod frame;
pub mod manager;
pub mod peer;
pub mod pinning;
pub mod policy;
pub mod protocol;
mod push;
mod receive;
pub mod rules;
pub mod session;
pub mod udp_guard;
