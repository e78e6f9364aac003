//! The CLI side of the admin socket: the `col=value` / `col:=JSON`
//! assignment parser, and the remote commands run against a live socket.

mod support;

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

/// The remote commands make their own runtime, so the server runs on a
/// runtime of the test's own, on other threads.
#[test]
fn remote_commands_work_against_a_live_socket() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = rt.block_on(async { admin_node(Some(TEST_IDENTITY)) });
    let s = n.socket.clone();

    remote::status(&s, false).unwrap();
    remote::status(&s, true).unwrap();
    let assignments = [
        "full_name=Ana".to_string(),
        "household_size:=4".to_string(),
        "phone:=null".to_string(),
    ];
    remote::rows_put(&s, "residents", "r1", &assignments, false).unwrap();
    remote::rows_put(&s, "residents", "r2", &assignments[..1], true).unwrap();
    remote::rows_get(&s, "residents", "r1", false, false).unwrap();
    remote::rows_get(&s, "residents", "r1", true, true).unwrap();
    remote::rows_list(&s, "residents", None, Some(1), false, false).unwrap();
    remote::rows_list(&s, "residents", Some("r1"), None, true, true).unwrap();
    remote::rows_delete(&s, "residents", "r2", false).unwrap();
    remote::sync_now(&s, true).unwrap();

    let row = rt
        .block_on(n.client().get_row("residents", "r1", true))
        .unwrap();
    assert_eq!(row.cell("full_name"), Some(&Cell::Value(text("Ana"))));
    assert_eq!(
        row.cell("household_size"),
        Some(&Cell::Value(Plaintext::new(Value::Integer(4))))
    );
    assert_eq!(
        row.cell("phone"),
        Some(&Cell::Value(Plaintext::new(Value::Null)))
    );

    let e = remote::rows_get(&s, "residents", "r2", false, false).unwrap_err();
    assert!(
        e.to_string().contains("was deleted") && e.to_string().contains("HTTP 404"),
        "{e}"
    );
    let e = remote::rows_put(&s, "residents", "r3", &[], false).unwrap_err();
    assert!(e.to_string().contains("at least one column"), "{e}");

    rt.block_on(n.stop());
    let e = remote::status(&s, false).unwrap_err();
    assert!(e.to_string().contains("is it running"), "{e}");
}
