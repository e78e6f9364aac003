//! Owns: carrying out a schema plan (plan.rs) on the replica, in one
//! transaction: new tables and columns (no row rewritten), types checked
//! and values normalised in place, drops that erase values and keep the
//! digest in step, sealed → shared where the admin asked, shared → sealed
//! as new versions that sync everywhere; then the replica's record of its
//! columns and the store's tables and counts for the new schema.
//!
//! Must not: decide what may change (plan.rs), log or return a value.

use std::sync::Arc;

use rusqlite::params;

use crate::clock::Hlc;
use crate::config::{ColumnDef, Privacy, Schema};
use crate::store::adopt::plan::{self as adopt, AdoptionPlan, Allow};
use crate::store::cells::clocks::RowClocks;
use crate::store::cells::digest::tombstone_hash;
use crate::store::layout::columns::tables_as_stored;
use crate::store::layout::columns::{self, StoredTable};
use crate::store::layout::tombstones;
use crate::store::layout::{TableSql, column_declaration, quote};
use crate::store::read::read_raw;
use crate::store::sealed::sealing::PendingRow;
use crate::store::{RowCounts, SqlContext, Store, StoreError};
use crate::value::{Plaintext, Value};

/// Misfits shown in an error, at most.
const EXAMPLES: usize = 5;

impl Store {
    /// What adopting `schema` would change (nothing is written).
    pub fn schema_plan(&self, schema: &Schema) -> Result<AdoptionPlan, StoreError> {
        Ok(adopt::plan(&columns::read(&self.conn)?, schema))
    }

    /// The store after adopting `schema` (at open).
    pub(in crate::store) fn adopted(
        mut self,
        schema: Arc<Schema>,
        allow: &Allow,
    ) -> Result<Store, StoreError> {
        self.adopt_schema(schema, allow)?;
        if self.keysets_scanned() {
            self.rescan_keysets()?;
        }
        Ok(self)
    }

    /// Brings the replica to `schema`: additive changes, shared → sealed
    /// and new types by themselves; drops and sealed → shared only as
    /// `allow` says; anything else refused with what to do. All or nothing.
    pub fn adopt_schema(
        &mut self,
        schema: Arc<Schema>,
        allow: &Allow,
    ) -> Result<AdoptionPlan, StoreError> {
        let stored = columns::read(&self.conn)?;
        let plan = adopt::plan(&stored, &schema);
        if let Some(why) = adopt::refusal(&plan, allow) {
            return Err(StoreError::SchemaChangeRefused {
                path: self.path.clone(),
                why,
            });
        }
        if plan.is_empty() {
            // Recipients, rights or nothing changed: the tables stay.
            self.tables = tables_for(&schema, &stored);
            self.schema = schema;
            return Ok(plan);
        }
        let (tables, old_schema) = (self.tables.clone(), self.schema.clone());
        let done = self.transaction(|store| store.carry_out(&plan, stored, &schema, allow));
        if let Err(e) = done {
            self.tables = tables;
            self.schema = old_schema;
            return Err(e);
        }
        if plan.erases() {
            // No page of the WAL keeps an erased value or plaintext.
            self.checkpoint()?;
        }
        for change in plan.describe() {
            tracing::info!(replica = %self.path.display(), "schema: {change}");
        }
        Ok(plan)
    }

