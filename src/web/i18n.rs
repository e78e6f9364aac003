//! Every word the web agenda shows, in Spanish and English, and how the
//! language is chosen: `?lang=` (then remembered in a cookie), the cookie,
//! the browser's Accept-Language, Spanish otherwise.
//!
//! Owns: the two word tables (one struct, so a word missing in one
//! language does not compile), sentences with numbers or names in them, and
//! the wording of form errors and refusals.
//! Must not: decide what a page holds (pages/ does) or read requests.

use crate::schedule::Lang;

use super::form::FieldError;

/// The language of a request: an explicit choice first, then the cookie,
/// then the best of Accept-Language, then Spanish.
pub fn choose(query: Option<&str>, cookie: Option<&str>, accept: Option<&str>) -> Lang {
    let explicit = |v: Option<&str>| v.and_then(|v| Lang::parse(v).ok());
    explicit(query)
        .or_else(|| explicit(cookie))
        .or_else(|| accept.and_then(negotiate))
        .unwrap_or(Lang::Es)
}

/// The preferred of Spanish and English in an Accept-Language header (by
/// q-value, then order), if it names either.
pub fn negotiate(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let Ok(lang) = Lang::parse(tag) else { continue };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

/// The fixed words of the web agenda.
pub struct Words {
    pub html_lang: &'static str,
    pub app: &'static str,
    pub agenda: &'static str,
    pub new_event: &'static str,
    pub edit_event: &'static str,
    pub status: &'static str,
    pub sign_out: &'static str,
    pub sign_in: &'static str,
    pub signed_in_as: &'static str,
    pub other_language: &'static str,
    pub other_language_code: &'static str,
    pub all_offices: &'static str,
    pub today: &'static str,
    pub earlier: &'static str,
    pub later: &'static str,
    pub cancelled: &'static str,
    pub edit: &'static str,
    pub cancel_event: &'static str,
    pub more_on_this_day: &'static str,
    pub unreadable: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub start: &'static str,
    pub end_optional: &'static str,
    pub date: &'static str,
    pub time: &'static str,
    pub location: &'static str,
    pub office: &'static str,
    pub language: &'static str,
    pub capacity: &'static str,
    pub save: &'static str,
    pub back: &'static str,
    pub check_fields: &'static str,
    pub lang_es: &'static str,
    pub lang_en: &'static str,
    pub lang_both: &'static str,
    pub status_scheduled: &'static str,
    pub status_cancelled: &'static str,
    pub status_done: &'static str,
    pub access_key: &'static str,
    pub login_help: &'static str,
    pub bad_token: &'static str,
    pub session_over: &'static str,
    pub forged: &'static str,
    pub not_allowed: &'static str,
    pub no_page: &'static str,
    pub no_event: &'static str,
    pub sealed: &'static str,
    pub no_reveal: &'static str,
    pub failed: &'static str,
    pub sync_status: &'static str,
    pub this_office: &'static str,
    pub connection: &'static str,
    pub in_sync: &'static str,
    pub last_contact: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub never: &'static str,
    pub connected: &'static str,
    pub connecting: &'static str,
    pub refused: &'static str,
    pub waiting: &'static str,
    pub no_peers: &'static str,
    pub role_viewer: &'static str,
    pub role_editor: &'static str,
    pub role_admin: &'static str,
    pub no_events_table: &'static str,
}

pub static ES: Words = Words {
    html_lang: "es",
    app: "Agenda de actividades",
    agenda: "Agenda",
    new_event: "Nuevo evento",
    edit_event: "Editar evento",
    status: "Estado",
    sign_out: "Salir",
    sign_in: "Entrar",
    signed_in_as: "Sesión de",
    other_language: "English",
    other_language_code: "en",
    all_offices: "Todas las oficinas",
    today: "Hoy",
    earlier: "← Anteriores",
    later: "Siguientes →",
    cancelled: "Cancelado",
    edit: "Editar",
    cancel_event: "Cancelar evento",
    more_on_this_day: "Hay más eventos este día en la página siguiente.",
    unreadable: "Eventos con fechas ilegibles (corríjalas con «Editar»)",
    title: "Título",
    description: "Descripción",
    start: "Inicio",
    end_optional: "Fin (opcional)",
    date: "Fecha",
    time: "Hora",
    location: "Lugar",
    office: "Oficina",
    language: "Idioma",
    capacity: "Cupo",
    save: "Guardar",
    back: "Volver a la agenda",
    check_fields: "Revise los campos marcados:",
    lang_es: "Español",
    lang_en: "Inglés",
    lang_both: "Español e inglés",
    status_scheduled: "Programado",
    status_cancelled: "Cancelado",
    status_done: "Realizado",
    access_key: "Clave de acceso",
    login_help: "Pegue la clave de su enlace de acceso. Si no tiene una, pídala a quien administra puente en su oficina.",
    bad_token: "Esa clave no es válida o ya fue retirada. Pida un enlace nuevo a quien administra puente en su oficina.",
    session_over: "Su sesión terminó. Vuelva a entrar con su enlace de acceso.",
    forged: "Este formulario no viene de esta página (falta o no coincide su protección contra falsificación). Vuelva a cargar la página y envíelo otra vez.",
    not_allowed: "Su función no permite hacer esto. Si lo necesita, pídalo a quien administra puente en su oficina.",
    no_page: "No existe esa página.",
    no_event: "Ese evento no existe o fue borrado.",
    sealed: "La web nunca muestra ni escribe datos sellados. Solo se consultan en el servidor de Tijuana con `puente rows get … --reveal`, y cada consulta queda registrada.",
    no_reveal: "La web nunca revela datos sellados. Solo se consultan en el servidor de Tijuana con `puente rows get … --reveal`, y cada consulta queda registrada.",
    failed: "Algo falló en el servidor y no se guardó nada. Inténtelo de nuevo; si sigue fallando, avise a quien administra puente.",
    sync_status: "Estado de la sincronización",
    this_office: "Esta oficina",
    connection: "Conexión",
    in_sync: "Al día",
    last_contact: "Último contacto",
    yes: "sí",
    no: "no",
    never: "nunca",
    connected: "conectada",
    connecting: "conectando",
    refused: "rechazada",
    waiting: "esperando que llame",
    no_peers: "No hay otras oficinas configuradas.",
    role_viewer: "lectura",
    role_editor: "edición",
    role_admin: "administración",
    no_events_table: "El esquema no tiene la tabla outreach_events, así que no hay agenda que mostrar.",
};

pub static EN: Words = Words {
    html_lang: "en",
    app: "Outreach agenda",
    agenda: "Agenda",
    new_event: "New event",
    edit_event: "Edit event",
    status: "Status",
    sign_out: "Sign out",
    sign_in: "Sign in",
    signed_in_as: "Signed in as",
    other_language: "Español",
    other_language_code: "es",
    all_offices: "All offices",
    today: "Today",
    earlier: "← Earlier",
    later: "Later →",
    cancelled: "Cancelled",
    edit: "Edit",
    cancel_event: "Cancel event",
    more_on_this_day: "There are more events on this day on the next page.",
    unreadable: "Events whose dates cannot be read (fix them with “Edit”)",
    title: "Title",
    description: "Description",
    start: "Start",
    end_optional: "End (optional)",
    date: "Date",
    time: "Time",
    location: "Location",
    office: "Office",
    language: "Language",
    capacity: "Capacity",
    save: "Save",
    back: "Back to the agenda",
    check_fields: "Please check the marked fields:",
    lang_es: "Spanish",
    lang_en: "English",
    lang_both: "Spanish and English",
    status_scheduled: "Scheduled",
    status_cancelled: "Cancelled",
    status_done: "Done",
    access_key: "Access key",
    login_help: "Paste the key from your login link. If you have none, ask whoever runs puente at your office.",
    bad_token: "That key is not valid or has been removed. Ask whoever runs puente at your office for a new link.",
    session_over: "Your session has ended. Sign in again with your login link.",
    forged: "This form did not come from this page (its forgery protection is missing or does not match). Reload the page and send it again.",
    not_allowed: "Your role does not allow this. If you need it, ask whoever runs puente at your office.",
    no_page: "There is no such page.",
    no_event: "That event does not exist or was deleted.",
    sealed: "The web never shows or writes sealed data. It is read only on the Tijuana server with `puente rows get … --reveal`, and every read is recorded.",
    no_reveal: "The web never reveals sealed data. It is read only on the Tijuana server with `puente rows get … --reveal`, and every read is recorded.",
    failed: "Something failed on the server and nothing was saved. Try again; if it keeps failing, tell whoever runs puente.",
    sync_status: "Sync status",
    this_office: "This office",
    connection: "Connection",
    in_sync: "In sync",
    last_contact: "Last contact",
    yes: "yes",
    no: "no",
    never: "never",
    connected: "connected",
    connecting: "connecting",
    refused: "refused",
    waiting: "waiting for it to call",
    no_peers: "No other offices are configured.",
    role_viewer: "viewer",
    role_editor: "editor",
    role_admin: "admin",
    no_events_table: "The schema has no outreach_events table, so there is no agenda to show.",
};

pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Es => &ES,
        Lang::En => &EN,
    }
}

