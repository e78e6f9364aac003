//! Required columns (`required = true` in the schema; the shipped schema
//! requires `title` and `starts_at` of outreach events): the writer's
//! check on every local write, at the socket, in an import and in the web
//! form, naming the column; never a merge rule, so a peer's change that
//! lacks the value (an older office, a schema not yet adopted there) is
//! merged, converges and is listed for someone to fill in.
//!
//! Owns: those checks end to end, with the shipped schema as it is (the
//! other tests drop its required marks: `support::unrequired`).
//! Must not: pass without a browser (the form test fails and says which
//! packages to install).

use crate::cluster;
use crate::support;
use crate::web;

use std::process::Command;

use cluster::*;
use puente::config::Schema;
use puente::config::schema::DEFAULT_SCHEMA;
use puente::schedule::Lang;
use puente::store::StoreError;
use puente::web::form::FieldError;
use puente::web::i18n::field_error;
use std::path::Path;
use std::sync::Arc;
use web::webdriver::{self, Browser, screenshot_dir};

/// Runs the CLI against an office: (success, stdout, stderr).
fn cli(office: &Office, args: &[&str]) -> (bool, String, String) {
    let socket = office.socket.to_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args(args)
        .args(["--socket", &socket])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shipped(recipients: &[&str]) -> Arc<Schema> {
    let list = recipients
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = DEFAULT_SCHEMA.replace("mx = []", &format!("mx = [{list}]"));
    Arc::new(Schema::parse(Path::new("schema.toml"), &text).unwrap())
}

#[test]
fn the_shipped_schema_requires_a_title_and_a_start_and_the_hash_says_so() {
    let schema = shipped(&[]);
    let events = schema.table("outreach_events").unwrap();
    let required: Vec<&str> = events
        .columns
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(required, ["starts_at", "title"]);
    // Two offices that disagree on a required mark see different schemas
    // (status says what differs), yet the replica's layout is the same:
    // nothing to migrate.
    let loose = support::schema(&[]);
    assert_ne!(schema.hash(), loose.hash());
    assert_eq!(schema.layout_hash(), loose.layout_hash());
}

#[test]
fn a_local_write_that_lacks_a_required_value_is_refused_naming_the_column() {
    let mut r = support::replica("tijuana", shipped(&[]), None, 1_000);
    let refused = r
        .store
        .put(
            "outreach_events",
            "ev-1",
            support::cells(&[("title", "Posada")]),
        )
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::MissingRequired { .. }),
        "{refused}"
    );
    let said = refused.to_string();
    assert!(
        said.contains("outreach_events/ev-1: `starts_at` is required")
            && said.contains("makes a new row without it")
            && said.contains("give a value"),
        "{said}"
    );
    // Blank text is no value either; both columns named, in file order.
    let said = r
        .store
        .put(
            "outreach_events",
            "ev-1",
            support::cells(&[("title", "  "), ("location", "Parque")]),
        )
        .unwrap_err()
        .to_string();
    assert!(said.contains("`title`, `starts_at` are required"), "{said}");
    assert_eq!(r.store.head(), 0, "nothing written");

    // The control: with both, the row is written; an edit of another
    // column needs neither; emptying one is refused.
    r.store
        .put(
            "outreach_events",
            "ev-1",
            support::cells(&[
                ("title", "Posada"),
                ("starts_at", "2030-12-15T18:00:00-08:00"),
            ]),
        )
        .unwrap();
    r.store
        .put(
            "outreach_events",
            "ev-1",
            support::cells(&[("location", "Parque")]),
        )
        .unwrap();
    let said = r
        .store
        .put(
            "outreach_events",
            "ev-1",
            vec![(
                "starts_at".into(),
                puente::value::Plaintext::new(puente::value::Value::Null),
            )],
        )
        .unwrap_err()
        .to_string();
    assert!(
        said.contains("`starts_at` is required") && said.contains("would empty it"),
        "{said}"
    );
}

