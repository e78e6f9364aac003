//! The JSON shapes of the admin API, shared by the server (admin/), its
//! client (admin/client.rs) and the bulk import and export (bulk/), so
//! every side agrees; below all of them.
//!
//! Owns: request and response bodies (those of the held-changes, the
//! maintenance and the staff endpoints in `held`, `maintenance` and
//! `staff`), the encoding of a cell (shared value,
//! `{"sealed": true}`, a revealed value, `{"base64": …}` for blobs) and the
//! parsing of written values straight into `Plaintext`.
//! Must not: hold a value outside `Plaintext` (no intermediate
//! `serde_json::Value`), or put a value into an error message: every
//! visitor here overrides serde's defaults, which quote the offending input.

pub mod held;
pub mod maintenance;
pub mod staff;

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::value::{Plaintext, Value};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub node: String,
}

/// What a put or delete did: the row id, the write's HLC and the replica's
/// head sequence after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    pub id: String,
    pub hlc: String,
    pub seq: u64,
}

/// `{"ok": true}` (e.g. `POST /v1/sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ok: bool,
}

/// Every error response: a sentence saying what to do, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
}

/// `GET /v1/tables/{table}/rows`: one page, and the id to pass as `after`
/// for the next (null on the last page).
#[derive(Debug, Serialize, Deserialize)]
pub struct RowsPage {
    pub rows: Vec<Row>,
    pub next: Option<String>,
}

/// One live row: its id, its newest cell version, its cells in the schema
/// file's column order.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    /// The newest cell version (HLC, `MILLIS.LOGICAL`).
    pub updated: String,
    /// The site id that wrote that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// The office of that site, when the daemon knows it (itself, or a
    /// peer it has talked to since it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_office: Option<String>,
    pub columns: Columns,
}

impl Row {
    pub fn cell(&self, column: &str) -> Option<&Cell> {
        self.columns.get(column)
    }
}

/// The cells of a row, in order (a JSON object whose key order is kept).
#[derive(Debug, Default)]
pub struct Columns(pub Vec<(String, Cell)>);

impl Columns {
    pub fn get(&self, column: &str) -> Option<&Cell> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

/// One cell as the API shows it.
#[derive(Debug, PartialEq)]
pub enum Cell {
    /// A sealed value not revealed: `{"sealed": true}`.
    Sealed,
    /// A shared value, a revealed sealed value, or null (never written).
    Value(Plaintext),
}

/// The body of `PUT /v1/tables/{table}/rows/{id}`: the columns to write,
/// in the order given.
#[derive(Debug, Default)]
pub struct RowWrite(pub Vec<(String, Plaintext)>);

/// The message for a value of the wrong JSON type.
fn wrong_type(column: &str) -> String {
    format!("column {column}: a value must be a string, a number or null")
}

// ---- serializing --------------------------------------------------------

/// Serializes a plaintext as the JSON value it holds.
struct PlainJson<'a>(&'a Plaintext);

impl Serialize for PlainJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.expose() {
            Value::Null => s.serialize_unit(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(r) => s.serialize_f64(*r),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => {
                let encoded = zeroize::Zeroizing::new(BASE64.encode(b));
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("base64", encoded.as_str())?;
                map.end()
            }
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Sealed => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("sealed", &true)?;
                map.end()
            }
            Cell::Value(p) => PlainJson(p).serialize(s),
        }
    }
}

impl Serialize for Columns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (column, cell) in &self.0 {
            map.serialize_entry(column, cell)?;
        }
        map.end()
    }
}

impl Serialize for RowWrite {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (column, value) in &self.0 {
            map.serialize_entry(column, &PlainJson(value))?;
        }
        map.end()
    }
}

// ---- parsing a written value ---------------------------------------------

/// Parses one written value (string, number or null) for `column`.
struct WrittenValue<'a> {
    column: &'a str,
}

