//! The calendar feed (RFC 5545): the outreach events as an iCalendar file
//! that phones subscribe to.
//!
//! Choices:
//! - Times are UTC (`DTSTART:20261201T180000Z`). Every calendar app reads
//!   UTC and shows it in the phone's own zone; a VTIMEZONE would have to
//!   restate the zone's rules, which apps handle unevenly. The office's
//!   zone goes along as the display hint `X-WR-TIMEZONE` (the calendar's
//!   zone for apps that read it), the same zone the web agenda and
//!   `puente schedule` show.
//! - `UID` is the row id (`ID@puente`): it never changes, and a deleted id
//!   is never reused.
//! - `LAST-MODIFIED` and `DTSTAMP` are the row's newest cell version (its
//!   HLC's wall-clock part). No METHOD is given, so DTSTAMP means "last
//!   revised" (RFC 5545 3.8.7.2), and the feed is the same at every office
//!   holding the same rows.
//! - `SEQUENCE` is that version in whole seconds since 2025-01-01 UTC: the
//!   HLC only grows, so every later change of a row gets a SEQUENCE at least
//!   as high, and one a second or more later gets a higher one (a counter of
//!   changes would differ between offices, which learn of changes in
//!   different batches). It fits RFC 5545's 32-bit integer until 2093.
//! - Events that ended more than 90 days ago are left out; events whose
//!   dates cannot be read are left out (the web agenda lists them).
//!
//! Owns: choosing, ordering and writing the events: escaping, folding at
//! 75 octets, CRLF line ends.
//! Must not: read the clock or the store; only shared columns reach it.

use jiff::Timestamp;

use crate::clock::Hlc;
use crate::schedule::{EventRow, Lang, is_cancelled, parse_instant, words};

/// Seconds from the unix epoch to 2025-01-01T00:00:00Z (SEQUENCE's zero).
pub const SEQUENCE_EPOCH_S: i64 = 1_735_689_600;

/// Events that ended longer ago than this are left out.
pub const KEEP_PAST_DAYS: i64 = 90;

/// What to put in the feed.
#[derive(Debug, Clone)]
pub struct Feed<'a> {
    pub lang: Lang,
    /// Only events of this office.
    pub office: Option<&'a str>,
    pub now: Timestamp,
    /// The office's zone (IANA name): the feed's display hint.
    pub zone: &'a str,
}

/// SEQUENCE of a row whose newest cell version is `hlc`.
pub fn sequence(hlc: Hlc) -> u32 {
    let secs = (hlc.millis() / 1000) as i64 - SEQUENCE_EPOCH_S;
    secs.clamp(0, i64::from(i32::MAX)) as u32
}

/// A UTC date-time in the basic format: 20261201T180000Z.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value: backslash, semicolon, comma and line breaks
/// (RFC 5545 3.3.11); other control characters are dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so no line exceeds 75 octets (a
/// continuation starts with a space), never inside a UTF-8 character,
/// ended with CRLF.
pub fn push_line(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = 75;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space counts.
        limit = 74;
    }
}

fn status_line(row: &EventRow) -> &'static str {
    if is_cancelled(row.status.as_deref()) {
        "CANCELLED"
    } else {
        "CONFIRMED"
    }
}

/// The description: the event's own text, then office, languages and
/// capacity on lines of their own.
fn description(row: &EventRow, lang: Lang) -> String {
    let mut lines = Vec::new();
    if let Some(d) = &row.description {
        lines.push(d.clone());
    }
    if let Some(office) = &row.office {
        lines.push(match lang {
            Lang::Es => format!("Oficina: {office}"),
            Lang::En => format!("Office: {office}"),
        });
    }
    if let Some(l) = row.language.as_deref().map(|l| words::languages(lang, l))
        && !l.is_empty()
    {
        lines.push(match lang {
            Lang::Es => format!("Idioma: {l}"),
            Lang::En => format!("Language: {l}"),
        });
    }
    if let Some(c) = &row.capacity {
        lines.push(words::capacity(lang, c));
    }
    lines.join("\n")
}

/// The events of `rows` the feed holds, with their instants, in order of
/// start (then id).
pub fn chosen<'r>(
    rows: &'r [EventRow],
    feed: &Feed<'_>,
) -> Vec<(&'r EventRow, Timestamp, Option<Timestamp>)> {
    let oldest = feed.now.as_second() - KEEP_PAST_DAYS * 86_400;
    let mut out: Vec<_> = rows
        .iter()
        .filter(|r| feed.office.is_none_or(|o| r.office.as_deref() == Some(o)))
        .filter_map(|r| {
            let start = parse_instant(r.starts_at.as_deref()?)?;
            let end = match r.ends_at.as_deref() {
                None => None,
                Some(text) => Some(parse_instant(text).filter(|e| *e >= start)?),
            };
            (end.unwrap_or(start).as_second() >= oldest).then_some((r, start, end))
        })
        .collect();
    out.sort_by(|a, b| (a.1, &a.0.id).cmp(&(b.1, &b.0.id)));
    out
}

/// The whole feed.
pub fn render(rows: &[EventRow], feed: &Feed<'_>) -> String {
    let events = chosen(rows, feed);
    let mut out = String::with_capacity(256 + events.len() * 400);
    let name = match (feed.lang, feed.office) {
        (Lang::Es, None) => "Agenda de actividades".to_string(),
        (Lang::Es, Some(o)) => format!("Agenda de actividades: {o}"),
        (Lang::En, None) => "Outreach agenda".to_string(),
        (Lang::En, Some(o)) => format!("Outreach agenda: {o}"),
    };
    for line in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        &format!(
            "PRODID:-//puente//outreach agenda//{}",
            feed.lang.code().to_uppercase()
        ),
        "CALSCALE:GREGORIAN",
        &format!("X-WR-CALNAME:{}", escape(&name)),
        &format!("X-WR-TIMEZONE:{}", escape(feed.zone)),
        "REFRESH-INTERVAL;VALUE=DURATION:PT15M",
        "X-PUBLISHED-TTL:PT15M",
    ] {
        push_line(&mut out, line);
    }
    for (row, start, end) in events {
        let modified = row
            .updated
            .and_then(|h| Timestamp::from_millisecond(h.millis() as i64).ok())
            .unwrap_or(feed.now);
        push_line(&mut out, "BEGIN:VEVENT");
        push_line(&mut out, &format!("UID:{}@puente", row.id));
        push_line(&mut out, &format!("DTSTAMP:{}", utc(modified)));
        push_line(&mut out, &format!("LAST-MODIFIED:{}", utc(modified)));
        push_line(
            &mut out,
            &format!("SEQUENCE:{}", row.updated.map_or(0, sequence)),
        );
        push_line(&mut out, &format!("DTSTART:{}", utc(start)));
        if let Some(end) = end {
            push_line(&mut out, &format!("DTEND:{}", utc(end)));
        }
        let title = row
            .title
            .as_deref()
            .unwrap_or_else(|| words::untitled(feed.lang));
        push_line(&mut out, &format!("SUMMARY:{}", escape(title)));
        if let Some(location) = &row.location {
            push_line(&mut out, &format!("LOCATION:{}", escape(location)));
        }
        let text = description(row, feed.lang);
        if !text.is_empty() {
            push_line(&mut out, &format!("DESCRIPTION:{}", escape(&text)));
        }
        if let Some(office) = &row.office {
            push_line(&mut out, &format!("CATEGORIES:{}", escape(office)));
        }
        push_line(&mut out, &format!("STATUS:{}", status_line(row)));
        push_line(&mut out, "END:VEVENT");
    }
    push_line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
#[path = "ics_tests.rs"]
mod tests;
