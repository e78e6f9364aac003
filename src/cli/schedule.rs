//! `puente schedule`: the upcoming outreach events of the running daemon's
//! replica, as an agenda by day in the office's time zone (the node
//! config's `time_zone`, as the daemon's status says; `--tz` to look with
//! another), whatever this shell's TZ.
//!
//! Owns: the IO around the pure agenda (`crate::schedule`): reading every
//! row of `outreach_events` through the admin socket (following pages),
//! the clock, the office's zone, the language from the locale, and
//! printing.
//! Must not: decide what is in the agenda or how it reads (that is
//! `crate::schedule`, tested without IO).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::call::{self, DaemonTarget};
use crate::admin::Client;
use crate::api::{Cell, Row};
use crate::clock::Hlc;
use crate::schedule::{self, EventRow, Lang};

/// Rows asked for per page.
pub const PAGE_SIZE: usize = 500;

#[derive(clap::Args)]
pub struct ScheduleArgs {
    /// How many days ahead.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// es or en (default: from the locale).
    #[arg(long)]
    lang: Option<String>,
    /// Show the agenda in this time zone (an IANA name such as
    /// America/Los_Angeles) instead of the office's.
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    #[command(flatten)]
    target: DaemonTarget,
    #[arg(long)]
    json: bool,
    /// For tests: the agenda as of this instant (RFC 3339 with offset)
    /// instead of the clock's.
    #[arg(long, hide = true, value_name = "INSTANT")]
    now: Option<jiff::Timestamp>,
}

pub fn run(args: ScheduleArgs) -> Result<()> {
    let socket = args.target.socket()?;
    schedule(
        &socket,
        args.days,
        args.lang.as_deref(),
        args.tz.as_deref(),
        args.json,
        args.now,
    )
}

/// Prints the agenda of the `days` days from now (or from `now`, which
/// tests give to fix the day). `lang` is `es` or `en`; without it the
/// locale decides (LC_ALL, LC_MESSAGES, LANG). `tz` overrides the
/// office's zone.
fn schedule(
    socket: &Path,
    days: u32,
    lang: Option<&str>,
    tz: Option<&str>,
    json: bool,
    now: Option<Timestamp>,
) -> Result<()> {
    let lang = match lang {
        Some(given) => Lang::parse(given)?,
        None => locale_lang(),
    };
    schedule::check_days(days)?;
    let tz = call::office_zone(socket, tz)?;
    let now = now.unwrap_or_else(Timestamp::now);
    let text = agenda_text(socket, now, &tz, days, lang, json)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the agenda to standard output")?;
    Ok(())
}

/// The language the locale asks for.
pub fn locale_lang() -> Lang {
    let var = |name| std::env::var(name).ok();
    Lang::from_locale(
        var("LC_ALL").as_deref(),
        var("LC_MESSAGES").as_deref(),
        var("LANG").as_deref(),
    )
}

/// The agenda as `puente schedule` prints it (text, or JSON with `json`),
/// for an explicit instant and zone.
pub fn agenda_text(
    socket: &Path,
    now: Timestamp,
    tz: &TimeZone,
    days: u32,
    lang: Lang,
    json: bool,
) -> Result<String> {
    schedule::check_days(days)?;
    let rows = read_events(socket, PAGE_SIZE)?;
    let agenda = schedule::build(&rows, now, tz, days, lang)?;
    if json {
        let mut text =
            serde_json::to_string_pretty(&agenda).context("cannot encode the agenda as JSON")?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(schedule::render(&agenda))
    }
}

/// A row of the admin API in the agenda's neutral form (sealed cells are
/// left out: the schema shares every column of this table).
pub fn event_row(row: &Row) -> EventRow {
    EventRow::from_cells(
        row.id.clone(),
        row.updated.parse::<Hlc>().ok(),
        |column| match row.cell(column) {
            Some(Cell::Value(p)) => Some(p.expose()),
            _ => None,
        },
    )
}

/// Every live row of `outreach_events`, `page_size` rows per request.
pub fn read_events(socket: &Path, page_size: usize) -> Result<Vec<EventRow>> {
    let read = async {
        let client = Client::new(socket);
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = client
                .list_rows(schedule::TABLE, after.as_deref(), Some(page_size), false)
                .await
                .with_context(|| format!("cannot read the table {}", schedule::TABLE))?;
            rows.extend(page.rows.iter().map(event_row));
            match page.next {
                None => return Ok(rows),
                Some(next) if after.as_deref() == Some(next.as_str()) => bail!(
                    "the daemon at {} returned the same page twice; check that the daemon and this command are the same puente version",
                    socket.display()
                ),
                Some(next) => after = Some(next),
            }
        }
    };
    call::run(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Columns;
    use crate::value::{Plaintext, Value};

    #[test]
    fn rows_from_the_api_become_event_rows() {
        let row = Row {
            id: "r1".into(),
            updated: "1.0".into(),
            updated_by: None,
            updated_office: None,
            columns: Columns(vec![
                ("title".into(), Cell::Value(Plaintext::text("Taller"))),
                (
                    "capacity".into(),
                    Cell::Value(Plaintext::new(Value::Integer(25))),
                ),
                ("location".into(), Cell::Value(Plaintext::text("  "))),
                ("status".into(), Cell::Value(Plaintext::new(Value::Null))),
                ("office".into(), Cell::Sealed),
            ]),
        };
        assert_eq!(
            event_row(&row),
            EventRow {
                id: "r1".into(),
                title: Some("Taller".into()),
                capacity: Some("25".into()),
                updated: Some(Hlc::from_parts(1, 0)),
                ..EventRow::default()
            }
        );
    }
}
