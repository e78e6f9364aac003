//! Sync between offices over QUIC with pinned mutual TLS.
//!
//! `protocol` (messages, frames, codes) and `session` (the rules) are pure;
//! `pinning` builds TLS; `udp_guard` watches the socket; `peer` drives one
//! connection (with `push` for sending and `receive` for applying);
//! `manager` dials, accepts, deduplicates and retries.

pub mod manager;
pub mod peer;
pub mod pinning;
pub mod protocol;
mod push;
mod receive;
pub mod session;
pub mod udp_guard;
