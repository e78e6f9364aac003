//! Owns: the bounds on what a pinned peer can make this replica keep for
//! ever: site ids named in one batch (`MAX_SITES_PER_BATCH`, checked by
//! `validate` before anything is written), site ids first learned from
//! one peer (`MAX_SITES_PER_PEER`, kept in `_puente_site_from`, local to
//! the replica), and site ids bound to one office (`MAX_SITES_PER_OFFICE`:
//! a session binds at most the one its Hello gives, and an office takes a
//! new one only when restored from a backup). Beyond a bound, the batch
//! or the session is refused with a sentence naming the peer: nothing of
//! it is kept.
//!
//! Must not: judge changes (judge.rs) or bind sites itself (bindings.rs).

use std::collections::HashMap;

use rusqlite::params;

use crate::stamp::SiteId;
use crate::store::{SqlContext, Store, StoreError};

/// Site ids one batch may name. An honest batch names the replicas whose
/// versions it carries: a handful of offices and their restores.
pub const MAX_SITES_PER_BATCH: usize = 256;
/// Site ids this replica learns first from one peer, ever. Each relayed
/// office and each of its restores is one; more is a peer making up ids.
pub const MAX_SITES_PER_PEER: u64 = 1024;
/// Site ids bound to one office: its first, and one per restore.
pub const MAX_SITES_PER_OFFICE: usize = 32;

pub(in crate::store) const SITE_FROM_DDL: &str = "CREATE TABLE IF NOT EXISTS _puente_site_from (
    site BLOB PRIMARY KEY NOT NULL,
    peer BLOB NOT NULL
) STRICT";

/// How many site ids each peer (by its site) introduced here.
pub(in crate::store) type Introduced = HashMap<SiteId, u64>;

impl Store {
    /// Loads the counts of sites introduced per peer (at open).
    pub(in crate::store) fn load_site_from(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(SITE_FROM_DDL)
            .ctx("creating the site origins table")?;
        let rows: Vec<(Vec<u8>, i64)> = self
            .conn
            .prepare("SELECT peer, count(*) FROM _puente_site_from GROUP BY peer")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .ctx("counting site ids per peer")?;
        self.state.guard.introduced = rows
            .into_iter()
            .filter_map(|(peer, n)| Some((SiteId(peer.try_into().ok()?), n.max(0) as u64)))
            .collect();
        Ok(())
    }

    /// Interns `site`, named in a batch from the peer `peer_site` (`peer`:
    /// its name): a site new here counts against that peer's bound.
    pub(in crate::store) fn intern_from_peer(
        &mut self,
        site: SiteId,
        peer_site: SiteId,
        peer: &str,
    ) -> Result<u32, StoreError> {
        if let Some(&i) = self.state.site_index.get(&site) {
            return Ok(i);
        }
        let count = self
            .state
            .guard
            .introduced
            .get(&peer_site)
            .copied()
            .unwrap_or(0);
        if count >= MAX_SITES_PER_PEER {
            return Err(StoreError::TooManySites {
                peer: peer.to_string(),
                count,
                limit: MAX_SITES_PER_PEER,
            });
        }
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO _puente_site_from (site, peer) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![&site.0[..], &peer_site.0[..]]))
            .ctx("recording where a site id came from")?;
        *self.state.guard.introduced.entry(peer_site).or_insert(0) += 1;
        self.intern_site(site)
    }

    /// Whether `office` may have one more site bound to it.
    pub(in crate::store) fn check_office_sites(
        &self,
        site: &SiteId,
        office: &str,
    ) -> Result<(), StoreError> {
        let bound = self
            .state
            .guard
            .bound
            .values()
            .filter(|o| o.as_str() == office)
            .count();
        if bound >= MAX_SITES_PER_OFFICE {
            return Err(StoreError::TooManyBindings {
                office: office.to_string(),
                site: site.to_string(),
                count: bound,
            });
        }
        Ok(())
    }
}
