//! Byte scans of a folder for plaintext: the check behind "sealed means
//! sealed" in the demo and the tests.
//!
//! Owns: walking every file under a folder, reading each one whole, and
//! searching it for forbidden values (which must be absent) and for control
//! values (which must be present: the positive control that proves the scan
//! saw the files), in UTF-8 and UTF-16 (little and big endian). A file that
//! cannot be read, or a control that is not found, fails the scan; so does
//! a scan without any control.
//! Must not: put a forbidden value into its error (only into the report's
//! `hits`).

use std::path::{Path, PathBuf};

/// The file a control planted with [`plant_control`] is written to.
pub const CONTROL_FILE: &str = "scan-control.txt";

/// A value the scan must find. Without one, a scan that reads nothing (a
/// wrong folder, a file it cannot open, a value that went elsewhere)
/// passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub needle: String,
    /// The name of the file it must be found in (e.g. `puente.db-wal`,
    /// `daemon.log`); `None`: any file under the folder.
    pub file_name: Option<String>,
}

impl Control {
    /// `needle` must be found in some file under the folder.
    pub fn anywhere(needle: &str) -> Control {
        Control {
            needle: needle.to_string(),
            file_name: None,
        }
    }

    /// `needle` must be found in a file named `file_name` under the folder.
    pub fn in_file(file_name: &str, needle: &str) -> Control {
        Control {
            needle: needle.to_string(),
            file_name: Some(file_name.to_string()),
        }
    }

    fn matches(&self, file: &Path) -> bool {
        match &self.file_name {
            None => true,
            Some(name) => file.file_name().is_some_and(|n| n == name.as_str()),
        }
    }

    fn describe(&self) -> String {
        match &self.file_name {
            None => format!("`{}` in any file", self.needle),
            Some(name) => format!("`{}` in {name}", self.needle),
        }
    }
}

/// Writes [`CONTROL_FILE`] into `dir`, holding a fresh random marker, and
/// returns the control that must find it: proof that the scan walks into
/// `dir` and reads what it finds there, whatever the other files hold.
pub fn plant_control(dir: &Path) -> std::io::Result<Control> {
    let marker = format!("scan-control-{:016x}", rand::random::<u64>());
    std::fs::write(dir.join(CONTROL_FILE), format!("{marker}\n"))?;
    Ok(Control::in_file(CONTROL_FILE, &marker))
}

/// What to look for: forbidden values and controls.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    forbidden: Vec<String>,
    controls: Vec<Control>,
}

/// What a scan saw.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Files read whole.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Forbidden values found: (file, value).
    pub hits: Vec<(PathBuf, String)>,
    /// Controls found: (file, value).
    pub found: Vec<(PathBuf, String)>,
    /// Controls not found where they had to be.
    pub missing: Vec<Control>,
    /// Files and folders that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Sockets, pipes and devices: no bytes to read.
    pub skipped: Vec<PathBuf>,
    /// Whether the scan had no control at all.
    pub uncontrolled: bool,
}

/// Why a scan failed, as a sentence naming the files.
#[derive(Debug, thiserror::Error)]
#[error("the byte scan of {dir} failed: {problems}")]
pub struct ScanError {
    pub dir: PathBuf,
    pub problems: String,
}

impl Scan {
    /// A scan for the values in `forbidden`.
    pub fn forbidding(forbidden: &[&str]) -> Scan {
        Scan {
            forbidden: forbidden.iter().map(|s| s.to_string()).collect(),
            controls: Vec::new(),
        }
    }

    /// Adds a control the scan must find.
    pub fn control(mut self, control: Control) -> Scan {
        self.controls.push(control);
        self
    }

