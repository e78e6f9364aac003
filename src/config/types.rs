//! Owns: column types: what a column of the schema may hold, checked on
//! every local write (and on the plaintext of a sealed column, before
//! sealing), and how a value is stored so that SQL tools sort and compare
//! it right (integers as INTEGER, numbers as REAL or INTEGER, booleans as
//! 0/1, dates and datetimes as their text).
//!
//! Must not: touch SQLite, or put a value into an error unless the caller
//! says the column is shared.

use std::str::FromStr;

use crate::value::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    /// An integer or a decimal number.
    Number,
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant in RFC 3339 with its offset, e.g. `2026-12-01T10:00:00-08:00`.
    DateTime,
    /// One of these texts (sorted, without repeats).
    OneOf(Vec<String>),
}

/// A value that does not fit its column's type. `Display` names what was
/// expected with an example; the value itself appears only when the
/// caller attached it (shared columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    /// The kind of value given (text, integer, …).
    pub got: &'static str,
    /// The value as given, for shared columns only.
    pub value: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "expects {}; got {} `{v}`", self.expected, self.got),
            None => write!(
                f,
                "expects {}; got a {} that is not one",
                self.expected, self.got
            ),
        }
    }
}

impl Mismatch {
    /// Attaches the value (only ever for a shared column).
    pub fn showing(mut self, value: &Value) -> Mismatch {
        self.value = Some(match value {
            Value::Text(t) => t.chars().take(80).collect(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Null => "null".into(),
            Value::Blob(b) => format!("{} bytes", b.len()),
        });
        self
    }
}

/// The names `type = "…"` accepts.
pub const TYPE_NAMES: &[&str] = &["text", "integer", "number", "boolean", "date", "datetime"];

impl ColumnType {
    /// A type by its schema name.
    pub fn named(name: &str) -> Option<ColumnType> {
        Some(match name {
            "text" => ColumnType::Text,
            "integer" => ColumnType::Integer,
            "number" => ColumnType::Number,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "datetime" => ColumnType::DateTime,
            _ => return None,
        })
    }

    /// A list type; None if the list is empty or holds an empty text.
    pub fn one_of(values: impl IntoIterator<Item = String>) -> Option<ColumnType> {
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort();
        values.dedup();
        if values.is_empty() || values.iter().any(|v| v.is_empty()) {
            return None;
        }
        Some(ColumnType::OneOf(values))
    }

