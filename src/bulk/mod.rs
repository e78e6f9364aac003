//! Bulk import and export of a table's rows: spreadsheets in, spreadsheets
//! out.
//!
//! Owns: the wire shapes both sides share (`ImportLine`, `ImportProblem`,
//! `ImportReport`, the export's headers), the limits of one import, the checks of an import
//! against the schema without IO (`check`), reading CSV and JSON Lines
//! files on the client (`files`), and writing export lines as CSV or JSON
//! Lines (`export`).
//! Must not: touch SQLite or sockets (the admin routes and the CLI do), or
//! put a value into a problem, except a shared value that does not fit
//! its column's type.

pub mod check;
pub mod export;
pub mod files;

use serde::{Deserialize, Serialize};

use crate::api::RowWrite;

/// Rows one import may hold: all of them are held in memory until the one
/// transaction that writes them.
pub const MAX_IMPORT_ROWS: u64 = 200_000;
/// Bytes of one line of the import stream (one row).
pub const MAX_IMPORT_LINE: usize = 1 << 20;
/// Bytes of the whole import stream.
pub const MAX_IMPORT_BYTES: u64 = 256 << 20;
/// Problems listed in a report; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

/// Headers of an export: its columns (id first), the live rows when it
/// began, and sealed columns left out for want of reveal.
pub const COLUMNS_HEADER: &str = "x-puente-columns";
pub const ROWS_HEADER: &str = "x-puente-rows";
pub const LEFT_OUT_HEADER: &str = "x-puente-left-out";

/// One line of an import stream: the header of a CSV file (its column
/// names, `id` among them), or one row with the line of the file it came
/// from.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportLine {
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<RowWrite>,
}

/// A bad line of an import file: where, and why in words. Never a value
/// of a sealed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProblem {
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// What an import did: every row written (`written`), or nothing and the
/// problems why. Also the body of a refused import (HTTP 422), with the
/// `error` and `status` every error body has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub table: String,
    /// Rows in the file.
    pub rows: u64,
    pub written: bool,
    /// The replica's head sequence after the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ImportProblem>,
    /// Problems found beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_problems: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Problems gathered while reading, the first `MAX_PROBLEMS` kept in line
/// order and the rest counted.
#[derive(Debug, Default)]
pub struct Problems {
    pub listed: Vec<ImportProblem>,
    pub more: u64,
}

impl Problems {
    pub fn push(&mut self, line: u64, column: Option<&str>, reason: impl Into<String>) {
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(ImportProblem {
                line,
                column: column.map(str::to_string),
                reason: reason.into(),
            });
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// All of them, as the sentence of an error: nothing was written, and
    /// each bad line.
    pub fn sentence(&self, file: &str) -> String {
        let n = self.listed.len() as u64 + self.more;
        let mut text = format!(
            "{file} has {n} bad {}; nothing was written. Fix {} and import the whole file again:",
            if n == 1 { "line" } else { "lines" },
            if n == 1 { "it" } else { "them" },
        );
        for p in &self.listed {
            text.push_str(&format!("\n  {p}"));
        }
        if self.more > 0 {
            text.push_str(&format!("\n  … and {} more", self.more));
        }
        text
    }
}