    /// Reads every file under `dir` and reports what it found.
    pub fn run(&self, dir: &Path) -> ScanReport {
        let mut report = ScanReport {
            uncontrolled: self.controls.is_empty(),
            ..ScanReport::default()
        };
        let (files, skipped, unreadable) = walk(dir);
        report.skipped = skipped;
        report.unreadable = unreadable;
        for file in files {
            let data = match std::fs::read(&file) {
                Ok(data) => data,
                Err(e) => {
                    report.unreadable.push((file, e.to_string()));
                    continue;
                }
            };
            report.bytes += data.len() as u64;
            for needle in &self.forbidden {
                if contains(&data, needle) {
                    report.hits.push((file.clone(), needle.clone()));
                }
            }
            for control in &self.controls {
                if control.matches(&file) && contains(&data, &control.needle) {
                    report.found.push((file.clone(), control.needle.clone()));
                }
            }
            report.files.push(file);
        }
        report.missing = self
            .controls
            .iter()
            .filter(|c| {
                !report
                    .found
                    .iter()
                    .any(|(file, needle)| needle == &c.needle && c.matches(file))
            })
            .cloned()
            .collect();
        report
    }

    /// Runs the scan and fails unless it is clean: no forbidden value, every
    /// file read, every control found.
    pub fn check(&self, dir: &Path) -> Result<ScanReport, ScanError> {
        let report = self.run(dir);
        report.verdict(dir)?;
        Ok(report)
    }
}

impl ScanReport {
    /// `Ok` when nothing forbidden was found, every file was read and every
    /// control was found.
    pub fn verdict(&self, dir: &Path) -> Result<(), ScanError> {
        let mut problems = Vec::new();
        if !self.hits.is_empty() {
            // The files only: the values stay in `hits`.
            let mut list: Vec<String> = self
                .hits
                .iter()
                .map(|(f, _)| f.display().to_string())
                .collect();
            list.dedup();
            problems.push(format!(
                "{} forbidden values found, in {}",
                self.hits.len(),
                list.join(", ")
            ));
        }
        if !self.unreadable.is_empty() {
            let list: Vec<String> = self
                .unreadable
                .iter()
                .map(|(f, why)| format!("{} ({why})", f.display()))
                .collect();
            problems.push(format!("could not read {}", list.join(", ")));
        }
        if self.uncontrolled {
            problems.push(
                "no control value was given, so a scan that saw nothing would pass; add one"
                    .to_string(),
            );
        }
        if !self.missing.is_empty() {
            let list: Vec<String> = self.missing.iter().map(Control::describe).collect();
            problems.push(format!(
                "the scan did not see its controls ({}), so it proves nothing",
                list.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScanError {
                dir: dir.to_path_buf(),
                problems: problems.join("; "),
            })
        }
    }

    /// The names of the files a control was found in, sorted, once each.
    pub fn control_files(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .found
            .iter()
            .filter_map(|(f, _)| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Every regular file (or link to one) under `dir`, sorted; the sockets,
/// pipes and devices skipped; the folders that could not be listed.
#[allow(clippy::type_complexity)]
fn walk(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let (mut files, mut skipped, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                unreadable.push((d, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    unreadable.push((d.clone(), e.to_string()));
                    continue;
                }
            };
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                // Links are read (a dangling one fails the read).
                Ok(t) if t.is_file() || t.is_symlink() => files.push(path),
                Ok(_) => skipped.push(path),
                Err(e) => unreadable.push((path, e.to_string())),
            }
        }
    }
    files.sort();
    skipped.sort();
    (files, skipped, unreadable)
}

/// Every file under `dir`, recursively (sockets and pipes left out).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walk(dir).0
}

/// The needle as UTF-8 and as UTF-16 (LE and BE).
pub fn encodings(needle: &str) -> Vec<Vec<u8>> {
    let le: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let be: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    vec![needle.as_bytes().to_vec(), le, be]
}

/// Whether `haystack` contains any encoding of `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    encodings(needle)
        .iter()
        .any(|enc| !enc.is_empty() && haystack.windows(enc.len()).any(|w| w == enc.as_slice()))
}

