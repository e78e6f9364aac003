//! What the running node keeps and shows without waiting for the store:
//! the replica snapshot (`snapshot`), catch-up progress (`progress`), the
//! status document's shape (`status`), the counters and histograms
//! metrics read (`counters`, `histogram`), and the reports of long work
//! (`long_work`: a reseal's progress, the last reload). Grouped because
//! each is read by status or metrics under a lock of its own, never the
//! store's.
//!
//! Owns: those values and their small updates.
//! Must not: read the replica, or do the work they report on.

pub mod counters;
pub mod histogram;
pub mod long_work;
pub mod progress;
pub mod snapshot;
pub mod status;
