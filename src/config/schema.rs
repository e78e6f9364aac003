//! The shared schema file: tables, columns, privacy classes, seal groups.
//!
//! Owns: parsing and validating schema TOML, the in-memory `Schema` (tables
//! and columns in canonical, name-sorted order, which is also the wire
//! order), and the canonical schema hash exchanged at connect.
//! Must not: touch SQLite or key material (recipients are public keys).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::rights::{self, Rights};
pub use super::tables::{ColumnDef, Privacy, TableDef};
use super::types::{ColumnType, TYPE_NAMES};
use super::{ConfigError, Entries, SpanError, is_identifier, read_text};

/// The schema shipped with puente (the first user's tables); `puente init`
/// copies it next to a new node config.
pub const DEFAULT_SCHEMA: &str = include_str!("../../config/schema.toml");

/// Column names puente uses itself.
pub const RESERVED_COLUMNS: &[&str] = &["id", "rowid", "oid", "_rowid_"];

/// A seal group: who sealed values of its columns are encrypted to.
#[derive(Clone)]
pub struct Group {
    pub name: String,
    /// The recipients as written (`age1…`), sorted.
    pub recipient_keys: Vec<String>,
    pub recipients: Vec<age::x25519::Recipient>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("recipients", &self.recipient_keys)
            .finish()
    }
}

/// A validated schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Sorted by name: a table's index here is its id on the wire.
    pub tables: Vec<TableDef>,
    pub groups: BTreeMap<String, Group>,
    /// Who may insert, update and delete what (config/rights.rs).
    pub rights: Rights,
    hash: String,
    layout_hash: String,
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn load(path: &Path) -> Result<Schema, ConfigError> {
        let text = read_text(path)?;
        Schema::parse(path, &text)
    }

    /// Parses and validates schema text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Schema, ConfigError> {
        let file: SchemaFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let err = |span, message: String| ConfigError::at(path, text, Some(span), message);
        let groups = parse_groups(file.groups, &err)?;
        if file.tables.entries.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message:
                    "the schema lists no tables; add at least one [tables.NAME.columns] section"
                        .into(),
            });
        }
        let mut sections = Vec::new();
        let mut tables = file
            .tables
            .entries
            .into_iter()
            .map(|(name, table)| {
                let mut table = table.into_inner();
                sections.push((name.get_ref().clone(), table.rights.take()));
                parse_table(name, table, &groups, &err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let rights = rights::build(file.offices, sections, &tables, &err)?;

        let mut schema = Schema {
            tables,
            groups,
            rights,
            hash: String::new(),
            layout_hash: String::new(),
        };
        schema.hash = sha256_hex(schema.canonical_text(true).as_bytes());
        schema.layout_hash = sha256_hex(schema.canonical_text(false).as_bytes());
        Ok(schema)
    }

    /// The same schema without its rights (and offices): every office may
    /// do everything. For comparisons (the rights benchmark) and tests.
    pub fn without_rights(&self) -> Schema {
        let mut schema = self.clone();
        schema.rights = Rights::none();
        schema.hash = sha256_hex(schema.canonical_text(true).as_bytes());
        schema
    }

    /// The default schema built into the binary.
    pub fn default_schema() -> Schema {
        // Invariant: the built-in schema is validated by a unit test.
        Schema::parse(Path::new("<built-in schema>"), DEFAULT_SCHEMA)
            .expect("the built-in schema is valid (checked by tests)")
    }

    /// Canonical hash: stable across key order, comments and whitespace;
    /// changes with any table, column, privacy class, recipient, listed
    /// office or right (a schema without offices and rights hashes as it
    /// did before rights existed).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Hash of tables, columns and privacy classes only (not recipients):
    /// what a replica's on-disk layout depends on.
    pub fn layout_hash(&self) -> &str {
        &self.layout_hash
    }

    /// The canonical text the hash is taken of (tables, columns, privacy
    /// classes, recipients, then offices and rights when given; no
    /// comments, sorted), exchanged in Hello so that two offices can say
    /// what differs.
    pub fn canonical(&self) -> String {
        self.canonical_text(true)
    }

    /// With `with_recipients: false`, only what a replica's layout
    /// depends on. A column's type is written only when it has one, so a
    /// schema without types keeps the text (and hash) puente 0.1.0 gave it.
    fn canonical_text(&self, with_recipients: bool) -> String {
        let mut out = String::from("puente-schema-v1\n");
        if with_recipients {
            for group in self.groups.values() {
                out.push_str(&format!(
                    "group {} {}\n",
                    group.name,
                    group.recipient_keys.join(",")
                ));
            }
        }
        for table in &self.tables {
            out.push_str(&format!("table {}\n", table.name));
            for column in &table.columns {
                let mut ty = column
                    .ty
                    .as_ref()
                    .map(|t| format!(" type {}", t.canonical()))
                    .unwrap_or_default();
                // Written only when set, and not into the layout's text:
                // a required column is stored as any other.
                if with_recipients && column.required {
                    ty.push_str(" required");
                }
                match &column.privacy {
                    Privacy::Shared => {
                        out.push_str(&format!("column {} shared{ty}\n", column.name))
                    }
                    Privacy::Sealed { group } => {
                        out.push_str(&format!("column {} sealed {}{ty}\n", column.name, group))
                    }
                }
            }
        }
        if with_recipients {
            out.push_str(&self.rights.canonical_lines(&self.tables));
        }
        out
    }

    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.tables
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
    }

    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.table_index(name).map(|i| &self.tables[i])
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }
}

