//! What the offices must hold after a test's writes: per cell the write
//! with the greatest (hlc, site) among the acknowledged ones, and no row
//! that an acknowledged delete removed.

use std::collections::{BTreeMap, BTreeSet};

use puente::admin::ClientError;
use puente::admin::api::{Cell, WriteResult};
use puente::clock::Hlc;
use puente::stamp::{SiteId, Stamp};
use puente::value::{Plaintext, Value};

use super::Office;

#[derive(Default)]
pub struct Model {
    cells: BTreeMap<(String, String, String), (Stamp, String)>,
    deleted: BTreeSet<(String, String)>,
    pub acked_puts: usize,
    pub acked_deletes: usize,
}

/// An office's site id, from its status.
pub async fn site_of(office: &Office) -> SiteId {
    let s = office.client().status().await.expect("status");
    s.site_id.parse().expect("a site id")
}

impl Model {
    /// Writes `value` to `columns` of a row at `office`; records it if the
    /// office acknowledged it. A write to a deleted row is refused (410)
    /// and expected.
    pub async fn put(
        &mut self,
        office: &Office,
        site: SiteId,
        table: &str,
        id: &str,
        columns: &[&str],
        value: &str,
    ) {
        let cells = columns
            .iter()
            .map(|c| (c.to_string(), Plaintext::text(value)))
            .collect();
        match office.client().put_row(table, id, cells).await {
            Ok(w) => self.record_put(site, table, id, columns, value, &w),
            Err(ClientError::Api { status: 410, .. }) => {}
            Err(e) => panic!("put at {} failed: {e}", office.name),
        }
    }

    pub fn record_put(
        &mut self,
        site: SiteId,
        table: &str,
        id: &str,
        columns: &[&str],
        value: &str,
        w: &WriteResult,
    ) {
        let hlc: Hlc = w.hlc.parse().expect("an hlc");
        let stamp = Stamp { hlc, site };
        self.acked_puts += 1;
        for c in columns {
            let key = (table.to_string(), id.to_string(), c.to_string());
            let entry = self.cells.entry(key).or_insert((stamp, value.to_string()));
            if stamp > entry.0 {
                *entry = (stamp, value.to_string());
            }
        }
    }

    /// Deletes a row at `office`; records it if acknowledged. Deleting what
    /// this office has never seen is refused (404) and expected.
    pub async fn delete(&mut self, office: &Office, table: &str, id: &str) {
        match office.client().delete_row(table, id).await {
            Ok(_) => {
                self.acked_deletes += 1;
                self.deleted.insert((table.to_string(), id.to_string()));
            }
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => panic!("delete at {} failed: {e}", office.name),
        }
    }

    /// Adds another model's writes (from another office).
    pub fn absorb(&mut self, other: Model) {
        for (key, (stamp, value)) in other.cells {
            let entry = self.cells.entry(key).or_insert((stamp, value.clone()));
            if stamp > entry.0 {
                *entry = (stamp, value);
            }
        }
        self.deleted.extend(other.deleted);
        self.acked_puts += other.acked_puts;
        self.acked_deletes += other.acked_deletes;
    }

    /// Checks every row of `tables` at `office` against the model. Sealed
    /// cells are compared by value only if `reveal` (the office holds the
    /// key); otherwise their presence is checked.
    pub async fn verify(&self, office: &Office, tables: &[&str], reveal: bool) {
        for table in tables {
            let mut got: BTreeMap<String, Vec<(String, Cell)>> = BTreeMap::new();
            let mut after: Option<String> = None;
            loop {
                let page = office
                    .client()
                    .list_rows(table, after.as_deref(), Some(1000), reveal)
                    .await
                    .expect("list rows");
                for row in page.rows {
                    got.insert(row.id.clone(), row.columns.0);
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let expected_ids: BTreeSet<String> = self
                .cells
                .keys()
                .filter(|(t, id, _)| t == table && !self.deleted.contains(&(t.clone(), id.clone())))
                .map(|(_, id, _)| id.clone())
                .collect();
            let got_ids: BTreeSet<String> = got.keys().cloned().collect();
            assert_eq!(
                got_ids, expected_ids,
                "{}: live ids of {table}",
                office.name
            );
            for ((t, id, column), (_, value)) in &self.cells {
                if t != table || self.deleted.contains(&(t.clone(), id.clone())) {
                    continue;
                }
                let cells = &got[id];
                let cell = cells.iter().find(|(c, _)| c == column).map(|(_, v)| v);
                match cell {
                    Some(Cell::Value(p)) => {
                        assert_eq!(
                            p.expose(),
                            &Value::Text(value.clone()),
                            "{}: {table}/{id}/{column}",
                            office.name
                        )
                    }
                    Some(Cell::Sealed) => assert!(
                        !reveal,
                        "{}: {table}/{id}/{column} not revealed",
                        office.name
                    ),
                    None => panic!("{}: {table}/{id}/{column} missing", office.name),
                }
            }
        }
    }
}
