//! `puente demo` with nothing but the built binary: exits 0 by itself,
//! shows both offices in sync, the same agenda at both, a resident sealed
//! in San Diego and revealed in Tijuana, both replicas encrypted at rest
//! (zero hits for shared values in the database and live WAL), zero
//! sealed plaintext hits anywhere in a scan that saw its controls, and
//! cleans up.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_demo_runs_by_itself_and_shows_what_it_promises() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_puente"))
        .arg("demo")
        .env("TZ", "America/Tijuana")
        .env("RUST_LOG", "off")
        .output()
        .expect("run puente demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the demo took {:?}",
        started.elapsed()
    );
    for expected in [
        "== status of tijuana",
        "== status of san-diego",
        "in sync",
        "(the same agenda at both offices)",
        "‹sealed›",
        "Residente de ejemplo Tres",
        "for the 16 sealed values: 0 plaintext hits",
        "(event titles, arrival dates, row ids): 0 hits",
        "at rest     encrypted (SQLCipher 4.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert_eq!(stdout.matches("0 plaintext hits").count(), 2);
    // Each scan, made while the daemons ran, saw its positive controls: the
    // office's name in its log, a file planted in its data dir.
    assert_eq!(
        stdout
            .matches("0 plaintext hits; controls found in daemon.log, scan-control.txt")
            .count(),
        2,
        "{stdout}"
    );
    assert_eq!(stdout.matches("row ids): 0 hits").count(), 2);
    // The folder it used is gone.
    let folder = stdout
        .lines()
        .next()
        .and_then(|l| l.split(" in ").last())
        .expect("the first line names the folder");
    assert!(
        !std::path::Path::new(folder.trim()).exists(),
        "{folder} was left behind"
    );
}
