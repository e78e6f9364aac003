//! One admin-socket request, read once: the method, the route with its
//! decoded path parameters, and the query's values, each decoded exactly
//! once (`+` is a space, then percent-decoding, as HTML forms and
//! `curl --data-urlencode` write them). The role a request needs
//! (`socket_roles::needed`) is decided from this value and the endpoint
//! acts on the very same value, so no spelling of a request can be read
//! one way by the check and another way by the handler.
//!
//! Owns: the set of routes, the query keys each route takes, what a value
//! may be, and whether a request reveals (`AdminRequest::reveal`).
//! Must not: read sockets or files, or look at a request body (only
//! whether there is one).

use std::fmt;

use percent_encoding::percent_decode;

/// The methods the admin socket answers. `HEAD` and every other method
/// are refused while parsing (405), so they never reach a role check or
/// a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        })
    }
}

/// Where a request goes, with its path parameters decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Status,
    Metrics,
    Sync,
    /// `/v1/tables/TABLE/rows`
    Rows {
        table: String,
    },
    /// `/v1/tables/TABLE/rows/ID`
    Row {
        table: String,
        id: String,
    },
    /// `/v1/tables/TABLE/import`
    Import {
        table: String,
    },
    /// `/v1/tables/TABLE/export`
    Export {
        table: String,
    },
    /// `/v1/staff`
    Staff,
    /// `/v1/staff/NAME`
    StaffMember {
        name: String,
    },
    /// `/v1/held`
    Held,
    /// `/v1/held/ID/DECISION`
    HeldDecision {
        id: String,
        decision: String,
    },
    Backup,
    Reseal,
    Checkpoint,
    /// No endpoint: answered 404 after the role check (`read`), so that
    /// strangers learn nothing of the API.
    Unknown,
}

impl Route {
    /// The query keys this route takes with `method`.
    fn keys(&self, method: Method) -> &'static [&'static str] {
        match (self, method) {
            (Route::Rows { .. }, Method::Get) => &["after", "limit", "reveal"],
            (Route::Row { .. }, Method::Get) => &["reveal"],
            (Route::Export { .. }, Method::Get) => &["columns", "reveal"],
            (Route::Held, Method::Get) => &["all"],
            _ => &[],
        }
    }
}

/// The query's values, decoded once and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminQuery {
    /// `reveal=true|1|yes` (`false|0|no|` or absent: false).
    pub reveal: bool,
    /// `after=ID` (rows): the page starts after this id.
    pub after: Option<String>,
    /// `limit=N` (rows).
    pub limit: Option<usize>,
    /// `columns=a,b` (export), as written (the export checks the names
    /// against the table).
    pub columns: Option<String>,
    /// `all=true` (held).
    pub all: bool,
}

/// A parsed admin request: what the role check decides on and what the
/// handler acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    pub method: Method,
    pub route: Route,
    pub query: AdminQuery,
}

impl AdminRequest {
    /// Whether the handler reveals sealed values: only a `GET` of rows,
    /// a row or an export that asked for `reveal`. Every handler that can
    /// reveal takes its answer from here.
    pub fn reveal(&self) -> bool {
        self.method == Method::Get
            && self.query.reveal
            && matches!(
                self.route,
                Route::Rows { .. } | Route::Row { .. } | Route::Export { .. }
            )
    }
}

/// Why a request could not be read; the text says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// HTTP 400.
    BadRequest(String),
    /// HTTP 405.
    MethodNotAllowed(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadRequest(m) | RequestError::MethodNotAllowed(m) => f.write_str(m),
        }
    }
}

/// The largest query string read (the longest real one is an export's
/// column list).
pub const MAX_QUERY: usize = 8 * 1024;

/// Reads a request line: `method`, the raw `path` and raw `query` as they
/// came (still percent-encoded), and whether a body came with it.
pub fn parse(
    method: &str,
    path: &str,
    query: Option<&str>,
    has_body: bool,
) -> Result<AdminRequest, RequestError> {
    let method = match method {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "HEAD" => {
            return Err(RequestError::MethodNotAllowed(
                "the admin socket does not answer HEAD; send GET".into(),
            ));
        }
        other => {
            return Err(RequestError::MethodNotAllowed(format!(
                "the admin socket does not answer {}; it reads with GET, writes with PUT or POST and deletes with DELETE",
                printable(other)
            )));
        }
    };
    if has_body && matches!(method, Method::Get | Method::Delete) {
        return Err(RequestError::BadRequest(format!(
            "a {method} request takes no body; send the request without one"
        )));
    }
    let route = route(path)?;
    let query = read_query(&route, method, query.unwrap_or(""))?;
    Ok(AdminRequest {
        method,
        route,
        query,
    })
}

