//! How rows read in a terminal: `rows get` as a block of `column  value`
//! lines, `rows list` as a table with one row per line; both say when a
//! row last changed (local time) and which office wrote it. The raw clock
//! stays in `--json`.
//!
//! Owns: the layout (alignment, truncation of long cells in the table,
//! escaping control characters, the sealed mark) for a given time zone.
//! Must not: read the clock, the zone or the socket (the caller passes
//! them), or leave a revealed value outside a wiped buffer.

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use zeroize::Zeroizing;

use crate::api::{Cell, Row};
use crate::clock::Hlc;
use crate::value::Value;

/// How a sealed cell that was not revealed is shown.
pub const SEALED_MARK: &str = "‹sealed›";

/// The widest a table cell gets (characters; an RFC 3339 date with its
/// offset fits); longer text ends in "…". Row ids are never cut.
pub const MAX_CELL: usize = 25;

/// "2026-12-01 10:32:05 PST", from a row's `updated` clock.
pub fn local_time(updated: &str, tz: &TimeZone, seconds: bool) -> String {
    let Ok(hlc) = updated.parse::<Hlc>() else {
        return updated.to_string();
    };
    let Ok(at) = jiff::Timestamp::from_millisecond(hlc.millis() as i64) else {
        return updated.to_string();
    };
    let format = if seconds {
        "%Y-%m-%d %H:%M:%S %Z"
    } else {
        "%Y-%m-%d %H:%M %Z"
    };
    at.to_zoned_datetime(tz.clone())
        .strftime(format)
        .to_string()
}

/// The office that wrote a row's newest version: its name when the daemon
/// knows it, else the start of its site id.
pub fn writer(row: &Row) -> String {
    match (&row.updated_office, &row.updated_by) {
        (Some(office), _) => office.clone(),
        (None, Some(site)) => format!("site {}", site.get(..8).unwrap_or(site)),
        (None, None) => "an unknown office".to_string(),
    }
}

/// A row as a block of `column  value` lines under a `table/id` heading.
pub fn render_row(out: &mut String, table: &str, row: &Row, tz: &TimeZone) {
    let _ = writeln!(
        out,
        "{table}/{}  (updated {} by {})",
        row.id,
        local_time(&row.updated, tz, true),
        writer(row)
    );
    let width = row
        .columns
        .0
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0);
    for (column, cell) in &row.columns.0 {
        let _ = write!(out, "  {column:width$}  ");
        match cell {
            Cell::Sealed => out.push_str(SEALED_MARK),
            Cell::Value(p) => render_value(out, p.expose(), width + 4),
        }
        out.push('\n');
    }
}

