//! The storage seam stays a seam: no face (oms-cli, oms-daemon) and no part
//! of oms-core outside its SQLite backend (`src/store/sqlite/`) names the
//! engine's crate or an engine-only notion. A second backend then adds
//! files under `src/store/` and touches no face.

use std::path::{Path, PathBuf};

/// Words only the SQLite engine has: its crate, and notions a face must
/// not depend on (the PostgreSQL backend has none of them).
const ENGINE_WORDS: &[&str] = &[
    "rusqlite",
    "pragma",
    "checkpoint",
    "data_version",
    "savepoint",
];

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
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            if ENGINE_WORDS.iter().any(|w| lower.contains(w)) {
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
    let found = offenders(&files);
    assert!(
        found.is_empty(),
        "engine words in a face:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_sqlite_backend_knows_sqlite() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let backend = core.join("src").join("store").join("sqlite");
    let mut files = Vec::new();
    sources(&core.join("src"), Some(&backend), &mut files);
    assert!(files.iter().any(|f| f.ends_with("db/mod.rs")), "{files:?}");
    let found = offenders(&files);
    assert!(
        found.is_empty(),
        "engine words outside src/store/sqlite/:\n{}",
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
