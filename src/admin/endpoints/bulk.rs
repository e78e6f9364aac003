//! The bulk endpoints: `POST /v1/tables/{table}/import` (a stream of
//! import lines in, every row written in one transaction or none) and
//! `GET /v1/tables/{table}/export` (rows out as JSON Lines, page by page).
//!
//! Owns: reading the import stream line by line within its bounds (a line,
//! the whole stream, the rows), feeding the checks, asking the replica
//! about deleted ids and writing in one `put_many` under one hold of the
//! store; choosing the export's columns (sealed ones only with reveal),
//! writing the export's audit line before the first revealed byte, and
//! streaming pages without holding the store between them.
//! Must not: put a value into an error or a log line.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::BodyExt;

use super::errors::ApiError;
use super::request::{Parsed, SharedAdmin, SocketPeer, json, not_this_route, revealer};
use crate::access::admin_request::{AdminRequest, Route};
use crate::admin::channel_body::{self, StreamError};
use crate::bulk::check::Staging;
use crate::bulk::{
    COLUMNS_HEADER, ImportLine, ImportReport, LEFT_OUT_HEADER, MAX_IMPORT_BYTES, MAX_IMPORT_LINE,
    MAX_IMPORT_ROWS, ROWS_HEADER,
};
use crate::config::TableDef;
use crate::secret_buf::{self, SecretBuf};
use crate::store::{CellView, Reveal, StoreError};
use crate::value::{Plaintext, Value};

/// Rows per store read while exporting (the store is free between pages);
/// fewer when revealing, since each sealed cell is decrypted under the
/// store's lock and sync waits meanwhile.
const EXPORT_PAGE: usize = 1000;
const REVEALED_PAGE: usize = 100;
pub(super) fn routes() -> Router<SharedAdmin> {
    Router::new()
        .route("/v1/tables/{table}/import", post(import))
        .route("/v1/tables/{table}/export", get(export))
}

fn table_def(app: &SharedAdmin, table: &str) -> Result<TableDef, ApiError> {
    let schema = app.node.schema();
    schema.table(table).cloned().ok_or_else(|| {
        StoreError::UnknownTable {
            table: table.to_string(),
            known: schema
                .tables
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()
    })
}

fn too_large(what: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, what)
}

// ---- import ---------------------------------------------------------------

/// Reads and wipes what is left of a refused import's stream (up to the
/// import's bound) before the refusal is sent. A daemon that answered
/// while the client was still writing would close the connection under
/// the client's last write, and the client would say only that its write
/// broke, not why the import was refused.
async fn after_reading_the_rest(mut body: Body, refusal: ApiError) -> ApiError {
    let mut total = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(chunk) = frame.into_data() {
            total += chunk.len() as u64;
            secret_buf::wipe_chunk(chunk);
            if total > MAX_IMPORT_BYTES {
                break;
            }
        }
    }
    refusal
}

async fn import(
    State(app): State<SharedAdmin>,
    Extension(request): Parsed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Route::Import { table } = &request.route else {
        return Err(not_this_route());
    };
    let table = table.clone();
    let def = match table_def(&app, &table) {
        Ok(def) => def,
        Err(refusal) => return Err(after_reading_the_rest(body, refusal).await),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream_too_large = || {
        too_large(format!(
            "the import is larger than {} MiB; split the file into parts (each part is written whole or not at all)",
            MAX_IMPORT_BYTES >> 20
        ))
    };
    if declared.is_some_and(|n| n > MAX_IMPORT_BYTES) {
        return Err(stream_too_large());
    }
    // The rows of one import are held in memory until they are written:
    // a second import waits here, before reading its body.
    let _one_at_a_time = app.imports.acquire().await.map_err(|_| {
        ApiError::internal("the daemon is shutting down; import the file again after it restarts")
    })?;
    let mut staging = Staging::new(&def);
    let mut pending = SecretBuf::with_capacity(64 * 1024);
    let mut total = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!(
                "the import stream broke off ({e}); nothing was written, import the file again"
            ))
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        total += chunk.len() as u64;
        if total > MAX_IMPORT_BYTES {
            return Err(stream_too_large());
        }
        secret_buf::take_chunk(&mut pending, chunk);
        pending = take_lines(pending, &mut staging)?;
        if pending.len() > MAX_IMPORT_LINE {
            return Err(too_large(format!(
                "a row of the import is longer than {} KiB; shorten it",
                MAX_IMPORT_LINE >> 10
            )));
        }
    }
    if pending.len() > 0 {
        one_line(pending.as_slice(), &mut staging)?;
    }
    let rows = staging.rows_seen();
    let t = table.clone();
    let outcome = app
        .node
        .with_store(move |s| -> Result<_, StoreError> {
            staging.check_deleted(|id| s.is_deleted(&t, id))?;
            staging.check_required(|id| s.has_row(&t, id))?;
            match staging.finish() {
                Ok(writes) => {
                    s.put_many(&t, writes)?;
                    Ok(Ok(s.head()))
                }
                Err(problems) => Ok(Err(problems)),
            }
        })
        .await??;
    let report = match outcome {
        Ok(head) => {
            tracing::info!(table = %table, rows, "imported rows");
            ImportReport {
                table,
                rows,
                written: true,
                head: Some(head),
                problems: Vec::new(),
                more_problems: 0,
                error: None,
                status: None,
            }
        }
        Err(problems) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            let report = ImportReport {
                error: Some(problems.sentence("the import")),
                status: Some(status.as_u16()),
                table,
                rows,
                written: false,
                head: None,
                problems: problems.listed,
                more_problems: problems.more,
            };
            return Ok(json(status, &report));
        }
    };
    Ok(json(StatusCode::OK, &report))
}

