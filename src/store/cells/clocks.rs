//! Owns: per-row packed cell metadata.
//!
//! Every user-table row carries one BLOB, `_puente_clocks`, holding for each
//! column (by canonical index) the cell's hlc, the local index of the site
//! that wrote it, the local index of the site it came from (itself for a
//! local write, else the peer that delivered it: that peer is never sent the
//! version back) and the local change sequence that wrote it here. One row
//! write then updates one B-tree entry instead of one clock row per cell,
//! which keeps applying a peer's changes close to the cost of a plain insert.
//! Must not: know SQL; this is a pure byte layout.

use crate::clock::Hlc;

/// Bytes of one full clock: hlc u64, site u32, via u32, sequence u64
/// (little-endian).
pub const CELL_BYTES: usize = 24;

/// Layout tag: every written cell shares one clock (a row written by one
/// put or one merge): a bitmap of the written cells, then that clock.
const UNIFORM: u8 = 1;
/// Layout tag: one full clock per column.
const PER_CELL: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CellClock {
    /// Zero means the cell was never written.
    pub hlc: Hlc,
    pub site: u32,
    /// The site this version arrived from.
    pub via: u32,
    pub seq: u64,
}

impl CellClock {
    pub fn is_written(&self) -> bool {
        self.hlc != Hlc::ZERO
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hlc.0.to_le_bytes());
        out.extend_from_slice(&self.site.to_le_bytes());
        out.extend_from_slice(&self.via.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
    }

    fn read(c: &[u8]) -> Option<CellClock> {
        Some(CellClock {
            hlc: Hlc(u64::from_le_bytes(c.get(0..8)?.try_into().ok()?)),
            site: u32::from_le_bytes(c.get(8..12)?.try_into().ok()?),
            via: u32::from_le_bytes(c.get(12..16)?.try_into().ok()?),
            seq: u64::from_le_bytes(c.get(16..24)?.try_into().ok()?),
        })
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
        let mut written = self.0.iter().filter(|c| c.is_written());
        let first = written.next().copied();
        let uniform = first.is_some_and(|f| written.all(|c| *c == f));
        match (uniform, first) {
            (true, Some(clock)) => {
                let mut out = Vec::with_capacity(1 + self.0.len().div_ceil(8) + CELL_BYTES);
                out.push(UNIFORM);
                let mut bitmap = vec![0u8; self.0.len().div_ceil(8)];
                for (i, c) in self.0.iter().enumerate() {
                    if c.is_written() {
                        bitmap[i / 8] |= 1 << (i % 8);
                    }
                }
                out.extend_from_slice(&bitmap);
                clock.write(&mut out);
                out
            }
            _ => {
                let mut out = Vec::with_capacity(1 + self.0.len() * CELL_BYTES);
                out.push(PER_CELL);
                for c in &self.0 {
                    c.write(&mut out);
                }
                out
            }
        }
    }

    /// Decodes a blob for a table of `columns` columns; `None` if the blob
    /// is malformed (a damaged row). A blob written when the table had
    /// fewer columns (columns are only ever added at the end) decodes with
    /// the later columns unwritten: adding a column rewrites no row.
    pub fn decode(bytes: &[u8], columns: usize) -> Option<RowClocks> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            UNIFORM => {
                let map_len = rest.len().checked_sub(CELL_BYTES)?;
                if map_len > columns.div_ceil(8) {
                    return None;
                }
                let clock = CellClock::read(&rest[map_len..])?;
                // No bit may name a column the table does not have.
                for i in columns..map_len * 8 {
                    if rest[i / 8] & (1 << (i % 8)) != 0 {
                        return None;
                    }
                }
                let cells = (0..columns)
                    .map(|i| {
                        let written = i / 8 < map_len && rest[i / 8] & (1 << (i % 8)) != 0;
                        if written { clock } else { CellClock::default() }
                    })
                    .collect();
                Some(RowClocks(cells))
            }
            PER_CELL => {
                if rest.len() % CELL_BYTES != 0 || rest.len() / CELL_BYTES > columns {
                    return None;
                }
                let mut cells = rest
                    .chunks_exact(CELL_BYTES)
                    .map(CellClock::read)
                    .collect::<Option<Vec<_>>>()?;
                cells.resize(columns, CellClock::default());
                Some(RowClocks(cells))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(hlc: u64, seq: u64) -> CellClock {
        CellClock {
            hlc: Hlc(hlc),
            site: 4,
            via: 2,
            seq,
        }
    }

    #[test]
    fn a_row_written_at_once_packs_into_one_clock() {
        let mut r = RowClocks::new(9);
        for i in [0, 3, 8] {
            r.0[i] = clock(99, 7);
        }
        let bytes = r.encode();
        assert_eq!(bytes.len(), 1 + 2 + CELL_BYTES);
        assert_eq!(RowClocks::decode(&bytes, 9), Some(r.clone()));
        // A table that has grown to 17 columns reads it with the new ones
        // unwritten; one of 8 cannot hold bit 8.
        let mut wider = r.clone();
        wider.0.resize(17, CellClock::default());
        assert_eq!(RowClocks::decode(&bytes, 17), Some(wider));
        assert_eq!(RowClocks::decode(&bytes, 8), None);
    }

    #[test]
    fn mixed_clocks_keep_one_per_cell() {
        let mut r = RowClocks::new(3);
        r.0[0] = clock(99, 7);
        r.0[2] = clock(100, 8);
        let bytes = r.encode();
        assert_eq!(bytes.len(), 1 + 3 * CELL_BYTES);
        assert_eq!(RowClocks::decode(&bytes, 3), Some(r.clone()));
        assert_eq!(RowClocks::decode(&bytes, 2), None);
        // Read with a column more (added since): the new one is unwritten.
        let mut wider = r.clone();
        wider.0.push(CellClock::default());
        assert_eq!(RowClocks::decode(&bytes, 4), Some(wider));
        assert_eq!(RowClocks::decode(&[9, 1, 2], 3), None);
        assert_eq!(RowClocks::decode(&[], 3), None);
        // A row with nothing written yet.
        let empty = RowClocks::new(4);
        assert_eq!(RowClocks::decode(&empty.encode(), 4), Some(empty));
    }
}
