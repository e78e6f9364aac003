//! The README's "Install at two offices", step by step: every command line
//! below must appear verbatim in README.md, and is run with temp folders in
//! place of /etc/puente, /var/lib/puente and /run/puente, 127.0.0.1 in
//! place of the public addresses, and the systemd unit's ExecStart in
//! place of systemctl (systemd itself checks the unit: tests/suite/service_unit.rs).
//! And the README's test command: the script CI runs, installing the
//! packages the tests call.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_puente");

const TIJUANA_INIT: &str = "sudo puente init --dir /etc/puente --name tijuana --listen 0.0.0.0:7441 --data-dir /var/lib/puente --admin-socket /run/puente/admin.sock --time-zone America/Tijuana";
const KEYGEN: &str = "sudo -u puente puente keygen --out /etc/puente/keys/mx.key";
const RECOVERY_KEYGEN: &str = "puente keygen --out /media/usb/puente-recovery.key";
const EDIT_SCHEMA: &str = "sudoedit /etc/puente/schema.toml";
const EDIT_CONFIG: &str = "sudoedit /etc/puente/puente.toml";
const CHECK: &str = "sudo puente check --config /etc/puente/puente.toml";
const ID: &str = "sudo puente id --config /etc/puente/puente.toml";
const SAN_DIEGO_INIT: &str = "sudo puente init --dir /etc/puente --name san-diego --listen 0.0.0.0:7441 --data-dir /var/lib/puente --admin-socket /run/puente/admin.sock --time-zone America/Los_Angeles";
const COPY_SCHEMA: &str = "sudo cp schema.toml /etc/puente/schema.toml";
const PIN_SAN_DIEGO: &str = "sudo puente peer add --config /etc/puente/puente.toml --name san-diego --fingerprint SAN_DIEGO_FINGERPRINT --address sandiego.example.org:7441";
const PIN_TIJUANA: &str = "sudo puente peer add --config /etc/puente/puente.toml --name tijuana --fingerprint TIJUANA_FINGERPRINT --address tijuana.example.org:7441";
const CHECK_SERVICE: &str =
    "sudo puente check --config /etc/puente/puente.toml --as-service puente";
const START: &str = "sudo systemctl enable --now puente";
const STATUS: &str = "sudo puente status";

/// One office's folders standing in for the system paths.
struct Office {
    etc: PathBuf,
    var: PathBuf,
    run: PathBuf,
    port: u16,
    daemon: Option<Child>,
}

impl Office {
    fn new(root: &Path, name: &str, port: u16) -> Office {
        let o = Office {
            etc: root.join(format!("{name}-etc")),
            var: root.join(format!("{name}-var-lib")),
            run: root.join(format!("{name}-run")),
            port,
            daemon: None,
        };
        // systemd's StateDirectory= and RuntimeDirectory= make these.
        std::fs::create_dir_all(&o.var).unwrap();
        std::fs::create_dir_all(&o.run).unwrap();
        o
    }

    /// A README line with this office's folders, ports and the fingerprints.
    fn localize(&self, line: &str, subst: &[(&str, String)]) -> String {
        let mut s = line
            .replace("/etc/puente", self.etc.to_str().unwrap())
            .replace("/var/lib/puente", self.var.to_str().unwrap())
            .replace("/run/puente", self.run.to_str().unwrap())
            .replace("0.0.0.0:7441", &format!("127.0.0.1:{}", self.port));
        for (from, to) in subst {
            s = s.replace(from, to);
        }
        s
    }

