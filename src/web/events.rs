//! The agenda and event handlers: show the agenda, the new and edit forms,
//! save an event, cancel one.
//!
//! Owns: the thin glue between a request and the core: read the query or
//! form, call `agenda::page` or `form::validate`, write the changed
//! columns through the node, record who made the change, answer.
//! Must not: validate or choose events itself, or write a column the form
//! does not have (sealed columns are refused by name).

#![allow(
    clippy::result_large_err,
    reason = "an early answer is an axum Response, returned once per request"
)]

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::agenda::{self, Query};
use super::form::{self, EventInput, FormRefusal};
use super::http::{Ctx, SharedWeb, query_pairs, read_form, see_other};
use super::i18n;
use super::pages::{agenda as agenda_page, event_form};
use crate::access::staff_tokens::StaffRole;
use crate::audit::edits::{Edit, Editor};
use crate::schedule::{self, EventRow};
use crate::store::{StoreError, valid_id};
use crate::value::{Plaintext, Value};

/// What a handler answers: the page it was asked for, or an early answer
/// (a refusal or an error page); both are pages (axum answers either).
type Answer = Result<Response, Response>;

fn now(app: &SharedWeb) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(app.now_ms() as i64)
        .unwrap_or_else(|_| jiff::Timestamp::now())
}

fn failed(ctx: &Ctx, app: &SharedWeb, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "web: {what} failed");
    ctx.error_page(app, StatusCode::INTERNAL_SERVER_ERROR, ctx.words().failed)
}

async fn events(ctx: &Ctx, app: &SharedWeb) -> Result<std::sync::Arc<Vec<EventRow>>, Response> {
    if !app.has_events {
        return Err(ctx.error_page(app, StatusCode::NOT_FOUND, ctx.words().no_events_table));
    }
    app.events()
        .await
        .map_err(|e| failed(ctx, app, "reading the events", e))
}

pub async fn agenda(State(app): State<SharedWeb>, ctx: Ctx, uri: Uri) -> Answer {
    let session = ctx.require(&app, StaffRole::Viewer)?;
    let mut q = Query::default();
    for (key, value) in query_pairs(uri.query()) {
        match key.as_str() {
            "from" => q.from = value.parse().ok(),
            "skip" => q.skip = value.parse().unwrap_or(0),
            "office" if app.offices.contains(&value) => q.office = Some(value),
            "office" => {
                return Err(ctx.error_page(
                    &app,
                    StatusCode::NOT_FOUND,
                    &i18n::field_error(ctx.lang, &form::FieldError::UnknownOffice(value)),
                ));
            }
            _ => {}
        }
    }
    let rows = events(&ctx, &app).await?;
    let page = agenda::page(&rows, now(&app), &app.tz, ctx.lang, &q)
        .map_err(|e| failed(&ctx, &app, "building the agenda", e))?;
    Ok(ctx.page(
        StatusCode::OK,
        agenda_page::render(
            &ctx.chrome(&app),
            &page,
            &app.offices,
            session.role.can_edit(),
        ),
    ))
}

pub async fn new_form(State(app): State<SharedWeb>, ctx: Ctx) -> Answer {
    let session = ctx.require(&app, StaffRole::Editor)?;
    let today = now(&app).to_zoned_datetime(app.tz.clone()).date();
    let input = EventInput::blank(today, &app.node.config().name);
    Ok(ctx.page(
        StatusCode::OK,
        event_form::render(
            &ctx.chrome(&app),
            &event_form::FormTarget::New,
            &input,
            &[],
            &app.offices,
            &session.csrf,
        ),
    ))
}

/// A row id from the path, or the "no such event" page.
fn event_id(
    ctx: &Ctx,
    app: &SharedWeb,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, Response> {
    match path {
        Ok(Path(id)) if valid_id(&id) => Ok(id),
        _ => Err(ctx.error_page(app, StatusCode::NOT_FOUND, ctx.words().no_event)),
    }
}

async fn stored(ctx: &Ctx, app: &SharedWeb, id: &str) -> Result<EventRow, Response> {
    let rows = events(ctx, app).await?;
    rows.iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| ctx.error_page(app, StatusCode::NOT_FOUND, ctx.words().no_event))
}

