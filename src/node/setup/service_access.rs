//! Whether the user the daemon runs as can use every file a node needs:
//! the config and schema (read), the TLS certificate and key, the replica
//! key file and the age identities (read), the data dir (write), and every
//! folder on the way (search), judged from owners and modes the way the
//! kernel does, and for each file it cannot use, the command that fixes it.
//!
//! Owns: that judgement (`judge`, without IO: metadata and the account are
//! passed in) and gathering the metadata of a node's files (`node_files`,
//! `check`).
//! Must not: change a file (it says what to run), or decide what a file
//! must hold.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::NodeConfig;
use crate::config::node::KeySource;

/// The user and group the package's unit runs the daemon as.
pub const SERVICE_USER: &str = "puente";
pub const SERVICE_GROUP: &str = "puente";

/// What the daemon does with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    /// A folder it writes in (the data dir).
    Write,
}

/// An account as the kernel sees it: uid and every gid it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

/// Owner, group and mode of a file or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub dir: bool,
}

/// A file the daemon cannot use, and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub message: String,
}

/// Whether `account` may do `bits` (4 read, 2 write, 1 search) on `m`.
fn may(account: &Account, m: &FileMeta, bits: u32) -> bool {
    if account.uid == 0 {
        return true;
    }
    let class = if m.uid == account.uid {
        (m.mode >> 6) & 7
    } else if account.gids.contains(&m.gid) {
        (m.mode >> 3) & 7
    } else {
        m.mode & 7
    };
    class & bits == bits
}

/// Every file and folder `account` cannot use as `needs` says, judged
/// with `meta` (None: the path does not exist). Folders on the way need
/// search; a secret (`secret`) gets a fix that keeps it from others.
pub fn judge(
    account: &Account,
    needs: &[(PathBuf, Need, bool)],
    meta: &dyn Fn(&Path) -> Option<FileMeta>,
    group_name: &str,
) -> Vec<Problem> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, need, secret) in needs {
        for folder in path.ancestors().skip(1) {
            if folder.as_os_str().is_empty() || !seen.insert(folder.to_path_buf()) {
                continue;
            }
            if let Some(m) = meta(folder)
                && !may(account, &m, 1)
            {
                problems.push(Problem {
                    path: folder.to_path_buf(),
                    message: format!(
                        "the daemon's user `{}` cannot enter the folder {} (owner uid {}, group gid {}, mode {:04o}); run: sudo chgrp {group_name} {} && sudo chmod g+x {}",
                        account.name,
                        folder.display(),
                        m.uid,
                        m.gid,
                        m.mode & 0o7777,
                        folder.display(),
                        folder.display()
                    ),
                });
            }
        }
        let Some(m) = meta(path) else {
            problems.push(Problem {
                path: path.clone(),
                message: format!("{} does not exist; the daemon needs it", path.display()),
            });
            continue;
        };
        let (bits, what) = match need {
            Need::Read if m.dir => (5, "read the folder"),
            Need::Read => (4, "read"),
            Need::Write => (7, "write in"),
        };
        if may(account, &m, bits) {
            continue;
        }
        let p = path.display();
        let fix = match (need, secret) {
            (Need::Write, _) => format!(
                "sudo chown {}:{group_name} {p} && sudo chmod 0700 {p}",
                account.name
            ),
            (Need::Read, true) => format!(
                "sudo chown {}:{group_name} {p} && sudo chmod 0600 {p}",
                account.name
            ),
            (Need::Read, false) if m.dir => {
                format!("sudo chgrp {group_name} {p} && sudo chmod 0750 {p}")
            }
            (Need::Read, false) => format!("sudo chgrp {group_name} {p} && sudo chmod 0640 {p}"),
        };
        problems.push(Problem {
            path: path.clone(),
            message: format!(
                "the daemon's user `{}` cannot {what} {p} (owner uid {}, group gid {}, mode {:04o}); run: {fix}",
                account.name,
                m.uid,
                m.gid,
                m.mode & 0o7777
            ),
        });
    }
    problems
}

/// The files a node's daemon needs: (path, need, whether it is a secret).
pub fn node_files(config: &NodeConfig) -> Vec<(PathBuf, Need, bool)> {
    let mut files = vec![
        (config.file.clone(), Need::Read, false),
        (config.schema_file.clone(), Need::Read, false),
        (config.tls_cert.clone(), Need::Read, false),
        (config.tls_key.clone(), Need::Read, true),
        (config.data_dir.clone(), Need::Write, false),
    ];
    if let Some(KeySource::File(key)) = &config.replica_key {
        files.push((key.clone(), Need::Read, true));
    }
    for identity in &config.identities {
        files.push((identity.clone(), Need::Read, true));
    }
    if let Some(web) = &config.web
        && let Some(tls) = &web.tls
    {
        files.push((tls.cert.clone(), Need::Read, false));
        files.push((tls.key.clone(), Need::Read, true));
    }
    files
}

