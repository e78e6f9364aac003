//! Roles on the admin socket, with real uids: the test runs as root,
//! makes a throwaway user and group (useradd, groupadd; removed at the
//! end), and runs the `puente` client as other users with `setpriv`
//! (util-linux), with and without supplementary groups. Every refusal is
//! HTTP 403 with a sentence naming the missing role, and writes nothing.
//!
//! Must not: leave users or groups behind, or pass silently where it could
//! not run: without root it says so and stops (CI runs as root).

use crate::cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use cluster::*;
use puente::value::Plaintext;

/// A user and group made for this test, removed when dropped.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    group: String,
}

impl Account {
    fn create(tag: &str, id: u32) -> Account {
        let name = format!("pt-{tag}-{id}");
        let group = format!("pt-{tag}g-{id}");
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("run useradd/groupadd");
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("groupadd").args(["-g", &id.to_string(), &group]));
        let account = Account {
            name: name.clone(),
            uid: id,
            gid: id,
            group: group.clone(),
        };
        run(Command::new("useradd").args([
            "-M",
            "-N",
            "-u",
            &id.to_string(),
            "-g",
            &id.to_string(),
            "-s",
            "/usr/sbin/nologin",
            &name,
        ]));
        account
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

/// `puente ARGS` as `uid`:`gid` with exactly `groups` as supplementary
/// groups.
fn as_user(uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--").arg(BIN).args(args).env("RUST_LOG", "off");
    cmd.output().expect("run setpriv")
}

/// Asserts a refusal naming `role`; returns stderr.
fn refused(out: &Output, role: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "allowed, but should need `{role}`");
    assert!(
        err.contains(&format!("that needs the `{role}` role")) && err.contains("(HTTP 403)"),
        "{err}"
    );
    err
}

