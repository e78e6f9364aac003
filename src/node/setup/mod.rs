//! A node on disk and loading it before it runs: laying out a new node
//! (`init`), its TLS identity (`identity`), the replica key's file or
//! systemd credential (`replica_key`), the data-dir lock (`lock`),
//! loading and checking everything once (`preflight`), and whether the
//! service user can use those files (`service_access`). Grouped because
//! they are what the daemon and the commands on a stopped node read
//! before anything else.
//!
//! Owns: those files and what they hold.
//! Must not: open the replica (above them) or any socket.

pub mod identity;
pub mod init;
pub mod lock;
pub mod preflight;
pub mod replica_key;
pub mod service_access;
