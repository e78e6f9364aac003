//! The replica digest: an order-independent hash of all live cells and
//! tombstones.
//!
//! Owns: the per-cell and per-tombstone hashes and their sum (four 64-bit
//! lanes, wrapping), so the store keeps the digest up to date with one add
//! and one subtract per cell write and reads it in O(1).
//! Must not: read the database (the slow full recomputation lives in the
//! store, next to the data it scans).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Hlc;
use crate::stamp::SiteId;
use crate::value::Value;

/// A sum of SHA-256 hashes, lane-wise modulo 2^64. Equal replicas have
/// equal digests whatever order their changes arrived in.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u64; 4]);

impl Digest {
    pub const EMPTY: Digest = Digest([0; 4]);

    pub fn add(&mut self, h: &Digest) {
        for (a, b) in self.0.iter_mut().zip(h.0) {
            *a = a.wrapping_add(b);
        }
    }

    pub fn sub(&mut self, h: &Digest) {
        for (a, b) in self.0.iter_mut().zip(h.0) {
            *a = a.wrapping_sub(b);
        }
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, lane) in out.chunks_mut(8).zip(self.0) {
            chunk.copy_from_slice(&lane.to_be_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != 32 {
            return None;
        }
        let mut lanes = [0u64; 4];
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks(8)) {
            *lane = u64::from_be_bytes(chunk.try_into().ok()?);
        }
        Some(Digest(lanes))
    }

    fn of(parts: &[&[u8]], value: Option<&Value>) -> Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in parts {
            ctx.update(&(p.len() as u32).to_be_bytes());
            ctx.update(p);
        }
        if let Some(v) = value {
            // The same bytes as Value::encode_into, without a buffer.
            match v {
                Value::Null => ctx.update(&[0]),
                Value::Integer(i) => {
                    ctx.update(&[1]);
                    ctx.update(&i.to_be_bytes());
                }
                Value::Real(r) => {
                    ctx.update(&[2]);
                    ctx.update(&r.to_bits().to_be_bytes());
                }
                Value::Text(s) => {
                    ctx.update(&[3]);
                    ctx.update(&(s.len() as u64).to_be_bytes());
                    ctx.update(s.as_bytes());
                }
                Value::Blob(b) => {
                    ctx.update(&[4]);
                    ctx.update(&(b.len() as u64).to_be_bytes());
                    ctx.update(b);
                }
            }
        }
        let d = ctx.finish();
        Digest::from_bytes(d.as_ref()).unwrap_or_default()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Hash of one live cell: its place, value and version.
pub fn cell_hash(
    table: &str,
    id: &str,
    column: &str,
    value: &Value,
    hlc: Hlc,
    site: &SiteId,
) -> Digest {
    Digest::of(
        &[
            b"cell",
            table.as_bytes(),
            id.as_bytes(),
            column.as_bytes(),
            &hlc.0.to_be_bytes(),
            &site.0,
        ],
        Some(value),
    )
}

/// Hash of one tombstone.
pub fn tombstone_hash(table: &str, id: &str, hlc: Hlc, site: &SiteId) -> Digest {
    Digest::of(
        &[
            b"tombstone",
            table.as_bytes(),
            id.as_bytes(),
            &hlc.0.to_be_bytes(),
            &site.0,
        ],
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_order_independent_and_subtractable() {
        let s = SiteId([1; 16]);
        let a = cell_hash("t", "1", "c", &Value::Integer(1), Hlc(1), &s);
        let b = cell_hash("t", "1", "d", &Value::Integer(1), Hlc(1), &s);
        let c = tombstone_hash("t", "2", Hlc(3), &s);
        let mut x = Digest::EMPTY;
        x.add(&a);
        x.add(&b);
        x.add(&c);
        let mut y = Digest::EMPTY;
        y.add(&c);
        y.add(&a);
        y.add(&b);
        assert_eq!(x, y);
        y.sub(&b);
        y.sub(&a);
        y.sub(&c);
        assert_eq!(y, Digest::EMPTY);
        assert_eq!(Digest::from_bytes(&x.to_bytes()), Some(x));
    }

    #[test]
    fn streamed_value_bytes_equal_the_value_encoding() {
        // The digest hashes values as Value::encode_into lays them out:
        // distinct values give distinct hashes, including across kinds.
        let s = SiteId([1; 16]);
        let h = |v: Value| cell_hash("t", "1", "c", &v, Hlc(1), &s);
        let all = [
            h(Value::Null),
            h(Value::Integer(0)),
            h(Value::Real(0.0)),
            h(Value::Text(String::new())),
            h(Value::Blob(vec![])),
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
    }

    #[test]
    fn fields_are_not_ambiguous() {
        let s = SiteId([1; 16]);
        assert_ne!(
            cell_hash("t", "ab", "c", &Value::Null, Hlc(1), &s),
            cell_hash("t", "a", "bc", &Value::Null, Hlc(1), &s)
        );
    }
}
