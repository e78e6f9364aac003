//! The tables and columns of a schema as the rest of puente sees them:
//! each table's columns in canonical (name) order, each column's privacy
//! class and type.
//!
//! Owns: `TableDef`, `ColumnDef`, `Privacy` and the questions asked of
//! them (a column's index, whether it is sealed and to which group).
//! Must not: parse or validate a schema file (schema.rs does), or know
//! about write rights (rights.rs, which names tables, sits beside).

use super::types::ColumnType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privacy {
    /// Plaintext everywhere.
    Shared,
    /// Age-encrypted to the recipients of the named group.
    Sealed { group: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub privacy: Privacy,
    /// What the column may hold (none: anything).
    pub ty: Option<ColumnType>,
    /// Every row written here must hold a value (`required = true`): the
    /// writer's check on local writes, imports and the web form. Changes
    /// from peers are merged whatever they hold (an older office, or one
    /// whose schema does not require it yet, loses nothing).
    pub required: bool,
}

impl ColumnDef {
    pub fn is_sealed(&self) -> bool {
        matches!(self.privacy, Privacy::Sealed { .. })
    }

    pub fn group(&self) -> Option<&str> {
        match &self.privacy {
            Privacy::Sealed { group } => Some(group),
            Privacy::Shared => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    /// Sorted by name: a column's index here is its id on the wire and in
    /// the replica's per-cell metadata.
    pub columns: Vec<ColumnDef>,
    /// Column indices in the order the schema file lists them (used for the
    /// SQL table layout, so `SELECT *` reads naturally).
    pub file_order: Vec<usize>,
}

impl TableDef {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
    }

    pub fn has_sealed(&self) -> bool {
        self.columns.iter().any(ColumnDef::is_sealed)
    }
}
