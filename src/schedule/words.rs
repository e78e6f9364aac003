//! Every word `puente schedule` prints, in Spanish and English: names of
//! days and months, day headings, times of day, and the phrases around them.
//!
//! Owns: the small language tables and how a date, a time or a language
//! list reads in each language.
//! Must not: decide what goes into the agenda, or read the locale (the
//! caller picks the `Lang`).

use jiff::civil::{Date, Time, Weekday};

use super::{DateProblem, Lang};

const WEEKDAYS_ES: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];
const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday_index(w: Weekday) -> usize {
    match w {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

pub fn weekday(lang: Lang, w: Weekday) -> &'static str {
    let i = weekday_index(w);
    match lang {
        Lang::Es => WEEKDAYS_ES[i],
        Lang::En => WEEKDAYS_EN[i],
    }
}

pub fn month(lang: Lang, date: Date) -> &'static str {
    // A civil date's month is 1..=12 (jiff's invariant); clamp anyway.
    let i = usize::try_from(date.month() - 1).unwrap_or(0).min(11);
    match lang {
        Lang::Es => MONTHS_ES[i],
        Lang::En => MONTHS_EN[i],
    }
}

/// "martes 1 de diciembre" / "Tuesday, December 1"; the year is added when
/// it is not `this_year`.
pub fn day_heading(lang: Lang, date: Date, this_year: i16) -> String {
    let (wd, m, d, y) = (
        weekday(lang, date.weekday()),
        month(lang, date),
        date.day(),
        date.year(),
    );
    match (lang, y == this_year) {
        (Lang::Es, true) => format!("{wd} {d} de {m}"),
        (Lang::Es, false) => format!("{wd} {d} de {m} de {y}"),
        (Lang::En, true) => format!("{wd}, {m} {d}"),
        (Lang::En, false) => format!("{wd}, {m} {d}, {y}"),
    }
}

/// "10:00" / "10:00 AM".
pub fn time_of_day(lang: Lang, t: Time) -> String {
    let (h, m) = (t.hour(), t.minute());
    match lang {
        Lang::Es => format!("{h:02}:{m:02}"),
        Lang::En => {
            let half = if h < 12 { "AM" } else { "PM" };
            let h12 = match h % 12 {
                0 => 12,
                h => h,
            };
            format!("{h12}:{m:02} {half}")
        }
    }
}

/// The width time ranges are padded to (one that starts and ends the same
/// day fits; longer ones push the title right).
pub fn time_column(lang: Lang) -> usize {
    match lang {
        Lang::Es => "00:00–00:00".chars().count(),
        Lang::En => "10:00 AM–10:00 PM".chars().count(),
    }
}

/// The time range of an event: "10:00–12:00", or with the end's day when it
/// ends on another day: "22:00–02:00 (miércoles 2 de diciembre)".
pub fn time_range(lang: Lang, start: Time, end: Option<(Time, Option<String>)>) -> String {
    let mut out = time_of_day(lang, start);
    if let Some((end, other_day)) = end {
        out.push('–');
        out.push_str(&time_of_day(lang, end));
        if let Some(day) = other_day {
            out.push_str(&format!(" ({day})"));
        }
    }
    out
}

/// A language list from the `language` column ("es", "en", "es,en") in
/// words; codes it does not know are kept as written.
pub fn languages(lang: Lang, codes: &str) -> String {
    let names: Vec<String> = codes
        .split([',', '/', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            match (lang, c.to_ascii_lowercase().as_str()) {
                (Lang::Es, "es") => "español",
                (Lang::Es, "en") => "inglés",
                (Lang::En, "es") => "Spanish",
                (Lang::En, "en") => "English",
                _ => c,
            }
            .to_string()
        })
        .collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => {
            // Spanish writes "e" instead of "y" before an /i/ sound.
            let and = match lang {
                Lang::En => "and",
                Lang::Es if last.starts_with('i') || last.starts_with("hi") => "e",
                Lang::Es => "y",
            };
            format!("{} {and} {last}", rest.join(", "))
        }
    }
}

