//! The web agenda over HTTP against real offices on 127.0.0.1: every kind
//! of bad input is refused with a sentence in the user's language and
//! writes nothing; edits are recorded with their author; removing a staff
//! member ends their sessions and links at once; under TLS cookies are
//! Secure.
//!
//! Owns: the HTTP-level checks of `web/` (the browser test looks at the
//! pages as people see them).
//! Must not: reach anything but 127.0.0.1.

use crate::cluster;
use crate::web;

use std::sync::Arc;

use cluster::*;
use web::{Http, TJ, add_staff, event_ids, form};

/// One office (Tijuana, with the mx key) with a web agenda.
async fn one_office() -> Cluster {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.lab.enable_web(TJ, "America/Tijuana").unwrap();
    c.lab.enable_web(1, "America/Tijuana").unwrap();
    c.link(0, 1);
    c.start_all().await;
    c
}

fn edits_log(o: &Office) -> String {
    std::fs::read_to_string(o.data_dir().join("edits.log")).unwrap_or_default()
}

/// A good event form (the date in the future, in Tijuana).
fn event_form(csrf: &str, extra: &[(&str, &str)]) -> String {
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/Tijuana").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap()
        .to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("csrf", csrf),
        ("title", "Taller"),
        ("start_date", &day),
        ("start_time", "10:00"),
        ("end_date", ""),
        ("end_time", "12:00"),
        ("location", "Casa del Migrante"),
        ("office", "tijuana"),
        ("language", "es"),
        ("capacity", "25"),
        ("status", "scheduled"),
        ("description", ""),
    ];
    for (k, v) in extra {
        match pairs.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v,
            None => pairs.push((k, v)),
        }
    }
    pairs.retain(|(_, v)| *v != "<drop>");
    form(&pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_the_users_language_and_writes_nothing() {
    let c = one_office().await;
    let tj = &c[TJ];
    let addr = tj.web.unwrap();
    let editor = add_staff(tj, "editor-tj", "editor").await;
    let viewer = add_staff(tj, "viewer-tj", "viewer").await;

    // A wrong key, in Spanish and in English.
    for (lang, want) in [
        (
            "es-MX,es;q=0.9",
            "Esa clave no es válida o ya fue retirada.",
        ),
        (
            "en-US,en;q=0.9",
            "That key is not valid or has been removed.",
        ),
    ] {
        let mut h = Http::new(addr, lang);
        let page = h.get("/login").await;
        let wrong = h
            .post(
                "/login",
                &form(&[("csrf", &page.csrf()), ("token", &"0".repeat(40))]),
            )
            .await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        assert!(wrong.body.contains(want), "{}", wrong.body);
        assert!(!h.cookies.contains_key("puente_session"));
    }
    // A sign-in form without its CSRF token.
    let mut h = Http::new(addr, "es");
    let forged = h
        .post("/login", &form(&[("token", &editor.login_token)]))
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        forged
            .body
            .contains("Este formulario no viene de esta página")
    );

    let mut es = Http::new(addr, "es-MX");
    let agenda = es.sign_in(editor.login_url.as_deref().unwrap()).await;
    let csrf = agenda.csrf();
    let session = es.cookies["puente_session"].clone();
    assert_eq!(session.len(), 40);
    let set = es.get("/agenda").await;
    assert!(set.header("cache-control") == Some("no-store"));

    // Forged event forms: no token, another token, another origin.
    for (body, extra) in [
        (event_form("", &[("csrf", "<drop>")]), None),
        (event_form(&"f".repeat(40), &[]), None),
        (
            event_form(&csrf, &[]),
            Some(("Origin", "http://evil.example")),
        ),
    ] {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        headers.extend(extra);
        let a = es
            .send("POST", "/events", Some(body.as_bytes()), &headers)
            .await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(
            a.body.contains("Este formulario no viene de esta página"),
            "{}",
            a.body
        );
    }
    // Bad dates, an unknown office, a capacity that is not a number.
    for (extra, want) in [
        (
            vec![("start_date", "31/12/2026")],
            "Inicio: la fecha no es válida; escríbala como AAAA-MM-DD",
        ),
        (vec![("start_time", "10am")], "Inicio: la hora no es válida"),
        (
            vec![("end_time", "09:00")],
            "Fin: el evento debe terminar después de empezar.",
        ),
        (
            vec![("office", "ensenada")],
            "Oficina: «ensenada» no es una de las oficinas de puente.",
        ),
        (
            vec![("capacity", "veinte")],
            "Cupo: escriba un número entero de personas",
        ),
        (vec![("title", "  ")], "Título: falta este dato."),
    ] {
        let a = es.post("/events", &event_form(&csrf, &extra)).await;
        assert_eq!(a.status, 422, "{extra:?}: {}", a.body);
        assert!(a.body.contains(want), "{extra:?}: {}", a.body);
    }
    // The same mistake for an English reader.
    let mut en = es.clone();
    en.accept_language = "en".into();
    let a = en
        .post("/events", &event_form(&csrf, &[("office", "ensenada")]))
        .await;
    assert!(
        a.body
            .contains("Office: “ensenada” is not one of puente's offices."),
        "{}",
        a.body
    );
    // An oversized body.
    let big = "x".repeat(20 * 1024);
    let a = es
        .post("/events", &event_form(&csrf, &[("description", &big)]))
        .await;
    assert_eq!(a.status, 413);
    assert!(
        a.body
            .contains("El formulario es demasiado grande (el máximo es 16 KB)"),
        "{}",
        a.body
    );
    // Sealed columns: named in a form, or asked for in a query.
    let a = es
        .post("/events", &event_form(&csrf, &[("full_name", "Someone")]))
        .await;
    assert_eq!(a.status, 403);
    assert!(
        a.body
            .contains("La web nunca muestra ni escribe datos sellados."),
        "{}",
        a.body
    );
    for path in [
        "/agenda?reveal=true",
        "/events/new?columns=phone",
        "/cal/x/outreach.ics?reveal=1",
    ] {
        let a = es.get(path).await;
        assert_eq!(a.status, 403, "{path}");
        assert!(
            a.body.contains("La web nunca revela datos sellados."),
            "{path}: {}",
            a.body
        );
    }
    let a = es
        .post("/events", &event_form(&csrf, &[("is_admin", "1")]))
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("un campo que no existe («is_admin»)"),
        "{}",
        a.body
    );
    let json = es
        .send(
            "POST",
            "/events",
            Some(b"{}"),
            &[("Content-Type", "application/json")],
        )
        .await;
    assert_eq!(json.status, 400);
    // Not a page at all.
    let a = es.get("/tables/residents/rows").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("No existe esa página."));

    // A viewer gets no form and cannot post one.
    let mut v = Http::new(addr, "en");
    let page = v.sign_in(viewer.login_url.as_deref().unwrap()).await;
    assert!(!page.body.contains("/events/new"));
    let a = v.get("/events/new").await;
    assert_eq!(a.status, 403);
    assert!(
        a.body.contains("Your role does not allow this.")
            && !a.body.contains("form class=\"event\"")
    );
    let a = v.post("/events", &event_form(&page.csrf(), &[])).await;
    assert_eq!(a.status, 403);

    assert!(event_ids(tj).await.is_empty(), "a refused form wrote a row");
    assert!(!edits_log(tj).contains("\"web\""), "{}", edits_log(tj));

    // A good form: saved, and the log names the editor and the columns.
    let a = es.post("/events", &event_form(&csrf, &[])).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let ids = event_ids(tj).await;
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    assert!(a.header("location").unwrap().ends_with(&format!("#e-{id}")));
    // An edit writes only what changed; cancelling marks it cancelled.
    let edit = es.get(&format!("/events/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains("value=\"Casa del Migrante\""));
    let a = es
        .post(
            &format!("/events/{id}"),
            &event_form(&csrf, &[("capacity", "30")]),
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = es
        .post(&format!("/events/{id}/cancel"), &form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(
        cell(tj, "outreach_events", id, "status", false)
            .await
            .as_deref(),
        Some("cancelled")
    );
    let row = tj
        .client()
        .get_row("outreach_events", id, false)
        .await
        .unwrap();
    match row.cell("capacity") {
        Some(puente::admin::api::Cell::Value(p)) => {
            assert_eq!(p.expose(), &puente::value::Value::Integer(30))
        }
        other => panic!("capacity: {other:?}"),
    }
    let lines: Vec<serde_json::Value> = edits_log(tj)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["by"]["via"] == "web")
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["action"], "create");
    assert_eq!(lines[0]["by"]["staff"], "editor-tj");
    assert_eq!(lines[1]["action"], "update");
    assert_eq!(lines[1]["columns"], serde_json::json!(["capacity"]));
    assert_eq!(lines[2]["action"], "cancel");
    assert_eq!(lines[2]["columns"], serde_json::json!(["status"]));
    assert!(
        !edits_log(tj).contains("Casa del Migrante"),
        "values stay out of the log"
    );

    // Sign-in attempts are limited per address (all of these come from
    // 127.0.0.1): the 11th in a row waits.
    let mut h = Http::new(addr, "es");
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let page = h.get("/login").await;
        let a = h
            .post(
                "/login",
                &form(&[("csrf", &page.csrf()), ("token", &"1".repeat(40))]),
            )
            .await;
        statuses.push(a.status);
        if a.status == 429 {
            assert!(
                a.body.contains("Demasiados intentos de entrar. Espere"),
                "{}",
                a.body
            );
        }
    }
    // Only failures count: the two wrong keys above (not the forged form
    // or the good sign-ins), so eight more are heard, then every one waits.
    let mut want = vec![401; 8];
    want.extend([429; 3]);
    assert_eq!(statuses, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_staff_ends_their_sessions_and_links_at_once() {
    let c = one_office().await;
    let tj = &c[TJ];
    let socket = tj.socket.to_str().unwrap().to_string();
    // Through the binary, as an admin would.
    let out = std::process::Command::new(BIN)
        .args([
            "staff",
            "add",
            "editor-tj",
            "--role",
            "editor",
            "--socket",
            &socket,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: puente::admin::staff_api::StaffAdded = serde_json::from_slice(&out.stdout).unwrap();
    let text = puente(&[
        "staff",
        "add",
        "viewer-tj",
        "--role",
        "viewer",
        "--socket",
        &socket,
    ]);
    assert!(text.starts_with("Added viewer-tj as viewer."), "{text}");
    assert!(
        text.contains("/login?token=") && text.contains("/outreach.ics"),
        "{text}"
    );
    let list = puente(&["staff", "list", "--socket", &socket]);
    assert!(
        list.contains("editor-tj  editor") && list.contains("viewer-tj  viewer"),
        "{list}"
    );
    let out = std::process::Command::new(BIN)
        .args(["staff", "add", "x", "--role", "root", "--socket", &socket])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("the role must be viewer"));

    let mut h = Http::new(tj.web.unwrap(), "en");
    h.sign_in(added.login_url.as_deref().unwrap()).await;
    let feed = format!("/cal/{}/outreach.ics", added.calendar_token);
    assert_eq!(h.get(&feed).await.status, 200);
    let removed = puente(&["staff", "remove", "editor-tj", "--socket", &socket]);
    assert!(
        removed.contains("their open sessions have ended"),
        "{removed}"
    );
    // The very next request is refused, and so are the old links.
    let a = h.get("/agenda").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/login"));
    let page = h.get("/login").await;
    let again = h
        .post(
            "/login",
            &form(&[("csrf", &page.csrf()), ("token", &added.login_token)]),
        )
        .await;
    assert_eq!(again.status, 401);
    assert_eq!(h.get(&feed).await.status, 404);
    let list = puente(&["staff", "list", "--socket", &socket]);
    assert!(!list.contains("editor-tj"), "{list}");
    let out = std::process::Command::new(BIN)
        .args(["staff", "remove", "editor-tj", "--socket", &socket])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no staff member named editor-tj")
    );
    // Staff lists are per office: San Diego has none of Tijuana's.
    let sd_list = c[1].client().list_staff().await.unwrap();
    assert!(sd_list.staff.is_empty());
    let log = edits_log(tj);
    assert!(
        log.contains("\"action\":\"staff_remove\"") && log.contains("\"uid\":"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_cookies_are_secure() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    let addr = c.lab.enable_web(TJ, "America/Tijuana").unwrap();
    let dir = c[TJ].dir.clone();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("web.crt"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("web.key"), made.signing_key.serialize_pem()).unwrap();
    let config = c[TJ].config.clone();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("tls_cert = \"web.crt\"\ntls_key = \"web.key\"\n");
    std::fs::write(&config, text).unwrap();
    c.start_all().await;
    let staff = add_staff(&c[TJ], "editor-tj", "editor").await;
    assert!(
        staff
            .login_url
            .as_deref()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(
        format!("GET /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("set-cookie: puente_login=") && answer.contains("; secure"),
        "{answer}"
    );
    assert!(
        answer.contains("strict-transport-security: max-age="),
        "{answer}"
    );
    // Plain HTTP on the TLS port gets nothing useful.
    let mut plain = Http::new(addr, "es");
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tokio::spawn(async move { plain.send("GET", "/login", None, &[]).await }),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(ref a)) if a.status == 200),
        "plain HTTP answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_event_column_never_reaches_the_web() {
    // A schema that seals the events' descriptions.
    let template = puente::config::schema::DEFAULT_SCHEMA.replace(
        "description = \"shared\"",
        "description = { sealed = \"mx\" }",
    );
    assert_ne!(template, puente::config::schema::DEFAULT_SCHEMA);
    let tmp = tempfile::tempdir().unwrap();
    let lab = puente::lab::Lab::create(
        &tmp.path().join("lab"),
        std::path::Path::new(BIN),
        &[("tijuana", true)],
        &template,
    )
    .unwrap();
    let mut c = Cluster { lab, tmp };
    c.lab.enable_web(TJ, "America/Tijuana").unwrap();
    c.start_all().await;
    let tj = &c[TJ];
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(30);
    tj.client()
        .put_row(
            "outreach_events",
            "ev-1",
            vec![
                ("title".into(), puente::value::Plaintext::text("Reunión")),
                (
                    "starts_at".into(),
                    puente::value::Plaintext::text(start.to_string()),
                ),
                (
                    "description".into(),
                    puente::value::Plaintext::text("Texto Sellado"),
                ),
            ],
        )
        .await
        .unwrap();
    let editor = add_staff(tj, "editor-tj", "editor").await;
    let mut h = Http::new(tj.web.unwrap(), "es");
    let agenda = h.sign_in(editor.login_url.as_deref().unwrap()).await;
    assert!(agenda.body.contains("Reunión"), "{}", agenda.body);
    assert!(!agenda.body.contains("Texto Sellado"));
    let edit = h.get("/events/ev-1/edit").await;
    assert!(edit.status == 200 && !edit.body.contains("Texto Sellado"));
    let feed = h
        .get(&format!("/cal/{}/outreach.ics", editor.calendar_token))
        .await;
    assert!(feed.body.contains("SUMMARY:Reunión") && !feed.body.contains("Sellado"));
    // Writing it from the web is refused, and nothing is written.
    let csrf = agenda.csrf();
    let a = h
        .post(
            "/events",
            &event_form(&csrf, &[("description", "Escrito en la web")]),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body
            .contains("La web nunca muestra ni escribe datos sellados.")
    );
    assert_eq!(event_ids(tj).await, ["ev-1"]);
    // Without it the form goes through (the sealed column left alone).
    let a = h.post("/events", &event_form(&csrf, &[])).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(event_ids(tj).await.len(), 2);
}
