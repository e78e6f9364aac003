//! The admin API's endpoints: health, status, rows (list, get, put,
//! delete) and sync-now (staff and held changes have files of their own).
//!
//! Owns: reading requests (paths, query parameters, the JSON body straight
//! into `Plaintext`, then wiping the body buffer), calling the `Node`,
//! writing the reveal audit lines before a revealed row is answered, and
//! the per-request debug log line (method, path, status — never a query
//! value or a body).
//! Must not: touch SQLite or sealing directly (the `Node` does), or let a
//! value reach a log line or an error message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;

use super::errors::ApiError;
use crate::access::socket_roles::{self, Access, CallerIds};
use crate::api::{Accepted, Cell, Columns, Health, Row, RowWrite, RowsPage, WriteResult};
use crate::audit::edits::EditLog;
use crate::audit::{AuditLog, Caller, RevealedCell};
use crate::node::Node;
use crate::secret_buf::{self, SecretBuf};
use crate::store::{CellView, Reveal, RowView, StoreError, Written, valid_id};
use crate::value::{Plaintext, Value};

/// Rows per page unless `limit` says otherwise, and the most allowed.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The largest request body accepted (one row's columns).
pub const MAX_BODY: usize = 1 << 20;

/// What every request handler shares.
pub(crate) struct AppState {
    pub node: Arc<Node>,
    pub audit: AuditLog,
    /// Who changed the staff list.
    pub edits: EditLog,
    /// Who holds which role (`[access]`, resolved at start).
    pub access: Access,
    /// One import is held in memory at a time; the next waits.
    pub imports: tokio::sync::Semaphore,
}

pub(crate) type Shared = Arc<AppState>;

/// The connection's peer, from the socket's credentials (None if the
/// kernel did not say), and every group it holds.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub caller: Option<Caller>,
    pub ids: Option<CallerIds>,
}

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/metrics", get(metrics))
        .route("/v1/sync", post(sync_now))
        .route("/v1/tables/{table}/rows", get(list_rows))
        .route(
            "/v1/tables/{table}/rows/{id}",
            get(get_row).put(put_row).delete(delete_row),
        )
        .merge(super::staff::routes())
        .merge(super::life::routes())
        .merge(super::held::routes())
        .merge(super::bulk::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), check_access))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Refuses (403) a request whose caller lacks a role it needs; every
/// request passes here before its handler.
async fn check_access(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let needed = socket_roles::needed(req.method().as_str(), req.uri().path(), req.uri().query());
    let ids = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .and_then(|c| c.0.ids.clone());
    if app.access.check(ids.as_ref(), &needed, None).is_ok() {
        return next.run(req).await;
    }
    // Refused: say who, by name when /etc/passwd knows them.
    let user = match &ids {
        Some(ids) => tokio::fs::read_to_string("/etc/passwd")
            .await
            .ok()
            .and_then(|text| socket_roles::user_name(&text, ids.uid)),
        None => None,
    };
    let message = match app.access.check(ids.as_ref(), &needed, user.as_deref()) {
        Err(message) => message,
        Ok(()) => return next.run(req).await,
    };
    tracing::info!(
        uid = ids.as_ref().map(|i| i.uid),
        path = %req.uri().path(),
        "admin request refused: a role is missing"
    );
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// One debug line per request: method, path (no query), status, time.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let uid = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .and_then(|c| c.0.caller)
        .map(|c| c.uid);
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        uid,
        ms = started.elapsed().as_millis() as u64,
        "admin request"
    );
    response
}

/// A JSON response whose buffer is wiped once sent (it may hold revealed
/// values).
pub(super) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match secret_buf::to_json(value) {
        Ok(mut body) => {
            body.extend(b"\n");
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(body.into_bytes()),
            )
                .into_response()
        }
        Err(e) => ApiError::internal(format!(
            "could not encode the response ({e}); please report this as a bug"
        ))
        .into_response(),
    }
}

async fn health(State(app): State<Shared>) -> Response {
    json(
        StatusCode::OK,
        &Health {
            ok: true,
            node: app.node.config().name.clone(),
        },
    )
}

async fn status(State(app): State<Shared>) -> Result<Response, ApiError> {
    let status = app.node.status().await?;
    Ok(json(StatusCode::OK, &status))
}

