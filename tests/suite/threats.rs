//! `docs/threats.md` names a test on every line of its tables, and every
//! test it names exists: `tests/suite/FILE.rs::name` or
//! `src/FILE.rs::tests::name` must be a `fn name` in that file.

use std::path::Path;

/// Every `path::name` a line names.
fn named_tests(line: &str) -> Vec<(String, String)> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| {
            let (file, name) = quoted.split_once(".rs::")?;
            let file = format!("{file}.rs");
            if !(file.starts_with("tests/") || file.starts_with("src/")) {
                return None;
            }
            let name = name.strip_prefix("tests::").unwrap_or(name);
            Some((file, name.to_string()))
        })
        .collect()
}

fn defines(text: &str, name: &str) -> bool {
    text.match_indices(&format!("fn {name}")).any(|(at, m)| {
        text[at + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == '(' || c == '<')
    })
}

#[test]
fn every_line_of_the_threat_model_names_a_test_that_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/threats.md")).unwrap();
    let mut problems = Vec::new();
    let mut rows = 0;
    let mut named = 0;
    for (n, line) in doc.lines().enumerate() {
        let is_row =
            line.starts_with('|') && !line.starts_with("|---") && !line.starts_with("| what");
        let tests = named_tests(line);
        if is_row {
            rows += 1;
            if tests.is_empty() {
                problems.push(format!("line {}: names no test: {line}", n + 1));
            }
        }
        for (file, name) in tests {
            named += 1;
            match std::fs::read_to_string(root.join(&file)) {
                Ok(text) if defines(&text, &name) => {}
                Ok(_) => problems.push(format!("line {}: {file} has no fn {name}", n + 1)),
                Err(e) => problems.push(format!("line {}: {file}: {e}", n + 1)),
            }
        }
    }
    assert!(rows >= 30, "the tables were not found ({rows} rows)");
    assert!(named >= rows, "{named} tests for {rows} rows");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_a_test_that_does_not_exist() {
    let line =
        "| x | y | `tests/suite/threats.rs::no_such_test`, `src/clock.rs::tests::nor_this` |";
    let named = named_tests(line);
    assert_eq!(named.len(), 2);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite/threats.rs"),
    )
    .unwrap();
    assert!(!defines(&text, "no_such_test"));
    assert!(defines(&text, "named_tests"));
    // A prefix of a real name is not the name.
    assert!(!defines(&text, "named_test"));
}