impl<'de> DeserializeSeed<'de> for WrittenValue<'_> {
    type Value = Plaintext;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Plaintext, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WrittenValue<'_> {
    type Value = Plaintext;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Text(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Text(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Plaintext, E> {
        i64::try_from(v)
            .map(|i| Plaintext::new(Value::Integer(i)))
            .map_err(|_| {
                E::custom(format!(
                    "column {}: the integer is too large; integers go up to 9223372036854775807",
                    self.column
                ))
            })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Real(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Plaintext, E> {
        Ok(Plaintext::new(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Plaintext, E> {
        Err(E::custom(wrong_type(self.column)))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Plaintext, E> {
        Err(E::custom(wrong_type(self.column)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Plaintext, A::Error> {
        Err(de::Error::custom(wrong_type(self.column)))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Plaintext, A::Error> {
        Err(de::Error::custom(wrong_type(self.column)))
    }
}

/// Visitor methods refusing every JSON type but an object, with `$msg`
/// (serde's defaults would quote the input).
macro_rules! refuse_all_but_maps {
    ($out:ty, $msg:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_none<E: de::Error>(self) -> Result<$out, E> {
            Err(E::custom($msg))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<$out, A::Error> {
            Err(de::Error::custom($msg))
        }
    };
}

const BODY_SHAPE: &str = "the body must be a JSON object of column: value pairs, e.g. {\"title\": \"Taller\", \"capacity\": 25}";

struct RowWriteVisitor;

impl<'de> Visitor<'de> for RowWriteVisitor {
    type Value = RowWrite;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of column: value pairs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowWrite, A::Error> {
        let mut cells = Vec::new();
        while let Some(column) = map.next_key::<ColumnName>()? {
            let value = map.next_value_seed(WrittenValue { column: &column.0 })?;
            cells.push((column.0, value));
        }
        Ok(RowWrite(cells))
    }

    refuse_all_but_maps!(RowWrite, BODY_SHAPE);
}

impl<'de> Deserialize<'de> for RowWrite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RowWrite, D::Error> {
        // `deserialize_any`, not `deserialize_map`: serde_json answers a
        // non-object given to `deserialize_map` with an error quoting it.
        d.deserialize_any(RowWriteVisitor)
    }
}

/// A JSON object key (a column name is not secret, but serde's default
/// error for a non-string key would still quote it).
struct ColumnName(String);

impl<'de> Deserialize<'de> for ColumnName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ColumnName, D::Error> {
        struct ColumnNameVisitor;
        impl Visitor<'_> for ColumnNameVisitor {
            type Value = ColumnName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a column name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ColumnName, E> {
                Ok(ColumnName(v.to_owned()))
            }
        }
        d.deserialize_str(ColumnNameVisitor)
    }
}

/// Parses a single JSON value (as `col:=JSON` gives on the command line)
/// into a plaintext. The error names the column, never the value.
pub fn parse_value(column: &str, json: &str) -> Result<Plaintext, String> {
    let mut d = serde_json::Deserializer::from_str(json);
    let value = WrittenValue { column }
        .deserialize(&mut d)
        .and_then(|v| d.end().map(|()| v))
        .map_err(|e| {
            if e.is_data() {
                // Our own messages (they name the column, never the value),
                // without serde_json's "at line 1 column N".
                let text = e.to_string();
                text.rsplit_once(" at line ")
                    .map_or(text.clone(), |(m, _)| m.to_string())
            } else {
                format!(
                    "column {column}: the value is not valid JSON ({}); quote text as \"…\" or write {column}=TEXT",
                    e
                )
            }
        })?;
    Ok(value)
}

// ---- parsing a response cell ----------------------------------------------

const CELL_SHAPE: &str =
    "a cell must be a string, a number, null, {\"sealed\": true} or {\"base64\": \"…\"}";

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CELL_SHAPE)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Text(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Text(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Integer(v))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        i64::try_from(v)
            .map(|i| Cell::Value(Plaintext::new(Value::Integer(i))))
            .map_err(|_| E::custom("an integer cell is out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Real(v))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Null)))
    }
    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Value(Plaintext::new(Value::Null)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Cell, E> {
        Err(E::custom(CELL_SHAPE))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Cell, E> {
        Err(E::custom(CELL_SHAPE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Cell, A::Error> {
        Err(de::Error::custom(CELL_SHAPE))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        let Some(key) = map.next_key::<ColumnName>()? else {
            return Err(de::Error::custom(CELL_SHAPE));
        };
        let cell = match key.0.as_str() {
            "sealed" => {
                // (Mapped: serde's own message would quote a wrong value.)
                match map.next_value::<bool>() {
                    Ok(true) => Cell::Sealed,
                    _ => return Err(de::Error::custom(CELL_SHAPE)),
                }
            }
            "base64" => {
                let text = map.next_value_seed(WrittenValue { column: "base64" })?;
                let Value::Text(t) = text.expose() else {
                    return Err(de::Error::custom(CELL_SHAPE));
                };
                let bytes = BASE64.decode(t).map_err(|_| {
                    de::Error::custom(
                        "a {\"base64\": …} cell is not base64 (standard alphabet, padded with =)",
                    )
                })?;
                Cell::Value(Plaintext::new(Value::Blob(bytes)))
            }
            _ => return Err(de::Error::custom(CELL_SHAPE)),
        };
        if map.next_key::<ColumnName>()?.is_some() {
            return Err(de::Error::custom(CELL_SHAPE));
        }
        Ok(cell)
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Columns, D::Error> {
        struct ColumnsVisitor;
        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = Columns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of column: cell")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Columns, A::Error> {
                let mut out = Vec::new();
                while let Some(column) = map.next_key::<ColumnName>()? {
                    out.push((column.0, map.next_value::<Cell>()?));
                }
                Ok(Columns(out))
            }
            refuse_all_but_maps!(Columns, "columns must be an object of column: cell");
        }
        d.deserialize_any(ColumnsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_parse_into_plaintext() {
        let w: RowWrite =
            serde_json::from_str(r#"{"title":"Taller","capacity":25,"x":2.5,"phone":null}"#)
                .unwrap();
        let got: Vec<(&str, &Value)> = w.0.iter().map(|(c, v)| (c.as_str(), v.expose())).collect();
        assert_eq!(
            got,
            vec![
                ("title", &Value::Text("Taller".into())),
                ("capacity", &Value::Integer(25)),
                ("x", &Value::Real(2.5)),
                ("phone", &Value::Null),
            ]
        );
    }

    #[test]
    fn wrong_values_are_refused_without_quoting_them() {
        for body in [
            r#"{"full_name": true}"#,
            r#"{"full_name": ["Secret-Value"]}"#,
            r#"{"full_name": {"a": "Secret-Value"}}"#,
        ] {
            let e = serde_json::from_str::<RowWrite>(body)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("column full_name: a value must be a string, a number or null"),
                "{e}"
            );
            assert!(!e.contains("Secret-Value") && !e.contains("true"), "{e}");
        }
        for body in [
            r#""Secret-Value""#,
            "[\"Secret-Value\"]",
            "12345678",
            "null",
        ] {
            let e = serde_json::from_str::<RowWrite>(body)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("the body must be a JSON object"), "{e}");
            assert!(!e.contains("Secret") && !e.contains("12345678"), "{e}");
        }
    }

    #[test]
    fn cells_round_trip() {
        let row = Row {
            id: "r1".into(),
            updated: "1.0".into(),
            updated_by: None,
            updated_office: None,
            columns: Columns(vec![
                ("b".into(), Cell::Value(Plaintext::text("x"))),
                ("a".into(), Cell::Sealed),
                (
                    "c".into(),
                    Cell::Value(Plaintext::new(Value::Blob(vec![1, 2]))),
                ),
                ("d".into(), Cell::Value(Plaintext::new(Value::Null))),
                ("e".into(), Cell::Value(Plaintext::new(Value::Integer(-3)))),
            ]),
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(
            text,
            r#"{"id":"r1","updated":"1.0","columns":{"b":"x","a":{"sealed":true},"c":{"base64":"AQI="},"d":null,"e":-3}}"#
        );
        let back: Row = serde_json::from_str(&text).unwrap();
        assert_eq!(back.columns.0, row.columns.0);
    }

    #[test]
    fn blobs_are_standard_padded_base64() {
        let blob = |text: &str| {
            serde_json::from_str::<Row>(&format!(
                r#"{{"id":"r1","updated":"1.0","columns":{{"c":{{"base64":"{text}"}}}}}}"#
            ))
            .map(|row| match &row.columns.0[0].1 {
                Cell::Value(p) => p.expose().clone(),
                Cell::Sealed => unreachable!(),
            })
        };
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let cell = Cell::Value(Plaintext::new(Value::Blob(bytes.clone())));
            let json = serde_json::to_value(PlainJson(match &cell {
                Cell::Value(p) => p,
                Cell::Sealed => unreachable!(),
            }))
            .unwrap();
            let text = json["base64"].as_str().unwrap().to_string();
            assert_eq!(blob(&text).unwrap(), Value::Blob(bytes), "{text}");
        }
        assert_eq!(blob("Zm9vYmFy").unwrap(), Value::Blob(b"foobar".to_vec()));
        assert_eq!(blob("Zm8=").unwrap(), Value::Blob(b"fo".to_vec()));
        for bad in ["Zm9=v", "Z===", "Zm=8", "Zm8", "Zm9v YmFy", "Zm9vYmF$"] {
            let e = blob(bad).unwrap_err().to_string();
            assert!(e.contains("is not base64"), "{bad}: {e}");
        }
    }

    #[test]
    fn single_values_parse() {
        assert_eq!(
            parse_value("capacity", "25").unwrap().expose(),
            &Value::Integer(25)
        );
        assert_eq!(parse_value("phone", "null").unwrap().expose(), &Value::Null);
        assert_eq!(
            parse_value("t", "\"a b\"").unwrap().expose(),
            &Value::Text("a b".into())
        );
        let e = parse_value("phone", "+52-Secret").unwrap_err();
        assert!(
            e.starts_with("column phone:") && !e.contains("Secret"),
            "{e}"
        );
        let e = parse_value("flag", "true").unwrap_err();
        assert_eq!(e, "column flag: a value must be a string, a number or null");
        assert!(parse_value("n", "1 2").is_err());
    }
}
