//! Configuration files: the shared schema and the per-office node config.
//!
//! Owns: parsing both TOML files with serde, validating them, resolving
//! paths, the canonical schema hash, and errors that name file, line and key.
//! Must not: open databases, sockets or key files (it only names them).

pub mod access;
pub mod diff;
pub mod metrics;
pub mod node;
pub mod rights;
pub mod schema;
pub mod tables;
pub mod types;
pub mod web;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use toml::Spanned;

pub use node::{NodeConfig, PeerConfig};
pub use schema::{Group, Schema};
pub use tables::{ColumnDef, Privacy, TableDef};

/// Any problem with a configuration file. Every variant names the file;
/// parse and validation errors also give line, column and key, and say what
/// to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

impl ConfigError {
    /// An error located at a byte span of `source`.
    pub(crate) fn at(
        path: &Path,
        source: &str,
        span: Option<Range<usize>>,
        message: String,
    ) -> Self {
        let (line, column) = span
            .map(|s| line_and_column(source, s.start))
            .unwrap_or((1, 1));
        ConfigError::At {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }

    /// Turns a TOML syntax or type error into a one-line located error.
    pub(crate) fn from_toml(path: &Path, source: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().replace('\n', " ");
        Self::at(path, source, err.span(), message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads a config file as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `name` is a valid identifier for a table, column, group or node:
/// lowercase ASCII letter first, then lowercase letters, digits, `_` or `-`
/// (the dash only where `allow_dash`), at most 63 characters.
pub fn is_identifier(name: &str, allow_dash: bool) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_dash && c == '-')
        })
}

/// Makes an error pointing at a span of the file being parsed.
type SpanError<'a> = dyn Fn(Range<usize>, String) -> ConfigError + 'a;

/// A TOML table read as an ordered list of (key, value), keeping the file's
/// order and each key's span.
struct Entries<T> {
    entries: Vec<(Spanned<String>, T)>,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries {
            entries: Vec::new(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Entries { entries })
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(src, 0), (1, 1));
        assert_eq!(line_and_column(src, 6), (2, 1));
        assert_eq!(line_and_column(src, 9), (2, 4));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("outreach_events", false));
        assert!(!is_identifier("Outreach", false));
        assert!(!is_identifier("1table", false));
        assert!(!is_identifier("san-diego", false));
        assert!(is_identifier("san-diego", true));
        assert!(!is_identifier("", true));
    }
}
