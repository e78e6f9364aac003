//! The event form (new and edit), with the errors of a refused submission
//! next to their fields and summed up on top, and the cancel button.
//!
//! Owns: the form's HTML (labels, inputs, choices, hints).
//! Must not: check the form (web/form.rs does).

use maud::{Markup, html};

use super::{Chrome, csrf_field, office_label, page};
use crate::web::form::{
    EventInput, FieldError, LANGUAGES, MAX_CAPACITY, MAX_DESCRIPTION, MAX_LOCATION, MAX_TITLE,
    STATUSES,
};
use crate::web::i18n;

/// What the form is for.
pub enum FormTarget<'a> {
    New,
    Edit { id: &'a str },
}

fn invalid(errors: &[FieldError], fields: &[&str]) -> bool {
    errors.iter().any(|e| fields.contains(&e.field()))
}

/// The form page.
pub fn render(
    c: &Chrome<'_>,
    target: &FormTarget<'_>,
    input: &EventInput,
    errors: &[FieldError],
    offices: &[String],
    csrf: &str,
) -> Markup {
    let w = c.words();
    let (heading, action) = match target {
        FormTarget::New => (w.new_event, "/events".to_string()),
        FormTarget::Edit { id } => (w.edit_event, format!("/events/{id}")),
    };
    let language_label = |code: &str| match code {
        "es" => w.lang_es,
        "en" => w.lang_en,
        _ => w.lang_both,
    };
    let status_label = |code: &str| match code {
        "cancelled" => w.status_cancelled,
        "done" => w.status_done,
        _ => w.status_scheduled,
    };
    let body = html! {
        h1 { (heading) }
        @if !errors.is_empty() {
            div.errors role="alert" {
                p { (w.check_fields) }
                ul { @for e in errors { li { (i18n::field_error(c.lang, e)) } } }
            }
        }
        form.event method="post" action=(action) {
            (csrf_field(csrf))
            label for="title" { (w.title) }
            input #title name="title" required maxlength=(MAX_TITLE) value=(input.title)
                aria-invalid=[invalid(errors, &["title"]).then_some("true")];
            fieldset.when aria-invalid=[invalid(errors, &["start_date", "start_time"]).then_some("true")] {
                legend { (w.start) }
                label { (w.date) input type="date" name="start_date" required value=(input.start_date) placeholder="2026-12-01"; }
                label { (w.time) input type="time" name="start_time" value=(input.start_time) placeholder="10:00"; }
            }
            fieldset.when aria-invalid=[invalid(errors, &["end_date", "end_time"]).then_some("true")] {
                legend { (w.end_optional) }
                label { (w.date) input type="date" name="end_date" value=(input.end_date) placeholder="2026-12-01"; }
                label { (w.time) input type="time" name="end_time" value=(input.end_time) placeholder="12:00"; }
            }
            label for="location" { (w.location) }
            input #location name="location" maxlength=(MAX_LOCATION) value=(input.location)
                aria-invalid=[invalid(errors, &["location"]).then_some("true")];
            label for="office" { (w.office) }
            select #office name="office" aria-invalid=[invalid(errors, &["office"]).then_some("true")] {
                @for o in offices {
                    option value=(o) selected[input.office == *o] { (office_label(o)) }
                }
            }
            label for="language" { (w.language) }
            select #language name="language" {
                @for code in LANGUAGES {
                    option value=(code) selected[input.language == code] { (language_label(code)) }
                }
            }
            label for="capacity" { (w.capacity) }
            input #capacity name="capacity" type="number" min="0" max=(MAX_CAPACITY) inputmode="numeric" value=(input.capacity)
                aria-invalid=[invalid(errors, &["capacity"]).then_some("true")];
            label for="status" { (w.status) }
            select #status name="status" {
                @for code in STATUSES {
                    option value=(code) selected[input.status == code] { (status_label(code)) }
                }
            }
            label for="description" { (w.description) }
            textarea #description name="description" rows="4" maxlength=(MAX_DESCRIPTION)
                aria-invalid=[invalid(errors, &["description"]).then_some("true")] { (input.description) }
            div.actions {
                button type="submit" { (w.save) }
                a href="/agenda" { (w.back) }
            }
        }
        @if let FormTarget::Edit { id } = target {
            form.cancel method="post" action={ "/events/" (id) "/cancel" } {
                (csrf_field(csrf))
                button.danger type="submit" { (w.cancel_event) }
            }
        }
    };
    page(c, heading, body)
}

#[cfg(test)]
mod tests {
    use super::super::tests::chrome;
    use super::*;
    use crate::access::staff_tokens::StaffRole;
    use crate::schedule::Lang;

    #[test]
    fn errors_are_in_the_users_language_and_values_come_back_escaped() {
        let input = EventInput {
            title: "\"><script>".into(),
            office: "san-diego".into(),
            language: "es,en".into(),
            status: "scheduled".into(),
            capacity: "veinte".into(),
            ..EventInput::default()
        };
        let errors = vec![FieldError::CapacityNotNumber, FieldError::EndBeforeStart];
        let offices = vec!["tijuana".to_string(), "san-diego".to_string()];
        let es = render(
            &chrome(Lang::Es, Some(StaffRole::Editor)),
            &FormTarget::Edit { id: "ev-1" },
            &input,
            &errors,
            &offices,
            "tok",
        )
        .into_string();
        for want in [
            "Revise los campos marcados:",
            "Cupo: escriba un número entero de personas, p. ej. 25.",
            "Fin: el evento debe terminar después de empezar.",
            "value=\"&quot;&gt;&lt;script&gt;\"",
            "<option value=\"san-diego\" selected>San Diego</option>",
            "<option value=\"es,en\" selected>Español e inglés</option>",
            "action=\"/events/ev-1\"",
            "action=\"/events/ev-1/cancel\"",
            "name=\"csrf\" value=\"tok\"",
            "aria-invalid=\"true\"",
        ] {
            assert!(es.contains(want), "{want} missing in {es}");
        }
        assert!(!es.contains("<script>"));
        let en = render(
            &chrome(Lang::En, Some(StaffRole::Editor)),
            &FormTarget::New,
            &EventInput::default(),
            &[],
            &offices,
            "tok",
        )
        .into_string();
        assert!(en.contains("New event") && en.contains("action=\"/events\""));
        assert!(!en.contains("/cancel") && !en.contains("role=\"alert\""));
    }
}
