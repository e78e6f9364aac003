//! Write rights on apply and the changes held for review.
//!
//! Owns: which office each site id is (`bindings`, `_puente_bindings`),
//! whether a peer's change may be applied, decided without SQLite
//! (`judge`), and the changes held instead of applied (`held`,
//! `_puente_held`), and the bounds on the site ids a peer can make this
//! replica keep (`bounds`). Grouped because together they are promise 7 on the
//! receiving side: a change an office may not make is held, never applied
//! silently and never lost. Deciding on a held change applies it, so that
//! lives with the merge (`merge::review`).
//! Must not: apply a change (merge/ does) or hold a plaintext.

pub(super) mod bindings;
pub(super) mod bounds;
pub(super) mod held;
pub(super) mod judge;
