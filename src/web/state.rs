//! What the web server shares between requests, and its two reads of the
//! node: the outreach events (cached until the replica's head moves) and
//! whether a session's staff member still exists.
//!
//! Owns: `WebState` (node, sessions, rate limiter, edit log, zone, the
//! offices, the schema's sealed columns), turning store rows into the
//! agenda's neutral rows with shared columns only.
//! Must not: ask the store to reveal anything (it reads with
//! `Reveal::No`, and keeps only shared values).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;

use super::ratelimit::{self, Limiter};
use super::sessions::{Sessions, WebSession};
use crate::access::staff_tokens::StaffRole;
use crate::audit::edits::EditLog;
use crate::config::{Privacy, Schema};
use crate::node::Node;
use crate::schedule::{self, EventRow};
use crate::store::{CellView, Reveal, RowView, StoreError};

/// Rows read from the store per page when loading the events.
const PAGE: usize = 1000;

pub struct WebState {
    pub node: Arc<Node>,
    pub sessions: Sessions,
    pub limiter: Mutex<Limiter>,
    pub edits: EditLog,
    pub tz: TimeZone,
    /// The zone's name as shown ("America/Tijuana").
    pub zone: String,
    /// This office and its peers: the offices an event may belong to.
    pub offices: Vec<String>,
    /// Every sealed column of the schema (a form naming one is refused).
    pub sealed: Vec<String>,
    /// The outreach table's sealed columns, if a schema seals any: the web
    /// neither shows nor writes them.
    pub sealed_event_columns: Vec<String>,
    /// The outreach table's columns the schema marks `required`: the form
    /// refuses an event without them, naming the field.
    pub required_event_columns: Vec<String>,
    /// Whether the schema has the outreach table.
    pub has_events: bool,
    /// Cookies get `Secure` and pages HSTS (staff reach the agenda over
    /// https: its own TLS, or an https `[web] url` in front).
    pub secure: bool,
    /// `[web] trusted_proxy`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    cache: Mutex<Option<(u64, Arc<Vec<EventRow>>)>>,
}

impl WebState {
    pub fn new(
        node: Arc<Node>,
        tz: TimeZone,
        zone: String,
        secure: bool,
        trusted_proxies: Vec<std::net::IpAddr>,
    ) -> WebState {
        let mut offices = vec![node.config().name.clone()];
        offices.extend(node.config().peers.iter().map(|p| p.name.clone()));
        let schema: &Schema = &node.schema();
        let sealed = schema
            .tables
            .iter()
            .flat_map(|t| t.columns.iter())
            .filter(|c| matches!(c.privacy, Privacy::Sealed { .. }))
            .map(|c| c.name.clone())
            .collect();
        let has_events = schema.table_index(schedule::TABLE).is_some();
        let sealed_event_columns = schema
            .tables
            .iter()
            .filter(|t| t.name == schedule::TABLE)
            .flat_map(|t| t.columns.iter())
            .filter(|c| matches!(c.privacy, Privacy::Sealed { .. }))
            .map(|c| c.name.clone())
            .collect();
        let required_event_columns = schema
            .table(schedule::TABLE)
            .map(|t| {
                t.columns
                    .iter()
                    .filter(|c| c.required)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let now = node.now_ms();
        WebState {
            edits: EditLog::new(&node.config().data_dir),
            node,
            sessions: Sessions::default(),
            limiter: Mutex::new(Limiter::new(ratelimit::PER_CLIENT, ratelimit::GLOBAL, now)),
            tz,
            zone,
            offices,
            sealed,
            sealed_event_columns,
            required_event_columns,
            has_events,
            secure,
            trusted_proxies,
            cache: Mutex::new(None),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.node.now_ms()
    }

    pub fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every live outreach event, shared columns only; read again only
    /// when the replica's head has moved since the last read.
    pub async fn events(&self) -> Result<Arc<Vec<EventRow>>, StoreError> {
        let head = *self.node.subscribe_head().borrow();
        if let Some((at, rows)) = &*self.cache.lock().unwrap_or_else(|e| e.into_inner())
            && *at == head
        {
            return Ok(rows.clone());
        }
        let (head, rows) = self
            .node
            .with_store(|s| -> Result<(u64, Vec<EventRow>), StoreError> {
                let mut rows = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = s.list(schedule::TABLE, after.as_deref(), PAGE, Reveal::No)?;
                    let full = page.len() == PAGE;
                    after = page.last().map(|r| r.id.clone());
                    rows.extend(page.into_iter().map(event_row));
                    if !full {
                        return Ok((s.head(), rows));
                    }
                }
            })
            .await
            .map_err(|e| StoreError::Corrupt {
                path: self.node.config().database_path(),
                detail: e.to_string(),
            })??;
        let rows = Arc::new(rows);
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((head, rows.clone()));
        Ok(rows)
    }

    /// The session of a cookie, if live and its staff member still exists
    /// with the same role (checked again after any staff removal).
    pub async fn session(&self, cookie: &str) -> Option<WebSession> {
        let session = self.sessions.find(cookie, self.now_ms())?;
        let epoch = self.node.staff_epoch.load(Ordering::SeqCst);
        if session.epoch == epoch {
            return Some(session);
        }
        let id = session.staff_id;
        let record = self.node.with_store(move |s| s.staff_by_id(id)).await;
        match record {
            Ok(Ok(Some(r))) if StaffRole::parse(&r.role) == Some(session.role) => {
                self.sessions.confirm(cookie, epoch);
                Some(session)
            }
            Ok(Ok(_)) => {
                self.sessions.end_staff(id);
                None
            }
            // The store did not answer: refuse this time, keep the session.
            _ => None,
        }
    }
}

/// A store row in the agenda's form: shared values only.
pub fn event_row(view: RowView) -> EventRow {
    EventRow::from_cells(view.id.clone(), Some(view.updated), |column| {
        match view.cell(column) {
            Some(CellView::Value(v)) => Some(v),
            _ => None,
        }
    })
}
