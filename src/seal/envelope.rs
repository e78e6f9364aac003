//! The plaintext inside every sealed value, and its padding.
//!
//! Owns: the envelope layout {format version, table, id, column, hlc, site,
//! value} binding a value to its cell, Padmé padding after a floor bucket,
//! and decoding with checks. Buffers are zeroizing; nothing is printed.
//! Must not: encrypt, decrypt or know about keys.
//!
//! Layout (all integers big-endian):
//! ```text
//! "puente-seal" 0x00   magic, 12 bytes
//! u8                   format version (1)
//! u8 len, bytes        table
//! u8 len, bytes        column
//! u16 len, bytes       id
//! u64                  hlc
//! [u8; 16]             site id
//! u8 tag, u64 len, ..  value (see Value::encode_into)
//! 0x00 …               padding up to the bucket of the value's length
//! ```

use zeroize::Zeroizing;

use crate::clock::Hlc;
use crate::stamp::SiteId;
use crate::value::{Plaintext, Value};

pub const MAGIC: &[u8; 12] = b"puente-seal\0";
pub const FORMAT_VERSION: u8 = 1;

/// Values up to this many bytes all pad to the same size, so short names,
/// dates and phone numbers do not reveal their length.
pub const FLOOR_BUCKET: usize = 64;

/// The cell a sealed value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub id: &'a str,
    pub column: &'a str,
    pub hlc: Hlc,
    pub site: SiteId,
}

/// Padmé (Nikitin et al., 2019): rounds `len` up so that at most
/// O(log log len) bits of the length remain, with at most ~12% overhead.
pub fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let len = len as u64;
    let e = 63 - len.leading_zeros() as u64; // floor(log2 len)
    let s = 64 - e.leading_zeros() as u64; // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    ((len + mask) & !mask) as usize
}

/// The padded size of a value payload of `len` bytes.
pub fn bucket(len: usize) -> usize {
    if len <= FLOOR_BUCKET {
        FLOOR_BUCKET
    } else {
        padme(len)
    }
}

fn payload_len(value: &Value) -> usize {
    match value {
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
        _ => 8,
    }
}

/// Encodes and pads an envelope. The buffer is allocated once at its final
/// size so no partial copy of the plaintext is left behind by a reallocation.
pub fn encode(
    binding: &Binding<'_>,
    value: &Plaintext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let v = value.expose();
    if binding.table.len() > 255
        || binding.column.len() > 255
        || binding.id.len() > u16::MAX as usize
    {
        return Err(EnvelopeError::TooLong);
    }
    let padded_payload = bucket(payload_len(v));
    let head_len = MAGIC.len()
        + 1
        + 1
        + binding.table.len()
        + 1
        + binding.column.len()
        + 2
        + binding.id.len()
        + 8
        + 16;
    let total = head_len + 9 + padded_payload;
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(binding.table.len() as u8);
    out.extend_from_slice(binding.table.as_bytes());
    out.push(binding.column.len() as u8);
    out.extend_from_slice(binding.column.as_bytes());
    out.extend_from_slice(&(binding.id.len() as u16).to_be_bytes());
    out.extend_from_slice(binding.id.as_bytes());
    out.extend_from_slice(&binding.hlc.0.to_be_bytes());
    out.extend_from_slice(&binding.site.0);
    v.encode_into(&mut out);
    let padded = total.max(out.len());
    out.resize(padded, 0);
    debug_assert_eq!(out.capacity(), total);
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("a table, column or id is too long to seal")]
    TooLong,
    #[error("the decrypted value is not a puente envelope")]
    Malformed,
    #[error("the envelope has format version {0}, which this build does not know; upgrade puente")]
    UnknownVersion(u8),
    #[error("the envelope names a different {0}")]
    Mismatch(&'static str),
}

/// Decodes an envelope and checks that it belongs to `expected`.
pub fn decode(bytes: &[u8], expected: &Binding<'_>) -> Result<Plaintext, EnvelopeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(EnvelopeError::Malformed);
    }
    let version = r.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    let n = r.take(1)?[0] as usize;
    let table = r.take(n)?;
    let n = r.take(1)?[0] as usize;
    let column = r.take(n)?;
    let n = u16::from_be_bytes(r.array()?) as usize;
    let id = r.take(n)?;
    let hlc = Hlc(u64::from_be_bytes(r.array()?));
    let site = SiteId(r.array()?);
    if table != expected.table.as_bytes() {
        return Err(EnvelopeError::Mismatch("table"));
    }
    if id != expected.id.as_bytes() {
        return Err(EnvelopeError::Mismatch("row id"));
    }
    if column != expected.column.as_bytes() {
        return Err(EnvelopeError::Mismatch("column"));
    }
    if hlc != expected.hlc || site != expected.site {
        return Err(EnvelopeError::Mismatch("version (hlc, site)"));
    }
    let (value, _) = Value::decode(&bytes[r.at..]).ok_or(EnvelopeError::Malformed)?;
    Ok(Plaintext::new(value))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self.at.checked_add(n).ok_or(EnvelopeError::Malformed)?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(EnvelopeError::Malformed)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        self.take(N)?
            .try_into()
            .map_err(|_| EnvelopeError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding<'static> {
        Binding {
            table: "residents",
            id: "6f1c0b7e-3a9d-4a61-9c55-0e2a7d3c1b11",
            column: "full_name",
            hlc: Hlc(42 << 16),
            site: SiteId([7; 16]),
        }
    }

    #[test]
    fn padme_matches_the_published_examples() {
        // Padmé leaves lengths unchanged up to 8 and rounds the rest up.
        assert_eq!(padme(8), 8);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(100), 104);
        assert_eq!(padme(1000), 1024);
        for len in 2..5000 {
            let p = padme(len);
            assert!(
                p >= len && p as f64 <= len as f64 * 1.125 + 1.0,
                "{len} -> {p}"
            );
        }
    }

    #[test]
    fn short_values_share_one_bucket() {
        let sizes: std::collections::BTreeSet<usize> = (1..=60)
            .map(|n| {
                encode(&binding(), &Plaintext::text("x".repeat(n)))
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn decode_checks_every_binding_field() {
        let value = Plaintext::text("Ana");
        let bytes = encode(&binding(), &value).unwrap();
        assert_eq!(decode(&bytes, &binding()).unwrap(), value);
        let mut other = binding();
        other.id = "another";
        assert_eq!(
            decode(&bytes, &other).unwrap_err(),
            EnvelopeError::Mismatch("row id")
        );
        let mut other = binding();
        other.column = "phone";
        assert_eq!(
            decode(&bytes, &other).unwrap_err(),
            EnvelopeError::Mismatch("column")
        );
        let mut other = binding();
        other.hlc = Hlc(43 << 16);
        assert!(matches!(
            decode(&bytes, &other),
            Err(EnvelopeError::Mismatch(_))
        ));
        let mut other = binding();
        other.table = "outreach_events";
        assert_eq!(
            decode(&bytes, &other).unwrap_err(),
            EnvelopeError::Mismatch("table")
        );
        assert_eq!(
            decode(&bytes[..20], &binding()).unwrap_err(),
            EnvelopeError::Malformed
        );
        assert_eq!(
            decode(b"garbage", &binding()).unwrap_err(),
            EnvelopeError::Malformed
        );
    }
}
