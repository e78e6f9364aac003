//! The agenda page: days, their events (per office, cancelled ones
//! marked), an office filter, and links to earlier and later pages.
//!
//! Owns: the agenda's HTML and the addresses of its links.
//! Must not: choose the events (web/agenda.rs does).

use maud::{Markup, html};

use super::{Chrome, office_label, page};
use crate::schedule::{Event, words};
use crate::web::agenda::Page;
use crate::web::i18n;

/// Descriptions longer than this are cut on the agenda (the edit form
/// shows them whole).
pub const MAX_DESCRIPTION: usize = 240;

/// `/agenda` with the page's parameters.
pub fn link(from: Option<&str>, skip: usize, office: Option<&str>) -> String {
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(format!("from={from}"));
    }
    if skip > 0 {
        query.push(format!("skip={skip}"));
    }
    if let Some(office) = office {
        query.push(format!("office={}", crate::percent::encode(office)));
    }
    if query.is_empty() {
        "/agenda".into()
    } else {
        format!("/agenda?{}", query.join("&"))
    }
}

fn short(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

fn event(c: &Chrome<'_>, e: &Event, can_edit: bool) -> Markup {
    let w = c.words();
    let lang = c.lang;
    let language = e
        .language
        .as_deref()
        .map(|l| words::languages(lang, l))
        .filter(|l| !l.is_empty());
    let done = e
        .status
        .as_deref()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("done"));
    html! {
        li.ev.cancelled[e.cancelled] id={ "e-" (e.id) } {
            div.when { (e.time) }
            div.what {
                h3 {
                    span.t { (e.title.as_deref().unwrap_or(words::untitled(lang))) }
                    @if e.cancelled { " " span.badge.off { (w.cancelled) } }
                    @if done { " " span.badge { (w.status_done) } }
                }
                p.meta {
                    @if let Some(office) = &e.office { span.office { (office_label(office)) } }
                    @if let Some(location) = &e.location { " · " (location) }
                    @if let Some(language) = &language { " · " (language) }
                    @if let Some(capacity) = &e.capacity { " · " (words::capacity(lang, capacity)) }
                }
                @if let Some(d) = &e.description { p.desc { (short(d)) } }
                @if can_edit { a.edit href={ "/events/" (e.id) "/edit" } { (w.edit) } }
            }
        }
    }
}

/// The agenda page for `p`; `offices` for the filter.
pub fn render(c: &Chrome<'_>, p: &Page, offices: &[String], can_edit: bool) -> Markup {
    let w = c.words();
    let a = &p.agenda;
    let office = p.office.as_deref();
    let today = p.today.to_string();
    let from = p.from.to_string();
    // The page's first day, unless it is today (the default).
    let from = (from != today).then_some(from.as_str());
    let earlier = p.earlier.map(|d| d.to_string());
    let earlier = earlier.as_deref().filter(|e| *e != today);
    let later = p.later.0.to_string();
    let body = html! {
        div.bar {
            h1 { (w.agenda) }
            p.sub {
                (i18n::from_day(c.lang, &words::day_heading(c.lang, p.from, p.today.year())))
                " · " (i18n::zone_note(c.lang, c.zone))
            }
        }
        nav.offices aria-label=(w.office) {
            a.on[office.is_none()] href=(link(from, 0, None)) { (w.all_offices) }
            @for o in offices {
                a.on[office == Some(o.as_str())] href=(link(None, 0, Some(o))) { (office_label(o)) }
            }
        }
        @if a.days.is_empty() {
            p.empty { (words::nothing_scheduled(c.lang)) }
        }
        @for (i, day) in a.days.iter().enumerate() {
            section.day id={ "d-" (day.date) } {
                h2 { (day.heading) }
                ul { @for e in &day.events { (event(c, e, can_edit)) } }
                @if p.day_continues && i + 1 == a.days.len() {
                    p.more { (w.more_on_this_day) }
                }
            }
        }
        @if !a.unreadable.is_empty() {
            section.day.unreadable {
                h2 { (w.unreadable) }
                ul {
                    @for u in &a.unreadable {
                        li.ev {
                            div.what {
                                h3 { (u.title.as_deref().unwrap_or(words::untitled(c.lang))) }
                                p.meta { (u.message) }
                                @if can_edit { a.edit href={ "/events/" (u.id) "/edit" } { (w.edit) } }
                            }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if p.earlier.is_some() {
                a href=(link(earlier, 0, office)) { (w.earlier) }
                a href=(link(None, 0, office)) { (w.today) }
            }
            a href=(link(Some(&later), p.later.1, office)) { (w.later) }
        }
    };
    page(c, w.agenda, body)
}

#[cfg(test)]
mod tests {
    use super::super::tests::chrome;
    use super::*;
    use crate::access::staff_tokens::StaffRole;
    use crate::schedule::{EventRow, Lang};
    use crate::web::agenda::{Query, page as agenda_page};

    fn rows() -> Vec<EventRow> {
        vec![
            EventRow {
                id: "ev-1".into(),
                title: Some("Taller <derechos>".into()),
                starts_at: Some("2026-12-01T10:00:00-08:00".into()),
                ends_at: Some("2026-12-01T12:00:00-08:00".into()),
                office: Some("san-diego".into()),
                location: Some("Biblioteca".into()),
                language: Some("es,en".into()),
                capacity: Some("25".into()),
                status: Some("cancelled".into()),
                description: Some("x".repeat(300)),
                ..EventRow::default()
            },
            EventRow {
                id: "ev-2".into(),
                title: Some("Posada".into()),
                starts_at: Some("pronto".into()),
                ..EventRow::default()
            },
        ]
    }

    fn html(lang: Lang, role: StaffRole) -> String {
        let tz = jiff::tz::TimeZone::posix("PST8PDT,M3.2.0,M11.1.0").unwrap();
        let now = "2026-11-30T09:30:00-08:00".parse().unwrap();
        let p = agenda_page(&rows(), now, &tz, lang, &Query::default()).unwrap();
        let offices = vec!["tijuana".to_string(), "san-diego".to_string()];
        render(&chrome(lang, Some(role)), &p, &offices, role.can_edit()).into_string()
    }

    #[test]
    fn events_show_office_and_cancellation_and_editors_get_edit_links() {
        let es = html(Lang::Es, StaffRole::Editor);
        for want in [
            "martes 1 de diciembre",
            "10:00–12:00",
            "Taller &lt;derechos&gt;",
            "class=\"ev cancelled\"",
            "Cancelado",
            "San Diego",
            "Biblioteca · español e inglés · cupo 25",
            "href=\"/events/ev-1/edit\"",
            "Eventos con fechas ilegibles",
            "href=\"/agenda?office=tijuana\"",
            "href=\"/agenda?from=2026-12-14\"",
            "…",
        ] {
            assert!(es.contains(want), "{want} missing in {es}");
        }
        assert!(!es.contains(&"x".repeat(241)), "long descriptions are cut");
        let en = html(Lang::En, StaffRole::Viewer);
        assert!(
            en.contains("Tuesday, December 1")
                && en.contains("Cancelled")
                && en.contains("capacity 25")
        );
        assert!(!en.contains("/edit\""), "a viewer gets no edit link");
    }

    #[test]
    fn links_keep_the_page_and_office() {
        assert_eq!(link(None, 0, None), "/agenda");
        assert_eq!(
            link(Some("2026-12-14"), 80, Some("san diego")),
            "/agenda?from=2026-12-14&skip=80&office=san%20diego"
        );
    }
}
