//! Owns: reading an import file on the client: CSV with a header line (`id`
//! and column names), or JSON Lines (one object per line, `id` among its
//! keys), into rows with the line each came from, and the problems of lines
//! that cannot be read at all.
//!
//! In CSV every value is text and an empty cell is left out (the column
//! keeps its value; a new row's stays empty); JSON Lines keep numbers as
//! numbers and `null` clears a cell.
//! Must not: put a value into a problem or an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{MAX_IMPORT_BYTES, Problems};
use crate::api::RowWrite;
use crate::value::{Plaintext, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// The format `given` (csv or jsonl), else the one the file name says.
    pub fn of(path: &Path, given: Option<&str>) -> Result<Format, String> {
        let named = |name: &str| match name.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        };
        match given {
            Some(g) => named(g).ok_or_else(|| {
                format!("unknown format `{g}`; give --format csv or --format jsonl")
            }),
            None => path
                .extension()
                .and_then(|e| e.to_str())
                .and_then(named)
                .ok_or_else(|| {
                    format!(
                        "cannot tell the format of {} from its name; give --format csv or --format jsonl",
                        path.display()
                    )
                }),
        }
    }
}

/// A header or a row, in file order.
#[derive(Debug)]
pub enum Entry {
    /// A CSV header: every column name, `id` among them.
    Header { line: u64, columns: Vec<String> },
    Row {
        line: u64,
        id: String,
        cells: Vec<(String, Plaintext)>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}; check the path and that you may read it", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is larger than {} MiB, more than one import takes; split it into parts (each part is written whole or not at all)", path.display(), MAX_IMPORT_BYTES >> 20)]
    TooLarge { path: PathBuf },
    /// What the caller's `each` failed with (e.g. the daemon went away).
    #[error("{0}")]
    Stopped(String),
}

/// Reads `path`, handing every header and row to `each` in order; returns
/// the problems of the lines that could not be read.
pub fn read(
    path: &Path,
    format: Format,
    each: &mut dyn FnMut(Entry) -> Result<(), String>,
) -> Result<Problems, FileError> {
    let io = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_IMPORT_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    // The whole file, in a buffer wiped when dropped.
    let mut data = Zeroizing::new(Vec::with_capacity(size as usize));
    BufReader::new(file).read_to_end(&mut data).map_err(io)?;
    match format {
        Format::Csv => read_csv(path, &data, each),
        Format::Jsonl => read_jsonl(path, &data[..], each),
    }
}

fn read_csv(
    path: &Path,
    input: &[u8],
    each: &mut dyn FnMut(Entry) -> Result<(), String>,
) -> Result<Problems, FileError> {
    let mut problems = Problems::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    // The header line.
    let header_line = match reader.read_byte_record(&mut record) {
        Ok(true) => record.position().map_or(1, |p| p.line()),
        Ok(false) => {
            problems.push(
                1,
                None,
                "the file is empty; the first line must name the columns, `id` among them",
            );
            return Ok(problems);
        }
        Err(e) => return Err(csv_error(path, e)),
    };
    let mut columns = Vec::with_capacity(record.len());
    let mut header_ok = true;
    for (i, name) in record.iter().enumerate() {
        let name = String::from_utf8_lossy(name).trim().to_string();
        if name.is_empty() {
            problems.push(
                header_line,
                None,
                format!("column {} of the header has no name", i + 1),
            );
            header_ok = false;
        } else if columns.contains(&name) {
            problems.push(
                header_line,
                Some(&name),
                "the header names this column twice",
            );
            header_ok = false;
        }
        columns.push(name);
    }
    let Some(id_at) = columns.iter().position(|c| c == "id") else {
        problems.push(
            header_line,
            None,
            "the header has no `id` column; the first line must name the columns, `id` among them",
        );
        return Ok(problems);
    };
    if !header_ok {
        return Ok(problems);
    }
    each(Entry::Header {
        line: header_line,
        columns: columns.clone(),
    })
    .map_err(FileError::Stopped)?;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = start_line(input, record.position());
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // a blank line
        }
        if record.len() != columns.len() {
            problems.push(
                line,
                None,
                format!(
                    "the line has {} cells and the header {}; quote cells that hold commas (\"a, b\")",
                    record.len(),
                    columns.len()
                ),
            );
            continue;
        }
        let mut id = None;
        let mut cells = Vec::new();
        let mut bad = false;
        for (i, field) in record.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(field) else {
                problems.push(line, Some(&columns[i]), "the cell is not UTF-8 text; save the file as UTF-8 (in a spreadsheet: CSV UTF-8)");
                bad = true;
                continue;
            };
            if i == id_at {
                id = Some(text.trim().to_string());
            } else if !text.is_empty() {
                cells.push((
                    columns[i].clone(),
                    Plaintext::new(Value::Text(text.to_string())),
                ));
            }
        }
        // The record's buffer held this row's values: wipe it.
        wipe(&mut record);
        match id {
            Some(id) if !id.is_empty() => {
                if !bad {
                    each(Entry::Row { line, id, cells }).map_err(FileError::Stopped)?;
                }
            }
            _ => problems.push(
                line,
                Some("id"),
                "the row has no id; every row needs one (a random UUID is best)",
            ),
        }
    }
    Ok(problems)
}

