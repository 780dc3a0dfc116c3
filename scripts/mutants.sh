#!/usr/bin/env bash
# Mutation testing of the pure crates (wfe-shared: every decision; wfe-ops), with cargo-mutants
# installed pinned into a version-keyed cache on first use. Fits a 2-core machine: 2 jobs.
#   make mutants                    # everything
#   make mutants FILES='shared/src/plan/*.rs shared/src/tekton/classify.rs'
#   make mutants BASE=origin/main   # only what changed since BASE (cargo mutants --in-diff)
# Writes mutants.out/ and prints the score: caught (a test failed or hung) of the viable mutants.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${CARGO_MUTANTS_VERSION:-27.1.0}"
root="${WFE_TESTBIN_CACHE:-$HOME/.cache/wfe-testbin}/cargo-mutants-$version"
bin="$root/bin/cargo-mutants"
if [ ! -x "$bin" ]; then
  echo "installing cargo-mutants $version into $root" >&2
  cargo install --quiet --locked --version "$version" --root "$root" cargo-mutants
fi

# Each job builds in its own copy of the tree; a shared CARGO_TARGET_DIR would let one job run
# the other's freshly linked test binaries and misreport mutants as missed.
unset CARGO_TARGET_DIR

args=(--package wfe-shared --package wfe-ops --jobs "${MUTANTS_JOBS:-2}" --no-shuffle)
for f in ${FILES:-}; do args+=(--file "$f"); done
if [ -n "${BASE:-}" ]; then
  diff_file="$(mktemp)"
  git diff "$BASE" -- shared ops > "$diff_file"
  args+=(--in-diff "$diff_file")
fi

start=$(date +%s)
set +e
"$bin" mutants "${args[@]}" "$@"
status=$?
set -e
count() { if [ -f "mutants.out/$1.txt" ]; then grep -c . "mutants.out/$1.txt" || true; else echo 0; fi; }
caught=$(count caught); missed=$(count missed); timeout=$(count timeout); unviable=$(count unviable)
# A timeout is a mutant the tests noticed (they hung instead of passing): it counts as caught.
viable=$((caught + timeout + missed))
if [ "$viable" -gt 0 ]; then
  score=$(awk -v c="$((caught + timeout))" -v v="$viable" 'BEGIN { printf "%.1f", 100 * c / v }')
else
  score="n/a"
fi
echo
echo "mutation score: $score% ($((caught + timeout)) caught of $viable viable: $caught failed a test, $timeout hung it; $missed missed; $unviable unviable) in $(( $(date +%s) - start ))s"
[ "$missed" -gt 0 ] && { echo "missed:"; sed 's/^/  /' mutants.out/missed.txt; }
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: report, and pass that on.
exit "$status"
