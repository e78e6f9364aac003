//! `puente rows import` and `puente rows export` as an admin runs them:
//! round trips in CSV and JSON Lines with sealed columns revealed at
//! Tijuana, every bad line of a file reported with nothing written, a bad
//! import stream refused whole, an export of a sealed column refused
//! without reveal, imported sealed values in no file of either office, and
//! the progress bar drawn on a terminal but not in a pipe.

use crate::cluster;
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cluster::*;

const TJ: usize = 0;
const SD: usize = 1;

/// Runs the CLI against an office: (success, stdout, stderr).
fn cli(office: &Office, args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    let socket = office.socket.to_str().unwrap().to_string();
    all.extend(["--socket", &socket]);
    let out = Command::new(BIN)
        .args(&all)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(office: &Office, args: &[&str]) -> String {
    let (ok, out, err) = cli(office, args);
    assert!(ok, "puente {args:?} failed: {err}");
    out
}

/// Rows of a CSV file: id → column → value (empty cells left out).
fn read_csv(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let mut rows = BTreeMap::new();
    for record in r.records() {
        let record = record.unwrap();
        let mut row = BTreeMap::new();
        for (i, field) in record.iter().enumerate() {
            if header[i] != "id" && !field.is_empty() {
                row.insert(header[i].clone(), field.to_string());
            }
        }
        rows.insert(
            record[header.iter().position(|h| h == "id").unwrap()].to_string(),
            row,
        );
    }
    rows
}

fn two_offices() -> Cluster {
    let c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    c
}

fn residents_csv(n: usize) -> String {
    let mut text = String::from("id,arrival_date,status,full_name,phone\n");
    for i in 0..n {
        text.push_str(&format!(
            "r-{i:04},2026-11-{:02},active,\"Nombre {i}, Apellido\",+52 664 555 {i:04}\n",
            i % 28 + 1
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonl_round_trip_with_sealed_columns_revealed_at_tijuana() {
    let mut c = two_offices();
    c.start_all().await;
    let dir = c.path().to_path_buf();
    // San Diego imports residents: it seals their names and phones to
    // Mexico without being able to read them back.
    let input = dir.join("residents.csv");
    std::fs::write(&input, residents_csv(120)).unwrap();
    let out = ok(
        &c[SD],
        &["rows", "import", "residents", input.to_str().unwrap()],
    );
    assert!(out.contains("imported 120 rows into residents"), "{out}");
    // Events as JSON Lines keep their types.
    let events = dir.join("events.jsonl");
    let lines: Vec<String> = (0..30)
        .map(|i| format!("{{\"id\": \"e-{i:02}\", \"title\": \"Taller {i}\", \"capacity\": {}, \"office\": \"tijuana\"}}", 10 + i))
        .collect();
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    ok(
        &c[TJ],
        &[
            "rows",
            "import",
            "outreach_events",
            events.to_str().unwrap(),
            "--json",
        ],
    );
    wait_converged("after the imports", &[&c[TJ], &c[SD]]).await;
    assert_eq!(c[SD].status().await.sealed_cells, 240);

    // Tijuana exports every column, revealed, as CSV: the file it was.
    let back = dir.join("back.csv");
    let (done, _, err) = cli(
        &c[TJ],
        &[
            "rows",
            "export",
            "residents",
            "--reveal",
            "-o",
            back.to_str().unwrap(),
        ],
    );
    assert!(done, "{err}");
    // The file it was, but inert for a spreadsheet: phones start with `+`,
    // so they come out behind a `'` (OWASP's CSV injection advice).
    let mut expected = read_csv(&input);
    for row in expected.values_mut() {
        let phone = row.get_mut("phone").unwrap();
        assert!(phone.starts_with('+'));
        phone.insert(0, '\'');
    }
    assert_eq!(read_csv(&back), expected);
    assert_eq!(puente::node::fsutil::mode_of(&back).unwrap(), 0o600);
    // …and as JSON Lines, which import reads back.
    let back_jsonl = ok(
        &c[TJ],
        &[
            "rows",
            "export",
            "residents",
            "--reveal",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(back_jsonl.lines().count(), 120);
    let first: serde_json::Value =
        serde_json::from_str(back_jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["full_name"], "Nombre 0, Apellido");
    assert_eq!(first["household_size"], serde_json::Value::Null);
    let again = dir.join("again.jsonl");
    std::fs::write(&again, &back_jsonl).unwrap();
    let out = ok(
        &c[TJ],
        &["rows", "import", "residents", again.to_str().unwrap()],
    );
    assert!(out.contains("imported 120 rows"), "{out}");

    // San Diego exports the shared columns; sealed ones are left out.
    let (done, shared, err) = cli(&c[SD], &["rows", "export", "residents"]);
    assert!(done, "{err}");
    assert!(
        shared.starts_with("id,arrival_date,household_size,status\n"),
        "{shared}"
    );
    assert!(!shared.contains("Nombre"), "{shared}");
    assert!(
        err.contains(
            "sealed columns left out: full_name, birth_date, nationality, phone, case_notes"
        ),
        "{err}"
    );
    let jsonl = ok(
        &c[SD],
        &[
            "rows",
            "export",
            "outreach_events",
            "--format",
            "jsonl",
            "--columns",
            "capacity,title",
        ],
    );
    let got: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 30);
    assert_eq!(
        got[3],
        serde_json::json!({"id": "e-03", "title": "Taller 3", "capacity": 13})
    );

    // Each revealing export is one audit line: who, table, columns, rows.
    let audit = std::fs::read_to_string(c[TJ].data_dir().join("audit.log")).unwrap();
    let exports: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["export"] == true)
        .collect();
    assert_eq!(exports.len(), 2, "{audit}");
    assert_eq!(exports[0]["table"], "residents");
    assert_eq!(exports[0]["rows"], 120);
    assert_eq!(
        exports[0]["columns"],
        serde_json::json!([
            "full_name",
            "birth_date",
            "nationality",
            "phone",
            "case_notes"
        ])
    );
    assert!(exports[0]["uid"].is_u64());
    assert!(
        // The phone as written: its digits alone ("555") also turn up in
        // the log's millisecond timestamps.
        !audit.contains("Nombre") && !audit.contains("+52 664 555"),
        "values in the audit log:\n{audit}"
    );
    let metrics = puente::metrics::text::parse(&c[TJ].client().metrics().await.unwrap()).unwrap();
    assert_eq!(
        metrics.value("puente_revealed_cells_total", &[]),
        Some(480.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_bad_lines_writes_nothing_and_every_bad_line_is_named() {
    let mut c = two_offices();
    c.start_all().await;
    let dir = c.path().to_path_buf();
    c[TJ]
        .put("residents", "r-gone", &[("status", "closed")])
        .await;
    c[TJ]
        .client()
        .delete_row("residents", "r-gone")
        .await
        .unwrap();
    wait_converged("before", &[&c[TJ], &c[SD]]).await;
    let before = c[TJ].status().await;

    // Lines the client cannot read: nothing is even sent.
    let unreadable = dir.join("unreadable.csv");
    std::fs::write(
        &unreadable,
        "id,status,full_name\nr-1,intake,Secreto Uno\nr-2,intake\n,intake,Secreto Dos\nr-3,intake,Secreto Tres\n",
    )
    .unwrap();
    let (done, _, err) = cli(
        &c[TJ],
        &["rows", "import", "residents", unreadable.to_str().unwrap()],
    );
    assert!(!done);
    assert!(
        err.contains("has 2 bad lines; nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("line 3: the line has 2 cells and the header 3"),
        "{err}"
    );
    assert!(
        err.contains("line 4, column id: the row has no id"),
        "{err}"
    );
    assert!(!err.contains("Secreto"), "{err}");

    // Lines the daemon refuses: an unknown column, a duplicate id, an
    // invalid id, a deleted id, a value of the wrong type. Every one is
    // listed.
    let refused = dir.join("refused.csv");
    std::fs::write(
        &refused,
        "id,status,full_name,shoe_size\nr-1,intake,Secreto Uno,\nr-1,intake,Secreto Uno Bis,\nr 3,intake,Secreto Tres,\nr-gone,intake,Secreto Cuatro,\nr-5,intake,Secreto Cinco,\nr-6,sometimes,Secreto Seis,\n",
    )
    .unwrap();
    let (done, out, err) = cli(
        &c[TJ],
        &[
            "rows",
            "import",
            "residents",
            refused.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(!done);
    assert!(
        err.contains("the import has 5 bad lines; nothing was written"),
        "{err}"
    );
    let report: puente::bulk::ImportReport = serde_json::from_str(&out).unwrap();
    assert!(!report.written);
    assert_eq!(report.rows, 6);
    let listed: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(listed.len(), 5, "{listed:#?}");
    assert!(
        listed[0]
            .starts_with("line 1, column shoe_size: table residents has no column `shoe_size`"),
        "{listed:#?}"
    );
    assert_eq!(
        listed[1],
        "line 3, column id: id `r-1` is already on line 2; a file may hold each row once"
    );
    assert!(
        listed[2].starts_with("line 4, column id: not a valid row id"),
        "{listed:#?}"
    );
    assert!(
        listed[3].starts_with("line 5, column id: row residents/r-gone was deleted"),
        "{listed:#?}"
    );
    assert_eq!(
        listed[4],
        "line 7, column status: expects one of `active`, `arrived`, `closed`, `intake`, `moved_on`; got text `sometimes`"
    );
    assert!(!out.contains("Secreto") && !err.contains("Secreto"));

    // A JSON Lines file with one bad value among good rows.
    let jsonl = dir.join("one-bad.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"e-1\", \"title\": \"Taller\"}\n{\"id\": \"e-2\", \"title\": {\"nested\": \"Secreto\"}}\n{\"id\": \"e-3\", \"title\": \"Clase\"}\n",
    )
    .unwrap();
    let (done, _, err) = cli(
        &c[TJ],
        &["rows", "import", "outreach_events", jsonl.to_str().unwrap()],
    );
    assert!(!done);
    assert!(
        err.contains("line 2: column title: a value must be a string, a number or null"),
        "{err}"
    );

    let good = dir.join("good.jsonl");
    std::fs::write(&good, "{\"id\": \"e-1\", \"title\": \"Taller\"}\n").unwrap();
    let (done, _, err) = cli(&c[TJ], &["rows", "import", "nope", good.to_str().unwrap()]);
    assert!(!done && err.contains("unknown table `nope`"), "{err}");
    // The same refusal while the client is still writing a file larger
    // than the socket's buffers: the daemon reads the rest before it
    // answers, so the client hears why (had it closed the connection
    // under the write, the client would say only that the write broke).
    let big = dir.join("big.jsonl");
    std::fs::write(
        &big,
        "{\"id\": \"e-1\", \"title\": \"Taller\"}\n".repeat(60_000),
    )
    .unwrap();
    let (done, _, err) = cli(&c[TJ], &["rows", "import", "nope", big.to_str().unwrap()]);
    assert!(!done && err.contains("unknown table `nope`"), "{err}");

    // Nothing of any of them was written, here or there.
    let after = c[TJ].status().await;
    assert_eq!(
        (after.head, &after.digest, &after.rows),
        (before.head, &before.digest, &before.rows)
    );
    assert!(
        c[TJ]
            .client()
            .get_row("residents", "r-1", false)
            .await
            .is_err()
    );
    assert!(
        c[TJ]
            .client()
            .get_row("outreach_events", "e-1", false)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_a_sealed_column_without_reveal_writes_nothing() {
    let mut c = two_offices();
    c.start_all().await;
    let dir = c.path().to_path_buf();
    c[TJ]
        .client()
        .put_row(
            "residents",
            "r-1",
            vec![(
                "full_name".into(),
                puente::value::Plaintext::text("Secreto"),
            )],
        )
        .await
        .unwrap();
    wait_converged("one row", &[&c[TJ], &c[SD]]).await;
    let file = dir.join("out.csv");
    let (done, out, err) = cli(
        &c[TJ],
        &[
            "rows",
            "export",
            "residents",
            "--columns",
            "status,phone",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(!done);
    assert!(
        err.contains(
            "phone of table residents is sealed; an export shows sealed values only with --reveal"
        ),
        "{err}"
    );
    assert!(out.is_empty() && !file.exists(), "an error writes nothing");
    // San Diego holds no identity: reveal is refused, nothing is written.
    let (done, out, err) = cli(
        &c[SD],
        &[
            "rows",
            "export",
            "residents",
            "--reveal",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(!done);
    assert!(err.contains("mx"), "{err}");
    assert!(out.is_empty() && !file.exists());
    // Unknown tables and columns say what there is.
    let (_, _, err) = cli(&c[TJ], &["rows", "export", "nope"]);
    assert!(err.contains("unknown table `nope`"), "{err}");
    let (_, _, err) = cli(
        &c[TJ],
        &["rows", "export", "residents", "--columns", "shoe_size"],
    );
    assert!(err.contains("unknown column `shoe_size`"), "{err}");
    assert!(
        !std::fs::read_to_string(c[TJ].data_dir().join("audit.log"))
            .unwrap_or_default()
            .contains("export")
    );
}

/// Runs `puente ARGS` on a pseudo-terminal (util-linux `script`) and
/// returns everything the terminal showed.
fn on_a_terminal(office: &Office, args: &[&str]) -> String {
    let mut line = format!("{BIN} {}", args.join(" "));
    line.push_str(&format!(" --socket {}", office.socket.display()));
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("RUST_LOG", "off")
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_drawn_on_a_terminal_and_quiet_in_a_pipe() {
    let mut c = two_offices();
    c.start_all().await;
    let dir = c.path().to_path_buf();
    let input = dir.join("many.csv");
    std::fs::write(
        &input,
        residents_csv(3000)
            .replace(",\"Nombre", ",,\"Nombre")
            .replace(
                "id,arrival_date,status,full_name",
                "id,arrival_date,status,household_size,full_name",
            ),
    )
    .unwrap();
    let shown = on_a_terminal(
        &c[TJ],
        &["rows", "import", "residents", input.to_str().unwrap()],
    );
    assert!(shown.contains("sending residents"), "{shown}");
    assert!(
        shown.contains("/3,000 rows") || shown.contains("/3000 rows"),
        "{shown}"
    );
    assert!(
        shown.contains("imported 3000 rows into residents"),
        "{shown}"
    );
    let shown = on_a_terminal(&c[TJ], &["sync", "--wait"]);
    assert!(shown.contains("in sync with san-diego"), "{shown}");
    let shown = on_a_terminal(
        &c[TJ],
        &[
            "rows",
            "export",
            "residents",
            "-o",
            dir.join("e.csv").to_str().unwrap(),
        ],
    );
    assert!(shown.contains("exported 3000 rows of residents"), "{shown}");

    // In a pipe: the answer on stdout, nothing at all on stderr. A file
    // of several MiB goes in bounded chunks.
    let big = dir.join("big.csv");
    let mut text = String::from("id,title,description,capacity\n");
    for i in 0..40_000 {
        text.push_str(&format!(
            "ev-{i:05},Taller {i},Una descripción algo larga del taller número {i},{}\n",
            i % 50
        ));
    }
    assert!(text.len() > 2 << 20, "more than axum's default body limit");
    std::fs::write(&big, text).unwrap();
    let (done, out, err) = cli(
        &c[TJ],
        &["rows", "import", "outreach_events", big.to_str().unwrap()],
    );
    assert!(done, "{err}");
    assert_eq!(err, "");
    assert!(
        out.starts_with("imported 40000 rows into outreach_events"),
        "{out}"
    );
    let again = dir.join("again.csv");
    std::fs::write(&again, "id,status\nr-0001,moved_on\n").unwrap();
    let (done, out, err) = cli(
        &c[TJ],
        &["rows", "import", "residents", again.to_str().unwrap()],
    );
    assert!(done, "{err}");
    assert_eq!(err, "");
    assert!(out.starts_with("imported 1 row into residents"), "{out}");
    let (done, out, err) = cli(&c[TJ], &["sync", "--wait", "--json"]);
    assert!(done, "{err}");
    assert_eq!(err, "");
    let status: puente::node::status::Status = serde_json::from_str(&out).unwrap();
    assert_eq!(status.peers[0].in_sync, Some(true));
    let (done, out, err) = cli(&c[TJ], &["rows", "export", "outreach_events"]);
    assert!(done && err.is_empty(), "{err}");
    let head = "id,title,description,starts_at,ends_at,location,office,language,capacity,status\nev-00000,Taller 0,";
    assert!(out.starts_with(head), "{}", &out[..200.min(out.len())]);
    assert_eq!(out.lines().count(), 40_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_sealed_values_reach_no_file_of_either_office() {
    use support::{Control, Scan, plant_control};
    // Plain replicas and trace logs: the scan must see a shared value in
    // the WAL (its control) while no sealed value is anywhere.
    let mut c = Cluster::new_unencrypted(&[("tijuana", true), ("san-diego", false)]);
    c.link(TJ, SD);
    for o in &mut c.lab.offices {
        o.log_filter = "trace,quinn=debug,quinn_proto=debug,rustls=debug,hyper=debug".into();
    }
    c.start_all().await;
    let files = c.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let good = files.join("good.csv");
    std::fs::write(
        &good,
        "id,arrival_date,full_name,phone\nimp-0001,2031-07-19,Zyanya Import-Marker,+52 664 999 0001\nimp-0002,2031-07-20,Citlali Import-Marker,+52 664 999 0002\n",
    )
    .unwrap();
    ok(
        &c[SD],
        &["rows", "import", "residents", good.to_str().unwrap()],
    );
    let bad = files.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"imp-0003\", \"full_name\": \"Refused Import-Marker\", \"shoe_size\": 3}\n{\"id\": \"imp-0003\", \"phone\": \"+52 664 999 0003\"}\n",
    )
    .unwrap();
    let (done, _, err) = cli(
        &c[SD],
        &["rows", "import", "residents", bad.to_str().unwrap()],
    );
    assert!(!done && err.contains("bad lines"), "{err}");
    wait_converged("after the import", &[&c[TJ], &c[SD]]).await;
    // Tijuana exports them, revealed, into a file of the admin's (outside
    // both offices' folders).
    let out = files.join("revealed.csv");
    ok(
        &c[TJ],
        &[
            "rows",
            "export",
            "residents",
            "--reveal",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("Zyanya Import-Marker")
    );
    let needles = [
        "Zyanya Import-Marker",
        "Citlali Import-Marker",
        "+52 664 999 0001",
        "Refused Import-Marker",
        "+52 664 999 0003",
    ];
    for o in c.offices() {
        assert!(
            o.logs().contains("TRACE"),
            "{} logged nothing at trace",
            o.name
        );
        let planted = plant_control(&o.data_dir()).unwrap();
        Scan::forbidding(&needles)
            .control(Control::in_file("puente.db-wal", "2031-07-19"))
            .control(Control::in_file("daemon.log", "imp-0002"))
            .control(planted)
            .check(&o.dir)
            .unwrap_or_else(|e| panic!("{}: {e}", o.name));
    }
}

/// POSTs an import stream as it is, without the CLI.
async fn post(socket: &Path, body: &[u8]) -> (u16, String) {
    support::raw_request(socket, "POST", "/v1/tables/residents/import", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_stream_is_refused_whole() {
    let node = support::admin_node(Some(support::TEST_IDENTITY));
    let before = node.node.status().await.unwrap();
    // Good lines, then one that is not an import line: nothing is written.
    let (status, body) = post(&node.socket, b"{\"line\": 2, \"id\": \"r1\", \"cells\": {\"status\": \"intake\"}}\n{\"line\": 3, \"oops\": 1}\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nothing was written"), "{body}");
    let (status, body) = post(
        &node.socket,
        b"{\"line\": 2, \"id\": \"r1\", \"cells\": {\"status\": \"intake\"}}\nnot json at all\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A row longer than a line may be.
    let long = format!(
        "{{\"line\": 2, \"id\": \"r1\", \"cells\": {{\"status\": \"{}\"}}}}",
        "x".repeat(puente::bulk::MAX_IMPORT_LINE + 10)
    )
    .into_bytes();
    let (status, body) = post(&node.socket, &long).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("longer than 1024 KiB"), "{body}");
    let after = node.node.status().await.unwrap();
    assert_eq!((after.head, after.digest), (before.head, before.digest));
    // The same stream without the bad line is written whole.
    let (status, body) = post(&node.socket, b"{\"line\": 2, \"id\": \"r1\", \"cells\": {\"status\": \"intake\"}}\n{\"line\": 3, \"id\": \"r2\", \"cells\": {\"full_name\": \"Nombre\"}}").await;
    assert_eq!(status, 200, "{body}");
    let report: puente::bulk::ImportReport = serde_json::from_str(&body).unwrap();
    assert!(report.written && report.rows == 2, "{report:?}");
    assert_eq!(node.node.status().await.unwrap().rows["residents"], 2);
    node.stop().await;
}

/// The cells of a CSV file as Python's csv module reads them.
fn python_csv(path: &Path) -> Vec<Vec<String>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))",
        ])
        .arg(path)
        .output()
        .expect("python3 must be installed (CI installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_inert_and_never_written_into_a_file_someone_else_prepared() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut c = two_offices();
    c.start_all().await;
    let dir = c.path().to_path_buf();
    // A title written at the other office as a live formula.
    let formula = "=HYPERLINK(\"http://127.0.0.1/?\"&A1,\"Ver\")";
    c[SD]
        .put(
            "outreach_events",
            "ev-f",
            &[("title", formula), ("office", "san-diego")],
        )
        .await;
    c[SD]
        .put(
            "outreach_events",
            "ev-g",
            &[("title", "-5"), ("office", "san-diego")],
        )
        .await;
    wait_converged("after the writes", &[&c[TJ], &c[SD]]).await;
    let out = dir.join("events.csv");
    let path = out.to_str().unwrap();
    ok(
        &c[TJ],
        &[
            "rows",
            "export",
            "outreach_events",
            "--columns",
            "title",
            "-o",
            path,
        ],
    );
    let cells = python_csv(&out);
    assert_eq!(cells[0], ["id", "title"]);
    assert_eq!(cells[1], ["ev-f", &format!("'{formula}")]);
    assert_eq!(cells[2], ["ev-g", "'-5"]);
    assert_eq!(puente::node::fsutil::mode_of(&out).unwrap(), 0o600);

    // An existing file, even one of our own, is refused without --force.
    let export_to = |target: &Path, force: bool| {
        let mut args = vec![
            "rows",
            "export",
            "outreach_events",
            "-o",
            target.to_str().unwrap(),
        ];
        if force {
            args.push("--force");
        }
        cli(&c[TJ], &args)
    };
    let (done, _, err) = export_to(&out, false);
    assert!(!done);
    assert!(
        err.contains("already exists, so nothing was exported") && err.contains("--force"),
        "{err}"
    );
    // A world-writable file another user prepared: refused, untouched.
    let prepared = dir.join("prepared.csv");
    std::fs::write(&prepared, "theirs\n").unwrap();
    std::fs::set_permissions(&prepared, std::fs::Permissions::from_mode(0o666)).unwrap();
    let other_user = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if other_user {
        std::os::unix::fs::chown(&prepared, Some(65534), Some(65534)).unwrap();
    }
    let (done, _, err) = export_to(&prepared, false);
    assert!(!done && err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&prepared).unwrap(), "theirs\n");
    // A symlink, dangling or not: refused, and nothing made at its target.
    let target = dir.join("target.csv");
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (done, _, err) = export_to(&link, false);
    assert!(!done && err.contains("already exists"), "{err}");
    assert!(!target.exists(), "the symlink was followed");

    // --force: a new 0600 file of ours replaces the prepared one…
    let (done, _, err) = export_to(&prepared, true);
    assert!(done, "{err}");
    let meta = std::fs::metadata(&prepared).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata("/proc/self").unwrap().uid());
    assert!(std::fs::read_to_string(&prepared).unwrap().contains("ev-f"));
    // …and the symlink itself, not what it points to.
    std::fs::write(&target, "kept\n").unwrap();
    let (done, _, err) = export_to(&link, true);
    assert!(done, "{err}");
    assert!(
        !std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
    assert_eq!(puente::node::fsutil::mode_of(&link).unwrap(), 0o600);
    // No temp file is left beside them.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("puente-export"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
