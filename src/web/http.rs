//! The HTTP edges every web handler shares: who and what a request is
//! (`Ctx`: language, session, client address), reading a form body with a
//! size limit, checking a form's CSRF token and origin, and the common
//! answers (HTML pages, redirects, error pages) with their headers.
//!
//! Owns: these helpers and the middlewares (language choice and its
//! cookie, security headers, the request log line without tokens).
//! Must not: decide what a page holds or who may do what beyond "signed
//! in with at least this role".

#![allow(
    clippy::result_large_err,
    reason = "an early answer is an axum Response, returned once per request"
)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use maud::Markup;

use super::i18n;
use super::pages::{self, Chrome};
use super::ratelimit;
use super::sessions::{self, LANG_COOKIE, SESSION_COOKIE, WebSession};
use super::state::WebState;
use crate::access::staff_tokens::StaffRole;
use crate::percent;
use crate::schedule::Lang;

pub type SharedWeb = Arc<WebState>;

/// The largest form body accepted.
pub const MAX_FORM: usize = 16 * 1024;

/// The query string's pairs.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Equal strings, compared in time that does not depend on where they
/// differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A request as the handlers see it.
pub struct Ctx {
    pub lang: Lang,
    /// The session cookie's value and its live session.
    pub session: Option<(String, WebSession)>,
    pub client: IpAddr,
    /// This page's address with `lang=` set to the other language.
    pub switch_lang: String,
}

impl FromRequestParts<SharedWeb> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &SharedWeb,
    ) -> Result<Ctx, Self::Rejection> {
        let lang = parts.extensions.get::<Lang>().copied().unwrap_or(Lang::Es);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let client = ratelimit::client_of(peer, &forwarded, &app.trusted_proxies);
        let cookie_header = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        let session = match sessions::cookie(cookie_header, SESSION_COOKIE) {
            Some(id) if !id.is_empty() => app.session(id).await.map(|s| (id.to_string(), s)),
            _ => None,
        };
        let other = match lang {
            Lang::Es => "en",
            Lang::En => "es",
        };
        let mut pairs: Vec<(String, String)> = query_pairs(parts.uri.query())
            .into_iter()
            .filter(|(k, _)| k != "lang" && k != "token")
            .collect();
        pairs.push(("lang".into(), other.into()));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
            .collect();
        Ok(Ctx {
            lang,
            session,
            client,
            switch_lang: format!("{}?{}", parts.uri.path(), query.join("&")),
        })
    }
}

impl Ctx {
    pub fn chrome<'a>(&'a self, app: &'a WebState) -> Chrome<'a> {
        Chrome {
            lang: self.lang,
            office: app.offices.first().map_or("", String::as_str),
            zone: &app.zone,
            staff: self
                .session
                .as_ref()
                .map(|(_, s)| (s.name.as_str(), s.role)),
            csrf: self.session.as_ref().map(|(_, s)| s.csrf.as_str()),
            switch_lang: self.switch_lang.clone(),
        }
    }

    pub fn words(&self) -> &'static i18n::Words {
        i18n::words(self.lang)
    }

    /// The session, if it holds at least `role`; else the answer to give:
    /// to the sign-in page when nobody is signed in, 403 when the role is
    /// too small.
    pub fn require(&self, app: &WebState, role: StaffRole) -> Result<&WebSession, Response> {
        match &self.session {
            None => Err(see_other("/login")),
            Some((_, s)) if s.role >= role => Ok(s),
            Some(_) => Err(self.error_page(app, StatusCode::FORBIDDEN, self.words().not_allowed)),
        }
    }

    /// For a form post: the session if signed in with `role`, and the
    /// form's CSRF token matching the session's; else the refusal.
    pub fn require_form(
        &self,
        app: &WebState,
        role: StaffRole,
        csrf: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<&WebSession, Response> {
        let Some((_, s)) = &self.session else {
            return Err(self.error_page(app, StatusCode::FORBIDDEN, self.words().session_over));
        };
        let token_ok = csrf.is_some_and(|c| same_secret(c, &s.csrf));
        if !token_ok || !same_origin(headers) {
            return Err(self.error_page(app, StatusCode::FORBIDDEN, self.words().forged));
        }
        if s.role < role {
            return Err(self.error_page(app, StatusCode::FORBIDDEN, self.words().not_allowed));
        }
        Ok(s)
    }

    pub fn page(&self, status: StatusCode, markup: Markup) -> Response {
        html(status, markup)
    }

    pub fn error_page(&self, app: &WebState, status: StatusCode, message: &str) -> Response {
        let heading = match status {
            StatusCode::NOT_FOUND => self.words().no_page,
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => self.words().not_allowed,
            StatusCode::TOO_MANY_REQUESTS => self.words().sign_in,
            s if s.is_server_error() => self.words().failed,
            _ => self.words().check_fields,
        };
        // The heading repeats the message's gist only where they differ.
        let heading = if heading == message {
            self.words().app
        } else {
            heading
        };
        html(status, pages::error(&self.chrome(app), heading, message))
    }
}