    /// The type as the canonical schema text writes it.
    pub fn canonical(&self) -> String {
        match self {
            ColumnType::OneOf(values) => format!(
                "one_of {}",
                serde_json::to_string(values).unwrap_or_default()
            ),
            other => other.name().to_string(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::DateTime => "datetime",
            ColumnType::OneOf(_) => "one_of",
        }
    }

    /// What a value must be, with an example, as a person reads it.
    pub fn expected(&self) -> String {
        match self {
            ColumnType::Text => "text".into(),
            ColumnType::Integer => "a whole number, e.g. 25".into(),
            ColumnType::Number => "a number, e.g. 2.5".into(),
            ColumnType::Boolean => "true or false".into(),
            ColumnType::Date => "a date as YYYY-MM-DD, e.g. 2026-12-01".into(),
            ColumnType::DateTime => {
                "a date and time with its offset (RFC 3339), e.g. 2026-12-01T10:00:00-08:00".into()
            }
            ColumnType::OneOf(values) => format!(
                "one of {}",
                values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn mismatch(&self, got: &Value) -> Mismatch {
        Mismatch {
            expected: self.expected(),
            got: got.kind(),
            value: None,
        }
    }

    /// Whether `value` is already in the form `coerce` gives (what a peer
    /// must send for a typed column).
    pub fn holds(&self, value: &Value) -> bool {
        self.coerce(value).is_ok_and(|v| &v == value)
    }

    /// Checks a value written to a column of this type and gives the value
    /// to store: text that spells a number becomes the number, `true` and
    /// `false` become 1 and 0, dates and datetimes stay the text given.
    /// Null (clearing the cell) always fits.
    pub fn coerce(&self, value: &Value) -> Result<Value, Mismatch> {
        let bad = || self.mismatch(value);
        Ok(match (self, value) {
            (_, Value::Null) => Value::Null,
            (ColumnType::Text, Value::Text(_)) => value.clone(),
            (ColumnType::Integer, Value::Integer(_)) => value.clone(),
            (ColumnType::Integer, Value::Real(r)) if r.fract() == 0.0 && r.abs() < 9.0e15 => {
                Value::Integer(*r as i64)
            }
            (ColumnType::Integer, Value::Text(t)) => {
                Value::Integer(t.trim().parse::<i64>().map_err(|_| bad())?)
            }
            (ColumnType::Number, Value::Integer(_)) => value.clone(),
            // A whole number is stored as an integer (as SQLite's NUMERIC
            // affinity would store it anyway), so every replica holds the
            // same value whatever form it was written in.
            (ColumnType::Number, Value::Real(r)) if r.fract() == 0.0 && r.abs() < 9.0e15 => {
                Value::Integer(*r as i64)
            }
            (ColumnType::Number, Value::Real(r)) if r.is_finite() => value.clone(),
            (ColumnType::Number, Value::Text(t)) => {
                let t = t.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Value::Integer(i)
                } else {
                    match t.parse::<f64>() {
                        Ok(r) if r.fract() == 0.0 && r.abs() < 9.0e15 => Value::Integer(r as i64),
                        Ok(r) if r.is_finite() => Value::Real(r),
                        _ => return Err(bad()),
                    }
                }
            }
            (ColumnType::Boolean, Value::Integer(i @ (0 | 1))) => Value::Integer(*i),
            (ColumnType::Boolean, Value::Text(t)) => match t.trim() {
                "true" => Value::Integer(1),
                "false" => Value::Integer(0),
                _ => return Err(bad()),
            },
            (ColumnType::Date, Value::Text(t)) => {
                jiff::civil::Date::from_str(t.trim()).map_err(|_| bad())?;
                if t.trim().len() != 10 {
                    return Err(bad());
                }
                Value::Text(t.trim().to_string())
            }
            (ColumnType::DateTime, Value::Text(t)) => {
                // A timestamp with an offset (Z or ±hh:mm): jiff refuses
                // one without.
                jiff::Timestamp::from_str(t.trim()).map_err(|_| bad())?;
                if !t.contains('T') {
                    return Err(bad());
                }
                Value::Text(t.trim().to_string())
            }
            (ColumnType::OneOf(values), Value::Text(t)) if values.contains(t) => value.clone(),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn values_that_fit_are_stored_as_real_types() {
        let int = ColumnType::Integer;
        assert_eq!(int.coerce(&text(" 25 ")), Ok(Value::Integer(25)));
        assert_eq!(int.coerce(&Value::Integer(-3)), Ok(Value::Integer(-3)));
        assert_eq!(int.coerce(&Value::Real(4.0)), Ok(Value::Integer(4)));
        let num = ColumnType::Number;
        assert_eq!(num.coerce(&text("2.5")), Ok(Value::Real(2.5)));
        assert_eq!(num.coerce(&text("7")), Ok(Value::Integer(7)));
        assert_eq!(num.coerce(&text("7.0")), Ok(Value::Integer(7)));
        assert_eq!(num.coerce(&Value::Real(7.0)), Ok(Value::Integer(7)));
        let b = ColumnType::Boolean;
        assert_eq!(b.coerce(&text("true")), Ok(Value::Integer(1)));
        assert_eq!(b.coerce(&Value::Integer(0)), Ok(Value::Integer(0)));
        assert_eq!(
            ColumnType::Date.coerce(&text("2026-12-01")),
            Ok(text("2026-12-01"))
        );
        assert_eq!(
            ColumnType::DateTime.coerce(&text("2026-12-01T10:00:00-08:00")),
            Ok(text("2026-12-01T10:00:00-08:00"))
        );
        assert_eq!(
            ColumnType::DateTime.coerce(&text("2026-12-01T18:00:00Z")),
            Ok(text("2026-12-01T18:00:00Z"))
        );
        let status = ColumnType::one_of(["scheduled".into(), "cancelled".into()]).unwrap();
        assert_eq!(status.coerce(&text("cancelled")), Ok(text("cancelled")));
        for t in [&int, &num, &b, &ColumnType::Date, &status] {
            assert_eq!(t.coerce(&Value::Null), Ok(Value::Null), "clearing fits");
        }
    }

    #[test]
    fn values_that_do_not_fit_say_what_was_expected_with_an_example() {
        let cases: Vec<(ColumnType, Value)> = vec![
            (ColumnType::Integer, text("veinte")),
            (ColumnType::Integer, Value::Real(2.5)),
            (ColumnType::Number, text("NaN")),
            (ColumnType::Number, Value::Real(f64::INFINITY)),
            (ColumnType::Boolean, Value::Integer(2)),
            (ColumnType::Boolean, text("sí")),
            (ColumnType::Date, text("mañana")),
            (ColumnType::Date, text("2026-02-30")),
            (ColumnType::Date, text("2026-12-01T10:00:00Z")),
            (ColumnType::DateTime, text("mañana")),
            (ColumnType::DateTime, text("2026-12-01T10:00:00")),
            (ColumnType::DateTime, text("2026-12-01")),
            (ColumnType::Text, Value::Integer(3)),
            (ColumnType::Text, Value::Blob(vec![1])),
            (
                ColumnType::one_of(["scheduled".into()]).unwrap(),
                text("maybe"),
            ),
        ];
        for (t, v) in cases {
            let e = t.coerce(&v).expect_err(&format!("{t:?} took {v:?}"));
            let plain = e.to_string();
            assert!(plain.starts_with("expects "), "{plain}");
            assert!(
                !plain.contains("veinte") && !plain.contains("mañana"),
                "{plain}"
            );
            let shown = e.showing(&v).to_string();
            assert!(shown.contains("got"), "{shown}");
        }
        let e = ColumnType::Integer.coerce(&text("veinte")).unwrap_err();
        assert_eq!(
            e.showing(&text("veinte")).to_string(),
            "expects a whole number, e.g. 25; got text `veinte`"
        );
        assert!(
            ColumnType::DateTime
                .expected()
                .contains("2026-12-01T10:00:00-08:00")
        );
    }

    #[test]
    fn names_and_canonical_forms() {
        for name in TYPE_NAMES {
            let t = ColumnType::named(name).unwrap();
            assert_eq!(t.canonical(), *name);
        }
        assert_eq!(ColumnType::named("float"), None);
        let t = ColumnType::one_of(["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(t.canonical(), r#"one_of ["a","b"]"#);
        assert_eq!(ColumnType::one_of(Vec::<String>::new()), None);
        assert_eq!(ColumnType::one_of(["".into()]), None);
    }
}