    fn carry_out(
        &mut self,
        plan: &AdoptionPlan,
        mut layout: Vec<StoredTable>,
        schema: &Arc<Schema>,
        allow: &Allow,
    ) -> Result<(), StoreError> {
        for name in &plan.new_tables {
            if let Some(table) = schema.table(name) {
                self.conn
                    .execute_batch(&TableSql::for_new_table(table).create)
                    .ctx("adding a table")?;
                layout.push(StoredTable {
                    name: name.clone(),
                    columns: table.columns.clone(),
                });
            }
        }
        for (table, def) in &plan.new_columns {
            self.conn
                .execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    quote(table),
                    column_declaration(def)
                ))
                .ctx("adding a column")?;
            if let Some(t) = layout.iter_mut().find(|t| &t.name == table) {
                t.columns.push(def.clone());
            }
        }
        layout.sort_by(|a, b| a.name.cmp(&b.name));
        self.use_layout(&layout)?;

        for (table, column, ty) in &plan.typed {
            self.check_type(table, column, ty)?;
            set(&mut layout, table, column, |c| c.ty = Some(ty.clone()));
        }
        for (table, column) in &plan.untyped {
            set(&mut layout, table, column, |c| c.ty = None);
        }
        for name in &plan.dropped_tables {
            self.drop_table(name)?;
            layout.retain(|t| &t.name != name);
        }
        for (table, column) in &plan.dropped_columns {
            self.drop_column(table, column)?;
            if let Some(t) = layout.iter_mut().find(|t| &t.name == table) {
                t.columns.retain(|c| &c.name != column);
            }
        }
        self.use_layout(&layout)?;

        for (table, column) in plan.to_unseal.iter().filter(|c| allow.unseal.contains(c)) {
            self.unseal_column(table, column, &mut layout)?;
        }
        for (table, column, group) in &plan.to_seal {
            set(&mut layout, table, column, |c| {
                c.privacy = Privacy::Sealed {
                    group: group.clone(),
                }
            });
            // The schema's recipients seal the values.
            self.schema = schema.clone();
            self.use_layout(&layout)?;
            self.rewrite_as_new_versions(table, column)?;
        }

        // The record: slots as they are, each column as the schema says.
        for t in &mut layout {
            if let Some(def) = schema.table(&t.name) {
                for c in &mut t.columns {
                    if let Some(i) = def.column_index(&c.name) {
                        *c = def.columns[i].clone();
                    }
                }
            }
        }
        columns::write(&self.conn, &layout)?;
        self.schema = schema.clone();
        let before = std::mem::replace(&mut self.tables, tables_for(schema, &layout));
        let cells_changed = !plan.to_seal.is_empty()
            || plan.to_unseal.iter().any(|c| allow.unseal.contains(c))
            || !plan.dropped_columns.is_empty()
            || !plan.dropped_tables.is_empty();
        if cells_changed {
            self.recount_state()
        } else {
            // Only the layout moved (new tables and columns start empty):
            // no need to read every row again.
            self.carry_counts(&before);
            Ok(())
        }
    }

    /// Works on the tables as `layout` records them (privacy and types as
    /// stored). The counts follow by table name; steps that change cells
    /// recount at the end.
    fn use_layout(&mut self, layout: &[StoredTable]) -> Result<(), StoreError> {
        let before = std::mem::replace(&mut self.tables, tables_as_stored(layout));
        self.carry_counts(&before);
        Ok(())
    }

    /// Re-keys the per-table counts from `before`'s order to the current
    /// tables' order by name (a table new to the replica has none).
    fn carry_counts(&mut self, before: &[TableSql]) {
        let carried = |values: &[u64], name: &str| {
            before
                .iter()
                .position(|t| t.name == name)
                .and_then(|i| values.get(i).copied())
                .unwrap_or(0)
        };
        let rows = self
            .tables
            .iter()
            .map(|t| carried(&self.state.counts.rows, &t.name))
            .collect();
        let tombstones = self
            .tables
            .iter()
            .map(|t| carried(&self.state.tombstones, &t.name))
            .collect();
        self.state.counts.rows = rows;
        self.state.tombstones = tombstones;
    }

    fn recount_state(&mut self) -> Result<(), StoreError> {
        self.state.counts = RowCounts::scan(&self.conn, &self.tables)?;
        self.rescan_keysets()?;
        self.state.tombstones = tombstones::count_per_table(&self.conn, &self.tables)?;
        Ok(())
    }

    fn index_of(&self, table: &str) -> Result<usize, StoreError> {
        self.tables
            .iter()
            .position(|t| t.name == table)
            .ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("table {table} is not in the replica's record of its layout"),
            })
    }

    /// Every row of table `t`: (id, clocks, values by slot).
    fn all_rows(&self, t: usize) -> Result<Vec<(String, RowClocks, Vec<Value>)>, StoreError> {
        let sql = &self.tables[t];
        let mut stmt = self.conn.prepare(&sql.page).ctx("reading a table")?;
        let raws = stmt
            .query_map(params!["", i64::MAX], |r| read_raw(r, sql.columns))
            .ctx("reading a table")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("reading a table")?;
        raws.into_iter()
            .map(|raw| {
                let clocks = self.decode_clocks(t, &raw.0, &raw.1)?;
                Ok((raw.0, clocks, raw.2))
            })
            .collect()
    }

    /// Every value of a newly typed column fits (else nothing changes and
    /// the misfits are named); shared values are stored in their typed
    /// form, their versions unchanged, the digest kept in step. Sealed
    /// values are checked where an identity can open them.
    fn check_type(
        &mut self,
        table: &str,
        column: &str,
        ty: &crate::config::types::ColumnType,
    ) -> Result<(), StoreError> {
        let t = self.index_of(table)?;
        let c = self.column_index(t, column)?;
        let sealed = self.tables[t].defs[c].is_sealed();
        let group = self.tables[t].defs[c].group().map(str::to_string);
        let can_open = group.as_deref().is_some_and(|g| self.can_unseal(g));
        if sealed && !can_open {
            tracing::warn!(
                table,
                column,
                "the new type of a sealed column cannot be checked here (no identity of its group); the offices holding one check it"
            );
            return Ok(());
        }
        let mut misfits = Vec::new();
        let mut normalise = Vec::new();
        for (id, clocks, values) in self.all_rows(t)? {
            let clock = clocks.0[c];
            if !clock.is_written() {
                continue;
            }
            if sealed {
                let plain = self.open_cell(t, &id, c, &values[c], &clock.hlc, clock.site)?;
                if let Err(m) = ty.coerce(plain.expose()) {
                    misfits.push(format!("{id}: {m}"));
                }
                continue;
            }
            match ty.coerce(&values[c]) {
                Err(m) => misfits.push(format!("{id}: {}", m.showing(&values[c]))),
                Ok(v) if v != values[c] => normalise.push((id, clock, values[c].clone(), v)),
                Ok(_) => {}
            }
        }
        if !misfits.is_empty() {
            return Err(StoreError::TypeMisfits {
                table: table.into(),
                column: column.into(),
                expected: ty.expected(),
                count: misfits.len(),
                examples: misfits
                    .into_iter()
                    .take(EXAMPLES)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let sql = format!(
            "UPDATE {} SET {} = ?1 WHERE id = ?2",
            quote(table),
            quote(column)
        );
        for (id, clock, old, new) in normalise {
            self.conn
                .execute(&sql, params![new, id])
                .ctx("storing a value in its type")?;
            let before = self.hash_cell(t, &id, c, &old, &clock);
            let after = self.hash_cell(t, &id, c, &new, &clock);
            self.state.digest.sub(&before);
            self.state.digest.add(&after);
        }
        Ok(())
    }

    /// Erases a table: its rows and tombstones leave the digest.
    fn drop_table(&mut self, name: &str) -> Result<(), StoreError> {
        let t = self.index_of(name)?;
        for (id, clocks, values) in self.all_rows(t)? {
            for (c, clock) in clocks.0.iter().enumerate() {
                if clock.is_written() {
                    let h = self.hash_cell(t, &id, c, &values[c], clock);
                    self.state.digest.sub(&h);
                }
            }
        }
        let tombstones: Vec<(String, i64, i64)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, hlc, site FROM _puente_tombstones WHERE tbl = ?1")
                .ctx("reading tombstones")?;
            stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .ctx("reading tombstones")?
                .collect::<Result<_, _>>()
                .ctx("reading tombstones")?
        };
        for (id, hlc, site) in tombstones {
            let h = tombstone_hash(name, &id, Hlc(hlc as u64), &self.state.sites[site as usize]);
            self.state.digest.sub(&h);
        }
        self.conn
            .execute("DELETE FROM _puente_tombstones WHERE tbl = ?1", [name])
            .ctx("erasing a table's tombstones")?;
        self.conn
            .execute_batch(&format!("DROP TABLE {}", quote(name)))
            .ctx("dropping a table")
    }

    /// Erases a column: its cells leave the digest and every row's clocks,
    /// then the SQL column goes (SQLite rewrites the table; secure_delete
    /// overwrites what it frees).
    fn drop_column(&mut self, table: &str, column: &str) -> Result<(), StoreError> {
        let t = self.index_of(table)?;
        let c = self.column_index(t, column)?;
        let update = format!(
            "UPDATE {} SET _puente_clocks = ?1 WHERE id = ?2",
            quote(table)
        );
        for (id, mut clocks, values) in self.all_rows(t)? {
            let clock = clocks.0[c];
            if clock.is_written() {
                let h = self.hash_cell(t, &id, c, &values[c], &clock);
                self.state.digest.sub(&h);
            }
            clocks.0.remove(c);
            self.conn
                .execute(&update, params![clocks.encode(), id])
                .ctx("erasing a column's clocks")?;
        }
        self.conn
            .execute_batch(&format!(
                "ALTER TABLE {} DROP COLUMN {}",
                quote(table),
                quote(column)
            ))
            .ctx("dropping a column")
    }

    /// Sealed → shared, as the admin asked: where an identity of the group
    /// is held, every value is opened and written back shared as a new
    /// version; elsewhere the column is only relabelled (the office that
    /// opened them sends the shared versions).
    fn unseal_column(
        &mut self,
        table: &str,
        column: &str,
        layout: &mut [StoredTable],
    ) -> Result<(), StoreError> {
        let t = self.index_of(table)?;
        let c = self.column_index(t, column)?;
        let group = self.tables[t].defs[c]
            .group()
            .unwrap_or_default()
            .to_string();
        let opened: Vec<PendingRow> = if self.can_unseal(&group) {
            let mut rows = Vec::new();
            for (id, clocks, values) in self.all_rows(t)? {
                let clock = clocks.0[c];
                if clock.is_written() {
                    let plain = self.open_cell(t, &id, c, &values[c], &clock.hlc, clock.site)?;
                    rows.push(PendingRow {
                        id,
                        cells: vec![(c, plain)],
                    });
                }
            }
            rows
        } else {
            Vec::new()
        };
        set(layout, table, column, |d| d.privacy = Privacy::Shared);
        self.use_layout(layout)?;
        if !opened.is_empty() {
            let t = self.index_of(table)?;
            self.write_rows(t, opened)?;
        }
        Ok(())
    }

    /// Writes every written value of a column again as a new local version
    /// (for shared → sealed: the column is sealed now, so each value is
    /// sealed, in parallel, and the plaintext overwritten).
    fn rewrite_as_new_versions(&mut self, table: &str, column: &str) -> Result<(), StoreError> {
        let t = self.index_of(table)?;
        let c = self.column_index(t, column)?;
        let rows: Vec<PendingRow> = self
            .all_rows(t)?
            .into_iter()
            .filter(|(_, clocks, _)| clocks.0[c].is_written())
            .map(|(id, _, mut values)| PendingRow {
                id,
                cells: vec![(c, Plaintext::new(std::mem::take(&mut values[c])))],
            })
            .collect();
        self.write_rows(t, rows)?;
        Ok(())
    }
}

impl Store {
    /// Ids of the rows whose `column` was written here after change
    /// sequence `seq` (what an unseal opened, for the audit log).
    pub fn rows_written_since(
        &self,
        table: &str,
        column: &str,
        seq: u64,
    ) -> Result<Vec<String>, StoreError> {
        let t = self.table_index(table)?;
        let c = self.column_index(t, column)?;
        Ok(self
            .all_rows(t)?
            .into_iter()
            .filter(|(_, clocks, _)| clocks.0[c].is_written() && clocks.0[c].seq > seq)
            .map(|(id, _, _)| id)
            .collect())
    }
}

/// Changes one column of the layout record.
fn set(layout: &mut [StoredTable], table: &str, column: &str, f: impl FnOnce(&mut ColumnDef)) {
    if let Some(c) = layout
        .iter_mut()
        .find(|t| t.name == table)
        .and_then(|t| t.columns.iter_mut().find(|c| c.name == column))
    {
        f(c);
    }
}

/// The store's tables for `schema`, in its (canonical) order, each with
/// the slots the replica records.
pub(in crate::store) fn tables_for(schema: &Schema, layout: &[StoredTable]) -> Vec<TableSql> {
    schema
        .tables
        .iter()
        .map(|table| match layout.iter().find(|t| t.name == table.name) {
            Some(stored) => TableSql::new(table, stored.columns.clone()),
            None => TableSql::for_new_table(table),
        })
        .collect()
}
