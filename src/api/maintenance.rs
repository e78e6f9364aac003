//! Owns: the JSON shapes of the maintenance endpoints (backup, reseal,
//! checkpoint), shared by the server and the client.
//!
//! Must not: hold logic.

use serde::{Deserialize, Serialize};

/// `POST /v1/backup`: offsite recipients (`age1…`) to wrap the backup for;
/// none: the backup stays under the replica's own key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    #[serde(default)]
    pub to: Vec<String>,
}

/// The response header that carries the backup's `BackupInfo` as JSON
/// (the body is the backup file).
pub const BACKUP_INFO_HEADER: &str = "x-puente-backup";

/// `POST /v1/reseal`: the group (every sealed group if none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResealRequest {
    #[serde(default)]
    pub group: Option<String>,
}

/// `POST /v1/checkpoint`: what the WAL held before it was folded in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpointed {
    pub ok: bool,
    /// The WAL's size before (bytes); it is truncated to 0.
    pub wal_bytes_before: u64,
}
