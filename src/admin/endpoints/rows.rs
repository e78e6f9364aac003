//! The row endpoints of the admin socket: list, get, put and delete.
//!
//! Owns: reading their requests (the parsed request's route and query
//! values, checked for range; the JSON body
//! straight into `Plaintext`, then wiping the body buffer), calling the
//! `Node`, and writing the reveal audit lines before a revealed row is
//! answered.
//! Must not: touch SQLite or sealing directly (the `Node` does), or let a
//! value reach a log line or an error message.

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::errors::ApiError;
use super::request::{
    Parsed, SharedAdmin, SocketPeer, json, not_this_route, read_body, reveal_of, revealer,
};
use crate::access::admin_request::{AdminRequest, Route};
use crate::api::{Cell, Columns, Row, RowWrite, RowsPage, WriteResult};
use crate::audit::{Caller, RevealedCell};
use crate::node::Node;
use crate::store::{CellView, Reveal, RowView, StoreError, Written, valid_id};
use crate::value::{Plaintext, Value};

/// Rows per page unless `limit` says otherwise, and the most allowed.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

// ---- query parameters ---------------------------------------------------

/// Checks the paging values of a parsed list request.
fn paging(request: &AdminRequest) -> Result<(Option<String>, usize), ApiError> {
    let limit = match request.query.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}; page through more rows with ?after=NEXT"
            )));
        }
    };
    if let Some(after) = &request.query.after
        && !valid_id(after)
    {
        return Err(ApiError::bad_request(
            "after must be a row id (letters, digits, '-', '_', '.' or '~'): pass the `next` of the previous page",
        ));
    }
    Ok((request.query.after.clone(), limit))
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

/// Appends the audit lines of a reveal (durably) before it is answered.
async fn audit(
    app: &SharedAdmin,
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

pub(super) async fn list_rows(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let Route::Rows { table } = &request.route else {
        return Err(not_this_route());
    };
    let table = table.clone();
    let (after, limit) = paging(&request)?;
    let reveal = reveal_of(&request);
    let caller = revealer(peer, reveal)?;
    let t = table.clone();
    let (views, more) = app
        .node
        .with_store(move |s| {
            let rows = s.list(&t, after.as_deref(), limit, reveal)?;
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

pub(super) async fn get_row(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let Route::Row { table, id } = &request.route else {
        return Err(not_this_route());
    };
    let (table, id) = (table.clone(), id.clone());
    let reveal = reveal_of(&request);
    let caller = revealer(peer, reveal)?;
    let (t, i) = (table.clone(), id.clone());
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

fn written(w: Written) -> WriteResult {
    WriteResult {
        id: w.id,
        hlc: w.hlc.to_string(),
        seq: w.seq,
    }
}

pub(super) async fn put_row(
    State(app): State<SharedAdmin>,
    Extension(request): Parsed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Route::Row { table, id } = &request.route else {
        return Err(not_this_route());
    };
    let (table, id) = (table.clone(), id.clone());
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

pub(super) async fn delete_row(
    State(app): State<SharedAdmin>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let Route::Row { table, id } = &request.route else {
        return Err(not_this_route());
    };
    let (table, id) = (table.clone(), id.clone());
    let w = app.node.delete(table, id).await?;
    Ok(json(StatusCode::OK, &written(w)))
}
