//! Tests of `config::rights` (a separate file to keep rights.rs short).
//!
//! Owns: rights sections that are right, wrong and at their limits, and
//! what each office may do under them.
//! Must not: touch files.

use std::path::Path;

use super::*;
use crate::config::Schema;

fn parse(text: &str) -> Result<Schema, ConfigError> {
    Schema::parse(Path::new("schema.toml"), text)
}

const BASE: &str = "offices = [\"tijuana\", \"san-diego\"]\n\
[tables.residents.columns]\nstatus = \"shared\"\nnotes = \"shared\"\n\
[tables.events.columns]\ntitle = \"shared\"\n";

/// The shipped schema as it was before rights existed.
const SCHEMA_0_1: &str = "[groups]\nmx = []\n\
[tables.outreach_events.columns]\ntitle = \"shared\"\ndescription = \"shared\"\nstarts_at = \"shared\"\nends_at = \"shared\"\nlocation = \"shared\"\noffice = \"shared\"\nlanguage = \"shared\"\ncapacity = \"shared\"\nstatus = \"shared\"\n\
[tables.residents.columns]\narrival_date = \"shared\"\nhousehold_size = \"shared\"\nstatus = \"shared\"\nfull_name = { sealed = \"mx\" }\nbirth_date = { sealed = \"mx\" }\nnationality = { sealed = \"mx\" }\nphone = { sealed = \"mx\" }\ncase_notes = { sealed = \"mx\" }\n";

#[test]
fn a_schema_without_rights_keeps_the_hash_it_had_before_rights() {
    let schema = parse(SCHEMA_0_1).unwrap();
    assert!(!schema.rights.is_active());
    assert!(!schema.canonical().contains("rights"));
    assert!(!schema.canonical().contains("offices"));
    // The hash puente 0.1.0 computed for its shipped schema.
    assert_eq!(
        schema.hash(),
        "074c015a1a796430717993b75287896681d35620913078172ceacc27dcb593bc"
    );
    // The shipped schema with its rights taken away is the shipped file
    // without its `offices` line and rights section.
    assert_eq!(
        Schema::default_schema().without_rights().hash(),
        shipped_without_rights().hash()
    );
    assert_ne!(
        Schema::default_schema().hash(),
        shipped_without_rights().hash()
    );
}

/// The shipped schema file with `offices` and its rights sections cut out.
fn shipped_without_rights() -> Schema {
    let text = crate::config::schema::DEFAULT_SCHEMA;
    let text: String = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("offices ="))
        .collect();
    let cut = text.find("[tables.residents.rights]").unwrap();
    parse(&text[..cut]).unwrap()
}

#[test]
fn the_shipped_schema_lets_both_offices_edit_events_and_only_tijuana_change_residents() {
    let schema = Schema::default_schema();
    let r = &schema.rights;
    assert!(r.is_active());
    assert_eq!(r.offices(), ["san-diego", "tijuana"]);
    let (tj, sd) = (r.actor("tijuana"), r.actor("san-diego"));
    let events = schema.table_index("outreach_events").unwrap();
    let residents = schema.table_index("residents").unwrap();
    let case_notes = schema.tables[residents].column_index("case_notes");
    for actor in [tj, sd, Actor::Unknown] {
        for action in [
            WriteAction::Insert,
            WriteAction::Update,
            WriteAction::Delete,
        ] {
            assert!(r.allows(events, action, Some(0), actor));
        }
        assert!(r.allows(residents, WriteAction::Insert, None, actor));
    }
    assert!(r.allows(residents, WriteAction::Update, case_notes, tj));
    assert!(r.allows(residents, WriteAction::Delete, None, tj));
    assert!(!r.allows(residents, WriteAction::Update, case_notes, sd));
    assert!(!r.allows(residents, WriteAction::Delete, None, sd));
    assert!(!r.allows(residents, WriteAction::Delete, None, Actor::Unknown));
    assert_eq!(r.actor("ensenada"), Actor::Unknown);
    let table = &schema.tables[residents];
    assert_eq!(
        r.refusal(table, residents, WriteAction::Delete, &[], "san-diego"),
        "san-diego may not delete rows of residents (rights: delete = tijuana)"
    );
    assert_eq!(
        r.refusal(
            table,
            residents,
            WriteAction::Update,
            &[case_notes.unwrap()],
            "san-diego"
        ),
        "san-diego may not update case_notes of residents (rights: update = tijuana)"
    );
    let lines = schema.canonical();
    for line in [
        "offices san-diego,tijuana\n",
        "rights residents insert san-diego,tijuana\n",
        "rights residents update tijuana\n",
        "rights residents delete tijuana\n",
    ] {
        assert!(lines.contains(line), "{line:?} missing in\n{lines}");
    }
    // Rights do not change the on-disk layout.
    assert_eq!(schema.layout_hash(), shipped_without_rights().layout_hash());
}

