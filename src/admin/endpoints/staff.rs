//! The staff endpoints of the admin socket: add, list and remove the
//! office's web logins (`/v1/staff`, admin role).
//!
//! Owns: making each new member's login and calendar tokens (handed out
//! once, in the answer; only their hashes are stored), the links built
//! from `[web]`, ending a removed member's web sessions (the node's staff
//! epoch), and recording each change in the edit log.
//! Must not: log a token, or keep one after answering.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Extension, Router};

use super::errors::ApiError;
use super::request::{Parsed, SharedAdmin, SocketPeer, json, not_this_route, read_body};
use crate::access::admin_request::Route;
use crate::access::staff_tokens::{self, ROLE_USAGE, StaffRole};
use crate::api::staff::{StaffAdded, StaffEntry, StaffList, StaffNew, StaffRemoved};
use crate::audit::edits::{Edit, Editor};

pub(super) fn routes() -> Router<SharedAdmin> {
    Router::new()
        .route("/v1/staff", get(list).post(add))
        .route("/v1/staff/{name}", delete(remove))
}

fn editor(peer: &SocketPeer) -> Editor {
    match peer.caller {
        Some(c) => Editor::Socket {
            uid: c.uid,
            pid: c.pid,
        },
        // The role check lets no unknown caller this far; keep a marker.
        None => Editor::Socket {
            uid: u32::MAX,
            pid: None,
        },
    }
}

async fn record(app: &SharedAdmin, by: Editor, edit: Edit) -> Result<(), ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.edits.record(jiff::Timestamp::now(), &by, &edit))
        .await
        .map_err(|e| ApiError::internal(format!("writing the edit log failed ({e})")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn add(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let buf = read_body(&headers, body).await?;
    let new: StaffNew = serde_json::from_slice(buf.as_slice()).map_err(|_| {
        ApiError::bad_request(
            "the body must be a JSON object {\"name\": \"…\", \"role\": \"viewer|editor|admin\"}",
        )
    })?;
    let name = staff_tokens::check_name(&new.name)
        .map_err(ApiError::bad_request)?
        .to_string();
    let role = StaffRole::parse(&new.role)
        .ok_or_else(|| ApiError::bad_request(format!("`{}`: {ROLE_USAGE}", new.role)))?;
    let (login, calendar) = {
        let mut rng = rand::rng();
        (
            staff_tokens::new_token(&mut rng),
            staff_tokens::new_token(&mut rng),
        )
    };
    let (login_hash, calendar_hash) = (staff_tokens::hash(&login), staff_tokens::hash(&calendar));
    let n = name.clone();
    let added = app
        .node
        .with_store(move |s| s.staff_add(&n, role.name(), &login_hash, &calendar_hash))
        .await??;
    if added.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "there is already a staff member named {name}; remove them first (puente staff remove {name:?}) to give them new links, or choose another name"
            ),
        ));
    }
    record(
        &app,
        editor(&peer),
        Edit {
            action: "staff_add",
            table: None,
            id: None,
            columns: vec![],
            staff: Some(name.clone()),
            role: Some(role.name().into()),
        },
    )
    .await?;
    tracing::info!(staff = %name, role = role.name(), "staff login added");
    let web = app.node.config().web.clone();
    let base = web.as_ref().map(|w| w.base_url());
    let links_warning = web.as_ref().and_then(|w| w.links_warning());
    Ok(json(
        StatusCode::CREATED,
        &StaffAdded {
            login_url: base.as_ref().map(|b| format!("{b}/login?token={login}")),
            calendar_url: base
                .as_ref()
                .map(|b| format!("{b}/cal/{calendar}/outreach.ics")),
            links_warning,
            name,
            role: role.name().into(),
            login_token: login,
            calendar_token: calendar,
        },
    ))
}

async fn list(State(app): State<SharedAdmin>) -> Result<Response, ApiError> {
    let records = app.node.with_store(|s| s.staff_list()).await??;
    let staff = records
        .into_iter()
        .map(|r| StaffEntry {
            added: jiff::Timestamp::from_millisecond(r.created_ms as i64)
                .map_or_else(|_| r.created_ms.to_string(), |t| t.to_string()),
            name: r.name,
            role: r.role,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &StaffList {
            staff,
            web: app.node.config().web.as_ref().map(|w| w.base_url()),
        },
    ))
}

async fn remove(
    State(app): State<SharedAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketPeer>,
    Extension(request): Parsed,
) -> Result<Response, ApiError> {
    let Route::StaffMember { name } = &request.route else {
        return Err(not_this_route());
    };
    let name = name.clone();
    let n = name.clone();
    let found = app
        .node
        .with_store(move |s| {
            let record = s.staff_by_name(&n)?;
            if record.is_some() {
                s.staff_remove(&n)?;
            }
            Ok::<_, crate::store::StoreError>(record)
        })
        .await??;
    let Some(record) = found else {
        return Err(ApiError::not_found(format!(
            "there is no staff member named {name}; `puente staff list` shows who has a login"
        )));
    };
    // Their sessions end now: the web server re-checks every session
    // against the staff table before serving it again.
    app.node.staff_epoch.fetch_add(1, Ordering::SeqCst);
    record_removal(&app, &peer, record).await?;
    tracing::info!(staff = %name, "staff login removed");
    Ok(json(
        StatusCode::OK,
        &StaffRemoved {
            name,
            removed: true,
        },
    ))
}

async fn record_removal(
    app: &SharedAdmin,
    peer: &SocketPeer,
    removed: crate::store::StaffRecord,
) -> Result<(), ApiError> {
    record(
        app,
        editor(peer),
        Edit {
            action: "staff_remove",
            table: None,
            id: None,
            columns: vec![],
            staff: Some(removed.name),
            role: Some(removed.role),
        },
    )
    .await
}
