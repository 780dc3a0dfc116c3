//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`, grown and minimised by `make fuzz`)
//! through each target's invariants, as an ordinary test: what the fuzzer once found (and every
//! input that reached new code) keeps passing. A target without a corpus fails.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} is missing: {e}", dir.display()));
    let mut inputs: Vec<_> = entries
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the corpus {} is empty", dir.display());
    inputs
}

#[test]
fn every_saved_input_keeps_its_invariants() {
    for (target, check) in wfe_fuzz_checks::TARGETS {
        let inputs = corpus(target);
        for (path, bytes) in &inputs {
            let outcome = std::panic::catch_unwind(|| check(bytes));
            assert!(
                outcome.is_ok(),
                "{target}: {} broke an invariant (reproduce: cargo +nightly fuzz run {target} {})",
                path.display(),
                path.display()
            );
        }
        eprintln!("{target}: {} inputs replayed", inputs.len());
    }
}
