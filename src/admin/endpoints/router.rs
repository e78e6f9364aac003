//! The admin API's route table: every endpoint, the fallbacks that say
//! which endpoints exist, the role check every request passes, the
//! per-request debug log line (method, path, status — never a query
//! value or a body), and the four small endpoints of the node itself
//! (health, status, metrics, sync now).
//!
//! Owns: which path and method go to which handler, reading each request
//! once (access/admin_request.rs parses) and refusing a caller without the
//! role an endpoint needs (access/socket_roles.rs decides), then handing
//! the parsed request to the handler.
//! Must not: hold the logic of rows, staff, held changes, maintenance or
//! bulk (their files do), or log request contents.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::errors::ApiError;
use super::request::{SharedAdmin, SocketPeer, json};
use super::{bulk, held, maintenance, rows, staff};
use crate::access::admin_request::{self, RequestError};
use crate::access::socket_roles;
use crate::api::{Accepted, Health};

pub(crate) fn router(state: SharedAdmin) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/metrics", get(metrics))
        .route("/v1/sync", post(sync_now))
        .route("/v1/tables/{table}/rows", get(rows::list_rows))
        .route(
            "/v1/tables/{table}/rows/{id}",
            get(rows::get_row)
                .put(rows::put_row)
                .delete(rows::delete_row),
        )
        .merge(staff::routes())
        .merge(maintenance::routes())
        .merge(held::routes())
        .merge(bulk::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), check_access))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Reads every request once into an `AdminRequest` (a 400 or 405 when it
/// cannot be read), refuses (403) a caller without a role it needs, and
/// hands the handler that same value as an extension: no handler reads
/// the raw query or path again.
async fn check_access(State(app): State<SharedAdmin>, mut req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let parsed = admin_request::parse(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        has_body,
    );
    let request = match parsed {
        Ok(request) => request,
        Err(RequestError::BadRequest(m)) => return ApiError::bad_request(m).into_response(),
        Err(RequestError::MethodNotAllowed(m)) => {
            return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, m).into_response();
        }
    };
    let needed = socket_roles::needed(&request);
    let ids = req
        .extensions()
        .get::<ConnectInfo<SocketPeer>>()
        .and_then(|c| c.0.ids.clone());
    if app.access.check(ids.as_ref(), &needed, None).is_ok() {
        req.extensions_mut().insert(Arc::new(request));
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
        Ok(()) => {
            req.extensions_mut().insert(Arc::new(request));
            return next.run(req).await;
        }
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
        .get::<ConnectInfo<SocketPeer>>()
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

async fn health(State(app): State<SharedAdmin>) -> Response {
    json(
        StatusCode::OK,
        &Health {
            ok: true,
            node: app.node.config().name.clone(),
        },
    )
}

async fn status(State(app): State<SharedAdmin>) -> Result<Response, ApiError> {
    let status = app.node.status().await?;
    Ok(json(StatusCode::OK, &status))
}

/// Prometheus text exposition (never waits for the store).
async fn metrics(State(app): State<SharedAdmin>) -> Response {
    let body = crate::metrics::scrape(&app.node).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::text::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn sync_now(State(app): State<SharedAdmin>) -> Response {
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
