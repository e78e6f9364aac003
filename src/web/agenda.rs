//! The agenda page's content: which days and events one page shows.
//!
//! A page covers up to `PAGE_DAYS` whole days from its first day (today
//! included, from midnight) and at most `MAX_EVENTS` events, so it stays light on a phone:
//! whole days are taken while they fit; a single day with more events is
//! split, and the next page goes on where this one stopped. Events can be
//! narrowed to one office.
//!
//! Owns: the page cursor (first day, events of it to skip), the office
//! filter and the links to earlier and later pages. The agenda itself comes
//! from the schedule core.
//! Must not: read the clock, the store or the request.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::schedule::{self, Agenda, EventRow, Lang, ScheduleError};

/// Days a page covers at most.
pub const PAGE_DAYS: u32 = 14;
/// Events a page shows at most.
pub const MAX_EVENTS: usize = 80;

/// Which page: from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub from: Option<Date>,
    /// Events of the first day already shown on the previous page.
    pub skip: usize,
    pub office: Option<String>,
}

/// One page of the agenda.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The days and events shown (the unreadable events only on the page
    /// that starts today).
    pub agenda: Agenda,
    pub today: Date,
    /// The first day of the page.
    pub from: Date,
    pub skip: usize,
    pub office: Option<String>,
    /// Where the "earlier" link goes (None on the page that starts today).
    pub earlier: Option<Date>,
    /// Where the "later" link goes: a day and the events of it to skip.
    pub later: (Date, usize),
    /// The last day shown goes on on the next page.
    pub day_continues: bool,
}

