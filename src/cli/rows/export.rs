//! `puente rows export`.
//!
//! Owns: writing an export to standard output or a new file (mode 0600,
//! created exclusively so an existing file or a symlink is refused;
//! with `--force` a temp file beside it renamed over it at the end;
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
    /// Replace `output` if it exists (by renaming a new file over it).
    pub force: bool,
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
        let mut out = ExportSink::open(to.output, to.force)?;
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
    /// Where the export goes, the file written (the same path, or with
    /// `--force` a temp file beside it renamed over it by `finish`).
    File {
        path: PathBuf,
        written: PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
}

/// Creates `path` new, mode 0600, never through a symlink: `create_new`
/// is O_CREAT|O_EXCL, which fails on any existing name, a symlink (even a
/// dangling one) included.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

impl ExportSink {
    fn open(path: Option<&Path>, force: bool) -> Result<ExportSink> {
        let Some(path) = path else {
            return Ok(ExportSink::Stdout(std::io::stdout()));
        };
        let written = if force {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            dir.join(format!(
                ".{name}.puente-export-{:016x}",
                rand::random::<u64>()
            ))
        } else {
            path.to_path_buf()
        };
        let file = create_private(&written).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!(
                    "{} already exists, so nothing was exported; name a new file, or add --force to replace it (a new file of mode 0600 takes its place; the old one is never written into, nor a symlink followed)",
                    path.display()
                )
            } else {
                anyhow!(
                    "cannot create {} ({e}); check the folder and its permissions",
                    written.display()
                )
            }
        })?;
        Ok(ExportSink::File {
            path: path.to_path_buf(),
            written,
            file: std::io::BufWriter::new(file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            ExportSink::Stdout(s) => s.lock().write_all(bytes)?,
            ExportSink::File { written, file, .. } => file
                .write_all(bytes)
                .with_context(|| format!("cannot write {}", written.display()))?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self {
            ExportSink::Stdout(s) => s.lock().flush()?,
            ExportSink::File {
                path,
                written,
                file,
            } => {
                file.flush()?;
                file.get_ref()
                    .sync_all()
                    .with_context(|| format!("cannot write {}", written.display()))?;
                if written != path {
                    // rename(2) replaces the name itself: a symlink there
                    // is replaced, never followed.
                    std::fs::rename(&*written, &*path).map_err(|e| {
                        let _ = std::fs::remove_file(&*written);
                        anyhow!(
                            "cannot replace {} ({e}); nothing was changed there. Check that it is a file in a folder you may write",
                            path.display()
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// A cut-off export: the partial file is removed.
    fn abandon(&mut self) {
        if let ExportSink::File { path, written, .. } = self {
            let _ = std::fs::remove_file(&*written);
            eprintln!("the export was cut off; {} was not written", path.display());
        }
    }
}
