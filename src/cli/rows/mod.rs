//! `puente rows list | get | put | delete | import | export`: a table's
//! rows through the running daemon.
//!
//! Owns: the command's arguments, one client call per subcommand, parsing
//! `col=value` and `col:=JSON` assignments, and printing answers for
//! people (or as JSON with `--json`); how rows look in a terminal is in
//! `view`, reading and streaming whole files in `import` and `export`.
//! Must not: hold logic the daemon or tests need, or put a value into an
//! error message (revealed values go to stdout only, from wiped buffers).

pub mod export;
pub mod import;
pub mod secret_input;
pub mod view;

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use zeroize::Zeroizing;

use super::call::{self, DaemonTarget, emit, emit_json};
use crate::admin::Client;
use crate::api::{self, Row};
use crate::value::{Plaintext, Value};

#[derive(clap::Subcommand)]
pub enum RowsCommand {
    /// List live rows of a table, ordered by id.
    List {
        table: String,
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        /// Decrypt sealed cells (only where this node holds the group's key; audited).
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Show one row.
    Get {
        table: String,
        id: String,
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Write some columns of a row: `col=text` or `col:=JSON` (e.g. capacity:=25);
    /// `col=-` reads that column's value from standard input (on a terminal,
    /// at a prompt that does not echo), which keeps a sealed value out of
    /// the process list and the shell's history.
    Put {
        table: String,
        id: String,
        #[arg(required = true)]
        assignments: Vec<String>,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Delete a row for good (its id can never be used again).
    Delete {
        table: String,
        id: String,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Write the rows of a CSV file (with a header line naming `id` and the
    /// columns) or a JSON Lines file: all of them in one transaction, or
    /// none when any line is bad (each bad line is listed).
    Import {
        table: String,
        file: PathBuf,
        /// csv or jsonl (default: from the file name).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        target: DaemonTarget,
        #[arg(long)]
        json: bool,
    },
    /// Write a table's rows as CSV or JSON Lines: shared columns, and
    /// sealed ones only with --reveal (reveal role; audited).
    Export {
        table: String,
        /// csv or jsonl (default: from --output's name, else csv).
        #[arg(long)]
        format: Option<String>,
        /// Comma-separated columns (default: all the export may show).
        #[arg(long)]
        columns: Option<String>,
        /// Include sealed columns, decrypted (only where this node holds the
        /// group's key; the export is written to the audit log).
        #[arg(long)]
        reveal: bool,
        /// Write to this new file (mode 0600) instead of standard output;
        /// an existing file or a symlink there is refused.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace the --output file if it exists: a new file (mode 0600)
        /// is written beside it and renamed over it.
        #[arg(long, requires = "output")]
        force: bool,
        #[command(flatten)]
        target: DaemonTarget,
    },
}

pub fn run(command: RowsCommand) -> Result<()> {
    match command {
        RowsCommand::List {
            table,
            after,
            limit,
            reveal,
            target,
            json,
        } => list(
            &target.socket()?,
            &table,
            after.as_deref(),
            limit,
            reveal,
            json,
        ),
        RowsCommand::Get {
            table,
            id,
            reveal,
            target,
            json,
        } => get(&target.socket()?, &table, &id, reveal, json),
        RowsCommand::Put {
            table,
            id,
            assignments,
            target,
            json,
        } => put_warning(
            &target.socket()?,
            Some(&target.config),
            &table,
            &id,
            &assignments,
            json,
        ),
        RowsCommand::Delete {
            table,
            id,
            target,
            json,
        } => delete(&target.socket()?, &table, &id, json),
        RowsCommand::Import {
            table,
            file,
            format,
            target,
            json,
        } => import::import(&target.socket()?, &table, &file, format.as_deref(), json),
        RowsCommand::Export {
            table,
            format,
            columns,
            reveal,
            output,
            force,
            target,
        } => export::export(
            &target.socket()?,
            &table,
            &export::ExportTo {
                format: format.as_deref(),
                columns: columns.as_deref(),
                reveal,
                output: output.as_deref(),
                force,
            },
        ),
    }
}

pub fn list(
    socket: &Path,
    table: &str,
    after: Option<&str>,
    limit: Option<usize>,
    reveal: bool,
    json: bool,
) -> Result<()> {
    let page = call::run(async {
        Ok(Client::new(socket)
            .list_rows(table, after, limit, reveal)
            .await?)
    })?;
    if json {
        return emit_json(&page);
    }
    let mut text = Zeroizing::new(String::new());
    view::render_table(&mut text, &page.rows, &call::office_zone(socket, None)?);
    match (&page.next, page.rows.len()) {
        (_, 0) => text.push_str(&format!("no rows in {table}\n")),
        (Some(next), n) => text.push_str(&format!(
            "\n{n} {}; more follow: pass --after {next} for the next page\n",
            if n == 1 { "row" } else { "rows" }
        )),
        (None, 1) => text.push_str("\n1 row\n"),
        (None, n) => text.push_str(&format!("\n{n} rows\n")),
    }
    emit(text.as_bytes())
}

pub fn get(socket: &Path, table: &str, id: &str, reveal: bool, json: bool) -> Result<()> {
    let row = call::run(async { Ok(Client::new(socket).get_row(table, id, reveal).await?) })?;
    if json {
        return emit_json(&row);
    }
    emit(row_text(table, &row, &call::office_zone(socket, None)?).as_bytes())
}

pub fn put(socket: &Path, table: &str, id: &str, assignments: &[String], json: bool) -> Result<()> {
    put_warning(socket, None, table, id, assignments, json)
}

/// `put`, warning on standard error when a sealed column of the schema
/// that the node config at `config` names is given as an argument.
pub fn put_warning(
    socket: &Path,
    config: Option<&Path>,
    table: &str,
    id: &str,
    assignments: &[String],
    json: bool,
) -> Result<()> {
    if assignments.is_empty() {
        bail!(
            "give at least one column to write: COLUMN=TEXT or COLUMN:=JSON (e.g. title=Taller capacity:=25)"
        );
    }
    let mut cells = Vec::with_capacity(assignments.len());
    let mut from_stdin: Option<&str> = None;
    let mut in_argv = Vec::new();
    for a in assignments {
        if let Some(column) = secret_input::stdin_column(a) {
            if let Some(first) = from_stdin {
                bail!(
                    "only one column can be read from standard input, and {first}=- came first; write {column} in another `rows put`"
                );
            }
            from_stdin = Some(column);
            let mut text = secret_input::read_value(column)?;
            let value = Value::Text(std::mem::take(&mut *text));
            cells.push((column.to_string(), Plaintext::new(value)));
        } else {
            let (column, value) = parse_assignment(a)?;
            in_argv.push(column.clone());
            cells.push((column, value));
        }
    }
    if let Some(config) = config {
        secret_input::warn_sealed_in_argv(config, table, &in_argv);
    }
    let written = call::run(async { Ok(Client::new(socket).put_row(table, id, cells).await?) })?;
    if json {
        return emit_json(&written);
    }
    emit(
        format!(
            "wrote {table}/{} (hlc {}, sequence {})",
            written.id, written.hlc, written.seq
        )
        .as_bytes(),
    )
}

pub fn delete(socket: &Path, table: &str, id: &str, json: bool) -> Result<()> {
    let written = call::run(async { Ok(Client::new(socket).delete_row(table, id).await?) })?;
    if json {
        return emit_json(&written);
    }
    emit(
        format!(
            "deleted {table}/{} for good (hlc {}, sequence {}); the id can never be written again",
            written.id, written.hlc, written.seq
        )
        .as_bytes(),
    )
}

/// Parses one `COLUMN=TEXT` (the value as text) or `COLUMN:=JSON` (a typed
/// value: a number, a quoted string or null) assignment. Errors name the
/// column at most, never the value.
pub fn parse_assignment(text: &str) -> Result<(String, Plaintext)> {
    let usage = "write COLUMN=TEXT or COLUMN:=JSON, e.g. title=Taller, capacity:=25, phone:=null";
    let Some(eq) = text.find('=') else {
        bail!("an assignment has no `=`; {usage}");
    };
    let (column, typed) = match text[..eq].strip_suffix(':') {
        Some(column) => (column, true),
        None => (&text[..eq], false),
    };
    let value = &text[eq + 1..];
    let is_name = !column.is_empty()
        && column
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !is_name {
        bail!("the part before `=` is not a column name; {usage}");
    }
    let value = if typed {
        api::parse_value(column, value).map_err(|e| anyhow!("{e}"))?
    } else {
        Plaintext::new(Value::Text(value.to_string()))
    };
    Ok((column.to_string(), value))
}

/// A row as `rows get` prints it (times in the office's zone `tz`), in a
/// buffer wiped when dropped.
pub fn row_text(table: &str, row: &Row, tz: &jiff::tz::TimeZone) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::new());
    view::render_row(&mut text, table, row, tz);
    text
}