/// Files under `dir` containing any encoding of any needle: (file, needle).
/// Also returns how many files and bytes were scanned.
pub fn plaintext_hits(dir: &Path, needles: &[&str]) -> (Vec<(PathBuf, String)>, usize, u64) {
    hits_in(&files_under(dir), needles)
}

/// The files of the replica in a data dir: the database and its WAL,
/// shared-memory and journal files (`puente.db*`), not the lock or the
/// reveal audit log.
pub fn replica_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(data_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("puente.db"))
        })
        .collect()
}

/// Which of `files` contain any encoding of any needle: (file, needle),
/// and how many files and bytes were scanned.
pub fn hits_in(files: &[PathBuf], needles: &[&str]) -> (Vec<(PathBuf, String)>, usize, u64) {
    let mut hits = Vec::new();
    let mut bytes = 0u64;
    for file in files {
        let Ok(data) = std::fs::read(file) else {
            continue;
        };
        bytes += data.len() as u64;
        for needle in needles {
            if contains(&data, needle) {
                hits.push((file.clone(), needle.to_string()));
            }
        }
    }
    (hits, files.len(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn finds_utf8_and_utf16_forbidden_values_and_fails_on_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "xx María yy").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), utf16le("Ñandú")).unwrap();
        let control = plant_control(&dir.path().join("sub")).unwrap();
        let scan = Scan::forbidding(&["María", "Ñandú", "absent"]).control(control);
        let report = scan.run(dir.path());
        assert_eq!(report.files.len(), 3);
        assert_eq!(report.hits.len(), 2, "{:?}", report.hits);
        assert!(report.missing.is_empty());
        let e = report.verdict(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("2 forbidden values found") && e.contains("sub/b"),
            "{e}"
        );
        assert!(!e.contains("María") && !e.contains("Ñandú"), "{e}");
        // Without the forbidden values present, the same scan passes.
        std::fs::remove_file(dir.path().join("a")).unwrap();
        std::fs::remove_file(dir.path().join("sub/b")).unwrap();
        let report = scan.check(dir.path()).unwrap();
        assert_eq!(report.control_files(), [CONTROL_FILE]);
    }

    #[test]
    fn a_control_not_found_where_it_must_be_fails_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemon.log"), "row r1 written").unwrap();
        std::fs::write(dir.path().join("puente.db-wal"), utf16le("Shared Marker")).unwrap();
        // Found in the named file (UTF-16 too): passes.
        Scan::forbidding(&["secret"])
            .control(Control::in_file("daemon.log", "r1"))
            .control(Control::in_file("puente.db-wal", "Shared Marker"))
            .check(dir.path())
            .unwrap();
        // Present, but not in the file named: fails.
        let e = Scan::forbidding(&["secret"])
            .control(Control::in_file("puente.db-wal", "r1"))
            .check(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did not see its controls") && e.contains("puente.db-wal"),
            "{e}"
        );
        // No control at all: fails.
        let e = Scan::forbidding(&["secret"])
            .check(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no control value"), "{e}");
    }

    #[test]
    fn a_file_that_cannot_be_read_fails_the_scan_and_a_socket_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let control = plant_control(dir.path()).unwrap();
        let _socket =
            std::os::unix::net::UnixListener::bind(dir.path().join("admin.sock")).unwrap();
        let scan = Scan::forbidding(&["secret"]).control(control);
        let report = scan.check(dir.path()).unwrap();
        assert_eq!(report.skipped, [dir.path().join("admin.sock")]);
        // A link to nothing cannot be read (this holds for root too).
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("link")).unwrap();
        let e = scan.check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("could not read") && e.contains("link"), "{e}");
        std::fs::remove_file(dir.path().join("link")).unwrap();
        // A file without read permission, where permissions bind (not root).
        let locked = dir.path().join("locked");
        std::fs::write(&locked, "secret").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&locked).is_err() {
            let e = scan.check(dir.path()).unwrap_err().to_string();
            assert!(e.contains("could not read") && e.contains("locked"), "{e}");
        }
    }
}
