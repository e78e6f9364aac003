//! The web agenda's addresses, and the handlers that are not about events:
//! sign-in and sign-out, the status panel, the calendar feed, the embedded
//! assets, and the answers to everything else.
//!
//! Owns: the router and its middlewares (in order: request log, security
//! headers, language, refusing any ask to reveal), and these handlers.
//! Must not: hold a token past the request, or log one.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::events;
use super::http::{self, Ctx, SharedWeb, query_pairs, read_form, same_secret, see_other};
use super::i18n;
use super::ics;
use super::pages::{login as login_page, status as status_page};
use super::sessions::{self, LOGIN_COOKIE, SESSION_COOKIE};
use crate::access::staff_tokens::{self, StaffRole};
use crate::schedule::Lang;

use super::pages::{ICON, STYLE};

pub fn router(state: SharedWeb) -> Router {
    Router::new()
        .route("/", get(|| async { see_other("/agenda") }))
        .route("/agenda", get(events::agenda))
        .route("/events/new", get(events::new_form))
        .route("/events", post(events::create))
        .route("/events/{id}/edit", get(events::edit_form))
        .route("/events/{id}", post(events::update))
        .route("/events/{id}/cancel", post(events::cancel))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/status", get(status))
        .route("/cal/{token}/outreach.ics", get(calendar))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset("image/svg+xml", ICON) }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), no_reveal))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::language,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::security_headers,
        ))
        .layer(middleware::from_fn(http::log_request))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(State(app): State<SharedWeb>, ctx: Ctx) -> Response {
    ctx.error_page(&app, StatusCode::NOT_FOUND, ctx.words().no_page)
}

