//! Files the daemon can read whatever the umask, and keys nobody else
//! can: `puente init` run as root under umask 077 with a service user in
//! group `puente`, then the daemon run as that user starts; `puente check
//! --as-service` agrees. Controls: another member of group `puente` (an
//! admin) reads the config but neither the TLS key nor the replica key;
//! the service user outside the group cannot read the config, its daemon
//! does not start, and check names the file and the command to fix it.
//!
//! Owns: that check with a throwaway user (useradd; removed at the end,
//! as the role tests do), and group `puente` made for the test when the
//! machine has none (removed again then).
//! Must not: leave users or groups behind, or pass where it could not
//! run: without root it fails, unless skipping is asked for
//! (`support::runs_as_root`; CI runs as root).

use crate::cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cluster::*;

/// A throwaway user, and group `puente` when this test made it.
struct Accounts {
    user: String,
    uid: u32,
    gid: u32,
    puente_gid: u32,
    made_group: bool,
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gid_of(group: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

impl Accounts {
    fn create(id: u32) -> Accounts {
        let made_group = gid_of("puente").is_none();
        if made_group {
            run_ok(Command::new("groupadd").arg("puente"));
        }
        let puente_gid = gid_of("puente").unwrap();
        let user = format!("pt-svc-{id}");
        run_ok(Command::new("groupadd").args(["-g", &id.to_string(), &user]));
        let accounts = Accounts {
            user: user.clone(),
            uid: id,
            gid: id,
            puente_gid,
            made_group,
        };
        run_ok(Command::new("useradd").args([
            "-M",
            "-N",
            "-u",
            &id.to_string(),
            "-g",
            &id.to_string(),
            "-G",
            "puente",
            "-s",
            "/usr/sbin/nologin",
            &user,
        ]));
        accounts
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).output();
        let _ = Command::new("groupdel").arg(&self.user).output();
        if self.made_group {
            let _ = Command::new("groupdel").arg("puente").output();
        }
    }
}

/// `puente run` as `uid`:`gid` with exactly `groups`, in the background.
fn daemon_as(a: &Accounts, groups: &[u32], config: &Path, log: &Path) -> std::process::Child {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", a.uid))
        .arg(format!("--regid={}", a.gid));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--")
        .arg(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("run setpriv")
}

fn check_as(config: &Path, user: &str) -> Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .args(["--as-service", user])
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

#[test]
fn init_under_umask_077_then_the_daemon_in_group_puente_starts() {
    if !crate::support::runs_as_root("this test makes a throwaway user") {
        return;
    }
    let id = 61_000 + (std::process::id() % 2_000);
    let accounts = Accounts::create(id);

    let tmp = tempfile::tempdir().unwrap();
    // The folders above the node are searchable, as /etc is.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("etc-puente");
    // What systemd's RuntimeDirectory= makes for the socket.
    let run_dir = tmp.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::os::unix::fs::chown(&run_dir, Some(accounts.uid), Some(accounts.gid)).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$@\"")
        .arg("sh")
        .arg(BIN)
        .args([
            "init",
            "--name",
            "tijuana",
            "--time-zone",
            "America/Tijuana",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--service-user", &accounts.user])
        .arg("--dir")
        .arg(&dir)
        .arg("--admin-socket")
        .arg(run_dir.join("admin.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("belong to the daemon's user alone"), "{said}");
    let config = dir.join("puente.toml");

    // Who reads what, tried with the kernel's own answer (`cat` as that
    // user): the service user reads the keys; another member of group
    // `puente` (an uid with no passwd line, as an admin would be) reads
    // the config and nothing secret.
    let cat_as = |uid: u32, gid: u32, file: &Path| -> bool {
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(format!("--groups={}", accounts.puente_gid))
            .arg("--")
            .arg("cat")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let secrets = [dir.join("certs/node.key"), dir.join("keys/replica.key")];
    let admin = accounts.uid + 1;
    for secret in &secrets {
        assert!(
            cat_as(accounts.uid, accounts.gid, secret),
            "the service user reads {}",
            secret.display()
        );
        assert!(
            !cat_as(admin, admin, secret),
            "another member of group puente reads {}",
            secret.display()
        );
    }
    assert!(
        cat_as(admin, admin, &config),
        "a member of group puente reads the config"
    );

    // check --as-service: the group member may use every file …
    let ok = check_as(&config, &accounts.user);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&format!(
            "the daemon's user `{}` can read every file",
            accounts.user
        )),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // … and it starts as that user.
    let log = tmp.path().join("daemon.log");
    let mut child = daemon_as(&accounts, &[accounts.puente_gid], &config, &log);
    let started = Instant::now();
    let socket = run_dir.join("admin.sock");
    loop {
        let status = Command::new(BIN)
            .args(["status", "--json", "--socket"])
            .arg(&socket)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        if status.status.success() {
            assert!(
                String::from_utf8_lossy(&status.stdout)
                    .contains("\"time_zone\": \"America/Tijuana\"")
            );
            break;
        }
        if let Some(exit) = child.try_wait().unwrap() {
            panic!(
                "the daemon as {} exited ({exit}): {}",
                accounts.user,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon never answered: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();

    // The control: the same user without group `puente` cannot read the
    // config; check names the file and the fix, and the daemon does not
    // start.
    let refused = Command::new("setpriv")
        .arg(format!("--reuid={}", accounts.uid))
        .arg(format!("--regid={}", accounts.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    run_ok(Command::new("gpasswd").args(["-d", &accounts.user, "puente"]));
    let out = check_as(&config, &accounts.user);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    assert!(
        err.contains(&format!("cannot read {file}"))
            && err.contains(&format!(
                "run: sudo chgrp puente {file} && sudo chmod 0640 {file}"
            )),
        "{err}"
    );
}
