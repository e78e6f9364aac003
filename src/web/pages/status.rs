//! The sync status panel for staff admins: this office, then each other
//! office with its connection, whether both hold the same data, and when
//! it was last heard from.
//!
//! Owns: the panel's HTML.
//! Must not: compute status (the node does).

use maud::{Markup, html};

use super::{Chrome, office_label, page};
use crate::node::status::{PeerState, Status};
use crate::web::i18n;

/// "hace 2 min (10:32)" / "2 min ago (10:32 AM)".
fn contact(c: &Chrome<'_>, at_ms: Option<u64>, now_ms: u64, tz: &jiff::tz::TimeZone) -> String {
    let w = c.words();
    let Some(at) = at_ms else {
        return w.never.to_string();
    };
    let ago = i18n::ago(c.lang, now_ms.saturating_sub(at) / 1000);
    match jiff::Timestamp::from_millisecond(at as i64) {
        Ok(t) => {
            let time =
                crate::schedule::words::time_of_day(c.lang, t.to_zoned_datetime(tz.clone()).time());
            format!("{ago} ({time})")
        }
        Err(_) => ago,
    }
}

pub fn render(c: &Chrome<'_>, s: &Status, now_ms: u64, tz: &jiff::tz::TimeZone) -> Markup {
    let w = c.words();
    let body = html! {
        h1 { (w.sync_status) }
        p.meta { (w.this_office) ": " strong { (office_label(&s.node)) } " · puente " (s.version) }
        @if s.peers.is_empty() {
            p.empty { (w.no_peers) }
        } @else {
            table.peers {
                thead { tr {
                    th { (w.office) } th { (w.connection) } th { (w.in_sync) } th { (w.last_contact) }
                } }
                tbody {
                    @for p in &s.peers {
                        tr {
                            td { (office_label(&p.name)) }
                            td.state {
                                (match p.state {
                                    PeerState::Connected => w.connected,
                                    PeerState::Connecting => w.connecting,
                                    PeerState::Refused => w.refused,
                                    PeerState::Waiting => w.waiting,
                                })
                            }
                            td.ok[p.in_sync == Some(true)] {
                                (if p.in_sync == Some(true) { w.yes } else { w.no })
                            }
                            td { (contact(c, p.last_contact_ms, now_ms, tz)) }
                        }
                    }
                }
            }
        }
    };
    page(c, w.sync_status, body)
}
