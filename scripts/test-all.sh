#!/usr/bin/env bash
# Runs every check and test of the project, installing what it needs on a fresh machine:
# the control plane (etcd, kube-apiserver, kubectl, Tekton CRDs) is built once and cached by version.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "control plane binaries (cached by version)"
bash scripts/build-control-plane.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, CLI, and integration tests against a real kube-apiserver)"
cargo test --workspace --locked

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