#[test]
fn column_rights_override_update_and_an_unknown_office_gets_what_every_office_may() {
    let text = format!(
        "{BASE}[tables.residents.rights]\nupdate = [\"tijuana\"]\ndelete = []\n\
         [tables.residents.rights.columns]\nstatus = [\"san-diego\", \"tijuana\"]\n"
    );
    let schema = parse(&text).unwrap();
    let r = &schema.rights;
    let t = schema.table_index("residents").unwrap();
    let status = schema.tables[t].column_index("status");
    let notes = schema.tables[t].column_index("notes");
    let sd = r.actor("san-diego");
    assert!(r.allows(t, WriteAction::Update, status, sd));
    assert!(r.allows(t, WriteAction::Update, status, Actor::Unknown));
    assert!(!r.allows(t, WriteAction::Update, notes, sd));
    assert!(!r.allows(t, WriteAction::Update, notes, Actor::Unknown));
    assert!(
        r.allows(t, WriteAction::Insert, None, Actor::Unknown),
        "no insert key: everyone"
    );
    assert!(
        !r.allows(t, WriteAction::Delete, None, r.actor("tijuana")),
        "delete = []: no one"
    );
    assert_eq!(
        r.refusal(&schema.tables[t], t, WriteAction::Delete, &[], "tijuana"),
        "tijuana may not delete rows of residents (rights: delete = no office)"
    );
    let canonical = schema.canonical();
    assert!(
        canonical.contains("rights residents delete -\n"),
        "{canonical}"
    );
    assert!(canonical.contains("rights residents update status san-diego,tijuana\n"));
    let events = schema.table_index("events").unwrap();
    assert!(!r.restricts(events));
    assert!(r.restricts(t));
}

#[test]
fn the_hash_changes_with_offices_and_each_right_but_not_with_their_order() {
    let with = |rights: &str| parse(&format!("{BASE}{rights}")).unwrap();
    let a = with("[tables.residents.rights]\ndelete = [\"tijuana\"]\n");
    let variants = [
        with("[tables.residents.rights]\ndelete = [\"san-diego\"]\n"),
        with("[tables.residents.rights]\ninsert = [\"tijuana\"]\n"),
        with(
            "[tables.residents.rights]\ndelete = [\"tijuana\"]\n[tables.residents.rights.columns]\nnotes = []\n",
        ),
        parse(BASE).unwrap(),
        parse(&BASE.replace("\"san-diego\"", "\"ensenada\"")).unwrap(),
    ];
    for v in &variants {
        assert_ne!(a.hash(), v.hash(), "{}", v.canonical());
    }
    let reordered = parse(&format!(
        "{}[tables.residents.rights]\ndelete = [\"tijuana\"]\n",
        BASE.replace(
            "[\"tijuana\", \"san-diego\"]",
            "[\"san-diego\", \"tijuana\"]"
        )
    ))
    .unwrap();
    assert_eq!(a.hash(), reordered.hash());
    // An empty rights section restricts nothing.
    let open = with("[tables.residents.rights]\n");
    assert!(!open.rights.is_active());
}

#[test]
fn bad_rights_are_errors_by_file_and_line() {
    let cases = [
        (
            format!("{BASE}[tables.residents.rights]\ndelete = [\"tijuna\"]\n"),
            "schema.toml:8:",
            "unknown office `tijuna`; the schema's offices are: san-diego, tijuana",
        ),
        (
            format!("{BASE}[tables.residents.rights.columns]\ncase_notes = [\"tijuana\"]\n"),
            "schema.toml:8:",
            "tables.residents.rights.columns.case_notes: unknown column `case_notes`; the table has: notes, status",
        ),
        (
            format!("{BASE}[tables.residents.rights]\nedit = [\"tijuana\"]\n"),
            "schema.toml:8:",
            "unknown field `edit`",
        ),
        (
            format!("{BASE}[tables.nope.rights]\ndelete = [\"tijuana\"]\n"),
            "schema.toml:",
            "tables.nope: the table has no columns",
        ),
        (
            BASE.replace("offices = [\"tijuana\", \"san-diego\"]\n", "")
                + "[tables.residents.rights]\ndelete = [\"tijuana\"]\n",
            "schema.toml:",
            "rights name offices, so the schema must list them",
        ),
        (
            BASE.replace("\"san-diego\"]", "\"tijuana\"]"),
            "schema.toml:1:",
            "offices: `tijuana` is listed twice",
        ),
        (
            BASE.replace("\"san-diego\"]", "\"San Diego\"]"),
            "schema.toml:1:",
            "offices: `San Diego` is not a node name",
        ),
    ];
    for (text, at, message) in cases {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with(at), "{e} (wanted {at})");
        assert!(e.contains(message), "{e}\n(wanted {message})");
    }
}