/// Feeds every complete line in `pending` to the checks; returns what is
/// left (the start of the next line) in a new buffer (the old one is
/// wiped).
fn take_lines(pending: SecretBuf, staging: &mut Staging) -> Result<SecretBuf, ApiError> {
    let bytes = pending.as_slice();
    let mut start = 0;
    while let Some(at) = bytes[start..].iter().position(|b| *b == b'\n') {
        one_line(&bytes[start..start + at], staging)?;
        start += at + 1;
    }
    if start == 0 {
        return Ok(pending);
    }
    let mut rest = SecretBuf::with_capacity((bytes.len() - start).max(64 * 1024));
    rest.extend(&bytes[start..]);
    Ok(rest)
}

fn one_line(line: &[u8], staging: &mut Staging) -> Result<(), ApiError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(());
    }
    let parsed: ImportLine = serde_json::from_slice(line).map_err(|e| {
        ApiError::bad_request(format!(
            "the import stream is not valid ({}); nothing was written. `puente rows import` writes it; check that the daemon and the command are the same puente version",
            if e.is_data() { "a line is not an import line" } else { "a line is not JSON" }
        ))
    })?;
    match parsed {
        ImportLine {
            line,
            header: Some(columns),
            id: None,
            cells: None,
        } => staging.header(line, &columns),
        ImportLine {
            line,
            header: None,
            id: Some(id),
            cells,
        } => {
            if staging.full() {
                return Err(too_large(format!(
                    "the import has more than {MAX_IMPORT_ROWS} rows; split the file into parts (each part is written whole or not at all)"
                )));
            }
            staging.row(line, id, cells.map(|c| c.0).unwrap_or_default());
        }
        _ => {
            return Err(ApiError::bad_request(
                "an import line must hold a header or an id with its cells; nothing was written",
            ));
        }
    }
    Ok(())
}

// ---- export ---------------------------------------------------------------

/// The columns of an export and whether it reveals.
struct ExportPlan {
    /// Column names in the schema file's order (without `id`).
    columns: Vec<String>,
    reveal: Reveal,
    left_out: Vec<String>,
}

/// The export's plan from the parsed request: it reveals only when
/// `AdminRequest::reveal` says so (the value the role check judged).
fn plan(def: &TableDef, request: &AdminRequest) -> Result<ExportPlan, ApiError> {
    let wants_reveal = request.reveal();
    let in_order: Vec<&crate::config::ColumnDef> =
        def.file_order.iter().map(|&c| &def.columns[c]).collect();
    let named: Vec<&crate::config::ColumnDef> = match &request.query.columns {
        None => in_order.clone(),
        Some(list) => {
            let mut out = Vec::new();
            for name in list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && *n != "id")
            {
                let Some(c) = def.column_index(name) else {
                    return Err(StoreError::UnknownColumn {
                        table: def.name.clone(),
                        column: name.to_string(),
                        known: in_order
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                    .into());
                };
                if !out
                    .iter()
                    .any(|o: &&crate::config::ColumnDef| o.name == name)
                {
                    out.push(&def.columns[c]);
                }
            }
            // The file's order, whatever order they were named in.
            in_order
                .iter()
                .copied()
                .filter(|c| out.iter().any(|o| o.name == c.name))
                .collect()
        }
    };
    let sealed_named: Vec<String> = named
        .iter()
        .filter(|c| c.is_sealed())
        .map(|c| c.name.clone())
        .collect();
    if request.query.columns.is_some() && !wants_reveal && !sealed_named.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} of table {} {} sealed; an export shows sealed values only with --reveal (reveal=true), which needs the `reveal` role, works only where the group's identity is, and is written to the audit log. Nothing was exported",
            sealed_named.join(", "),
            def.name,
            if sealed_named.len() == 1 { "is" } else { "are" }
        )));
    }
    let (columns, left_out): (Vec<_>, Vec<_>) = if wants_reveal {
        (named.iter().map(|c| c.name.clone()).collect(), Vec::new())
    } else {
        let names = |sealed: bool| -> Vec<String> {
            named
                .iter()
                .filter(|c| c.is_sealed() == sealed)
                .map(|c| c.name.clone())
                .collect()
        };
        (names(false), names(true))
    };
    let reveal = if wants_reveal && !sealed_named.is_empty() {
        Reveal::Yes
    } else {
        Reveal::No
    };
    Ok(ExportPlan {
        columns,
        reveal,
        left_out,
    })
}

