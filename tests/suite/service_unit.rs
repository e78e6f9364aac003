//! The systemd unit `config/puente.service`: `systemd-analyze verify`
//! accepts it without a single warning, and `systemd-analyze security`
//! rates its exposure 2.0 or lower.
//!
//! Owns: checking the unit file as systemd reads it, on a temp copy whose
//! ExecStart points at the binary under test.
//! Must not: install or start anything, or skip when `systemd-analyze` is
//! missing (the CI image has it: a missing tool is a failure).

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT_NAME: &str = "puente.service";
const INSTALLED_EXEC: &str = "ExecStart=/usr/bin/puente run --config /etc/puente/puente.toml";
/// The highest overall exposure we accept (systemd's scale: 0 to 10).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/puente.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A copy of `text` named puente.service in a temp dir, with the installed
/// binary path replaced by the binary cargo built.
fn temp_unit(text: &str) -> (tempfile::TempDir, PathBuf) {
    assert_eq!(
        text.matches(INSTALLED_EXEC).count(),
        1,
        "the unit must start `{INSTALLED_EXEC}` exactly once"
    );
    let exec = INSTALLED_EXEC.replace("/usr/bin/puente", env!("CARGO_BIN_EXE_puente"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(UNIT_NAME);
    std::fs::write(&path, text.replace(INSTALLED_EXEC, &exec)).unwrap();
    (dir, path)
}

/// Runs `systemd-analyze ARGS`; returns (success, stdout + stderr).
fn analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}); install systemd (apt-get install systemd)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What `systemd-analyze verify` says about the unit at `unit`: every
/// output line except warnings that name another unit file of this machine
/// (which this unit cannot fix). An empty list means a clean unit.
fn verify_problems(unit: &Path) -> Vec<String> {
    let unit_str = unit.to_str().unwrap();
    let (ok, text) = analyze(&["verify", "--no-pager", unit_str]);
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let foreign_unit_file = l.starts_with('/')
                && !l.starts_with(unit.parent().unwrap().to_str().unwrap())
                && !l.contains("puente");
            !foreign_unit_file
        })
        .map(str::to_string)
        .collect();
    if !ok {
        problems.push("systemd-analyze verify exited with an error".into());
    }
    problems
}

/// The overall exposure `systemd-analyze security --offline=true` gives the
/// unit at `unit` (0.0 best, 10.0 worst), and its full report.
fn exposure(unit: &Path) -> (f64, String) {
    let (_, text) = analyze(&[
        "security",
        "--no-pager",
        "--offline=true",
        unit.to_str().unwrap(),
    ]);
    let name = unit.file_name().unwrap().to_str().unwrap();
    let marker = format!("Overall exposure level for {name}:");
    let line = text
        .lines()
        .find_map(|l| l.split_once(&marker).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no `{marker}` line in:\n{text}"));
    let number = line.split_whitespace().next().unwrap_or_default();
    let value = number
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("exposure `{number}` is not a number ({e}) in:\n{text}"));
    (value, text)
}

#[test]
fn the_unit_verifies_without_warnings() {
    let (_dir, unit) = temp_unit(&unit_text());
    let problems = verify_problems(&unit);
    assert!(
        problems.is_empty(),
        "systemd-analyze verify {}:\n{}",
        unit.display(),
        problems.join("\n")
    );
}

/// The commented credential line of the unit, as the README switches it on.
const CREDENTIAL_LINE: &str =
    "LoadCredentialEncrypted=puente-replica-key:/etc/credstore.encrypted/puente-replica-key";

#[test]
fn the_unit_shows_the_credential_path_and_verifies_with_it_switched_on() {
    let text = unit_text();
    let commented = format!("#{CREDENTIAL_LINE}\n");
    assert!(
        text.contains(&commented),
        "the unit no longer shows {CREDENTIAL_LINE}"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(CREDENTIAL_LINE),
        "README and unit name different credentials"
    );
    let (_dir, unit) = temp_unit(&text.replace(&commented, &format!("{CREDENTIAL_LINE}\n")));
    let problems = verify_problems(&unit);
    assert!(
        problems.is_empty(),
        "with the credential line:\n{}",
        problems.join("\n")
    );
    let (value, report) = exposure(&unit);
    assert!(value <= MAX_EXPOSURE, "{report}");
}