/// The account named `user` from passwd and group text.
pub fn account(passwd: &str, group: &str, user: &str) -> Option<Account> {
    let (uid, gid) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user)).then(|| {
            Some((
                f.get(2)?.parse::<u32>().ok()?,
                f.get(3)?.parse::<u32>().ok()?,
            ))
        })?
    })?;
    let mut gids = vec![gid];
    gids.extend(crate::access::socket_roles::member_groups(group, user));
    Some(Account {
        name: user.to_string(),
        uid,
        gids,
    })
}

/// The gid of group `name` in group text.
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(2)?.parse::<u32>().ok())?
    })
}

/// Owner, group and mode of `path` (None if it cannot be read).
pub fn meta_of(path: &Path) -> Option<FileMeta> {
    std::fs::metadata(path).ok().map(|m| FileMeta {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
        dir: m.is_dir(),
    })
}

/// Checks the node's files for `user` (from /etc/passwd and /etc/group).
/// `Err`: no such user.
pub fn check(config: &NodeConfig, user: &str) -> Result<Vec<Problem>, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let Some(account) = account(&passwd, &group, user) else {
        return Err(format!(
            "there is no user `{user}` on this machine; the package makes it (or: sudo adduser --system --group --home /var/lib/puente --no-create-home {user}); name another with --as-service USER"
        ));
    };
    let group_name = group_id(&group, SERVICE_GROUP)
        .map_or_else(|| user.to_string(), |_| SERVICE_GROUP.to_string());
    Ok(judge(&account, &node_files(config), &meta_of, &group_name))
}

/// Whether this process runs as root (the owner of /proc/self).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn service() -> Account {
        Account {
            name: "puente".into(),
            uid: 900,
            gids: vec![900],
        }
    }

    fn metas(list: &[(&str, u32, u32, u32, bool)]) -> BTreeMap<PathBuf, FileMeta> {
        list.iter()
            .map(|(p, uid, gid, mode, dir)| {
                (
                    PathBuf::from(p),
                    FileMeta {
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                        dir: *dir,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_file_root_wrote_under_umask_077_is_named_with_the_fix() {
        let m = metas(&[
            ("/", 0, 0, 0o755, true),
            ("/etc", 0, 0, 0o755, true),
            ("/etc/puente", 0, 0, 0o755, true),
            ("/etc/puente/puente.toml", 0, 0, 0o600, false),
            ("/etc/puente/schema.toml", 0, 900, 0o640, false),
            ("/etc/puente/keys", 0, 0, 0o700, true),
            ("/etc/puente/keys/replica.key", 900, 900, 0o600, false),
        ]);
        let needs = vec![
            (PathBuf::from("/etc/puente/puente.toml"), Need::Read, false),
            (PathBuf::from("/etc/puente/schema.toml"), Need::Read, false),
            (
                PathBuf::from("/etc/puente/keys/replica.key"),
                Need::Read,
                true,
            ),
        ];
        let problems = judge(&service(), &needs, &|p| m.get(p).copied(), "puente");
        let said: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(problems.len(), 2, "{said:#?}");
        assert!(
            said[0].contains("cannot read /etc/puente/puente.toml")
                && said[0].contains("mode 0600")
                && said[0].ends_with("run: sudo chgrp puente /etc/puente/puente.toml && sudo chmod 0640 /etc/puente/puente.toml"),
            "{}",
            said[0]
        );
        assert!(
            said[1].contains("cannot enter the folder /etc/puente/keys")
                && said[1].contains("sudo chgrp puente /etc/puente/keys && sudo chmod g+x"),
            "{}",
            said[1]
        );
        // The control: root may do anything, so nothing is said for it.
        let root = Account {
            name: "root".into(),
            uid: 0,
            gids: vec![0],
        };
        assert!(judge(&root, &needs, &|p| m.get(p).copied(), "puente").is_empty());
    }

    #[test]
    fn owner_bits_decide_for_the_owner_even_when_the_group_could() {
        // Like the kernel: an owner without read is refused though its
        // group may read.
        let m = FileMeta {
            uid: 900,
            gid: 900,
            mode: 0o040,
            dir: false,
        };
        assert!(!may(&service(), &m, 4));
        assert!(may(
            &Account {
                name: "other".into(),
                uid: 901,
                gids: vec![900],
            },
            &m,
            4
        ));
    }

    #[test]
    fn accounts_and_groups_come_from_passwd_and_group_text() {
        let passwd =
            "root:x:0:0::/root:/bin/bash\npuente:x:900:900::/var/lib/puente:/usr/sbin/nologin\n";
        let group = "root:x:0:\npuente:x:900:\npuente-reveal:x:901:puente,ana\n";
        let a = account(passwd, group, "puente").unwrap();
        assert_eq!((a.uid, a.gids.clone()), (900, vec![900, 901]));
        assert!(account(passwd, group, "nobody-here").is_none());
        assert_eq!(group_id(group, "puente-reveal"), Some(901));
    }
}
