//! Sealed cells in the replica.
//!
//! Owns: sealing the cells of local writes on every core, a chunk ahead
//! of the merge (`sealing`), counting sealed cells per group and
//! recipient set (`keysets`), and the replica's side of re-sealing them
//! to a group's current recipients (`reseal`). Grouped because all three
//! deal with age files in cells and with recipient sets.
//! Must not: let a plaintext reach SQLite, a log line or an error, or
//! open a cell for anything but a reseal.

pub(super) mod keysets;
pub mod reseal;
pub(super) mod sealing;
