//! Certificate fingerprints: how offices recognise each other.
//!
//! Owns: the SHA-256 fingerprint of a DER certificate, its copy-pasteable
//! text form (`sha256:` and 64 hex digits) and parsing of what an admin
//! pastes (case-insensitive, colons and spaces allowed).
//! Must not: verify certificates or signatures (rustls does, in transport).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a certificate fingerprint; copy the `sha256:…` line that `puente id` prints on the other node"
)]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let body = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        let digits: Vec<u8> = body.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
        if digits.len() != 64 {
            return Err(BadFingerprint(s.to_string()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| BadFingerprint(s.to_string()))?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| BadFingerprint(s.to_string()))?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_tolerates_pasting_styles() {
        let fp = Fingerprint::of_der(b"certificate");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let upper_colons: String = text[7..]
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(upper_colons.parse::<Fingerprint>().unwrap(), fp);
        assert!("sha256:abc".parse::<Fingerprint>().is_err());
        assert!(
            format!("sha256:{}", "zz".repeat(32))
                .parse::<Fingerprint>()
                .is_err()
        );
    }
}