    /// Runs a README `puente …` line (after `sudo`, which the test does not need).
    fn puente(&self, line: &str, subst: &[(&str, String)]) -> String {
        let line = self.localize(line, subst);
        let words: Vec<&str> = line.split_whitespace().collect();
        let args = match words.as_slice() {
            ["sudo", "puente", rest @ ..]
            | ["sudo", "-u", "puente", "puente", rest @ ..]
            | ["puente", rest @ ..] => rest.to_vec(),
            _ => panic!("not a puente command: {line}"),
        };
        let out = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Office {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_walkthrough_sets_up_two_offices_that_sync() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for line in [
        TIJUANA_INIT,
        KEYGEN,
        RECOVERY_KEYGEN,
        EDIT_SCHEMA,
        EDIT_CONFIG,
        CHECK,
        ID,
        SAN_DIEGO_INIT,
        COPY_SCHEMA,
        PIN_SAN_DIEGO,
        PIN_TIJUANA,
        CHECK_SERVICE,
        START,
        STATUS,
    ] {
        assert!(readme.contains(line), "README.md no longer says: {line}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (tj_port, sd_port) = (free_port(), free_port());
    let mut tj = Office::new(tmp.path(), "tijuana", tj_port);
    let mut sd = Office::new(tmp.path(), "san-diego", sd_port);
    let none: &[(&str, String)] = &[];

    // 2. Tijuana.
    // init makes keys/ (0700) with the replica key in it.
    tj.puente(TIJUANA_INIT, none);
    let tijuana_recipient = tj.puente(KEYGEN, none).trim().to_string();
    let usb = tmp.path().join("usb");
    std::fs::create_dir(&usb).unwrap();
    let recovery_recipient = tj
        .puente(
            RECOVERY_KEYGEN,
            &[("/media/usb", usb.to_str().unwrap().to_string())],
        )
        .trim()
        .to_string();
    // What the admin types in the editor.
    let schema = tj.etc.join("schema.toml");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace(
            "mx = []",
            &format!("mx = [\"{tijuana_recipient}\", \"{recovery_recipient}\"]"),
        ),
    )
    .unwrap();
    let config = tj.etc.join("puente.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[privacy]\nidentities = [\"keys/mx.key\"]\n");
    std::fs::write(&config, text).unwrap();
    let tj_check = tj.puente(CHECK, none);
    assert!(tj_check.contains("can unseal mx"), "{tj_check}");
    let tijuana_fp = tj.puente(ID, none).trim().to_string();

    // 3. San Diego.
    sd.puente(SAN_DIEGO_INIT, none);
    std::fs::copy(&schema, sd.etc.join("schema.toml")).unwrap();
    let sd_check = sd.puente(CHECK, none);
    let hash = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("schema hash: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        hash(&tj_check),
        hash(&sd_check),
        "both offices must have the same schema"
    );
    assert!(sd_check.contains("cannot unseal"), "{sd_check}");
    let san_diego_fp = sd.puente(ID, none).trim().to_string();

    // 4. Pins.
    tj.puente(
        PIN_SAN_DIEGO,
        &[
            ("SAN_DIEGO_FINGERPRINT", san_diego_fp.clone()),
            ("sandiego.example.org:7441", format!("127.0.0.1:{sd_port}")),
        ],
    );
    sd.puente(
        PIN_TIJUANA,
        &[
            ("TIJUANA_FINGERPRINT", tijuana_fp.clone()),
            ("tijuana.example.org:7441", format!("127.0.0.1:{tj_port}")),
        ],
    );

    // 5. Start: what `systemctl enable --now` runs is the unit's ExecStart.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/puente.service"),
    )
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart")
        .to_string();
    for office in [&mut tj, &mut sd] {
        let line = office.localize(&exec, &[("/usr/bin/puente", BIN.to_string())]);
        let mut words = line.split_whitespace();
        let program = words.next().unwrap();
        let log = std::fs::File::create(office.etc.join("daemon.log")).unwrap();
        office.daemon = Some(
            Command::new(program)
                .args(words)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let started = Instant::now();
    loop {
        let status = Command::new(BIN)
            .args(tj.localize(STATUS, none).split_whitespace().skip(2))
            .args(["--config", tj.etc.join("puente.toml").to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        if text
            .lines()
            .any(|l| l.contains("san-diego") && l.contains("connected") && l.contains("in sync"))
        {
            // Both replicas are encrypted at rest, with the key init made.
            assert!(
                text.contains("at rest     encrypted (SQLCipher 4.")
                    && text.contains("key from file"),
                "{text}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never in sync: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Day to day: a write in Tijuana is read in San Diego.
    let tj_conf = tj.etc.join("puente.toml");
    let sd_conf = sd.etc.join("puente.toml");
    tj.puente(
        &format!(
            "puente rows put outreach_events ev-1 title=Clinic starts_at=2030-03-04T10:00:00-08:00 capacity:=20 --config {}",
            tj_conf.display()
        ),
        none,
    );
    let started = Instant::now();
    loop {
        let out = Command::new(BIN)
            .args([
                "rows",
                "get",
                "outreach_events",
                "ev-1",
                "--config",
                sd_conf.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Clinic") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the write never reached San Diego"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// README's "Try it, test it" gives `tools/test`; `.ci/run` runs exactly
/// it; it ends in `cargo test --locked --features mutants` and installs
/// the packages whose programs the tests run.
#[test]
fn the_readme_test_command_is_the_script_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let readme = read("README.md");
    let try_it = readme
        .split("## Try it, test it")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README has a `Try it, test it` sh block");
    let commands: Vec<&str> = try_it
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["cargo run --release -- demo", "tools/test"]);

    let ci = read(".ci/run");
    assert_eq!(
        ci.lines().filter(|l| l.trim() == "tools/test").count(),
        1,
        ".ci/run must run tools/test:\n{ci}"
    );
    assert!(
        !ci.contains("cargo test"),
        ".ci/run tests only through tools/test"
    );

    let script = read("tools/test");
    assert!(
        script
            .trim_end()
            .ends_with("exec cargo test --locked --features mutants \"$@\""),
        "{script}"
    );
    let packages: Vec<&str> = script
        .split("PACKAGES=(")
        .nth(1)
        .and_then(|rest| rest.split("\n)").next())
        .expect("tools/test lists its packages in PACKAGES=( … )")
        .lines()
        .filter_map(|l| l.split('#').next().unwrap().split_whitespace().next())
        .collect();
    for needed in ["age", "curl", "sqlite3", "systemd"] {
        assert!(
            packages.contains(&needed),
            "{needed} missing from {packages:?}"
        );
    }
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(root.join("tools/test"))
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("tools/test"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "tools/test is not executable");
}
