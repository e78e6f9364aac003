//! Owns: checking an import against the schema as its lines arrive: known
//! columns, valid and unique ids, at least one value per row, and each
//! value's column type (where the schema gives one), required columns.
//! Without IO: the admin route feeds lines in and asks the replica about
//! deleted ids and existing rows at the end.
//!
//! Must not: put a sealed column's value into a problem (a shared value
//! that does not fit its type is shown, as a single write shows it).

use std::collections::{HashMap, HashSet};

use super::{MAX_IMPORT_ROWS, Problems};
use crate::config::types::ColumnType;
use crate::config::{ColumnDef, TableDef};
use crate::store::{RowPut, valid_id};
use crate::value::{Plaintext, Value};

/// The type a column's values must have, if the schema gives one.
fn column_type(column: &ColumnDef) -> Option<&ColumnType> {
    column.ty.as_ref()
}

/// Checks `value` for `column`: the value to store, or why it does not fit
/// (naming the value only for a shared column).
pub fn check_value(
    column: &ColumnDef,
    ty: Option<&ColumnType>,
    value: Plaintext,
) -> Result<Plaintext, String> {
    let Some(ty) = ty else {
        return Ok(value);
    };
    match ty.coerce(value.expose()) {
        Ok(v) => Ok(Plaintext::new(v)),
        Err(mismatch) if column.is_sealed() => Err(mismatch.to_string()),
        Err(mismatch) => Err(mismatch.showing(value.expose()).to_string()),
    }
}

/// One import being checked.
pub struct Staging {
    table: TableDef,
    /// Line of each id seen.
    seen: HashMap<String, u64>,
    /// Unknown columns already reported (at the CSV header).
    reported: HashSet<String>,
    rows: Vec<(u64, RowPut)>,
    pub problems: Problems,
    count: u64,
}

impl Staging {
    pub fn new(table: &TableDef) -> Staging {
        Staging {
            table: table.clone(),
            seen: HashMap::new(),
            reported: HashSet::new(),
            rows: Vec::new(),
            problems: Problems::default(),
            count: 0,
        }
    }

