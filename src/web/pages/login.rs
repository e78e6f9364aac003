//! The sign-in page: one field for the access key (filled in when the
//! login link carries it), a message when something went wrong.
//!
//! Owns: the sign-in form's HTML.
//! Must not: check keys or count attempts (routes and ratelimit do).

use maud::{Markup, html};

use super::{Chrome, csrf_field, page};

pub fn render(c: &Chrome<'_>, token: &str, message: Option<&str>, csrf: &str) -> Markup {
    let w = c.words();
    let body = html! {
        section.login {
            h1 { (w.sign_in) }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form method="post" action="/login" {
                (csrf_field(csrf))
                label for="token" { (w.access_key) }
                input #token name="token" required autocomplete="off" autocapitalize="none" spellcheck="false" value=(token);
                div.actions { button type="submit" { (w.sign_in) } }
            }
            p.help { (w.login_help) }
        }
    };
    page(c, w.sign_in, body)
}
