//! Sync between offices over QUIC with pinned mutual TLS.
//!
//! Owns: without IO, `protocol` (messages, versions, codes), `frame`
//! (their bytes), `rules`
//! (handshake checks, flood budget), `session` (the session as a state
//! machine: inputs in, actions out, time injected) and `policy` (backoff
//! with injected randomness, which duplicate connection to keep). The
//! shell: `pinning` builds TLS; `udp_guard` watches the socket; `peer`
//! executes one session's actions over a QUIC stream, with `push` and
//! `receive` doing the replica work and `context` what they share;
//! `manager` dials, accepts, deduplicates and retries.
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