    fn known(&self) -> String {
        self.table
            .file_order
            .iter()
            .map(|&c| self.table.columns[c].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn unknown_column(&self, column: &str) -> String {
        format!(
            "table {} has no column `{column}`; it has: id, {}",
            self.table.name,
            self.known()
        )
    }

    /// Rows seen so far (good or bad).
    pub fn rows_seen(&self) -> u64 {
        self.count
    }

    /// The header of a CSV file: unknown columns are reported once, here.
    pub fn header(&mut self, line: u64, columns: &[String]) {
        for column in columns {
            if column != "id" && self.table.column_index(column).is_none() {
                let reason = self.unknown_column(column);
                self.problems.push(line, Some(column), reason);
                self.reported.insert(column.clone());
            }
        }
    }

    /// Whether another row would go past `MAX_IMPORT_ROWS`.
    pub fn full(&self) -> bool {
        self.count >= MAX_IMPORT_ROWS
    }

    /// One row of the file.
    pub fn row(&mut self, line: u64, id: String, cells: Vec<(String, Plaintext)>) {
        self.count += 1;
        let mut bad = false;
        if !valid_id(&id) {
            self.problems.push(
                line,
                Some("id"),
                "not a valid row id: use 1 to 128 letters, digits, '-', '_', '.' or '~' (a random UUID is best)",
            );
            bad = true;
        } else if let Some(first) = self.seen.get(&id) {
            self.problems.push(
                line,
                Some("id"),
                format!("id `{id}` is already on line {first}; a file may hold each row once"),
            );
            bad = true;
        }
        if cells.is_empty() {
            self.problems.push(
                line,
                None,
                "the row has no values besides its id; give at least one column",
            );
            bad = true;
        }
        let mut checked: Vec<(String, Plaintext)> = Vec::with_capacity(cells.len());
        for (column, value) in cells {
            let Some(c) = self.table.column_index(&column) else {
                if !self.reported.contains(&column) {
                    let reason = self.unknown_column(&column);
                    self.problems.push(line, Some(&column), reason);
                }
                bad = true;
                continue;
            };
            if checked.iter().any(|(n, _)| *n == column) {
                self.problems
                    .push(line, Some(&column), "the column is given twice");
                bad = true;
                continue;
            }
            let def = &self.table.columns[c];
            match check_value(def, column_type(def), value) {
                Ok(v) => checked.push((column, v)),
                Err(reason) => {
                    self.problems.push(line, Some(&column), reason);
                    bad = true;
                }
            }
        }
        if valid_id(&id) {
            self.seen.entry(id.clone()).or_insert(line);
        }
        if !bad {
            self.rows.push((line, (id, checked)));
        }
    }

    /// Reports every row whose id was deleted (`is_deleted` asks the
    /// replica).
    pub fn check_deleted<E>(
        &mut self,
        mut is_deleted: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<(), E> {
        for (line, (id, _)) in &self.rows {
            if is_deleted(id)? {
                self.problems.push(
                    *line,
                    Some("id"),
                    format!(
                        "row {}/{id} was deleted, and a deleted id can never be written again; give the row a new id",
                        self.table.name
                    ),
                );
            }
        }
        Ok(())
    }

    /// Reports every row that would leave a column the schema marks
    /// `required` without a value: a new row (`exists` asks the replica)
    /// that does not give it, any row that empties it.
    pub fn check_required<E>(
        &mut self,
        mut exists: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<(), E> {
        let required: Vec<&str> = self
            .table
            .file_order
            .iter()
            .map(|&c| &self.table.columns[c])
            .filter(|c| c.required)
            .map(|c| c.name.as_str())
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        for (line, (id, cells)) in &self.rows {
            let mut new_row = None;
            for column in &required {
                let given = cells.iter().find(|(c, _)| c.as_str() == *column);
                let empty = match given {
                    Some((_, v)) => match v.expose() {
                        Value::Null => true,
                        Value::Text(t) => t.trim().is_empty(),
                        _ => false,
                    },
                    None => {
                        if new_row.is_none() {
                            new_row = Some(!exists(id)?);
                        }
                        new_row == Some(true)
                    }
                };
                if empty {
                    self.problems.push(
                        *line,
                        Some(*column),
                        format!(
                            "`{column}` is required in {} (the schema says `required = true`) and row {id} has no value for it; give one",
                            self.table.name
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The rows to write, if no line was bad; otherwise the problems in
    /// line order.
    pub fn finish(mut self) -> Result<Vec<RowPut>, Problems> {
        if self.problems.is_empty() {
            return Ok(self.rows.into_iter().map(|(_, row)| row).collect());
        }
        self.problems.listed.sort_by_key(|p| p.line);
        Err(self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Schema;
    use crate::value::Value;

    fn schema() -> Schema {
        Schema::parse(
            std::path::Path::new("schema.toml"),
            &crate::config::schema::DEFAULT_SCHEMA.replace(
                "mx = []",
                "mx = [\"age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw\"]",
            ),
        )
        .unwrap()
    }

    fn cells(pairs: &[(&str, &str)]) -> Vec<(String, Plaintext)> {
        pairs
            .iter()
            .map(|(c, v)| (c.to_string(), Plaintext::text(*v)))
            .collect()
    }

    #[test]
    fn every_bad_line_is_reported_and_nothing_is_kept() {
        let schema = schema();
        let table = schema.table("residents").unwrap();
        let mut s = Staging::new(table);
        s.header(1, &["id".into(), "status".into(), "shoe_size".into()]);
        s.row(
            2,
            "r1".into(),
            cells(&[("status", "intake"), ("full_name", "Nombre Uno")]),
        );
        s.row(3, "r1".into(), cells(&[("status", "intake")]));
        s.row(4, "bad id".into(), cells(&[("status", "intake")]));
        s.row(5, "r5".into(), vec![]);
        s.row(6, "r6".into(), cells(&[("shoe_size", "41")]));
        s.row(
            7,
            "r7".into(),
            cells(&[("status", "active"), ("status", "closed")]),
        );
        s.row(8, "r8".into(), cells(&[("status", "active")]));
        s.check_deleted(|id| Ok::<_, ()>(id == "r8")).unwrap();
        assert_eq!(s.rows_seen(), 7);
        let problems = s.finish().unwrap_err();
        let text: Vec<String> = problems.listed.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 6, "{text:#?}");
        assert!(text[0].starts_with("line 1, column shoe_size: table residents has no column `shoe_size`; it has: id, arrival_date,"), "{}", text[0]);
        assert_eq!(
            text[1],
            "line 3, column id: id `r1` is already on line 2; a file may hold each row once"
        );
        assert!(
            text[2].starts_with("line 4, column id: not a valid row id"),
            "{}",
            text[2]
        );
        assert!(
            text[3].starts_with("line 5: the row has no values besides its id"),
            "{}",
            text[3]
        );
        // Line 6's unknown column was reported at the header already.
        assert_eq!(text[4], "line 7, column status: the column is given twice");
        assert!(
            text[5].starts_with("line 8, column id: row residents/r8 was deleted"),
            "{}",
            text[5]
        );
        assert!(!text.iter().any(|t| t.contains("Nombre")), "{text:#?}");
    }

    #[test]
    fn good_rows_come_out_in_order() {
        let schema = schema();
        let mut s = Staging::new(schema.table("outreach_events").unwrap());
        s.row(1, "e1".into(), cells(&[("title", "Taller")]));
        s.row(
            2,
            "e2".into(),
            cells(&[("title", "Clase"), ("capacity", "25")]),
        );
        s.check_deleted(|_| Ok::<_, ()>(false)).unwrap();
        let rows = s.finish().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, "e2");
        // The capacity is an integer column: the text of the file becomes a number.
        assert_eq!(rows[1].1[1].1.expose(), &Value::Integer(25));
    }

    #[test]
    fn values_are_checked_against_their_type_without_showing_sealed_ones() {
        let schema = schema();
        let table = schema.table("residents").unwrap();
        let shared = &table.columns[table.column_index("household_size").unwrap()];
        let sealed = &table.columns[table.column_index("birth_date").unwrap()];
        let int = ColumnType::Integer;
        let date = ColumnType::Date;
        assert_eq!(
            check_value(shared, Some(&int), Plaintext::text("4"))
                .unwrap()
                .expose(),
            &Value::Integer(4)
        );
        let e = check_value(shared, Some(&int), Plaintext::text("cuatro")).unwrap_err();
        assert_eq!(e, "expects a whole number, e.g. 25; got text `cuatro`");
        let e = check_value(sealed, Some(&date), Plaintext::text("1990-13-45")).unwrap_err();
        assert!(
            e.starts_with("expects a date") && !e.contains("1990"),
            "{e}"
        );
        assert!(check_value(sealed, None, Plaintext::text("anything")).is_ok());
    }
}
