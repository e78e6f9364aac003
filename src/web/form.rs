//! The event form: reading a submitted form and checking it.
//!
//! Owns: the form's fields, refusing fields it does not know (and sealed
//! columns by name), turning local date and time inputs into RFC 3339 with
//! the zone's offset, the rules (a title, readable dates, the end after the
//! start, a known office, a whole-number capacity, bounded lengths), and
//! which columns an edit really changes.
//! Must not: write anything or know HTTP; errors are codes, worded in the
//! user's language by `i18n`.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::schedule::{EventRow, parse_instant};
use crate::value::Value;

/// The fields of the form, in order (besides the CSRF token).
pub const FIELDS: [&str; 11] = [
    "title",
    "description",
    "start_date",
    "start_time",
    "end_date",
    "end_time",
    "location",
    "office",
    "language",
    "capacity",
    "status",
];

pub const MAX_TITLE: usize = 200;
pub const MAX_LOCATION: usize = 200;
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_CAPACITY: i64 = 100_000;

/// Language choices: stored value.
pub const LANGUAGES: [&str; 3] = ["es", "en", "es,en"];
/// Status choices: stored value.
pub const STATUSES: [&str; 3] = ["scheduled", "cancelled", "done"];

/// What can be wrong with a submitted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// A required field is empty.
    Required(&'static str),
    /// A date that is not YYYY-MM-DD.
    BadDate(&'static str),
    /// A time that is not HH:MM.
    BadTime(&'static str),
    /// That local time does not exist or cannot be placed in the zone.
    NoSuchTime(&'static str),
    EndBeforeStart,
    UnknownOffice(String),
    CapacityNotNumber,
    CapacityOutOfRange,
    TooLong(&'static str, usize),
    UnknownChoice(&'static str),
}

impl FieldError {
    /// The field the error belongs to (for marking it in the form).
    pub fn field(&self) -> &'static str {
        match self {
            FieldError::Required(f)
            | FieldError::BadDate(f)
            | FieldError::BadTime(f)
            | FieldError::NoSuchTime(f)
            | FieldError::TooLong(f, _)
            | FieldError::UnknownChoice(f) => f,
            FieldError::EndBeforeStart => "end_date",
            FieldError::UnknownOffice(_) => "office",
            FieldError::CapacityNotNumber | FieldError::CapacityOutOfRange => "capacity",
        }
    }
}

/// Why a form was refused as a whole (not a field to correct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormRefusal {
    /// A field the form does not have (a forged or stale form).
    UnknownField(String),
    /// A field naming a sealed column: the web never writes one.
    SealedColumn(String),
    /// The same field twice.
    Repeated(String),
}

/// The form as submitted: every field as text (missing fields are empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInput {
    pub title: String,
    pub description: String,
    pub start_date: String,
    pub start_time: String,
    pub end_date: String,
    pub end_time: String,
    pub location: String,
    pub office: String,
    pub language: String,
    pub capacity: String,
    pub status: String,
}

impl EventInput {
    fn slot(&mut self, field: &str) -> Option<&mut String> {
        Some(match field {
            "title" => &mut self.title,
            "description" => &mut self.description,
            "start_date" => &mut self.start_date,
            "start_time" => &mut self.start_time,
            "end_date" => &mut self.end_date,
            "end_time" => &mut self.end_time,
            "location" => &mut self.location,
            "office" => &mut self.office,
            "language" => &mut self.language,
            "capacity" => &mut self.capacity,
            "status" => &mut self.status,
            _ => return None,
        })
    }

    /// The value of a field by name (for re-showing the form).
    pub fn get(&self, field: &str) -> &str {
        match field {
            "title" => &self.title,
            "description" => &self.description,
            "start_date" => &self.start_date,
            "start_time" => &self.start_time,
            "end_date" => &self.end_date,
            "end_time" => &self.end_time,
            "location" => &self.location,
            "office" => &self.office,
            "language" => &self.language,
            "capacity" => &self.capacity,
            "status" => &self.status,
            _ => "",
        }
    }

    /// A new event's form: today, the office's own name, scheduled.
    pub fn blank(today: Date, office: &str) -> EventInput {
        EventInput {
            start_date: today.to_string(),
            office: office.to_string(),
            language: "es".into(),
            status: "scheduled".into(),
            ..EventInput::default()
        }
    }

    /// The form of a stored event, dates in `tz`.
    pub fn from_row(row: &EventRow, tz: &TimeZone) -> EventInput {
        let split = |text: &Option<String>| match text.as_deref().and_then(parse_instant) {
            Some(t) => {
                let z = t.to_zoned_datetime(tz.clone());
                (z.date().to_string(), z.time().strftime("%H:%M").to_string())
            }
            None => (String::new(), String::new()),
        };
        let (start_date, start_time) = split(&row.starts_at);
        let (end_date, end_time) = split(&row.ends_at);
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        EventInput {
            title: text(&row.title),
            description: text(&row.description),
            start_date,
            start_time,
            end_date,
            end_time,
            location: text(&row.location),
            office: text(&row.office),
            language: text(&row.language),
            capacity: text(&row.capacity),
            status: row
                .status
                .clone()
                .unwrap_or_else(|| "scheduled".to_string()),
        }
    }
}

/// Reads submitted pairs: the CSRF token (None if absent) and the fields.
/// A field the form does not have is refused as a whole: by name when it
/// is one of `sealed` (the sealed columns of the schema).
pub fn read(
    pairs: &[(String, String)],
    sealed: &[String],
) -> Result<(Option<String>, EventInput), FormRefusal> {
    let mut input = EventInput::default();
    let mut csrf = None;
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key.as_str()) {
            return Err(FormRefusal::Repeated(key.clone()));
        }
        seen.push(key);
        if key == "csrf" {
            csrf = Some(value.clone());
            continue;
        }
        match input.slot(key) {
            Some(slot) => *slot = value.clone(),
            None if sealed.iter().any(|s| s == key) => {
                return Err(FormRefusal::SealedColumn(key.clone()));
            }
            None => return Err(FormRefusal::UnknownField(key.clone())),
        }
    }
    Ok((csrf, input))
}