/// Builds page `q` of the agenda of `rows` as seen at `now` in `tz`.
pub fn page(
    rows: &[EventRow],
    now: Timestamp,
    tz: &TimeZone,
    lang: Lang,
    q: &Query,
) -> Result<Page, ScheduleError> {
    let today = now.to_zoned_datetime(tz.clone()).date();
    let from = q.from.filter(|d| *d > today).unwrap_or(today);
    // Pages are whole days: today's page starts at midnight too (the
    // day's earlier events stay in view), so no event is on two pages.
    let start = from
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(now);
    let wanted: Vec<EventRow>;
    let rows = match &q.office {
        Some(office) => {
            wanted = rows
                .iter()
                .filter(|r| r.office.as_deref() == Some(office.as_str()))
                .cloned()
                .collect();
            &wanted[..]
        }
        None => rows,
    };
    let mut agenda = schedule::build(rows, start, tz, PAGE_DAYS, lang)?;
    if from != today {
        agenda.unreadable.clear();
    }
    let skip = if agenda
        .days
        .first()
        .is_some_and(|d| d.date == from.to_string())
    {
        q.skip
    } else {
        0
    };
    if let Some(first) = agenda.days.first_mut() {
        let n = skip.min(first.events.len());
        first.events.drain(..n);
        if first.events.is_empty() {
            agenda.days.remove(0);
        }
    }
    let end = from
        .checked_add(jiff::Span::new().days(i64::from(PAGE_DAYS)))
        .unwrap_or(from);
    let mut later = (end, 0);
    let mut day_continues = false;
    let mut shown = 0;
    let mut kept = 0;
    for (i, day) in agenda.days.iter_mut().enumerate() {
        let n = day.events.len();
        if shown + n <= MAX_EVENTS {
            shown += n;
            kept = i + 1;
            continue;
        }
        let date: Date = day.date.parse().unwrap_or(end);
        if i == 0 {
            // One day with more events than a page: split it.
            day.events.truncate(MAX_EVENTS);
            let already = if date == from { skip } else { 0 };
            later = (date, already + MAX_EVENTS);
            day_continues = true;
            kept = 1;
        } else {
            later = (date, 0);
        }
        break;
    }
    agenda.days.truncate(kept);
    let earlier = (from > today).then(|| {
        from.checked_sub(jiff::Span::new().days(i64::from(PAGE_DAYS)))
            .map_or(today, |d| d.max(today))
    });
    Ok(Page {
        agenda,
        today,
        from,
        skip,
        office: q.office.clone(),
        earlier,
        later,
        day_continues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacific() -> TimeZone {
        TimeZone::posix("PST8PDT,M3.2.0,M11.1.0").unwrap()
    }

    fn now() -> Timestamp {
        "2026-11-30T09:30:00-08:00".parse().unwrap()
    }

    fn event(id: String, start: String, office: &str) -> EventRow {
        EventRow {
            id,
            title: Some("t".into()),
            starts_at: Some(start),
            office: Some(office.into()),
            ..EventRow::default()
        }
    }

    /// `per_day` events a day for `days` days from Dec 1.
    fn rows(per_day: usize, days: usize) -> Vec<EventRow> {
        let mut out = Vec::new();
        for d in 0..days {
            let date = Date::new(2026, 12, 1).unwrap() + jiff::Span::new().days(d as i64);
            for i in 0..per_day {
                let office = if i % 2 == 0 { "tijuana" } else { "san-diego" };
                out.push(event(
                    format!("e{d:02}-{i:03}"),
                    format!("{date}T{:02}:{:02}:00-08:00", 8 + i / 60 % 12, i % 60),
                    office,
                ));
            }
        }
        out
    }

    fn count(p: &Page) -> usize {
        p.agenda.days.iter().map(|d| d.events.len()).sum()
    }

    #[test]
    fn a_light_fortnight_fits_one_page() {
        let p = page(&rows(3, 30), now(), &pacific(), Lang::Es, &Query::default()).unwrap();
        assert_eq!(p.from, Date::new(2026, 11, 30).unwrap());
        // Nov 30 .. Dec 13 (14 days from 09:30 on Nov 30): Dec 1..=13.
        assert_eq!(p.agenda.days.len(), 13);
        assert_eq!(p.later, (Date::new(2026, 12, 14).unwrap(), 0));
        assert_eq!(p.earlier, None);
        assert!(!p.day_continues);
        let next = page(
            &rows(3, 30),
            now(),
            &pacific(),
            Lang::Es,
            &Query {
                from: Some(p.later.0),
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(next.agenda.days[0].date, "2026-12-14");
        assert_eq!(next.earlier, Some(Date::new(2026, 11, 30).unwrap()));
    }

    #[test]
    fn busy_days_stop_the_page_at_a_whole_day() {
        let p = page(
            &rows(30, 10),
            now(),
            &pacific(),
            Lang::En,
            &Query::default(),
        )
        .unwrap();
        assert_eq!(count(&p), 60);
        assert_eq!(p.later, (Date::new(2026, 12, 3).unwrap(), 0));
        assert!(!p.day_continues);
    }

    #[test]
    fn a_day_busier_than_a_page_is_split_across_pages() {
        let all = rows(200, 2);
        let mut q = Query::default();
        let mut seen = Vec::new();
        for _ in 0..6 {
            let p = page(&all, now(), &pacific(), Lang::Es, &q).unwrap();
            assert!(count(&p) <= MAX_EVENTS);
            seen.extend(
                p.agenda
                    .days
                    .iter()
                    .flat_map(|d| d.events.iter().map(|e| e.id.clone())),
            );
            q = Query {
                from: Some(p.later.0),
                skip: p.later.1,
                office: None,
            };
        }
        let mut want: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
        want.sort();
        let mut got = seen.clone();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), seen.len(), "an event shown twice");
        assert_eq!(got, want, "every event shown once");
    }

    #[test]
    fn the_office_filter_keeps_that_office_only() {
        let q = Query {
            office: Some("san-diego".into()),
            ..Query::default()
        };
        let p = page(&rows(4, 3), now(), &pacific(), Lang::Es, &q).unwrap();
        assert_eq!(count(&p), 6);
        assert!(
            p.agenda
                .days
                .iter()
                .flat_map(|d| &d.events)
                .all(|e| e.office.as_deref() == Some("san-diego"))
        );
    }
}
