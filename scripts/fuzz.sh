#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer, nightly toolchain; cargo-fuzz installed pinned into the
# version-keyed cache on first use). The invariants are in tests/fuzz-checks.
#   make fuzz                                   # every target for FUZZ_SECONDS (default 600) each
#   make fuzz TARGETS='admission' FUZZ_SECONDS=1800
# Two targets run at a time (one per core). Each grows fuzz/corpus/<target>/ (what `make test`
# replays), which is then minimised (cargo fuzz cmin). Prints each target's executions; fails if
# any input broke an invariant or crashed (the input is saved in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."

version="${CARGO_FUZZ_VERSION:-0.13.2}"
root="${WFE_TESTBIN_CACHE:-$HOME/.cache/wfe-testbin}/cargo-fuzz-$version"
bin="$root/bin/cargo-fuzz"
if [ ! -x "$bin" ]; then
  echo "installing cargo-fuzz $version into $root" >&2
  cargo install --quiet --locked --version "$version" --root "$root" cargo-fuzz
fi
export RUSTUP_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
targets="${TARGETS:-admission tekton_status target_resource duration}"
seconds="${FUZZ_SECONDS:-600}"
logs="target/fuzz-logs"
mkdir -p "$logs"

cd fuzz
# No sanitizer: the code under test is safe Rust, and without AddressSanitizer each target runs
# 3-10x more inputs per second (a panic still aborts and is reported).
"$bin" build -O -s none

run_one() {
  local t="$1" dict=()
  [ -f "$t.dict" ] && dict=("-dict=$t.dict")
  mkdir -p "corpus/$t"
  "$bin" run -O -s none "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 "${dict[@]}" > "../$logs/$t.log" 2>&1
}

# Two at a time: one per core.
set -- $targets
failed=()
while [ $# -gt 0 ]; do
  pids=() names=()
  for _ in 1 2; do
    [ $# -gt 0 ] || break
    run_one "$1" & pids+=($!) names+=("$1")
    shift
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then failed+=("${names[$i]}"); fi
  done
done

printf '%-16s %14s %8s %10s %s\n' target executions seconds exec/s corpus
for t in $targets; do
  log="../$logs/$t.log"
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  # Keep only inputs that add coverage (what is committed and replayed).
  "$bin" cmin -O -s none "$t" "corpus/$t" > "../$logs/$t.cmin.log" 2>&1 || failed+=("$t (cmin)")
  files=$(find "corpus/$t" -type f | wc -l)
  printf '%-16s %14s %8s %10s %s files\n' "$t" "${runs:-?}" "$seconds" \
    "$(( ${runs:-0} / seconds ))" "$files"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} — see $logs/ and fuzz/artifacts/" >&2
  exit 1
fi
