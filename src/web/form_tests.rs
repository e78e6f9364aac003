//! Unit tests of the event form (a POSIX Pacific zone, fixed dates).
//!
//! Owns: forms that are right, wrong and at their limits, and the columns
//! an edit changes.
//! Must not: read the clock or the machine's time zone.

use super::*;

fn pacific() -> TimeZone {
    TimeZone::posix("PST8PDT,M3.2.0,M11.1.0").unwrap()
}

fn offices() -> Vec<String> {
    vec!["tijuana".into(), "san-diego".into()]
}

fn good() -> EventInput {
    EventInput {
        title: " Taller de derechos ".into(),
        description: "Traer identificación".into(),
        start_date: "2026-12-01".into(),
        start_time: "10:00".into(),
        end_date: "".into(),
        end_time: "12:30".into(),
        location: "Casa del Migrante".into(),
        office: "tijuana".into(),
        language: "es,en".into(),
        capacity: "25".into(),
        status: "scheduled".into(),
    }
}

fn value<'a>(cells: &'a [(&str, Value)], column: &str) -> &'a Value {
    &cells.iter().find(|(c, _)| *c == column).unwrap().1
}

#[test]
fn a_good_form_becomes_columns_with_the_zone_offset() {
    let cells = validate(&good(), &pacific(), &offices()).unwrap();
    assert_eq!(
        value(&cells, "title"),
        &Value::Text("Taller de derechos".into())
    );
    assert_eq!(
        value(&cells, "starts_at"),
        &Value::Text("2026-12-01T10:00:00-08:00".into())
    );
    // An end time alone ends the same day.
    assert_eq!(
        value(&cells, "ends_at"),
        &Value::Text("2026-12-01T12:30:00-08:00".into())
    );
    assert_eq!(value(&cells, "capacity"), &Value::Integer(25));
    // Summer time has another offset.
    let mut june = good();
    june.start_date = "2026-06-01".into();
    let cells = validate(&june, &pacific(), &offices()).unwrap();
    assert_eq!(
        value(&cells, "starts_at"),
        &Value::Text("2026-06-01T10:00:00-07:00".into())
    );
    // Empty optional fields are null.
    let mut bare = good();
    (bare.end_time, bare.capacity, bare.description) =
        (String::new(), String::new(), String::new());
    let cells = validate(&bare, &pacific(), &offices()).unwrap();
    assert_eq!(value(&cells, "ends_at"), &Value::Null);
    assert_eq!(value(&cells, "capacity"), &Value::Null);
}

#[test]
fn each_rule_has_its_error() {
    let check = |f: &dyn Fn(&mut EventInput), want: FieldError| {
        let mut input = good();
        f(&mut input);
        let errors = validate(&input, &pacific(), &offices()).unwrap_err();
        assert!(errors.contains(&want), "{errors:?} lacks {want:?}");
    };
    check(&|i| i.title = "  ".into(), FieldError::Required("title"));
    check(
        &|i| i.start_date = "".into(),
        FieldError::Required("start_date"),
    );
    check(
        &|i| i.start_date = "1/12/2026".into(),
        FieldError::BadDate("start_date"),
    );
    check(
        &|i| i.start_time = "10am".into(),
        FieldError::BadTime("start_time"),
    );
    check(&|i| i.end_time = "09:00".into(), FieldError::EndBeforeStart);
    check(&|i| i.end_time = "10:00".into(), FieldError::EndBeforeStart);
    check(
        &|i| {
            i.end_date = "2026-11-30".into();
            i.end_time = "23:00".into();
        },
        FieldError::EndBeforeStart,
    );
    check(
        &|i| i.end_date = "2026-13-01".into(),
        FieldError::BadDate("end_date"),
    );
    check(
        &|i| i.office = "ensenada".into(),
        FieldError::UnknownOffice("ensenada".into()),
    );
    check(&|i| i.office = "".into(), FieldError::Required("office"));
    check(
        &|i| i.capacity = "veinte".into(),
        FieldError::CapacityNotNumber,
    );
    check(
        &|i| i.capacity = "2.5".into(),
        FieldError::CapacityNotNumber,
    );
    check(
        &|i| i.capacity = "-1".into(),
        FieldError::CapacityOutOfRange,
    );
    check(
        &|i| i.title = "x".repeat(201),
        FieldError::TooLong("title", MAX_TITLE),
    );
    check(
        &|i| i.status = "maybe".into(),
        FieldError::UnknownChoice("status"),
    );
    check(
        &|i| i.language = "fr".into(),
        FieldError::UnknownChoice("language"),
    );
    // A time that does not exist (the spring-forward gap) still places.
    let mut gap = good();
    (gap.start_date, gap.start_time, gap.end_time) =
        ("2026-03-08".into(), "02:30".into(), "".into());
    assert!(validate(&gap, &pacific(), &offices()).is_ok());
}

