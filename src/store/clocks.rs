//! Per-row packed cell metadata.
//!
//! Every user-table row carries one BLOB, `_puente_clocks`, holding for each
//! column (by canonical index) the cell's hlc, the local index of the site
//! that wrote it and the local change sequence that wrote it here. One row
//! write then updates one B-tree entry instead of one clock row per cell,
//! which keeps applying a peer's changes close to the cost of a plain insert.
//! Must not: know SQL; this is a pure byte layout.

use crate::clock::Hlc;

/// Bytes per cell: hlc u64, site index u32, sequence u64 (little-endian).
pub const CELL_BYTES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CellClock {
    /// Zero means the cell was never written.
    pub hlc: Hlc,
    pub site: u32,
    pub seq: u64,
}

impl CellClock {
    pub fn is_written(&self) -> bool {
        self.hlc != Hlc::ZERO
    }
}

/// The clocks of one row, one per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowClocks(pub Vec<CellClock>);

impl RowClocks {
    pub fn new(columns: usize) -> RowClocks {
        RowClocks(vec![CellClock::default(); columns])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * CELL_BYTES);
        for c in &self.0 {
            out.extend_from_slice(&c.hlc.0.to_le_bytes());
            out.extend_from_slice(&c.site.to_le_bytes());
            out.extend_from_slice(&c.seq.to_le_bytes());
        }
        out
    }

    /// Decodes a blob for a table of `columns` columns; `None` if the blob
    /// has the wrong size (a damaged row).
    pub fn decode(bytes: &[u8], columns: usize) -> Option<RowClocks> {
        if bytes.len() != columns * CELL_BYTES {
            return None;
        }
        let cells = bytes
            .chunks_exact(CELL_BYTES)
            .map(|c| {
                let hlc = u64::from_le_bytes(c[0..8].try_into().unwrap_or_default());
                let site = u32::from_le_bytes(c[8..12].try_into().unwrap_or_default());
                let seq = u64::from_le_bytes(c[12..20].try_into().unwrap_or_default());
                CellClock {
                    hlc: Hlc(hlc),
                    site,
                    seq,
                }
            })
            .collect();
        Some(RowClocks(cells))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut r = RowClocks::new(3);
        r.0[1] = CellClock {
            hlc: Hlc(99),
            site: 4,
            seq: 7,
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), 60);
        assert_eq!(RowClocks::decode(&bytes, 3), Some(r));
        assert_eq!(RowClocks::decode(&bytes, 2), None);
    }
}
