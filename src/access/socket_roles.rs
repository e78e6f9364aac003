//! Roles on the admin socket: who may do what.
//!
//! Owns: resolving the `[access]` names against the text of /etc/passwd
//! and /etc/group, the defaults (root and the daemon's own user hold every
//! role; without an `[access]` section nobody else holds any), a caller's
//! groups (from the text of /proc/PID/status, or from /etc/group when /proc
//! hides other users' processes), the roles each endpoint needs, and the
//! sentence of a refusal.
//! Must not: read files or sockets (admin/server.rs reads them and passes the
//! text in), or look at a request body.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use super::admin_request::{AdminRequest, Method, Route};
use crate::config::access::{AccessConfig, Principal, Role, Who};

/// Who is calling: the socket peer's uid and every group it holds (the
/// primary gid first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIds {
    pub uid: u32,
    pub gids: Vec<u32>,
}

/// `[access]` resolved to numbers, ready to check callers.
#[derive(Debug, Clone)]
pub struct Access {
    /// Per role (Read, Write, Reveal, Admin): uids and gids holding it.
    grants: [(HashSet<u32>, HashSet<u32>); 4],
    /// The uid the daemon runs as (holds every role, like root).
    daemon_uid: u32,
    /// The node config, named in refusals.
    config_file: PathBuf,
}

fn index(role: Role) -> usize {
    match role {
        Role::Read => 0,
        Role::Write => 1,
        Role::Reveal => 2,
        Role::Admin => 3,
    }
}

/// The number of `name` in a passwd- or group-format text (name:x:ID:…).
fn lookup(text: &str, name: &str) -> Option<u32> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut fields = l.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.trim().parse().ok()
    })
}

/// The name of user `uid` in passwd text.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.trim().parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Groups listing `user` as a member in group text (what the user gets at
/// login besides the primary group).
pub fn member_groups(group: &str, user: &str) -> Vec<u32> {
    group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let gid: u32 = f.get(2)?.trim().parse().ok()?;
            f.get(3)?
                .split(',')
                .any(|m| m.trim() == user)
                .then_some(gid)
        })
        .collect()
}

/// The groups of a process from its /proc/PID/status text, if the text
/// belongs to a process whose effective uid is `uid` (a pid reused by
/// another user's process gives None): its effective gid first, then its
/// supplementary groups.
pub fn proc_groups(status: &str, uid: u32) -> Option<Vec<u32>> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
                    .collect::<Vec<u32>>()
            })
    };
    let uids = field("Uid:")?;
    if uids.get(1) != Some(&uid) {
        return None;
    }
    let mut gids = vec![*field("Gid:")?.get(1)?];
    for g in field("Groups:").unwrap_or_default() {
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    Some(gids)
}

impl Access {
    /// Resolves `config` with the texts of /etc/passwd and /etc/group.
    /// Names that do not resolve grant nothing and come back as warnings.
    pub fn resolve(
        config: &AccessConfig,
        passwd: &str,
        group: &str,
        daemon_uid: u32,
        config_file: PathBuf,
    ) -> (Access, Vec<String>) {
        let mut grants: [(HashSet<u32>, HashSet<u32>); 4] = Default::default();
        let mut warnings = Vec::new();
        for (role, principal) in &config.grants {
            let (uids, gids) = &mut grants[index(*role)];
            match principal {
                Principal::User(Who::Id(id)) => {
                    uids.insert(*id);
                }
                Principal::Group(Who::Id(id)) => {
                    gids.insert(*id);
                }
                Principal::User(Who::Name(n)) => match lookup(passwd, n) {
                    Some(id) => {
                        uids.insert(id);
                    }
                    None => warnings.push(format!(
                        "{}: access.{role}: there is no user `{n}` in /etc/passwd, so this entry grants nothing; create the user or fix the name",
                        config_file.display()
                    )),
                },
                Principal::Group(Who::Name(n)) => match lookup(group, n) {
                    Some(id) => {
                        gids.insert(id);
                    }
                    None => warnings.push(format!(
                        "{}: access.{role}: there is no group `{n}` in /etc/group, so this entry grants nothing; create it (groupadd {n}) or fix the name",
                        config_file.display()
                    )),
                },
            }
        }
        (
            Access {
                grants,
                daemon_uid,
                config_file,
            },
            warnings,
        )
    }

