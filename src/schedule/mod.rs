//! The outreach agenda (`puente schedule`): rows of `outreach_events`, an
//! instant, a time zone and a language in; the upcoming events grouped by
//! local day out, as text for people or as JSON with stable keys.
//!
//! Owns: reading event dates (RFC 3339 with an offset), the window from now
//! to now + N days, ordering and grouping by day in the given zone, listing
//! events whose dates cannot be read, choosing a language from the locale's
//! variables, and rendering (words in `words.rs`).
//! Must not: do IO — no clock, environment, files or sockets: the CLI
//! (`cli/schedule.rs`) and the web agenda (`web/`) pass them in, so every
//! case is tested with a fixed instant and zone — or know the admin API's
//! or the store's types: callers turn their rows into `EventRow`s
//! (`EventRow::from_cells`).

pub mod words;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};
use serde::Serialize;

use crate::clock::Hlc;
use crate::value::Value;

/// The table the agenda reads.
pub const TABLE: &str = "outreach_events";
/// Days shown when `--days` is not given.
pub const DEFAULT_DAYS: u32 = 7;
/// The longest window (ten years).
pub const MAX_DAYS: u32 = 3660;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown language `{given}`: use --lang es (español) or --lang en (English)")]
    Lang { given: String },
    #[error("--days {given} is out of range: give a number of days from 1 to {MAX_DAYS}")]
    Days { given: u32 },
    #[error(
        "cannot compute the end of a {days}-day window in this time zone ({detail}); give fewer --days"
    )]
    Window { days: u32, detail: String },
}

/// Refuses a window of 0 days or more than `MAX_DAYS`.
pub fn check_days(days: u32) -> Result<(), ScheduleError> {
    if days == 0 || days > MAX_DAYS {
        return Err(ScheduleError::Days { given: days });
    }
    Ok(())
}

/// The language of the agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Es,
    En,
}

impl Lang {
    /// `es` or `en` (any case; a locale such as `es_MX.UTF-8` also works).
    pub fn parse(text: &str) -> Result<Lang, ScheduleError> {
        let code = text
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match code.as_str() {
            "es" => Ok(Lang::Es),
            "en" => Ok(Lang::En),
            _ => Err(ScheduleError::Lang {
                given: text.to_string(),
            }),
        }
    }

    /// The language of the locale, given the values of `LC_ALL`,
    /// `LC_MESSAGES` and `LANG`: the first one set and not empty decides
    /// (POSIX precedence); `es…` is Spanish, anything else English.
    pub fn from_locale(
        lc_all: Option<&str>,
        lc_messages: Option<&str>,
        lang: Option<&str>,
    ) -> Lang {
        let chosen = [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty());
        match chosen {
            Some(v) if v.to_ascii_lowercase().starts_with("es") => Lang::Es,
            _ => Lang::En,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }
}

/// The columns of `outreach_events` the agenda reads.
pub const COLUMNS: [&str; 9] = [
    "title",
    "description",
    "starts_at",
    "ends_at",
    "location",
    "office",
    "language",
    "capacity",
    "status",
];

/// One row of `outreach_events`, every cell as text (absent, null and
/// empty cells are `None`): the neutral form every caller converts to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub location: Option<String>,
    pub office: Option<String>,
    pub language: Option<String>,
    pub capacity: Option<String>,
    pub status: Option<String>,
    /// The row's newest cell version, when the caller knows it (the
    /// calendar feed's SEQUENCE and LAST-MODIFIED come from it).
    pub updated: Option<Hlc>,
}

impl EventRow {
    /// A row from its id, its version and a function giving each column's
    /// value (None for a missing or sealed cell). Numbers become their
    /// decimal text; blobs and blank text are left out.
    pub fn from_cells<'a>(
        id: String,
        updated: Option<Hlc>,
        cell: impl Fn(&str) -> Option<&'a Value>,
    ) -> EventRow {
        let text = |column: &str| cell(column).and_then(cell_text);
        EventRow {
            id,
            title: text("title"),
            description: text("description"),
            starts_at: text("starts_at"),
            ends_at: text("ends_at"),
            location: text("location"),
            office: text("office"),
            language: text("language"),
            capacity: text("capacity"),
            status: text("status"),
            updated,
        }
    }
}

/// A cell as the agenda reads it: text that is not blank, or a number.
pub fn cell_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(t) if !t.trim().is_empty() => Some(t.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        _ => None,
    }
}

