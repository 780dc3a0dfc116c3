#!/usr/bin/env bash
# Brings up the local environment: a private etcd + kube-apiserver with the CRDs installed and an
# example WorkflowExecution, and prints how to reach it with kubectl. Ctrl-C stops and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-control-plane.sh >/dev/null
# The webhook and the controller run as local processes from these binaries.
cargo build --quiet --locked -p wfe-controller -p wfe-webhook
exec cargo run --quiet --locked -p wfe-tools --bin local-env -- "$@"
