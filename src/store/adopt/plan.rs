//! Owns: what it takes for a replica to adopt a schema, decided without
//! SQLite: the plan (tables and columns added or dropped, privacy and types
//! changed) between the replica's record of its layout (columns.rs) and the
//! schema, and which of those changes may happen by themselves.
//!
//! Additive changes (a new table, a new column, shared or sealed, a new
//! group), shared → sealed (every value sealed anew) and a new type whose
//! values all fit happen at start or reload. Drops need an explicit
//! `--allow-drop`; sealed → shared needs `puente schema unseal`; a changed
//! type, or a column moved to another seal group, is refused with the way
//! to do it instead.
//! Must not: touch SQLite (execute.rs carries a plan out).

use crate::config::types::ColumnType;
use crate::config::{ColumnDef, Schema};
use crate::store::layout::columns::StoredTable;

/// Changes that need a word from the admin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Erase dropped tables and columns (`--allow-drop`).
    pub drop: bool,
    /// Columns (table, column) to take from sealed to shared.
    pub unseal: Vec<(String, String)>,
}

/// (table, column)
pub type ColumnRef = (String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdoptionPlan {
    pub new_tables: Vec<String>,
    /// Columns added to existing tables, as the schema defines them.
    pub new_columns: Vec<(String, ColumnDef)>,
    pub dropped_tables: Vec<String>,
    pub dropped_columns: Vec<ColumnRef>,
    /// Shared in the replica, sealed to this group in the schema.
    pub to_seal: Vec<(String, String, String)>,
    /// Sealed in the replica, shared in the schema.
    pub to_unseal: Vec<ColumnRef>,
    /// Sealed to one group in the replica, another in the schema.
    pub regrouped: Vec<(String, String, String, String)>,
    /// A type where there was none.
    pub typed: Vec<(String, String, ColumnType)>,
    /// One type for another.
    pub retyped: Vec<(String, String, ColumnType, ColumnType)>,
    /// A type dropped (the column takes anything again).
    pub untyped: Vec<ColumnRef>,
}

impl AdoptionPlan {
    pub fn is_empty(&self) -> bool {
        *self == AdoptionPlan::default()
    }

    /// Each change in words, for the log and `puente schema plan`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.new_tables {
            out.push(format!("add table `{t}`"));
        }
        for (t, c) in &self.new_columns {
            let what = match c.group() {
                Some(g) => format!("sealed to `{g}`"),
                None => "shared".into(),
            };
            out.push(format!("add column `{t}.{}` ({what})", c.name));
        }
        for (t, c, g) in &self.to_seal {
            out.push(format!(
                "seal every value of `{t}.{c}` to `{g}` (new versions; the plaintext is erased)"
            ));
        }
        for (t, c) in &self.to_unseal {
            out.push(format!("take `{t}.{c}` from sealed to shared"));
        }
        for (t, c, ty) in &self.typed {
            out.push(format!("type `{t}.{c}` as {}", ty.canonical()));
        }
        for (t, c) in &self.untyped {
            out.push(format!("drop the type of `{t}.{c}`"));
        }
        for t in &self.dropped_tables {
            out.push(format!("drop table `{t}` and erase its rows"));
        }
        for (t, c) in &self.dropped_columns {
            out.push(format!("drop column `{t}.{c}` and erase its values"));
        }
        for (t, c, from, to) in &self.regrouped {
            out.push(format!("move `{t}.{c}` from seal group `{from}` to `{to}`"));
        }
        for (t, c, from, to) in &self.retyped {
            out.push(format!(
                "change the type of `{t}.{c}` from {} to {}",
                from.canonical(),
                to.canonical()
            ));
        }
        out
    }

    /// Whether carrying the plan out erases anything (then the WAL is
    /// checkpointed after it, so no old page keeps a value).
    pub fn erases(&self) -> bool {
        !self.dropped_tables.is_empty()
            || !self.dropped_columns.is_empty()
            || !self.to_seal.is_empty()
            || !self.to_unseal.is_empty()
    }
}

/// The changes between the replica's layout and `schema`.
pub fn plan(stored: &[StoredTable], schema: &Schema) -> AdoptionPlan {
    let mut plan = AdoptionPlan::default();
    for table in &schema.tables {
        let Some(have) = stored.iter().find(|s| s.name == table.name) else {
            plan.new_tables.push(table.name.clone());
            continue;
        };
        for column in &table.columns {
            let Some(old) = have.column(&column.name) else {
                plan.new_columns.push((table.name.clone(), column.clone()));
                continue;
            };
            let (t, c) = (table.name.clone(), column.name.clone());
            match (old.group(), column.group()) {
                (None, Some(g)) => plan.to_seal.push((t.clone(), c.clone(), g.to_string())),
                (Some(_), None) => plan.to_unseal.push((t.clone(), c.clone())),
                // A format 1 replica did not record the group ("").
                (Some(a), Some(b)) if a != b && !a.is_empty() => {
                    plan.regrouped
                        .push((t.clone(), c.clone(), a.to_string(), b.to_string()))
                }
                _ => {}
            }
            match (&old.ty, &column.ty) {
                (None, Some(ty)) => plan.typed.push((t, c, ty.clone())),
                (Some(a), Some(b)) if a != b => plan.retyped.push((t, c, a.clone(), b.clone())),
                (Some(_), None) => plan.untyped.push((t, c)),
                _ => {}
            }
        }
        for old in &have.columns {
            if table.column_index(&old.name).is_none() {
                plan.dropped_columns
                    .push((table.name.clone(), old.name.clone()));
            }
        }
    }
    for have in stored {
        if schema.table(&have.name).is_none() {
            plan.dropped_tables.push(have.name.clone());
        }
    }
    plan
}

