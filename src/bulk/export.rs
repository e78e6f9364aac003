//! Export lines: one JSON object per row (`{"id": …, "column": value, …}`,
//! the shape `rows import` reads back), and the same rows as CSV for a
//! spreadsheet.
//!
//! Owns: writing a row as an export line (server) and turning export lines
//! into CSV records (client), in buffers wiped when dropped, with every
//! text cell that a spreadsheet would read as a formula made inert.
//! Must not: print or log anything, or decide which columns go out (the
//! admin route does).

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::api::{Cell, Columns, RowWrite};
use crate::secret_buf::{self, SecretBuf};
use crate::value::{Plaintext, Value};

/// One row as an export line (with its newline).
pub fn line(id: &str, cells: Vec<(String, Plaintext)>) -> serde_json::Result<SecretBuf> {
    let mut all = Vec::with_capacity(cells.len() + 1);
    all.push(("id".to_string(), Plaintext::text(id)));
    all.extend(cells);
    let mut out = secret_buf::to_json(&RowWrite(all))?;
    out.extend(b"\n");
    Ok(out)
}

/// Turns export lines into CSV: a header, then one record per line, in
/// the order of `columns` (`id` first).
pub struct CsvWriter {
    columns: Vec<String>,
}

impl CsvWriter {
    pub fn new(columns: Vec<String>) -> CsvWriter {
        CsvWriter { columns }
    }

    /// The header record.
    pub fn header(&self) -> Vec<u8> {
        record(self.columns.iter().map(|c| c.as_bytes()))
    }

    /// One export line as a CSV record; an error says what is wrong with
    /// the line, never what it holds.
    pub fn record(&self, json: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let row: Columns = serde_json::from_slice(json).map_err(|e| {
            format!(
                "the daemon sent an export line this client cannot read ({})",
                e.classify_text()
            )
        })?;
        let mut fields: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let text = match row.get(column) {
                Some(Cell::Value(p)) => match p.expose() {
                    Value::Null => Vec::new(),
                    // Ids are letters, digits, `-`, `_`, `.` and `~`:
                    // no formula can call anything, and they must import
                    // back as they are.
                    Value::Text(t) if column == "id" => t.as_bytes().to_vec(),
                    Value::Text(t) => inert(t.as_bytes()),
                    Value::Integer(i) => i.to_string().into_bytes(),
                    Value::Real(r) => r.to_string().into_bytes(),
                    Value::Blob(b) => inert(
                        base64::engine::general_purpose::STANDARD
                            .encode(b)
                            .as_bytes(),
                    ),
                },
                Some(Cell::Sealed) | None => Vec::new(),
            };
            fields.push(Zeroizing::new(text));
        }
        Ok(Zeroizing::new(record(fields.iter().map(|f| f.as_slice()))))
    }
}

/// The first bytes a spreadsheet reads as the start of a formula (OWASP's
/// CSV injection list): `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_START: &[u8] = b"=+-@\t\r";

/// A text cell made inert for a spreadsheet: one starting like a formula
/// gets a `'` in front (OWASP's advice), so `=HYPERLINK(…)` shows as
/// text and a number typed as text, such as `-5`, comes out as `'-5`.
/// Numbers stored as numbers are written as they are.
pub fn inert(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    if text.first().is_some_and(|b| FORMULA_START.contains(b)) {
        out.push(b'\'');
    }
    out.extend_from_slice(text);
    out
}

/// One CSV record (RFC 4180: a field holding a comma, quote, CR or LF is
/// quoted, quotes doubled), ending in a newline.
fn record<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let quote = field
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
            || field.first().is_some_and(u8::is_ascii_whitespace)
            || field.last().is_some_and(u8::is_ascii_whitespace);
        if quote {
            out.push(b'"');
            for b in field {
                if *b == b'"' {
                    out.push(b'"');
                }
                out.push(*b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(field);
        }
    }
    out.push(b'\n');
    out
}

/// serde_json's error kinds in words (its messages may quote the input).
trait Classify {
    fn classify_text(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "a read error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not a row",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_read_back_as_csv_in_column_order() {
        let l = line(
            "e1",
            vec![
                ("title".into(), Plaintext::text("Taller, \"uno\"")),
                ("capacity".into(), Plaintext::new(Value::Integer(25))),
                ("notes".into(), Plaintext::new(Value::Null)),
            ],
        )
        .unwrap();
        let text = String::from_utf8(l.as_slice().to_vec()).unwrap();
        assert_eq!(
            text,
            "{\"id\":\"e1\",\"title\":\"Taller, \\\"uno\\\"\",\"capacity\":25,\"notes\":null}\n"
        );
        let w = CsvWriter::new(vec![
            "id".into(),
            "capacity".into(),
            "title".into(),
            "notes".into(),
        ]);
        assert_eq!(w.header(), b"id,capacity,title,notes\n");
        let rec = w.record(l.as_slice().trim_ascii_end()).unwrap();
        assert_eq!(
            String::from_utf8(rec.to_vec()).unwrap(),
            "e1,25,\"Taller, \"\"uno\"\"\",\n"
        );
        // The csv crate reads it back as written.
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(rec.as_slice());
        let got = r.records().next().unwrap().unwrap();
        assert_eq!(&got[2], "Taller, \"uno\"");
        let e = w.record(b"{\"id\": Secreto}").unwrap_err();
        assert!(!e.contains("Secreto"), "{e}");
    }

    #[test]
    fn cells_that_start_like_a_formula_come_out_inert() {
        let hostile = "=HYPERLINK(\"http://127.0.0.1/?\"&A1,\"Ver\")";
        let l = line(
            "-e1",
            vec![
                ("title".into(), Plaintext::text(hostile)),
                ("a".into(), Plaintext::text("+1")),
                ("b".into(), Plaintext::text("-5")),
                ("c".into(), Plaintext::text("@SUM(A1)")),
                ("d".into(), Plaintext::text("\t=1")),
                ("e".into(), Plaintext::text("\r=1")),
                ("n".into(), Plaintext::new(Value::Integer(-5))),
                ("r".into(), Plaintext::new(Value::Real(-0.5))),
                ("plain".into(), Plaintext::text("Taller = bueno")),
                ("blob".into(), Plaintext::new(Value::Blob(vec![0xfb, 0xff]))),
            ],
        )
        .unwrap();
        let columns = [
            "id", "title", "a", "b", "c", "d", "e", "n", "r", "plain", "blob",
        ];
        let w = CsvWriter::new(columns.iter().map(|c| c.to_string()).collect());
        let rec = w.record(l.as_slice().trim_ascii_end()).unwrap();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(rec.as_slice());
        let got = r.records().next().unwrap().unwrap();
        let got: Vec<&str> = got.iter().collect();
        assert_eq!(
            got,
            [
                "-e1",
                &format!("'{hostile}"),
                "'+1",
                "'-5",
                "'@SUM(A1)",
                "'\t=1",
                "'\r=1",
                "-5",
                "-0.5",
                "Taller = bueno",
                "'+/8=",
            ]
        );
    }
}
