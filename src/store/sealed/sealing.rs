//! Sealing the sealed cells of local writes, apart from the store so that
//! a large batch's next chunk is sealed while the previous one merges.
//!
//! Owns: binding each sealed cell to its table, row, column, stamp and
//! site, and sealing many on every core.
//! Must not: touch SQLite, log a value, or put a plaintext into an error.

use std::sync::Arc;

use crate::clock::Hlc;
use crate::config::{Group, Privacy, Schema};
use crate::seal::{self, Binding, SealError};
use crate::stamp::SiteId;
use crate::store::layout::TableSql;
use crate::value::Plaintext;

/// Batches with at least this many sealed cells are sealed on every core.
const PARALLEL_SEAL_THRESHOLD: usize = 16;

/// One row of a bulk put, validated: column slots instead of names.
pub(in crate::store) struct PendingRow {
    pub id: String,
    pub cells: Vec<(usize, Plaintext)>,
}

/// What sealing one table's cells needs: owned, so it can run on another
/// thread while the store merges.
pub(in crate::store) struct Sealer {
    pub table: TableSql,
    pub schema: Arc<Schema>,
    pub site: SiteId,
    pub threads: usize,
}

impl Sealer {
    /// Whether any cell of `rows` is in a sealed column.
    pub fn seals_any(&self, rows: &[PendingRow]) -> bool {
        rows.iter()
            .flat_map(|row| &row.cells)
            .any(|(c, _)| self.table.defs[*c].is_sealed())
    }

    /// Seals every sealed cell of `rows`, in row and column order.
    pub fn seal_all(&self, rows: &[PendingRow], stamps: &[Hlc]) -> Result<Vec<Vec<u8>>, SealError> {
        let table = &self.table;
        let site = self.site;
        let mut jobs = Vec::new();
        for (row, hlc) in rows.iter().zip(stamps) {
            for (c, plaintext) in &row.cells {
                if let Privacy::Sealed { group } = &table.defs[*c].privacy {
                    let group =
                        self.schema
                            .group(group)
                            .ok_or_else(|| SealError::NoRecipients {
                                group: group.clone(),
                            })?;
                    let binding = Binding {
                        table: &table.name,
                        id: &row.id,
                        column: &table.defs[*c].name,
                        hlc: *hlc,
                        site,
                    };
                    jobs.push((group, binding, plaintext));
                }
            }
        }
        let run = |jobs: &[(&Group, Binding<'_>, &Plaintext)]| -> Vec<Result<Vec<u8>, SealError>> {
            jobs.iter().map(|(g, b, p)| seal::seal(g, b, p)).collect()
        };
        let threads = self.threads;
        let results: Vec<Result<Vec<u8>, SealError>> =
            if jobs.len() < PARALLEL_SEAL_THRESHOLD || threads == 1 {
                run(&jobs)
            } else {
                let chunk = jobs.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    let handles: Vec<_> = jobs
                        .chunks(chunk)
                        .map(|part| scope.spawn(move || run(part)))
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| {
                            h.join().unwrap_or_else(|_| {
                                vec![Err(SealError::Encrypt {
                                    table: table.name.clone(),
                                    id: String::new(),
                                    column: String::new(),
                                    reason: "a sealing thread panicked".into(),
                                })]
                            })
                        })
                        .collect()
                })
            };
        results.into_iter().collect()
    }
}