#[test]
fn the_verify_check_catches_a_broken_unit() {
    // The check above must be able to fail: an unknown key only gives a
    // warning (verify still exits 0), a missing binary an error.
    let text = unit_text().replace("[Service]\n", "[Service]\nWatchdogSecs=30s\n");
    let (_dir, unit) = temp_unit(&text);
    let problems = verify_problems(&unit);
    assert!(
        problems.iter().any(|p| p.contains("WatchdogSecs")),
        "{problems:?}"
    );

    let (_dir, unit) = temp_unit(&unit_text());
    let text = std::fs::read_to_string(&unit).unwrap().replace(
        env!("CARGO_BIN_EXE_puente"),
        "/nonexistent/puente-not-built",
    );
    std::fs::write(&unit, text).unwrap();
    assert!(!verify_problems(&unit).is_empty());
}

#[test]
fn the_unit_is_confined_to_an_exposure_of_2_or_less() {
    let (_dir, unit) = temp_unit(&unit_text());
    let (value, report) = exposure(&unit);
    assert!(
        value <= MAX_EXPOSURE,
        "exposure {value} is above {MAX_EXPOSURE}:\n{report}"
    );
    // systemd's own threshold (on its 0..100 scale) agrees.
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32);
    let (ok, report) = analyze(&[
        "security",
        "--no-pager",
        "--offline=true",
        &threshold,
        unit.to_str().unwrap(),
    ]);
    assert!(ok, "systemd-analyze security {threshold} failed:\n{report}");
}

#[test]
fn the_exposure_check_catches_an_unconfined_unit() {
    let bare = format!("[Unit]\nDescription=bare\n\n[Service]\nType=notify\n{INSTALLED_EXEC}\n");
    let (_dir, unit) = temp_unit(&bare);
    let (value, report) = exposure(&unit);
    assert!(value > MAX_EXPOSURE, "{report}");
}

#[test]
fn the_unit_reloads_on_sighup() {
    // `systemctl reload puente` sends SIGHUP; the daemon re-reads its files.
    assert!(
        unit_text()
            .lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "the unit has no ExecReload"
    );
}

const BACKUP_EXEC: &str = "ExecStart=/usr/bin/puente backup --dir /var/lib/puente-backups --keep 14 --config /etc/puente/puente.toml";

/// The backup service and timer in one temp dir (the timer activates the
/// service by name), the service running the binary under test.
fn temp_backup_units() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let service = std::fs::read_to_string(root.join("puente-backup.service")).unwrap();
    let timer = std::fs::read_to_string(root.join("puente-backup.timer")).unwrap();
    assert_eq!(
        service.matches(BACKUP_EXEC).count(),
        1,
        "the backup runs `{BACKUP_EXEC}`"
    );
    let exec = BACKUP_EXEC.replace("/usr/bin/puente", env!("CARGO_BIN_EXE_puente"));
    let dir = tempfile::tempdir().unwrap();
    let (s, t) = (
        dir.path().join("puente-backup.service"),
        dir.path().join("puente-backup.timer"),
    );
    std::fs::write(&s, service.replace(BACKUP_EXEC, &exec)).unwrap();
    std::fs::write(&t, timer).unwrap();
    (dir, s, t)
}

#[test]
fn the_backup_service_and_timer_verify_without_warnings_and_are_confined() {
    let (_dir, service, timer) = temp_backup_units();
    for unit in [&service, &timer] {
        let problems = verify_problems(unit);
        assert!(
            problems.is_empty(),
            "systemd-analyze verify {}:\n{}",
            unit.display(),
            problems.join("\n")
        );
    }
    let (value, report) = exposure(&service);
    assert!(
        value <= MAX_EXPOSURE,
        "exposure {value} is above {MAX_EXPOSURE}:\n{report}"
    );
    // The command line it runs is one the binary accepts.
    let args: Vec<&str> = BACKUP_EXEC.split_whitespace().skip(1).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_puente"))
        .args(["backup", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "`puente backup` has no {flag}");
    }
}

#[test]
fn the_unit_allows_no_core_dump() {
    let text = unit_text();
    let service = text
        .split("[Service]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("a [Service] section");
    let limits: Vec<&str> = service
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("LimitCORE="))
        .collect();
    assert_eq!(limits, ["LimitCORE=0"], "{service}");
}
