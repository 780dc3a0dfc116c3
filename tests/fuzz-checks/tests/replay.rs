//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`, grown and minimised by `make fuzz`) and
//! the named inputs fuzzing once found (`fuzz/regressions/<target>/`) through each target's
//! invariants, as an ordinary test. A target without a corpus fails.

use std::path::PathBuf;

/// The inputs of `dir` (`corpus` or `regressions`) for `target`, sorted; none if it does not exist.
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<_> = entries
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_saved_input_keeps_its_invariants() {
    for (target, check) in wfe_fuzz_checks::TARGETS {
        let corpus = inputs("corpus", target);
        assert!(
            !corpus.is_empty(),
            "the corpus fuzz/corpus/{target} is missing or empty"
        );
        // What fuzzing once found, kept by name (cmin keeps only what adds coverage).
        let regressions = inputs("regressions", target);
        for (path, bytes) in corpus.iter().chain(&regressions) {
            let outcome = std::panic::catch_unwind(|| check(bytes));
            assert!(
                outcome.is_ok(),
                "{target}: {} broke an invariant (reproduce: cargo +nightly fuzz run {target} {})",
                path.display(),
                path.display()
            );
        }
        eprintln!(
            "{target}: {} corpus inputs and {} regressions replayed",
            corpus.len(),
            regressions.len()
        );
    }
}
