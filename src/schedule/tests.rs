//! Unit tests of the agenda with a fixed instant and zone (a POSIX rule for
//! Pacific time, so they do not depend on the machine's tz database).
//!
//! Owns: the days, events and words of an agenda for given rows.
//! Must not: read the clock or the machine's time zone.

use super::*;

/// Pacific time as Tijuana and San Diego keep it (US rules since 2010).
fn pacific() -> TimeZone {
    TimeZone::posix("PST8PDT,M3.2.0,M11.1.0").unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn ev(id: &str, title: &str, start: &str, end: Option<&str>) -> EventRow {
    EventRow {
        id: id.into(),
        title: Some(title.into()),
        starts_at: Some(start.into()),
        ends_at: end.map(Into::into),
        ..EventRow::default()
    }
}

fn with(mut row: EventRow, f: impl FnOnce(&mut EventRow)) -> EventRow {
    f(&mut row);
    row
}

/// Monday 30 November 2026, 09:30 in Tijuana.
const NOW: &str = "2026-11-30T09:30:00-08:00";

fn december_rows() -> Vec<EventRow> {
    vec![
        // Written in San Diego with a Z time: 10:00 in Pacific time.
        with(
            ev(
                "e-clinic",
                "Clínica legal",
                "2026-12-01T18:00:00Z",
                Some("2026-12-01T20:00:00Z"),
            ),
            |r| {
                r.office = Some("san-diego".into());
                r.location = Some("Biblioteca".into());
                r.language = Some("es,en".into());
            },
        ),
        // Written in Tijuana with its own offset.
        with(
            ev(
                "e-taller",
                "Taller de derechos",
                "2026-12-01T08:00:00-08:00",
                Some("2026-12-01T09:30:00-08:00"),
            ),
            |r| {
                r.office = Some("tijuana".into());
                r.location = Some("Casa".into());
                r.language = Some("es".into());
                r.capacity = Some("25".into());
                r.status = Some("scheduled".into());
            },
        ),
        // From Europe: +01:00; 19:00 there is 10:00 in Tijuana, on Dec 3.
        with(
            ev(
                "e-call",
                "Llamada con Madrid",
                "2026-12-03T19:00:00+01:00",
                None,
            ),
            |r| {
                r.office = Some("tijuana".into());
                r.status = Some("cancelled".into());
            },
        ),
        // Starts late on Dec 1 local time (already Dec 2 in UTC), ends Dec 2.
        with(
            ev(
                "e-vigil",
                "Vigilia",
                "2026-12-02T07:30:00Z",
                Some("2026-12-02T09:00:00Z"),
            ),
            |r| r.office = Some("tijuana".into()),
        ),
        // Past the 7-day window (ends Dec 7, 09:30).
        ev(
            "e-late",
            "Fuera de rango",
            "2026-12-07T09:30:00-08:00",
            None,
        ),
        // Already over.
        ev(
            "e-past",
            "Pasado",
            "2026-11-29T10:00:00-08:00",
            Some("2026-11-29T11:00:00-08:00"),
        ),
    ]
}

#[test]
fn spanish_agenda_groups_by_local_day_in_order() {
    let a = build(&december_rows(), at(NOW), &pacific(), 7, Lang::Es).unwrap();
    let text = render(&a);
    assert_eq!(
        text,
        "Agenda: 7 días a partir del lunes 30 de noviembre, hora local\n\
         \n\
         martes 1 de diciembre\n\
         \x20 08:00–09:30  Taller de derechos · tijuana · Casa · español · cupo 25\n\
         \x20 10:00–12:00  Clínica legal · san-diego · Biblioteca · español e inglés\n\
         \x20 23:30–01:00 (miércoles 2 de diciembre)  Vigilia · tijuana\n\
         \n\
         jueves 3 de diciembre\n\
         \x20 10:00        [CANCELADO] Llamada con Madrid · tijuana\n"
    );
    assert_eq!(a.from, "2026-11-30T09:30:00-08:00");
    assert_eq!(a.until, "2026-12-07T09:30:00-08:00");
    assert_eq!(a.days[0].date, "2026-12-01");
    assert_eq!(a.days[0].events[1].starts_at, "2026-12-01T10:00:00-08:00");
    assert!(a.days[1].events[0].cancelled);
    assert!(a.unreadable.is_empty());
}

#[test]
fn english_agenda_reads_the_same_events() {
    let a = build(&december_rows(), at(NOW), &pacific(), 7, Lang::En).unwrap();
    assert_eq!(
        render(&a),
        "Agenda: 7 days from Monday, November 30, local time\n\
         \n\
         Tuesday, December 1\n\
         \x20 8:00 AM–9:30 AM    Taller de derechos · tijuana · Casa · Spanish · capacity 25\n\
         \x20 10:00 AM–12:00 PM  Clínica legal · san-diego · Biblioteca · Spanish and English\n\
         \x20 11:30 PM–1:00 AM (Wednesday, December 2)  Vigilia · tijuana\n\
         \n\
         Thursday, December 3\n\
         \x20 10:00 AM           [CANCELLED] Llamada con Madrid · tijuana\n"
    );
}

#[test]
fn the_zone_decides_the_day() {
    // In UTC the vigil starts on Dec 2 and the Madrid call at 18:00.
    let a = build(&december_rows(), at(NOW), &TimeZone::UTC, 7, Lang::Es).unwrap();
    let days: Vec<(&str, Vec<&str>)> = a
        .days
        .iter()
        .map(|d| {
            (
                d.date.as_str(),
                d.events.iter().map(|e| e.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-12-01", vec!["e-taller", "e-clinic"]),
            ("2026-12-02", vec!["e-vigil"]),
            ("2026-12-03", vec!["e-call"]),
        ]
    );
    assert_eq!(a.time_zone.as_deref(), Some("UTC"));
    assert!(a.title.ends_with("hora de UTC"), "{}", a.title);
    assert_eq!(a.days[1].events[0].time, "07:30–09:00");
}

#[test]
fn a_window_across_the_end_of_dst_counts_calendar_days() {
    // Friday 30 October 2026, noon PDT; DST ends Sunday 1 November at 02:00.
    let now = at("2026-10-30T12:00:00-07:00");
    let rows = vec![
        ev(
            "a",
            "Primera 01:30 (PDT)",
            "2026-11-01T01:30:00-07:00",
            None,
        ),
        ev(
            "b",
            "Segunda 01:30 (PST)",
            "2026-11-01T01:30:00-08:00",
            None,
        ),
        // Inside the window only if it ends at 12:00 PST, not 168 h later.
        ev("c", "Viernes 11:30", "2026-11-06T11:30:00-08:00", None),
        ev("d", "Viernes 12:00", "2026-11-06T12:00:00-08:00", None),
        ev(
            "e",
            "Antes del cambio",
            "2026-10-31T20:00:00-07:00",
            Some("2026-11-01T03:00:00-08:00"),
        ),
    ];
    let a = build(&rows, now, &pacific(), 7, Lang::Es).unwrap();
    assert_eq!(a.from, "2026-10-30T12:00:00-07:00");
    assert_eq!(a.until, "2026-11-06T12:00:00-08:00");
    let ids: Vec<Vec<&str>> = a
        .days
        .iter()
        .map(|d| d.events.iter().map(|e| e.id.as_str()).collect())
        .collect();
    assert_eq!(ids, vec![vec!["e"], vec!["a", "b"], vec!["c"]]);
    let nov1 = &a.days[1];
    assert_eq!(nov1.heading, "domingo 1 de noviembre");
    assert_eq!(nov1.events[0].starts_at, "2026-11-01T01:30:00-07:00");
    assert_eq!(nov1.events[1].starts_at, "2026-11-01T01:30:00-08:00");
    assert_eq!(
        a.days[0].events[0].time,
        "20:00–03:00 (domingo 1 de noviembre)"
    );
    assert_eq!(
        a.days[0].events[0].ends_at.as_deref(),
        Some("2026-11-01T03:00:00-08:00")
    );

    // Into DST in March: 7 days from Friday 6 March, noon PST.
    let a = build(
        &[],
        at("2026-03-06T12:00:00-08:00"),
        &pacific(),
        7,
        Lang::En,
    )
    .unwrap();
    assert_eq!(a.until, "2026-03-13T12:00:00-07:00");
    assert_eq!(
        render(&a),
        "Agenda: 7 days from Friday, March 6, local time\n\nNo events are scheduled in this period.\n"
    );
}

#[test]
fn the_window_includes_now_and_running_events_and_excludes_its_end() {
    let now = "2026-12-01T10:00:00-08:00";
    let rows = vec![
        ev("at-now", "at now", now, None),
        ev(
            "running",
            "running",
            "2026-12-01T09:00:00-08:00",
            Some("2026-12-01T11:00:00-08:00"),
        ),
        ev("ended-now", "ended", "2026-12-01T09:00:00-08:00", Some(now)),
        ev(
            "started-no-end",
            "no end",
            "2026-12-01T09:59:59-08:00",
            None,
        ),
        ev("last-second", "last", "2026-12-02T09:59:59-08:00", None),
        ev("at-until", "until", "2026-12-02T10:00:00-08:00", None),
        ev(
            "multi-day",
            "fair",
            "2026-11-28T10:00:00-08:00",
            Some("2026-12-03T18:00:00-08:00"),
        ),
    ];
    let a = build(&rows, at(now), &pacific(), 1, Lang::En).unwrap();
    let ids: Vec<&str> = a
        .days
        .iter()
        .flat_map(|d| d.events.iter().map(|e| e.id.as_str()))
        .collect();
    assert_eq!(ids, vec!["multi-day", "running", "at-now", "last-second"]);
    assert_eq!(a.days[0].heading, "Saturday, November 28");
    assert!(
        a.title
            .starts_with("Agenda: 1 day from Tuesday, December 1")
    );
}

#[test]
fn the_window_starts_at_the_whole_second() {
    let rows = vec![ev("a", "a", "2026-12-01T10:00:00.25-08:00", None)];
    let a = build(
        &rows,
        at("2026-12-01T10:00:00.5-08:00"),
        &pacific(),
        1,
        Lang::Es,
    )
    .unwrap();
    assert_eq!(a.from, "2026-12-01T10:00:00-08:00");
    assert_eq!(a.until, "2026-12-02T10:00:00-08:00");
    assert_eq!(
        a.days[0].events[0].starts_at,
        "2026-12-01T10:00:00.25-08:00"
    );
}

#[test]
fn days_are_limited() {
    let now = at(NOW);
    for bad in [0, MAX_DAYS + 1] {
        let e = build(&[], now, &pacific(), bad, Lang::Es).unwrap_err();
        assert_eq!(e, ScheduleError::Days { given: bad });
        assert!(e.to_string().contains("from 1 to 3660"), "{e}");
    }
    let a = build(&[], now, &pacific(), MAX_DAYS, Lang::Es).unwrap();
    assert!(a.until.starts_with("2036-"), "{}", a.until);
}

#[test]
fn events_with_unreadable_dates_are_listed_last() {
    let rows = vec![
        ev("ok", "Bien", "2026-12-01T10:00:00-08:00", None),
        with(ev("no-start", "Sin fecha", "x", None), |r| {
            r.starts_at = None
        }),
        with(
            ev("bad-start", "Mal inicio", "1 de diciembre, 10am", None),
            |r| {
                r.office = Some("tijuana".into());
                r.location = Some("Casa".into());
            },
        ),
        ev("local", "Sin desfase", "2026-12-01T10:00:00", None),
        ev(
            "bad-end",
            "Mal fin",
            "2026-12-02T10:00:00-08:00",
            Some("mediodía"),
        ),
        ev(
            "backwards",
            "Al revés",
            "2026-12-02T10:00:00-08:00",
            Some("2026-12-02T09:00:00-08:00"),
        ),
        // A bad end on an event long past is not worth a line.
        ev(
            "old-bad-end",
            "Viejo",
            "2025-01-01T10:00:00-08:00",
            Some("??"),
        ),
    ];
    let a = build(&rows, at(NOW), &pacific(), 7, Lang::Es).unwrap();
    assert_eq!(a.days.len(), 1);
    let problems: Vec<(&str, DateProblem)> = a
        .unreadable
        .iter()
        .map(|u| (u.id.as_str(), u.problem))
        .collect();
    assert_eq!(
        problems,
        vec![
            // By title: Al revés, Mal fin, Mal inicio, Sin desfase, Sin fecha.
            ("backwards", DateProblem::EndsBeforeStart),
            ("bad-end", DateProblem::BadEnd),
            ("bad-start", DateProblem::BadStart),
            ("local", DateProblem::BadStart),
            ("no-start", DateProblem::NoStart),
        ]
    );
    let text = render(&a);
    let tail = text
        .split_once("Eventos con fechas que no se pueden leer")
        .unwrap()
        .1;
    assert!(
        tail.contains("2026-12-01T10:00:00-08:00"),
        "the heading shows the format"
    );
    assert!(
        tail.contains(
            "  Mal inicio · tijuana · Casa  (id bad-start: starts_at «1 de diciembre, 10am» no es una fecha RFC 3339 con desfase)\n"
        ),
        "{text}"
    );
    assert!(
        tail.contains("  Sin fecha  (id no-start: no tiene starts_at)\n"),
        "{text}"
    );

    let a = build(&rows, at(NOW), &pacific(), 7, Lang::En).unwrap();
    let text = render(&a);
    assert!(text.contains("Events whose dates cannot be read"), "{text}");
    assert!(
        text.contains("(id bad-end: ends_at \"mediodía\" is not an RFC 3339 date with an offset)"),
        "{text}"
    );
}

#[test]
fn statuses_languages_and_capacity_read_well() {
    let base = "2026-12-01T10:00:00-08:00";
    let rows = vec![
        with(ev("1", "A", base, None), |r| {
            r.status = Some("Canceled".into());
            r.language = Some("en".into());
        }),
        with(ev("2", "B", base, None), |r| r.status = Some("done".into())),
        with(ev("3", "C", base, None), |r| {
            r.status = Some("postponed".into());
            r.language = Some("es, en, nah".into());
        }),
        with(ev("4", "D", base, None), |r| r.title = None),
    ];
    let a = build(&rows, at(NOW), &pacific(), 7, Lang::Es).unwrap();
    let text = render(&a);
    let lines: Vec<&str> = text.lines().skip(3).collect();
    assert_eq!(
        lines,
        vec![
            // Same start and end: by title, an untitled event first.
            "  10:00        (sin título)",
            "  10:00        [CANCELADO] A · inglés",
            "  10:00        B · realizado",
            "  10:00        C · español, inglés y nah · estado: postponed",
        ]
    );
    assert_eq!(words::languages(Lang::Es, "en,es"), "inglés y español");
    assert_eq!(words::languages(Lang::En, "es,en"), "Spanish and English");
}

#[test]
fn cell_text_cannot_move_the_cursor_or_fake_lines() {
    let rows = vec![with(
        ev(
            "x",
            "Título\n  10:00  Falso\u{1b}[2J",
            "2026-12-01T10:00:00-08:00",
            None,
        ),
        |r| r.location = Some("Sala\t1".into()),
    )];
    let a = build(&rows, at(NOW), &pacific(), 7, Lang::Es).unwrap();
    let text = render(&a);
    assert!(
        text.contains("  10:00        Título   10:00  Falso\\u{1b}[2J · Sala 1\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4);
}

#[test]
fn another_year_is_named() {
    let rows = vec![ev("ny", "Año nuevo", "2027-01-01T00:00:00-08:00", None)];
    let now = at("2026-12-30T12:00:00-08:00");
    let a = build(&rows, now, &pacific(), 7, Lang::Es).unwrap();
    assert_eq!(a.days[0].heading, "viernes 1 de enero de 2027");
    let a = build(&rows, now, &pacific(), 7, Lang::En).unwrap();
    assert_eq!(a.days[0].heading, "Friday, January 1, 2027");
    assert_eq!(a.days[0].events[0].time, "12:00 AM");
}

#[test]
fn json_keys_are_stable() {
    let a = build(&december_rows(), at(NOW), &pacific(), 7, Lang::En).unwrap();
    let v = serde_json::to_value(&a).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let mut top = keys(&v);
    top.sort();
    assert_eq!(
        top,
        [
            "days",
            "from",
            "lang",
            "time_zone",
            "title",
            "unreadable",
            "until",
            "window_days"
        ]
    );
    assert_eq!(v["lang"], "en");
    assert_eq!(v["time_zone"], serde_json::Value::Null);
    let mut event = keys(&v["days"][0]["events"][0]);
    event.sort();
    assert_eq!(
        event,
        [
            "cancelled",
            "capacity",
            "description",
            "ends_at",
            "id",
            "language",
            "location",
            "office",
            "starts_at",
            "status",
            "time",
            "title"
        ]
    );
    let text = serde_json::to_string(&a).unwrap();
    assert!(
        text.starts_with(r#"{"lang":"en","time_zone":null,"from":"2026-11-30T09:30:00-08:00""#)
    );
}

#[test]
fn language_comes_from_the_flag_or_the_locale() {
    assert_eq!(Lang::parse("es").unwrap(), Lang::Es);
    assert_eq!(Lang::parse("EN").unwrap(), Lang::En);
    assert_eq!(Lang::parse("es_MX.UTF-8").unwrap(), Lang::Es);
    let e = Lang::parse("fr").unwrap_err();
    assert!(e.to_string().contains("--lang es"), "{e}");
    assert!(Lang::parse("").is_err());

    assert_eq!(Lang::from_locale(None, None, None), Lang::En);
    assert_eq!(Lang::from_locale(None, None, Some("es_MX.UTF-8")), Lang::Es);
    assert_eq!(
        Lang::from_locale(None, Some("en_US.UTF-8"), Some("es_MX.UTF-8")),
        Lang::En
    );
    assert_eq!(
        Lang::from_locale(Some("es_ES.UTF-8"), Some("en_US"), None),
        Lang::Es
    );
    // Empty values do not count.
    assert_eq!(Lang::from_locale(Some(""), None, Some("es_MX")), Lang::Es);
    assert_eq!(Lang::from_locale(None, None, Some("C.UTF-8")), Lang::En);
}

#[test]
fn rows_are_read_from_cells() {
    let cells = [
        ("title", Value::Text("Taller".into())),
        ("capacity", Value::Integer(25)),
        ("location", Value::Text("  ".into())),
        ("status", Value::Null),
        ("description", Value::Blob(vec![1])),
    ];
    let e = EventRow::from_cells("r1".into(), Some(Hlc(7)), |c| {
        cells.iter().find(|(n, _)| *n == c).map(|(_, v)| v)
    });
    assert_eq!(
        e,
        EventRow {
            id: "r1".into(),
            title: Some("Taller".into()),
            capacity: Some("25".into()),
            updated: Some(Hlc(7)),
            ..EventRow::default()
        }
    );
}
