//! The admin request fuzzer's corpus on stable Rust: replays every file in
//! `fuzz/corpus/admin_request/` through the fuzz target's own harness
//! (`fuzz/src/request_check.rs`, included below), checks that each seed
//! still ends the way it was written to, and throws random request lines
//! at it with proptest. Also writes the seed corpus
//! (`cargo test --test suite -- --ignored fuzz_admin_request::write_seed_corpus`).

#[path = "../../fuzz/src/request_check.rs"]
mod request_check;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use puente::config::access::Role;
use request_check::{Outcome, input_bytes};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/admin_request")
}

struct Seed {
    name: &'static str,
    body: bool,
    line: &'static str,
    expect: Outcome,
}

fn parsed(reveal: bool, roles: &[Role]) -> Outcome {
    Outcome::Parsed {
        reveal,
        roles: roles.to_vec(),
    }
}

fn seeds() -> Vec<Seed> {
    use Outcome::{BadRequest, MethodNotAllowed};
    use Role::{Admin, Read, Reveal, Write};
    let seed = |name, body, line, expect| Seed {
        name,
        body,
        line,
        expect,
    };
    vec![
        seed("health", false, "GET /v1/health", parsed(false, &[])),
        seed("status", false, "GET /v1/status", parsed(false, &[Read])),
        seed(
            "row-reveal-plain",
            false,
            "GET /v1/tables/residents/rows/res-1?reveal=true",
            parsed(true, &[Read, Reveal]),
        ),
        seed(
            "row-reveal-encoded-value",
            false,
            "GET /v1/tables/residents/rows/res-1?reveal=%74rue",
            parsed(true, &[Read, Reveal]),
        ),
        seed(
            "rows-reveal-encoded-key",
            false,
            "GET /v1/tables/residents/rows?%72eveal=1",
            parsed(true, &[Read, Reveal]),
        ),
        seed(
            "export-reveal-encoded-yes",
            false,
            "GET /v1/tables/residents/export?reveal=%79es",
            parsed(true, &[Read, Reveal]),
        ),
        seed(
            "export-columns",
            false,
            "GET /v1/tables/residents/export?columns=status%2Cphone&reveal=false",
            parsed(false, &[Read]),
        ),
        seed(
            "rows-reveal-repeated",
            false,
            "GET /v1/tables/residents/rows?reveal=false&reveal=true",
            BadRequest,
        ),
        seed(
            "rows-reveal-repeated-encoded",
            false,
            "GET /v1/tables/residents/rows?reveal=0&%72eveal=1",
            BadRequest,
        ),
        seed(
            "rows-reveal-case",
            false,
            "GET /v1/tables/residents/rows?Reveal=true",
            BadRequest,
        ),
        seed(
            "rows-reveal-plus",
            false,
            "GET /v1/tables/residents/rows?reveal+=true",
            BadRequest,
        ),
        seed(
            "rows-unknown-key",
            false,
            "GET /v1/tables/residents/rows?show=all",
            BadRequest,
        ),
        seed(
            "row-head",
            false,
            "HEAD /v1/tables/residents/rows/res-1?reveal=true",
            MethodNotAllowed,
        ),
        seed(
            "row-patch",
            false,
            "PATCH /v1/tables/residents/rows/res-1",
            MethodNotAllowed,
        ),
        seed(
            "row-get-with-body",
            true,
            "GET /v1/tables/residents/rows/res-1?reveal=true",
            BadRequest,
        ),
        seed(
            "row-put",
            true,
            "PUT /v1/tables/residents/rows/res-1",
            parsed(false, &[Write]),
        ),
        seed(
            "row-put-reveal",
            true,
            "PUT /v1/tables/residents/rows/res-1?reveal=true",
            BadRequest,
        ),
        seed(
            "row-delete",
            false,
            "DELETE /v1/tables/residents/rows/r%2D1",
            parsed(false, &[Write]),
        ),
        seed(
            "import",
            true,
            "POST /v1/tables/residents/import",
            parsed(false, &[Write]),
        ),
        seed(
            "held-all",
            false,
            "GET /v1/held?all=1",
            parsed(false, &[Admin]),
        ),
        seed(
            "held-accept",
            false,
            "POST /v1/held/3/accept",
            parsed(false, &[Admin]),
        ),
        seed(
            "staff-remove",
            false,
            "DELETE /v1/staff/a+b%25",
            parsed(false, &[Admin]),
        ),
        seed(
            "reseal-get",
            false,
            "GET /v1/reseal",
            parsed(false, &[Read]),
        ),
        seed(
            "reseal-post",
            true,
            "POST /v1/reseal",
            parsed(false, &[Admin]),
        ),
        seed(
            "unknown-encoded-word",
            false,
            "GET /v1/%68eld?reveal=true",
            parsed(false, &[Read]),
        ),
        seed(
            "table-not-utf8",
            false,
            "GET /v1/tables/%ff/rows",
            BadRequest,
        ),
        seed(
            "reveal-not-utf8",
            false,
            "GET /v1/tables/residents/rows?reveal=%c3",
            BadRequest,
        ),
    ]
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the fuzz corpus {} cannot be read ({e}); it is checked in: restore it, or write the seeds with `cargo test --test suite -- --ignored fuzz_admin_request::write_seed_corpus`",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the fuzz corpus {} is empty",
        dir.display()
    );
    files
}

