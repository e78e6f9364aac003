//! The merge core, without SQLite: what a cell's metadata is and which
//! version of a cell every replica keeps.
//!
//! Owns: the packed per-row clocks (`clocks`), last-writer-wins between
//! two versions of a cell or a tombstone (`lww`) and the order-independent
//! digest of all of them (`digest`). Grouped because each is a pure
//! decision every write, apply and read below builds on: they import
//! nothing else of the store, and everything else may import them.
//! Must not: touch SQLite, read a clock, or know about peers and offices.

pub(super) mod clocks;
pub mod digest;
pub(super) mod lww;
