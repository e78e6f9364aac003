//! The reveal audit log: `DATA_DIR/audit.log`, one JSON line per sealed
//! cell revealed through the admin socket — who (uid and pid from the
//! socket's peer credentials), when, which table, row and column — and one
//! line per export that reveals: who, when, which table, which columns and
//! how many rows.
//!
//! Owns: appending those lines (O_APPEND, mode 0600 when created) and
//! making them durable (fsync) before the caller answers the request.
//! Must not: ever write a value, or let a reveal be answered when the line
//! could not be written (the caller fails the request instead).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::append_durably;

/// The audit log's file name inside the data dir.
pub const AUDIT_FILE: &str = "audit.log";

/// Who asked, from the Unix socket's peer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// One revealed cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedCell {
    pub id: String,
    pub column: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the reveal audit log {}: {source}; nothing was revealed. Make the data dir writable by the user puente runs as (and check free space)", path.display()
)]
pub struct AuditError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// One line of the audit log.
#[derive(Serialize)]
struct RevealLine<'a> {
    at: &'a str,
    uid: u32,
    pid: Option<i32>,
    table: &'a str,
    id: &'a str,
    column: &'a str,
}

/// The append-only reveal log of one node.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// Serialises writers in this process (each record is one `write`).
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            path: data_dir.join(AUDIT_FILE),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per revealed cell of `table` and syncs the file.
    /// Blocking: call it from a blocking thread. The file is opened for each
    /// record, so log rotation by moving the file is safe.
    pub fn record(
        &self,
        caller: Caller,
        table: &str,
        cells: &[RevealedCell],
    ) -> Result<(), AuditError> {
        if cells.is_empty() {
            return Ok(());
        }
        let now = jiff::Timestamp::now();
        let at = jiff::Timestamp::from_millisecond(now.as_millisecond())
            .unwrap_or(now)
            .to_string();
        let mut text = Vec::with_capacity(cells.len() * 128);
        for cell in cells {
            let line = RevealLine {
                at: &at,
                uid: caller.uid,
                pid: caller.pid,
                table,
                id: &cell.id,
                column: &cell.column,
            };
            // Serializing plain strings and integers into a Vec cannot fail.
            serde_json::to_writer(&mut text, &line).map_err(|e| self.error(e.into()))?;
            text.push(b'\n');
        }
        append_durably(&self.path, &self.lock, &text).map_err(|e| self.error(e))
    }

    /// Appends the line of an export that reveals `columns` of `table`
    /// (about `rows` rows: the live rows when it began) and syncs it.
    /// Blocking.
    pub fn record_export(
        &self,
        caller: Caller,
        table: &str,
        columns: &[String],
        rows: u64,
    ) -> Result<(), AuditError> {
        #[derive(Serialize)]
        struct Export<'a> {
            at: &'a str,
            uid: u32,
            pid: Option<i32>,
            table: &'a str,
            export: bool,
            columns: &'a [String],
            rows: u64,
        }
        let now = jiff::Timestamp::now();
        let at = jiff::Timestamp::from_millisecond(now.as_millisecond())
            .unwrap_or(now)
            .to_string();
        let mut text = serde_json::to_vec(&Export {
            at: &at,
            uid: caller.uid,
            pid: caller.pid,
            table,
            export: true,
            columns,
            rows,
        })
        .map_err(|e| self.error(e.into()))?;
        text.push(b'\n');
        append_durably(&self.path, &self.lock, &text).map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> AuditError {
        AuditError {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        let caller = Caller {
            uid: 1000,
            pid: Some(42),
        };
        let cells = [
            RevealedCell {
                id: "r1".into(),
                column: "full_name".into(),
            },
            RevealedCell {
                id: "r1".into(),
                column: "phone".into(),
            },
        ];
        log.record(caller, "residents", &cells).unwrap();
        log.record(caller, "residents", &cells[..1]).unwrap();
        log.record(caller, "residents", &[]).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["column"], "phone");
        assert_eq!(lines[0]["uid"], 1000);
        assert_eq!(lines[0]["pid"], 42);
        assert_eq!(lines[0]["table"], "residents");
        let at = lines[0]["at"].as_str().unwrap();
        assert!(
            at.parse::<jiff::Timestamp>().is_ok() && at.ends_with('Z'),
            "{at}"
        );
        assert_eq!(crate::fsutil::mode_of(log.path()).unwrap(), 0o600);
    }

    #[test]
    fn an_unwritable_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("missing"));
        let cells = [RevealedCell {
            id: "r1".into(),
            column: "phone".into(),
        }];
        let e = log
            .record(Caller { uid: 1, pid: None }, "residents", &cells)
            .unwrap_err();
        assert!(e.to_string().contains("audit.log"), "{e}");
    }
}
