//! The edit log: `DATA_DIR/edits.log`, one JSON line per change made
//! through the web agenda or to the staff list — who (a staff member's
//! name and role, or the admin socket's uid), when, what (table, row id,
//! column names).
//!
//! Owns: the line format and appending lines durably before the change is
//! acknowledged (`append_durably`, as the reveal audit log).
//! Must not: write any value: column names only (the web never handles a
//! sealed value, and the log need not hold shared ones either).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::append_durably;

/// The edit log's file name inside the data dir.
pub const EDITS_FILE: &str = "edits.log";

/// Who made a change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Editor {
    /// A staff member logged in on the web agenda.
    Web { staff: String, role: String },
    /// A user of the admin socket.
    Socket { uid: u32, pid: Option<i32> },
}

/// One change.
#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    /// create, update, cancel, staff_add, staff_remove
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// For staff changes: the staff member's name and role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Serialize)]
struct EditLine<'a> {
    at: String,
    by: &'a Editor,
    #[serde(flatten)]
    edit: &'a Edit,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the edit log {}: {source}; the change was made but its author is not recorded. Make the data dir writable by the user puente runs as (and check free space)", path.display()
)]
pub struct EditLogError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug)]
pub struct EditLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl EditLog {
    pub fn new(data_dir: &Path) -> EditLog {
        EditLog {
            path: data_dir.join(EDITS_FILE),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line for `edit` by `by` at `at` (whole milliseconds, UTC).
    pub fn line(at: jiff::Timestamp, by: &Editor, edit: &Edit) -> String {
        let at = jiff::Timestamp::from_millisecond(at.as_millisecond())
            .unwrap_or(at)
            .to_string();
        // Strings and numbers only: serializing cannot fail.
        let mut text = serde_json::to_string(&EditLine { at, by, edit }).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Appends one line and syncs it. Blocking.
    pub fn record(
        &self,
        at: jiff::Timestamp,
        by: &Editor,
        edit: &Edit,
    ) -> Result<(), EditLogError> {
        append_durably(&self.path, &self.lock, Self::line(at, by, edit).as_bytes()).map_err(
            |source| EditLogError {
                path: self.path.clone(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_who_and_what_but_no_values() {
        let dir = tempfile::tempdir().unwrap();
        let log = EditLog::new(dir.path());
        let at: jiff::Timestamp = "2026-12-01T18:00:00.123456Z".parse().unwrap();
        let by = Editor::Web {
            staff: "editor-tj".into(),
            role: "editor".into(),
        };
        let edit = Edit {
            action: "update",
            table: Some("outreach_events".into()),
            id: Some("ev1".into()),
            columns: vec!["title".into(), "capacity".into()],
            staff: None,
            role: None,
        };
        log.record(at, &by, &edit).unwrap();
        log.record(
            at,
            &Editor::Socket {
                uid: 0,
                pid: Some(9),
            },
            &Edit {
                action: "staff_remove",
                table: None,
                id: None,
                columns: vec![],
                staff: Some("viewer-sd".into()),
                role: Some("viewer".into()),
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["at"], "2026-12-01T18:00:00.123Z");
        assert_eq!(lines[0]["by"]["via"], "web");
        assert_eq!(lines[0]["by"]["staff"], "editor-tj");
        assert_eq!(lines[0]["columns"][1], "capacity");
        assert_eq!(lines[1]["by"]["uid"], 0);
        assert_eq!(lines[1]["staff"], "viewer-sd");
        assert_eq!(crate::fsutil::mode_of(log.path()).unwrap(), 0o600);
    }
}