/// A text shown in an error, cut short and with controls escaped.
fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// A path parameter: percent-decoded once (a `+` stays a `+`), UTF-8,
/// not empty.
fn param(raw: &str, what: &str) -> Result<String, RequestError> {
    let text = percent_decode(raw.as_bytes())
        .decode_utf8()
        .map_err(|_| {
            RequestError::BadRequest(format!(
                "the {what} in the path is not UTF-8 once percent-decoded; percent-encode its UTF-8 bytes"
            ))
        })?
        .into_owned();
    if text.is_empty() {
        return Err(RequestError::BadRequest(format!(
            "the {what} in the path is empty; name one"
        )));
    }
    Ok(text)
}

/// The route of a raw path. Its fixed words are compared as sent (the
/// router does the same: `/v1/%68eld` is no endpoint); only parameters
/// are decoded.
fn route(path: &str) -> Result<Route, RequestError> {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Ok(Route::Unknown);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    Ok(match segments.as_slice() {
        ["health"] => Route::Health,
        ["status"] => Route::Status,
        ["metrics"] => Route::Metrics,
        ["sync"] => Route::Sync,
        ["staff"] => Route::Staff,
        ["staff", name] => Route::StaffMember {
            name: param(name, "staff name")?,
        },
        ["held"] => Route::Held,
        ["held", id, decision] => Route::HeldDecision {
            id: param(id, "held change number")?,
            decision: param(decision, "decision")?,
        },
        ["backup"] => Route::Backup,
        ["reseal"] => Route::Reseal,
        ["checkpoint"] => Route::Checkpoint,
        ["tables", table, "rows"] => Route::Rows {
            table: param(table, "table")?,
        },
        ["tables", table, "rows", id] => Route::Row {
            table: param(table, "table")?,
            id: param(id, "row id")?,
        },
        ["tables", table, "import"] => Route::Import {
            table: param(table, "table")?,
        },
        ["tables", table, "export"] => Route::Export {
            table: param(table, "table")?,
        },
        _ => Route::Unknown,
    })
}

/// A query key or value: `+` is a space, then percent-decoded once, UTF-8.
fn form_decode(raw: &str) -> Result<String, RequestError> {
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .map(|t| t.into_owned())
        .map_err(|_| {
            RequestError::BadRequest(format!(
                "the query part `{}` is not UTF-8 once percent-decoded; percent-encode its UTF-8 bytes",
                printable(raw)
            ))
        })
}

fn yes_no(key: &str, value: &str) -> Result<bool, RequestError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(RequestError::BadRequest(format!(
            "{key} must be true or false (not `{}`), e.g. ?{key}=true",
            printable(value)
        ))),
    }
}