/// The web never reveals: any ask for it (`reveal=` or `columns=` in the
/// query) is refused before a handler runs.
async fn no_reveal(State(app): State<SharedWeb>, req: Request, next: Next) -> Response {
    let asks = query_pairs(req.uri().query())
        .iter()
        .any(|(k, _)| k == "reveal" || k == "columns");
    if !asks {
        return next.run(req).await;
    }
    let (mut parts, _) = req.into_parts();
    let Ok(ctx) = Ctx::from_request_parts(&mut parts, &app).await;
    ctx.error_page(&app, StatusCode::FORBIDDEN, ctx.words().no_reveal)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The sign-in page, with a fresh CSRF token in its own cookie.
fn login_answer(
    ctx: &Ctx,
    app: &SharedWeb,
    status: StatusCode,
    token: &str,
    message: Option<&str>,
) -> Response {
    let csrf = staff_tokens::new_token(&mut rand::rng());
    let page = login_page::render(&ctx.chrome(app), token, message, &csrf);
    with_cookie(
        ctx.page(status, page),
        &sessions::set_cookie(LOGIN_COOKIE, &csrf, app.secure, None),
    )
}

async fn login_form(State(app): State<SharedWeb>, ctx: Ctx, uri: Uri) -> Response {
    let token = query_pairs(uri.query())
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .filter(|t| staff_tokens::looks_like_token(t))
        .unwrap_or_default();
    login_answer(&ctx, &app, StatusCode::OK, &token, None)
}

async fn login(State(app): State<SharedWeb>, ctx: Ctx, headers: HeaderMap, body: Body) -> Response {
    let now = app.now_ms();
    let pairs = match read_form(&headers, body).await {
        Ok(p) => p,
        Err(why) => return ctx.body_refused(&app, why),
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let cookie = sessions::cookie(
        headers.get(header::COOKIE).and_then(|v| v.to_str().ok()),
        LOGIN_COOKIE,
    );
    let csrf_ok =
        matches!((field("csrf"), cookie), (Some(f), Some(c)) if !c.is_empty() && same_secret(f, c));
    if !csrf_ok || !http::same_origin(&headers) || pairs.len() != 2 {
        return login_answer(
            &ctx,
            &app,
            StatusCode::FORBIDDEN,
            "",
            Some(ctx.words().forged),
        );
    }
    let token = field("token").unwrap_or_default().trim();
    let record = if staff_tokens::looks_like_token(token) {
        let hash = staff_tokens::hash(token);
        match app.node.with_store(move |s| s.staff_by_login(&hash)).await {
            Ok(Ok(r)) => r,
            _ => {
                return ctx.error_page(&app, StatusCode::INTERNAL_SERVER_ERROR, ctx.words().failed);
            }
        }
    } else {
        None
    };
    // The token is looked up first and only a failure counts: a guesser
    // at the same address (every client, behind a proxy) never locks out
    // a member whose token is good.
    let Some((record, role)) = record.and_then(|r| StaffRole::parse(&r.role).map(|role| (r, role)))
    else {
        if let Err(wait) = app.limiter().attempt(ctx.client, now) {
            return login_answer(
                &ctx,
                &app,
                StatusCode::TOO_MANY_REQUESTS,
                "",
                Some(&i18n::slow_down(ctx.lang, wait)),
            );
        }
        tracing::info!(client = %ctx.client, "web: sign-in with an unknown key");
        return login_answer(
            &ctx,
            &app,
            StatusCode::UNAUTHORIZED,
            "",
            Some(ctx.words().bad_token),
        );
    };
    let epoch = app
        .node
        .staff_epoch
        .load(std::sync::atomic::Ordering::SeqCst);
    let id = app
        .sessions
        .start(record.id, &record.name, role, epoch, now, &mut rand::rng());
    tracing::info!(staff = %record.name, role = role.name(), "web: signed in");
    let response = with_cookie(
        see_other("/agenda"),
        &sessions::set_cookie(SESSION_COOKIE, &id, app.secure, None),
    );
    with_cookie(
        response,
        &sessions::set_cookie(LOGIN_COOKIE, "", app.secure, Some(0)),
    )
}

async fn logout(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let pairs = match read_form(&headers, body).await {
        Ok(p) => p,
        Err(why) => return ctx.body_refused(&app, why),
    };
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if let Err(r) = ctx.require_form(&app, StaffRole::Viewer, csrf, &headers) {
        return r;
    }
    if let Some((id, _)) = &ctx.session {
        app.sessions.end(id);
    }
    with_cookie(
        see_other("/login"),
        &sessions::set_cookie(SESSION_COOKIE, "", app.secure, Some(0)),
    )
}

async fn status(State(app): State<SharedWeb>, ctx: Ctx) -> Response {
    if let Err(r) = ctx.require(&app, StaffRole::Admin) {
        return r;
    }
    match app.node.status().await {
        Ok(s) => ctx.page(
            StatusCode::OK,
            status_page::render(&ctx.chrome(&app), &s, app.now_ms(), &app.tz),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "web: reading status failed");
            ctx.error_page(&app, StatusCode::INTERNAL_SERVER_ERROR, ctx.words().failed)
        }
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The calendar feed of a staff member's calendar token. The token is
/// looked up first; only unknown tokens count against the same limits as
/// failed sign-ins, so a good feed is never refused for someone else's
/// guesses.
async fn calendar(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Response {
    let now = app.now_ms();
    let token = path.map(|Path(t)| t).unwrap_or_default();
    let record = if staff_tokens::looks_like_token(&token) {
        let hash = staff_tokens::hash(&token);
        app.node
            .with_store(move |s| s.staff_by_calendar(&hash))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    } else {
        None
    };
    if record.is_none() {
        if let Err(wait) = app.limiter().attempt(ctx.client, now) {
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                i18n::slow_down(ctx.lang, wait),
            );
        }
        tracing::info!(client = %ctx.client, "web: calendar feed asked with an unknown key");
        return text(StatusCode::NOT_FOUND, ctx.words().bad_token.to_string());
    }
    let mut lang = ctx.lang;
    let mut office = None;
    for (key, value) in query_pairs(uri.query()) {
        match key.as_str() {
            "lang" => match Lang::parse(&value) {
                Ok(l) => lang = l,
                Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
            },
            "office" if app.offices.contains(&value) => office = Some(value),
            "office" => {
                return text(
                    StatusCode::BAD_REQUEST,
                    i18n::field_error(lang, &super::form::FieldError::UnknownOffice(value)),
                );
            }
            _ => {}
        }
    }
    if !app.has_events {
        return text(
            StatusCode::NOT_FOUND,
            i18n::words(lang).no_events_table.into(),
        );
    }
    let rows = match app.events().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "web: reading the events failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                i18n::words(lang).failed.into(),
            );
        }
    };
    let feed = ics::Feed {
        lang,
        office: office.as_deref(),
        now: jiff::Timestamp::from_millisecond(now as i64)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
        zone: &app.zone,
    };
    (
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"outreach.ics\"",
            ),
        ],
        ics::render(&rows, &feed),
    )
        .into_response()
}
