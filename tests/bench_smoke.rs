//! A small run of `puente bench` (tiny sizes), so the benchmark cannot rot:
//! it must finish, write its JSON, and produce exactly the keys that
//! docs/performance.md documents.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn a_tiny_bench_run_writes_every_documented_key() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_puente"))
        .args([
            "bench",
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
            "--json",
        ])
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
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let keys: BTreeSet<String> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let value = f["value"].as_f64().unwrap();
            assert!(value.is_finite() && value >= 0.0, "{f}");
            f["key"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);

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
        .map(str::to_string)
        .collect();
    assert_eq!(
        keys, documented,
        "bench keys and docs/performance.md differ"
    );
}
