//! The admin request's fuzz harness body, shared by the fuzz target
//! (`fuzz/fuzz_targets/admin_request.rs`) and the stable corpus replay test
//! (`tests/suite/fuzz_corpus.rs`, which includes this file with `#[path]`).
//!
//! Owns: the layout of a fuzz input (a flags byte, then a request line
//! `METHOD TARGET`), one run of it through `admin_request::parse` and
//! `socket_roles::needed`, and the invariants: a request that reveals
//! (the only thing that writes a reveal audit line) needs `read` and
//! `reveal`; it reveals exactly when an independent reading of the query
//! finds one `reveal` key with a yes; a role never allows what it should
//! not (a `read`-only caller only reads, never reveals; writes need
//! `write`; staff, held changes, backups, sync and checkpoints need
//! `admin`); and reading is deterministic.
//! Must not: depend on anything but puente and std (the main crate's
//! `cargo test` compiles it without libFuzzer). A failed assertion here is
//! the bug being hunted, so this harness panics freely.

use std::path::PathBuf;
use std::sync::OnceLock;

use puente::access::admin_request::{self, AdminRequest, Method, RequestError, Route};
use puente::access::socket_roles::{Access, CallerIds, needed};
use puente::config::access::{AccessConfig, Principal, Role, Who};

/// Flag bit: the request came with a body.
pub const FLAG_BODY: u8 = 0x01;

/// Caller uids in the harness's `[access]`: one per role alone.
pub const READER: u32 = 2001;
pub const WRITER: u32 = 2002;
pub const REVEALER: u32 = 2003;
pub const ADMIN: u32 = 2004;
pub const NOBODY: u32 = 2005;

/// What one input came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed: whether it reveals, and the roles it needs.
    Parsed { reveal: bool, roles: Vec<Role> },
    /// 400.
    BadRequest,
    /// 405.
    MethodNotAllowed,
    /// No space between a method and a target.
    NotARequest,
}

/// A fuzz input from its parts.
pub fn input_bytes(body: bool, line: &str) -> Vec<u8> {
    let mut out = vec![if body { FLAG_BODY } else { 0 }];
    out.extend_from_slice(line.as_bytes());
    out
}

fn access() -> &'static Access {
    static ACCESS: OnceLock<Access> = OnceLock::new();
    ACCESS.get_or_init(|| {
        let user = |id| Principal::User(Who::Id(id));
        let config = AccessConfig {
            grants: vec![
                (Role::Read, user(READER)),
                (Role::Write, user(WRITER)),
                (Role::Reveal, user(REVEALER)),
                (Role::Admin, user(ADMIN)),
            ],
            configured: true,
        };
        let (access, warnings) =
            Access::resolve(&config, "", "", 998, PathBuf::from("puente.toml"));
        assert!(warnings.is_empty(), "{warnings:?}");
        access
    })
}