/// Prometheus text exposition (never waits for the store).
async fn metrics(State(app): State<Shared>) -> Response {
    let body = crate::metrics::scrape(&app.node).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::text::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn sync_now(State(app): State<Shared>) -> Response {
    app.node.sync_now.notify_waiters();
    json(StatusCode::OK, &Accepted { ok: true })
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {method} {}; the API has GET /v1/health, GET /v1/status, GET /v1/metrics, POST /v1/sync, GET /v1/tables/TABLE/rows, GET, PUT or DELETE /v1/tables/TABLE/rows/ID, POST /v1/tables/TABLE/import, GET /v1/tables/TABLE/export, GET or POST /v1/staff and DELETE /v1/staff/NAME, GET /v1/held and POST /v1/held/ID/accept or /v1/held/ID/discard, and POST /v1/backup, GET or POST /v1/reseal and POST /v1/checkpoint",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not accept {method}; rows are read with GET, written with PUT and deleted with DELETE, and sync is started with POST",
            uri.path()
        ),
    )
}

// ---- query parameters ---------------------------------------------------

fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad_request(format!(
        "the path is not valid ({e}); write /v1/tables/TABLE/rows/ID with a row id of letters, digits, '-', '_', '.' or '~'"
    ))
}

/// Query parameters of the row endpoints, checked against what each takes.
struct Params {
    after: Option<String>,
    limit: usize,
    reveal: Reveal,
}