#[test]
fn unknown_and_sealed_fields_refuse_the_whole_form() {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let sealed = vec!["full_name".to_string()];
    let (csrf, input) = read(&pairs(&[("csrf", "abc"), ("title", "T")]), &sealed).unwrap();
    assert_eq!((csrf.as_deref(), input.title.as_str()), (Some("abc"), "T"));
    let (csrf, _) = read(&pairs(&[("title", "T")]), &sealed).unwrap();
    assert_eq!(csrf, None);
    assert_eq!(
        read(&pairs(&[("full_name", "x")]), &sealed).unwrap_err(),
        FormRefusal::SealedColumn("full_name".into())
    );
    assert_eq!(
        read(&pairs(&[("is_admin", "1")]), &sealed).unwrap_err(),
        FormRefusal::UnknownField("is_admin".into())
    );
    assert_eq!(
        read(&pairs(&[("title", "a"), ("title", "b")]), &sealed).unwrap_err(),
        FormRefusal::Repeated("title".into())
    );
}

#[test]
fn an_edit_writes_only_what_changed() {
    let tz = pacific();
    let stored = EventRow {
        id: "e1".into(),
        title: Some("Taller de derechos".into()),
        description: Some("Traer identificación".into()),
        // The same instant in UTC: not a change.
        starts_at: Some("2026-12-01T18:00:00Z".into()),
        ends_at: Some("2026-12-01T20:30:00Z".into()),
        location: Some("Casa del Migrante".into()),
        office: Some("tijuana".into()),
        language: Some("es,en".into()),
        capacity: Some("25".into()),
        status: Some("scheduled".into()),
        updated: None,
    };
    let form = EventInput::from_row(&stored, &tz);
    assert_eq!(
        (form.start_date.as_str(), form.start_time.as_str()),
        ("2026-12-01", "10:00")
    );
    assert_eq!(form.end_time, "12:30");
    let cells = validate(&form, &tz, &offices()).unwrap();
    assert!(changes(Some(&stored), cells).is_empty());
    let mut edited = form.clone();
    edited.capacity = "30".into();
    edited.location = "".into();
    let cells = validate(&edited, &tz, &offices()).unwrap();
    let changed: Vec<&str> = changes(Some(&stored), cells)
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(changed, ["location", "capacity"]);
    // A new event writes what is not empty.
    let cells = validate(&good(), &tz, &offices()).unwrap();
    assert_eq!(changes(None, cells).len(), 9);
}

#[test]
fn the_schemas_required_columns_mark_their_fields() {
    let tz = pacific();
    let mut input = good();
    input.location = "".into();
    let cells = validate(&input, &tz, &offices()).unwrap();
    // Location left empty, and the schema requires it: its field is marked.
    let required = vec![
        "title".to_string(),
        "starts_at".to_string(),
        "location".to_string(),
    ];
    assert_eq!(
        missing_required(&cells, &required),
        [FieldError::Required("location")]
    );
    // The control: given, nothing is missing; not required, nothing either.
    assert!(missing_required(&validate(&good(), &tz, &offices()).unwrap(), &required).is_empty());
    assert!(missing_required(&cells, &["title".to_string()]).is_empty());
    // A start the schema requires is the form's start date.
    let no_start = vec![("starts_at", Value::Null)];
    assert_eq!(
        missing_required(&no_start, &["starts_at".to_string()]),
        [FieldError::Required("start_date")]
    );
}
