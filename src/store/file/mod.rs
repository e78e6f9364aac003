//! The replica as a file: opening and creating it, its key, its format,
//! its copies, its history and its WAL.
//!
//! Owns: SQLCipher keys and the key check that writes nothing (`cipher`),
//! opening, creating and loading the in-memory state, then adopting the
//! schema (`open`), format migrations with a copy left beside
//! (`migrate`), consistent copies and read-only snapshots (`backup`), a
//! new history after a restore (`history`), folding a large WAL in and
//! freeing the cache after a burst (`settle`). Grouped because they are
//! what an operator does to the file; they sit above everything else of
//! the store (opening builds the whole replica).
//! Must not: decide merges or rights, or do network IO.

pub mod backup;
pub mod cipher;
pub(super) mod history;
pub(super) mod migrate;
pub mod open;
pub(super) mod settle;
