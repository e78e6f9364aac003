//! What a new admin reads in the first week, as they read it: the
//! messages that used to point the wrong way (keygen's advice for the
//! offline recovery key, `peer add` and reload, a missing data dir, a
//! socket that is not the user's, a key file a group member cannot read,
//! the unit's `systemd-analyze security` hint), and the links `staff add`
//! prints with and without a public `[web] url`.
//!
//! Owns: those messages, read from the binary's output where a person sees
//! them there, or from the error's text where the condition needs another
//! user.
//! Must not: depend on the machine's users (the socket case is built from
//! the error a connect gives).

use crate::cluster;
use crate::web;

use std::path::Path;
use std::process::Command;

use cluster::*;

fn puente_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn init(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    let node = dir.join("node");
    let mut args = vec![
        "init",
        "--name",
        "tijuana",
        "--listen",
        "127.0.0.1:7441",
        "--time-zone",
        "America/Tijuana",
        "--dir",
        node.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = puente_in(dir, &args);
    assert!(ok, "{err}");
    node.join("puente.toml")
}

#[test]
fn keygen_says_where_an_office_key_goes_and_that_the_recovery_key_goes_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = puente_in(dir.path(), &["keygen", "--out", "recovery.key"]);
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("age1"), "{out}");
    assert!(
        err.contains("the office key (Tijuana): list this file under [privacy] identities")
            && err.contains("the offline recovery key: list it in no config")
            && err.contains("USB stick kept in a safe in Mexico"),
        "{err}"
    );
}

#[test]
fn peer_add_says_a_reload_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(dir.path(), &[]);
    let (ok, out, err) = puente_in(
        dir.path(),
        &[
            "peer",
            "add",
            "--config",
            config.to_str().unwrap(),
            "--name",
            "san-diego",
            "--fingerprint",
            &format!("sha256:{}", "ab".repeat(32)),
            "--address",
            "127.0.0.1:7442",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("run `systemctl reload puente`") && !out.contains("restart the daemon"),
        "{out}"
    );
}

#[test]
fn a_missing_data_dir_says_how_to_make_it_and_that_init_made_none() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("var-lib-puente");
    let config = init(
        dir.path(),
        &["--data-dir", missing.to_str().unwrap(), "--unencrypted"],
    );
    let (ok, _, err) = puente_in(dir.path(), &["run", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains(&format!("data dir {} does not exist", missing.display()))
            && err.contains("install -d -m 0700 -o puente -g puente")
            && err.contains("`puente init` makes DIR/data only when --data-dir is not given")
            && !err.contains("(`puente init` does)"),
        "{err}"
    );
}

#[test]
fn a_socket_that_is_not_the_users_says_so_not_that_the_daemon_is_down() {
    use puente::admin::ClientError;
    let denied = ClientError::Connect {
        socket: "/run/puente/admin.sock".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    }
    .to_string();
    assert!(
        denied.contains("permission denied")
            && denied.contains("The daemon may well be running")
            && denied.contains("sudo usermod -aG puente $USER")
            && !denied.contains("is it running"),
        "{denied}"
    );
    // The control: a socket that is not there still asks whether the
    // daemon runs.
    let down = ClientError::Connect {
        socket: "/run/puente/admin.sock".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
    .to_string();
    assert!(
        down.contains("is it running (systemctl status puente)?"),
        "{down}"
    );
}

#[test]
fn an_unreadable_key_file_says_to_run_as_its_owner_not_only_to_fix_the_daemon() {
    use puente::node::replica_key::ReplicaKeyError;
    let said = ReplicaKeyError::Unreadable {
        file: "/etc/puente/keys/replica.key".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    }
    .to_string();
    assert!(
        said.contains("run this command as root (sudo) or as the user that owns it")
            && said.contains("sudo -u puente puente")
            && said.contains("chown puente: /etc/puente/keys/replica.key"),
        "{said}"
    );
}

#[test]
fn the_unit_suggests_the_security_check_that_works_without_systemd() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/puente.service"),
    )
    .unwrap();
    assert!(unit.contains("systemd-analyze security --offline=true puente.service"));
    assert!(
        !unit.lines().any(|l| l
            .trim_end()
            .ends_with("systemd-analyze security puente.service")),
        "{unit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_add_warns_without_a_public_url_and_links_to_it_with_one() {
    let mut c = Cluster::new(&[("tijuana", true), ("san-diego", false)]);
    c.lab.enable_web(0, "America/Tijuana").unwrap();
    c.lab.enable_web(1, "America/Tijuana").unwrap();
    // San Diego's staff open https://agenda.sd.example.org (a proxy in
    // front of the loopback listener).
    let sd_config = c.lab[1].config.clone();
    let text = std::fs::read_to_string(&sd_config).unwrap();
    std::fs::write(
        &sd_config,
        format!("{text}url = \"https://agenda.sd.example.org/\"\n"),
    )
    .unwrap();
    c.start_all().await;
    let add = |o: &Office, name: &str| {
        let out = Command::new(BIN)
            .args(["staff", "add", name, "--role", "viewer", "--socket"])
            .arg(&o.socket)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let local = add(&c[0], "ana");
    let web = c[0].web.unwrap();
    assert!(
        local.contains("Login link (opens on this server only; see the warning below):")
            && local.contains(&format!("http://{web}/login?token="))
            && local.contains(&format!(
                "WARNING: these links start with http://{web}, which only this server can open"
            ))
            && local.contains("Set the address staff open as [web] url"),
        "{local}"
    );
    assert!(!local.contains("open it on their phone"), "{local}");

    let public = add(&c[1], "bea");
    assert!(
        public.contains("Login link (open it on their phone or computer):")
            && public.contains("  https://agenda.sd.example.org/login?token=")
            && public.contains("  https://agenda.sd.example.org/cal/")
            && !public.contains("WARNING"),
        "{public}"
    );
    // The link printed is the one the web takes (through the proxy's
    // address, here the listener itself).
    let link = public
        .lines()
        .find(|l| l.contains("/login?token="))
        .unwrap()
        .trim()
        .to_string();
    let mut http = web::Http::new(c[1].web.unwrap(), "en");
    http.sign_in(&link).await;
}

#[test]
fn a_url_that_names_this_machine_is_no_public_address() {
    use puente::config::NodeConfig;
    let base = "name = \"tijuana\"\nlisten = \"127.0.0.1:7441\"\ndata_dir = \"data\"\nadmin_socket = \"a.sock\"\nschema = \"schema.toml\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[web]\n";
    let web = |extra: &str| {
        NodeConfig::parse(
            Path::new("/etc/puente/puente.toml"),
            &format!("{base}{extra}"),
        )
        .unwrap()
        .web
        .unwrap()
    };
    for local in [
        "",
        "url = \"http://127.0.0.1:7480\"\n",
        "url = \"http://localhost:7480/\"\n",
        "url = \"https://[::1]:7480\"\n",
        "url = \"http://0.0.0.0:7480\"\n",
    ] {
        let w = web(local);
        assert_eq!(w.public_url(), None, "{local}");
        assert!(w.links_warning().unwrap().contains("[web] url"), "{local}");
    }
    for public in [
        "url = \"https://agenda.tijuana.example.org\"\n",
        "url = \"http://agenda.lan.example.org:7480\"\n",
        "url = \"https://localhost.example.org\"\n",
    ] {
        let w = web(public);
        assert!(w.public_url().is_some(), "{public}");
        assert!(w.links_warning().is_none(), "{public}");
    }
}
