//! The append-only logs of the data dir that say who did what: the reveal
//! audit log (`reveals`: who saw which sealed cell, through the admin
//! socket) and the edit log (`edits`: who changed what, through the web
//! agenda or the staff list). Both the admin socket and the web write to
//! them, so they sit below both.
//!
//! Owns: the two line formats and the one way both are written: appended
//! in one write and made durable (fsync) before the caller answers.
//! Must not: ever write a value (column names only), or let a change or a
//! reveal be answered when its line could not be written.

pub mod edits;
pub mod reveals;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

pub use reveals::{AuditError, AuditLog, Caller, RevealedCell};

/// Appends `text` to the file at `path` (created mode 0600) in one write,
/// then syncs it (and its folder when the file is new). `lock` serialises
/// writers in this process. Blocking.
pub(crate) fn append_durably(path: &Path, lock: &Mutex<()>, text: &[u8]) -> std::io::Result<()> {
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text)?;
    file.sync_data()?;
    if !existed && let Some(dir) = path.parent() {
        // Make the new file's directory entry durable too.
        File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}