/// The agenda, in the order it is printed. Keys are stable for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agenda {
    pub lang: Lang,
    /// The IANA name of the zone, if it has one.
    pub time_zone: Option<String>,
    /// The window: `from` (now) inclusive to `until` exclusive, local RFC 3339.
    pub from: String,
    pub until: String,
    pub window_days: u32,
    /// The first line of the text form.
    pub title: String,
    /// Days with at least one event, in order.
    pub days: Vec<Day>,
    /// Events whose dates cannot be read, with what is wrong.
    pub unreadable: Vec<Unreadable>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The local date, YYYY-MM-DD.
    pub date: String,
    /// "martes 1 de diciembre" / "Tuesday, December 1".
    pub heading: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub title: Option<String>,
    /// Start and end in the local zone, RFC 3339 with its offset.
    pub starts_at: String,
    pub ends_at: Option<String>,
    /// The time range as printed, e.g. "10:00–12:00".
    pub time: String,
    pub office: Option<String>,
    pub location: Option<String>,
    pub language: Option<String>,
    pub capacity: Option<String>,
    pub status: Option<String>,
    pub cancelled: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    pub id: String,
    pub title: Option<String>,
    pub office: Option<String>,
    pub location: Option<String>,
    /// The dates exactly as stored.
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub problem: DateProblem,
    /// The problem in words, in the agenda's language.
    pub message: String,
}

/// What is wrong with an event's dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateProblem {
    NoStart,
    BadStart,
    BadEnd,
    EndsBeforeStart,
}

/// A date as stored: RFC 3339 with an offset ("Z" included). A date or
/// time without an offset is refused, since it names no instant.
pub fn parse_instant(text: &str) -> Option<Timestamp> {
    text.trim().parse::<Timestamp>().ok()
}

/// Whether a status means the event is cancelled (English or Spanish).
pub fn is_cancelled(status: Option<&str>) -> bool {
    status.is_some_and(|s| {
        matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "cancelled" | "canceled" | "cancelado" | "cancelada"
        )
    })
}

/// Local RFC 3339 with the zone's offset at that instant.
fn local_rfc3339(z: &ZonedDateTime) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// Builds the agenda of `rows` for the `days` days from `now` (taken to the
/// whole second), in `tz`.
///
/// An event is upcoming when it starts before now + `days` (calendar days in
/// `tz`, so a window across a DST change still ends at the same wall-clock
/// time) and has not ended: it starts at or after now, or ends after now.
/// Events are ordered by start (then end, title, id) and grouped by the
/// local day they start on. An event without a readable start is always
/// listed as unreadable; one with a readable start in the window but an
/// unreadable or earlier end is listed as unreadable too.
pub fn build(
    rows: &[EventRow],
    now: Timestamp,
    tz: &TimeZone,
    days: u32,
    lang: Lang,
) -> Result<Agenda, ScheduleError> {
    check_days(days)?;
    // Whole seconds: the agenda shows no finer time, and two runs in the
    // same second print the same window.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let local_now = now.to_zoned_datetime(tz.clone());
    let until = local_now
        .checked_add(Span::new().days(i64::from(days)))
        .map_err(|e| ScheduleError::Window {
            days,
            detail: e.to_string(),
        })?;
    let end_of_window = until.timestamp();

    let mut upcoming: Vec<(Timestamp, Option<Timestamp>, &EventRow)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut flag = |row: &EventRow, problem: DateProblem| {
        let raw = match problem {
            DateProblem::BadStart => row.starts_at.as_deref(),
            DateProblem::BadEnd => row.ends_at.as_deref(),
            DateProblem::NoStart | DateProblem::EndsBeforeStart => None,
        };
        unreadable.push(Unreadable {
            id: row.id.clone(),
            title: row.title.clone(),
            office: row.office.clone(),
            location: row.location.clone(),
            starts_at: row.starts_at.clone(),
            ends_at: row.ends_at.clone(),
            problem,
            message: words::problem(lang, problem, raw),
        });
    };
    for row in rows {
        let Some(start_text) = &row.starts_at else {
            flag(row, DateProblem::NoStart);
            continue;
        };
        let Some(start) = parse_instant(start_text) else {
            flag(row, DateProblem::BadStart);
            continue;
        };
        let end = match &row.ends_at {
            None => Ok(None),
            Some(text) => match parse_instant(text) {
                Some(end) if end < start => Err(DateProblem::EndsBeforeStart),
                Some(end) => Ok(Some(end)),
                None => Err(DateProblem::BadEnd),
            },
        };
        if start >= end_of_window {
            continue;
        }
        match end {
            Err(problem) if start >= now => flag(row, problem),
            Err(_) => {}
            Ok(end) if start >= now || end.is_some_and(|e| e > now) => {
                upcoming.push((start, end, row));
            }
            Ok(_) => {}
        }
    }
    upcoming.sort_by(|a, b| (a.0, a.1, &a.2.title, &a.2.id).cmp(&(b.0, b.1, &b.2.title, &b.2.id)));
    unreadable.sort_by(|a, b| (&a.title, &a.id).cmp(&(&b.title, &b.id)));

    let this_year = local_now.year();
    let mut agenda_days: Vec<Day> = Vec::new();
    let mut current: Option<Date> = None;
    for (start, end, row) in upcoming {
        let start = start.to_zoned_datetime(tz.clone());
        let end = end.map(|e| e.to_zoned_datetime(tz.clone()));
        let date = start.date();
        let time = words::time_range(
            lang,
            start.time(),
            end.as_ref().map(|e| {
                let other_day =
                    (e.date() != date).then(|| words::day_heading(lang, e.date(), this_year));
                (e.time(), other_day)
            }),
        );
        let event = Event {
            id: row.id.clone(),
            title: row.title.clone(),
            starts_at: local_rfc3339(&start),
            ends_at: end.as_ref().map(local_rfc3339),
            time,
            office: row.office.clone(),
            location: row.location.clone(),
            language: row.language.clone(),
            capacity: row.capacity.clone(),
            status: row.status.clone(),
            cancelled: is_cancelled(row.status.as_deref()),
            description: row.description.clone(),
        };
        match agenda_days.last_mut() {
            Some(day) if current == Some(date) => day.events.push(event),
            _ => {
                current = Some(date);
                agenda_days.push(Day {
                    date: date.to_string(),
                    heading: words::day_heading(lang, date, this_year),
                    events: vec![event],
                });
            }
        }
    }

    let time_zone = tz.iana_name().map(str::to_string);
    let title = words::title(
        lang,
        days,
        &words::day_heading(lang, local_now.date(), this_year),
        time_zone.as_deref(),
    );
    Ok(Agenda {
        lang,
        time_zone,
        from: local_rfc3339(&local_now),
        until: local_rfc3339(&until),
        window_days: days,
        title,
        days: agenda_days,
        unreadable,
    })
}

