//! Replays every committed corpus file (`tools/fuzz/corpus/<target>/`) through
//! exactly the function its fuzz target calls, on stable Rust: inputs that
//! once crashed stay fixed, and the corpus keeps working as the code moves.

use std::path::PathBuf;

use oms_fuzz_targets::TARGETS;

#[test]
fn every_corpus_file_replays_without_a_crash() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut counts = Vec::new();
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for path in &files {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} crashes (reproduce: cargo +nightly fuzz run {name} {})",
                path.display(),
                path.display()
            );
        }
        counts.push(format!("{name} {}", files.len()));
    }
    println!("fuzz corpus replay: {}", counts.join(", "));
}
