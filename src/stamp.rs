//! Who wrote a cell and when: site ids and (hlc, site) stamps.
//!
//! Owns: the 128-bit `SiteId` of a replica and the `Stamp` whose order
//! decides last-writer-wins.
//! Must not: generate timestamps (clock.rs) or touch storage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Hlc;

/// A replica's random 128-bit identity, made once when the replica is
/// created. It carries no meaning: not the office, not a time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SiteId(pub [u8; 16]);

impl SiteId {
    pub fn random() -> SiteId {
        SiteId(rand::random())
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteId({self})")
    }
}

impl FromStr for SiteId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 {
            return Err(());
        }
        let mut out = [0u8; 16];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(chunk).map_err(|_| ())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| ())?;
        }
        Ok(SiteId(out))
    }
}

/// The version of a cell or tombstone. Last writer wins: the greater stamp,
/// compared by hlc first and site id second, is the one every replica keeps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Stamp {
    pub hlc: Hlc,
    pub site: SiteId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_hlc_then_site() {
        let a = SiteId([1; 16]);
        let b = SiteId([2; 16]);
        let s = |h, site| Stamp { hlc: Hlc(h), site };
        assert!(s(5, b) < s(6, a));
        assert!(s(5, a) < s(5, b));
        assert_eq!(a.to_string().parse::<SiteId>().unwrap(), a);
    }
}
