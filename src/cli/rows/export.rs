//! `puente rows export`.
//!
//! Owns: writing an export to standard output or a new file (mode 0600,
//! removed again if the export is cut off), as CSV or JSON Lines, with
//! its progress.
//! Must not: put a value into an error or a progress line.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::admin::Client;
use crate::bulk::export::CsvWriter;
use crate::bulk::files::Format;
use crate::cli::call;
use crate::cli::progress::{self, Progress};

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
    call::run(async {
        let mut stream = client.export_rows(table, to.columns, to.reveal).await?;
        if !stream.left_out.is_empty() {
            eprintln!(
                "note: sealed columns left out: {} (add --reveal to export them; it is audited)",
                stream.left_out.join(", ")
            );
        }
        // The file is made only once the daemon has said yes.
        let mut out = ExportSink::open(to.output)?;
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
enum ExportSink {
    Stdout(std::io::Stdout),
    File(PathBuf, std::io::BufWriter<std::fs::File>),
}

impl ExportSink {
    fn open(path: Option<&Path>) -> Result<ExportSink> {
        let Some(path) = path else {
            return Ok(ExportSink::Stdout(std::io::stdout()));
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
        Ok(ExportSink::File(
            path.to_path_buf(),
            std::io::BufWriter::new(file),
        ))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            ExportSink::Stdout(s) => s.lock().write_all(bytes)?,
            ExportSink::File(path, f) => f
                .write_all(bytes)
                .with_context(|| format!("cannot write {}", path.display()))?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self {
            ExportSink::Stdout(s) => s.lock().flush()?,
            ExportSink::File(path, f) => {
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
        if let ExportSink::File(path, _) = self {
            let _ = std::fs::remove_file(&*path);
            eprintln!("the export was cut off; {} was removed", path.display());
        }
    }
}
