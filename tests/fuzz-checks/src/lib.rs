//! The invariants the fuzz targets check — not only "no panic". Each check takes the fuzzer's raw
//! bytes and panics, naming the broken invariant, when the code under test misbehaves. The
//! cargo-fuzz targets (`fuzz/fuzz_targets/`, outside the workspace: nightly only) call them, and
//! `tests/replay.rs` runs them on the saved
//! corpus (`fuzz/corpus/<target>/`) as ordinary tests, so CI needs neither nightly nor libFuzzer.

pub mod admission;
pub mod grammar;
pub mod tekton_status;

/// A target's check: panics when an input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name (the corpus folder and the cargo-fuzz target) and its check.
pub const TARGETS: [(&str, Check); 4] = [
    ("admission", admission::check),
    ("target_resource", grammar::target_resource),
    ("duration", grammar::duration),
    ("tekton_status", tekton_status::check),
];
