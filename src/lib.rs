//! puente: a sync daemon for an organisation with offices on both sides of
//! a border. SQLite replicas, last-writer-wins per column, QUIC with pinned
//! mutual TLS, and per-field age encryption to keys that exist only in
//! Mexico. See docs/architecture.md for the map of modules.
//!
//! Owns: the list of rooms, each a module with a concern of its own, in
//! the layers docs/architecture.md draws (`tools/imports` checks them).
//! Must not: hold code of its own, or allow `unsafe`.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod api;
pub mod audit;
pub mod bench;
pub mod bulk;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fingerprint;
pub mod fsutil;
pub mod lab;
pub mod metrics;
pub mod mutants;
pub mod node;
pub mod percent;
pub mod schedule;
pub mod seal;
pub(crate) mod secret_buf;
pub mod serve;
pub mod stamp;
pub mod store;
pub mod sync;
pub mod value;
pub mod versions;
pub mod web;