pub async fn edit_form(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let session = ctx.require(&app, StaffRole::Editor)?;
    let id = event_id(&ctx, &app, path)?;
    let row = stored(&ctx, &app, &id).await?;
    let input = EventInput::from_row(&row, &app.tz);
    Ok(ctx.page(
        StatusCode::OK,
        event_form::render(
            &ctx.chrome(&app),
            &event_form::FormTarget::Edit { id: &id },
            &input,
            &[],
            &app.offices,
            &session.csrf,
        ),
    ))
}

/// A new random row id (a UUIDv4 in text).
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The start of an event from its columns.
fn start_of(cells: &[(&'static str, Value)], old: Option<&EventRow>) -> Option<jiff::Timestamp> {
    let written = cells
        .iter()
        .find(|(c, _)| *c == "starts_at")
        .and_then(|(_, v)| match v {
            Value::Text(t) => schedule::parse_instant(t),
            _ => None,
        });
    written.or_else(|| old?.starts_at.as_deref().and_then(schedule::parse_instant))
}

/// Writes `cells` to event `id` and records who did it; then to the
/// agenda page that shows the event (which starts at `start`).
async fn write(
    ctx: &Ctx,
    app: &SharedWeb,
    action: &'static str,
    id: String,
    cells: Vec<(&'static str, Value)>,
    start: Option<jiff::Timestamp>,
) -> Response {
    let Some((_, session)) = &ctx.session else {
        return ctx.error_page(app, StatusCode::FORBIDDEN, ctx.words().session_over);
    };
    // A schema may seal a column of the outreach table: the web never
    // writes one (a value there would be a sealed value typed on the web).
    if cells
        .iter()
        .any(|(c, v)| *v != Value::Null && app.sealed_event_columns.iter().any(|s| s == c))
    {
        return ctx.error_page(app, StatusCode::FORBIDDEN, ctx.words().sealed);
    }
    let cells: Vec<(&'static str, Value)> = cells
        .into_iter()
        .filter(|(c, _)| !app.sealed_event_columns.iter().any(|s| s == c))
        .collect();
    if !cells.is_empty() {
        let columns: Vec<String> = cells.iter().map(|(c, _)| c.to_string()).collect();
        let plain = cells
            .into_iter()
            .map(|(c, v)| (c.to_string(), Plaintext::new(v)))
            .collect();
        match app
            .node
            .put(schedule::TABLE.into(), id.clone(), plain)
            .await
        {
            Ok(_) => {}
            Err(crate::node::NodeError::Store(StoreError::RowDeleted { .. })) => {
                return ctx.error_page(app, StatusCode::GONE, ctx.words().no_event);
            }
            Err(crate::node::NodeError::Store(StoreError::Forbidden {
                message, allowed, ..
            })) => {
                tracing::info!(staff = %session.name, id = %id, "web: a write this office may not make was refused: {message}");
                let office = app.node.config().name.clone();
                return ctx.error_page(
                    app,
                    StatusCode::FORBIDDEN,
                    &i18n::not_this_office(ctx.lang, &office, &allowed),
                );
            }
            Err(e) => return failed(ctx, app, "saving an event", e),
        }
        let by = Editor::Web {
            staff: session.name.clone(),
            role: session.role.name().into(),
        };
        let edit = Edit {
            action,
            table: Some(schedule::TABLE.into()),
            id: Some(id.clone()),
            columns,
            staff: None,
            role: None,
        };
        let logged = {
            let app = app.clone();
            let at = now(&app);
            tokio::task::spawn_blocking(move || app.edits.record(at, &by, &edit)).await
        };
        match logged {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(ctx, app, "recording the edit", e),
            Err(e) => return failed(ctx, app, "recording the edit", e),
        }
        tracing::info!(staff = %session.name, action, id = %id, "web: event saved");
    }
    // Back to the agenda page that shows the event.
    let today = now(app).to_zoned_datetime(app.tz.clone()).date();
    let day = start.map(|s| s.to_zoned_datetime(app.tz.clone()).date());
    let from = day.filter(|d| *d > today).map(|d| d.to_string());
    see_other(&format!(
        "{}#e-{id}",
        agenda_page::link(from.as_deref(), 0, None)
    ))
}

/// Reads and checks a submitted event form; on refusal the answer to give.
async fn submitted(
    ctx: &Ctx,
    app: &SharedWeb,
    headers: &HeaderMap,
    body: Body,
) -> Result<EventInput, Response> {
    let pairs = read_form(headers, body)
        .await
        .map_err(|why| ctx.body_refused(app, why))?;
    let (csrf, input) = match form::read(&pairs, &app.sealed) {
        Ok(read) => read,
        Err(FormRefusal::SealedColumn(_)) => {
            return Err(ctx.error_page(app, StatusCode::FORBIDDEN, ctx.words().sealed));
        }
        Err(FormRefusal::UnknownField(f) | FormRefusal::Repeated(f)) => {
            return Err(ctx.error_page(
                app,
                StatusCode::BAD_REQUEST,
                &i18n::unknown_field(ctx.lang, &f),
            ));
        }
    };
    ctx.require_form(app, StaffRole::Editor, csrf.as_deref(), headers)?;
    Ok(input)
}

/// Checks the form; on errors, the form again with them (422).
fn checked(
    ctx: &Ctx,
    app: &SharedWeb,
    target: &event_form::FormTarget<'_>,
    input: &EventInput,
) -> Result<Vec<(&'static str, Value)>, Response> {
    form::validate(input, &app.tz, &app.offices)
        .and_then(|cells| {
            let missing = form::missing_required(&cells, &app.required_event_columns);
            if missing.is_empty() {
                Ok(cells)
            } else {
                Err(missing)
            }
        })
        .map_err(|errors| {
            let csrf = ctx.session.as_ref().map_or("", |(_, s)| s.csrf.as_str());
            ctx.page(
                StatusCode::UNPROCESSABLE_ENTITY,
                event_form::render(&ctx.chrome(app), target, input, &errors, &app.offices, csrf),
            )
        })
}

pub async fn create(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let input = submitted(&ctx, &app, &headers, body).await?;
    let cells = checked(&ctx, &app, &event_form::FormTarget::New, &input)?;
    let start = start_of(&cells, None);
    Ok(write(
        &ctx,
        &app,
        "create",
        new_id(),
        form::changes(None, cells),
        start,
    )
    .await)
}

pub async fn update(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let input = submitted(&ctx, &app, &headers, body).await?;
    let id = event_id(&ctx, &app, path)?;
    let old = stored(&ctx, &app, &id).await?;
    let cells = checked(
        &ctx,
        &app,
        &event_form::FormTarget::Edit { id: &id },
        &input,
    )?;
    let start = start_of(&cells, Some(&old));
    Ok(write(
        &ctx,
        &app,
        "update",
        id,
        form::changes(Some(&old), cells),
        start,
    )
    .await)
}

pub async fn cancel(
    State(app): State<SharedWeb>,
    ctx: Ctx,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let pairs = read_form(&headers, body)
        .await
        .map_err(|why| ctx.body_refused(&app, why))?;
    let mut csrf = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "csrf" => csrf = Some(v.as_str()),
            other => {
                return Err(ctx.error_page(
                    &app,
                    StatusCode::BAD_REQUEST,
                    &i18n::unknown_field(ctx.lang, other),
                ));
            }
        }
    }
    ctx.require_form(&app, StaffRole::Editor, csrf, &headers)?;
    let id = event_id(&ctx, &app, path)?;
    let old = stored(&ctx, &app, &id).await?;
    let mut cells = vec![];
    if !schedule::is_cancelled(old.status.as_deref()) {
        cells.push(("status", Value::Text("cancelled".into())));
    }
    let start = start_of(&[], Some(&old));
    Ok(write(&ctx, &app, "cancel", id, cells, start).await)
}

#[cfg(test)]
mod tests {
    #[test]
    fn new_ids_are_uuids() {
        let id = super::new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(crate::store::valid_id(&id));
        assert_ne!(id, super::new_id());
    }
}