#[test]
fn every_corpus_file_keeps_the_request_invariants() {
    let files = corpus_files();
    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        match std::panic::catch_unwind(|| request_check::run(&data)) {
            Ok(outcome) => {
                outcomes.insert(name, outcome);
            }
            Err(_) => failures.push(name),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus files that break an invariant (see the panics above): {failures:?}"
    );
    let mut wrong = Vec::new();
    for seed in seeds() {
        match outcomes.get(seed.name) {
            None => wrong.push(format!("{}: missing", seed.name)),
            Some(o) if *o != seed.expect => wrong.push(format!(
                "{}: expected {:?}, got {o:?}",
                seed.name, seed.expect
            )),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "seeds with another outcome:\n{}",
        wrong.join("\n")
    );
    eprintln!("{} corpus files replayed", files.len());
}

#[test]
#[ignore = "writes fuzz/corpus/admin_request/; run by hand"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for seed in seeds() {
        std::fs::write(dir.join(seed.name), input_bytes(seed.body, seed.line)).unwrap();
    }
}

fn request_line() -> impl Strategy<Value = String> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("PUT".to_string()),
        Just("POST".to_string()),
        Just("DELETE".to_string()),
        Just("HEAD".to_string()),
        Just("get".to_string()),
        "[A-Z]{1,7}",
    ];
    let path = prop_oneof![
        Just("/v1/tables/residents/rows".to_string()),
        Just("/v1/tables/residents/rows/res-1".to_string()),
        Just("/v1/tables/residents/export".to_string()),
        Just("/v1/held".to_string()),
        Just("/v1/status".to_string()),
        "/v1/[a-z%0-9]{0,8}(/[a-z%0-9+-]{0,8}){0,4}",
    ];
    let piece = prop_oneof![
        Just("reveal".to_string()),
        Just("%72eveal".to_string()),
        Just("%72%65%76%65%61%6c".to_string()),
        Just("true".to_string()),
        Just("%74rue".to_string()),
        Just("1".to_string()),
        Just("yes".to_string()),
        Just("%79es".to_string()),
        Just("columns".to_string()),
        Just("limit".to_string()),
        Just("after".to_string()),
        "[a-z%0-9+=&]{0,6}",
    ];
    let pair = (piece.clone(), piece).prop_map(|(k, v)| format!("{k}={v}"));
    (method, path, proptest::collection::vec(pair, 0..4)).prop_map(|(m, p, pairs)| {
        if pairs.is_empty() {
            format!("{m} {p}")
        } else {
            format!("{m} {p}?{}", pairs.join("&"))
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_request_lines_keep_the_invariants(line in request_line(), body in any::<bool>()) {
        request_check::run(&input_bytes(body, &line));
    }

    #[test]
    fn random_bytes_keep_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        request_check::run(&data);
    }
}
