//! Cell values and the redacted plaintext type.
//!
//! Owns: `Value` (what a cell holds), `Plaintext` (a value that may be sealed
//! plaintext: redacted in Debug/Display, zeroized on drop) and the byte
//! encoding of values used by digests and sealed envelopes.
//! Must not: know about tables, SQLite or the network.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// What one cell holds. Shared columns store these as plain SQLite values;
/// sealed columns always hold a `Blob` with an age file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// Encoded as one byte string, not a sequence of numbers (fast to decode).
    Blob(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl Default for Value {
    /// An unwritten cell.
    fn default() -> Self {
        Value::Null
    }
}

impl Value {
    /// A stable, unambiguous byte encoding: one tag byte, then the payload
    /// (integers and reals big-endian, text and blobs length-prefixed).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Real(r) => {
                out.push(2);
                out.extend_from_slice(&r.to_bits().to_be_bytes());
            }
            Value::Text(s) => {
                out.push(3);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Blob(b) => {
                out.push(4);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }

    /// Number of bytes `encode_into` appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Null => 1,
            Value::Integer(_) | Value::Real(_) => 9,
            Value::Text(s) => 9 + s.len(),
            Value::Blob(b) => 9 + b.len(),
        }
    }

    /// Reads one value written by `encode_into`; returns it and the bytes used.
    pub fn decode(bytes: &[u8]) -> Option<(Value, usize)> {
        let (&tag, rest) = bytes.split_first()?;
        let fixed = |rest: &[u8]| -> Option<[u8; 8]> { rest.get(..8)?.try_into().ok() };
        match tag {
            0 => Some((Value::Null, 1)),
            1 => Some((Value::Integer(i64::from_be_bytes(fixed(rest)?)), 9)),
            2 => Some((
                Value::Real(f64::from_bits(u64::from_be_bytes(fixed(rest)?))),
                9,
            )),
            3 | 4 => {
                let len = usize::try_from(u64::from_be_bytes(fixed(rest)?)).ok()?;
                let body = rest.get(8..8usize.checked_add(len)?)?;
                let value = if tag == 3 {
                    Value::Text(String::from_utf8(body.to_vec()).ok()?)
                } else {
                    Value::Blob(body.to_vec())
                };
                Some((value, 9 + len))
            }
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the value's kind, for error messages (never the value).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

impl fmt::Debug for Value {
    /// Shared values are not secret, but a `Value` can transiently hold
    /// plaintext on its way into a `Plaintext`; Debug therefore shows only
    /// the kind and size, never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "Null"),
            Value::Integer(_) => write!(f, "Integer(..)"),
            Value::Real(_) => write!(f, "Real(..)"),
            Value::Text(s) => write!(f, "Text({} bytes)", s.len()),
            Value::Blob(b) => write!(f, "Blob({} bytes)", b.len()),
        }
    }
}

impl Zeroize for Value {
    fn zeroize(&mut self) {
        match self {
            Value::Null => {}
            Value::Integer(i) => i.zeroize(),
            Value::Real(r) => r.zeroize(),
            Value::Text(s) => s.zeroize(),
            Value::Blob(b) => b.zeroize(),
        }
        *self = Value::Null;
    }
}

/// The marker printed wherever a plaintext would otherwise appear.
pub const REDACTED: &str = "[redacted]";

/// A value that is, or may be, the plaintext of a sealed column.
///
/// Every value a writer hands to the store travels in this type until the
/// store knows its column's privacy class. Debug and Display print
/// `[redacted]`; the memory is zeroized on drop. The only way to the
/// content is `expose`, which callers use at the last possible moment
/// (sealing, or writing an API response that asked to reveal).
pub struct Plaintext(Value);

impl Plaintext {
    pub fn new(value: Value) -> Self {
        Plaintext(value)
    }

    pub fn text(s: impl Into<String>) -> Self {
        Plaintext(Value::Text(s.into()))
    }

    pub fn expose(&self) -> &Value {
        &self.0
    }

    /// Moves the value out, for a column known to be shared.
    pub fn into_shared(mut self) -> Value {
        std::mem::replace(&mut self.0, Value::Null)
    }
}

impl Clone for Plaintext {
    fn clone(&self) -> Self {
        Plaintext(self.0.clone())
    }
}

impl PartialEq for Plaintext {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        for v in [
            Value::Null,
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text("Tijuana".into()),
            Value::Blob(vec![0, 1, 2]),
        ] {
            let mut buf = Vec::new();
            v.encode_into(&mut buf);
            assert_eq!(buf.len(), v.encoded_len());
            let (back, used) = Value::decode(&buf).unwrap();
            assert_eq!(back, v);
            assert_eq!(used, buf.len());
        }
        assert!(Value::decode(&[3, 0, 0, 0, 0, 0, 0, 0, 9, b'a']).is_none());
    }

    #[test]
    fn plaintext_never_prints_its_content() {
        let p = Plaintext::text("María Secreta");
        assert_eq!(format!("{p}"), REDACTED);
        assert_eq!(format!("{p:?}"), REDACTED);
        assert!(!format!("{:?}", p.expose()).contains("María"));
    }
}
