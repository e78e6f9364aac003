//! Changes merged into the replica: the SQL around the merge core.
//!
//! Owns: merging one row change or one tombstone with the next change
//! sequence, judged by the rights and held where refused (`row`), a
//! peer's batch validated and applied with its cursor in one transaction
//! (`apply`), a held change accepted or discarded (`review`), and held
//! changes stamped ahead applied once this office's clock catches up
//! (`release`). Grouped
//! because each writes changes through the same merge; local writes
//! (`write.rs`) and re-sealing call it too.
//! Must not: decide which version wins (cells/lww does) or who may write
//! (rights/judge does).

pub(super) mod apply;
pub(super) mod release;
pub(super) mod review;
pub(super) mod row;
