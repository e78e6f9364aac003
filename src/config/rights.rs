//! Write rights per office, from the shared schema: which offices may
//! insert, update (per column, where needed) and delete the rows of each
//! table.
//!
//! ```toml
//! offices = ["tijuana", "san-diego"]
//!
//! [tables.residents.rights]
//! insert = ["tijuana", "san-diego"]
//! update = ["tijuana"]
//! delete = ["tijuana"]
//! [tables.residents.rights.columns]    # who may update these columns
//! status = ["tijuana", "san-diego"]
//! ```
//!
//! A missing key means every office; a table without `rights` lets every
//! office do everything (as a schema without rights does). An office that
//! is not listed, or a change whose office cannot be told, is held to the
//! strictest reading: only what every listed office may do.
//!
//! Owns: parsing `offices` and `[tables.NAME.rights]` (unknown offices,
//! columns and keys are errors by file and line), the canonical lines the
//! rights add to the schema hash (none when no rights are given, so such a
//! schema keeps its hash), and the decisions "may this office insert,
//! update this column, delete, in this table" with the sentence that says
//! which right is missing.
//! Must not: touch SQLite, or know sites, peers or sessions (store/ binds
//! a change to the office it came from).

use serde::Deserialize;
use toml::Spanned;

use super::tables::TableDef;
use super::{ConfigError, Entries, SpanError, is_identifier};

/// Offices a schema may list (they are bits of an `OfficeSet`).
pub const MAX_OFFICES: usize = 64;

/// A set of listed offices: bit `i` is `Rights::offices()[i]`.
pub type OfficeSet = u64;

/// What a change does to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteAction {
    Insert,
    Update,
    Delete,
}

impl WriteAction {
    pub fn name(self) -> &'static str {
        match self {
            WriteAction::Insert => "insert",
            WriteAction::Update => "update",
            WriteAction::Delete => "delete",
        }
    }

    pub fn parse(name: &str) -> Option<WriteAction> {
        match name {
            "insert" => Some(WriteAction::Insert),
            "update" => Some(WriteAction::Update),
            "delete" => Some(WriteAction::Delete),
            _ => None,
        }
    }
}

/// Whom a change is judged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A listed office (index into `Rights::offices()`).
    Office(u8),
    /// Anyone else: an office the schema does not list, or a change whose
    /// office cannot be told. Held to what every listed office may do.
    Unknown,
}

/// The rights of one table; `None` means every office.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRights {
    pub insert: Option<OfficeSet>,
    pub update: Option<OfficeSet>,
    pub delete: Option<OfficeSet>,
    /// Per column (canonical index): who may update it, where given
    /// (instead of `update`).
    pub columns: Vec<Option<OfficeSet>>,
}

impl TableRights {
    fn is_open(&self) -> bool {
        self.insert.is_none()
            && self.update.is_none()
            && self.delete.is_none()
            && self.columns.iter().all(Option::is_none)
    }

    /// Who may do `action` (for an update, of `column`).
    pub fn who(&self, action: WriteAction, column: Option<usize>) -> Option<OfficeSet> {
        match action {
            WriteAction::Insert => self.insert,
            WriteAction::Delete => self.delete,
            WriteAction::Update => column
                .and_then(|c| self.columns.get(c).copied().flatten())
                .or(self.update),
        }
    }
}

/// The schema's rights: the listed offices and each table's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// Sorted by name.
    offices: Vec<String>,
    /// Indexed like `Schema::tables`; empty when no table has rights.
    tables: Vec<TableRights>,
}

impl Rights {
    /// No rights: every office may do everything.
    pub fn none() -> Rights {
        Rights::default()
    }

    /// Whether any table restricts anything (only then are changes judged).
    pub fn is_active(&self) -> bool {
        !self.tables.is_empty()
    }

    /// Whether table `t` restricts anything.
    pub fn restricts(&self, t: usize) -> bool {
        self.tables.get(t).is_some_and(|r| !r.is_open())
    }

    pub fn table(&self, t: usize) -> Option<&TableRights> {
        self.tables.get(t)
    }

    /// The listed offices, sorted.
    pub fn offices(&self) -> &[String] {
        &self.offices
    }

    /// Whether the schema lists this office (or lists none at all).
    pub fn knows(&self, office: &str) -> bool {
        self.offices.is_empty() || self.office_index(office).is_some()
    }