/// Why the plan cannot go ahead as things are, and what to do; None if it
/// can.
pub fn refusal(plan: &AdoptionPlan, allow: &Allow) -> Option<String> {
    let mut why = Vec::new();
    if !allow.drop && (!plan.dropped_tables.is_empty() || !plan.dropped_columns.is_empty()) {
        let what: Vec<String> = plan
            .dropped_tables
            .iter()
            .map(|t| format!("table `{t}`"))
            .chain(
                plan.dropped_columns
                    .iter()
                    .map(|(t, c)| format!("column `{t}.{c}`")),
            )
            .collect();
        why.push(format!(
            "the schema no longer lists {}: puente erases them only when told to — stop puente and run `puente schema apply --allow-drop` (the other offices erase them when they adopt the same schema), or put them back in the schema",
            what.join(", ")
        ));
    }
    let unasked: Vec<&ColumnRef> = plan
        .to_unseal
        .iter()
        .filter(|c| !allow.unseal.contains(c))
        .collect();
    if !unasked.is_empty() {
        let what: Vec<String> = unasked.iter().map(|(t, c)| format!("`{t}.{c}`")).collect();
        why.push(format!(
            "{} is sealed in this replica but shared in the schema: a config edit alone never unseals a column — run `puente schema unseal TABLE COLUMN` (at an office holding the group's identity it opens every value, audited; elsewhere it only relabels the column), or restore `sealed` in the schema",
            what.join(", ")
        ));
    }
    for (t, c, from, to) in &plan.regrouped {
        why.push(format!(
            "`{t}.{c}` is sealed to `{from}` in this replica and to `{to}` in the schema: moving a column between seal groups is not supported — add a new column sealed to `{to}`, copy the values at an office holding both identities, then drop the old column"
        ));
    }
    for (t, c, from, to) in &plan.retyped {
        why.push(format!(
            "`{t}.{c}` is typed {} in this replica and {} in the schema: changing a column's type is not supported — add a new column of the new type, copy the values, then drop the old one (docs/schema.md)",
            from.canonical(),
            to.canonical()
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::columns::from_schema;
    use std::path::Path;

    fn schema(tables: &str) -> Schema {
        Schema::parse(
            Path::new("s.toml"),
            &format!("[groups]\nmx = []\nus = []\n{tables}"),
        )
        .unwrap()
    }

    const BASE: &str = "[tables.events.columns]\ntitle = \"shared\"\nseats = \"shared\"\n\
                        [tables.people.columns]\nname = { sealed = \"mx\" }\nnotes = \"shared\"\n";

    #[test]
    fn the_same_schema_plans_nothing() {
        let s = schema(BASE);
        assert!(plan(&from_schema(&s), &s).is_empty());
    }

    #[test]
    fn each_change_is_planned_and_the_destructive_ones_refused_without_a_word() {
        let old = from_schema(&schema(BASE));
        let new = schema(
            "[tables.events.columns]\ntitle = \"shared\"\nseats = { type = \"integer\" }\nplace = \"shared\"\n\
             [tables.people.columns]\nname = \"shared\"\nnotes = { sealed = \"mx\" }\n\
             [tables.volunteers.columns]\nname = \"shared\"\n",
        );
        let p = plan(&old, &new);
        assert_eq!(p.new_tables, ["volunteers"]);
        assert_eq!(p.new_columns.len(), 1);
        assert_eq!(p.new_columns[0].1.name, "place");
        assert_eq!(p.to_seal, [("people".into(), "notes".into(), "mx".into())]);
        assert_eq!(p.to_unseal, [("people".into(), "name".into())]);
        assert_eq!(
            p.typed,
            [("events".into(), "seats".into(), ColumnType::Integer)]
        );
        assert!(p.erases());
        assert_eq!(p.describe().len(), 5);
        let why = refusal(&p, &Allow::default()).unwrap();
        assert!(why.contains("`people.name` is sealed"), "{why}");
        assert!(why.contains("puente schema unseal"), "{why}");
        let allowed = Allow {
            drop: false,
            unseal: vec![("people".into(), "name".into())],
        };
        assert_eq!(refusal(&p, &allowed), None);

        // Drops, regrouping and retyping.
        let typed = from_schema(&new);
        let newer = schema(
            "[tables.events.columns]\ntitle = \"shared\"\nseats = { type = \"number\" }\n\
             [tables.people.columns]\nname = \"shared\"\nnotes = { sealed = \"us\" }\n",
        );
        let p = plan(&typed, &newer);
        assert_eq!(p.dropped_tables, ["volunteers"]);
        assert_eq!(p.dropped_columns, [("events".into(), "place".into())]);
        assert_eq!(p.regrouped.len(), 1);
        assert_eq!(p.retyped.len(), 1);
        let why = refusal(&p, &Allow::default()).unwrap();
        for part in [
            "--allow-drop",
            "table `volunteers`",
            "column `events.place`",
            "between seal groups",
            "changing a column's type",
        ] {
            assert!(why.contains(part), "missing {part:?} in {why}");
        }
        let drop_only = Allow {
            drop: true,
            unseal: vec![],
        };
        let why = refusal(&p, &drop_only).unwrap();
        assert!(!why.contains("--allow-drop"), "{why}");
    }
}
