//! A role is a boundary however the request is spelled: a real daemon,
//! a user holding only `read` (run with `setpriv`, as
//! access_roles.rs does), and curl sending the request line byte for byte
//! (`--path-as-is`). Every spelling of `reveal` is refused (403) or
//! rejected (400) and never answers a sealed value or writes an audit
//! line; `HEAD` is refused (405). A user holding `reveal` gets the same
//! spellings answered, so the refusals are not vacuous.
//!
//! Must not: pass silently without root (it says so and stops; CI runs as
//! root), or leave a process behind.

use crate::cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cluster::*;
use puente::value::Plaintext;

const NAME: &str = "Nombre Muy Sellado";

/// `curl` as `uid` (gid the same, no supplementary groups) on the admin
/// socket: the status code and the body.
fn curl_as(uid: u32, socket: &Path, method: &str, target: &str) -> (u16, String) {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .args(["--", "curl", "-sS", "--path-as-is", "--max-time", "20"])
        .arg("--unix-socket")
        .arg(socket)
        .args(["-o", "-", "-w", "\n%{http_code}"]);
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    cmd.arg(format!("http://localhost{target}"));
    let out = cmd.output().expect("setpriv and curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl gave no status: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        }),
        body.to_string(),
    )
}

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

fn audit_bytes(office: &puente::lab::Office) -> usize {
    std::fs::read(office.dir.join("data/audit.log")).map_or(0, |b| b.len())
}

/// The spellings of a reveal the role check once read differently from
/// the handlers (issue 20, item 1), and others of the same kind.
const SPELLINGS: &[&str] = &[
    "/v1/tables/residents/rows/res-1?reveal=true",
    "/v1/tables/residents/rows/res-1?reveal=%74rue",
    "/v1/tables/residents/rows?%72eveal=1",
    "/v1/tables/residents/export?reveal=%79es",
    "/v1/tables/residents/rows?reveal=y%65s&limit=5",
    "/v1/tables/resid%65nts/rows/res%2D1?%72%65%76%65%61%6C=true",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_user_reveals_nothing_however_reveal_is_spelled() {
    if !crate::support::runs_as_root("runs curl as other users") {
        return;
    }
    let base = 47_000 + std::process::id() % 5_000 * 2;
    let (reader, revealer) = (base, base + 1);
    let mut c = Cluster::new(&[("tijuana", true)]);
    let config = c[0].config.clone();
    let mut doc: toml_edit::DocumentMut =
        std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let access: toml_edit::Table = format!(
        "read = [\"user:{reader}\", \"user:{revealer}\"]\nreveal = [\"user:{revealer}\"]\n"
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
            "res-1",
            vec![
                ("status".into(), Plaintext::text("arrived")),
                ("full_name".into(), Plaintext::text(NAME)),
            ],
        )
        .await
        .unwrap();
    open_path(c.path(), &tj.socket);
    let socket = tj.socket.clone();

    // Without reveal the reader reads: the socket and the user work.
    let (code, body) = curl_as(reader, &socket, "GET", "/v1/tables/residents/rows/res-1");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("arrived") && !body.contains(NAME), "{body}");

    for target in SPELLINGS {
        let (code, body) = curl_as(reader, &socket, "GET", target);
        assert_eq!(code, 403, "{target}: {body}");
        assert!(
            body.contains("may not reveal sealed values"),
            "{target}: {body}"
        );
        assert!(!body.contains(NAME), "{target}: {body}");
    }
    // Repeats, case and unknown keys: a 400 naming the key.
    for (target, names) in [
        (
            "/v1/tables/residents/rows/res-1?reveal=false&%72eveal=true",
            "`reveal`",
        ),
        ("/v1/tables/residents/rows/res-1?Reveal=true", "`Reveal`"),
        ("/v1/tables/residents/export?reveal=TRUE", "true or false"),
        ("/v1/tables/residents/rows?reveal+=true", "`reveal `"),
        ("/v1/status?reveal=true", "`reveal`"),
    ] {
        let (code, body) = curl_as(reader, &socket, "GET", target);
        assert_eq!(code, 400, "{target}: {body}");
        assert!(body.contains(names), "{target}: {body}");
        assert!(!body.contains(NAME), "{target}: {body}");
    }
    // HEAD is refused, revealing or not, and writes no audit line.
    for target in SPELLINGS.iter().chain(&["/v1/status"]) {
        let (code, _) = curl_as(reader, &socket, "HEAD", target);
        assert_eq!(code, 405, "HEAD {target}");
    }
    assert_eq!(audit_bytes(tj), 0, "nothing refused was audited");

    // Control: the user holding `reveal` gets every spelling answered and
    // audited, so the refusals above are the role, not a broken request.
    for target in SPELLINGS {
        let before = audit_bytes(tj);
        let (code, body) = curl_as(revealer, &socket, "GET", target);
        assert_eq!(code, 200, "{target}: {body}");
        assert!(body.contains(NAME), "{target}: {body}");
        assert!(audit_bytes(tj) > before, "{target} was audited");
    }
    // Even the revealer's HEAD writes nothing.
    let before = audit_bytes(tj);
    let (code, _) = curl_as(revealer, &socket, "HEAD", SPELLINGS[0]);
    assert_eq!(code, 405);
    assert_eq!(audit_bytes(tj), before, "a HEAD is never audited");
}
