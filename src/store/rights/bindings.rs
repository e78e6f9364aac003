//! Which office each site id belongs to, as this replica learned it: its
//! own site from the node's name, a peer's from the Hello it sent over a
//! connection pinned to that office's certificate. Kept in
//! `_puente_bindings`, a table local to this replica that sync never
//! reads; a binding is never changed (a restored office's new site id
//! binds anew, its old one stays bound — but this replica judges a change
//! carrying a site id it retired by the strictest reading: no office's
//! rights, what every office may do applies, the rest is held).
//!
//! Owns: the table's SQL, the office a `Store` writes as (`set_office`),
//! binding sites (refusing a site already bound to another office), and
//! the `Origin` of every interned site, kept in step with the interning.
//! Must not: decide what an office may do (config/rights.rs, judge.rs).

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use crate::config::rights::Actor;
use crate::mutants::{self, Mutant};
use crate::stamp::SiteId;
use crate::store::rights::judge::Origin;
use crate::store::{SqlContext, Store, StoreError};

pub(in crate::store) const BINDINGS_DDL: &str = "CREATE TABLE IF NOT EXISTS _puente_bindings (
    site BLOB PRIMARY KEY NOT NULL,
    office TEXT NOT NULL,
    bound_ms INTEGER NOT NULL
) STRICT";

/// The rights state kept with the replica's in-memory state (restored
/// with it when a transaction rolls back).
#[derive(Debug, Clone, Default)]
pub(in crate::store) struct Guard {
    /// How each interned site is judged, by local site index.
    pub origins: Vec<Origin>,
    /// Every bound site and its office.
    pub bound: HashMap<SiteId, String>,
    /// The site ids this replica retired at restores: no office's rights
    /// when a peer's change carries one (the strictest reading).
    pub retired: HashSet<SiteId>,
    /// Site ids first learned from each peer (by its site): bounded
    /// (bounds.rs).
    pub introduced: super::bounds::Introduced,
    /// Held changes stamped beyond the drift bound (a subset of the held
    /// entries), released when this office's clock catches up.
    pub ahead_entries: u64,
    /// Changes held for review, and their bytes (for the bound).
    pub held_entries: u64,
    pub held_bytes: u64,
    /// Moves with every change of the held list (held, dropped as moot,
    /// decided), so that a copy for status knows when to read it again.
    pub held_version: u64,
}

impl Store {
    /// How changes stamped with `site` are judged here.
    pub(in crate::store) fn origin_for(&self, site: &SiteId) -> Origin {
        if *site == self.state.site {
            return Origin::Own;
        }
        // A retired id is in every stamp this office made before its
        // restore, and its own writes made after the backup come back
        // under it; a tampered peer can stamp with it too. So it keeps no
        // office's rights: judged by the strictest reading (what every
        // office may do applies, the rest is held for review).
        if self.state.guard.retired.contains(site)
            && !mutants::active(Mutant::RetiredSiteKeepsBinding)
        {
            return Origin::Unbound;
        }
        match self.state.guard.bound.get(site) {
            Some(office) => self
                .schema
                .rights
                .office_index(office)
                .map_or(Origin::Stranger, Origin::Office),
            None => Origin::Unbound,
        }
    }

    /// Loads the bindings and the held counts (at open).
    pub(in crate::store) fn load_guard(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(BINDINGS_DDL)
            .ctx("creating the bindings table")?;
        self.ensure_held()?;
        self.load_site_from()?;
        let mut stmt = self
            .conn
            .prepare("SELECT site, office FROM _puente_bindings")
            .ctx("reading site bindings")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .ctx("reading site bindings")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("reading site bindings")?;
        drop(stmt);
        for (site, office) in rows {
            let site: [u8; 16] = site.try_into().map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                detail: "a site binding has a site id of the wrong size".into(),
            })?;
            self.state.guard.bound.insert(SiteId(site), office);
        }
        self.state.guard.retired = self.retired_sites()?.into_iter().collect();
        let origins = self
            .state
            .sites
            .iter()
            .map(|s| self.origin_for(s))
            .collect();
        self.state.guard.origins = origins;
        let (entries, bytes) = self.held_totals()?;
        self.state.guard.held_entries = entries;
        self.state.guard.held_bytes = bytes;
        self.state.guard.ahead_entries = self.ahead_total()?;
        Ok(())
    }

    /// The office this replica writes as: its own site is bound to it, and
    /// local writes are held to its rights. Refused if the replica's site
    /// is bound to another office (its data dir was copied from there).
    pub fn set_office(&mut self, office: &str) -> Result<(), StoreError> {
        let site = self.state.site;
        if let Some(bound) = self.state.guard.bound.get(&site)
            && bound != office
        {
            return Err(StoreError::ReplicaOfAnotherOffice {
                path: self.path.clone(),
                office: bound.clone(),
                node: office.to_string(),
            });
        }
        if !self.state.guard.bound.contains_key(&site) {
            self.transaction(|store| store.bind_in_transaction(site, office))?;
        }
        self.office = Some(office.to_string());
        Ok(())
    }

    /// The office local writes are made as (None: not set, held to what
    /// every office may).
    pub fn office(&self) -> Option<&str> {
        self.office.as_deref()
    }

    /// How this replica's own writes are judged.
    pub(in crate::store) fn own_actor(&self) -> Actor {
        self.office
            .as_deref()
            .map_or(Actor::Unknown, |o| self.schema.rights.actor(o))
    }

    /// Binds `site` to `office` (the name of the pinned peer whose Hello
    /// gave it). Binding a site again to the same office is a no-op; to
    /// another office, an error.
    pub fn bind_site(&mut self, site: SiteId, office: &str) -> Result<(), StoreError> {
        if self
            .state
            .guard
            .bound
            .get(&site)
            .is_some_and(|b| b == office)
        {
            return Ok(());
        }
        self.transaction(|store| store.bind_in_transaction(site, office))
    }

    pub(in crate::store) fn bind_in_transaction(
        &mut self,
        site: SiteId,
        office: &str,
    ) -> Result<(), StoreError> {
        match self.state.guard.bound.get(&site) {
            Some(bound) if bound == office => return Ok(()),
            Some(bound) => {
                return Err(StoreError::SiteOfAnotherOffice {
                    site: site.to_string(),
                    office: bound.clone(),
                    peer: office.to_string(),
                });
            }
            None => {}
        }
        self.check_office_sites(&site, office)?;
        let now = self.clock.now_ms() as i64;
        self.conn
            .prepare_cached(
                "INSERT INTO _puente_bindings (site, office, bound_ms) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![&site.0[..], office, now]))
            .ctx("binding a site to its office")?;
        self.state.guard.bound.insert(site, office.to_string());
        if let Some(&i) = self.state.site_index.get(&site) {
            self.state.guard.origins[i as usize] = self.origin_for(&site);
        }
        tracing::debug!(%site, office, "site bound to its office");
        Ok(())
    }

    /// The office a site is bound to here, if any.
    pub fn office_of_site(&self, site: &SiteId) -> Option<&str> {
        self.state.guard.bound.get(site).map(String::as_str)
    }
}