/// "Hora de America/Tijuana" / "Times in America/Tijuana".
pub fn zone_note(lang: Lang, zone: &str) -> String {
    match lang {
        Lang::Es => format!("Horas de {zone}"),
        Lang::En => format!("Times in {zone}"),
    }
}

/// "A partir del martes 1 de diciembre" / "From Tuesday, December 1".
pub fn from_day(lang: Lang, heading: &str) -> String {
    match lang {
        Lang::Es => format!("A partir del {heading}"),
        Lang::En => format!("From {heading}"),
    }
}

/// Too many sign-in attempts.
pub fn slow_down(lang: Lang, seconds: u64) -> String {
    match lang {
        Lang::Es => format!(
            "Demasiados intentos de entrar. Espere {seconds} segundos y vuelva a intentarlo."
        ),
        Lang::En => format!("Too many sign-in attempts. Wait {seconds} seconds and try again."),
    }
}

/// A body over the limit.
pub fn too_large(lang: Lang, kib: usize) -> String {
    match lang {
        Lang::Es => format!(
            "El formulario es demasiado grande (el máximo es {kib} KB). Acorte la descripción y vuelva a enviarlo."
        ),
        Lang::En => format!(
            "The form is too large (the limit is {kib} KB). Shorten the description and send it again."
        ),
    }
}

