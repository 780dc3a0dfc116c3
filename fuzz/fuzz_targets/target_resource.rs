#![no_main]
// The invariants are in wfe-fuzz-checks (fuzz/checks), shared with the corpus replay test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wfe_fuzz_checks::grammar::target_resource(data));