#[test]
fn a_peers_change_without_a_required_value_is_merged_converges_and_is_listed() {
    // San Diego runs a schema without the rule (an older office); Tijuana
    // has adopted the shipped one.
    let mut sd = support::replica("san-diego", support::schema(&[]), None, 1_000);
    let mut tj = support::replica("tijuana", shipped(&[]), None, 2_000);
    sd.store
        .put(
            "outreach_events",
            "sd-1",
            support::cells(&[("title", "Clinic")]),
        )
        .unwrap();
    sd.store
        .put(
            "outreach_events",
            "sd-2",
            support::cells(&[("description", "no title, no start")]),
        )
        .unwrap();
    support::sync(&sd, &mut tj, 10);
    assert_eq!(tj.store.digest(), sd.store.digest(), "merged as it came");
    let (total, mut listed) = tj.store.missing_required(10).unwrap();
    assert_eq!(total, 3);
    listed.sort();
    assert_eq!(
        listed,
        [
            ("outreach_events".into(), "sd-1".into(), "starts_at".into()),
            ("outreach_events".into(), "sd-2".into(), "starts_at".into()),
            ("outreach_events".into(), "sd-2".into(), "title".into()),
        ]
    );
    assert_eq!(
        tj.store.missing_required(1).unwrap().0,
        3,
        "counted past the list"
    );
    // Tijuana can still edit such a row, and fills it in; both converge.
    tj.store
        .put(
            "outreach_events",
            "sd-1",
            support::cells(&[("location", "Library")]),
        )
        .unwrap();
    tj.store
        .put(
            "outreach_events",
            "sd-1",
            support::cells(&[("starts_at", "2030-12-15T18:00:00-08:00")]),
        )
        .unwrap();
    support::sync(&tj, &mut sd, 10);
    support::sync(&sd, &mut tj, 10);
    assert_eq!(tj.store.digest(), sd.store.digest());
    assert_eq!(tj.store.missing_required(10).unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_a_start_is_refused_at_the_socket_and_in_an_import() {
    let mut c = Cluster::with_schema(&[("tijuana", true)], DEFAULT_SCHEMA, true);
    c.start_all().await;
    let tj = &c[0];

    let (ok, _, err) = cli(
        tj,
        &["rows", "put", "outreach_events", "ev-1", "title=Posada"],
    );
    assert!(!ok);
    assert!(
        err.contains("outreach_events/ev-1: `starts_at` is required") && err.contains("HTTP 400"),
        "{err}"
    );
    let (ok, out, err) = cli(
        tj,
        &[
            "rows",
            "put",
            "outreach_events",
            "ev-1",
            "title=Posada",
            "starts_at=2030-12-15T18:00:00-08:00",
        ],
    );
    assert!(ok, "{out}{err}");

    // An import: one good new row, one new row without a start (an empty
    // CSV cell is left out), one update of ev-1 that blanks its title. The
    // file is refused whole, naming the line and the column.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"ev-2\",\"title\":\"Taller\",\"starts_at\":\"2030-12-16T10:00:00-08:00\"}\n\
         {\"id\":\"ev-3\",\"title\":\"Vigilia\",\"location\":\"Parque\"}\n\
         {\"id\":\"ev-1\",\"title\":\" \"}\n",
    )
    .unwrap();
    let (ok, out, err) = cli(
        tj,
        &["rows", "import", "outreach_events", file.to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("line 2, column starts_at: `starts_at` is required in outreach_events")
            && err.contains("row ev-3"),
        "{err}"
    );
    assert!(
        err.contains("line 3, column title: `title` is required"),
        "an update that blanks the title: {err}"
    );
    assert!(!err.contains("line 1"), "{err}");
    let rows = tj
        .client()
        .list_rows("outreach_events", None, None, false)
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 1, "nothing of the file written");
    // The control: a CSV file with the start, its empty cells left out.
    let file = dir.path().join("events.csv");
    std::fs::write(
        &file,
        "id,title,starts_at,location\n\
         ev-2,Taller,2030-12-16T10:00:00-08:00,\n\
         ev-3,Vigilia,2030-12-17T19:00:00-08:00,Parque\n",
    )
    .unwrap();
    let (ok, out, err) = cli(
        tj,
        &["rows", "import", "outreach_events", file.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    let update = dir.path().join("update.jsonl");
    std::fs::write(&update, "{\"id\":\"ev-1\",\"location\":\"Parque\"}\n").unwrap();
    let (ok, out, err) = cli(
        tj,
        &[
            "rows",
            "import",
            "outreach_events",
            update.to_str().unwrap(),
        ],
    );
    assert!(ok, "an update that leaves the start alone: {out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_form_refuses_an_event_without_a_start_in_spanish_and_english() {
    assert!(
        webdriver::available(),
        "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
    );
    let mut c = Cluster::with_schema(&[("tijuana", true)], DEFAULT_SCHEMA, true);
    c.lab.enable_web(0, "America/Tijuana").unwrap();
    c.start_all().await;
    let tj = &c[0];
    let editor = web::add_staff(tj, "editor-tj", "editor").await;
    let login = editor.login_url.clone().unwrap();
    let shots = screenshot_dir();
    for (lang, accept) in [(Lang::Es, "es-MX,es"), (Lang::En, "en-US,en")] {
        let b = Browser::start(1280, 900, accept).await;
        b.goto(&login).await;
        b.click("form[action='/login'] button[type=submit]").await;
        b.wait_source("class=\"pager\"").await;
        b.click("a[href='/events/new']").await;
        b.type_into("#title", "Posada sin fecha").await;
        b.type_into("#location", "Parque").await;
        // The form offers today as the start date: the person clears it.
        b.set_value("input[name=start_date]", "").await;
        // The browser would stop the form itself (the field is marked
        // required); an old browser or a hand-made request does not.
        b.script(
            "document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required')); return null;",
            serde_json::json!([]),
        )
        .await;
        b.click("form.event button[type=submit]").await;
        let page = b.wait_source("role=\"alert\"").await;
        let want = field_error(lang, &FieldError::Required("start_date"));
        assert!(page.contains(&want), "{want:?} missing:\n{page}");
        assert!(
            page.contains("Posada sin fecha"),
            "what was typed comes back"
        );
        b.full_screenshot(&shots.join(format!("form-required-{}-1280.png", lang.code())))
            .await;
        b.quit();
    }
    assert!(
        tj.client()
            .list_rows("outreach_events", None, None, false)
            .await
            .unwrap()
            .rows
            .is_empty(),
        "nothing written"
    );
}
