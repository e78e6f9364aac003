//! Sealed values that stay out of argv: `rows put TABLE ID column=-`
//! reads that column's value from standard input (on a terminal, at a
//! prompt that does not echo), and a warning on standard error when a
//! sealed column's value was given as an argument instead (every user of
//! the machine can read a process's arguments in /proc/PID/cmdline, and
//! shells keep them in their history).
//!
//! Owns: reading one value from standard input into a wiped buffer, the
//! terminal's echo around the prompt, and the sentence of the warning.
//! Must not: print, log or put into an error the value it reads.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;

use anyhow::{Result, bail};
use zeroize::Zeroizing;

use crate::config::{NodeConfig, Schema};

/// The column of an assignment `column=-` (read from standard input).
pub fn stdin_column(assignment: &str) -> Option<&str> {
    assignment
        .strip_suffix("=-")
        .filter(|c| !c.is_empty() && !c.ends_with(':'))
}

/// The most read from standard input for one value.
const MAX_VALUE: u64 = 1 << 20;

/// Reads `column`'s value from standard input: everything up to its end,
/// less one final newline; on a terminal, one line typed at a prompt
/// without echo.
pub fn read_value(column: &str) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return prompt(column);
    }
    let mut bytes = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_VALUE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            anyhow::anyhow!("cannot read the value of {column} from standard input ({e})")
        })?;
    if bytes.len() as u64 > MAX_VALUE {
        bail!(
            "the value of {column} on standard input is longer than {} KiB; nothing was written",
            MAX_VALUE >> 10
        );
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        // The bytes are wiped before the error goes up.
        drop(Zeroizing::new(e.into_bytes()));
        anyhow::anyhow!(
            "the value of {column} on standard input is not UTF-8 text; nothing was written"
        )
    })?;
    Ok(Zeroizing::new(text))
}

/// A prompt on standard error; the typed line is not echoed.
fn prompt(column: &str) -> Result<Zeroizing<String>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)
        .map_err(|e| anyhow::anyhow!("cannot set up the terminal for a hidden prompt ({e})"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    eprint!("{column} (not shown): ");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|e| anyhow::anyhow!("cannot turn the terminal's echo off ({e})"))?;
    let mut line = Zeroizing::new(String::new());
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    read.map_err(|e| anyhow::anyhow!("cannot read the value of {column} ({e})"))?;
    restored.map_err(|e| {
        anyhow::anyhow!("cannot turn the terminal's echo back on ({e}); run `stty echo`")
    })?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// The sealed columns of `table` in the schema of the node config at
/// `config`, if it can be read (the warning is best effort: the daemon
/// seals the value either way).
fn sealed_columns(config: &Path, table: &str) -> Option<Vec<String>> {
    let node = NodeConfig::load(config).ok()?;
    let schema = Schema::load(&node.schema_file).ok()?;
    let def = schema.table(table)?;
    Some(
        def.columns
            .iter()
            .filter(|c| c.is_sealed())
            .map(|c| c.name.clone())
            .collect(),
    )
}

/// The warning for sealed `columns` of `table` given as arguments, if any.
pub fn argv_warning(table: &str, sealed: &[String], given: &[String]) -> Option<String> {
    let named: Vec<&str> = given
        .iter()
        .filter(|c| sealed.contains(c))
        .map(String::as_str)
        .collect();
    let first = named.first()?;
    let (noun, verb) = if named.len() == 1 {
        ("column", "its value was")
    } else {
        ("columns", "their values were")
    };
    Some(format!(
        "warning: {} {} sealed {noun} of {table}, and {verb} given as an argument: every user of this machine can read it in /proc while puente runs, and your shell keeps it in its history. Give it as {first}=- to read it from standard input (or a prompt) instead",
        named.join(", "),
        if named.len() == 1 { "is a" } else { "are" },
    ))
}

/// Prints `argv_warning` on standard error for the columns `given` as
/// arguments.
pub fn warn_sealed_in_argv(config: &Path, table: &str, given: &[String]) {
    if given.is_empty() {
        return;
    }
    if let Some(sealed) = sealed_columns(config, table)
        && let Some(warning) = argv_warning(table, &sealed, given)
    {
        eprintln!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_reads_from_standard_input_and_nothing_else_does() {
        assert_eq!(stdin_column("full_name=-"), Some("full_name"));
        assert_eq!(stdin_column("full_name:=-"), None);
        assert_eq!(stdin_column("=-"), None);
        assert_eq!(stdin_column("full_name=--"), None);
        assert_eq!(stdin_column("full_name=a-"), None);
    }

    #[test]
    fn the_warning_names_the_sealed_columns_given_as_arguments() {
        let sealed = vec!["full_name".to_string(), "phone".to_string()];
        assert_eq!(argv_warning("residents", &sealed, &["status".into()]), None);
        let w = argv_warning("residents", &sealed, &["status".into(), "phone".into()]).unwrap();
        assert!(
            w.starts_with("warning: phone is a sealed column of residents")
                && w.contains("phone=-"),
            "{w}"
        );
        let w = argv_warning("residents", &sealed, &["full_name".into(), "phone".into()]).unwrap();
        assert!(w.contains("full_name, phone are sealed columns"), "{w}");
    }
}