/// The line a record starts on. The csv reader gives the position where
/// it started reading, before any blank lines it skipped: skip them too.
fn start_line(input: &[u8], position: Option<&csv::Position>) -> u64 {
    let Some(p) = position else { return 0 };
    let skipped = input
        .get(p.byte() as usize..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|b| **b == b'\n')
        .count();
    p.line() + skipped as u64
}

/// Overwrites the bytes a CSV record holds before it is reused.
fn wipe(record: &mut csv::ByteRecord) {
    let fields = record.len();
    let lengths: Vec<usize> = record.iter().map(<[u8]>::len).collect();
    record.clear();
    for len in lengths.into_iter().take(fields) {
        record.push_field(&vec![0; len]);
    }
    record.clear();
}

fn csv_error(path: &Path, e: csv::Error) -> FileError {
    let line = e.position().map_or(0, |p| p.line());
    FileError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("not readable as CSV at line {line}")),
    }
}

fn read_jsonl(
    path: &Path,
    mut input: impl BufRead,
    each: &mut dyn FnMut(Entry) -> Result<(), String>,
) -> Result<Problems, FileError> {
    let mut problems = Problems::default();
    let mut buf = Zeroizing::new(Vec::new());
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| FileError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let row = match serde_json::from_slice::<RowWrite>(text) {
            Ok(row) => row,
            Err(e) if e.is_data() => {
                let text = e.to_string();
                let reason = text
                    .rsplit_once(" at line ")
                    .map_or(text.clone(), |(m, _)| m.to_string());
                problems.push(line, None, reason);
                continue;
            }
            Err(e) => {
                problems.push(
                    line,
                    None,
                    format!("not a JSON object on one line ({e}); write one object per line, e.g. {{\"id\": \"r-0001\", \"status\": \"new\"}}"),
                );
                continue;
            }
        };
        let mut cells = row.0;
        let Some(at) = cells.iter().position(|(c, _)| c == "id") else {
            problems.push(
                line,
                Some("id"),
                "the row has no \"id\"; every row needs one (a random UUID is best)",
            );
            continue;
        };
        let (_, id) = cells.remove(at);
        match id.expose() {
            Value::Text(id) if !id.is_empty() => {
                let id = id.clone();
                each(Entry::Row { line, id, cells }).map_err(FileError::Stopped)?;
            }
            _ => problems.push(
                line,
                Some("id"),
                "the id must be text, e.g. \"id\": \"r-0001\"",
            ),
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &Value) -> String {
        match v {
            Value::Text(t) => format!("Text({t:?})"),
            Value::Integer(i) => format!("Integer({i})"),
            Value::Null => "Null".into(),
            _ => "other".into(),
        }
    }

    fn read_text(format: Format, text: &str) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, text).unwrap();
        let mut seen = Vec::new();
        let problems = read(&path, format, &mut |e| {
            seen.push(match e {
                Entry::Header { line, columns } => format!("{line}: header {}", columns.join("|")),
                Entry::Row { line, id, cells } => format!(
                    "{line}: {id} {}",
                    cells
                        .iter()
                        .map(|(c, v)| format!("{c}={}", show(v.expose())))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
            Ok(())
        })
        .unwrap();
        (
            seen,
            problems.listed.iter().map(|p| p.to_string()).collect(),
        )
    }

    #[test]
    fn csv_rows_keep_their_lines_and_leave_empty_cells_out() {
        let (rows, problems) = read_text(
            Format::Csv,
            "\u{feff}id,title,capacity\ne1,\"Taller, parte 1\",25\n\ne2,\"Dos\nlíneas\",\ne3,Solo\n,Sin id,3\ne4,x,1\n",
        );
        assert_eq!(rows[0], "1: header id|title|capacity");
        assert_eq!(
            rows[1],
            "2: e1 title=Text(\"Taller, parte 1\") capacity=Text(\"25\")"
        );
        assert_eq!(rows[2], "4: e2 title=Text(\"Dos\\nlíneas\")");
        assert_eq!(
            rows[3], "8: e4 title=Text(\"x\") capacity=Text(\"1\")",
            "{rows:#?}"
        );
        assert_eq!(
            problems,
            [
                "line 6: the line has 2 cells and the header 3; quote cells that hold commas (\"a, b\")",
                "line 7, column id: the row has no id; every row needs one (a random UUID is best)",
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn a_csv_header_without_id_or_with_twice_a_name_stops_there() {
        let (rows, problems) = read_text(Format::Csv, "title,capacity\nx,1\n");
        assert!(rows.is_empty());
        assert_eq!(
            problems,
            [
                "line 1: the header has no `id` column; the first line must name the columns, `id` among them"
            ]
        );
        let (rows, problems) = read_text(Format::Csv, "id,title,title\na,b,c\n");
        assert!(rows.is_empty());
        assert_eq!(
            problems,
            ["line 1, column title: the header names this column twice"]
        );
    }

    #[test]
    fn jsonl_rows_keep_types_and_bad_lines_say_why_without_values() {
        let (rows, problems) = read_text(
            Format::Jsonl,
            "{\"id\": \"e1\", \"title\": \"Taller\", \"capacity\": 25}\n\n{\"title\": \"sin id\"}\n{\"id\": 7, \"title\": \"x\"}\nnot json Secreto\n{\"id\": \"e5\", \"phone\": {\"n\": \"Secreto\"}}\n{\"id\": \"e6\", \"phone\": null}",
        );
        assert_eq!(
            rows,
            [
                "1: e1 title=Text(\"Taller\") capacity=Integer(25)",
                "7: e6 phone=Null",
            ]
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_eq!(
            problems[0],
            "line 3, column id: the row has no \"id\"; every row needs one (a random UUID is best)"
        );
        assert_eq!(
            problems[1],
            "line 4, column id: the id must be text, e.g. \"id\": \"r-0001\""
        );
        assert!(
            problems[2].starts_with("line 5: not a JSON object on one line"),
            "{}",
            problems[2]
        );
        assert_eq!(
            problems[3],
            "line 6: column phone: a value must be a string, a number or null"
        );
        assert!(!problems.iter().any(|p| p.contains("Secreto")));
    }

    #[test]
    fn the_format_comes_from_the_flag_or_the_name() {
        assert_eq!(Format::of(Path::new("a.CSV"), None), Ok(Format::Csv));
        assert_eq!(Format::of(Path::new("a.ndjson"), None), Ok(Format::Jsonl));
        assert_eq!(
            Format::of(Path::new("a.txt"), Some("jsonl")),
            Ok(Format::Jsonl)
        );
        assert!(
            Format::of(Path::new("a.txt"), None)
                .unwrap_err()
                .contains("--format csv")
        );
        assert!(
            Format::of(Path::new("a.csv"), Some("xlsx"))
                .unwrap_err()
                .contains("unknown format")
        );
    }
}
