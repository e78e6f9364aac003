//! Work a running node does when asked: a backup of the replica
//! (`backup`, also taken of a stopped node by the CLI), re-sealing sealed
//! cells to the current recipients (`reseal`) and putting a reloaded
//! config and schema in force (`reload`). Grouped because each works on
//! the live replica in bounded steps while sync and staff writes go on.
//!
//! Owns: those tasks and what they report.
//! Must not: hold the store's lock for longer than a step.

pub mod backup;
pub mod reload;
pub mod reseal;
