//! Owns: small file-system helpers with the durability and permission rules
//! puente needs: atomic replace, create-new with a mode, folder sync,
//! overwrite-then-remove, directory checks.
//!
//! Must not: hold any policy about what the files contain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` by writing a temporary file in the same folder,
/// syncing it and renaming it over `path`. `mode` sets the new file's
/// permissions; `None` keeps those of the file being replaced (or 0644).
/// The replaced file's owner and group are kept (a config readable by the
/// service's group stays so after `puente peer add` run as root).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = mode.unwrap_or_else(|| {
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644)
    });
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            let made = f.metadata()?;
            if (made.uid(), made.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "cannot keep the owner and group of {} ({e}); run this as root or as the file's owner",
                            path.display()
                        ),
                    )
                })?;
            }
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` with `mode`, failing if anything already exists there.
pub fn create_new_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // Exactly `mode`, whatever the umask (which only narrows it at open).
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Syncs a folder, so that names created, renamed or removed in it survive
/// a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Overwrites a file's bytes with zeros in place and syncs it; the file
/// stays (same name, length and inode). Returns false if it is missing.
pub fn overwrite_in_place(path: &Path) -> io::Result<bool> {
    let mut f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(true)
}

/// Overwrites a file's bytes with zeros, syncs it, removes it and syncs its
/// folder. Best effort against recovery from the disk: SSDs (wear
/// levelling) and copy-on-write or snapshotting file systems (btrfs, ZFS,
/// LVM snapshots) may keep the old blocks. A missing file is no error.
pub fn overwrite_and_remove(path: &Path) -> io::Result<()> {
    if !overwrite_in_place(path)? {
        return Ok(());
    }
    fs::remove_file(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(dir)
}

/// Unix permission bits of a file.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&p, b"new", None).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode_of(&p).unwrap(), 0o640);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_keeps_owner_and_group() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("puente.toml");
        fs::write(&p, "old").unwrap();
        // A group other than ours, if we may set one (as root in CI).
        let target_gid = 65534;
        let chowned = std::os::unix::fs::chown(&p, None, Some(target_gid)).is_ok();
        let before = fs::metadata(&p).unwrap();
        write_atomically(&p, b"new", None).unwrap();
        let after = fs::metadata(&p).unwrap();
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        if chowned {
            assert_eq!(after.gid(), target_gid);
        }
    }

    #[test]
    fn overwrite_and_remove_zeroes_the_file_before_unlinking_it() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        fs::write(&p, vec![7u8; 3 << 20]).unwrap();
        // A second name for the same inode shows what was left in it.
        let witness = dir.path().join("witness");
        fs::hard_link(&p, &witness).unwrap();
        overwrite_and_remove(&p).unwrap();
        assert!(!p.exists());
        let left = fs::read(&witness).unwrap();
        assert_eq!(left.len(), 3 << 20);
        assert!(left.iter().all(|b| *b == 0));
        assert_eq!(fs::metadata(&witness).unwrap().nlink(), 1);
        overwrite_and_remove(&p).unwrap();
    }

    #[test]
    fn create_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        create_new_with_mode(&p, b"x", 0o600).unwrap();
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        assert!(create_new_with_mode(&p, b"y", 0o600).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"x");
    }
}
