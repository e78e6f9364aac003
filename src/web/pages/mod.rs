//! The HTML of the web agenda, rendered on the server with maud (every
//! value is escaped unless marked otherwise, and nothing here is; the
//! templates are checked when the crate compiles). No JavaScript: links and
//! plain forms do everything, so the pages work on any phone.
//!
//! Owns: the page frame (header, navigation, language switch, sign-out,
//! footer with the time zone), the error page, and one file per page:
//! `agenda`, `event_form`, `login`, `status`.
//! Must not: decide what a page holds or who may see it (routes and the
//! core do), or print a sealed value (none reaches it).

pub mod agenda;
pub mod event_form;
pub mod login;
pub mod status;

use maud::{DOCTYPE, Markup, html};

use super::i18n::{self, Words};
use crate::access::staff_tokens::StaffRole;
use crate::schedule::Lang;

/// The stylesheet and the icon, embedded (an office may be offline).
pub const STYLE: &str = include_str!("../assets/style.css");
pub const ICON: &str = include_str!("../assets/icon.svg");

/// The stylesheet's address, with a hash of its content so a browser's
/// cached copy (kept a day) is never stale after an upgrade.
pub fn style_href() -> &'static str {
    static HREF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HREF.get_or_init(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
        let short: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("/assets/style.css?v={short}")
    })
}

/// What every page's frame needs.
#[derive(Debug, Clone)]
pub struct Chrome<'a> {
    pub lang: Lang,
    /// This office (the node's name).
    pub office: &'a str,
    /// The IANA name of the agenda's zone.
    pub zone: &'a str,
    /// Who is signed in.
    pub staff: Option<(&'a str, StaffRole)>,
    /// The session's CSRF token (for the sign-out form).
    pub csrf: Option<&'a str>,
    /// This page's address with `lang=` set to the other language.
    pub switch_lang: String,
}

impl Chrome<'_> {
    pub fn words(&self) -> &'static Words {
        i18n::words(self.lang)
    }
}

/// "san-diego" → "San Diego".
pub fn office_label(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn role_label(w: &Words, role: StaffRole) -> &'static str {
    match role {
        StaffRole::Viewer => w.role_viewer,
        StaffRole::Editor => w.role_editor,
        StaffRole::Admin => w.role_admin,
    }
}

/// A hidden CSRF field.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// The frame around every page.
pub fn page(c: &Chrome<'_>, title: &str, body: Markup) -> Markup {
    let w = c.words();
    html! {
        (DOCTYPE)
        html lang=(w.html_lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (w.app) }
                link rel="stylesheet" href=(style_href());
                link rel="icon" type="image/svg+xml" href="/assets/icon.svg";
            }
            body {
                header.top {
                    a.brand href="/agenda" {
                        img src="/assets/icon.svg" alt="" width="28" height="28";
                        span { (w.app) }
                    }
                    span.here { (office_label(c.office)) }
                    nav {
                        @if let Some((_, role)) = c.staff {
                            a href="/agenda" { (w.agenda) }
                            @if role.can_edit() {
                                a href="/events/new" { (w.new_event) }
                            }
                            @if role.sees_status() {
                                a href="/status" { (w.status) }
                            }
                        }
                        a href=(c.switch_lang) hreflang=(w.other_language_code) lang=(w.other_language_code) { (w.other_language) }
                        @if let (Some(_), Some(csrf)) = (c.staff, c.csrf) {
                            form.inline method="post" action="/logout" {
                                (csrf_field(csrf))
                                button.link type="submit" { (w.sign_out) }
                            }
                        }
                    }
                }
                main { (body) }
                footer {
                    @if let Some((name, role)) = c.staff {
                        span { (w.signed_in_as) " " (name) " (" (role_label(w, role)) ")" }
                        " · "
                    }
                    span { (i18n::zone_note(c.lang, c.zone)) }
                }
            }
        }
    }
}

/// A page that only says what went wrong and where to go.
pub fn error(c: &Chrome<'_>, heading: &str, message: &str) -> Markup {
    let w = c.words();
    page(
        c,
        heading,
        html! {
            section.notice role="alert" {
                h1 { (heading) }
                p { (message) }
                p { a href="/agenda" { (w.back) } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn chrome(lang: Lang, role: Option<StaffRole>) -> Chrome<'static> {
        Chrome {
            lang,
            office: "san-diego",
            zone: "America/Tijuana",
            staff: role.map(|r| ("editor-tj", r)),
            csrf: Some("c0ffee"),
            switch_lang: "/agenda?lang=en".into(),
        }
    }

    #[test]
    fn the_frame_names_the_office_zone_and_who_is_signed_in() {
        let html =
            error(&chrome(Lang::Es, Some(StaffRole::Editor)), "No", "<b>x</b>").into_string();
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"es\">"),
            "{html}"
        );
        for want in [
            "San Diego",
            "Horas de America/Tijuana",
            "Sesión de editor-tj (edición)",
            "href=\"/events/new\"",
            "name=\"csrf\" value=\"c0ffee\"",
            "&lt;b&gt;x&lt;/b&gt;",
            "href=\"/agenda?lang=en\"",
        ] {
            assert!(html.contains(want), "{want} missing in {html}");
        }
        assert!(!html.contains("/status\""), "only admins see status");
        let viewer = error(&chrome(Lang::En, Some(StaffRole::Viewer)), "No", "x").into_string();
        assert!(!viewer.contains("/events/new"));
        assert!(viewer.contains("Signed in as editor-tj (viewer)"));
        let admin = error(&chrome(Lang::En, Some(StaffRole::Admin)), "No", "x").into_string();
        assert!(admin.contains("href=\"/status\""));
        let nobody = error(&chrome(Lang::En, None), "No", "x").into_string();
        assert!(!nobody.contains("/logout") && !nobody.contains("/agenda\">Agenda"));
        assert_eq!(office_label("san-diego"), "San Diego");
    }
}