    /// The roles `ids` hold. Root and the daemon's own user hold every
    /// role (both can read the replica's files anyway); `admin` implies
    /// every other role.
    pub fn roles_of(&self, ids: &CallerIds) -> BTreeSet<Role> {
        if ids.uid == 0 || ids.uid == self.daemon_uid {
            return Role::ALL.into_iter().collect();
        }
        let holds = |role: Role| {
            let (uids, gids) = &self.grants[index(role)];
            uids.contains(&ids.uid) || ids.gids.iter().any(|g| gids.contains(g))
        };
        if holds(Role::Admin) {
            return Role::ALL.into_iter().collect();
        }
        Role::ALL.into_iter().filter(|r| holds(*r)).collect()
    }

    /// Allows the request when `ids` hold every role in `needed`; otherwise
    /// the sentence of the refusal (HTTP 403).
    pub fn check(
        &self,
        ids: Option<&CallerIds>,
        needed: &Needed,
        user: Option<&str>,
    ) -> Result<(), String> {
        if needed.roles.is_empty() {
            return Ok(());
        }
        let Some(ids) = ids else {
            return Err(format!(
                "the admin socket could not tell which user is asking, so it cannot {}; connect through the Unix socket directly (not a proxy)",
                needed.action
            ));
        };
        let held = self.roles_of(ids);
        let missing: Vec<Role> = needed
            .roles
            .iter()
            .copied()
            .filter(|r| !held.contains(r))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let who = match user {
            Some(name) => format!("user {name} (uid {})", ids.uid),
            None => format!("uid {}", ids.uid),
        };
        let list = |roles: &[Role]| {
            roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let holds = if held.is_empty() {
            "holds no role".to_string()
        } else {
            format!(
                "holds only {}",
                list(&held.iter().copied().collect::<Vec<_>>())
            )
        };
        let role_word = if missing.len() == 1 { "role" } else { "roles" };
        Err(format!(
            "{who} may not {}: that needs the {} {role_word}, and it {holds}. An admin can grant it in the [access] section of {} (e.g. {} = [\"group:puente\"]) and restart puente",
            needed.action,
            list(&missing),
            self.config_file.display(),
            missing[0],
        ))
    }
}

/// What a request needs: its roles and, for messages, what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub roles: Vec<Role>,
    pub action: &'static str,
}

