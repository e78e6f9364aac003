//! The house stays as docs/architecture.md draws it: no import circle
//! between rooms or inside one, every import going down the layers, one
//! name per type, every source file saying what it owns and must not do,
//! and the README in step with tools/test and `puente bench`.
//!
//! Owns: running `tools/imports` and `tools/names` on src/ (and on tiny
//! fake trees, to show each check catches what it is for), the header
//! check, and the README's lists against their sources.
//! Must not: change any file of the repository (fake trees live in temp
//! dirs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one of the repository's Python tools with `args`.
fn tool(name: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("tools").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 tools/{name}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fake crate: `files` as (path under src/, contents).
fn fake_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join("src").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

fn imports_of(tree: &tempfile::TempDir, extra: &[&str]) -> Output {
    let src = tree.path().join("src");
    let mut args = vec!["--quiet", "--src", src.to_str().unwrap()];
    args.extend_from_slice(extra);
    tool("imports", &args)
}

// ---- rooms and layers ------------------------------------------------------

#[test]
fn no_room_imports_another_in_a_circle_and_every_import_goes_down_the_layers() {
    let docs = root().join("docs/architecture.md");
    let out = tool("imports", &["--quiet", "--layers", docs.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "tools/imports found what docs/architecture.md does not allow:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_circle_is_found_and_named_whether_imported_by_use_or_by_path() {
    let tree = fake_tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
        // No `use`: an inline path is an import too.
        (
            "b.rs",
            "pub struct B;\npub fn f() -> usize { std::mem::size_of::<crate::a::A>() }\n",
        ),
    ]);
    let out = imports_of(&tree, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("circle in crate: a -> b -> a"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn paths_in_comments_doc_text_and_strings_are_no_imports() {
    let tree = fake_tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
        (
            "b.rs",
            concat!(
                "//! Mentions crate::a::A in its header.\n",
                "/// And `crate::a::A` in a doc comment.\n",
                "pub struct B;\n",
                "// use crate::a::A;\n",
                "/* a block: crate::a::A /* nested crate::a::A */ */\n",
                "pub fn f() -> (&'static str, &'static str, char) {\n",
                "    (\"crate::a::A\", r#\"use crate::a::A;\"#, '\"')\n",
                "}\n",
            ),
        ),
    ]);
    let out = imports_of(&tree, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_import_through_a_room_front_door_counts_for_the_file_behind_it() {
    // p imports `super::Q`, which r/mod.rs re-exports from q; q imports p.
    let tree = fake_tree(&[
        ("lib.rs", "pub mod r;\n"),
        ("r/mod.rs", "mod p;\nmod q;\npub use q::Q;\n"),
        ("r/p.rs", "use super::Q;\npub struct P(pub Q);\n"),
        (
            "r/q.rs",
            "pub struct Q;\npub fn f(p: super::p::P) -> Q { p.0 }\n",
        ),
    ]);
    let out = imports_of(&tree, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("circle in r: p -> q -> p"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn test_code_makes_no_circle_unless_asked_for() {
    let tree = fake_tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
        (
            "b.rs",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
        ),
    ]);
    assert!(imports_of(&tree, &[]).status.success());
    assert_eq!(imports_of(&tree, &["--tests"]).status.code(), Some(1));
}

#[test]
fn an_import_up_the_layers_or_a_room_outside_them_is_refused() {
    let tree = fake_tree(&[
        ("lib.rs", "pub mod low;\npub mod high;\npub mod other;\n"),
        ("low.rs", "pub fn f() { crate::high::g() }\n"),
        ("high.rs", "pub fn g() {}\n"),
        ("other.rs", "pub fn h() {}\n"),
    ]);
    let layers = tree.path().join("layers.md");
    std::fs::write(
        &layers,
        "| layer | rooms | within the layer |\n|---|---|---|\n| 0 | `low` | — |\n| 1 | `high` | — |\n",
    )
    .unwrap();
    let out = imports_of(&tree, &["--layers", layers.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains("low (layer 0) imports high (layer 1)"),
        "{said}"
    );
    assert!(said.contains("room other is in no layer"), "{said}");
    // The same import, allowed once the rooms swap layers.
    std::fs::write(
        &layers,
        "| layer | rooms | within the layer |\n|---|---|---|\n| 0 | `high`, `other` | — |\n| 1 | `low` | — |\n",
    )
    .unwrap();
    let out = imports_of(&tree, &["--layers", layers.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

// ---- names ----------------------------------------------------------------

#[test]
fn every_type_name_is_defined_once() {
    let out = tool("names", &[]);
    assert!(
        out.status.success(),
        "type names defined more than once (rename one so each says what it is):\n{}",
        text(&out.stderr)
    );
}

#[test]
fn a_type_name_defined_twice_is_found_but_associated_types_are_not_names() {
    let item = "pub struct Plan;\nimpl Iterator for Plan { type Item = u8; fn next(&mut self) -> Option<u8> { None } }\n";
    let tree = fake_tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", item),
        ("b.rs", item),
    ]);
    let src = tree.path().join("src");
    let out = tool("names", &["--src", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains("Plan is defined 2 times"), "{said}");
    assert!(!said.contains("Item"), "{said}");
}

// ---- headers ----------------------------------------------------------------

/// The parts a file's opening `//!` lines lack, of "Owns:" and "Must not:".
fn missing_header_parts(source: &str) -> Vec<&'static str> {
    let header: String = source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    ["Owns:", "Must not:"]
        .into_iter()
        .filter(|part| !header.contains(part))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_what_it_owns_and_must_not_do() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    assert!(files.len() > 100, "src/ has {} files", files.len());
    let lacking: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let missing = missing_header_parts(&std::fs::read_to_string(f).unwrap());
            (!missing.is_empty()).then(|| {
                format!(
                    "{} lacks {}",
                    f.strip_prefix(root()).unwrap().display(),
                    missing.join(" and ")
                )
            })
        })
        .collect();
    assert!(
        lacking.is_empty(),
        "every file opens with `//! Owns: …` and `//! Must not: …`:\n{}",
        lacking.join("\n")
    );
}

#[test]
fn the_header_check_sees_a_missing_part_and_only_in_the_header() {
    let whole = "//! A room.\n//!\n//! Owns: x.\n//! Must not: y.\n\nfn f() {}\n";
    assert!(missing_header_parts(whole).is_empty());
    let no_must = "//! A room.\n//!\n//! Owns: x.\n\n// Must not: said too late.\nfn f() {}\n";
    assert_eq!(missing_header_parts(no_must), ["Must not:"]);
    assert_eq!(missing_header_parts("fn f() {}\n"), ["Owns:", "Must not:"]);
}

// ---- the README in step ----------------------------------------------------

/// The Debian packages of tools/test's PACKAGES=( … ) list.
fn packages(script: &str) -> Vec<String> {
    let start = script
        .find("PACKAGES=(")
        .expect("tools/test has a PACKAGES list");
    script[start + "PACKAGES=(".len()..]
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .take_while(|l| *l != ")")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The parts of `puente bench --only`, as src/bench/mod.rs tells them.
fn bench_parts(source: &str) -> Vec<String> {
    let mut parts: Vec<String> = source
        .split("wanted(opts, \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    if source.contains("p.trim() == \"million\"") {
        parts.push("million".into());
    }
    parts.sort();
    parts.dedup();
    parts
}

#[test]
fn the_readme_names_every_package_tools_test_installs_and_every_bench_part() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let script = std::fs::read_to_string(root().join("tools/test")).unwrap();
    let packages = packages(&script);
    assert!(packages.len() >= 10, "{packages:?}");
    let unnamed: Vec<&String> = packages
        .iter()
        .filter(|p| !readme.contains(&format!("`{p}`")))
        .collect();
    assert!(unnamed.is_empty(), "README.md does not name {unnamed:?}");

    let parts = bench_parts(&std::fs::read_to_string(root().join("src/bench/mod.rs")).unwrap());
    assert!(parts.len() >= 11, "{parts:?}");
    let only = readme
        .split("[--only ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("README.md shows `puente bench [--only …]`");
    let listed: Vec<&str> = only.split(',').collect();
    let help = std::fs::read_to_string(root().join("src/cli/bench.rs")).unwrap();
    for part in &parts {
        assert!(
            listed.contains(&part.as_str()),
            "README's --only lacks {part}"
        );
        assert!(
            help.contains(part.as_str()),
            "`puente bench --help` lacks {part}"
        );
    }
}

#[test]
fn the_readme_checks_read_their_sources_right() {
    let script = "X=1\nPACKAGES=(\n  age  # why\n  curl\n)\nmore=(\n  nope\n)\n";
    assert_eq!(packages(script), ["age", "curl"]);
    let bench = "if wanted(opts, \"merge\") {}\nif wanted(opts, \"wan\") || wanted(opts, \"merge\") {}\n.any(|p| p.trim() == \"million\")";
    assert_eq!(bench_parts(bench), ["merge", "million", "wan"]);
}