/// A form with a field it should not have.
pub fn unknown_field(lang: Lang, field: &str) -> String {
    match lang {
        Lang::Es => format!(
            "El formulario trae un campo que no existe («{field}») y no se guardó nada. Vuelva a cargar la página y envíelo otra vez."
        ),
        Lang::En => format!(
            "The form has a field that does not exist (“{field}”) and nothing was saved. Reload the page and send it again."
        ),
    }
}

/// A write this office may not make (the schema's rights); `office` is
/// this office, `offices` those that may (empty: none).
pub fn not_this_office(lang: Lang, office: &str, offices: &[String]) -> String {
    let may = offices.join(", ");
    match (lang, offices.is_empty()) {
        (Lang::Es, false) => format!(
            "La oficina {office} no puede hacer este cambio y no se guardó nada: solo {may}, según los permisos del esquema compartido. Pida a {may} que lo haga."
        ),
        (Lang::Es, true) => format!(
            "La oficina {office} no puede hacer este cambio y no se guardó nada: ninguna oficina puede, según los permisos del esquema compartido."
        ),
        (Lang::En, false) => format!(
            "The {office} office may not make this change, and nothing was saved: only {may} may, by the rights in the shared schema. Ask {may} to make it."
        ),
        (Lang::En, true) => format!(
            "The {office} office may not make this change, and nothing was saved: no office may, by the rights in the shared schema."
        ),
    }
}

/// "hace 3 min" / "3 min ago".
pub fn ago(lang: Lang, seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "min"),
        s if s < 86_400 => (s / 3600, "h"),
        s => (s / 86_400, "d"),
    };
    match lang {
        Lang::Es => format!("hace {n} {unit}"),
        Lang::En => format!("{n} {unit} ago"),
    }
}

/// The label of a form field.
pub fn field_label(lang: Lang, field: &str) -> &'static str {
    let w = words(lang);
    match field {
        "title" => w.title,
        "description" => w.description,
        "start_date" | "start_time" => w.start,
        "end_date" | "end_time" => w.end_optional,
        "location" => w.location,
        "office" => w.office,
        "language" => w.language,
        "capacity" => w.capacity,
        "status" => w.status,
        _ => "",
    }
}

