//! A small run of `puente bench` (tiny sizes), so the benchmark cannot rot:
//! it must finish, write its JSON, and produce exactly the keys that
//! docs/performance.md documents; the million-row section runs apart
//! (`--only million`), tiny, with a second variant of the receiver.

use std::collections::BTreeSet;
use std::process::Command;

/// Runs `puente bench ARGS --json FILE` and returns its report.
fn bench(args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_puente"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn keys(report: &serde_json::Value) -> BTreeSet<String> {
    report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let value = f["value"].as_f64().unwrap();
            assert!(value.is_finite() && value >= 0.0, "{f}");
            f["key"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_tiny_bench_run_writes_every_documented_key() {
    let report = bench(&[
        "--rows",
        "2000",
        "--seal-count",
        "64",
        "--latency-samples",
        "20",
        "--idle-seconds",
        "1",
        "--repeat",
        "1",
    ]);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let mut keys = keys(&report);
    assert!(
        !keys.iter().any(|k| k.starts_with("million.")),
        "the million-row catch-up runs only when named"
    );
    let million = bench(&[
        "--only",
        "million",
        "--million-rows",
        "3000",
        "--million-after-seconds",
        "1.2",
        "--million-variant",
        "shipped:",
        "--million-variant",
        "second::MALLOC_ARENA_MAX=1",
    ]);
    keys.extend(self::keys(&million));

    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/performance.md"),
    )
    .unwrap();
    // Keys are documented as the first cell of the key table: | `key` | ...
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| k.contains('.'))
        // `million.alt.LABEL.…`: the keys of a variant, here "second".
        .map(|k| k.replace("LABEL", "second"))
        .collect();
    assert_eq!(
        keys, documented,
        "bench keys and docs/performance.md differ"
    );
}
