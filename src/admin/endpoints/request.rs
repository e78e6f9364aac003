//! What every admin endpoint shares: the state the router hands each
//! request, the caller from the socket's credentials, reading a body into
//! a wiped buffer, answering JSON from one, and who a reveal is for.
//!
//! Owns: those, for rows.rs, staff.rs, held.rs, maintenance.rs and
//! bulk.rs alike.
//! Must not: hold an endpoint, or let a body reach a log line or an error.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::errors::ApiError;
use crate::access::admin_request::AdminRequest;
use crate::access::socket_roles::{Access, CallerIds};
use crate::audit::edits::EditLog;
use crate::audit::{AuditLog, Caller};
use crate::node::Node;
use crate::secret_buf::{self, SecretBuf};
use crate::store::Reveal;

/// The largest request body accepted (one row's columns).
pub const MAX_BODY: usize = 1 << 20;

/// What every request handler shares.
pub(crate) struct AdminState {
    pub node: Arc<Node>,
    pub audit: AuditLog,
    /// Who changed the staff list.
    pub edits: EditLog,
    /// Who holds which role (`[access]`, resolved at start).
    pub access: Access,
    /// One import is held in memory at a time; the next waits.
    pub imports: tokio::sync::Semaphore,
}

pub(crate) type SharedAdmin = Arc<AdminState>;

/// The connection's peer, from the socket's credentials (None if the
/// kernel did not say), and every group it holds.
#[derive(Debug, Clone)]
pub(crate) struct SocketPeer {
    pub caller: Option<Caller>,
    pub ids: Option<CallerIds>,
}

/// The request as the router parsed it and the role check judged it
/// (access/admin_request.rs): handlers act on this value and never read
/// the raw path or query.
pub(super) type Parsed = axum::Extension<Arc<AdminRequest>>;

/// The answer of a handler reached with a route it does not serve (the
/// router and the parser disagree; never expected).
pub(super) fn not_this_route() -> ApiError {
    ApiError::not_found("no such endpoint; `puente --help` lists what the admin socket serves")
}

/// `Reveal` of a parsed request: only what `AdminRequest::reveal` says.
pub(super) fn reveal_of(request: &AdminRequest) -> Reveal {
    if request.reveal() {
        Reveal::Yes
    } else {
        Reveal::No
    }
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

/// The caller of a reveal: refused if the socket did not say who it is
/// (the audit log must name them).
pub(super) fn revealer(peer: SocketPeer, reveal: Reveal) -> Result<Option<Caller>, ApiError> {
    match (reveal, peer.caller) {
        (Reveal::No, _) => Ok(None),
        (Reveal::Yes, Some(caller)) => Ok(Some(caller)),
        (Reveal::Yes, None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin socket could not tell which user is asking, and every reveal is audited by user; ask without reveal",
        )),
    }
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