/// One row's export line: its id and the planned columns.
fn export_line(
    view: crate::store::RowView,
    columns: &[String],
    revealed: &mut u64,
) -> Result<SecretBuf, StreamError> {
    let mut cells = Vec::with_capacity(columns.len());
    let mut by_name: Vec<(String, CellView)> = view.cells;
    for column in columns {
        let at = by_name.iter().position(|(c, _)| c == column);
        let cell = at.map(|i| by_name.swap_remove(i).1);
        let value = match cell {
            Some(CellView::Value(v)) => Plaintext::new(v),
            Some(CellView::Revealed(p)) => {
                *revealed += 1;
                p
            }
            Some(CellView::Sealed | CellView::Empty) | None => Plaintext::new(Value::Null),
        };
        cells.push((column.clone(), value));
    }
    crate::bulk::export::line(&view.id, cells)
        .map_err(|_| StreamError("could not encode a row of the export".into()))
}

async fn export(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let Route::Export { table } = &request.route else {
        return Err(not_this_route());
    };
    let table = table.clone();
    let def = table_def(&app, &table)?;
    let plan = plan(&def, &request)?;
    let caller = revealer(peer, plan.reveal)?;
    // The first page is read before anything is answered: a node that
    // cannot reveal says so as an error, not as a cut-off stream.
    let (t, reveal) = (table.clone(), plan.reveal);
    let page_rows = match reveal {
        Reveal::Yes => REVEALED_PAGE,
        Reveal::No => EXPORT_PAGE,
    };
    let first = app
        .node
        .with_store(move |s| s.list(&t, None, page_rows, reveal))
        .await??;
    let rows = app
        .node
        .replica()
        .rows
        .iter()
        .find(|(name, _)| *name == table)
        .map_or(0, |(_, n)| *n);
    if let Some(caller) = caller {
        let sealed: Vec<String> = plan
            .columns
            .iter()
            .filter(|c| {
                def.column_index(c)
                    .is_some_and(|i| def.columns[i].is_sealed())
            })
            .cloned()
            .collect();
        let (audit_app, t) = (app.clone(), table.clone());
        tokio::task::spawn_blocking(move || {
            audit_app.audit.record_export(caller, &t, &sealed, rows)
        })
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "writing the reveal audit log failed ({e}); nothing was exported, retry"
            ))
        })??;
        tracing::info!(uid = caller.uid, table = %table, rows, "export with reveal");
    }
    let (tx, body) = channel_body::channel();
    let columns = plan.columns.clone();
    let node = app.node.clone();
    tokio::spawn(async move {
        let mut page = first;
        let mut revealed = 0u64;
        loop {
            let last = page.last().map(|r| r.id.clone());
            let full = page.len() == page_rows;
            let mut chunk = SecretBuf::with_capacity(64 * 1024);
            for view in page {
                match export_line(view, &columns, &mut revealed) {
                    Ok(line) => chunk.extend(line.as_slice()),
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if tx.send(Ok(chunk.into_bytes())).await.is_err() {
                break; // the client left
            }
            let (Some(after), true) = (last, full) else {
                break;
            };
            let t = table.clone();
            page = match node
                .with_store(move |s| s.list(&t, Some(&after), page_rows, reveal))
                .await
            {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    let _ = tx
                        .send(Err(StreamError(format!("reading the table failed: {e}"))))
                        .await;
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Err(StreamError(e.to_string()))).await;
                    break;
                }
            };
        }
        node.metrics
            .revealed_cells
            .fetch_add(revealed, Ordering::Relaxed);
    });
    let mut names = vec!["id".to_string()];
    names.extend(plan.columns);
    let header_value =
        |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
    let mut response = (StatusCode::OK, Body::new(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(COLUMNS_HEADER, header_value(names.join(",")));
    h.insert(ROWS_HEADER, header_value(rows.to_string()));
    h.insert(LEFT_OUT_HEADER, header_value(plan.left_out.join(",")));
    Ok(response)
}
