//! Which recipient set each sealed cell is encrypted to, counted per seal
//! group, so status can say how many cells still wait for a reseal without
//! decrypting or scanning anything.
//!
//! Owns: the counts (group → keyset marker → live sealed cells; cells
//! without a marker count under ""), keeping them in step as cells are
//! written, replaced and erased (merge/row.rs calls `add`/`sub`), saving them
//! in `_puente_meta` under `keysets`, and counting them once by scanning
//! a replica that has none saved (made before markers existed).
//! Must not: decrypt, or decide what a current keyset is (the schema's
//! recipients are; `seal::keyset_id` names them).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use crate::config::Schema;
use crate::seal::marker_of;
use crate::store::layout::{TableSql, quote};
use crate::store::{SqlContext, Store, StoreError};
use crate::value::Value;

/// Live sealed cells per group and keyset marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Keysets {
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Changed since the last save.
    dirty: bool,
    /// Counted by a scan at open (none were saved): counted again once the
    /// schema is adopted, since a replica migrated from format 1 records
    /// no group names until then.
    scanned: bool,
}

fn marker(value: &Value) -> &str {
    match value {
        Value::Blob(b) => marker_of(b).unwrap_or(""),
        _ => "",
    }
}

impl Keysets {
    /// Counts a sealed cell of `group` now holding `value`.
    pub fn add(&mut self, group: &str, value: &Value) {
        let m = marker(value);
        let per_group = match self.counts.get_mut(group) {
            Some(g) => g,
            None => self.counts.entry(group.to_string()).or_default(),
        };
        match per_group.get_mut(m) {
            Some(n) => *n += 1,
            None => {
                per_group.insert(m.to_string(), 1);
            }
        }
        self.dirty = true;
    }

    /// Uncounts a sealed cell of `group` that held `value`.
    pub fn sub(&mut self, group: &str, value: &Value) {
        let m = marker(value);
        if let Some(per_group) = self.counts.get_mut(group)
            && let Some(n) = per_group.get_mut(m)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_group.remove(m);
            }
            self.dirty = true;
        }
    }

    /// Live sealed cells of `group` whose marker is not `current`.
    pub fn stale(&self, group: &str, current: &str) -> u64 {
        self.counts.get(group).map_or(0, |g| {
            g.iter()
                .filter(|(m, _)| m.as_str() != current)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// One line per (group, marker, count); no values.
    fn encode(&self) -> String {
        let mut out = String::new();
        for (group, markers) in &self.counts {
            for (m, n) in markers {
                out.push_str(&format!("{group} {m} {n}\n"));
            }
        }
        out
    }

    fn decode(text: &str) -> Option<Keysets> {
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for line in text.lines() {
            // The marker of unmarked cells is empty: "mx  12".
            let mut parts = line.splitn(3, ' ');
            let group = parts.next()?;
            let m = parts.next()?;
            let n: u64 = parts.next()?.parse().ok()?;
            counts
                .entry(group.to_string())
                .or_default()
                .insert(m.to_string(), n);
        }
        Some(Keysets {
            counts,
            dirty: false,
            scanned: false,
        })
    }

    /// The saved counts, or a count by scanning every sealed column (a
    /// replica made before markers existed; saved with its next write).
    pub fn load(conn: &Connection, tables: &[TableSql]) -> Result<Keysets, StoreError> {
        let saved: Option<String> = conn
            .query_row(
                "SELECT value FROM _puente_meta WHERE key = 'keysets'",
                [],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading the keyset counts")?;
        match saved.as_deref().and_then(Keysets::decode) {
            Some(k) => Ok(k),
            None => Keysets::scan(conn, tables),
        }
    }

    /// Counts by reading the first line of every sealed cell of `tables`
    /// (the store's: slots with the schema's privacy).
    fn scan(conn: &Connection, tables: &[TableSql]) -> Result<Keysets, StoreError> {
        let mut keysets = Keysets::default();
        for table in tables {
            for column in &table.defs {
                let Some(group) = column.group() else {
                    continue;
                };
                // The marker sits in the first line after the magic.
                let sql = format!(
                    "SELECT substr({c}, 1, 160) FROM {t} WHERE {c} IS NOT NULL",
                    c = quote(&column.name),
                    t = quote(&table.name)
                );
                let mut stmt = conn.prepare(&sql).ctx("counting keyset markers")?;
                let heads = stmt
                    .query_map([], |r| r.get::<_, Value>(0))
                    .ctx("counting keyset markers")?;
                for head in heads {
                    keysets.add(group, &head.ctx("counting keyset markers")?);
                }
            }
        }
        keysets.dirty = true;
        keysets.scanned = true;
        Ok(keysets)
    }
}

impl Store {
    /// Writes the keyset counts if they changed (inside the transaction
    /// that changed them).
    pub(in crate::store) fn save_keysets(&mut self) -> Result<(), StoreError> {
        if !self.state.keysets.dirty {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_meta (key, value) VALUES ('keysets', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute([self.state.keysets.encode()]))
            .ctx("saving the keyset counts")?;
        self.state.keysets.dirty = false;
        Ok(())
    }

    /// Counts the keysets again from the cells (after a schema change, or
    /// at open when they were counted before the schema was adopted).
    pub(in crate::store) fn rescan_keysets(&mut self) -> Result<(), StoreError> {
        self.state.keysets = Keysets::scan(&self.conn, &self.tables)?;
        Ok(())
    }

    /// Whether the keysets were counted at open rather than read back.
    pub(in crate::store) fn keysets_scanned(&self) -> bool {
        self.state.keysets.scanned
    }

    /// Per seal group with sealed columns: live cells not sealed to the
    /// group's current recipients (the schema's), counted without
    /// decrypting (O(groups)).
    pub fn sealed_to_old_keys(&self) -> BTreeMap<String, u64> {
        stale_per_group(&self.schema, &self.state.keysets)
    }

    /// The same figure by scanning every sealed cell (tests compare it
    /// with the counts kept incrementally).
    pub fn recount_sealed_to_old_keys(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(stale_per_group(
            &self.schema,
            &Keysets::scan(&self.conn, &self.tables)?,
        ))
    }
}

fn stale_per_group(schema: &Schema, keysets: &Keysets) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for column in schema.tables.iter().flat_map(|t| &t.columns) {
        if let Some(group) = column.group()
            && !out.contains_key(group)
        {
            let current = schema
                .group(group)
                .map(|g| crate::seal::keyset_id(&g.recipient_keys))
                .unwrap_or_default();
            out.insert(group.to_string(), keysets.stale(group, &current));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(id: &str) -> Value {
        Value::Blob(format!("age-encryption.org/v1\n-> puente-keyset {id}\n\n").into_bytes())
    }

    #[test]
    fn counts_follow_adds_and_subs_and_survive_encoding() {
        let a = "0123456789abcdef0123";
        let b = "fedcba9876543210fedc";
        let mut k = Keysets::default();
        k.add("mx", &sealed(a));
        k.add("mx", &sealed(a));
        k.add("mx", &sealed(b));
        k.add(
            "mx",
            &Value::Blob(b"age-encryption.org/v1\n-> X25519 x\n".to_vec()),
        );
        assert_eq!(k.stale("mx", a), 2);
        assert_eq!(k.stale("mx", b), 3);
        assert_eq!(k.stale("other", a), 0);
        k.sub("mx", &sealed(b));
        assert_eq!(k.stale("mx", a), 1);
        let again = Keysets::decode(&k.encode()).unwrap();
        assert_eq!(again.counts, k.counts);
        assert!(Keysets::decode("mx nope").is_none());
    }
}
