//! The project's documents stand on their own: every relative link in
//! README.md and docs/*.md points at a file of this repository, and none
//! points outside it.
//!
//! Owns: reading the Markdown links (`[text](target)`) and checking their
//! targets exist inside the repository.
//! Must not: reach the network (web links are only told apart, not opened).

use std::path::{Component, Path, PathBuf};

/// The targets of the `[text](target)` links in `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// `path` with `.` and `..` resolved, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_document_link_stays_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    assert!(
        documents.iter().any(|d| d.ends_with("docs/design.md")),
        "the design lives in docs/design.md"
    );
    let mut checked = 0;
    for doc in &documents {
        let text = std::fs::read_to_string(doc).unwrap();
        for word in ["../shared", "/work/shared", "DESIGN.md"] {
            assert!(
                !text.contains(word),
                "{} mentions {word}: the project's documents stand on their own",
                doc.display()
            );
        }
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if file.is_empty() {
                continue;
            }
            let resolved = normalize(&doc.parent().unwrap().join(file));
            assert!(
                resolved.starts_with(root),
                "{}: the link {target} leaves the repository",
                doc.display()
            );
            assert!(
                resolved.exists(),
                "{}: the link {target} points at nothing",
                doc.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links found: the parser is broken"
    );
}
