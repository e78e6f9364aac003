//! Unit tests of the calendar feed.
//!
//! Owns: the lines, escaping, folding and stamps of a feed for given rows
//! (the third-party parser reads it in tests/suite/web_feed.rs).
//! Must not: read the clock.

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn hlc(text: &str) -> Hlc {
    Hlc::from_parts(at(text).as_millisecond() as u64, 2)
}

fn event(id: &str, start: &str, end: Option<&str>) -> EventRow {
    EventRow {
        id: id.into(),
        title: Some(format!("Event {id}")),
        starts_at: Some(start.into()),
        ends_at: end.map(Into::into),
        office: Some("tijuana".into()),
        updated: Some(hlc("2026-11-20T12:00:00Z")),
        ..EventRow::default()
    }
}

fn feed(lang: Lang) -> Feed<'static> {
    Feed {
        lang,
        office: None,
        now: at("2026-11-30T20:00:00Z"),
        zone: "America/Tijuana",
    }
}

/// Undoes folding: CRLF followed by a space joins lines.
fn unfold(text: &str) -> Vec<String> {
    text.replace("\r\n ", "")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn text_is_escaped() {
    assert_eq!(
        escape("Taller; traer INE, CURP\\pasaporte\r\nSegunda línea\nTercera\u{7}"),
        "Taller\\; traer INE\\, CURP\\\\pasaporte\\nSegunda línea\\nTercera"
    );
}

#[test]
fn long_lines_fold_at_75_octets_without_splitting_characters() {
    let line = format!("DESCRIPTION:{}", "ñandú migrante ".repeat(20));
    let mut out = String::new();
    push_line(&mut out, &line);
    assert!(out.ends_with("\r\n"));
    for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(
            physical.len() <= 75,
            "{} octets: {physical:?}",
            physical.len()
        );
    }
    assert_eq!(out.matches("\r\n ").count(), 4, "332 octets: 75 + 4 x 74");
    assert_eq!(unfold(&out), vec![line]);
    let mut short = String::new();
    push_line(&mut short, "END:VEVENT");
    assert_eq!(short, "END:VEVENT\r\n");
}

#[test]
fn sequence_grows_with_the_version() {
    let a = sequence(hlc("2026-11-20T12:00:00Z"));
    let b = sequence(Hlc(hlc("2026-11-20T12:00:00Z").0 + 1));
    let c = sequence(hlc("2026-11-20T12:00:01Z"));
    assert!(a <= b && b < c, "{a} {b} {c}");
    assert_eq!(sequence(hlc("2025-01-01T00:00:10Z")), 10);
    assert_eq!(sequence(Hlc(0)), 0);
}

#[test]
fn the_feed_is_a_calendar_of_utc_events() {
    let mut cancelled = event("ev-2", "2026-12-02T10:00:00-08:00", None);
    cancelled.status = Some("cancelado".into());
    cancelled.location = Some("Parque, zona norte".into());
    cancelled.description = Some("Vigilia".into());
    cancelled.language = Some("es,en".into());
    cancelled.capacity = Some("40".into());
    let rows = vec![
        cancelled,
        event(
            "ev-1",
            "2026-12-01T10:00:00-08:00",
            Some("2026-12-01T12:00:00-08:00"),
        ),
        // Not readable, ended long ago, or from another office: left out
        // (the last only with a filter).
        event("bad", "mañana", None),
        event("old", "2026-06-01T10:00:00Z", Some("2026-06-01T11:00:00Z")),
        event(
            "backwards",
            "2026-12-05T10:00:00Z",
            Some("2026-12-05T09:00:00Z"),
        ),
    ];
    let text = render(&rows, &feed(Lang::Es));
    assert!(text.starts_with(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//puente//outreach agenda//ES\r\n"
    ));
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
    let lines = unfold(&text);
    let events: Vec<&[String]> = lines.split(|l| l == "BEGIN:VEVENT").skip(1).collect();
    assert_eq!(events.len(), 2);
    let first: Vec<&str> = events[0].iter().map(String::as_str).collect();
    assert_eq!(
        first,
        [
            "UID:ev-1@puente",
            "DTSTAMP:20261120T120000Z",
            "LAST-MODIFIED:20261120T120000Z",
            &format!("SEQUENCE:{}", sequence(hlc("2026-11-20T12:00:00Z"))),
            "DTSTART:20261201T180000Z",
            "DTEND:20261201T200000Z",
            "SUMMARY:Event ev-1",
            "DESCRIPTION:Oficina: tijuana",
            "CATEGORIES:tijuana",
            "STATUS:CONFIRMED",
            "END:VEVENT",
        ]
    );
    let second = events[1].join("\n");
    for want in [
        "UID:ev-2@puente",
        "DTSTART:20261202T180000Z",
        "LOCATION:Parque\\, zona norte",
        "DESCRIPTION:Vigilia\\nOficina: tijuana\\nIdioma: español e inglés\\ncupo 40",
        "STATUS:CANCELLED",
    ] {
        assert!(second.contains(want), "{want} missing in\n{second}");
    }
    assert!(!second.contains("DTEND"));
    let en = render(&rows, &feed(Lang::En));
    assert!(
        en.contains("Language: Spanish and English")
            && en.contains("X-WR-CALNAME:Outreach agenda")
            && en.contains("X-WR-TIMEZONE:America/Tijuana\r\n")
    );
    let mut only = feed(Lang::En);
    only.office = Some("san-diego");
    assert!(!render(&rows, &only).contains("BEGIN:VEVENT"));
}
