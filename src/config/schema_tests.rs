//! Tests of `config::schema` (a separate file to keep schema.rs short).
//!
//! Owns: schema files that are right, wrong and at their limits, and the
//! canonical hash.
//! Must not: touch files but the one built-in schema.

use super::*;

const KEY_A: &str = "age1ntxrlk5rx0dn8tc9jesr4j0kp5sckg37xrmkqztl383w9ws9avxq65agtw";
const KEY_B: &str = "age1s3qh2ae5svz38yeexsl600cyzq6663seetmnuwjt6vzu9w0lef9qjaraxf";

fn parse(text: &str) -> Result<Schema, ConfigError> {
    Schema::parse(Path::new("schema.toml"), text)
}

#[test]
fn the_built_in_schema_is_valid_and_has_the_first_users_tables() {
    let schema = Schema::default_schema();
    let events = schema.table("outreach_events").unwrap();
    for c in [
        "title",
        "description",
        "starts_at",
        "ends_at",
        "location",
        "office",
        "language",
        "capacity",
        "status",
    ] {
        let col = &events.columns[events.column_index(c).unwrap()];
        assert_eq!(col.privacy, Privacy::Shared, "{c}");
    }
    let residents = schema.table("residents").unwrap();
    for c in [
        "full_name",
        "birth_date",
        "nationality",
        "phone",
        "case_notes",
    ] {
        let col = &residents.columns[residents.column_index(c).unwrap()];
        assert_eq!(col.group(), Some("mx"), "{c}");
    }
    for c in ["arrival_date", "household_size", "status"] {
        assert!(!residents.columns[residents.column_index(c).unwrap()].is_sealed());
    }
    assert_eq!(events.file_order[0], events.column_index("title").unwrap());
}

#[test]
fn hash_ignores_order_comments_and_whitespace() {
    let a = format!(
        "[groups]\nmx = [\"{KEY_A}\", \"{KEY_B}\"]\n[tables.t.columns]\na = \"shared\"\nb = {{ sealed = \"mx\" }}\n[tables.u.columns]\nx = \"shared\"\n"
    );
    let b = format!(
        "# comment\n[tables.u.columns]\nx   =   \"shared\"\n\n[tables.t.columns]\nb = {{sealed=\"mx\"}} # why\na = \"shared\"\n[groups]\nmx = [ \"{KEY_B}\",\n \"{KEY_A}\" ]\n"
    );
    assert_eq!(parse(&a).unwrap().hash(), parse(&b).unwrap().hash());
}

#[test]
fn hash_changes_with_tables_columns_privacy_and_recipients() {
    let base = format!(
        "[groups]\nmx = [\"{KEY_A}\"]\n[tables.t.columns]\na = \"shared\"\nb = {{ sealed = \"mx\" }}\n"
    );
    let h = parse(&base).unwrap();
    let variants = [
        base.replace("[tables.t.", "[tables.t2."),
        base.replace("a = ", "a2 = "),
        base.replace("a = \"shared\"", "a = { sealed = \"mx\" }"),
        base.replace(KEY_A, KEY_B),
        format!("{base}c = \"shared\"\n"),
    ];
    for v in variants {
        let other = parse(&v).unwrap();
        assert_ne!(h.hash(), other.hash(), "{v}");
    }
    // Recipients do not change the on-disk layout.
    assert_eq!(
        h.layout_hash(),
        parse(&base.replace(KEY_A, KEY_B)).unwrap().layout_hash()
    );
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn bad_schemas_name_file_line_and_key() {
    let e = error_of("[tables.t.columns]\na = \"shared\"\nb = { sealed = \"us\" }\n");
    assert!(e.starts_with("schema.toml:3:"), "{e}");
    assert!(
        e.contains("tables.t.columns.b") && e.contains("unknown group `us`"),
        "{e}"
    );

    let e = error_of("[groups]\nmx = [\"age1nope\"]\n[tables.t.columns]\na = \"shared\"\n");
    assert!(
        e.starts_with("schema.toml:2:") && e.contains("not an age X25519 recipient"),
        "{e}"
    );

    let e = error_of("[tables.t.columns]\na = \"shared\"\na = \"shared\"\n");
    assert!(
        e.starts_with("schema.toml:3:") && e.contains("duplicate"),
        "{e}"
    );

    let e = error_of("[tables.t]\ncolumns = { a = \"shared\" }\n[tables.t]\n");
    assert!(e.contains("schema.toml:3:"), "{e}");

    let e = error_of("[tables.t.columns]\nid = \"shared\"\n");
    assert!(
        e.starts_with("schema.toml:2:") && e.contains("reserved"),
        "{e}"
    );

    let e = error_of("[tables.t]\ncolums = {}\n");
    assert!(
        e.starts_with("schema.toml:2:") && e.contains("colums"),
        "{e}"
    );

    let e = error_of("[tables.t.columns]\na = \"public\"\n");
    assert!(
        e.starts_with("schema.toml:2:") && e.contains("public"),
        "{e}"
    );

    let e = error_of("[tables.t.columns\n");
    assert!(e.starts_with("schema.toml:1:"), "{e}");

    let e = error_of("[tables.Bad.columns]\na = \"shared\"\n");
    assert!(e.contains("tables.Bad"), "{e}");
}

#[test]
fn every_schema_error_is_one_line() {
    for text in [
        "[tables.t.columns]\na = \"shared\"\na = \"shared\"\n",
        "[tables.t.columns\n",
        "[tables.t]\ncolums = {}\n",
        "[groups]\nmx = [\"age1nope\"]\n[tables.t.columns]\na = \"shared\"\n",
        "[tables.t.columns]\na = { sealed = 3 }\n",
        "",
    ] {
        let e = error_of(text);
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn a_column_may_be_required_and_the_mark_is_checked() {
    let s = parse(
        "[groups]\nmx = []\n[tables.events.columns]\ntitle = { required = true }\nnote = { type = \"text\", required = false }\nwho = { sealed = \"mx\", required = true }\n",
    )
    .unwrap();
    let t = s.table("events").unwrap();
    let req = |c: &str| t.columns[t.column_index(c).unwrap()].required;
    assert!(req("title") && req("who") && !req("note"));
    assert!(s.canonical().contains("column title shared required\n"));
    assert!(s.canonical().contains("column who sealed mx required\n"));
    assert!(s.canonical().contains("column note shared type text\n"));
    let e = error_of("[tables.events.columns]\ntitle = { required = \"yes\" }\n");
    assert!(
        e.contains(":2:") && e.contains("`required` is true or false"),
        "{e}"
    );
    let e = error_of("[tables.events.columns]\ntitle = { mandatory = true }\n");
    assert!(
        e.contains("`sealed`, `type`, `one_of` and `required`"),
        "{e}"
    );
}
