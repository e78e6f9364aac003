//! Secrets where they do not belong, on the machine itself: the daemon is
//! non-dumpable (no core dump of its keys, no ptrace by its user), a
//! sealed value given as `column=-` never appears in the client's
//! /proc/PID/cmdline, and one given as an argument draws a warning.
//!
//! Must not: leave a client or a daemon running.

use crate::cluster;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::*;

const NAME: &str = "Nombre Por Entrada";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_is_not_dumpable() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    c.start_all().await;
    let pid = c[0].pid().expect("the daemon runs");
    // The daemon reads the flag back with prctl(PR_GET_DUMPABLE) and
    // says so once at start. (From outside, a non-dumpable process's
    // /proc/PID files belong to root, which shows nothing when the test
    // itself runs as root, as CI does.)
    let log = std::fs::read_to_string(&c[0].log).unwrap();
    assert!(
        log.contains("core dumps are off: the daemon is not dumpable"),
        "{log}"
    );
    assert!(
        !log.contains("could not mark the daemon non-dumpable"),
        "{log}"
    );
    // Where the test is not root, the kernel's view shows it too.
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let owner = std::fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid();
    if me != 0 {
        assert_eq!(owner, 0, "a non-dumpable process's /proc files are root's");
    }
}

/// Waits until `pid` is blocked reading (its stdin), or the deadline.
fn wait_blocked(pid: u32) {
    let started = Instant::now();
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") S ") && !wchan.is_empty() && wchan != "0" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the client never waited on standard input"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_read_from_standard_input_never_shows_in_argv() {
    let mut c = Cluster::new(&[("tijuana", true)]);
    c.start_all().await;
    let tj = &c[0];
    let socket = tj.socket.to_str().unwrap().to_string();
    let config = tj.config.to_str().unwrap().to_string();
    let mut child = Command::new(BIN)
        .args([
            "rows",
            "put",
            "residents",
            "r-stdin",
            "status=arrived",
            "full_name=-",
            "--socket",
            &socket,
            "--config",
            &config,
        ])
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_blocked(pid);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("full_name=-"), "{cmdline}");
    assert!(!cmdline.contains(NAME), "{cmdline}");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{NAME}\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("warning"),
        "no warning for a value on stdin: {err}"
    );
    assert_eq!(
        cell(tj, "residents", "r-stdin", "full_name", true)
            .await
            .as_deref(),
        Some(NAME),
        "the value is stored without its newline"
    );
    assert_eq!(
        cell(tj, "residents", "r-stdin", "full_name", false)
            .await
            .as_deref(),
        Some("<sealed>")
    );

    // Given as an argument: written, with a warning that says what to do.
    let out = Command::new(BIN)
        .args([
            "rows",
            "put",
            "residents",
            "r-argv",
            "status=arrived",
            "phone=+52 664 555 0000",
            "--socket",
            &socket,
            "--config",
            &config,
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "warning: phone is a sealed column of residents, and its value was given as an argument"
        ) && err.contains("phone=-"),
        "{err}"
    );
    assert!(!err.contains("555"), "the warning repeats no value: {err}");
    // A shared column draws no warning.
    let out = Command::new(BIN)
        .args([
            "rows",
            "put",
            "residents",
            "r-argv",
            "status=active",
            "--socket",
            &socket,
            "--config",
            &config,
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
