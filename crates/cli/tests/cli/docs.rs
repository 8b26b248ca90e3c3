//! The documents point at what is there: every relative link and every backticked path of the
//! repository in `README.md`, `bench/README.md` and `docs/` names a file or directory of the
//! tree, and none points outside the repository.

use std::path::{Path, PathBuf};

use tollgate_testkit::repo_root;

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md"), root.join("bench/README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                docs.push(p);
            }
        }
    }
    docs
}

/// The targets of `[text](target)` links that are not URLs or anchors.
fn links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or("");
            (!target.is_empty() && !target.contains("://") && !target.starts_with("mailto:"))
                .then_some(target)
        })
        .collect()
}

/// Backticked spans that read as paths of the repository: their first component is an entry
/// of the repository's top (or of the document's own directory), or they name a `.md` file.
/// Patterns and placeholders (`*`, `{a,b}`, `<x>`, `DIR/...`) are not paths, and neither are
/// `../` spans (the links inside playlists, say); a relative link is checked as a link.
fn code_paths<'a>(text: &'a str, root: &Path, here: &Path) -> Vec<&'a str> {
    let mut spans = Vec::new();
    for block in text.split("```").step_by(2) {
        let mut parts = block.split('`');
        parts.next();
        while let (Some(span), _) = (parts.next(), parts.next()) {
            spans.push(span);
        }
    }
    spans
        .into_iter()
        .filter(|s| {
            !s.is_empty()
                && !s.contains(|c: char| c.is_whitespace() || "*{}<>$?=,".contains(c))
                && !s.starts_with('/')
                && !s.starts_with("../")
                && !s.starts_with("target/")
        })
        .filter(|s| {
            let first = s.trim_start_matches("./").split('/').next().unwrap_or("");
            let is_entry = |dir: &Path| !first.is_empty() && dir.join(first).exists();
            (s.contains('/') && (is_entry(root) || is_entry(here)))
                || (s.ends_with(".md") && !s.contains('/'))
        })
        .collect()
}

#[test]
fn every_path_and_link_in_the_documents_exists() {
    let root = repo_root().canonicalize().unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents(&root) {
        let text = std::fs::read_to_string(&doc).unwrap();
        let here = doc.parent().unwrap();
        let name = doc.strip_prefix(&root).unwrap().display().to_string();
        if text.contains("../shared") {
            missing.push(format!("{name}: points outside the repository (../shared)"));
        }
        for target in links(&text) {
            checked += 1;
            if !here.join(target).exists() {
                missing.push(format!("{name}: link ({target})"));
            }
        }
        for path in code_paths(&text, &root, here) {
            checked += 1;
            let path = path.trim_start_matches("./");
            if !(root.join(path).exists() || here.join(path).exists()) {
                missing.push(format!("{name}: `{path}`"));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} paths found: is the extraction broken?"
    );
    assert!(
        missing.is_empty(),
        "not in the tree:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_checker_finds_paths_and_links() {
    let root = repo_root();
    let text = "see `crates/edge/src/nope.rs`, `docs/x.md`, `streaming.md`, `a b/c`, \
                `crates/*/src`, [t](docs/config.md#flags) and [u](https://example.com/)\n\
                ```sh\n`crates/not-a-span` \n```\n";
    assert_eq!(
        code_paths(text, &root, &root.join("docs")),
        ["crates/edge/src/nope.rs", "docs/x.md", "streaming.md"]
    );
    assert_eq!(links(text), ["docs/config.md"]);
}