/// `[groups]`: each name an identifier, each recipient an age X25519 key;
/// recipients sorted and deduplicated.
fn parse_groups(
    groups: Entries<Spanned<Vec<Spanned<String>>>>,
    err: &SpanError<'_>,
) -> Result<BTreeMap<String, Group>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, keys) in groups.entries {
        if !is_identifier(name.get_ref(), false) {
            return Err(err(
                name.span(),
                format!(
                    "groups.{}: a group name must be lowercase letters, digits and '_', starting with a letter",
                    name.get_ref()
                ),
            ));
        }
        let mut paired = Vec::new();
        for key in keys.into_inner() {
            let text = key.get_ref().trim();
            let parsed = age::x25519::Recipient::from_str(text).map_err(|_| {
                err(
                    key.span(),
                    format!(
                        "groups.{}: `{}` is not an age X25519 recipient; paste the `age1…` line that `puente keygen` or `age-keygen -y` prints",
                        name.get_ref(),
                        key.get_ref()
                    ),
                )
            })?;
            paired.push((text.to_string(), parsed));
        }
        paired.sort_by(|a, b| a.0.cmp(&b.0));
        paired.dedup_by(|a, b| a.0 == b.0);
        let (recipient_keys, recipients) = paired.into_iter().unzip();
        let name = name.into_inner();
        out.insert(
            name.clone(),
            Group {
                name,
                recipient_keys,
                recipients,
            },
        );
    }
    Ok(out)
}

/// One `[tables.NAME.columns]` section: a valid name, at least one column;
/// columns sorted by name, the file's order kept in `file_order`.
fn parse_table(
    name: Spanned<String>,
    table: TableFile,
    groups: &BTreeMap<String, Group>,
    err: &SpanError<'_>,
) -> Result<TableDef, ConfigError> {
    let tname = name.get_ref().clone();
    if !is_identifier(&tname, false) || tname.starts_with("sqlite_") {
        return Err(err(
            name.span(),
            format!(
                "tables.{tname}: a table name must be lowercase letters, digits and '_', start with a letter and not start with `sqlite_`"
            ),
        ));
    }
    if table.columns.entries.is_empty() {
        return Err(err(
            name.span(),
            format!(
                "tables.{tname}: the table has no columns; list them under [tables.{tname}.columns]"
            ),
        ));
    }
    let mut columns = table
        .columns
        .entries
        .into_iter()
        .map(|(column, spec)| parse_column(&tname, column, spec, groups, err))
        .collect::<Result<Vec<_>, _>>()?;
    let file_names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    columns.sort_by(|a, b| a.name.cmp(&b.name));
    let file_order = file_names
        .iter()
        .filter_map(|n| columns.iter().position(|c| &c.name == n))
        .collect();
    Ok(TableDef {
        name: tname,
        columns,
        file_order,
    })
}

