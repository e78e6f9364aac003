//! The sync protocol versions this build speaks: what the node config
//! offers unless `[debug] protocols` says otherwise, and what
//! sync/protocol.rs (which owns what each version means, and re-exports
//! this list) negotiates. Kept below the config so that the config's
//! default can name them without importing sync.
//!
//! Owns: the list.
//! Must not: hold what a version means (sync/protocol.rs does).

/// The protocol versions this build speaks, oldest first. Version 1 is the
/// conversation of puente 0.1.0; version 2 adds to Hello the list of
/// versions the sender speaks and its schema (so that each side can say
/// what differs); version 3 compresses batch frames where it pays
/// (sync/compress.rs).
pub const SPOKEN: &[u16] = &[1, 2, 3];