    pub fn office_index(&self, name: &str) -> Option<u8> {
        self.offices
            .binary_search_by(|o| o.as_str().cmp(name))
            .ok()
            .map(|i| i as u8)
    }

    /// How a change made by `office` (a node name) is judged.
    pub fn actor(&self, office: &str) -> Actor {
        self.office_index(office)
            .map_or(Actor::Unknown, Actor::Office)
    }

    fn all(&self) -> OfficeSet {
        if self.offices.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.offices.len()) - 1
        }
    }

    /// Whether `actor` may do `action` in table `t` (for an update, of
    /// `column`). An unknown actor may only what every listed office may.
    pub fn allows(
        &self,
        t: usize,
        action: WriteAction,
        column: Option<usize>,
        actor: Actor,
    ) -> bool {
        let Some(table) = self.tables.get(t) else {
            return true;
        };
        match table.who(action, column) {
            None => true,
            Some(set) => match actor {
                Actor::Office(i) => set & (1u64 << i) != 0,
                Actor::Unknown => set & self.all() == self.all(),
            },
        }
    }

    /// The offices of a set as people read them.
    pub fn names(&self, set: OfficeSet) -> String {
        let names: Vec<&str> = self
            .offices
            .iter()
            .enumerate()
            .filter(|(i, _)| set & (1u64 << i) != 0)
            .map(|(_, n)| n.as_str())
            .collect();
        if names.is_empty() {
            "no office".into()
        } else {
            names.join(", ")
        }
    }

    /// Why `who` may not do `action` in `table` (to `columns`, for an
    /// update): "san-diego may not delete rows of residents (rights: delete
    /// = tijuana)". `columns` holds the forbidden columns' indices.
    pub fn refusal(
        &self,
        table: &TableDef,
        t: usize,
        action: WriteAction,
        columns: &[usize],
        who: &str,
    ) -> String {
        let Some(rights) = self.tables.get(t) else {
            return format!("{who} may not {} rows of {}", action.name(), table.name);
        };
        let set_text = |set: Option<OfficeSet>| match set {
            Some(s) => self.names(s),
            None => "every office".into(),
        };
        match action {
            WriteAction::Insert | WriteAction::Delete => format!(
                "{who} may not {} rows of {} (rights: {} = {})",
                action.name(),
                table.name,
                action.name(),
                set_text(rights.who(action, None))
            ),
            WriteAction::Update => {
                let names: Vec<&str> = columns
                    .iter()
                    .filter_map(|c| table.columns.get(*c))
                    .map(|c| c.name.as_str())
                    .collect();
                let mut why: Vec<String> = Vec::new();
                for c in columns {
                    let text = match rights.columns.get(*c).copied().flatten() {
                        Some(set) => format!(
                            "columns.{} = {}",
                            table.columns.get(*c).map_or("?", |c| c.name.as_str()),
                            self.names(set)
                        ),
                        None => format!("update = {}", set_text(rights.update)),
                    };
                    if !why.contains(&text) {
                        why.push(text);
                    }
                }
                format!(
                    "{who} may not update {} of {} (rights: {})",
                    names.join(", "),
                    table.name,
                    why.join("; ")
                )
            }
        }
    }

    /// The lines the rights add to the canonical schema text: none when
    /// the schema lists no offices and no rights (so it keeps its hash).
    pub fn canonical_lines(&self, tables: &[TableDef]) -> String {
        let mut out = String::new();
        if !self.offices.is_empty() {
            out.push_str(&format!("offices {}\n", self.offices.join(",")));
        }
        let list = |set: OfficeSet| {
            let names: Vec<&str> = self
                .offices
                .iter()
                .enumerate()
                .filter(|(i, _)| set & (1u64 << i) != 0)
                .map(|(_, n)| n.as_str())
                .collect();
            if names.is_empty() {
                "-".to_string()
            } else {
                names.join(",")
            }
        };
        for (rights, table) in self.tables.iter().zip(tables) {
            for (action, set) in [
                (WriteAction::Insert, rights.insert),
                (WriteAction::Update, rights.update),
                (WriteAction::Delete, rights.delete),
            ] {
                if let Some(set) = set {
                    out.push_str(&format!(
                        "rights {} {} {}\n",
                        table.name,
                        action.name(),
                        list(set)
                    ));
                }
            }
            for (column, set) in table.columns.iter().zip(&rights.columns) {
                if let Some(set) = set {
                    out.push_str(&format!(
                        "rights {} update {} {}\n",
                        table.name,
                        column.name,
                        list(*set)
                    ));
                }
            }
        }
        out
    }
}