/// One column of table `tname`: a valid, unreserved name; sealed only to a
/// group the schema defines.
fn parse_column(
    tname: &str,
    name: Spanned<String>,
    spec: Spanned<ColumnSpec>,
    groups: &BTreeMap<String, Group>,
    err: &SpanError<'_>,
) -> Result<ColumnDef, ConfigError> {
    let cname = name.get_ref().clone();
    if RESERVED_COLUMNS.contains(&cname.as_str()) {
        return Err(err(
            name.span(),
            format!(
                "tables.{tname}.columns.{cname}: `{cname}` is reserved (every table has a text primary key `id`); rename the column"
            ),
        ));
    }
    if !is_identifier(&cname, false) {
        return Err(err(
            name.span(),
            format!(
                "tables.{tname}.columns.{cname}: a column name must be lowercase letters, digits and '_', starting with a letter"
            ),
        ));
    }
    let privacy = match &spec.get_ref().sealed {
        None => Privacy::Shared,
        Some(group) if groups.contains_key(group) => Privacy::Sealed {
            group: group.clone(),
        },
        Some(group) => {
            let known: Vec<_> = groups.keys().cloned().collect();
            return Err(err(
                spec.span(),
                format!(
                    "tables.{tname}.columns.{cname}: sealed to unknown group `{group}`; define it under [groups]{}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(" or use one of: {}", known.join(", "))
                    }
                ),
            ));
        }
    };
    let ty = match &spec.get_ref().ty {
        None => None,
        Some(TypeSpec::Named(name)) => Some(ColumnType::named(name).ok_or_else(|| {
            err(
                spec.span(),
                format!(
                    "tables.{tname}.columns.{cname}: unknown type `{name}`; use one of {}, or `one_of = [\"…\", …]` for a list of values",
                    TYPE_NAMES.join(", ")
                ),
            )
        })?),
        Some(TypeSpec::OneOf(values)) => {
            Some(ColumnType::one_of(values.iter().cloned()).ok_or_else(|| {
                err(
                    spec.span(),
                    format!(
                        "tables.{tname}.columns.{cname}: `one_of` needs at least one value and no empty ones, e.g. one_of = [\"scheduled\", \"cancelled\"]"
                    ),
                )
            })?)
        }
    };
    Ok(ColumnDef {
        name: cname,
        privacy,
        ty,
        required: spec.get_ref().required,
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    hex(digest.as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ---- file format -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    /// The node names of the offices (rights name them).
    offices: Option<rights::OfficesFile>,
    #[serde(default)]
    groups: Entries<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    tables: Entries<Spanned<TableFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    columns: Entries<Spanned<ColumnSpec>>,
    rights: Option<Spanned<rights::RightsFile>>,
}

/// `"shared"`, or a table of `sealed = "GROUP"`, `type = "NAME"`,
/// `one_of = ["…", …]` and `required = true` (each optional; without
/// `sealed` the column is shared).
struct ColumnSpec {
    sealed: Option<String>,
    ty: Option<TypeSpec>,
    required: bool,
}

enum TypeSpec {
    Named(String),
    OneOf(Vec<String>),
}

impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = ColumnSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""shared" or a table like { sealed = "GROUP", type = "date" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ColumnSpec, E> {
                if v == "shared" {
                    Ok(ColumnSpec {
                        sealed: None,
                        ty: None,
                        required: false,
                    })
                } else {
                    Err(E::custom(format!(
                        r#"unknown privacy class `{v}`; write "shared", {{ sealed = "GROUP" }} or {{ type = "integer" }}"#
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ColumnSpec, A::Error> {
                let mut spec = ColumnSpec {
                    sealed: None,
                    ty: None,
                    required: false,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "sealed" => spec.sealed = Some(map.next_value::<String>()?),
                        "required" => {
                            spec.required = map.next_value::<bool>().map_err(|_| {
                                de::Error::custom(
                                    "`required` is true or false, e.g. title = { required = true }",
                                )
                            })?
                        }
                        "type" if spec.ty.is_none() => {
                            spec.ty = Some(TypeSpec::Named(map.next_value::<String>()?))
                        }
                        "one_of" if spec.ty.is_none() => {
                            spec.ty = Some(TypeSpec::OneOf(map.next_value::<Vec<String>>()?))
                        }
                        "type" | "one_of" => {
                            return Err(de::Error::custom(
                                "give a column either `type` or `one_of`, not both",
                            ));
                        }
                        _ => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{key}` in a column; the keys are `sealed`, `type`, `one_of` and `required`"
                            )));
                        }
                    }
                }
                Ok(spec)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