pub fn capacity(lang: Lang, n: &str) -> String {
    match lang {
        Lang::Es => format!("cupo {n}"),
        Lang::En => format!("capacity {n}"),
    }
}

pub fn cancelled_mark(lang: Lang) -> &'static str {
    match lang {
        Lang::Es => "[CANCELADO]",
        Lang::En => "[CANCELLED]",
    }
}

/// How a status other than scheduled/cancelled reads ("done" and the like).
pub fn status(lang: Lang, status: &str) -> String {
    match (lang, status.to_ascii_lowercase().as_str()) {
        (Lang::Es, "done") | (Lang::Es, "realizado") => "realizado".into(),
        (Lang::En, "done") | (Lang::En, "realizado") => "done".into(),
        (Lang::Es, _) => format!("estado: {status}"),
        (Lang::En, _) => format!("status: {status}"),
    }
}

pub fn untitled(lang: Lang) -> &'static str {
    match lang {
        Lang::Es => "(sin título)",
        Lang::En => "(untitled)",
    }
}

/// The first line: how many days, from which day, in which zone.
pub fn title(lang: Lang, days: u32, from: &str, zone: Option<&str>) -> String {
    match (lang, days, zone) {
        (Lang::Es, 1, Some(z)) => format!("Agenda: 1 día a partir del {from}, hora de {z}"),
        (Lang::Es, 1, None) => format!("Agenda: 1 día a partir del {from}, hora local"),
        (Lang::Es, n, Some(z)) => format!("Agenda: {n} días a partir del {from}, hora de {z}"),
        (Lang::Es, n, None) => format!("Agenda: {n} días a partir del {from}, hora local"),
        (Lang::En, 1, Some(z)) => format!("Agenda: 1 day from {from}, {z} time"),
        (Lang::En, 1, None) => format!("Agenda: 1 day from {from}, local time"),
        (Lang::En, n, Some(z)) => format!("Agenda: {n} days from {from}, {z} time"),
        (Lang::En, n, None) => format!("Agenda: {n} days from {from}, local time"),
    }
}

pub fn nothing_scheduled(lang: Lang) -> &'static str {
    match lang {
        Lang::Es => "No hay eventos programados en este periodo.",
        Lang::En => "No events are scheduled in this period.",
    }
}

pub fn unreadable_heading(lang: Lang) -> &'static str {
    match lang {
        Lang::Es => {
            "Eventos con fechas que no se pueden leer (escriba starts_at y ends_at en RFC 3339 con desfase, p. ej. 2026-12-01T10:00:00-08:00, con `puente rows put outreach_events ID starts_at=…`)"
        }
        Lang::En => {
            "Events whose dates cannot be read (write starts_at and ends_at as RFC 3339 with an offset, e.g. 2026-12-01T10:00:00-08:00, with `puente rows put outreach_events ID starts_at=…`)"
        }
    }
}

/// Why an event's dates cannot be used, naming the column and quoting what
/// it holds.
pub fn problem(lang: Lang, problem: DateProblem, raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    match (lang, problem) {
        (Lang::Es, DateProblem::NoStart) => "no tiene starts_at".into(),
        (Lang::En, DateProblem::NoStart) => "it has no starts_at".into(),
        (Lang::Es, DateProblem::BadStart) => {
            format!("starts_at «{raw}» no es una fecha RFC 3339 con desfase")
        }
        (Lang::En, DateProblem::BadStart) => {
            format!("starts_at \"{raw}\" is not an RFC 3339 date with an offset")
        }
        (Lang::Es, DateProblem::BadEnd) => {
            format!("ends_at «{raw}» no es una fecha RFC 3339 con desfase")
        }
        (Lang::En, DateProblem::BadEnd) => {
            format!("ends_at \"{raw}\" is not an RFC 3339 date with an offset")
        }
        (Lang::Es, DateProblem::EndsBeforeStart) => "ends_at es anterior a starts_at".into(),
        (Lang::En, DateProblem::EndsBeforeStart) => "ends_at is before starts_at".into(),
    }
}
