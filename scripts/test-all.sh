#!/usr/bin/env bash
# Runs every check and test of the project, installing what it needs on a fresh machine:
# the control plane (etcd, kube-apiserver, kubectl, Tekton CRDs) and the tools around it (helm, crane,
# cert-manager, Prometheus) are built once and cached by version; the container images are built
# fresh, since the chart's end-to-end tests run the binaries unpacked from them.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

step "control plane binaries (cached by version)"
bash scripts/build-control-plane.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "container images (static binaries, OCI layouts in target/images)"
bash scripts/build-images.sh

step "promtool test rules (the chart's alerts)"
"$(bash scripts/build-control-plane.sh 2>/dev/null)/prometheus-deb/promtool" test rules tests/prometheus/rules.test.yaml

step "cargo test (unit, CLI, and integration tests against a real kube-apiserver)"
# local-env (make up, and its test) runs the binaries as local processes from the debug build.
cargo build --workspace --bins --locked
cargo test --workspace --locked

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
