//! Adopting a schema: what a changed schema would do to the replica and
//! doing it.
//!
//! Owns: the plan, decided without SQLite (`plan`: tables and columns
//! added or dropped, privacy and types changed, and which of those may
//! happen by themselves), carrying it out in one transaction
//! (`execute`), and a reload's swap of keyring and schema (`swap`).
//! Grouped because the three are one change of schema, at start or at a
//! reload.
//! Must not: adopt what needs a word from the admin without it (`Allow`),
//! or leave plaintext behind in a column that becomes sealed.

pub(super) mod execute;
pub(super) mod plan;
pub(super) mod swap;
