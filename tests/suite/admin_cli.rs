//! The CLI side of the admin socket: the `col=value` / `col:=JSON`
//! assignment parser, and the remote commands run against a live socket.

use crate::support;

use puente::admin::api::Cell;
use puente::cli::remote;
use puente::value::{Plaintext, Value};
use support::*;

fn parsed(s: &str) -> (String, Value) {
    let (column, value) = remote::parse_assignment(s).unwrap();
    (column, value.expose().clone())
}

#[test]
fn assignments_parse_as_text_or_typed_json() {
    assert_eq!(
        parsed("title=Taller"),
        ("title".into(), Value::Text("Taller".into()))
    );
    // Only the first `=` separates; the rest is the value.
    assert_eq!(
        parsed("notes=a=b"),
        ("notes".into(), Value::Text("a=b".into()))
    );
    assert_eq!(
        parsed("title="),
        ("title".into(), Value::Text(String::new()))
    );
    assert_eq!(
        parsed("capacity:=25"),
        ("capacity".into(), Value::Integer(25))
    );
    assert_eq!(parsed("ratio:=2.5"), ("ratio".into(), Value::Real(2.5)));
    assert_eq!(parsed("phone:=null"), ("phone".into(), Value::Null));
    assert_eq!(
        parsed(r#"title:="25""#),
        ("title".into(), Value::Text("25".into()))
    );
    // `col=25` is text, as written.
    assert_eq!(
        parsed("capacity=25"),
        ("capacity".into(), Value::Text("25".into()))
    );
}

#[test]
fn bad_assignments_say_what_to_write_and_never_echo_the_value() {
    let err = |s: &str| remote::parse_assignment(s).unwrap_err().to_string();
    let e = err("Secret-Value");
    assert!(e.contains("no `=`") && e.contains("COLUMN=TEXT"), "{e}");
    let e = err("=Secret-Value");
    assert!(e.contains("not a column name"), "{e}");
    let e = err("full name=Secret-Value");
    assert!(e.contains("not a column name"), "{e}");
    let e = err("phone:=+52 Secret-Value");
    assert!(
        e.starts_with("column phone:") && e.contains("not valid JSON"),
        "{e}"
    );
    let e = err("flag:=true");
    assert_eq!(e, "column flag: a value must be a string, a number or null");
    let e = err("x:=[\"Secret-Value\"]");
    assert!(e.starts_with("column x:"), "{e}");
    for s in [
        "Secret-Value",
        "=Secret-Value",
        "phone:=+52 Secret-Value",
        "x:=[\"Secret-Value\"]",
    ] {
        assert!(!err(s).contains("Secret"), "{}", err(s));
    }
    assert!(remote::parse_assignment("capacity:=").is_err());
    assert!(remote::parse_assignment("capacity:=1 2").is_err());
}

/// `puente ARGS` against a socket: (success, stdout, stderr).
fn puente(socket: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_puente"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env("RUST_LOG", "off")
        // Times show in the local zone: fix it.
        .env("TZ", "UTC")
        .output()
        .expect("run puente");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The remote commands as a person runs them: the real binary against a
/// live socket (served by a runtime of the test's own), each output read
/// back as it shows in a terminal.
#[test]
fn remote_commands_work_against_a_live_socket() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = rt.block_on(async { admin_node(Some(TEST_IDENTITY)) });
    let s = n.socket.clone();
    let ok = |args: &[&str]| {
        let (ok, out, err) = puente(&s, args);
        assert!(ok, "puente {args:?} failed: {err}");
        assert_eq!(err, "", "puente {args:?} wrote to stderr");
        out
    };
    let failed = |args: &[&str]| {
        let (ok, out, err) = puente(&s, args);
        assert!(!ok, "puente {args:?} succeeded: {out}");
        assert_eq!(out, "", "puente {args:?} failed but wrote to stdout");
        err
    };

    // 1. status, as a summary: the uptime is the only line that varies.
    let status = ok(&["status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert!(
        lines[0].starts_with("node        tijuana  (puente 0.1.0, up "),
        "{status}"
    );
    assert_eq!(
        lines[1..].join("\n"),
        format!(
            "time zone   {}\n",
            puente::config::node::office_zone(None).1
        ) + "head        0\n\
         digest      0000000000000000…\n\
         rows        outreach_events 0, residents 0\n\
         sealed      0 cells\n\
         can unseal  yes: mx\n\
         at rest     NOT encrypted: anyone who copies the data dir can read the replica (`puente storage encrypt` encrypts it)\n\
         peers       none pinned (`puente peer add` pins one)"
    );
    // 2. status --json, for scripts.
    let v: serde_json::Value = serde_json::from_str(&ok(&["status", "--json"])).unwrap();
    assert_eq!(v["node"], "tijuana");
    assert_eq!(v["can_unseal"], serde_json::json!(["mx"]));
    assert_eq!(v["rows"]["residents"], 0);

    // 3. put: text, a typed number, null. The node's clock is fixed, so
    // the stamps are known.
    assert_eq!(
        ok(&[
            "rows",
            "put",
            "residents",
            "r1",
            "full_name=Ana",
            "household_size:=4",
            "phone:=null",
        ]),
        "wrote residents/r1 (hlc 1000.0, sequence 1)\n"
    );
    // 4. put --json.
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rows",
        "put",
        "residents",
        "r2",
        "full_name=Ana",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": "r2", "hlc": "1000.1", "seq": 2})
    );

    // 5. get: sealed cells stay sealed without --reveal.
    let r1_sealed = "residents/r1  (updated 1970-01-01 00:00:01 UTC by tijuana)\n\
                     \x20 arrival_date    (none)\n\
                     \x20 household_size  4\n\
                     \x20 status          (none)\n\
                     \x20 full_name       ‹sealed›\n\
                     \x20 birth_date      (none)\n\
                     \x20 nationality     (none)\n\
                     \x20 phone           ‹sealed›\n\
                     \x20 case_notes      (none)\n";
    assert_eq!(ok(&["rows", "get", "residents", "r1"]), r1_sealed);
    // 6. get --reveal: the value, and a null phone shows as none.
    assert_eq!(
        ok(&["rows", "get", "residents", "r1", "--reveal"]),
        r1_sealed
            .replace("full_name       ‹sealed›", "full_name       Ana")
            .replace("phone           ‹sealed›", "phone           (none)")
    );
    // 7. get --reveal --json.
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rows",
        "get",
        "residents",
        "r1",
        "--reveal",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["columns"]["full_name"], "Ana");
    assert_eq!(v["columns"]["household_size"], 4);
    assert_eq!(v["columns"]["phone"], serde_json::Value::Null);

    // 8. list, one page of one row as a table, saying how to get the next.
    assert_eq!(
        ok(&["rows", "list", "residents", "--limit", "1"]),
        "id  arrival_date  household_size  status  full_name  birth_date  nationality  phone     case_notes  updated               by\n\
         r1                4                       ‹sealed›                            ‹sealed›              1970-01-01 00:00 UTC  tijuana\n\
         \n\
         1 row; more follow: pass --after r1 for the next page\n"
    );
    // 9. list --after --reveal --json: the last page.
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rows",
        "list",
        "residents",
        "--after",
        "r1",
        "--reveal",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["rows"][0]["id"], "r2");
    assert_eq!(v["rows"][0]["columns"]["full_name"], "Ana");
    assert_eq!(v["next"], serde_json::Value::Null);
    assert_eq!(
        ok(&["rows", "list", "outreach_events"]),
        "no rows in outreach_events\n"
    );

    // 10. delete, saying it is for good.
    assert_eq!(
        ok(&["rows", "delete", "residents", "r2"]),
        "deleted residents/r2 for good (hlc 1000.2, sequence 3); the id can never be written again\n"
    );
    // 11. sync, in words and as JSON.
    assert_eq!(
        ok(&["sync"]),
        "asked the daemon to contact its peers now; `puente status` shows progress\n"
    );
    assert_eq!(ok(&["sync", "--json"]), "{\n  \"ok\": true\n}\n");

    // What the daemon holds now, read through the library.
    let row = rt
        .block_on(n.client().get_row("residents", "r1", true))
        .unwrap();
    assert_eq!(row.cell("full_name"), Some(&Cell::Value(text("Ana"))));
    assert_eq!(
        row.cell("household_size"),
        Some(&Cell::Value(Plaintext::new(Value::Integer(4))))
    );

    // Mistakes: one sentence on stderr, nothing on stdout, exit 1.
    assert_eq!(
        failed(&["rows", "get", "residents", "r2"]),
        "error: row residents/r2 was deleted; deleted ids are never reused, so write the row under a new id (HTTP 404)\n"
    );
    let e = failed(&["rows", "put", "residents", "r3"]);
    assert!(
        e.contains("required arguments were not provided") && e.contains("<ASSIGNMENTS>"),
        "{e}"
    );
    let e = remote::rows_put(&s, "residents", "r3", &[], false).unwrap_err();
    assert!(e.to_string().contains("at least one column"), "{e}");

    rt.block_on(n.stop());
    let e = failed(&["status"]);
    assert_eq!(
        e,
        format!(
            "error: cannot reach the puente daemon at {}: No such file or directory (os error 2); is it running (systemctl status puente)?\n",
            s.display()
        )
    );
}
