//! The `[access]` section of the node config: which local users and groups
//! hold which role on the admin socket.
//!
//! ```toml
//! [access]
//! read = ["group:puente"]
//! write = ["group:puente"]
//! reveal = ["group:puente-reveal"]
//! admin = ["user:root"]
//! ```
//!
//! Owns: the four roles, the `user:NAME`, `group:NAME`, `user:UID`,
//! `group:GID` syntax and its errors (with file and line).
//! Must not: read /etc/passwd or /etc/group, or decide a request (the admin
//! socket's `access/socket_roles.rs` resolves names when it starts and checks callers).

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// A role on the admin socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Status, shared columns, the schedule.
    Read,
    /// Put and delete rows.
    Write,
    /// Sealed values (each reveal is audited).
    Reveal,
    /// Sync, peers, staff logins; implies every other role.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Read, Role::Write, Role::Reveal, Role::Admin];

    /// The key in `[access]` and the word in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Reveal => "reveal",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A user or group named in `[access]`, by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    Name(String),
    Id(u32),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Name(n) => f.write_str(n),
            Who::Id(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(Who),
    Group(Who),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(w) => write!(f, "user:{w}"),
            Principal::Group(w) => write!(f, "group:{w}"),
        }
    }
}

impl Principal {
    /// Parses `user:NAME`, `group:NAME`, `user:UID` or `group:GID`.
    pub fn parse(text: &str) -> Result<Principal, String> {
        let usage = "write \"user:NAME\", \"group:NAME\", \"user:UID\" or \"group:GID\", e.g. \"group:puente\"";
        let Some((kind, who)) = text.split_once(':') else {
            return Err(format!("`{text}` names no user or group; {usage}"));
        };
        let who = who.trim();
        let valid_name = !who.is_empty()
            && who.len() <= 64
            && who
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'));
        if !valid_name {
            return Err(format!("`{text}` is not a user or group name; {usage}"));
        }
        let who = if who.bytes().all(|b| b.is_ascii_digit()) {
            Who::Id(
                who.parse()
                    .map_err(|_| format!("`{text}`: the number is too large; {usage}"))?,
            )
        } else {
            Who::Name(who.to_string())
        };
        match kind.trim() {
            "user" => Ok(Principal::User(who)),
            "group" => Ok(Principal::Group(who)),
            _ => Err(format!(
                "`{text}` starts with `{kind}:`, which is neither user: nor group:; {usage}"
            )),
        }
    }
}

/// Who holds each role, as written in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// Each grant in file order.
    pub grants: Vec<(Role, Principal)>,
    /// Whether the config has an `[access]` section at all.
    pub configured: bool,
}

impl AccessConfig {
    pub fn holders(&self, role: Role) -> impl Iterator<Item = &Principal> {
        self.grants
            .iter()
            .filter(move |(r, _)| *r == role)
            .map(|(_, p)| p)
    }
}

/// `[access]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessFile {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    #[serde(default)]
    reveal: Vec<Spanned<String>>,
    #[serde(default)]
    admin: Vec<Spanned<String>>,
}

impl AccessFile {
    pub(crate) fn check(
        self,
        file: &std::path::Path,
        text: &str,
    ) -> Result<AccessConfig, ConfigError> {
        let mut grants = Vec::new();
        for (role, list) in [
            (Role::Read, self.read),
            (Role::Write, self.write),
            (Role::Reveal, self.reveal),
            (Role::Admin, self.admin),
        ] {
            for entry in list {
                let principal = Principal::parse(entry.get_ref()).map_err(|m| {
                    ConfigError::at(
                        file,
                        text,
                        Some(entry.span()),
                        format!("access.{role}: {m}"),
                    )
                })?;
                grants.push((role, principal));
            }
        }
        Ok(AccessConfig {
            grants,
            configured: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_by_name_or_number() {
        assert_eq!(
            Principal::parse("group:puente").unwrap(),
            Principal::Group(Who::Name("puente".into()))
        );
        assert_eq!(
            Principal::parse("user:0").unwrap(),
            Principal::User(Who::Id(0))
        );
        assert_eq!(
            Principal::parse("user:root").unwrap().to_string(),
            "user:root"
        );
        for bad in [
            "puente",
            "grp:puente",
            "group:",
            "user:a b",
            "user:99999999999",
        ] {
            let e = Principal::parse(bad).unwrap_err();
            assert!(e.contains("group:puente"), "{bad}: {e}");
        }
    }
}