// ---- file format -------------------------------------------------------

/// The top-level `offices = [...]`.
pub(super) type OfficesFile = Spanned<Vec<Spanned<String>>>;

/// One `[tables.NAME.rights]` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RightsFile {
    insert: Option<Spanned<Vec<Spanned<String>>>>,
    update: Option<Spanned<Vec<Spanned<String>>>>,
    delete: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    columns: Entries<Spanned<Vec<Spanned<String>>>>,
}

/// Builds the rights from the file's `offices` and each table's `rights`
/// (`sections` in the order of `tables`, which is sorted by name).
pub(super) fn build(
    offices: Option<OfficesFile>,
    sections: Vec<(String, Option<Spanned<RightsFile>>)>,
    tables: &[TableDef],
    err: &SpanError<'_>,
) -> Result<Rights, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    if let Some(list) = &offices {
        for name in list.get_ref() {
            let n = name.get_ref();
            if !is_identifier(n, true) {
                return Err(err(
                    name.span(),
                    format!(
                        "offices: `{n}` is not a node name: use lowercase letters, digits, '-' and '_', starting with a letter (the `name` in each office's node config)"
                    ),
                ));
            }
            if names.contains(n) {
                return Err(err(name.span(), format!("offices: `{n}` is listed twice")));
            }
            names.push(n.clone());
        }
        if names.len() > MAX_OFFICES {
            return Err(err(
                list.span(),
                format!("offices: at most {MAX_OFFICES} offices can be listed"),
            ));
        }
    }
    names.sort();
    let mut rights = Rights {
        offices: names,
        tables: Vec::new(),
    };
    let mut per_table: Vec<TableRights> = Vec::with_capacity(tables.len());
    let mut any = false;
    for table in tables {
        let section = sections
            .iter()
            .find(|(name, _)| name == &table.name)
            .and_then(|(_, s)| s.as_ref());
        let mut tr = TableRights {
            columns: vec![None; table.columns.len()],
            ..TableRights::default()
        };
        if let Some(section) = section {
            if offices.is_none() {
                return Err(err(
                    section.span(),
                    format!(
                        "tables.{}.rights: rights name offices, so the schema must list them: add `offices = [\"tijuana\", \"san-diego\"]` (the node name of every office) at the top of the file",
                        table.name
                    ),
                ));
            }
            let file = section.get_ref();
            let key = |what: &str| format!("tables.{}.rights.{what}", table.name);
            tr.insert = set_of(&rights, file.insert.as_ref(), &key("insert"), err)?;
            tr.update = set_of(&rights, file.update.as_ref(), &key("update"), err)?;
            tr.delete = set_of(&rights, file.delete.as_ref(), &key("delete"), err)?;
            for (column, list) in &file.columns.entries {
                let name = column.get_ref();
                let Some(c) = table.column_index(name) else {
                    let known: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(err(
                        column.span(),
                        format!(
                            "{}: unknown column `{name}`; the table has: {}",
                            key(&format!("columns.{name}")),
                            known.join(", ")
                        ),
                    ));
                };
                tr.columns[c] = set_of(&rights, Some(list), &key(&format!("columns.{name}")), err)?;
            }
        }
        any |= !tr.is_open();
        per_table.push(tr);
    }
    if any {
        rights.tables = per_table;
    }
    Ok(rights)
}

/// One list of offices, each a listed office.
fn set_of(
    rights: &Rights,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
    err: &SpanError<'_>,
) -> Result<Option<OfficeSet>, ConfigError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut set = 0;
    for name in list.get_ref() {
        match rights.office_index(name.get_ref()) {
            Some(i) => set |= 1u64 << i,
            None => {
                return Err(err(
                    name.span(),
                    format!(
                        "{key}: unknown office `{}`; the schema's offices are: {} (add it to `offices` at the top of the file if it is a new office)",
                        name.get_ref(),
                        rights.offices.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Some(set))
}

#[cfg(test)]
#[path = "rights_tests.rs"]
mod tests;
