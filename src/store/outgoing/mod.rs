//! Changes leaving for a peer: "changes since a cursor".
//!
//! Owns: which changes go into one batch, decided without SQLite
//! (`batching`), the SQL reads behind it (`since`), and the runs of the
//! change sequence that only hold what one peer sent, so the pump back to
//! it skips them without reading (`echo`). Grouped because together they
//! answer one question: what does this peer still need?
//! Must not: write to the replica or encode frames (sync/ does).

pub(super) mod batching;
pub(super) mod echo;
pub(super) mod since;
