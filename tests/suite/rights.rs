//! Write rights with real daemons (the shipped schema: both offices edit
//! events and insert residents; only Tijuana changes or deletes them):
//! an honest San Diego is refused locally (CLI, socket, import); a tampered San Diego (the
//! rogue, holding San Diego's pinned certificate) gets its delete and its
//! update of `case_notes` held at Tijuana, nothing is lost, status says
//! why, `held accept` applies one and `held discard` keeps Tijuana's
//! version of the other; a flood of forbidden changes is held up to the
//! bound and closes the session with `forbidden_flood`.

use crate::cluster;
use crate::web;

use std::process::Command;

use cluster::rogue::Rogue;
use cluster::*;
use puente::admin::ClientError;
use puente::clock::Hlc;
use puente::config::Schema;
use puente::seal::{self, Binding};
use puente::stamp::SiteId;
use puente::store::{Batch, CellChange, Change, Cursor};
use puente::sync::protocol::{ErrorCode, Message};
use puente::value::{Plaintext, Value};

const TJ: usize = 0;
const SD: usize = 1;

/// Runs `puente ARGS` and returns (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run puente");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn forbidden(e: ClientError) -> String {
    match e {
        ClientError::Api {
            status: 403,
            message,
            ..
        } => message,
        other => panic!("not a 403: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_san_diego_is_refused_locally_and_what_it_may_do_reaches_tijuana() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c.start_all().await;
    let (tj, sd) = (&c[TJ], &c[SD]);
    tj.put(
        "residents",
        "r1",
        &[("full_name", "Ana"), ("status", "active")],
    )
    .await;
    wait_for("san diego has the resident", || async {
        cell(sd, "residents", "r1", "status", false)
            .await
            .as_deref()
            == Some("active")
    })
    .await;
    // The CLI, as a San Diego admin uses it.
    let sd_config = sd.config.to_str().unwrap();
    let (ok, _, stderr) = run(&["rows", "delete", "residents", "r1", "--config", sd_config]);
    assert!(!ok);
    // Exactly as the README shows it.
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let line = stderr.trim_end();
    assert_eq!(
        line,
        "error: san-diego may not delete rows of residents (rights: delete = tijuana); ask tijuana to make this change (HTTP 403)"
    );
    assert!(
        readme.contains(line),
        "README.md no longer shows the refusal as it reads"
    );
    // The socket answers 403 with the same sentence.
    let e = forbidden(sd.client().delete_row("residents", "r1").await.unwrap_err());
    assert!(
        e.starts_with("san-diego may not delete rows of residents"),
        "{e}"
    );
    let cells = vec![("case_notes".to_string(), Plaintext::text("Nota"))];
    let e = forbidden(
        sd.client()
            .put_row("residents", "r1", cells)
            .await
            .unwrap_err(),
    );
    assert!(
        e.starts_with(
            "san-diego may not update case_notes of residents (rights: update = tijuana)"
        ),
        "{e}"
    );
    // An import that would change a resident is refused whole, naming the
    // right: its new resident is not written either.
    let file = c.path().join("residents.csv");
    std::fs::write(&file, "id,status\nr3,intake\nr1,closed\n").unwrap();
    let (ok, _, stderr) = run(&[
        "rows",
        "import",
        "residents",
        file.to_str().unwrap(),
        "--config",
        sd_config,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "san-diego may not update status of residents (rights: update = tijuana); ask tijuana to make this change"
        ),
        "{stderr}"
    );
    assert_eq!(cell(sd, "residents", "r3", "status", false).await, None);
    // What San Diego may do: a new resident's intake, the schedule.
    sd.put(
        "residents",
        "r2",
        &[("full_name", "Beto"), ("status", "intake")],
    )
    .await;
    sd.put("outreach_events", "e1", &[("title", "Feria")]).await;
    wait_converged("both offices", &[tj, sd]).await;
    assert_eq!(
        cell(tj, "residents", "r1", "status", false)
            .await
            .as_deref(),
        Some("active")
    );
    assert_eq!(
        cell(tj, "residents", "r2", "status", false)
            .await
            .as_deref(),
        Some("intake")
    );
    let status = tj.status().await;
    assert_eq!(status.held, 0, "an honest office's changes are never held");
}

/// What the tampered San Diego sends: a delete of `deleted` and a new
/// sealed `case_notes` for `updated`, stamped with its own site.
fn tampered_batch(schema: &Schema, site: SiteId, updated: &str, deleted: &str) -> Message {
    let t = schema.table_index("residents").unwrap();
    let table = &schema.tables[t];
    let case_notes = table.column_index("case_notes").unwrap();
    let hlc = Hlc::from_parts(jiff::Timestamp::now().as_millisecond() as u64, 0);
    let group = schema.group("mx").unwrap();
    let sealed = seal::seal(
        group,
        &Binding {
            table: "residents",
            id: updated,
            column: "case_notes",
            hlc,
            site,
        },
        &Plaintext::text("Nota falsa del servidor tomado"),
    )
    .unwrap();
    Message::Batch {
        batch: Batch {
            sites: vec![site],
            changes: vec![
                Change::Row {
                    table: t as u16,
                    id: updated.into(),
                    cells: vec![CellChange {
                        column: case_notes as u16,
                        hlc,
                        site: 0,
                        value: Value::Blob(sealed),
                    }],
                },
                Change::Tombstone {
                    table: t as u16,
                    id: deleted.into(),
                    hlc,
                    site: 0,
                },
            ],
        },
        cursor: Cursor::at(2),
        complete: true,
        head: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_san_diego_s_delete_and_case_notes_are_held_then_accepted_and_discarded() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    let rogue = Rogue::new(&c.path().join("rogue"), "san-diego");
    let tj_config = c[TJ].config.to_str().unwrap().to_string();
    puente(&[
        "peer",
        "add",
        "--config",
        &tj_config,
        "--name",
        "san-diego",
        "--fingerprint",
        &rogue.fingerprint,
    ]);
    c.start_all().await;
    let tj = &c[TJ];
    tj.put(
        "residents",
        "r1",
        &[
            ("full_name", "Ana"),
            ("case_notes", "Nota original"),
            ("status", "active"),
        ],
    )
    .await;
    tj.put(
        "residents",
        "r2",
        &[("full_name", "Beto"), ("status", "active")],
    )
    .await;
    let schema = Schema::load(&tj.dir.join("schema.toml")).unwrap();
    let hash = tj.status().await.schema_hash;

    let site = SiteId::random();
    let mut s = rogue
        .connect(tj)
        .await
        .expect("the rogue's certificate is pinned as san-diego");
    s.hello_as(site, &hash).await;
    assert!(matches!(s.next_message().await, Some(Message::Hello(_))));
    assert!(matches!(s.next_message().await, Some(Message::Pull { .. })));
    s.send(&tampered_batch(&schema, site, "r1", "r2")).await;
    wait_for("both changes held", || async {
        tj.status().await.held == 2
    })
    .await;

    // Nothing is lost: r2 lives, r1's notes are Tijuana's.
    assert_eq!(
        cell(tj, "residents", "r2", "status", false)
            .await
            .as_deref(),
        Some("active")
    );
    assert_eq!(
        cell(tj, "residents", "r1", "case_notes", true)
            .await
            .as_deref(),
        Some("Nota original")
    );
    // Status says that changes are held, from whom and why.
    let status = tj.status().await;
    let peer = status.peers.iter().find(|p| p.name == "san-diego").unwrap();
    assert_eq!((peer.held, peer.counters.held), (2, 2));
    let reasons = peer.held_reasons.join("\n");
    assert!(
        reasons.contains(
            "san-diego may not update case_notes of residents (rights: update = tijuana)"
        ),
        "{reasons}"
    );
    assert!(
        reasons.contains("san-diego may not delete rows of residents (rights: delete = tijuana)"),
        "{reasons}"
    );
    let (ok, text, _) = run(&["status", "--config", &tj_config]);
    assert!(ok);
    assert!(text.contains("2 changes from peers that their office may not make, waiting for review: `puente held list`"), "{text}");
    assert!(
        text.contains("held: san-diego may not delete rows of residents"),
        "{text}"
    );
    assert!(
        tj.logs().contains("held changes san-diego may not make"),
        "the log says it too"
    );
    let metrics = tj.client().metrics().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "puente_peer_held_changes{peer=\"san-diego\"} 2"),
        "and the metrics: {metrics}"
    );
    // The session goes on: held changes do not stall sync.
    let Some(Message::State { head, .. }) = s.next_message().await else {
        panic!("Tijuana answers the batch with its State");
    };
    // Caught up both ways, the digests differ only by what is held:
    // status says so, not that either side is behind.
    s.send(&Message::State {
        head: 2,
        digest: puente::store::Digest::EMPTY,
        applied: Cursor::at(head),
        wall_ms: jiff::Timestamp::now().as_millisecond() as u64,
    })
    .await;
    wait_for("status explains the different digests", || async {
        let status = tj.status().await;
        let peer = status.peers.iter().find(|p| p.name == "san-diego").cloned();
        peer.and_then(|p| p.held_note).as_deref()
            == Some("digests differ because 2 changes from san-diego are held for review (`puente held list`)")
    })
    .await;
    let (_, text, _) = run(&["status", "--config", &tj_config]);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("san-diego  connected")
                && l.ends_with("caught up, with held changes")),
        "{text}"
    );
    assert!(!text.contains("behind"), "{text}");

    // The list, as an admin reads it.
    let (ok, list, stderr) = run(&["held", "list", "--config", &tj_config]);
    assert!(ok, "{stderr}");
    for want in [
        "update residents/r1 (case_notes)",
        "delete residents/r2",
        "from san-diego, held ",
        "why: san-diego may not delete rows of residents (rights: delete = tijuana)",
        "2 waiting",
    ] {
        assert!(list.contains(want), "missing {want:?} in\n{list}");
    }
    let held = tj.client().list_held(false).await.unwrap().held;
    let update = held
        .iter()
        .find(|h| h.kind == "update")
        .unwrap()
        .id
        .to_string();
    let delete = held
        .iter()
        .find(|h| h.kind == "delete")
        .unwrap()
        .id
        .to_string();

    // Accept the update: applied with its stamp; Tijuana now reads it.
    let (ok, out, stderr) = run(&["held", "accept", &update, "--config", &tj_config]);
    assert!(ok, "{stderr}");
    assert!(
        out.contains(&format!(
            "accepted #{update}: applied 1 change to residents/r1"
        )),
        "{out}"
    );
    assert_eq!(
        cell(tj, "residents", "r1", "case_notes", true)
            .await
            .as_deref(),
        Some("Nota falsa del servidor tomado")
    );
    // Discard the delete: Tijuana keeps r2, and says it cannot undo it there.
    let (ok, out, stderr) = run(&["held", "discard", &delete, "--config", &tj_config]);
    assert!(ok, "{stderr}");
    assert!(
        out.contains(&format!(
            "discarded #{delete}: this office keeps its version of residents/r2"
        )),
        "{out}"
    );
    assert!(
        out.contains("a delete cannot be undone: san-diego keeps its tombstone"),
        "{out}"
    );
    assert_eq!(
        cell(tj, "residents", "r2", "status", false)
            .await
            .as_deref(),
        Some("active")
    );
    // Deciding twice is refused; decisions are listed with who made them.
    let (ok, _, stderr) = run(&["held", "accept", &update, "--config", &tj_config]);
    assert!(!ok && stderr.contains("was already accepted"), "{stderr}");
    let (_, all, _) = run(&["held", "list", "--all", "--config", &tj_config]);
    assert!(
        all.contains("accepted by uid ") && all.contains("discarded by uid "),
        "{all}"
    );
    let status = tj.status().await;
    let peer = status.peers.iter().find(|p| p.name == "san-diego").unwrap();
    assert_eq!((status.held, peer.held, peer.held_diverged), (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forbidden_changes_is_held_up_to_the_bound_and_closes_the_session() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    let rogue = Rogue::new(&c.path().join("rogue"), "san-diego");
    let tj_config = c[TJ].config.to_str().unwrap().to_string();
    puente(&[
        "peer",
        "add",
        "--config",
        &tj_config,
        "--name",
        "san-diego",
        "--fingerprint",
        &rogue.fingerprint,
    ]);
    c.debug_setting(TJ, "max_held = 20");
    c.start_all().await;
    let tj = &c[TJ];
    let hash = tj.status().await.schema_hash;
    let schema = Schema::load(&tj.dir.join("schema.toml")).unwrap();
    let residents = schema.table_index("residents").unwrap() as u16;
    let site = SiteId::random();
    let mut s = rogue.connect(tj).await.unwrap();
    s.hello_as(site, &hash).await;
    assert!(matches!(s.next_message().await, Some(Message::Hello(_))));
    assert!(matches!(s.next_message().await, Some(Message::Pull { .. })));
    let hlc = Hlc::from_parts(jiff::Timestamp::now().as_millisecond() as u64, 0);
    let mut changes: Vec<Change> = (0..30)
        .map(|i| Change::Tombstone {
            table: residents,
            id: format!("gone-{i}"),
            hlc,
            site: 0,
        })
        .collect();
    changes.push(Change::Row {
        table: schema.table_index("outreach_events").unwrap() as u16,
        id: "allowed".into(),
        cells: vec![CellChange {
            column: schema
                .table("outreach_events")
                .unwrap()
                .column_index("title")
                .unwrap() as u16,
            hlc,
            site: 0,
            value: Value::Text("an event san diego may add".into()),
        }],
    });
    s.send(&Message::Batch {
        batch: Batch {
            sites: vec![site],
            changes,
        },
        cursor: Cursor::at(31),
        complete: true,
        head: 31,
    })
    .await;
    assert_eq!(s.closed_with().await, Some(ErrorCode::ForbiddenFlood));
    let status = tj.status().await;
    let peer = status.peers.iter().find(|p| p.name == "san-diego").unwrap();
    assert_eq!(
        (status.held, peer.counters.held, peer.counters.held_dropped),
        (20, 20, 10)
    );
    assert_eq!(peer.counters.errors.get("forbidden_flood"), Some(&1));
    // What it may do still applied, and the daemon serves on.
    assert_eq!(
        cell(tj, "outreach_events", "allowed", "title", false)
            .await
            .as_deref(),
        Some("an event san diego may add")
    );
    assert!(
        tj.logs().contains("the held list is full"),
        "the log says what was dropped"
    );
}

/// An event form as the web's edit page posts it.
fn event_form(csrf: &str, title: &str) -> String {
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/Tijuana").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap()
        .to_string();
    web::form(&[
        ("csrf", csrf),
        ("title", title),
        ("start_date", &day),
        ("start_time", "10:00"),
        ("end_date", ""),
        ("end_time", "12:00"),
        ("location", "Casa del Migrante"),
        ("office", "san-diego"),
        ("language", "es"),
        ("capacity", "25"),
        ("status", "scheduled"),
        ("description", ""),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_form_refuses_an_edit_this_office_may_not_make_in_the_users_language() {
    // Events San Diego may add but only Tijuana may edit.
    let schema = puente::config::schema::DEFAULT_SCHEMA.replace(
        "# No [tables.outreach_events.rights]: both offices add, edit and delete\n# events.",
        "[tables.outreach_events.rights]\nupdate = [\"tijuana\"]",
    );
    assert_ne!(schema, puente::config::schema::DEFAULT_SCHEMA);
    let tmp = tempfile::tempdir().unwrap();
    let lab = puente::lab::Lab::create(
        &tmp.path().join("lab"),
        std::path::Path::new(BIN),
        &[("san-diego", false)],
        &schema,
    )
    .unwrap();
    let mut c = Cluster { lab, tmp };
    c.lab.enable_web(0, "America/Tijuana").unwrap();
    c.start_all().await;
    let sd = &c[0];
    let editor = web::add_staff(sd, "editor-sd", "editor").await;
    for (lang, refusal) in [
        (
            "es",
            "La oficina san-diego no puede hacer este cambio y no se guardó nada: solo tijuana, según los permisos del esquema compartido. Pida a tijuana que lo haga.",
        ),
        (
            "en",
            "The san-diego office may not make this change, and nothing was saved: only tijuana may, by the rights in the shared schema. Ask tijuana to make it.",
        ),
    ] {
        let mut h = web::Http::new(sd.web.unwrap(), lang);
        let agenda = h.sign_in(editor.login_url.as_deref().unwrap()).await;
        let csrf = agenda.csrf();
        // Adding an event is allowed.
        let added = h.post("/events", &event_form(&csrf, "Taller")).await;
        assert_eq!(added.status, 303, "{}", added.body);
        let ids = web::event_ids(sd).await;
        let id = ids.last().unwrap().clone();
        // Editing it is Tijuana's: refused, in the user's language.
        let edited = h
            .post(&format!("/events/{id}"), &event_form(&csrf, "Otro"))
            .await;
        assert_eq!(edited.status, 403, "{}", edited.body);
        assert!(edited.body.contains(refusal), "{}", edited.body);
        assert_eq!(
            cell(sd, "outreach_events", &id, "title", false)
                .await
                .as_deref(),
            Some("Taller")
        );
    }
}
