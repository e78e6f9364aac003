//! What the replicas must hold: last writer wins over every acknowledged
//! write, a tombstone beating every update of its id. Built from the
//! writes the simulated offices acknowledged, compared with each replica's
//! snapshot at the end.

use std::collections::BTreeMap;

use puente::config::Schema;
use puente::seal::{self, Binding, Keyring};
use puente::stamp::Stamp;
use puente::store::Snapshot;
use puente::value::Value;

/// A cell's expected content.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Shared(Value),
    /// A sealed column: the plaintext the ciphertext must open to.
    Sealed(String),
}

#[derive(Debug, Clone, Default)]
struct Row {
    tombstone: Option<Stamp>,
    cells: BTreeMap<String, (Stamp, Expect)>,
}

#[derive(Debug, Default)]
pub struct Model {
    rows: BTreeMap<(String, String), Row>,
    pub acknowledged: usize,
}

impl Model {
    pub fn put(&mut self, table: &str, id: &str, stamp: Stamp, cells: Vec<(String, Expect)>) {
        self.acknowledged += 1;
        let row = self
            .rows
            .entry((table.to_string(), id.to_string()))
            .or_default();
        for (column, expect) in cells {
            let newer = row.cells.get(&column).is_none_or(|(s, _)| stamp > *s);
            if newer {
                row.cells.insert(column, (stamp, expect));
            }
        }
    }

    pub fn delete(&mut self, table: &str, id: &str, stamp: Stamp) {
        self.acknowledged += 1;
        let row = self
            .rows
            .entry((table.to_string(), id.to_string()))
            .or_default();
        if row.tombstone.is_none_or(|s| stamp > s) {
            row.tombstone = Some(stamp);
        }
    }

    /// Checks one replica against the model: the same live rows with the
    /// same versions and values, the same tombstones, nothing else.
    pub fn check(&self, snap: &Snapshot, schema: &Schema, keyring: &Keyring) -> Result<(), String> {
        for ((table, id), row) in &self.rows {
            let key = (table.clone(), id.clone());
            if let Some(stamp) = row.tombstone {
                match snap.tombstones.get(&key) {
                    Some(t) if t.stamp == stamp => {}
                    other => {
                        return Err(format!(
                            "{table}/{id}: expected the tombstone {stamp:?}, found {other:?}"
                        ));
                    }
                }
                if snap.rows.contains_key(&key) {
                    return Err(format!("{table}/{id} is deleted but still has a live row"));
                }
                continue;
            }
            if snap.tombstones.contains_key(&key) {
                return Err(format!(
                    "{table}/{id} has a tombstone no acknowledged delete made"
                ));
            }
            let Some((_, cells)) = snap.rows.get(&key) else {
                return Err(format!("{table}/{id}: an acknowledged write is missing"));
            };
            for (column, (stamp, expect)) in &row.cells {
                let Some(cell) = cells.get(column) else {
                    return Err(format!(
                        "{table}/{id}/{column}: an acknowledged cell is missing"
                    ));
                };
                if cell.stamp != *stamp {
                    return Err(format!(
                        "{table}/{id}/{column}: version {:?}, expected {stamp:?}",
                        cell.stamp
                    ));
                }
                match expect {
                    Expect::Shared(v) => {
                        if &cell.value != v {
                            return Err(format!(
                                "{table}/{id}/{column}: value {:?}, expected {v:?}",
                                cell.value
                            ));
                        }
                    }
                    Expect::Sealed(plain) => {
                        let opened = open(schema, keyring, table, id, column, *stamp, &cell.value)?;
                        if &opened != plain {
                            return Err(format!(
                                "{table}/{id}/{column}: a sealed value opens to something else"
                            ));
                        }
                    }
                }
            }
            if let Some(extra) = cells.keys().find(|c| !row.cells.contains_key(*c)) {
                return Err(format!(
                    "{table}/{id}/{extra}: a cell no acknowledged write made"
                ));
            }
        }
        let known = |key: &(String, String)| self.rows.contains_key(key);
        if let Some(key) = snap
            .rows
            .keys()
            .chain(snap.tombstones.keys())
            .find(|k| !known(k))
        {
            return Err(format!(
                "{}/{}: a row no acknowledged write made",
                key.0, key.1
            ));
        }
        Ok(())
    }
}

fn open(
    schema: &Schema,
    keyring: &Keyring,
    table: &str,
    id: &str,
    column: &str,
    stamp: Stamp,
    value: &Value,
) -> Result<String, String> {
    let Value::Blob(bytes) = value else {
        return Err(format!(
            "{table}/{id}/{column}: a sealed column holds a {}",
            value.kind()
        ));
    };
    let group = schema
        .tables
        .iter()
        .find(|t| t.name == table)
        .and_then(|t| t.columns.iter().find(|c| c.name == column))
        .and_then(|c| c.group())
        .and_then(|g| schema.group(g))
        .ok_or_else(|| format!("{table}/{column} is not a sealed column"))?;
    let binding = Binding {
        table,
        id,
        column,
        hlc: stamp.hlc,
        site: stamp.site,
    };
    let plain = seal::open(keyring, group, &binding, bytes)
        .map_err(|e| format!("{table}/{id}/{column}: {e}"))?;
    match plain.expose() {
        Value::Text(t) => Ok(t.clone()),
        other => Err(format!(
            "{table}/{id}/{column}: opened to a {}",
            other.kind()
        )),
    }
}
