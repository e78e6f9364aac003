//! The held-changes endpoints of the admin socket (`/v1/held`, admin
//! role): list what peers sent that their office may not make, accept one
//! (applied as if it had been allowed, recorded with the caller's uid) or
//! discard one (this office's version stays and is written again where it
//! can be).
//!
//! Owns: reading the requests, calling the store, and the log line of each
//! decision with who made it.
//! Must not: judge or apply changes itself (store/ does), or show a value.

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::errors::ApiError;
use super::request::{Parsed, SharedAdmin, SocketPeer, json, not_this_route};
use crate::access::admin_request::Route;
use crate::api::held::{HeldDecision, HeldEntry, HeldList};

pub(super) fn routes() -> Router<SharedAdmin> {
    Router::new()
        .route("/v1/held", get(list))
        .route("/v1/held/{id}/{decision}", post(decide))
}

async fn list(
    State(app): State<SharedAdmin>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let all = request.query.all;
    let held = app.node.with_store(move |s| s.held_list(all)).await??;
    Ok(json(
        StatusCode::OK,
        &HeldList {
            held: held.into_iter().map(HeldEntry::from).collect(),
        },
    ))
}

async fn decide(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let usage =
        "write /v1/held/ID/accept or /v1/held/ID/discard with a number from `puente held list`";
    let Route::HeldDecision { id, decision } = &request.route else {
        return Err(not_this_route());
    };
    let decision = decision.clone();
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("`{id}` is not a held change number; {usage}"))
    })?;
    let by = peer.caller.map(|c| c.uid);
    let decided = match decision.as_str() {
        "accept" => {
            app.node
                .with_store(move |s| s.held_accept(id, by))
                .await??
        }
        "discard" => {
            app.node
                .with_store(move |s| s.held_discard(id, by))
                .await??
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "no decision `{decision}`; {usage}"
            )));
        }
    };
    tracing::info!(held = id, uid = by, decision = %decision, peer = %decided.change.peer, "a held change was decided on the admin socket");
    Ok(json(
        StatusCode::OK,
        &HeldDecision {
            change: HeldEntry::from(decided.change),
            written: decided.written,
        },
    ))
}
