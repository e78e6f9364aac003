//! `puente rows import` and `puente rows export`.
//!
//! Owns: reading the file twice on the client (first to find every line
//! that cannot be read, sending nothing if one cannot; then streaming the
//! rows to the daemon in bounded chunks), the progress of both, printing
//! the report, and writing an export to standard output or a new file
//! (mode 0600, removed again if the export is cut off).
//! Must not: put a value into an error or a progress line.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use super::progress::{self, Progress};
use crate::admin::Client;
use crate::admin::channel_body::{self, StreamError};
use crate::api::RowWrite;
use crate::bulk::export::CsvWriter;
use crate::bulk::files::{self, Entry, Format};
use crate::bulk::{ImportLine, ImportReport, Problems};
use crate::secret_buf::{self, SecretBuf};

/// Bytes of import lines sent per chunk.
const CHUNK: usize = 64 * 1024;
/// The reader's error when the daemon stopped reading (it said why).
const GONE: &str = "the daemon stopped reading the import";

fn run<T>(call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(call)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = secret_buf::to_json_pretty(value).context("cannot encode the answer as JSON")?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_slice())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The refusal of an import with `problems`: printed as JSON with
/// `--json`, and always the error of the command.
fn refused(report: ImportReport, json: bool) -> Result<()> {
    let sentence = report
        .error
        .clone()
        .unwrap_or_else(|| "the import was refused; nothing was written".into());
    if json {
        print_json(&report)?;
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
    let outcome = run(async { Ok(client.import_rows(table, body).await?) });
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
        return print_json(&report);
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

/// Where an export goes.
pub struct ExportTo<'a> {
    pub format: Option<&'a str>,
    pub columns: Option<&'a str>,
    pub reveal: bool,
    pub output: Option<&'a Path>,
}

pub fn export(socket: &Path, table: &str, to: &ExportTo<'_>) -> Result<()> {
    let format = match (to.format, to.output) {
        (Some(f), _) => Format::of(Path::new(""), Some(f)).map_err(|e| anyhow!(e))?,
        (None, Some(path)) => Format::of(path, None).unwrap_or(Format::Csv),
        (None, None) => Format::Csv,
    };
    let client = Client::new(socket);
    run(async {
        let mut stream = client.export_rows(table, to.columns, to.reveal).await?;
        if !stream.left_out.is_empty() {
            eprintln!(
                "note: sealed columns left out: {} (add --reveal to export them; it is audited)",
                stream.left_out.join(", ")
            );
        }
        // The file is made only once the daemon has said yes.
        let mut out = Output::open(to.output)?;
        let csv = CsvWriter::new(stream.columns.clone());
        if format == Format::Csv {
            out.write(&csv.header())?;
        }
        // Rows printed on the terminal itself leave no room for a bar.
        let quiet = to.output.is_none() && std::io::stdout().is_terminal();
        let progress = Progress::bar(&format!("exporting {table}"), stream.rows, "rows", quiet);
        let mut n = 0u64;
        loop {
            let line = match stream.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    progress.clear();
                    out.abandon();
                    return Err(anyhow!(e));
                }
            };
            match format {
                Format::Jsonl => {
                    out.write(line.as_slice())?;
                    out.write(b"\n")?;
                }
                Format::Csv => {
                    let record = csv.record(line.as_slice()).map_err(|e| {
                        out.abandon();
                        anyhow!(e)
                    })?;
                    out.write(&record)?;
                }
            }
            n += 1;
            progress.inc(1);
        }
        out.finish()?;
        progress.clear();
        if progress::drawn(quiet) {
            eprintln!(
                "exported {n} {} of {table}{}",
                if n == 1 { "row" } else { "rows" },
                to.output
                    .map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            );
        }
        Ok(())
    })
}

/// Standard output, or a new file (mode 0600: it may hold revealed values).
enum Output {
    Stdout(std::io::Stdout),
    File(PathBuf, std::io::BufWriter<std::fs::File>),
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output> {
        let Some(path) = path else {
            return Ok(Output::Stdout(std::io::stdout()));
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot create {}; check the folder and its permissions",
                    path.display()
                )
            })?;
        Ok(Output::File(
            path.to_path_buf(),
            std::io::BufWriter::new(file),
        ))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Stdout(s) => s.lock().write_all(bytes)?,
            Output::File(path, f) => f
                .write_all(bytes)
                .with_context(|| format!("cannot write {}", path.display()))?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self {
            Output::Stdout(s) => s.lock().flush()?,
            Output::File(path, f) => {
                f.flush()?;
                f.get_ref()
                    .sync_all()
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// A cut-off export: the partial file is removed.
    fn abandon(&mut self) {
        if let Output::File(path, _) = self {
            let _ = std::fs::remove_file(&*path);
            eprintln!("the export was cut off; {} was removed", path.display());
        }
    }
}
