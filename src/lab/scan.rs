//! Byte scans of a folder for plaintext: the check behind "sealed means
//! sealed" in the demo and the tests.
//!
//! Owns: walking every file under a folder and searching it for needles
//! in UTF-8 and UTF-16 (little and big endian).
//! Must not: print the needles anywhere but in its result.

use std::path::{Path, PathBuf};

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
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

    #[test]
    fn finds_utf8_and_utf16() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "xx María yy").unwrap();
        let utf16: Vec<u8> = "Ñandú"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), utf16).unwrap();
        let (hits, files, _) = plaintext_hits(dir.path(), &["María", "Ñandú", "absent"]);
        assert_eq!(files, 2);
        assert_eq!(hits.len(), 2, "{hits:?}");
    }
}
