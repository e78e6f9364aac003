//! `puente rows import`.
//!
//! Owns: reading the file twice on the client (first to find every line
//! that cannot be read, sending nothing if one cannot; then streaming the
//! rows to the daemon in bounded chunks), the progress of both, and
//! printing the report.
//! Must not: put a value into an error or a progress line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};

use crate::admin::Client;
use crate::admin::channel_body::{self, StreamError};
use crate::api::RowWrite;
use crate::bulk::files::{self, Entry, Format};
use crate::bulk::{ImportLine, ImportReport, Problems};
use crate::cli::call::{self, emit_json};
use crate::cli::progress::Progress;
use crate::secret_buf::SecretBuf;

/// Bytes of import lines sent per chunk.
const CHUNK: usize = 64 * 1024;
/// The reader's error when the daemon stopped reading (it said why).
const GONE: &str = "the daemon stopped reading the import";

/// The refusal of an import with `problems`: printed as JSON with
/// `--json`, and always the error of the command.
fn refused(report: ImportReport, json: bool) -> Result<()> {
    let sentence = report
        .error
        .clone()
        .unwrap_or_else(|| "the import was refused; nothing was written".into());
    if json {
        emit_json(&report)?;
    }
    Err(anyhow!(sentence))
}

pub fn import(
    socket: &Path,
    table: &str,
    file: &Path,
    format: Option<&str>,
    json: bool,
) -> Result<()> {
    let format = Format::of(file, format).map_err(|e| anyhow!(e))?;
    let name = file.display().to_string();
    // First pass: every line that cannot be read, before anything is sent.
    let checking = Progress::spinner(&format!("reading {name}"), json);
    let mut rows = 0u64;
    let problems = files::read(file, format, &mut |e| {
        if matches!(e, Entry::Row { .. }) {
            rows += 1;
        }
        Ok(())
    })?;
    checking.clear();
    if !problems.is_empty() {
        return refused(client_report(table, rows, &problems, &name), json);
    }
    if rows == 0 {
        bail!("{name} holds no rows; nothing was imported");
    }
    // Second pass: the rows, streamed.
    let progress = Arc::new(Progress::bar(
        &format!("sending {table}"),
        rows,
        "rows",
        json,
    ));
    let (tx, body) = channel_body::channel();
    let reader = {
        let (file, progress) = (file.to_path_buf(), progress.clone());
        std::thread::spawn(move || send_rows(&file, format, rows, &progress, tx))
    };
    let client = Client::new(socket);
    let outcome = call::run(async { Ok(client.import_rows(table, body).await?) });
    let sent = reader
        .join()
        .map_err(|_| anyhow!("reading the file failed unexpectedly; nothing was written"))?;
    progress.clear();
    let report = match (outcome, sent) {
        (Ok(report), _) => report,
        // A file that changed says more than the broken stream it caused.
        (Err(_), Err(e)) if e.to_string() != GONE => return Err(e),
        (Err(e), _) => return Err(e),
    };
    if !report.written {
        return refused(report, json);
    }
    if json {
        return emit_json(&report);
    }
    println!(
        "imported {} {} into {table} (sequence {}); all were written in one transaction",
        report.rows,
        if report.rows == 1 { "row" } else { "rows" },
        report.head.unwrap_or(0)
    );
    Ok(())
}

fn client_report(table: &str, rows: u64, problems: &Problems, name: &str) -> ImportReport {
    ImportReport {
        table: table.to_string(),
        rows,
        written: false,
        head: None,
        problems: problems.listed.clone(),
        more_problems: problems.more,
        error: Some(problems.sentence(name)),
        status: None,
    }
}

/// Reads the file again and sends its rows as import lines; a file that
/// changed in between (a line no longer readable) ends the stream with an
/// error, so the daemon writes nothing.
fn send_rows(
    file: &Path,
    format: Format,
    rows: u64,
    progress: &Progress,
    tx: tokio::sync::mpsc::Sender<Result<hyper::body::Bytes, StreamError>>,
) -> Result<()> {
    let mut chunk = SecretBuf::with_capacity(CHUNK + 4096);
    let problems = files::read(file, format, &mut |entry| {
        let line = match entry {
            Entry::Header { line, columns } => ImportLine {
                line,
                header: Some(columns),
                id: None,
                cells: None,
            },
            Entry::Row { line, id, cells } => {
                progress.inc(1);
                ImportLine {
                    line,
                    header: None,
                    id: Some(id),
                    cells: Some(RowWrite(cells)),
                }
            }
        };
        serde_json::to_writer(&mut chunk, &line).map_err(|e| e.to_string())?;
        chunk.extend(b"\n");
        if chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut chunk, SecretBuf::with_capacity(CHUNK + 4096));
            tx.blocking_send(Ok(full.into_bytes()))
                .map_err(|_| GONE.to_string())?;
        }
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    if !problems.is_empty() {
        let _ = tx.blocking_send(Err(StreamError(
            "the file changed while it was read".into(),
        )));
        bail!(
            "{} changed while it was imported; nothing was written, import it again",
            file.display()
        );
    }
    if chunk.len() > 0 {
        tx.blocking_send(Ok(chunk.into_bytes()))
            .map_err(|_| anyhow!(GONE))?;
    }
    progress.message(&format!("writing {rows} rows"));
    Ok(())
}