/// The roles a request needs, decided from the parsed request the handler
/// acts on (`admin_request::parse`). Health needs none (a liveness
/// probe); an unknown route needs `read` (so strangers learn nothing of
/// the API); a request that reveals needs `reveal` as well as `read`.
pub fn needed(request: &AdminRequest) -> Needed {
    let need = |roles: Vec<Role>, action| Needed { roles, action };
    let get = request.method == Method::Get;
    match &request.route {
        Route::Health => need(vec![], "check health"),
        Route::Status if get => need(vec![Role::Read], "read the status"),
        Route::Metrics if get => need(vec![Role::Read], "read the metrics"),
        Route::Sync => need(vec![Role::Admin], "start a sync"),
        Route::Staff | Route::StaffMember { .. } => need(vec![Role::Admin], "manage staff logins"),
        Route::Backup => need(vec![Role::Admin], "take a backup"),
        Route::Reseal if get => need(vec![Role::Read], "read the reseal's progress"),
        Route::Reseal => need(vec![Role::Admin], "re-seal cells"),
        Route::Checkpoint => need(vec![Role::Admin], "checkpoint the replica"),
        Route::Held | Route::HeldDecision { .. } => need(vec![Role::Admin], "review held changes"),
        Route::Rows { .. } | Route::Row { .. } | Route::Import { .. } | Route::Export { .. } => {
            if request.reveal() {
                need(vec![Role::Read, Role::Reveal], "reveal sealed values")
            } else {
                match request.method {
                    Method::Get => need(vec![Role::Read], "read rows"),
                    Method::Put => need(vec![Role::Write], "write rows"),
                    Method::Post => need(vec![Role::Write], "import rows"),
                    Method::Delete => need(vec![Role::Write], "delete rows"),
                }
            }
        }
        _ => need(vec![Role::Read], "use this endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::admin_request::parse;
    use crate::config::access::AccessFile;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\npuente:x:998:998::/var/lib/puente:/usr/sbin/nologin\nclerk:x:1001:1001::/home/clerk:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\npuente:x:998:clerk,other\npuente-reveal:x:997:\nclerk:x:1001:\n";

    fn access(toml_text: &str) -> (Access, Vec<String>) {
        let raw: AccessFile = toml::from_str(toml_text).unwrap();
        let config = raw
            .check(std::path::Path::new("/etc/puente/puente.toml"), toml_text)
            .unwrap();
        Access::resolve(
            &config,
            PASSWD,
            GROUP,
            998,
            "/etc/puente/puente.toml".into(),
        )
    }

    fn ids(uid: u32, gids: &[u32]) -> CallerIds {
        CallerIds {
            uid,
            gids: gids.to_vec(),
        }
    }

    const PACKAGED: &str = "read = [\"group:puente\"]\nwrite = [\"group:puente\"]\nreveal = [\"group:puente-reveal\"]\nadmin = [\"user:root\"]\n";

    #[test]
    fn the_packaged_access_gives_each_group_its_roles() {
        let (a, warnings) = access(PACKAGED);
        assert!(warnings.is_empty(), "{warnings:?}");
        let roles = |i: &CallerIds| a.roles_of(i).into_iter().collect::<Vec<_>>();
        assert_eq!(roles(&ids(1001, &[1001, 998])), [Role::Read, Role::Write]);
        assert_eq!(roles(&ids(1002, &[1002, 997])), [Role::Reveal]);
        assert_eq!(roles(&ids(1003, &[1003])), []);
        assert_eq!(roles(&ids(0, &[0])), Role::ALL);
        // The daemon's own user, whatever its groups.
        assert_eq!(roles(&ids(998, &[])), Role::ALL);
    }

    #[test]
    fn without_an_access_section_only_root_and_the_daemon_hold_roles() {
        let (a, _) = Access::resolve(&AccessConfig::default(), PASSWD, GROUP, 998, "x".into());
        assert!(a.roles_of(&ids(1001, &[998])).is_empty());
        assert_eq!(a.roles_of(&ids(0, &[])).len(), 4);
        assert_eq!(a.roles_of(&ids(998, &[])).len(), 4);
    }

    #[test]
    fn admin_implies_every_role_and_numbers_work() {
        let (a, _) = access("admin = [\"user:1005\"]\nread = [\"group:4242\"]\n");
        assert_eq!(a.roles_of(&ids(1005, &[])).len(), 4);
        assert_eq!(
            a.roles_of(&ids(7, &[3, 4242]))
                .into_iter()
                .collect::<Vec<_>>(),
            [Role::Read]
        );
    }

    #[test]
    fn unknown_names_warn_and_grant_nothing() {
        let (a, warnings) = access("read = [\"group:nobody-here\", \"user:ghost\"]\n");
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("groupadd nobody-here"), "{warnings:?}");
        assert!(warnings[1].contains("no user `ghost`"), "{warnings:?}");
        assert!(a.roles_of(&ids(1001, &[1001])).is_empty());
    }

    #[test]
    fn endpoints_need_their_roles() {
        let roles = |m, p, q: Option<&str>| needed(&parse(m, p, q, false).unwrap()).roles;
        assert_eq!(roles("GET", "/v1/health", None), []);
        assert_eq!(roles("GET", "/v1/status", None), [Role::Read]);
        assert_eq!(roles("GET", "/v1/metrics", None), [Role::Read]);
        assert_eq!(
            roles("GET", "/v1/tables/residents/rows", None),
            [Role::Read]
        );
        assert_eq!(
            roles("GET", "/v1/tables/residents/rows/r1", Some("reveal=true")),
            [Role::Read, Role::Reveal]
        );
        assert_eq!(
            roles("GET", "/v1/tables/residents/rows", Some("after=a&reveal=1")),
            [Role::Read, Role::Reveal]
        );
        assert_eq!(
            roles("GET", "/v1/tables/residents/rows", Some("reveal=false")),
            [Role::Read]
        );
        assert_eq!(roles("PUT", "/v1/tables/t/rows/r", None), [Role::Write]);
        assert_eq!(roles("POST", "/v1/tables/t/import", None), [Role::Write]);
        assert_eq!(roles("GET", "/v1/tables/t/export", None), [Role::Read]);
        assert_eq!(
            roles("GET", "/v1/tables/t/export", Some("columns=a&reveal=true")),
            [Role::Read, Role::Reveal]
        );
        assert_eq!(roles("DELETE", "/v1/tables/t/rows/r", None), [Role::Write]);
        assert_eq!(roles("POST", "/v1/sync", None), [Role::Admin]);
        assert_eq!(roles("POST", "/v1/staff", None), [Role::Admin]);
        assert_eq!(roles("DELETE", "/v1/staff/x", None), [Role::Admin]);
        assert_eq!(roles("GET", "/v1/held", None), [Role::Admin]);
        assert_eq!(roles("POST", "/v1/held/3/accept", None), [Role::Admin]);
        assert_eq!(roles("GET", "/v2/whatever", None), [Role::Read]);
    }

    #[test]
    fn a_refusal_names_the_user_the_missing_role_and_where_to_grant_it() {
        let (a, _) = access(PACKAGED);
        let need = needed(&parse("PUT", "/v1/tables/t/rows/r", None, false).unwrap());
        let e = a
            .check(Some(&ids(1003, &[1003])), &need, Some("clerk"))
            .unwrap_err();
        assert_eq!(
            e,
            "user clerk (uid 1003) may not write rows: that needs the `write` role, and it holds no role. An admin can grant it in the [access] section of /etc/puente/puente.toml (e.g. write = [\"group:puente\"]) and restart puente"
        );
        let need = needed(&parse("GET", "/v1/tables/t/rows", Some("reveal=yes"), false).unwrap());
        let e = a.check(Some(&ids(1001, &[998])), &need, None).unwrap_err();
        assert!(
            e.starts_with("uid 1001 may not reveal sealed values: that needs the `reveal` role, and it holds only `read` and `write`."),
            "{e}"
        );
        assert!(
            a.check(None, &need, None)
                .unwrap_err()
                .contains("could not tell")
        );
        assert!(
            a.check(
                None,
                &needed(&parse("GET", "/v1/health", None, false).unwrap()),
                None
            )
            .is_ok()
        );
        assert!(a.check(Some(&ids(1002, &[997])), &need, None).is_err());
        assert!(
            a.check(Some(&ids(1002, &[997, 998])), &need, None).is_ok(),
            "read from puente, reveal from puente-reveal"
        );
    }

    #[test]
    fn groups_come_from_proc_status_of_the_same_user() {
        let status = "Name:\tpuente\nUid:\t1001\t1001\t1001\t1001\nGid:\t1001\t1001\t1001\t1001\nGroups:\t998 1001 4242 \n";
        assert_eq!(proc_groups(status, 1001), Some(vec![1001, 998, 4242]));
        assert_eq!(proc_groups(status, 1002), None, "a reused pid");
        let no_groups = "Uid:\t5\t5\t5\t5\nGid:\t6\t6\t6\t6\nGroups:\t\n";
        assert_eq!(proc_groups(no_groups, 5), Some(vec![6]));
        assert_eq!(proc_groups("garbage", 5), None);
    }

    #[test]
    fn groups_come_from_etc_group_when_proc_is_hidden() {
        assert_eq!(user_name(PASSWD, 1001).as_deref(), Some("clerk"));
        assert_eq!(user_name(PASSWD, 4), None);
        assert_eq!(member_groups(GROUP, "clerk"), vec![998]);
        assert_eq!(member_groups(GROUP, "cle"), Vec::<u32>::new());
    }
}
