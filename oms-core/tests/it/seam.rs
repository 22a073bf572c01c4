//! The storage seam stays a seam: no face (oms-cli, oms-daemon) and no part
//! of oms-core outside its backends (`src/store/sqlite/`,
//! `src/store/postgres/`) names an engine's crate or an engine-only notion,
//! and neither backend names the other's engine.

use std::path::{Path, PathBuf};

/// Words only the SQLite engine has: its crate, and notions a face must
/// not depend on.
const ENGINE_WORDS: &[&str] = &[
    "rusqlite",
    "pragma",
    "checkpoint",
    "data_version",
    "savepoint",
];

/// Words only the PostgreSQL engine's client has.
const PG_WORDS: &[&str] = &["postgres::", "tokio_postgres", "sqlstate", "pg_notify"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir` (and `extra` files), except under `skip`.
fn sources(dir: &Path, skip: Option<&Path>, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("an entry").path();
        if skip.is_some_and(|s| path.starts_with(s)) {
            continue;
        }
        if path.is_dir() {
            sources(&path, skip, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `file:line: text` for every line naming an engine word.
fn offenders(files: &[PathBuf]) -> Vec<String> {
    naming(files, ENGINE_WORDS)
}

/// `file:line: text` for every line naming one of `words`.
fn naming(files: &[PathBuf], words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            if words.iter().any(|w| lower.contains(w)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_faces_know_no_storage_engine() {
    let root = workspace();
    let mut files = Vec::new();
    for face in ["oms-cli", "oms-daemon"] {
        sources(&root.join(face).join("src"), None, &mut files);
        files.push(root.join(face).join("Cargo.toml"));
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut found = offenders(&files);
    found.extend(naming(&files, PG_WORDS));
    assert!(
        found.is_empty(),
        "engine words in a face:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_backends_know_their_engines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let store = src.join("store");
    let (sqlite, postgres) = (store.join("sqlite"), store.join("postgres"));
    let mut outside = Vec::new();
    sources(&src, Some(&sqlite), &mut outside);
    outside.retain(|f| !f.starts_with(&postgres));
    assert!(
        outside.iter().any(|f| f.ends_with("db/mod.rs")),
        "{outside:?}"
    );
    let mut found = offenders(&outside);
    // db/mod.rs picks the backend for a location, by name only.
    found.extend(naming(&outside, PG_WORDS).into_iter().filter(|line| {
        !(line.contains("use crate::store::postgres::Postgres;")
            || line.contains("Arc::new(Postgres::new("))
    }));
    let mut in_postgres = Vec::new();
    sources(&postgres, None, &mut in_postgres);
    assert!(in_postgres.len() > 5, "{in_postgres:?}");
    found.extend(naming(
        &in_postgres,
        &["rusqlite", "pragma", "data_version"],
    ));
    let mut in_sqlite = Vec::new();
    sources(&sqlite, None, &mut in_sqlite);
    found.extend(naming(&in_sqlite, PG_WORDS));
    assert!(
        found.is_empty(),
        "an engine word where it does not belong:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_an_engine_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("face.rs");
    std::fs::write(&file, "fn f() { /* PRAGMA data_version */ }\n").expect("write");
    assert_eq!(offenders(&[file]).len(), 1);
}