fn params(
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> Result<Params, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "the query string is not valid ({e}); write e.g. ?reveal=true"
        ))
    })?;
    let mut out = Params {
        after: None,
        limit: DEFAULT_LIMIT,
        reveal: Reveal::No,
    };
    for (key, value) in query {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{key}`; this endpoint takes: {}",
                allowed.join(", ")
            )));
        }
        match key.as_str() {
            "reveal" => {
                out.reveal = match value.as_str() {
                    "true" | "1" | "yes" => Reveal::Yes,
                    "false" | "0" | "no" | "" => Reveal::No,
                    _ => {
                        return Err(ApiError::bad_request(
                            "reveal must be true or false, e.g. ?reveal=true",
                        ));
                    }
                }
            }
            "limit" => {
                out.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}; page through more rows with ?after=NEXT"
                        ))
                    })?;
            }
            "after" => {
                if !valid_id(&value) {
                    return Err(ApiError::bad_request(
                        "after must be a row id (letters, digits, '-', '_', '.' or '~'): pass the `next` of the previous page",
                    ));
                }
                out.after = Some(value);
            }
            _ => {}
        }
    }
    Ok(out)
}

// ---- rows ---------------------------------------------------------------

/// Converts a row for the API, noting every sealed cell it reveals.
fn to_api(node: &Node, view: RowView, revealed: &mut Vec<RevealedCell>) -> Row {
    let cells = view
        .cells
        .into_iter()
        .map(|(column, cell)| {
            let cell = match cell {
                CellView::Value(v) => Cell::Value(Plaintext::new(v)),
                CellView::Sealed => Cell::Sealed,
                CellView::Empty => Cell::Value(Plaintext::new(Value::Null)),
                CellView::Revealed(p) => {
                    revealed.push(RevealedCell {
                        id: view.id.clone(),
                        column: column.clone(),
                    });
                    Cell::Value(p)
                }
            };
            (column, cell)
        })
        .collect();
    Row {
        id: view.id,
        updated: view.updated.to_string(),
        updated_by: Some(view.updated_by.to_string()),
        updated_office: node.office_of(view.updated_by),
        columns: Columns(cells),
    }
}

/// The caller of a reveal: refused if the socket did not say who it is
/// (the audit log must name them).
pub(super) fn revealer(peer: Peer, reveal: Reveal) -> Result<Option<Caller>, ApiError> {
    match (reveal, peer.caller) {
        (Reveal::No, _) => Ok(None),
        (Reveal::Yes, Some(caller)) => Ok(Some(caller)),
        (Reveal::Yes, None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin socket could not tell which user is asking, and every reveal is audited by user; ask without reveal",
        )),
    }
}

/// Appends the audit lines of a reveal (durably) before it is answered.
async fn audit(
    app: &Shared,
    caller: Option<Caller>,
    table: String,
    revealed: Vec<RevealedCell>,
) -> Result<(), ApiError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    if revealed.is_empty() {
        return Ok(());
    }
    let cells = revealed.len() as u64;
    let app = app.clone();
    let node = app.node.clone();
    tokio::task::spawn_blocking(move || app.audit.record(caller, &table, &revealed))
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "writing the reveal audit log failed ({e}); nothing was revealed, retry"
            ))
        })??;
    node.metrics
        .revealed_cells
        .fetch_add(cells, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

async fn list_rows(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    table: Result<Path<String>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(table) = table.map_err(path_error)?;
    let p = params(query, &["after", "limit", "reveal"])?;
    let caller = revealer(peer, p.reveal)?;
    let (limit, reveal, t) = (p.limit, p.reveal, table.clone());
    let (views, more) = app
        .node
        .with_store(move |s| {
            let rows = s.list(&t, p.after.as_deref(), limit, reveal)?;
            let more = match rows.last() {
                Some(last) if rows.len() == limit => {
                    !s.list(&t, Some(&last.id), 1, Reveal::No)?.is_empty()
                }
                _ => false,
            };
            Ok::<_, StoreError>((rows, more))
        })
        .await??;
    let next = if more {
        views.last().map(|r| r.id.clone())
    } else {
        None
    };
    let mut revealed = Vec::new();
    let rows = views
        .into_iter()
        .map(|v| to_api(&app.node, v, &mut revealed))
        .collect();
    audit(&app, caller, table, revealed).await?;
    Ok(json(StatusCode::OK, &RowsPage { rows, next }))
}

async fn get_row(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((table, id)) = path.map_err(path_error)?;
    let p = params(query, &["reveal"])?;
    let caller = revealer(peer, p.reveal)?;
    let (t, i, reveal) = (table.clone(), id.clone(), p.reveal);
    // Found, or whether the id was deleted.
    let found: Result<RowView, bool> = app
        .node
        .with_store(move |s| match s.get(&t, &i, reveal)? {
            Some(row) => Ok(Ok(row)),
            None => Ok::<_, StoreError>(Err(s.is_deleted(&t, &i)?)),
        })
        .await??;
    let view = match found {
        Ok(view) => view,
        Err(true) => {
            return Err(ApiError::not_found(format!(
                "row {table}/{id} was deleted; deleted ids are never reused, so write the row under a new id"
            )));
        }
        Err(false) => {
            return Err(StoreError::NoSuchRow { table, id }.into());
        }
    };
    let mut revealed = Vec::new();
    let row = to_api(&app.node, view, &mut revealed);
    audit(&app, caller, table, revealed).await?;
    Ok(json(StatusCode::OK, &row))
}

/// Reads the request body into a buffer wiped on drop, refusing more than
/// `MAX_BODY` bytes.
pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> Result<SecretBuf, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} KiB; write fewer or shorter columns per request",
                MAX_BODY / 1024
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut buf = SecretBuf::with_capacity(declared.unwrap_or(1024).min(MAX_BODY));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!(
                "the request body could not be read ({e}); send it again"
            ))
        })?;
        if let Ok(chunk) = frame.into_data() {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            secret_buf::take_chunk(&mut buf, chunk);
        }
    }
    Ok(buf)
}

fn written(w: Written) -> WriteResult {
    WriteResult {
        id: w.id,
        hlc: w.hlc.to_string(),
        seq: w.seq,
    }
}

async fn put_row(
    State(app): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((table, id)) = path.map_err(path_error)?;
    params(query, &[])?;
    let cells = {
        let buf = read_body(&headers, body).await?;
        // `buf` is wiped when this block ends, parsed or not.
        serde_json::from_slice::<RowWrite>(buf.as_slice()).map_err(|e| {
            let text = e.to_string();
            if e.is_data() {
                ApiError::bad_request(text)
            } else {
                ApiError::bad_request(format!(
                    "the body is not valid JSON ({text}); send an object of column: value pairs, e.g. {{\"title\": \"Taller\", \"capacity\": 25}}"
                ))
            }
        })?
    };
    let w = app.node.put(table, id, cells.0).await?;
    Ok(json(StatusCode::OK, &written(w)))
}

async fn delete_row(
    State(app): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((table, id)) = path.map_err(path_error)?;
    params(query, &[])?;
    let w = app.node.delete(table, id).await?;
    Ok(json(StatusCode::OK, &written(w)))
}