/// When the browser says where a form came from (Origin), it must be this
/// server (the Host it addressed).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

pub fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Why a form body could not be read.
pub enum BodyRefusal {
    TooLarge,
    NotAForm,
    Broken,
}

/// Reads an `application/x-www-form-urlencoded` body of at most
/// `MAX_FORM` bytes into its pairs.
pub async fn read_form(
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<(String, String)>, BodyRefusal> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(BodyRefusal::NotAForm);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_FORM) {
        return Err(BodyRefusal::TooLarge);
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(1024).min(MAX_FORM));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyRefusal::Broken)?;
        if let Ok(chunk) = frame.into_data() {
            if bytes.len() + chunk.len() > MAX_FORM {
                return Err(BodyRefusal::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok(form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

impl Ctx {
    /// The answer to a body that could not be read.
    pub fn body_refused(&self, app: &WebState, why: BodyRefusal) -> Response {
        match why {
            BodyRefusal::TooLarge => self.error_page(
                app,
                StatusCode::PAYLOAD_TOO_LARGE,
                &i18n::too_large(self.lang, MAX_FORM / 1024),
            ),
            BodyRefusal::NotAForm | BodyRefusal::Broken => {
                self.error_page(app, StatusCode::BAD_REQUEST, self.words().forged)
            }
        }
    }
}

/// Chooses the language of every request and remembers an explicit choice
/// (`?lang=`) in a cookie.
pub async fn language(State(app): State<SharedWeb>, mut req: Request, next: Next) -> Response {
    let pairs = query_pairs(req.uri().query());
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(v).ok());
    let headers = req.headers();
    let cookie = sessions::cookie(
        headers.get(header::COOKIE).and_then(|v| v.to_str().ok()),
        LANG_COOKIE,
    );
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = i18n::choose(asked.map(Lang::code), cookie, accept);
    let secure = app.secure;
    // A feed's ?lang= chooses that feed's language, not the browser's.
    let remember = !req.uri().path().starts_with("/cal/");
    req.extensions_mut().insert(lang);
    let mut response = next.run(req).await;
    if let Some(lang) = asked.filter(|_| remember) {
        let cookie = sessions::set_cookie(LANG_COOKIE, lang.code(), secure, Some(365 * 86_400));
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Headers on every answer: no scripts, no frames, no sniffing, and a
/// referrer only to this server (a login link must not leak to another
/// site; "no-referrer" would make browsers send `Origin: null` with forms,
/// which the origin check refuses).
pub async fn security_headers(State(app): State<SharedWeb>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    if app.secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// One debug line per request: method, path (a calendar token cut out),
/// status, time. Never a query or a body.
pub async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = match req.uri().path() {
        p if p.starts_with("/cal/") => "/cal/…".to_string(),
        p => p.to_string(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "web request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_secrets() {
        let mut h = HeaderMap::new();
        assert!(
            same_origin(&h),
            "no Origin: a same-origin form or an old browser"
        );
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7480"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7480"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
        assert_eq!(
            query_pairs(Some("office=san%20diego&lang=en")),
            vec![
                ("office".into(), "san diego".into()),
                ("lang".into(), "en".into())
            ]
        );
    }
}