/// Text for a terminal: control characters shown as escapes, line breaks
/// and tabs as spaces, so a cell cannot move the cursor or fake a line.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The agenda for people: a title line, then each day's heading and one
/// line per event, then the unreadable events, if any.
pub fn render(agenda: &Agenda) -> String {
    let lang = agenda.lang;
    let mut out = String::new();
    out.push_str(&clean(&agenda.title));
    out.push('\n');
    if agenda.days.is_empty() {
        out.push('\n');
        out.push_str(words::nothing_scheduled(lang));
        out.push('\n');
    }
    let width = words::time_column(lang);
    for day in &agenda.days {
        out.push('\n');
        out.push_str(&day.heading);
        out.push('\n');
        for e in &day.events {
            let mut parts = Vec::new();
            if let Some(office) = &e.office {
                parts.push(clean(office));
            }
            if let Some(location) = &e.location {
                parts.push(clean(location));
            }
            if let Some(language) = e.language.as_deref().map(|l| words::languages(lang, l))
                && !language.is_empty()
            {
                parts.push(clean(&language));
            }
            if let Some(capacity) = &e.capacity {
                parts.push(words::capacity(lang, &clean(capacity)));
            }
            match e.status.as_deref().map(str::trim) {
                _ if e.cancelled => {}
                None => {}
                Some(s) if s.eq_ignore_ascii_case("scheduled") || s.is_empty() => {}
                Some(s) => parts.push(words::status(lang, &clean(s))),
            }
            let title = e
                .title
                .as_deref()
                .map_or_else(|| words::untitled(lang).to_string(), clean);
            let mark = if e.cancelled {
                format!("{} ", words::cancelled_mark(lang))
            } else {
                String::new()
            };
            let time = format!("{:<width$}", e.time);
            out.push_str(&format!("  {time}  {mark}{title}"));
            for p in parts {
                out.push_str(" · ");
                out.push_str(&p);
            }
            out.push('\n');
        }
    }
    if !agenda.unreadable.is_empty() {
        out.push('\n');
        out.push_str(words::unreadable_heading(lang));
        out.push('\n');
        for u in &agenda.unreadable {
            let title = u
                .title
                .as_deref()
                .map_or_else(|| words::untitled(lang).to_string(), clean);
            out.push_str(&format!("  {title}"));
            for p in [&u.office, &u.location].into_iter().flatten() {
                out.push_str(" · ");
                out.push_str(&clean(p));
            }
            out.push_str(&format!("  (id {}: {})\n", clean(&u.id), clean(&u.message)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