/// A form error in words.
pub fn field_error(lang: Lang, e: &FieldError) -> String {
    let label = |f| field_label(lang, f);
    match (lang, e) {
        (Lang::Es, FieldError::Required(f)) => format!("{}: falta este dato.", label(f)),
        (Lang::En, FieldError::Required(f)) => format!("{}: this is required.", label(f)),
        (Lang::Es, FieldError::BadDate(f)) => {
            format!(
                "{}: la fecha no es válida; escríbala como AAAA-MM-DD, p. ej. 2026-12-01.",
                label(f)
            )
        }
        (Lang::En, FieldError::BadDate(f)) => {
            format!(
                "{}: the date is not valid; write it as YYYY-MM-DD, e.g. 2026-12-01.",
                label(f)
            )
        }
        (Lang::Es, FieldError::BadTime(f)) => {
            format!(
                "{}: la hora no es válida; escríbala como HH:MM en 24 horas, p. ej. 16:30.",
                label(f)
            )
        }
        (Lang::En, FieldError::BadTime(f)) => {
            format!(
                "{}: the time is not valid; write it as HH:MM on a 24-hour clock, e.g. 16:30.",
                label(f)
            )
        }
        (Lang::Es, FieldError::NoSuchTime(f)) => {
            format!(
                "{}: esa hora no existe en esta zona horaria ese día.",
                label(f)
            )
        }
        (Lang::En, FieldError::NoSuchTime(f)) => {
            format!(
                "{}: that time does not exist in this time zone on that day.",
                label(f)
            )
        }
        (Lang::Es, FieldError::EndBeforeStart) => {
            "Fin: el evento debe terminar después de empezar.".into()
        }
        (Lang::En, FieldError::EndBeforeStart) => "End: the event must end after it starts.".into(),
        (Lang::Es, FieldError::UnknownOffice(o)) => {
            format!("Oficina: «{o}» no es una de las oficinas de puente.")
        }
        (Lang::En, FieldError::UnknownOffice(o)) => {
            format!("Office: “{o}” is not one of puente's offices.")
        }
        (Lang::Es, FieldError::CapacityNotNumber) => {
            "Cupo: escriba un número entero de personas, p. ej. 25.".into()
        }
        (Lang::En, FieldError::CapacityNotNumber) => {
            "Capacity: write a whole number of people, e.g. 25.".into()
        }
        (Lang::Es, FieldError::CapacityOutOfRange) => {
            format!("Cupo: debe ser de 0 a {}.", super::form::MAX_CAPACITY)
        }
        (Lang::En, FieldError::CapacityOutOfRange) => format!(
            "Capacity: it must be from 0 to {}.",
            super::form::MAX_CAPACITY
        ),
        (Lang::Es, FieldError::TooLong(f, n)) => {
            format!("{}: es demasiado largo (máximo {n} caracteres).", label(f))
        }
        (Lang::En, FieldError::TooLong(f, n)) => {
            format!("{}: it is too long (at most {n} characters).", label(f))
        }
        (Lang::Es, FieldError::UnknownChoice(f)) => {
            format!("{}: elija una de las opciones de la lista.", label(f))
        }
        (Lang::En, FieldError::UnknownChoice(f)) => {
            format!("{}: choose one of the options in the list.", label(f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_choice_the_cookie_or_the_browser() {
        assert_eq!(choose(Some("en"), Some("es"), Some("es")), Lang::En);
        assert_eq!(choose(None, Some("en"), Some("es-MX")), Lang::En);
        assert_eq!(choose(Some("fr"), None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            choose(None, None, Some("fr-FR, en;q=0.5, es;q=0.8")),
            Lang::Es
        );
        assert_eq!(choose(None, None, Some("en-US,es;q=0")), Lang::En);
        assert_eq!(choose(None, None, Some("de")), Lang::Es);
        assert_eq!(choose(None, None, None), Lang::Es);
        assert_eq!(negotiate("es-MX,es;q=0.9,en;q=0.8"), Some(Lang::Es));
        assert_eq!(negotiate("*"), None);
    }

    #[test]
    fn every_form_error_reads_in_both_languages() {
        let errors = [
            FieldError::Required("title"),
            FieldError::BadDate("start_date"),
            FieldError::BadTime("end_time"),
            FieldError::NoSuchTime("start_time"),
            FieldError::EndBeforeStart,
            FieldError::UnknownOffice("ensenada".into()),
            FieldError::CapacityNotNumber,
            FieldError::CapacityOutOfRange,
            FieldError::TooLong("title", 200),
            FieldError::UnknownChoice("status"),
        ];
        for e in &errors {
            let (es, en) = (field_error(Lang::Es, e), field_error(Lang::En, e));
            assert_ne!(es, en);
            assert!(es.ends_with('.') && en.ends_with('.'), "{es} / {en}");
            assert!(!es.starts_with(':') && !en.starts_with(':'), "{es} / {en}");
        }
        assert_eq!(
            field_error(Lang::Es, &FieldError::EndBeforeStart),
            "Fin: el evento debe terminar después de empezar."
        );
    }
}