/// A local date and time in `tz` as an instant.
fn instant(
    date: &str,
    time: &str,
    date_field: &'static str,
    time_field: &'static str,
    tz: &TimeZone,
    errors: &mut Vec<FieldError>,
) -> Option<Timestamp> {
    let date = match date.trim().parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(FieldError::BadDate(date_field));
            None
        }
    };
    let time = match time.trim() {
        "" => Some(Time::midnight()),
        t => match t.parse::<Time>() {
            Ok(t) => Some(t),
            Err(_) => {
                errors.push(FieldError::BadTime(time_field));
                None
            }
        },
    };
    let (date, time) = (date?, time?);
    match date.to_datetime(time).to_zoned_datetime(tz.clone()) {
        Ok(z) => Some(z.timestamp()),
        Err(_) => {
            errors.push(FieldError::NoSuchTime(time_field));
            None
        }
    }
}

/// RFC 3339 with the zone's offset at that instant.
fn stored(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned_datetime(tz.clone());
    t.display_with_offset(z.offset()).to_string()
}

/// Checks the form; on success, every column's value to store (empty
/// optional fields as null).
pub fn validate(
    input: &EventInput,
    tz: &TimeZone,
    offices: &[String],
) -> Result<Vec<(&'static str, Value)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let title = input.title.trim();
    if title.is_empty() {
        errors.push(FieldError::Required("title"));
    }
    for (field, text, max) in [
        ("title", title, MAX_TITLE),
        ("location", input.location.trim(), MAX_LOCATION),
        ("description", input.description.trim(), MAX_DESCRIPTION),
    ] {
        if text.chars().count() > max {
            errors.push(FieldError::TooLong(field, max));
        }
    }
    let start = if input.start_date.trim().is_empty() {
        errors.push(FieldError::Required("start_date"));
        None
    } else {
        instant(
            &input.start_date,
            &input.start_time,
            "start_date",
            "start_time",
            tz,
            &mut errors,
        )
    };
    let end = match (input.end_date.trim(), input.end_time.trim()) {
        ("", "") => None,
        // An end time alone ends on the start's day.
        ("", time) => instant(
            &input.start_date,
            time,
            "end_date",
            "end_time",
            tz,
            &mut errors,
        ),
        (date, time) => instant(date, time, "end_date", "end_time", tz, &mut errors),
    };
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        errors.push(FieldError::EndBeforeStart);
    }
    let office = input.office.trim();
    if office.is_empty() {
        errors.push(FieldError::Required("office"));
    } else if !offices.iter().any(|o| o == office) {
        errors.push(FieldError::UnknownOffice(office.to_string()));
    }
    let capacity = match input.capacity.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(n) if (0..=MAX_CAPACITY).contains(&n) => Some(n),
            Ok(_) => {
                errors.push(FieldError::CapacityOutOfRange);
                None
            }
            Err(_) => {
                errors.push(FieldError::CapacityNotNumber);
                None
            }
        },
    };
    let language = input.language.trim();
    if !language.is_empty() && !LANGUAGES.contains(&language) {
        errors.push(FieldError::UnknownChoice("language"));
    }
    let status = match input.status.trim() {
        "" => "scheduled",
        s if STATUSES.contains(&s) => s,
        _ => {
            errors.push(FieldError::UnknownChoice("status"));
            "scheduled"
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let text = |t: &str| match t.trim() {
        "" => Value::Null,
        t => Value::Text(t.to_string()),
    };
    Ok(vec![
        ("title", text(title)),
        ("description", text(&input.description)),
        (
            "starts_at",
            start.map_or(Value::Null, |s| Value::Text(stored(s, tz))),
        ),
        (
            "ends_at",
            end.map_or(Value::Null, |e| Value::Text(stored(e, tz))),
        ),
        ("location", text(&input.location)),
        ("office", text(office)),
        ("language", text(language)),
        ("capacity", capacity.map_or(Value::Null, Value::Integer)),
        ("status", Value::Text(status.to_string())),
    ])
}

/// The schema's required columns (`required`) the checked form leaves
/// empty, as the form's fields to mark ("start_date" for `starts_at`).
pub fn missing_required(cells: &[(&'static str, Value)], required: &[String]) -> Vec<FieldError> {
    cells
        .iter()
        .filter(|(column, value)| {
            matches!(value, Value::Null) && required.iter().any(|r| r.as_str() == *column)
        })
        .map(|(column, _)| {
            FieldError::Required(match *column {
                "starts_at" => "start_date",
                "ends_at" => "end_date",
                other => other,
            })
        })
        .collect()
}

/// The columns of `new` that differ from the stored row `old` (None for a
/// new event: everything that is not null). Writing only these keeps a
/// concurrent edit of another column at the other office.
pub fn changes(
    old: Option<&EventRow>,
    new: Vec<(&'static str, Value)>,
) -> Vec<(&'static str, Value)> {
    let Some(old) = old else {
        return new.into_iter().filter(|(_, v)| *v != Value::Null).collect();
    };
    let current = |column: &str| -> Option<&String> {
        match column {
            "title" => old.title.as_ref(),
            "description" => old.description.as_ref(),
            "starts_at" => old.starts_at.as_ref(),
            "ends_at" => old.ends_at.as_ref(),
            "location" => old.location.as_ref(),
            "office" => old.office.as_ref(),
            "language" => old.language.as_ref(),
            "capacity" => old.capacity.as_ref(),
            "status" => old.status.as_ref(),
            _ => None,
        }
    };
    new.into_iter()
        .filter(|(column, value)| {
            let before = current(column);
            match value {
                Value::Null => before.is_some(),
                Value::Text(t) => match (*column, before) {
                    // The same instant written another way is no change.
                    ("starts_at" | "ends_at", Some(b)) => parse_instant(b) != parse_instant(t),
                    (_, b) => b != Some(t),
                },
                Value::Integer(n) => before != Some(&n.to_string()),
                _ => true,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "form_tests.rs"]
mod tests;