fn allowed(out: &Output) -> String {
    assert!(
        out.status.success(),
        "refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lets other users reach the socket: the folders on its path become
/// traversable and the socket writable (in production the socket's group
/// does this; here the roles are under test, not file modes).
fn open_path(root: &Path, socket: &Path) {
    let mut dir = socket.parent();
    while let Some(d) = dir {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        if d == root {
            break;
        }
        dir = d.parent();
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_needed_and_refusals_say_which() {
    if !crate::support::runs_as_root("the role tests run the client as other users") {
        return;
    }
    // Ids unlikely to exist; the test removes what it made.
    let base = 42_000 + std::process::id() % 5_000 * 4;
    let writer = Account::create("w", base);
    let readers = Account::create("r", base + 1);
    // Numeric ids need no account: setpriv runs the client as them.
    let (nobody, reader_uid, revealer_gid, admin) =
        (base + 2, base + 3, base + 200_000, base + 100_000);

    let mut c = Cluster::new(&[("tijuana", true)]);
    // Replace the [access] section `puente init` wrote.
    let config = c[0].config.clone();
    let mut doc: toml_edit::DocumentMut =
        std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let access: toml_edit::Table = format!(
        "read = [\"group:{}\", \"user:{reader_uid}\"]\nwrite = [\"user:{}\"]\nreveal = [\"group:{revealer_gid}\"]\nadmin = [\"user:{admin}\"]\n",
        readers.group, writer.name
    )
    .parse::<toml_edit::DocumentMut>()
    .unwrap()
    .as_table()
    .clone();
    doc["access"] = toml_edit::Item::Table(access);
    std::fs::write(&config, doc.to_string()).unwrap();
    c.start_all().await;
    let tj = &c[0];
    tj.client()
        .put_row(
            "residents",
            "r1",
            vec![
                ("status".into(), Plaintext::text("arrived")),
                ("full_name".into(), Plaintext::text("Nombre Sellado")),
            ],
        )
        .await
        .unwrap();
    open_path(c.path(), &tj.socket);
    let s = tj.socket.to_str().unwrap().to_string();
    let socket = ["--socket", s.as_str()];
    let args = |rest: &[&'static str]| -> Vec<String> {
        rest.iter()
            .map(|a| a.to_string())
            .chain(socket.iter().map(|a| a.to_string()))
            .collect()
    };
    let run = |uid, gid, groups: &[u32], rest: &[&'static str]| {
        let a = args(rest);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        as_user(uid, gid, groups, &a)
    };

    // No role at all.
    let err = refused(&run(nobody, nobody, &[], &["status"]), "read");
    assert!(
        err.contains(&format!("uid {nobody} may not read the status"))
            && err.contains("it holds no role"),
        "{err}"
    );
    assert!(
        err.contains(&format!("[access] section of {}", config.display())),
        "{err}"
    );
    assert!(
        run(nobody, nobody, &[], &["rows", "list", "outreach_events"])
            .status
            .code()
            != Some(0)
    );

    // read (by uid): reads, nothing else.
    allowed(&run(reader_uid, reader_uid, &[], &["status"]));
    let rows = allowed(&run(
        reader_uid,
        reader_uid,
        &[],
        &["rows", "get", "residents", "r1"],
    ));
    assert!(
        rows.contains("‹sealed›") && !rows.contains("Nombre"),
        "{rows}"
    );
    let err = refused(
        &run(
            reader_uid,
            reader_uid,
            &[],
            &["rows", "get", "residents", "r1", "--reveal"],
        ),
        "reveal",
    );
    assert!(
        err.contains("may not reveal sealed values") && err.contains("holds only `read`"),
        "{err}"
    );
    refused(
        &run(
            reader_uid,
            reader_uid,
            &[],
            &["rows", "put", "outreach_events", "e1", "title=x"],
        ),
        "write",
    );
    refused(
        &run(
            reader_uid,
            reader_uid,
            &[],
            &["rows", "delete", "residents", "r1"],
        ),
        "write",
    );
    refused(&run(reader_uid, reader_uid, &[], &["sync"]), "admin");
    let err = refused(
        &run(reader_uid, reader_uid, &[], &["staff", "list"]),
        "admin",
    );
    assert!(err.contains("may not manage staff logins"), "{err}");
    refused(
        &run(
            reader_uid,
            reader_uid,
            &[],
            &["staff", "add", "x", "--role", "viewer"],
        ),
        "admin",
    );

    // write (by user name); read only through a supplementary group.
    let w = &writer;
    allowed(&run(
        w.uid,
        w.gid,
        &[],
        &["rows", "put", "outreach_events", "e1", "title=Taller"],
    ));
    let err = refused(
        &run(w.uid, w.gid, &[], &["rows", "get", "outreach_events", "e1"]),
        "read",
    );
    assert!(
        err.contains(&format!("user {} (uid {})", w.name, w.uid)),
        "{err}"
    );
    allowed(&run(
        w.uid,
        w.gid,
        &[readers.gid],
        &["rows", "get", "outreach_events", "e1"],
    ));
    allowed(&run(w.uid, w.gid, &[readers.gid], &["schedule"]));

    // reveal (by group number) together with read: reveals, audited.
    let out = allowed(&run(
        nobody,
        nobody,
        &[revealer_gid, readers.gid],
        &["rows", "get", "residents", "r1", "--reveal"],
    ));
    assert!(out.contains("Nombre Sellado"), "{out}");
    refused(
        &run(
            nobody,
            nobody,
            &[revealer_gid],
            &["rows", "get", "residents", "r1", "--reveal"],
        ),
        "read",
    );
    let audit = std::fs::read_to_string(tj.data_dir().join("audit.log")).unwrap();
    assert!(audit.contains(&format!("\"uid\":{nobody}")), "{audit}");

    // admin: everything.
    allowed(&run(admin, admin, &[], &["sync"]));
    allowed(&run(
        admin,
        admin,
        &[],
        &["staff", "add", "viewer-tj", "--role", "viewer"],
    ));
    allowed(&run(
        admin,
        admin,
        &[],
        &["rows", "get", "residents", "r1", "--reveal"],
    ));

    // Bulk: import needs `write`, export `read`, a revealing export
    // `reveal` too.
    let file = c.path().join("import.csv");
    std::fs::write(&file, "id,title\ne9,Importado\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = file.to_str().unwrap();
    let bulk = |uid, gid, groups: &[u32], rest: &[&str]| {
        let mut a: Vec<&str> = rest.to_vec();
        a.extend(socket);
        as_user(uid, gid, groups, &a)
    };
    let err = refused(
        &bulk(
            reader_uid,
            reader_uid,
            &[],
            &["rows", "import", "outreach_events", f],
        ),
        "write",
    );
    assert!(err.contains("may not import rows"), "{err}");
    let csv = allowed(&bulk(
        reader_uid,
        reader_uid,
        &[],
        &["rows", "export", "residents"],
    ));
    assert!(csv.contains("\nr1,") && !csv.contains("Nombre"), "{csv}");
    refused(
        &bulk(
            reader_uid,
            reader_uid,
            &[],
            &["rows", "export", "residents", "--reveal"],
        ),
        "reveal",
    );
    allowed(&bulk(
        w.uid,
        w.gid,
        &[],
        &["rows", "import", "outreach_events", f],
    ));

    // Nothing a refusal touched was written.
    let ids: Vec<String> = tj
        .client()
        .list_rows("residents", None, None, false)
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r1"], "the refused delete kept r1");
    let staff = tj.client().list_staff().await.unwrap();
    assert_eq!(
        staff.staff.len(),
        1,
        "only the admin's staff add went through"
    );
    assert_eq!(
        cell(tj, "outreach_events", "e1", "title", false)
            .await
            .as_deref(),
        Some("Taller"),
        "only the writer's put went through"
    );
    assert_eq!(
        cell(tj, "outreach_events", "e9", "title", false)
            .await
            .as_deref(),
        Some("Importado"),
        "the writer's import went through"
    );
}