/// A value for a terminal: text as is (control characters escaped, further
/// lines indented), numbers, `(none)` for null, the size of a blob.
fn render_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("(none)"),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(r) => {
            let _ = write!(out, "{r}");
        }
        Value::Blob(b) => {
            let _ = write!(out, "<{} bytes>", b.len());
        }
        Value::Text(t) => {
            for c in t.chars() {
                match c {
                    '\n' => {
                        out.push('\n');
                        out.extend(std::iter::repeat_n(' ', indent));
                    }
                    '\t' => out.push('\t'),
                    c if c.is_control() => {
                        let _ = write!(out, "\\u{{{:x}}}", c as u32);
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

/// A cell on one line: line breaks and tabs as spaces, other control
/// characters escaped, cut to `MAX_CELL` characters.
fn table_cell(cell: &Cell) -> Zeroizing<String> {
    let mut flat = Zeroizing::new(String::new());
    match cell {
        Cell::Sealed => flat.push_str(SEALED_MARK),
        Cell::Value(p) => match p.expose() {
            Value::Null => {}
            Value::Integer(i) => {
                let _ = write!(flat, "{i}");
            }
            Value::Real(r) => {
                let _ = write!(flat, "{r}");
            }
            Value::Blob(b) => {
                let _ = write!(flat, "<{} bytes>", b.len());
            }
            Value::Text(t) => {
                for c in t.chars() {
                    match c {
                        '\n' | '\r' | '\t' => flat.push(' '),
                        c if c.is_control() => {
                            let _ = write!(flat, "\\u{{{:x}}}", c as u32);
                        }
                        c => flat.push(c),
                    }
                }
            }
        },
    }
    cut(flat)
}

fn cut(text: Zeroizing<String>) -> Zeroizing<String> {
    if text.chars().count() <= MAX_CELL {
        return text;
    }
    let mut out = Zeroizing::new(String::with_capacity(MAX_CELL * 4));
    out.extend(text.chars().take(MAX_CELL - 1));
    out.push('…');
    out
}

/// Rows as a table: a header line (id, the columns, updated, by), then one
/// line per row, cells padded to their column's width.
pub fn render_table(out: &mut String, rows: &[Row], tz: &TimeZone) {
    let Some(first) = rows.first() else {
        return;
    };
    let columns: Vec<&str> = first.columns.0.iter().map(|(c, _)| c.as_str()).collect();
    let mut lines: Vec<Vec<Zeroizing<String>>> = Vec::with_capacity(rows.len() + 1);
    let header = std::iter::once("id")
        .chain(columns.iter().copied())
        .chain(["updated", "by"])
        .map(|h| Zeroizing::new(h.to_string()))
        .collect();
    lines.push(header);
    for row in rows {
        let mut line = vec![Zeroizing::new(row.id.clone())];
        for column in &columns {
            line.push(match row.cell(column) {
                Some(cell) => table_cell(cell),
                None => Zeroizing::new(String::new()),
            });
        }
        line.push(Zeroizing::new(local_time(&row.updated, tz, false)));
        line.push(cut(Zeroizing::new(writer(row))));
        lines.push(line);
    }
    let mut widths = vec![0; columns.len() + 3];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in &lines {
        let start = out.len();
        for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        let trimmed = out[start..].trim_end().len();
        out.truncate(start + trimmed);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Columns;
    use crate::value::Plaintext;

    fn pacific() -> TimeZone {
        TimeZone::posix("PST8PDT,M3.2.0,M11.1.0").unwrap()
    }

    /// 2026-12-01T18:32:05Z as an HLC.
    fn updated() -> String {
        let ms = "2026-12-01T18:32:05Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        Hlc::from_parts(ms as u64, 3).to_string()
    }

    fn row(id: &str, status: &str, office: Option<&str>) -> Row {
        Row {
            id: id.into(),
            updated: updated(),
            updated_by: Some("0123456789abcdef0123456789abcdef".into()),
            updated_office: office.map(Into::into),
            columns: Columns(vec![
                ("status".into(), Cell::Value(Plaintext::text(status))),
                ("full_name".into(), Cell::Sealed),
                ("phone".into(), Cell::Value(Plaintext::new(Value::Null))),
            ]),
        }
    }

    #[test]
    fn a_row_says_when_in_local_time_and_which_office() {
        let mut out = String::new();
        render_row(
            &mut out,
            "residents",
            &row("r1", "a\u{1b}[31m\nb", Some("tijuana")),
            &pacific(),
        );
        assert_eq!(
            out,
            "residents/r1  (updated 2026-12-01 10:32:05 PST by tijuana)\n  status     a\\u{1b}[31m\n             b\n  full_name  ‹sealed›\n  phone      (none)\n"
        );
        assert!(
            !out.contains(&updated()),
            "the raw clock is for --json only"
        );
        let mut out = String::new();
        render_row(&mut out, "residents", &row("r1", "x", None), &pacific());
        assert!(
            out.starts_with("residents/r1  (updated 2026-12-01 10:32:05 PST by site 01234567)"),
            "{out}"
        );
    }

    #[test]
    fn a_list_is_a_table_with_one_row_per_line() {
        let rows = vec![
            row("r1", "arrived", Some("tijuana")),
            row(
                "r2-with-a-long-id",
                "a status that goes on and on\nand on",
                Some("san-diego"),
            ),
        ];
        let mut out = String::new();
        render_table(&mut out, &rows, &pacific());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(
            lines[0],
            "id                 status                     full_name  phone  updated               by"
        );
        assert_eq!(
            lines[1],
            "r1                 arrived                    ‹sealed›          2026-12-01 10:32 PST  tijuana"
        );
        assert_eq!(
            lines[2],
            "r2-with-a-long-id  a status that goes on an…  ‹sealed›          2026-12-01 10:32 PST  san-diego"
        );
    }
}