fn read_query(route: &Route, method: Method, raw: &str) -> Result<AdminQuery, RequestError> {
    if raw.len() > MAX_QUERY {
        return Err(RequestError::BadRequest(format!(
            "the query string is longer than {} KiB; ask for fewer columns",
            MAX_QUERY / 1024
        )));
    }
    let allowed = route.keys(method);
    let mut seen: Vec<String> = Vec::new();
    let mut query = AdminQuery::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(raw_key)?;
        let value = form_decode(raw_value)?;
        if route == &Route::Unknown {
            // Answered 404 after the role check; its query is not read.
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            let takes = if allowed.is_empty() {
                "this endpoint takes no query parameters".to_string()
            } else {
                format!("this endpoint takes: {}", allowed.join(", "))
            };
            return Err(RequestError::BadRequest(format!(
                "unknown query parameter `{}`; {takes}",
                printable(&key)
            )));
        }
        if seen.contains(&key) {
            return Err(RequestError::BadRequest(format!(
                "the query parameter `{key}` is given more than once; give it once"
            )));
        }
        match key.as_str() {
            "reveal" => query.reveal = yes_no("reveal", &value)?,
            "all" => query.all = yes_no("all", &value)?,
            "after" => query.after = Some(value),
            "limit" => {
                query.limit = Some(value.parse::<usize>().map_err(|_| {
                    RequestError::BadRequest(format!(
                        "limit must be a whole number (not `{}`); page through more rows with ?after=NEXT",
                        printable(&value)
                    ))
                })?)
            }
            "columns" => query.columns = Some(value),
            _ => {}
        }
        seen.push(key);
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(method: &str, path: &str, query: &str) -> AdminRequest {
        parse(method, path, Some(query), false).unwrap()
    }

    fn bad(method: &str, path: &str, query: &str) -> String {
        match parse(method, path, Some(query), false) {
            Err(RequestError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn every_spelling_of_reveal_is_read_once_and_the_same() {
        let path = "/v1/tables/residents/rows/res-1";
        for q in [
            "reveal=true",
            "reveal=%74rue",
            "%72eveal=1",
            "%72%65%76%65%61%6c=%79es",
            "reveal=yes",
        ] {
            let r = ok("GET", path, q);
            assert!(r.reveal(), "{q} reveals");
        }
        for q in ["", "reveal=false", "reveal=", "reveal=%30", "reveal"] {
            assert!(!ok("GET", path, q).reveal(), "{q} does not reveal");
        }
        assert!(ok("GET", "/v1/tables/residents/export", "reveal=%79es").reveal());
        assert!(ok("GET", "/v1/tables/residents/rows", "%72eveal=1").reveal());
    }

    #[test]
    fn odd_spellings_are_refused_naming_the_key() {
        let path = "/v1/tables/residents/rows";
        assert!(bad("GET", path, "reveal=true&reveal=false").contains("`reveal`"));
        assert!(bad("GET", path, "reveal=false&%72eveal=true").contains("more than once"));
        assert!(bad("GET", path, "Reveal=true").contains("`Reveal`"));
        assert!(bad("GET", path, "reveal+=true").contains("`reveal `"));
        assert!(bad("GET", path, "REVEAL=1").contains("unknown query parameter"));
        assert!(bad("GET", path, "reveal=TRUE").contains("true or false"));
        assert!(bad("GET", path, "reveal=tru%65+").contains("true or false"));
        assert!(bad("GET", path, "reveal=%ff").contains("UTF-8"));
        assert!(bad("GET", path, "limit=ten").contains("whole number"));
        assert!(bad("GET", "/v1/status", "reveal=true").contains("no query parameters"));
        assert!(bad("PUT", "/v1/tables/t/rows/r", "reveal=true").contains("`reveal`"));
        assert!(bad("GET", "/v1/held", "all=true&all=true").contains("`all`"));
    }

    #[test]
    fn head_and_other_methods_are_refused_and_a_body_on_get_too() {
        for m in ["HEAD", "PATCH", "OPTIONS", "get", "TRACE"] {
            assert!(
                matches!(
                    parse(m, "/v1/tables/residents/rows", Some("reveal=true"), false),
                    Err(RequestError::MethodNotAllowed(_))
                ),
                "{m}"
            );
        }
        assert!(matches!(
            parse("GET", "/v1/tables/t/rows", None, true),
            Err(RequestError::BadRequest(_))
        ));
        assert!(parse("PUT", "/v1/tables/t/rows/r", None, true).is_ok());
    }

    #[test]
    fn path_parameters_are_decoded_once_and_fixed_words_not_at_all() {
        let r = ok("GET", "/v1/tables/resid%65nts/rows/r%2D1", "");
        assert_eq!(
            r.route,
            Route::Row {
                table: "residents".into(),
                id: "r-1".into()
            }
        );
        // A `+` in a path stays a `+`; `%2525` is `%25`, not `%`.
        let r = ok("DELETE", "/v1/staff/a+b%2525", "");
        assert_eq!(
            r.route,
            Route::StaffMember {
                name: "a+b%25".into()
            }
        );
        assert_eq!(ok("GET", "/v1/%68eld", "").route, Route::Unknown);
        assert_eq!(ok("GET", "/v1/status/", "").route, Route::Unknown);
        assert!(matches!(
            parse("GET", "/v1/tables//rows", None, false),
            Err(RequestError::BadRequest(m)) if m.contains("table in the path is empty")
        ));
        assert!(parse("GET", "/v1/tables/%ff/rows", None, false).is_err());
    }

    #[test]
    fn only_a_get_of_rows_or_an_export_reveals() {
        assert!(!ok("GET", "/v1/held", "all=1").reveal());
        assert!(!ok("GET", "/v1/unknown", "reveal=true").reveal());
        assert!(!ok("GET", "/nothing", "reveal=true").reveal());
    }
}
