//! The data-dir lock: one process at a time works on a replica.
//!
//! Owns: taking an exclusive `flock` on DATA_DIR/puente.lock (the daemon
//! for its whole life, `puente storage` commands while they convert) and
//! asking whether someone holds it, without creating anything.
//! Must not: touch the replica itself.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "puente.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data dir {} does not exist; create it owned by the user puente runs as (`install -d -m 0700 -o puente -g puente DIR`; under systemd, StateDirectory= in the unit makes /var/lib/puente; `puente init` makes DIR/data only when --data-dir is not given) or fix data_dir in the node config", dir.display())]
    DataDirMissing { dir: PathBuf },
    #[error("another puente process (a running daemon or a `puente storage` command) holds data dir {}; stop it first (systemctl stop puente) — two processes must never share a replica", dir.display())]
    Held { dir: PathBuf },
    #[error("cannot lock the data dir {}: {source}; make it writable by the user puente runs as", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the process works on the replica; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock (creating the lock file if needed) and writes our pid.
pub fn lock(dir: &Path) -> Result<DataDirLock, LockError> {
    if !dir.is_dir() {
        return Err(LockError::DataDirMissing {
            dir: dir.to_path_buf(),
        });
    }
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let path = dir.join(LOCK_FILE);
    let existed = path.exists();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if !existed {
        // Made by root for `puente storage`: the daemon's user (who owns
        // the data dir) must still be able to take it.
        use std::os::unix::fs::MetadataExt;
        if let Ok(owner) = std::fs::metadata(dir) {
            let _ = std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()));
        }
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                dir: dir.to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
    }
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(DataDirLock { _file: file })
}

/// Whether another process holds the lock now (false if there is no lock
/// file). Creates and writes nothing.
pub fn is_held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_held(dir.path()));
        assert!(!dir.path().join(LOCK_FILE).exists());
        let held = lock(dir.path()).unwrap();
        assert!(is_held(dir.path()));
        assert!(matches!(lock(dir.path()), Err(LockError::Held { .. })));
        drop(held);
        assert!(!is_held(dir.path()));
        assert!(lock(dir.path()).is_ok());
        let e = lock(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, LockError::DataDirMissing { .. }));
    }
}