/// An independent reading of a query: `+` is a space, `%XY` a byte,
/// anything else as it is; None when a part is not UTF-8 afterwards.
fn reference_pairs(query: &str) -> Option<Vec<(String, String)>> {
    fn decode(raw: &str) -> Option<String> {
        let bytes = raw.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn ids(uid: u32) -> CallerIds {
    CallerIds {
        uid,
        gids: vec![uid],
    }
}

/// Whether the admin router has a handler for this method and route (the
/// table of `admin/endpoints/router.rs` and its merged routes); anything
/// else is answered 404 or 405 after the role check.
pub fn has_handler(request: &AdminRequest) -> bool {
    use Method::{Delete, Get, Post, Put};
    matches!(
        (&request.route, request.method),
        (Route::Health, Get)
            | (Route::Status, Get)
            | (Route::Metrics, Get)
            | (Route::Sync, Post)
            | (Route::Rows { .. }, Get)
            | (Route::Row { .. }, Get | Put | Delete)
            | (Route::Import { .. }, Post)
            | (Route::Export { .. }, Get)
            | (Route::Staff, Get | Post)
            | (Route::StaffMember { .. }, Delete)
            | (Route::Held, Get)
            | (Route::HeldDecision { .. }, Post)
            | (Route::Backup, Post)
            | (Route::Reseal, Get | Post)
            | (Route::Checkpoint, Post)
    )
}

/// One input through the parse and the decision, checking every invariant.
pub fn run(data: &[u8]) -> Outcome {
    let Some((&flags, line)) = data.split_first() else {
        return Outcome::NotARequest;
    };
    let line = String::from_utf8_lossy(line);
    let Some((method, target)) = line.split_once(' ') else {
        return Outcome::NotARequest;
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let has_body = flags & FLAG_BODY != 0;
    let parsed = admin_request::parse(method, path, query, has_body);
    assert_eq!(
        parsed,
        admin_request::parse(method, path, query, has_body),
        "the same request reads the same twice"
    );
    match parsed {
        Ok(request) => check(&request, method, query, has_body),
        Err(RequestError::BadRequest(m)) => {
            assert!(!m.is_empty());
            Outcome::BadRequest
        }
        Err(RequestError::MethodNotAllowed(m)) => {
            assert!(!m.is_empty());
            assert!(
                !matches!(method, "GET" | "PUT" | "POST" | "DELETE"),
                "{method} is served"
            );
            Outcome::MethodNotAllowed
        }
    }
}

fn check(request: &AdminRequest, method: &str, query: Option<&str>, has_body: bool) -> Outcome {
    let needs = needed(request);
    let roles = needs.roles.clone();
    let allows = |uid| access().check(Some(&ids(uid)), &needs, None).is_ok();
    assert_ne!(method, "HEAD", "HEAD is never served");
    if has_body {
        assert!(
            matches!(request.method, Method::Put | Method::Post),
            "a body on {method} is refused"
        );
    }

    let reveals = request.reveal();
    if reveals {
        assert!(
            roles.contains(&Role::Reveal) && roles.contains(&Role::Read),
            "a reveal needs read and reveal: {request:?} needs {roles:?}"
        );
        assert_eq!(request.method, Method::Get);
        assert!(!allows(READER) && !allows(WRITER) && !allows(REVEALER));
    }

    // An independent reading of the query says the same about reveal.
    let row_route = matches!(
        request.route,
        Route::Rows { .. } | Route::Row { .. } | Route::Export { .. }
    );
    if let Some(pairs) = reference_pairs(query.unwrap_or("")) {
        let asked: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == "reveal")
            .map(|(_, v)| v)
            .collect();
        let yes = asked.len() == 1 && matches!(asked[0].as_str(), "true" | "1" | "yes");
        if request.method == Method::Get && row_route {
            assert_eq!(
                reveals, yes,
                "reveal read differently: {request:?} vs {pairs:?}"
            );
        } else {
            assert!(!reveals);
        }
    }

    // Roles never grant what they should not.
    assert!(!allows(NOBODY) || roles.is_empty(), "a stranger allowed");
    if roles.is_empty() {
        assert_eq!(request.route, Route::Health, "only health is open");
    }
    if allows(READER) {
        assert!(!reveals, "read alone never reveals");
        assert!(
            request.method == Method::Get || !has_handler(request),
            "read alone only reads: {request:?}"
        );
    }
    if allows(WRITER) {
        assert!(!reveals, "write never reveals");
    }
    let admin_route = matches!(
        request.route,
        Route::Sync
            | Route::Staff
            | Route::StaffMember { .. }
            | Route::Held
            | Route::HeldDecision { .. }
            | Route::Backup
            | Route::Checkpoint
    ) || (request.route == Route::Reseal && request.method != Method::Get);
    if admin_route {
        assert!(roles.contains(&Role::Admin), "{request:?} needs admin");
        for uid in [READER, WRITER, REVEALER] {
            assert!(!allows(uid), "{uid} allowed {request:?}");
        }
    }
    if row_route && request.method != Method::Get {
        assert!(roles.contains(&Role::Write), "{request:?} needs write");
        assert!(!allows(READER) && !allows(REVEALER));
    }
    if matches!(request.route, Route::Import { .. }) && request.method == Method::Get {
        assert!(!reveals);
    }
    assert!(allows(ADMIN), "admin holds every role");
    Outcome::Parsed {
        reveal: reveals,
        roles,
    }
}
